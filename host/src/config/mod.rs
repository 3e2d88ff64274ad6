//! From flags to a validated run: [`RunSpec`] (what `sample`'s flags, or one `tune` cell, ask
//! for) → [`RunConfig`] (the data, the schedule, the plan, the start; every value checked, by the
//! core wherever the core knows the rule) → executed by [`crate::exec`] → written by the commands.
//! The schedule ([`schedule`]), the Langevin step ([`step`]) and the plan are built by one helper
//! each; which sampler takes which parameter is the core's [`SamplerKind`]'s business.

pub mod schedule;
pub mod step;

use anneal_core::samplers::any::{AnySampler, SamplerKind, SamplerParams};
use anneal_core::samplers::pc::Order;
use anneal_core::{EtaRule, GeometricOrSingle, Plan, Schedule};
use serde::Serialize;

use crate::cli::{
    DataFlags, InitKind, LevelFlags, OrderKind, RunFlags, SamplerArg, SamplerOptions, SigmaFlags,
    SnrNormsKind, StepFlags,
};
use crate::error::UsageError;
use crate::io::data::Dataset;

pub use crate::cli::{DEFAULT_EPS_C, DEFAULT_LEVELS, DEFAULT_TECHNIQUE2_C};

/// What one run is asked to do: `sample`'s flags, or one cell of `tune` (its own levels, step
/// size and seed; everything else shared by the sweep).
#[derive(Debug, Clone, Copy)]
pub struct RunSpec<'a> {
    /// τ as given.
    pub tau: Option<f64>,
    /// The sampler.
    pub sampler: SamplerArg,
    /// σ_1 and σ_N.
    pub sigma: &'a SigmaFlags,
    /// N, or Technique 2.
    pub levels: &'a LevelFlags,
    /// εc, ε_b or ε, if given.
    pub step: &'a StepFlags,
    /// The sampler's other parameters.
    pub options: &'a SamplerOptions,
    /// Start and work split.
    pub run: &'a RunFlags,
    /// Samples.
    pub n: usize,
    /// Seed.
    pub seed: u64,
    /// The flags to record in config.json.
    pub flags: &'a serde_json::Value,
}

impl<'a> RunSpec<'a> {
    /// What `sample`'s flags ask for (`flags`: their JSON, for config.json).
    pub fn from_sample(a: &'a crate::cli::SampleArgs, flags: &'a serde_json::Value) -> Self {
        RunSpec {
            tau: a.data.tau,
            sampler: a.sampler,
            sigma: &a.sigma,
            levels: &a.levels,
            step: &a.step,
            options: &a.options,
            run: &a.run,
            n: a.n,
            seed: a.seed,
            flags,
        }
    }
}

/// A validated run.
pub struct RunConfig {
    /// The ground truth.
    pub data: Dataset,
    /// τ used.
    pub tau: f64,
    /// The sampler.
    pub kind: SamplerKind,
    /// The schedule.
    pub schedule: GeometricOrSingle,
    /// The plan.
    pub plan: AnySampler<GeometricOrSingle>,
    /// The start.
    pub init: InitKind,
    /// Samples.
    pub n: usize,
    /// Seed.
    pub seed: u64,
    /// Samples per batch (CPU).
    pub batch: usize,
    /// What reproduces the run (config.json).
    pub record: Record,
}

/// Everything that reproduces a run (written to config.json).
#[derive(Debug, Clone, Serialize)]
pub struct Record {
    /// anneal's version.
    pub version: &'static str,
    /// The flags as given (after defaults).
    pub flags: serde_json::Value,
    /// The dataset's name, dimension and components.
    pub data: DataInfo,
    /// τ used.
    pub tau: f64,
    /// σ_1 as used.
    pub sigma_max: f64,
    /// σ_N.
    pub sigma_min: f64,
    /// N.
    pub levels: usize,
    /// How σ_1 was chosen.
    pub sigma_max_source: &'static str,
    /// The Langevin ε used (NCSNv2 convention), if any.
    pub eps_ncsnv2: Option<f64>,
    /// How ε was chosen.
    pub eps_source: Option<&'static str>,
    /// T used.
    pub steps_per_level: Option<u32>,
    /// CAS's εc or ε_b used.
    pub cas: Option<(String, f64)>,
    /// Plan steps (score evaluations per sample).
    pub plan_steps: usize,
    /// Threads used.
    pub threads: usize,
    /// The device used ("cpu", or the CUDA device's name); set when the run starts.
    pub device: String,
}

/// The dataset, for config.json.
#[derive(Debug, Clone, Serialize)]
pub struct DataInfo {
    /// Name.
    pub name: String,
    /// D.
    pub dim: usize,
    /// K.
    pub components: usize,
}

/// Loads `--data`.
pub fn load_data(flags: &DataFlags) -> Result<Dataset, UsageError> {
    crate::io::data::load(&flags.data).map_err(UsageError::flag)
}

impl RunConfig {
    /// Validates `spec` against `data` and builds the plan.
    pub fn new(spec: &RunSpec<'_>, data: Dataset) -> Result<RunConfig, UsageError> {
        let tau = spec.tau.unwrap_or(data.default_tau);
        if !(tau.is_finite() && tau >= 0.0) {
            return Err(UsageError::flag(format!(
                "--tau = {tau} is out of range: must be finite and ≥ 0"
            )));
        }
        check_counts(spec)?;
        let kind = SamplerKind::from(spec.sampler);
        let (sigma_max, sigma_max_source) = schedule::sigma_max(spec.sigma, &data)?;
        let sched = schedule::build(kind, spec.levels, sigma_max, spec.sigma.sigma_min, data.dim)?;
        let o = spec.options;
        let t = match o.steps_per_level {
            Some(0) => {
                return Err(UsageError::flag("--steps-per-level = 0 is out of range: must be ≥ 1"));
            }
            Some(t) => t,
            None => SamplerParams::DEFAULT.steps_per_level,
        };
        let (step, eps_source) = step::langevin(kind, spec.step.eps, o, &sched, t)?;
        let (eta, cas) = eta_rule(kind, spec.step)?;
        let params = SamplerParams {
            eta,
            step,
            steps_per_level: t,
            snr: o.snr.map(|snr| (snr, snr_norms(o.snr_norms))),
            corrector_steps: o.corrector_steps,
            order: match o.order {
                OrderKind::PredictorFirst => Order::PredictorFirst,
                OrderKind::CorrectorFirst => Order::CorrectorFirst,
            },
            lambda: o.lambda,
            friction: o.friction,
            denoise: o.denoise,
            tau,
        };
        let hint = if step.is_some() && eps_source == Some("given") {
            " (Technique 4 gives a stable default; omit --eps to use it)"
        } else {
            ""
        };
        let plan =
            AnySampler::new(kind, sched, &params).map_err(|e| UsageError::from_core(e, hint))?;
        let threads =
            if spec.run.threads == 0 { rayon::current_num_threads() } else { spec.run.threads };
        let record = Record {
            version: env!("CARGO_PKG_VERSION"),
            flags: spec.flags.clone(),
            data: DataInfo {
                name: data.name.clone(),
                dim: data.dim,
                components: data.components(),
            },
            tau,
            sigma_max: sched.sigma_max(),
            sigma_min: sched.sigma_min(),
            levels: sched.levels(),
            sigma_max_source,
            eps_ncsnv2: step.map(|s| s.eps_ncsnv2()),
            eps_source,
            steps_per_level: kind.uses_steps_per_level().then_some(t),
            cas,
            plan_steps: plan.len(),
            threads,
            device: "cpu".into(),
        };
        Ok(RunConfig {
            data,
            tau,
            kind,
            schedule: sched,
            plan,
            init: spec.run.init,
            n: spec.n,
            seed: spec.seed,
            batch: spec.run.batch,
            record,
        })
    }

    /// What the reports compare the samples with.
    pub fn truth(&self) -> crate::report::Truth<'_> {
        crate::report::Truth {
            data: &self.data,
            tau: self.tau,
            sigma_min: self.schedule.sigma_min(),
        }
    }
}

/// n ≥ 1 (and within the noise streams' sample index), batch ≥ 1.
fn check_counts(spec: &RunSpec<'_>) -> Result<(), UsageError> {
    if spec.n == 0 {
        return Err(UsageError::flag("--n = 0 is out of range: must be ≥ 1"));
    }
    if spec.run.batch == 0 {
        return Err(UsageError::flag("--batch = 0 is out of range: must be ≥ 1"));
    }
    if spec.n > u32::MAX as usize {
        return Err(UsageError::flag(format!(
            "--n = {} is out of range: must be ≤ {}",
            spec.n,
            u32::MAX
        )));
    }
    Ok(())
}

/// An η rule and its record in config.json ("eps_c" or "eps_b", and the value).
type EtaChoice = (Option<EtaRule>, Option<(String, f64)>);

/// CAS's η rule from --eps-c / --eps-b (εc = 2 by default), and its record; none for the other
/// samplers (the core refuses one given to them).
fn eta_rule(kind: SamplerKind, step: &StepFlags) -> Result<EtaChoice, UsageError> {
    let (rule, name, value) = match (step.eps_c, step.eps_b) {
        (_, Some(b)) => (EtaRule::eps_b(b)?, "eps_b", b),
        (Some(c), None) => (EtaRule::eps_c(c)?, "eps_c", c),
        (None, None) if kind.takes_eta() => {
            (EtaRule::eps_c(DEFAULT_EPS_C)?, "eps_c", DEFAULT_EPS_C)
        }
        (None, None) => return Ok((None, None)),
    };
    Ok((Some(rule), kind.takes_eta().then(|| (name.to_string(), value))))
}

fn snr_norms(k: SnrNormsKind) -> anneal_core::plan::SnrNorms {
    match k {
        SnrNormsKind::PerSample => anneal_core::plan::SnrNorms::PerSample,
        SnrNormsKind::BatchMean => anneal_core::plan::SnrNorms::BatchMean,
    }
}

#[cfg(test)]
mod tests;
