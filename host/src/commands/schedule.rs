//! `anneal schedule`: the schedule, Technique 2/4 and the CAS coefficients, as a table or JSON.

use anneal_core::ncsnv2::{self, Technique4};
use anneal_core::params::{self, EtaRule, LangevinStep, StepConvention};
use anneal_core::{Error, Geometric, Growth, Schedule};
use serde::Serialize;

use crate::cli::ScheduleArgs;
use crate::error::UsageError;

/// Everything `anneal schedule` reports; the JSON form is this struct.
#[derive(Debug, Serialize)]
pub struct Report {
    /// N.
    pub levels: usize,
    /// σ_1 … σ_N.
    pub sigmas: Vec<f64>,
    /// γ = σ_{i+1}/σ_i (the CAS note's convention).
    pub ratio: f64,
    /// g = σ_{i−1}/σ_i (NCSNv2's convention).
    pub growth: f64,
    /// Technique 2's C, when it chose N.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub technique2_c: Option<f64>,
    /// The C of Technique 2 that these levels give in D = `--dim` (Technique 2 rounds N up, so
    /// this is ≥ the C asked for).
    pub levels_c: f64,
    /// Technique 4's ε (NCSNv2 convention: α_i = ε σ_i²/σ_N²).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step_size: Option<f64>,
    /// T, Langevin steps per level.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steps_per_level: Option<u32>,
    /// Proposition 3's s_T²/σ_i² at that ε.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prop3_ratio: Option<f64>,
    /// The ALS stability bound on ε (NCSNv2 convention): 2σ_N².
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step_size_bound: Option<f64>,
    /// Whether the step size is inside that bound at every level.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step_size_in_bound: Option<bool>,
    /// The CAS rule, `eps_c` or `eps_b`, and its value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cas: Option<CasRule>,
    /// η_i for steps i = 1..N−1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eta: Option<Vec<f64>>,
    /// β_i for steps i = 1..N−1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub beta: Option<Vec<f64>>,
}

/// The CAS choice, for the report.
#[derive(Debug, Serialize)]
pub struct CasRule {
    /// `eps_c` or `eps_b`.
    pub rule: &'static str,
    /// Its value (`null` in JSON for εc = ∞).
    pub value: f64,
}

/// Builds the report from validated flags.
pub fn report(a: &ScheduleArgs) -> Result<Report, UsageError> {
    if a.dim == 0 {
        return Err(UsageError::flag("--dim = 0 is out of range: must be ≥ 1"));
    }
    let sigma_max: f64 = match a.sigma.sigma_max.as_str() {
        "auto" => {
            return Err(UsageError::flag(
                "--sigma-max = auto needs data points (Technique 1), which schedule has none of: \
                 give a number",
            ));
        }
        s => {
            s.parse().map_err(|_| UsageError::flag(format!("--sigma-max = {s} is not a number")))?
        }
    };
    let (sigma_min, l) = (a.sigma.sigma_min, &a.levels);
    let schedule = if l.technique2 {
        let growth = ncsnv2::technique2_growth(a.dim, l.c).map_err(UsageError::from)?;
        Geometric::with_growth(sigma_max, sigma_min, growth)
    } else {
        Geometric::new(sigma_max, sigma_min, l.levels.unwrap_or(crate::cli::DEFAULT_LEVELS))
    }
    .map_err(UsageError::from)?;
    let n = schedule.levels();
    let ratio = schedule.common_ratio();
    let sigmas: Vec<f64> = (0..n).filter_map(|i| schedule.sigma(i)).collect();

    let mut r = Report {
        levels: n,
        sigmas,
        ratio: ratio.value(),
        growth: ratio.growth().value(),
        technique2_c: l.technique2.then_some(l.c),
        levels_c: ncsnv2::technique2_objective(a.dim, ratio.growth()),
        step_size: None,
        steps_per_level: None,
        prop3_ratio: None,
        step_size_bound: None,
        step_size_in_bound: None,
        cas: None,
        eta: None,
        beta: None,
    };

    if let Some(t) = a.steps_per_level {
        let growth: Growth = ratio.growth();
        let Technique4 { eps, ratio: p3 } = ncsnv2::technique4_eps(schedule.sigma_min(), growth, t)
            .map_err(|e| match e {
                Error::OutOfRange { .. } => UsageError::flag(format!(
                    "--steps-per-level = {t} is out of range: must be ≥ 1"
                )),
                other => UsageError::from(other),
            })?;
        let step = LangevinStep::new(eps, StepConvention::Ncsnv2).map_err(UsageError::from)?;
        r.step_size = Some(eps);
        r.steps_per_level = Some(t);
        r.prop3_ratio = Some(p3);
        r.step_size_bound = Some(2.0 * schedule.sigma_min() * schedule.sigma_min());
        r.step_size_in_bound = Some(params::check_langevin(&schedule, step, 0.0).is_ok());
    }

    let rule = match (a.eps_c, a.eps_b) {
        (Some(e), _) => Some((EtaRule::eps_c(e).map_err(UsageError::from)?, "eps_c", e)),
        (None, Some(e)) => Some((EtaRule::eps_b(e).map_err(UsageError::from)?, "eps_b", e)),
        (None, None) => None,
    };
    if let Some((rule, name, value)) = rule {
        params::check_cas(&schedule, rule)
            .map_err(|e| UsageError::from_plan_refusal(e, "", false, &schedule))?;
        let steps: Vec<_> = (0..n - 1)
            .map(|i| params::cas_step(&schedule, rule, i))
            .collect::<Result<_, _>>()
            .map_err(UsageError::from)?;
        r.cas = Some(CasRule { rule: name, value });
        r.eta = Some(steps.iter().map(|s| s.eta).collect());
        r.beta = Some(steps.iter().map(|s| s.beta).collect());
    }
    Ok(r)
}

/// Runs `anneal schedule`.
pub fn run(a: &ScheduleArgs) -> anyhow::Result<()> {
    let r = report(a)?;
    if a.json {
        println!("{}", serde_json::to_string(&r)?);
        return Ok(());
    }
    print!("{}", render(&r));
    Ok(())
}

/// The human-readable table.
pub fn render(r: &Report) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "levels N = {}   ratio γ = σ_(i+1)/σ_i = {:.9}   growth σ_(i-1)/σ_i = {:.9}",
        r.levels, r.ratio, r.growth
    );
    match r.technique2_c {
        Some(c) => {
            let _ = writeln!(
                s,
                "N chosen by NCSNv2 Technique 2 with C = {c}, rounded up: these N levels give C = {}",
                crate::error::sig4(r.levels_c)
            );
        }
        None => {
            let _ =
                writeln!(s, "Technique 2's C of these levels: {}", crate::error::sig4(r.levels_c));
        }
    }
    if let (Some(eps), Some(t), Some(p3), Some(bound), Some(ok)) =
        (r.step_size, r.steps_per_level, r.prop3_ratio, r.step_size_bound, r.step_size_in_bound)
    {
        let _ = writeln!(
            s,
            "step size (Technique 4, NCSNv2 convention α_i = ε σ_i²/σ_N², T = {t}): ε = {eps:.6e}, \
             s_T²/σ_i² = {p3:.6}; ALS bound ε < 2σ_N² = {bound:.6e}: {}",
            if ok { "inside" } else { "OUTSIDE" }
        );
    }
    if let Some(cas) = &r.cas {
        let _ = writeln!(s, "CAS with {} = {}", cas.rule, cas.value);
    }
    let _ = write!(s, "{:>6}  {:>14}", "i", "sigma");
    if r.eta.is_some() {
        let _ = write!(s, "  {:>12}  {:>12}", "eta", "beta");
    }
    let _ = writeln!(s);
    for (i, sigma) in r.sigmas.iter().enumerate() {
        let _ = write!(s, "{:>6}  {:>14.6e}", i + 1, sigma);
        if let (Some(eta), Some(beta)) = (&r.eta, &r.beta) {
            match (eta.get(i), beta.get(i)) {
                (Some(e), Some(b)) => {
                    let _ = write!(s, "  {e:>12.9}  {b:>12.9}");
                }
                _ => {
                    let _ = write!(s, "  {:>12}  {:>12}", "(denoise)", "");
                }
            }
        }
        let _ = writeln!(s);
    }
    s
}
