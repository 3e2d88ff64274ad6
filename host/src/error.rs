//! The host's errors. Two kinds reach the user:
//!
//! - [`UsageError`]: bad flags or input — exit status 2, one line naming the flag, the value, the
//!   bound and the fix. A refusal by the core keeps the core's [`CoreError`] beside that line, so
//!   that callers (tune's cells) decide by the variant, never by the text.
//! - anything else (`anyhow`): a failure while running — exit status 1.

pub use anneal_core::Error as CoreError;

/// Bad flags or input (exit status 2).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum UsageError {
    /// A flag or input refused by the host itself.
    #[error("{0}")]
    Flag(String),
    /// A parameter the core refused, with the line that names the flag.
    #[error("{message}")]
    Core {
        /// The core's error.
        source: CoreError,
        /// The user-facing line.
        message: String,
    },
}

impl UsageError {
    /// A host-side refusal.
    pub fn flag(message: impl Into<String>) -> Self {
        UsageError::Flag(message.into())
    }

    /// The core's error, if the core refused.
    pub fn core(&self) -> Option<&CoreError> {
        match self {
            UsageError::Core { source, .. } => Some(source),
            UsageError::Flag(_) => None,
        }
    }

    /// A core refusal named after the flag that caused it. `hint` is appended to the stability
    /// message (how to get a stable default).
    pub fn from_core(e: CoreError, hint: &str) -> Self {
        let message = match e {
            CoreError::StepUnstable { level, step_size, limit } => format!(
                "--eps: under --step-convention ncsnv2 (x ← x + α s + √(2α) z) the step \
                 α = εσ_i²/σ_N² = {} at level {level} is not below its stability bound \
                 2(τ² + σ_i²) = {}; the chain would diverge — reduce --eps{hint}",
                sig4(step_size),
                sig4(limit)
            ),
            CoreError::OutOfRange { .. } => format!("--{e}"),
            CoreError::NotDecreasing { sigma, next, .. } => format!(
                "--sigma-min = {} must be below --sigma-max = {} (both finite and > 0)",
                anneal_core::Num(next),
                anneal_core::Num(sigma)
            ),
            CoreError::TooFewLevels { levels, min } => {
                format!("--levels = {levels} is out of range: must be ≥ {min}")
            }
            CoreError::TooManyLevels { levels, max } => format!(
                "--levels = {levels} is out of range: must be ≤ {max} for this --sigma-max/--sigma-min"
            ),
            CoreError::EtaOutOfBounds { .. } => format!("--eps-b: {e}"),
            CoreError::NoGrowth { .. } => format!("--c: {e}"),
            other => other.to_string(),
        };
        UsageError::Core { source: e, message }
    }

    /// The core's refusal of a plan, in the user's units and with the way out: a Langevin step under
    /// `--step-convention ncsn` in NCSN's own form (εσ_i²/σ_N², bound 4(τ² + σ_i²)); an ε_b with the
    /// interval of ε_b this schedule accepts.
    pub fn from_plan_refusal(
        e: CoreError,
        hint: &str,
        ncsn: bool,
        sched: &impl anneal_core::Schedule,
    ) -> UsageError {
        use CoreError as E;
        match e {
            E::StepUnstable { level, step_size, limit } if ncsn => UsageError::Core {
                source: e,
                message: format!(
                    "--eps: under --step-convention ncsn (x ← x + (α/2) s + √α z) the step \
                         α = εσ_i²/σ_N² = {} at level {level} is not below its stability bound \
                         4(τ² + σ_i²) = {}; the chain would diverge — reduce --eps{hint}",
                    sig4(2.0 * step_size),
                    sig4(2.0 * limit)
                ),
            },
            E::EtaOutOfBounds { step, eta, lower, upper } => {
                // η_i = ε_b/σ_N² must lie in [1 − γ_i, 1] at every step.
                let s2 = sched.sigma_min() * sched.sigma_min();
                let worst = (0..sched.levels().saturating_sub(1))
                    .filter_map(|i| Some(1.0 - sched.sigma(i + 1)? / sched.sigma(i)?))
                    .fold(0.0f64, f64::max);
                UsageError::Core {
                    source: e,
                    message: format!(
                        "--eps-b: η = ε_b/σ_N² = {} is outside [1 − γ, 1] = [{}, {}] at step {step} \
                         (σ_{step} → σ_{}); this schedule accepts ε_b ∈ [{}, {}] — choose one there, \
                         or use --eps-c",
                        sig4(eta),
                        sig4(lower),
                        sig4(upper),
                        step + 1,
                        sig4(worst * s2),
                        sig4(s2)
                    ),
                }
            }
            e => UsageError::from_core(e, hint),
        }
    }
}

impl From<CoreError> for UsageError {
    fn from(e: CoreError) -> Self {
        UsageError::from_core(e, "")
    }
}

/// The exit status for an error that ended a command: 2 for a [`UsageError`], 1 otherwise.
pub fn exit_status(e: &anyhow::Error) -> u8 {
    if e.downcast_ref::<UsageError>().is_some() { 2 } else { 1 }
}

/// `v` with 4 significant digits, as messages print numbers: `308.7`, `0.01000`, `6.200e-6`.
pub fn sig4(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return v.to_string();
    }
    let e = v.abs().log10().floor() as i32;
    if (-3..5).contains(&e) {
        let decimals = (3 - e).max(0) as usize;
        format!("{v:.decimals$}")
    } else {
        format!("{v:.3e}")
    }
}

/// `v` in full (the shortest form that reads back as the same f64), in scientific form outside
/// [10⁻⁴, 10¹⁶), where the plain form would print long runs of zeros: `12.351297512691957`,
/// `1.414213583653426e30`.
pub fn exact(v: f64) -> String {
    if v == 0.0 || !v.is_finite() || (1e-4..1e16).contains(&v.abs()) {
        v.to_string()
    } else {
        format!("{v:e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_values_read_back_and_stay_short() {
        for v in [12.351297512691957, 1.414213583653426e30, -3e-7, 1e-4, 9.999e15, 1e16, 0.0] {
            let s = exact(v);
            assert_eq!(s.parse::<f64>().unwrap().to_bits(), v.to_bits(), "{s}");
            assert!(s.len() <= 24, "{s}");
        }
        assert_eq!(exact(12.351297512691957), "12.351297512691957");
        assert_eq!(exact(1.414213583653426e30), "1.414213583653426e30");
    }

    #[test]
    fn core_refusals_keep_their_variant_and_name_the_flag() {
        let e = UsageError::from_core(
            CoreError::StepUnstable { level: 3, step_size: 2.0, limit: 1.0 },
            " (omit it)",
        );
        assert!(matches!(e.core(), Some(CoreError::StepUnstable { level: 3, .. })));
        assert!(e.to_string().starts_with("--eps: under --step-convention ncsnv2"), "{e}");
        assert!(e.to_string().contains("α = εσ_i²/σ_N² = 2.000 at level 3"), "{e}");
        assert!(e.to_string().ends_with("reduce --eps (omit it)"), "{e}");
        let e = UsageError::from(CoreError::TooFewLevels { levels: 1, min: 2 });
        assert_eq!(e.to_string(), "--levels = 1 is out of range: must be ≥ 2");
        assert_eq!(UsageError::flag("--n = 0").core(), None);
    }

    #[test]
    fn usage_errors_exit_with_2_and_others_with_1() {
        assert_eq!(exit_status(&anyhow::Error::new(UsageError::flag("x"))), 2);
        assert_eq!(exit_status(&anyhow::anyhow!("disk full")), 1);
    }

    /// Messages print 4 significant digits.
    #[test]
    fn four_significant_digits() {
        assert_eq!(sig4(308.70471), "308.7");
        assert_eq!(sig4(0.01), "0.01000");
        assert_eq!(sig4(1.1388), "1.139");
        assert_eq!(sig4(6.2e-6), "6.200e-6");
        assert_eq!(sig4(123456.0), "1.235e5");
        assert_eq!(sig4(-2.5), "-2.500");
    }
}
