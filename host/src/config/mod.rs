//! From flags to a validated run: [`RunSpec`] (what `sample`'s flags, or one `tune` cell, ask
//! for) → [`RunConfig`] (the data, the schedule, the plan, the start; every value checked, by the
//! core wherever the core knows the rule) → executed by [`crate::exec`] → written by the commands.
//! The schedule ([`schedule`]), the Langevin step ([`step`]) and the plan are built by one helper
//! each; which sampler takes which parameter is the core's [`SamplerKind`]'s business.

pub mod diameter;
pub mod schedule;
pub mod step;

use anneal_core::samplers::any::{AnySampler, SamplerKind, SamplerParams};
use anneal_core::samplers::pc::Order;
use anneal_core::{EtaRule, GeometricOrSingle, Plan, Schedule};
use serde::Serialize;

use std::sync::Arc;

use crate::cli::{
    DataFlags, InitKind, LevelFlags, OrderKind, RunFlags, SamplerArg, SamplerOptions, ScoreFlags,
    SigmaFlags, SnrNormsKind, StepFlags,
};
use crate::error::{UsageError, sig4};
use crate::io::data::Dataset;
use crate::score::batch_score::Mixture;
use crate::score::network::{Conventions, Network, NoiseInputKind};
use crate::score::source::{MixtureSource, ScoreSource};
use anneal_core::Num;

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
    /// The score network, if the score is not the exact mixture score.
    pub network: Option<&'a Arc<Network>>,
    /// Run a level-index network on its trained σ's (`--snap-levels`).
    pub snap_levels: bool,
}

impl<'a> RunSpec<'a> {
    /// What `sample`'s flags ask for (`flags`: their JSON, for config.json).
    pub fn from_sample(
        a: &'a crate::cli::SampleArgs,
        flags: &'a serde_json::Value,
        network: Option<&'a Arc<Network>>,
    ) -> Self {
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
            network,
            snap_levels: a.score.snap_levels,
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
    /// The index of the first sample: the samples are `first..first + n` (a shard of a larger
    /// set; 0 otherwise). Each sample's noise is keyed by its index, so a shard's samples are
    /// those rows of the whole set.
    pub first: usize,
    /// Seed.
    pub seed: u64,
    /// Samples per batch (CPU).
    pub batch: usize,
    /// The score network (None: the exact mixture score).
    pub network: Option<Arc<Network>>,
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
    /// The score network, if any.
    pub score: Option<ScoreRecord>,
    /// Proposition 3's foresight for Langevin steps (ALS, Langevin, PC's Langevin corrector):
    /// the consistency trace predicted from the coefficients on one-point data.
    pub foresight: Option<Foresight>,
    /// Warnings printed with the run.
    pub warnings: Vec<String>,
}

/// The largest σ_eff/σ_i that [`anneal_core::foresight::predicted_trace`] predicts, and where.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Foresight {
    /// The largest predicted σ_eff/σ_i.
    pub max_ratio: f64,
    /// Its level (1-based).
    pub level: usize,
    /// σ_i there.
    pub sigma: f64,
    /// The predicted ratio at the last traced level.
    pub final_ratio: f64,
    /// Above this the run is warned about ([`FORESIGHT_THRESHOLD`]).
    pub threshold: f64,
}

/// A predicted σ_eff/σ_i above this at any level draws a warning: half again the noise the
/// level should have (a consistent plan gives 1; Technique 4's steps stay near it: 1.14 at the
/// end of σ 50 → 0.01 in 10 levels with T = 5, where its growth is 2.6 per level).
pub const FORESIGHT_THRESHOLD: f64 = 1.5;

/// Proposition 3 carried through the plan, for the samplers whose steps are plain Langevin steps
/// of a chosen size (their consistency is not built in, unlike CAS's).
fn foresight(
    kind: SamplerKind,
    snr: bool,
    plan: &AnySampler<GeometricOrSingle>,
    tau: f64,
    sigma_start: f64,
) -> Option<Foresight> {
    let langevin = matches!(kind, SamplerKind::Als | SamplerKind::Langevin)
        || (kind == SamplerKind::Pc && !snr);
    if !langevin {
        return None;
    }
    let mut f = Foresight {
        max_ratio: 0.0,
        level: 0,
        sigma: 0.0,
        final_ratio: 0.0,
        threshold: FORESIGHT_THRESHOLD,
    };
    anneal_core::foresight::predicted_trace(plan, tau, sigma_start, |level, sigma, ratio| {
        if ratio > f.max_ratio {
            (f.max_ratio, f.level, f.sigma) = (ratio, level + 1, sigma);
        }
        f.final_ratio = ratio;
    });
    (f.level > 0).then_some(f)
}

/// The score network of a run, for config.json.
#[derive(Debug, Clone, Serialize)]
pub struct ScoreRecord {
    /// The model file.
    pub model: String,
    /// The runtime that ran it.
    pub runtime: String,
    /// Its conventions, as declared.
    pub conventions: Conventions,
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
    crate::io::data::load(&flags.name(None)).map_err(UsageError::flag)
}

/// The largest τ and σ_1 a run takes: samples are float32 (and their squares must stay finite
/// in the f64 metrics), so a tenth of float32's largest value.
pub const MAX_WIDTH: f64 = f32::MAX as f64 / 10.0;

/// The smallest σ_N a run takes: σ_N² must be a normal float64 (η = ε_b/σ_N², α_i = εσ_i²/σ_N²).
pub fn min_sigma() -> f64 {
    f64::MIN_POSITIVE.sqrt()
}

/// --tau as given, else `data`'s default; finite, ≥ 0 and ≤ [`MAX_WIDTH`].
pub fn resolve_tau(given: Option<f64>, data: &Dataset) -> Result<f64, UsageError> {
    let tau = given.unwrap_or(data.default_tau);
    if !(tau.is_finite() && (0.0..=MAX_WIDTH).contains(&tau)) {
        return Err(UsageError::flag(format!(
            "--tau = {} is out of range: must be finite, ≥ 0 and ≤ {} (samples are float32)",
            Num(tau),
            sig4(MAX_WIDTH)
        )));
    }
    Ok(tau)
}

/// σ_1 ≤ [`MAX_WIDTH`] and σ_N ≥ [`min_sigma`] (the core checks the rest: finite, > 0,
/// decreasing).
fn check_sigma_range(sigma_max: f64, source: &str, sigma_min: f64) -> Result<(), UsageError> {
    if sigma_max > MAX_WIDTH {
        let how = if source == "given" { String::new() } else { format!(" (by {source})") };
        return Err(UsageError::flag(format!(
            "--sigma-max = {}{how} is out of range: must be ≤ {} (samples are float32); rescale \
             the data or give a smaller --sigma-max",
            Num(sigma_max),
            sig4(MAX_WIDTH)
        )));
    }
    if sigma_min > 0.0 && sigma_min < min_sigma() {
        return Err(UsageError::flag(format!(
            "--sigma-min = {} is out of range: must be ≥ {} (σ_N² must be a normal float64)",
            Num(sigma_min),
            sig4(min_sigma())
        )));
    }
    Ok(())
}

/// Loads `--score`'s network, if any (its conventions from its sidecar and the flags).
pub fn load_network(score: &ScoreFlags) -> Result<Option<Arc<Network>>, UsageError> {
    let Some(path) = &score.score else {
        if score.score_input.is_some() || score.score_output.is_some() || score.snap_levels {
            return Err(UsageError::flag(
                "--score-input, --score-output and --snap-levels apply to a network: add --score MODEL.onnx",
            ));
        }
        return Ok(None);
    };
    if !path.is_file() && crate::score::network::built_in(path).is_none() {
        return Err(UsageError::flag(format!(
            "--score = {}: no such file (the shipped network is --score digits)",
            path.display()
        )));
    }
    let conv = Conventions::resolve(path, score.score_input, score.score_output)?;
    if score.snap_levels && conv.input != NoiseInputKind::Level {
        return Err(UsageError::flag(format!(
            "--snap-levels applies to level-index networks; --score = {} takes {} as its noise input",
            path.display(),
            conv.input.name()
        )));
    }
    Ok(Some(Arc::new(Network::load(path, conv, score.runtime)?)))
}

/// Loads `--score`'s network, if any, and `--data` (by default the network's declared data);
/// refuses a network whose samples do not have --data's dimension.
pub fn load_source(
    data: &DataFlags,
    score: &ScoreFlags,
) -> Result<(Dataset, Option<Arc<Network>>), UsageError> {
    let Some(net) = load_network(score)? else { return Ok((load_data(data)?, None)) };
    let name = data.name(net.conventions().data.as_deref());
    let set = crate::io::data::load(&name).map_err(UsageError::flag)?;
    if set.dim != net.dim() {
        return Err(UsageError::flag(format!(
            "--score = {}: the network's samples have shape {:?} (D = {}) but --data = {name} has \
             D = {}; give the --data it was trained on",
            net.path().display(),
            net.shape(),
            net.dim(),
            set.dim
        )));
    }
    Ok((set, Some(net)))
}

impl RunConfig {
    /// Validates `spec` against `data` and builds the plan.
    pub fn new(spec: &RunSpec<'_>, data: Dataset) -> Result<RunConfig, UsageError> {
        let tau = resolve_tau(spec.tau, &data)?;
        check_counts(spec)?;
        let kind = SamplerKind::from(spec.sampler);
        // Technique 1 runs on --threads threads, as the run does (not on rayon's global pool,
        // one thread per core), unless this is already a pool's worker (a tune cell).
        let technique1 = || schedule::sigma_max(spec.sigma, &data);
        let large = data.components() >= diameter::PLAIN_BELOW && spec.sigma.sigma_max == "auto";
        let pool = (large && rayon::current_thread_index().is_none())
            .then(|| crate::exec::pool(spec.run.threads).ok())
            .flatten();
        let (sigma_max, sigma_max_source) = match pool {
            Some(pool) => pool.install(technique1)?,
            None => technique1()?,
        };
        check_sigma_range(sigma_max, sigma_max_source, spec.sigma.sigma_min)?;
        let mut sched =
            schedule::build(kind, spec.levels, sigma_max, spec.sigma.sigma_min, data.dim)?;
        let mut warnings = Vec::new();
        if let Some(net) = spec.network {
            if spec.snap_levels {
                sched = snap_levels(kind, net, &sched, data.dim)?;
            }
            if let Some([lo, hi]) = net.conventions().trained_sigma
                && (sched.sigma_max() > hi * (1.0 + 1e-9) || sched.sigma_min() < lo * (1.0 - 1e-9))
            {
                warnings.push(format!(
                    "the schedule's σ ∈ [{}, {}] leaves the network's trained range [{lo}, {hi}]: \
                     its scores there are extrapolated",
                    sched.sigma_min(),
                    sched.sigma_max()
                ));
            }
        }
        let o = spec.options;
        let t = match o.steps_per_level {
            Some(0) => {
                return Err(UsageError::flag("--steps-per-level = 0 is out of range: must be ≥ 1"));
            }
            Some(t) => t,
            None => SamplerParams::DEFAULT.steps_per_level,
        };
        if o.snr.is_some() && o.snr_norms() == SnrNormsKind::Grouped {
            check_snr_group(o.snr_group(), spec.run.batch)?;
        }
        let (step, eps_source) = step::langevin(kind, spec.step.eps, o, &sched, t)?;
        let (eta, cas) = eta_rule(kind, spec.step)?;
        let params = SamplerParams {
            eta,
            step,
            steps_per_level: t,
            snr: o.snr.map(|snr| (snr, snr_norms(o.snr_norms(), o.snr_group()))),
            corrector_steps: o.corrector_steps(),
            order: match o.order() {
                OrderKind::PredictorFirst => Order::PredictorFirst,
                OrderKind::CorrectorFirst => Order::CorrectorFirst,
            },
            lambda: o.lambda(),
            friction: o.friction(),
            denoise: o.denoise(),
            tau,
        };
        let hint = if step.is_some() && eps_source == Some("given") {
            " (Technique 4 gives a stable default; omit --eps to use it)"
        } else {
            ""
        };
        let plan = AnySampler::new(kind, sched, &params).map_err(|e| {
            let ncsn = o.step_convention == crate::cli::ConventionKind::Ncsn;
            UsageError::from_plan_refusal(e, hint, ncsn, &sched)
        })?;
        let foresight = foresight(kind, o.snr.is_some(), &plan, tau, sched.sigma_max());
        if let Some(f) = foresight.filter(|f| f.max_ratio > FORESIGHT_THRESHOLD) {
            warnings.push(format!(
                "every step is stable but the plan is not consistent: NCSNv2's Proposition 3 \
                 predicts σ_eff/σ_i = {} at level {} of {} (σ = {}; {} at the last level; \
                 one-point data, threshold {FORESIGHT_THRESHOLD}), so the samples will keep too \
                 much noise — omit --eps for Technique 4's step, or raise --steps-per-level",
                sig4(f.max_ratio),
                f.level,
                sched.levels(),
                sig4(f.sigma),
                sig4(f.final_ratio)
            ));
        }
        if let Some(net) = spec.network {
            for k in 0..plan.len() {
                if let Some(st) = plan.step(k) {
                    net.check_sigma(st.sigma)?;
                }
            }
        }
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
            score: spec.network.map(|n| ScoreRecord {
                model: n.path().display().to_string(),
                runtime: n.runtime(),
                conventions: n.conventions().clone(),
            }),
            foresight,
            warnings,
        };
        Ok(RunConfig {
            data,
            tau,
            kind,
            schedule: sched,
            plan,
            init: spec.run.init,
            n: spec.n,
            first: 0,
            seed: spec.seed,
            batch: spec.run.batch,
            network: spec.network.cloned(),
            record,
        })
    }

    /// The threads that have work on the CPU: one batch each at a time.
    pub fn busy_threads(&self) -> usize {
        self.record.threads.min(self.n.div_ceil(self.batch)).max(1)
    }

    /// The score the run samples: the network, or the exact score of the data smoothed by τ.
    pub fn source(&self) -> Box<dyn ScoreSource + '_> {
        match &self.network {
            Some(n) => Box::new(&**n),
            None => Box::new(MixtureSource(Mixture::new(self.data.mixture(self.tau)))),
        }
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

/// `--snap-levels`: the schedule on the trained σ's nearest --sigma-max and --sigma-min and all
/// trained σ's between (a geometric trained list only: the schedule is geometric).
fn snap_levels(
    kind: SamplerKind,
    net: &Network,
    sched: &GeometricOrSingle,
    dim: usize,
) -> Result<GeometricOrSingle, UsageError> {
    let conv = net.conventions();
    let s = conv.sigmas.as_deref().unwrap_or(&[]);
    let nearest = |v: f64| conv.levels_by_distance(v).first().copied().unwrap_or(0);
    let (a, b) = (nearest(sched.sigma_max()), nearest(sched.sigma_min()));
    if s.len() > 2 {
        let r = (s[0] / s[s.len() - 1]).ln() / (s.len() - 1) as f64;
        if let Some(i) = (0..s.len() - 1).find(|&i| ((s[i] / s[i + 1]).ln() - r).abs() > 1e-6 * r) {
            return Err(UsageError::flag(format!(
                "--snap-levels: the network's trained σ's are not geometric (σ[{i}]/σ[{}] = {} \
                 where the list's mean ratio is {}); give --sigma-max, --sigma-min and --levels \
                 on its trained σ's instead",
                i + 1,
                s[i] / s[i + 1],
                r.exp()
            )));
        }
    }
    if b <= a {
        return Err(UsageError::flag(format!(
            "--snap-levels: --sigma-max = {} and --sigma-min = {} snap to the same trained level \
             {a} (σ = {}); widen the range",
            sched.sigma_max(),
            sched.sigma_min(),
            s[a]
        )));
    }
    let levels = LevelFlags { levels: Some(b - a + 1), technique2: false, c: DEFAULT_TECHNIQUE2_C };
    schedule::build(kind, &levels, s[a], s[b], dim)
}

/// Grouped snr norms: groups of ≥ 1 samples, whole groups in every batch (so that a sample's
/// group, and with it the sample, does not depend on the batch size).
fn check_snr_group(group: u32, batch: usize) -> Result<(), UsageError> {
    if group == 0 {
        return Err(UsageError::flag(
            "--snr-group = 0 is out of range: must be ≥ 1 (the default is 256)",
        ));
    }
    if !batch.is_multiple_of(group as usize) {
        return Err(UsageError::flag(format!(
            "--batch = {batch} is not a multiple of --snr-group = {group}: the snr corrector's \
             norms are averaged over groups of {group} samples, which must not straddle batches; \
             use --batch {} (or a multiple of {group}), or a --snr-group that divides {batch}",
            (batch.div_ceil(group as usize) * group as usize).max(group as usize)
        )));
    }
    Ok(())
}

/// n ≥ 1 (and within the noise streams' sample index), batch ≥ 1.
fn check_counts(spec: &RunSpec<'_>) -> Result<(), UsageError> {
    if spec.n == 0 {
        return Err(UsageError::flag("--n = 0 is out of range: must be ≥ 1"));
    }
    if spec.run.batch == 0 {
        return Err(UsageError::flag("--batch = 0 is out of range: must be ≥ 1"));
    }
    if spec.run.threads > crate::exec::MAX_THREADS {
        return Err(UsageError::flag(format!(
            "--threads = {} is out of range: must be ≤ {} (0 = one per core: {} here)",
            spec.run.threads,
            crate::exec::MAX_THREADS,
            std::thread::available_parallelism().map_or(1, |n| n.get())
        )));
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

fn snr_norms(k: SnrNormsKind, group: u32) -> anneal_core::plan::SnrNorms {
    match k {
        SnrNormsKind::Grouped => anneal_core::plan::SnrNorms::Grouped { size: group },
        SnrNormsKind::PerSample => anneal_core::plan::SnrNorms::PerSample,
        SnrNormsKind::BatchMean => anneal_core::plan::SnrNorms::BatchMean,
    }
}

#[cfg(test)]
mod tests;
