//! `anneal schedule`: the schedule, Technique 2/4 and the CAS coefficients, as a table or JSON.

use std::io::Write;

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
    /// σ_1 … σ_N (the JSON form only: the table streams them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sigmas: Option<Vec<f64>>,
    /// γ = σ_{i+1}/σ_i (the CAS note's convention).
    pub ratio: f64,
    /// g = σ_{i−1}/σ_i (NCSNv2's convention).
    pub growth: f64,
    /// ln γ (the table prints γ and g from it: both may lie beyond float64).
    #[serde(skip)]
    pub ratio_ln: f64,
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
    /// The schedule.
    #[serde(skip)]
    pub schedule: Option<Geometric>,
    /// The CAS rule, checked at every step.
    #[serde(skip)]
    pub rule: Option<EtaRule>,
}

/// The most levels the JSON form lists (one object holds every σ_i, η_i and β_i: 10⁶ levels are
/// about 60 MB); the table streams any number.
pub const JSON_MAX_LEVELS: usize = 1_000_000;

/// The CAS choice, for the report.
#[derive(Debug, Serialize)]
pub struct CasRule {
    /// `eps_c` or `eps_b`.
    pub rule: &'static str,
    /// Its value (`null` in JSON for εc = ∞).
    pub value: f64,
}

/// Builds the report from validated flags; `lists`: with every level's σ_i, η_i and β_i (the
/// JSON form; refused above [`JSON_MAX_LEVELS`]).
pub fn report(a: &ScheduleArgs, lists: bool) -> Result<Report, UsageError> {
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
    if lists && n > JSON_MAX_LEVELS {
        return Err(UsageError::flag(format!(
            "--json with N = {n} levels: the JSON object lists every level and is limited to \
             {JSON_MAX_LEVELS}; leave out --json (the table is streamed) or use fewer levels"
        )));
    }
    let ratio = schedule.common_ratio();
    let sigmas = lists.then(|| (0..n).filter_map(|i| schedule.sigma(i)).collect());

    let mut r = Report {
        levels: n,
        sigmas,
        ratio: ratio.value(),
        growth: ratio.growth().value(),
        ratio_ln: ratio.ln(),
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
        schedule: Some(schedule),
        rule: None,
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
        r.cas = Some(CasRule { rule: name, value });
        r.rule = Some(rule);
        if lists {
            let steps: Vec<_> = (0..n - 1)
                .map(|i| params::cas_step(&schedule, rule, i))
                .collect::<Result<_, _>>()
                .map_err(UsageError::from)?;
            r.eta = Some(steps.iter().map(|s| s.eta).collect());
            r.beta = Some(steps.iter().map(|s| s.beta).collect());
        }
    }
    Ok(r)
}

/// Runs `anneal schedule`.
pub fn run(a: &ScheduleArgs) -> anyhow::Result<()> {
    let r = report(a, a.json)?;
    let stdout = std::io::stdout();
    let mut w = std::io::BufWriter::new(stdout.lock());
    if a.json {
        serde_json::to_writer(&mut w, &r)?;
        writeln!(w)?;
    } else {
        render(&r, &mut w)?;
    }
    w.flush()?;
    Ok(())
}

/// The human-readable table, one level per line as it is computed (memory does not grow with N).
pub fn render(r: &Report, s: &mut impl Write) -> std::io::Result<()> {
    use crate::error::sig4;
    writeln!(
        s,
        "levels N = {}   ratio γ = σ_(i+1)/σ_i = {}   growth σ_(i-1)/σ_i = {}",
        r.levels,
        power(r.ratio_ln),
        power(-r.ratio_ln)
    )?;
    match r.technique2_c {
        Some(c) => writeln!(
            s,
            "N chosen by NCSNv2 Technique 2 with C = {c}, rounded up: these N levels give C = {}",
            sig4(r.levels_c)
        )?,
        None if r.levels_c.is_finite() => {
            writeln!(s, "Technique 2's C of these levels: {}", sig4(r.levels_c))?
        }
        None => writeln!(
            s,
            "Technique 2's C of these levels: beyond float64 (a growth of {})",
            power(-r.ratio_ln)
        )?,
    }
    if let (Some(eps), Some(t), Some(p3), Some(bound), Some(ok)) =
        (r.step_size, r.steps_per_level, r.prop3_ratio, r.step_size_bound, r.step_size_in_bound)
    {
        writeln!(
            s,
            "step size (Technique 4, NCSNv2 convention α_i = ε σ_i²/σ_N², T = {t}): ε = {eps:.6e}, \
             s_T²/σ_i² = {p3:.6}; ALS bound ε < 2σ_N² = {bound:.6e}: {}",
            if ok { "inside" } else { "OUTSIDE" }
        )?;
    }
    if let Some(cas) = &r.cas {
        writeln!(s, "CAS with {} = {}", cas.rule, cas.value)?;
    }
    write!(s, "{:>6}  {:>14}", "i", "sigma")?;
    if r.rule.is_some() {
        write!(s, "  {:>12}  {:>12}", "eta", "beta")?;
    }
    writeln!(s)?;
    let Some(schedule) = &r.schedule else { return Ok(()) };
    for i in 0..r.levels {
        write!(s, "{:>6}  {:>14.6e}", i + 1, schedule.sigma(i).unwrap_or(f64::NAN))?;
        if let Some(rule) = r.rule {
            match params::cas_step(schedule, rule, i) {
                Ok(st) if i + 1 < r.levels => write!(s, "  {:>12.9}  {:>12.9}", st.eta, st.beta)?,
                _ => write!(s, "  {:>12}  {:>12}", "(denoise)", "")?,
            }
        }
        writeln!(s)?;
    }
    Ok(())
}

/// e^ln printed to 9 decimals where that shows it, else in scientific form from its logarithm
/// (a growth of 10³⁰ is not 34 digits, and 10⁶⁰⁰, beyond float64, is still printed).
fn power(ln: f64) -> String {
    let v = ln.exp();
    if (1e-3..1e6).contains(&v) {
        return format!("{v:.9}");
    }
    let log10 = ln / std::f64::consts::LN_10;
    let mut exponent = log10.floor();
    let mut mantissa = 10f64.powf(log10 - exponent);
    if format!("{mantissa:.9}").starts_with("10") {
        (mantissa, exponent) = (mantissa / 10.0, exponent + 1.0);
    }
    format!("{mantissa:.9}e{exponent}")
}
