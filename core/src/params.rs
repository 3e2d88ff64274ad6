//! Step parameters with their bounds: CAS's η and β, and the Langevin step size.
//!
//! # CAS (the CAS note, Eqs. 2, 3, 6, 7)
//! Step i maps level σ_i to σ_{i+1} by `x ← x + η_i σ_i² s(x, σ_i) + β_i σ_{i+1} z`, with
//! `β_i = √(1 − ((1 − η_i)/γ_i)²)`, γ_i = σ_{i+1}/σ_i ([`Ratio`]). Two parameterisations of η:
//! - [`EtaRule::EpsB`]: the original `η = ε_b / σ_N²`, the same for every step; it can be in bounds for
//!   one N and out of bounds for another;
//! - [`EtaRule::EpsC`]: the note's `η_i = 1 − γ_i^εc`, εc ∈ [1, ∞] (∞ included: η = β = 1), always in
//!   bounds.
//!
//! The bound `1 − γ_i ≤ η_i ≤ 1` is checked for every step by [`cas_step`] and, for a whole schedule
//! before anything runs, by [`check_cas`].
//!
//! Numerics (`MATH.md`, "Numerics"), all in f64:
//! - εc: `η = −expm1(εc ln γ)` and `β = √(−expm1(2(εc − 1) ln γ))` (since `(1 − η)/γ = γ^(εc−1)`);
//! - ε_b: `β² = (η − (1 − γ)) (1 + γ − η) / γ²`, the factored `1 − q²`, with `1 − γ = −expm1(ln γ)`.
//!   The naive `1 − γ^εc` and `1 − ((1−η)/γ)²` lose all their digits as γ → 1 (large N) and εc → 1.
//!
//! # Langevin step size (ALS, correctors, single-level Langevin)
//! NCSNv2 (Alg. 1) writes `x ← x + α s + √(2α) z` with `α_i = ε σ_i²/σ_N²`; NCSN (Alg. 1) writes
//! `x ← x + (α/2) s + √α z` with the same α, so its ε is twice NCSNv2's for the same chain. Both are
//! named in [`StepConvention`]; internally a step is the score coefficient `a_i` with noise
//! `√(2 a_i)`. The CAS note's `α = ε σ_i/σ_N` (unsquared) is read as shorthand and not used.
//!
//! Stability bound (`MATH.md`): near a mode of variance τ² the step multiplies the distance to the
//! mode by `1 − a_i/(τ² + σ_i²)`, so it must hold that `0 < a_i < 2(τ² + σ_i²)` at every level
//! (τ = 0: `ε < 2σ_N²` in NCSNv2's convention, `ε < 4σ_N²` in NCSN's). [`check_langevin`] checks it.

use crate::error::{Error, Param, positive};
use crate::schedule::{Ratio, Schedule};

/// How η is chosen for CAS.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum EtaRule {
    /// η = ε_b / σ_N² (the original CAS), ε_b > 0.
    EpsB(f64),
    /// η_i = 1 − γ_i^εc (the CAS note, Eq. 7), εc ∈ [1, +∞]; `f64::INFINITY` gives η = 1.
    EpsC(f64),
}

impl EtaRule {
    /// The εc rule, validated: εc ≥ 1 (+∞ allowed).
    pub fn eps_c(eps_c: f64) -> Result<Self, Error> {
        if eps_c >= 1.0 {
            Ok(EtaRule::EpsC(eps_c))
        } else {
            Err(Error::OutOfRange {
                param: Param::EpsC,
                value: eps_c,
                allowed: "≥ 1, or +∞ (1 = pure denoising, ∞ = denoise then re-noise)",
            })
        }
    }

    /// The ε_b rule, validated: ε_b finite and > 0 (the per-step bound is checked against a
    /// schedule by [`cas_step`]).
    pub fn eps_b(eps_b: f64) -> Result<Self, Error> {
        positive(Param::EpsB, eps_b).map(EtaRule::EpsB)
    }

    fn validate(self) -> Result<Self, Error> {
        match self {
            EtaRule::EpsC(e) => Self::eps_c(e),
            EtaRule::EpsB(e) => Self::eps_b(e),
        }
    }
}

/// The coefficients of one CAS step, from σ_i to σ_{i+1}.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct CasStep {
    /// σ_i.
    pub sigma: f64,
    /// σ_{i+1}.
    pub sigma_next: f64,
    /// γ_i = σ_{i+1}/σ_i.
    pub ratio: Ratio,
    /// η_i ∈ [1 − γ_i, 1].
    pub eta: f64,
    /// β_i ∈ [0, 1].
    pub beta: f64,
}

/// η_i and β_i for a step of ratio γ (no schedule needed for εc; ε_b needs σ_N).
///
/// `step` is 0-based and only used to name the step (1-based) in an error.
pub fn eta_beta(
    rule: EtaRule,
    ratio: Ratio,
    sigma_min: f64,
    step: usize,
) -> Result<(f64, f64), Error> {
    let lower = ratio.one_minus();
    let (eta, beta) = match rule.validate()? {
        EtaRule::EpsC(e) if e == f64::INFINITY => (1.0, 1.0),
        EtaRule::EpsC(e) => {
            let eta = -libm::expm1(e * ratio.ln());
            let beta = libm::sqrt(-libm::expm1(2.0 * (e - 1.0) * ratio.ln()));
            (eta, beta)
        }
        EtaRule::EpsB(e) => {
            let eta = e / (sigma_min * sigma_min);
            let gamma = ratio.value();
            // 1 − q² with q = (1 − η)/γ, factored: (1 − q)(1 + q) = (η − (1 − γ))(γ + 1 − η)/γ².
            let beta2 = (eta - lower) * (gamma + 1.0 - eta) / (gamma * gamma);
            (eta, libm::sqrt(beta2))
        }
    };
    if eta.is_finite() && eta >= lower && eta <= 1.0 && beta.is_finite() {
        Ok((eta, beta))
    } else {
        Err(Error::EtaOutOfBounds { step: step + 1, eta, lower, upper: 1.0 })
    }
}

/// The coefficients of CAS step `i` (0-based: from `schedule.sigma(i)` to `schedule.sigma(i + 1)`).
pub fn cas_step<S: Schedule>(schedule: &S, rule: EtaRule, i: usize) -> Result<CasStep, Error> {
    let n = schedule.levels();
    let (Some(sigma), Some(sigma_next), Some(ratio)) =
        (schedule.sigma(i), schedule.sigma(i + 1), schedule.ratio(i))
    else {
        return Err(Error::TooFewLevels { levels: n, min: i + 2 });
    };
    let (eta, beta) = eta_beta(rule, ratio, schedule.sigma_min(), i)?;
    Ok(CasStep { sigma, sigma_next, ratio, eta, beta })
}

/// Checks the CAS bound at every step of `schedule`, returning the first step out of bounds.
pub fn check_cas<S: Schedule>(schedule: &S, rule: EtaRule) -> Result<(), Error> {
    let n = schedule.levels();
    if n < 2 {
        return Err(Error::TooFewLevels { levels: n, min: 2 });
    }
    for i in 0..n - 1 {
        cas_step(schedule, rule, i)?;
    }
    Ok(())
}

/// The two ways of writing the same Langevin step (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum StepConvention {
    /// NCSN (Song & Ermon 2019, Alg. 1): `x ← x + (α/2) s + √α z`, α = ε σ_i²/σ_N².
    Ncsn,
    /// NCSNv2 (Song & Ermon 2020, Alg. 1): `x ← x + α s + √(2α) z`, α = ε σ_i²/σ_N². The default.
    #[default]
    Ncsnv2,
}

/// A Langevin step-size rule: ε in a named convention, scaled per level by σ_i²/σ_N².
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct LangevinStep {
    eps: f64,
    convention: StepConvention,
}

impl LangevinStep {
    /// ε > 0 in `convention`.
    pub fn new(eps: f64, convention: StepConvention) -> Result<Self, Error> {
        Ok(LangevinStep { eps: positive(Param::Eps, eps)?, convention })
    }

    /// ε as given.
    pub fn eps(&self) -> f64 {
        self.eps
    }

    /// The convention ε was given in.
    pub fn convention(&self) -> StepConvention {
        self.convention
    }

    /// ε in NCSNv2's convention (NCSN's ε is halved).
    pub fn eps_ncsnv2(&self) -> f64 {
        match self.convention {
            StepConvention::Ncsnv2 => self.eps,
            StepConvention::Ncsn => 0.5 * self.eps,
        }
    }

    /// The score coefficient `a` of the step at noise level `sigma` in a schedule ending at
    /// `sigma_min`: `a = ε_v2 σ²/σ_N²`; the step is `x ← x + a s + √(2a) z`.
    pub fn score_coefficient(&self, sigma: f64, sigma_min: f64) -> f64 {
        let r = sigma / sigma_min;
        self.eps_ncsnv2() * r * r
    }
}

/// Checks the Langevin stability bound `a_i < 2(τ² + σ_i²)` at every level of `schedule`, for
/// modes of standard deviation `tau` (0 for point masses and for the worst case).
pub fn check_langevin<S: Schedule>(
    schedule: &S,
    step: LangevinStep,
    tau: f64,
) -> Result<(), Error> {
    if !(tau.is_finite() && tau >= 0.0) {
        return Err(Error::OutOfRange {
            param: Param::Tau, value: tau, allowed: "finite and ≥ 0"
        });
    }
    let sigma_min = schedule.sigma_min();
    for i in 0..schedule.levels() {
        let Some(sigma) = schedule.sigma(i) else {
            break;
        };
        let a = step.score_coefficient(sigma, sigma_min);
        let limit = 2.0 * crate::score::perturbed_variance(tau, sigma);
        if !(a < limit) {
            return Err(Error::StepUnstable { level: i + 1, step_size: a, limit });
        }
    }
    Ok(())
}
