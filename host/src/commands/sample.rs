//! `anneal sample`: flags → validated configuration (core types do the validation) → plan →
//! batches run in parallel (rayon) with the GEMM score → metrics → files written atomically.

use std::path::Path;
use std::time::Instant;

use anneal_core::noise::{Keyed, Noise};
use anneal_core::plan::{self, AuxInit, Batch, Plan, SnrNorms, Step};
use anneal_core::samplers::als::Als;
use anneal_core::samplers::baoab::{BaoabLimit, Splitting, Underdamped};
use anneal_core::samplers::cas::Cas;
use anneal_core::samplers::noise_denoise::NoiseDenoise;
use anneal_core::samplers::pc::{Corrector, Order, Pc};
use anneal_core::{Error, EtaRule, Geometric, LangevinStep, Ratio, Schedule, StepConvention};
use rayon::prelude::*;
use serde::Serialize;

use crate::cli::{
    ConventionKind, DeviceKind, InitKind, OrderKind, SampleArgs, SamplerKind, SnrNormsKind,
};
use crate::error::UsageError;
use crate::io::data::Dataset;
use crate::score::batch_score::{GemmMixture, Mixture};

/// A geometric schedule, or the single level σ_N (`--levels 1`).
#[derive(Debug, Clone, Copy)]
pub enum Sched {
    /// N ≥ 2 levels.
    Geo(Geometric),
    /// One level.
    One(f64),
}

impl Schedule for Sched {
    fn levels(&self) -> usize {
        match self {
            Sched::Geo(g) => g.levels(),
            Sched::One(_) => 1,
        }
    }
    fn sigma(&self, i: usize) -> Option<f64> {
        match self {
            Sched::Geo(g) => g.sigma(i),
            Sched::One(s) => (i == 0).then_some(*s),
        }
    }
    fn ratio(&self, i: usize) -> Option<Ratio> {
        match self {
            Sched::Geo(g) => g.ratio(i),
            Sched::One(_) => None,
        }
    }
    fn sigma_max(&self) -> f64 {
        match self {
            Sched::Geo(g) => g.sigma_max(),
            Sched::One(s) => *s,
        }
    }
    fn sigma_min(&self) -> f64 {
        match self {
            Sched::Geo(g) => g.sigma_min(),
            Sched::One(s) => *s,
        }
    }
}

/// Any sampler's plan.
pub enum AnyPlan {
    /// CAS.
    Cas(Cas<Sched>),
    /// ALS and single-level Langevin.
    Als(Als<Sched>),
    /// PC.
    Pc(Pc<Sched>),
    /// Noise-denoise.
    NoiseDenoise(NoiseDenoise<Sched>),
    /// BAOAB-limit.
    BaoabLimit(BaoabLimit<Sched>),
    /// BAOAB, OBABO.
    Underdamped(Underdamped<Sched>),
}

impl Plan for AnyPlan {
    fn len(&self) -> usize {
        match self {
            AnyPlan::Cas(p) => p.len(),
            AnyPlan::Als(p) => p.len(),
            AnyPlan::Pc(p) => p.len(),
            AnyPlan::NoiseDenoise(p) => p.len(),
            AnyPlan::BaoabLimit(p) => p.len(),
            AnyPlan::Underdamped(p) => p.len(),
        }
    }
    fn step(&self, k: usize) -> Option<Step> {
        match self {
            AnyPlan::Cas(p) => p.step(k),
            AnyPlan::Als(p) => p.step(k),
            AnyPlan::Pc(p) => p.step(k),
            AnyPlan::NoiseDenoise(p) => p.step(k),
            AnyPlan::BaoabLimit(p) => p.step(k),
            AnyPlan::Underdamped(p) => p.step(k),
        }
    }
    fn aux_init(&self) -> AuxInit {
        match self {
            AnyPlan::BaoabLimit(p) => p.aux_init(),
            AnyPlan::Underdamped(p) => p.aux_init(),
            _ => AuxInit::None,
        }
    }
}

/// Everything that reproduces a run (written to config.json).
#[derive(Debug, Serialize)]
pub struct Config {
    /// anneal's version.
    pub version: &'static str,
    /// The flags as given (after defaults).
    pub flags: serde_json::Value,
    /// The dataset's name, dimension and components.
    pub data: DataInfo,
    /// τ used.
    pub tau: f64,
    /// σ_1 … σ_N as used.
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
#[derive(Debug, Serialize)]
pub struct DataInfo {
    /// Name.
    pub name: String,
    /// D.
    pub dim: usize,
    /// K.
    pub components: usize,
}

/// The configuration and plan of a run.
pub struct Prepared {
    /// The ground truth.
    pub data: Dataset,
    /// τ.
    pub tau: f64,
    /// The schedule.
    pub schedule: Sched,
    /// The plan.
    pub plan: AnyPlan,
    /// For config.json.
    pub config: Config,
}

/// Validates the flags and builds the plan.
pub fn prepare(a: &SampleArgs) -> Result<Prepared, UsageError> {
    let data = crate::io::data::load(&a.data).map_err(UsageError::flag)?;
    let tau = a.tau.unwrap_or(data.default_tau);
    if !(tau.is_finite() && tau >= 0.0) {
        return Err(UsageError::flag(format!(
            "--tau = {tau} is out of range: must be finite and ≥ 0"
        )));
    }
    if a.n == 0 {
        return Err(UsageError::flag("--n = 0 is out of range: must be ≥ 1"));
    }
    if a.batch == 0 {
        return Err(UsageError::flag("--batch = 0 is out of range: must be ≥ 1"));
    }
    if a.n > u32::MAX as usize {
        return Err(UsageError::flag(format!(
            "--n = {} is out of range: must be ≤ {}",
            a.n,
            u32::MAX
        )));
    }
    let (sigma_max, sigma_max_source) = if a.sigma_max == "auto" {
        let s = anneal_core::ncsnv2::max_pairwise_distance(&data.means, data.dim).map_err(|e| {
            UsageError::flag(format!(
                "--sigma-max = auto needs at least two distinct data points: {e}"
            ))
        })?;
        if s <= 0.0 || s.is_nan() {
            return Err(UsageError::flag(
                "--sigma-max = auto: all data points coincide; give --sigma-max",
            ));
        }
        (s, "Technique 1 (largest pairwise distance of the data)")
    } else {
        let s: f64 = a.sigma_max.parse().map_err(|_| {
            UsageError::flag(format!("--sigma-max = {} is not a number or `auto`", a.sigma_max))
        })?;
        (s, "given")
    };
    let uses_steps = !matches!(a.sampler, SamplerKind::Cas | SamplerKind::Pc);
    let single_ok = uses_steps;
    let schedule = match (a.levels, a.technique2) {
        (Some(1), _) if single_ok => {
            anneal_core::Borrowed::single(&[a.sigma_min]).map_err(UsageError::from)?;
            Sched::One(a.sigma_min)
        }
        (Some(1), _) => {
            return Err(UsageError::flag(format!(
                "--levels = 1 is out of range for --sampler {:?}: must be ≥ 2 (one level is for the \
                 single-level samplers)",
                a.sampler
            )
            .to_lowercase()));
        }
        (_, true) => {
            let g =
                anneal_core::ncsnv2::technique2_growth(data.dim, a.c).map_err(UsageError::from)?;
            Sched::Geo(Geometric::with_growth(sigma_max, a.sigma_min, g).map_err(UsageError::from)?)
        }
        (n, false) => Sched::Geo(
            Geometric::new(sigma_max, a.sigma_min, n.unwrap_or(DEFAULT_LEVELS))
                .map_err(UsageError::from)?,
        ),
    };
    let t = match a.steps_per_level {
        Some(0) => {
            return Err(UsageError::flag("--steps-per-level = 0 is out of range: must be ≥ 1"));
        }
        Some(t) => t,
        None => DEFAULT_STEPS_PER_LEVEL,
    };
    // The Langevin ε, for the samplers that take one: given, or Technique 4 for (schedule, T).
    let needs_eps = match a.sampler {
        SamplerKind::Cas | SamplerKind::NoiseDenoise => false,
        SamplerKind::Pc => a.snr.is_none(),
        _ => true,
    };
    let (step, eps_source) = match (a.eps, needs_eps) {
        (_, false) => (None, None),
        (Some(e), true) => {
            let conv = match a.step_convention {
                ConventionKind::Ncsnv2 => StepConvention::Ncsnv2,
                ConventionKind::Ncsn => StepConvention::Ncsn,
            };
            (Some(LangevinStep::new(e, conv).map_err(UsageError::from)?), Some("given"))
        }
        (None, true) => {
            let steps = if a.sampler == SamplerKind::Pc { a.corrector_steps.max(1) } else { t };
            let Sched::Geo(g) = schedule else {
                return Err(UsageError::flag(
                    "--eps is required with --levels 1 (Technique 4 needs a schedule)",
                ));
            };
            let t4 = anneal_core::ncsnv2::technique4_eps(
                g.sigma_min(),
                g.common_ratio().growth(),
                steps,
            )
            .map_err(UsageError::from)?;
            (
                Some(LangevinStep::new(t4.eps, StepConvention::Ncsnv2).map_err(UsageError::from)?),
                Some("Technique 4"),
            )
        }
    };
    if !needs_eps && a.eps.is_some() {
        return Err(UsageError::flag(
            format!(
                "--eps does not apply to --sampler {:?}{}",
                a.sampler,
                if a.sampler == SamplerKind::Pc { " with --snr" } else { "" }
            )
            .to_lowercase(),
        ));
    }
    let eps_used = step.map(|s| s.eps_ncsnv2());
    // `step` is Some exactly for the samplers that take one (needs_eps above).
    let need_step =
        || step.ok_or_else(|| UsageError::flag(format!("--sampler {:?} needs --eps", a.sampler)));
    let hint = " (Technique 4 gives a stable default; omit --eps to use it)";
    let mut cas = None;
    let plan = match a.sampler {
        SamplerKind::Cas => {
            let rule = match (a.eps_c, a.eps_b) {
                (_, Some(b)) => {
                    cas = Some(("eps_b".to_string(), b));
                    EtaRule::eps_b(b)
                }
                (c, None) => {
                    let c = c.unwrap_or(DEFAULT_EPS_C);
                    cas = Some(("eps_c".to_string(), c));
                    EtaRule::eps_c(c)
                }
            }
            .map_err(UsageError::from)?;
            AnyPlan::Cas(Cas::new(schedule, rule, a.denoise).map_err(UsageError::from)?)
        }
        SamplerKind::Als | SamplerKind::Langevin => {
            let denoise = a.denoise && a.sampler == SamplerKind::Als;
            AnyPlan::Als(
                Als::new(schedule, need_step()?, t, denoise, tau)
                    .map_err(|e| UsageError::from_core(e, hint))?,
            )
        }
        SamplerKind::Pc => {
            let corrector = match a.snr {
                Some(snr) => {
                    let norms = match a.snr_norms {
                        SnrNormsKind::PerSample => SnrNorms::PerSample,
                        SnrNormsKind::BatchMean => SnrNorms::BatchMean,
                    };
                    Corrector::Snr { snr, norms }
                }
                None => Corrector::Langevin(need_step()?),
            };
            let order = match a.order {
                OrderKind::PredictorFirst => Order::PredictorFirst,
                OrderKind::CorrectorFirst => Order::CorrectorFirst,
            };
            AnyPlan::Pc(
                Pc::new(schedule, corrector, a.corrector_steps, order, a.denoise, tau)
                    .map_err(|e| UsageError::from_core(e, hint))?,
            )
        }
        SamplerKind::NoiseDenoise => AnyPlan::NoiseDenoise(
            NoiseDenoise::new(schedule, a.lambda, t).map_err(UsageError::from)?,
        ),
        SamplerKind::BaoabLimit => AnyPlan::BaoabLimit(
            BaoabLimit::new(schedule, need_step()?, t, tau)
                .map_err(|e| UsageError::from_core(e, hint))?,
        ),
        SamplerKind::Baoab | SamplerKind::Obabo => {
            let split =
                if a.sampler == SamplerKind::Baoab { Splitting::Baoab } else { Splitting::Obabo };
            AnyPlan::Underdamped(
                Underdamped::new(schedule, need_step()?, a.friction, split, t, tau)
                    .map_err(|e| UsageError::from_core(e, hint))?,
            )
        }
    };
    if a.sampler != SamplerKind::Cas && (a.eps_c.is_some() || a.eps_b.is_some()) {
        return Err(UsageError::flag(
            format!("--eps-c/--eps-b apply to --sampler cas, not {:?}", a.sampler).to_lowercase(),
        ));
    }
    let threads = if a.threads == 0 { rayon::current_num_threads() } else { a.threads };
    let config = Config {
        version: env!("CARGO_PKG_VERSION"),
        flags: serde_json::to_value(a).unwrap_or(serde_json::Value::Null),
        data: DataInfo { name: data.name.clone(), dim: data.dim, components: data.components() },
        tau,
        sigma_max: schedule.sigma_max(),
        sigma_min: schedule.sigma_min(),
        levels: schedule.levels(),
        sigma_max_source,
        eps_ncsnv2: eps_used,
        eps_source,
        steps_per_level: uses_steps.then_some(t),
        cas,
        plan_steps: plan.len(),
        threads,
        device: "cpu".into(),
    };
    Ok(Prepared { data, tau, schedule, plan, config })
}

/// Levels when neither --levels nor --technique2 is given (README, "Defaults").
pub const DEFAULT_LEVELS: usize = 100;
/// T when --steps-per-level is not given (README, "Defaults": ALS needs ~100 steps per level
/// with Technique 4's ε to move mass between modes).
pub const DEFAULT_STEPS_PER_LEVEL: u32 = 100;
/// εc when CAS is run without --eps-c/--eps-b.
pub const DEFAULT_EPS_C: f64 = 2.0;

/// Runs the plan for samples `0..n` in batches of `batch`, in parallel; returns the n × D samples.
/// The consistency trace: per level i, σ_i and σ_eff(i) = RMS over samples of
/// ‖σ_i² s(x_i, σ_i)‖/√D, where x_i is the state at the end of the steps that leave it at σ_i.
#[derive(Debug, Clone, Serialize)]
pub struct Trace {
    /// The traced levels i (1-based).
    pub level: Vec<usize>,
    /// σ_i of each traced level (in schedule order).
    pub sigma: Vec<f64>,
    /// σ_eff(i).
    pub sigma_eff: Vec<f64>,
}

impl Trace {
    /// trace.csv.
    pub fn csv(&self) -> String {
        let mut s = String::from("level,sigma,sigma_eff,ratio\n");
        for ((i, a), b) in self.level.iter().zip(&self.sigma).zip(&self.sigma_eff) {
            s.push_str(&format!("{i},{a},{b},{}\n", b / a));
        }
        s
    }
}

/// What the initialisations need from the data: the weighted mean (normal) and the widened
/// bounding box (uniform).
struct Start {
    mean: Vec<f32>,
    lo: f64,
    hi: f64,
}

impl Start {
    fn new(p: &Prepared) -> Self {
        let d = p.data.dim;
        let mean: Vec<f32> = (0..d)
            .map(|j| {
                p.data
                    .means
                    .chunks_exact(d)
                    .zip(&p.data.weights)
                    .map(|(m, w)| m[j] as f64 * w)
                    .sum::<f64>() as f32
            })
            .collect();
        let (lo, hi) =
            p.data.means.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v as f64), hi.max(v as f64))
            });
        let margin = 3.0 * p.tau.max(p.schedule.sigma_min());
        Start { mean, lo: lo - margin, hi: hi + margin }
    }

    /// The initial states of samples `first..first + count` (a pure function of the sample
    /// index and the seed, like every draw).
    fn rows(
        &self,
        p: &Prepared,
        first: usize,
        count: usize,
        seed: u64,
        init: InitKind,
    ) -> Result<Vec<f32>, Error> {
        let d = p.data.dim;
        let mut x = vec![0.0f32; count * d];
        let mut noise = Keyed::new(seed);
        match init {
            InitKind::Normal => {
                plan::init_normal(&mut noise, first as u64, d, p.schedule.sigma_max(), &mut x)?;
                for row in x.chunks_exact_mut(d) {
                    row.iter_mut().zip(&self.mean).for_each(|(v, m)| *v += m);
                }
            }
            InitKind::Uniform => {
                plan::init_uniform(&mut noise, first as u64, d, self.lo, self.hi, &mut x)?
            }
            InitKind::Data => {
                let s1 = (p.tau * p.tau + p.schedule.sigma_max().powi(2)).sqrt();
                plan::init_normal(&mut noise, first as u64, d, s1, &mut x)?;
                let mut u = [0.0f64; 1];
                for (j, row) in x.chunks_exact_mut(d).enumerate() {
                    noise.uniforms((first + j) as u64, anneal_core::noise::Stream::AuxInit, &mut u);
                    let k = crate::report::metrics::pick_component(&p.data.weights, u[0]);
                    row.iter_mut()
                        .zip(&p.data.means[k * d..(k + 1) * d])
                        .for_each(|(v, m)| *v += m);
                }
            }
        }
        Ok(x)
    }
}

/// Samples `0..n` on a CUDA device, all rows at once (the device splits them only when its
/// scratch memory asks for it); the initial states are the CPU's.
pub fn sample_cuda(
    p: &Prepared,
    dev: &anneal_gpu::Device,
    n: usize,
    seed: u64,
    init: InitKind,
    progress: &indicatif::ProgressBar,
) -> anyhow::Result<(Vec<f32>, anneal_gpu::RunStats)> {
    let start = Start::new(p);
    // The default start is drawn on the device (the same keyed stream); others on the host.
    let (mut x, from) = if init == InitKind::Normal {
        let from = anneal_gpu::Start::Normal { center: &start.mean, sigma: p.schedule.sigma_max() };
        (vec![0.0f32; n * p.data.dim], from)
    } else {
        let x = start
            .rows(p, 0, n, seed, init)
            .map_err(|e| anyhow::anyhow!("initialisation failed: {e}"))?;
        (x, anneal_gpu::Start::Given)
    };
    let mix = anneal_gpu::Mixture {
        means: &p.data.means,
        dim: p.data.dim,
        weights: &p.data.weights,
        tau: p.tau,
    };
    let mut report = |row_steps: u64| progress.inc(row_steps);
    match dev.run_plan_from(&p.plan, &mix, seed, 0, from, &mut x, &mut report) {
        Ok(stats) => Ok((x, stats)),
        Err(anneal_gpu::Error::Core(e @ Error::NonFinite { .. })) => {
            anyhow::bail!("sampling stopped on {}: {e}; nothing was written", dev.describe())
        }
        Err(e) => anyhow::bail!("sampling on {} failed: {e}", dev.describe()),
    }
}

/// Runs the plan for samples `0..n` in batches of `batch`, in parallel; returns the n × D samples
/// and, with `trace`, the consistency trace.
pub fn sample(
    p: &Prepared,
    n: usize,
    batch: usize,
    seed: u64,
    init: InitKind,
    progress: &indicatif::ProgressBar,
    trace: bool,
) -> anyhow::Result<(Vec<f32>, Option<Trace>)> {
    let levels = p.schedule.levels();
    let d = p.data.dim;
    let start = Start::new(p);
    let starts: Vec<usize> = (0..n).step_by(batch).collect();
    // ln w, ‖μ‖² and the packed means, once for all batches.
    let mix = Mixture::new(&p.data.means, d, &p.data.weights, p.tau);
    type BatchOut = (Vec<f32>, Vec<f64>);
    let results: Vec<Result<BatchOut, Error>> = starts
        .par_iter()
        .map(|&first| {
            let count = batch.min(n - first);
            let len = count * d;
            let mut x = start.rows(p, first, count, seed, init)?;
            let (mut aux, mut s, mut xi, mut pt) =
                (vec![0.0f32; len], vec![0.0f32; len], vec![0.0f32; len], vec![0.0f32; len]);
            let noise = Keyed::new(seed);
            let mut score = GemmMixture::new(&mix);
            let batch = Batch {
                dim: d,
                first_sample: first as u64,
                x: &mut x,
                aux: &mut aux,
                score: &mut s,
                noise: &mut xi,
                point: &mut pt,
            };
            // The trace scores the state where it leaves a level: after a step whose successor
            // puts the state at another noise level.
            let mut sumsq = vec![0.0f64; if trace { levels } else { 0 }];
            let mut trace_score = trace.then(|| GemmMixture::new(&mix));
            let mut s_trace = if trace { vec![0.0f32; len] } else { Vec::new() };
            let mut obs = |k: usize, st: &Step, xs: &[f32]| {
                progress.inc(1);
                let Some(ts) = trace_score.as_mut() else { return };
                let last_of_level = p.plan.step(k + 1).is_none_or(|nx| {
                    nx.level_after != st.level_after || nx.sigma_after != st.sigma_after
                });
                if st.sigma_after > 0.0 && last_of_level {
                    let sig = st.sigma_after;
                    if anneal_core::BatchScore::score_batch(ts, xs, sig, &mut s_trace).is_ok() {
                        let s2: f64 = s_trace.iter().map(|&v| (v as f64 * sig * sig).powi(2)).sum();
                        if let Some(acc) = sumsq.get_mut(st.level_after) {
                            *acc += s2;
                        }
                    }
                }
            };
            plan::run(
                &p.plan,
                &mut score,
                &mut crate::score::par_noise::ParKeyed(noise),
                batch,
                None,
                &mut obs,
            )?;
            Ok((x, sumsq))
        })
        .collect();
    let mut out = Vec::with_capacity(n * d);
    let mut total = vec![0.0f64; if trace { levels } else { 0 }];
    for (r, &first) in results.into_iter().zip(&starts) {
        match r {
            Ok((x, sumsq)) => {
                out.extend(x);
                total.iter_mut().zip(sumsq).for_each(|(t, v)| *t += v);
            }
            Err(e @ Error::NonFinite { .. }) => {
                anyhow::bail!(
                    "sampling stopped in the batch starting at sample {first}: {e}; nothing was written"
                )
            }
            Err(e) => anyhow::bail!("sampling failed: {e}"),
        }
    }
    let trace = trace.then(|| {
        // Levels the plan never leaves the state at (ALS's denoised end, CAS's σ_1) are skipped.
        let (mut level, mut sigma, mut sigma_eff) = (Vec::new(), Vec::new(), Vec::new());
        for (i, &t) in total.iter().enumerate() {
            if t > 0.0 {
                level.push(i + 1);
                sigma.push(p.schedule.sigma(i).unwrap_or(f64::NAN));
                sigma_eff.push((t / (n * d) as f64).sqrt());
            }
        }
        Trace { level, sigma, sigma_eff }
    });
    Ok((out, trace))
}

/// Writes `bytes` to `dir/name` through a temporary file and a rename.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, bytes).map_err(|e| anyhow::anyhow!("writing {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, dir.join(name))
        .map_err(|e| anyhow::anyhow!("renaming {}: {e}", tmp.display()))?;
    Ok(())
}

/// The CUDA device `--device` asks for, or None for the CPU, and the line that says which.
fn resolve_device(a: &SampleArgs) -> Result<(Option<anneal_gpu::Device>, String), UsageError> {
    let cpu_only = if a.trace {
        Some("--trace")
    } else if a.snr.is_some() && a.snr_norms == SnrNormsKind::BatchMean {
        Some("--snr-norms batch-mean")
    } else {
        None
    };
    match (a.device, cpu_only) {
        (DeviceKind::Cpu, _) => Ok((None, "cpu".into())),
        (DeviceKind::Cuda, Some(flag)) => Err(UsageError::flag(format!(
            "--device cuda: {flag} runs on the CPU only; use --device cpu or drop {flag}"
        ))),
        (DeviceKind::Auto, Some(flag)) => Ok((None, format!("cpu ({flag} runs on the CPU only)"))),
        (DeviceKind::Cuda, None) => match anneal_gpu::Device::open(0) {
            Ok(d) => {
                let line = d.describe();
                Ok((Some(d), line))
            }
            Err(e) => {
                Err(UsageError::flag(format!("--device cuda: {e}; use --device cpu or auto")))
            }
        },
        (DeviceKind::Auto, None) => match anneal_gpu::Device::open(0) {
            Ok(d) => {
                let line = d.describe();
                Ok((Some(d), line))
            }
            Err(e) => Ok((None, format!("cpu (no CUDA device: {e})"))),
        },
    }
}

/// Runs `anneal sample`.
pub fn run(a: &SampleArgs) -> anyhow::Result<()> {
    let mut p = prepare(a)?;
    if a.out.exists() && !a.force {
        return Err(UsageError::flag(format!(
            "--out = {} exists: choose another folder or add --force to overwrite its files",
            a.out.display()
        ))
        .into());
    }
    if a.out.exists() && !a.out.is_dir() {
        return Err(UsageError::flag(format!(
            "--out = {} exists and is not a folder",
            a.out.display()
        ))
        .into());
    }
    let (device, mut device_line) = resolve_device(a)?;
    let pool = rayon::ThreadPoolBuilder::new().num_threads(p.config.threads).build()?;
    let start = Instant::now();
    let (samples, trace) = match &device {
        Some(dev) => {
            p.config.device = dev.describe();
            let progress =
                crate::report::progress::bar((a.n * p.plan.len()) as u64, "sample-steps");
            let (samples, stats) = sample_cuda(&p, dev, a.n, a.seed, a.init, &progress)?;
            device_line = format!("{device_line}; {}", stats.summary());
            progress.finish_and_clear();
            (samples, None)
        }
        None => {
            let batches = a.n.div_ceil(a.batch);
            let progress = crate::report::progress::bar((batches * p.plan.len()) as u64, "steps");
            let out =
                pool.install(|| sample(&p, a.n, a.batch, a.seed, a.init, &progress, a.trace))?;
            progress.finish_and_clear();
            out
        }
    };
    let seconds = start.elapsed().as_secs_f64();
    let metrics = pool.install(|| crate::report::metrics::compute(&p, &samples, a.seed, seconds));
    let png = crate::report::plot::render(&p, &samples);

    std::fs::create_dir_all(&a.out)
        .map_err(|e| anyhow::anyhow!("creating {}: {e}", a.out.display()))?;
    // samples.npy last: its presence means the run is complete.
    write_atomic(&a.out, "config.json", serde_json::to_string_pretty(&p.config)?.as_bytes())?;
    write_atomic(&a.out, "metrics.json", serde_json::to_string_pretty(&metrics)?.as_bytes())?;
    write_atomic(&a.out, "samples.png", &png?)?;
    if let Some(t) = &trace {
        write_atomic(&a.out, "trace.csv", t.csv().as_bytes())?;
        let points: Vec<(f64, f64)> = t
            .level
            .iter()
            .zip(t.sigma_eff.iter().zip(&t.sigma))
            .map(|(&i, (e, s))| (i as f64, e / s))
            .collect();
        let series = [crate::report::plot::Series {
            label: format!("{:?}", a.sampler).to_lowercase(),
            points,
            flagged: Vec::new(),
        }];
        write_atomic(
            &a.out,
            "trace.png",
            &crate::report::plot::line_chart(&series, false, "level i", "sigma_eff/sigma_i")?,
        )?;
    }
    write_atomic(&a.out, "samples.npy", &crate::io::npy::write_f32(&samples, a.n, p.data.dim))?;

    println!(
        "{} samples of {} (D = {}, K = {}) by {:?}, N = {} levels, {} steps: {}",
        a.n,
        p.data.name,
        p.data.dim,
        p.data.components(),
        a.sampler,
        p.schedule.levels(),
        p.plan.len(),
        if seconds < 0.1 { format!("{:.1} ms", seconds * 1e3) } else { format!("{seconds:.2} s") }
    );
    println!("device: {device_line}");
    crate::report::metrics::print_summary(&metrics);
    println!("wrote {}/{{samples.npy, metrics.json, samples.png, config.json}}", a.out.display());
    Ok(())
}
