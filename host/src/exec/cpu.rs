//! The CPU executor: batches of samples in parallel (rayon), each through the whole plan with
//! the GEMM score; optionally the consistency trace.

use anneal_core::noise::Keyed;
use anneal_core::plan::{self, Batch, BatchScore, Observer, SnrNorms, Step, Update};
use anneal_core::samplers::any::AnySampler;
use anneal_core::{Error, GeometricOrSingle, Plan, Quantity, Schedule};
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;
use serde::Serialize;

use super::start::Start;
use crate::config::RunConfig;
use crate::score::par_noise::ParKeyed;

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

/// Batches are evened out among the threads ([`balanced_batch`]) only while the scorers' scratch
/// of all threads stays below this (16 MiB: a toy or digits run, not a mixture of 10⁵ points,
/// whose extra concurrent scorer would add to the memory the README promises).
const BALANCE_SCRATCH_MAX: usize = 16 << 20;

/// The most scorer scratch sampling holds at once (see [`crate::score::source::ScoreSource::scratch_bytes`]).
const SCRATCH_BUDGET: usize = 256 << 20;

/// What `anneal bench` measures inside a run: the time each batch spent in each plan step
/// (nanoseconds, summed over batches: thread time) and the score's multiply-adds ×2.
pub struct StepTimes {
    /// Per plan step.
    pub ns: Vec<AtomicU64>,
    /// The mixture score's products (0 for a network).
    pub flops: AtomicU64,
    /// The batches the run was split into (see [`balanced_batch`]).
    pub batches: AtomicU64,
}

impl StepTimes {
    /// Zeroed counters for a plan of `steps` steps.
    pub fn new(steps: usize) -> Self {
        StepTimes {
            ns: (0..steps).map(|_| AtomicU64::new(0)).collect(),
            flops: AtomicU64::new(0),
            batches: AtomicU64::new(0),
        }
    }
}

/// Runs `p`'s plan for its samples `first..first + n` in batches of its `batch` (evened out
/// among the threads where the samples cannot depend on it: [`balanced_batch`]), in parallel;
/// returns the n × D samples and, with `trace`, the consistency trace.
pub fn sample(
    p: &RunConfig,
    progress: &indicatif::ProgressBar,
    trace: bool,
) -> anyhow::Result<(Vec<f32>, Option<Trace>)> {
    sample_timed(p, progress, trace, None)
}

/// `plan::run` of a batch with the update and the checks compiled for this CPU's vector unit
/// (the same bits at every level: `score::simd`).
fn run_plan(
    plan: &AnySampler<GeometricOrSingle>,
    score: &mut dyn BatchScore<f32>,
    noise: &mut ParKeyed,
    batch: Batch<'_, f32>,
    observer: &mut dyn Observer<f32>,
) -> Result<(), Error> {
    #[inline(always)]
    fn kernel(
        plan: &AnySampler<GeometricOrSingle>,
        score: &mut dyn BatchScore<f32>,
        noise: &mut ParKeyed,
        batch: Batch<'_, f32>,
        observer: &mut dyn Observer<f32>,
    ) -> Result<(), Error> {
        plan::run_inline(plan, score, noise, batch, None, observer)
    }
    crate::score::simd::dispatch!(
        kernel,
        (
            plan: &AnySampler<GeometricOrSingle>,
            score: &mut dyn BatchScore<f32>,
            noise: &mut ParKeyed,
            batch: Batch<'_, f32>,
            observer: &mut dyn Observer<f32>,
        ) -> Result<(), Error>
    )
}

/// The batch size that spreads `n` samples over `threads` in the same number of rounds as batches
/// of `batch` would take, as evenly as it can: 1280 samples in batches of 256 on 2 threads (5
/// batches: 3 rounds on one thread, 2 on the other) become 6 batches of 214 (3 rounds each); 256
/// samples (1 batch) become 2 of 128. Never larger than `batch`.
fn balanced_batch(n: usize, batch: usize, threads: usize) -> usize {
    let batches = n.div_ceil(batch.max(1));
    if threads <= 1 || batches.is_multiple_of(threads) {
        return batch;
    }
    let rounds = batches.div_ceil(threads);
    n.div_ceil(rounds * threads).clamp(1, batch.max(1))
}

/// Whether `p`'s samples are the same for any batch size: a mixture score (a network's output
/// may depend on the rows in a call), no trace (its sums go batch by batch) and no signal-to-noise
/// corrector whose norms are shared between the rows of a group or a batch.
fn batch_free(p: &RunConfig, trace: bool) -> bool {
    let shared_norms = (0..p.plan.len())
        .filter_map(|k| p.plan.step(k))
        .any(|st| matches!(st.update, Update::Snr { norms, .. } if norms != SnrNorms::PerSample));
    p.network.is_none() && !trace && !shared_norms
}

/// [`sample`], timing each step into `times` (`anneal bench`).
pub fn sample_timed(
    p: &RunConfig,
    progress: &indicatif::ProgressBar,
    trace: bool,
    times: Option<&StepTimes>,
) -> anyhow::Result<(Vec<f32>, Option<Trace>)> {
    let (n, batch, seed) = (p.n, p.batch, p.seed);
    let end = p.first + n;
    let levels = p.schedule.levels();
    let d = p.data.dim;
    let start = Start::new(p);
    // The score source (for the mixture: ln w, ‖μ‖² and the packed means), once for all batches.
    let source = p.source();
    // Where the samples cannot depend on the batch, batches that would not divide evenly among
    // the threads are evened out — for small scorers only, so that the memory model (README)
    // stays what it says.
    let threads = rayon::current_num_threads();
    let batch = if batch_free(p, trace)
        && source.scratch_bytes(batch).saturating_mul(threads) <= BALANCE_SCRATCH_MAX
    {
        balanced_batch(n, batch, threads)
    } else {
        batch
    };
    let starts: Vec<usize> = (p.first..end).step_by(batch).collect();
    if let Some(t) = times {
        t.batches.store(starts.len() as u64, Ordering::Relaxed);
    }
    type BatchOut = (Vec<f32>, Vec<f64>);
    // Batches run in parallel while their scorers' scratch fits SCRATCH_BUDGET; for a mixture of
    // many components (~10⁶) one batch runs at a time, on every thread inside its products. (A
    // traced batch has a second scorer.)
    let scratch = source.scratch_bytes(batch) * (1 + trace as usize);
    let concurrent = (SCRATCH_BUDGET / scratch.max(1)).max(1);
    let group = starts.len().div_ceil(concurrent).max(1);
    let run = |&first: &usize| -> Result<BatchOut, Error> {
        let count = batch.min(end - first);
        let len = count * d;
        let mut x = start.rows(p, first, count, seed)?;
        let (mut aux, mut s, mut xi, mut pt) =
            (vec![0.0f32; len], vec![0.0f32; len], vec![0.0f32; len], vec![0.0f32; len]);
        let noise = Keyed::new(seed);
        let mut score = source.scorer();
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
        let mut trace_score = trace.then(|| source.scorer());
        let mut s_trace = if trace { vec![0.0f32; len] } else { Vec::new() };
        let mut last = std::time::Instant::now();
        let mut obs = |k: usize, st: &Step, xs: &[f32]| {
            progress.inc(count as u64);
            if let Some(t) = times.and_then(|t| t.ns.get(k)) {
                let now = std::time::Instant::now();
                t.fetch_add((now - last).as_nanos() as u64, Ordering::Relaxed);
                last = now;
            }
            let Some(ts) = trace_score.as_mut() else { return };
            let last_of_level = p.plan.step(k + 1).is_none_or(|nx| {
                nx.level_after != st.level_after || nx.sigma_after != st.sigma_after
            });
            if st.sigma_after > 0.0 && last_of_level {
                let sig = st.sigma_after;
                if ts.score_batch(xs, sig, &mut s_trace).is_ok() {
                    let s2: f64 = s_trace.iter().map(|&v| (v as f64 * sig * sig).powi(2)).sum();
                    if let Some(acc) = sumsq.get_mut(st.level_after) {
                        *acc += s2;
                    }
                }
            }
        };
        run_plan(&p.plan, &mut *score, &mut ParKeyed(noise), batch, &mut obs)?;
        Ok((x, sumsq))
    };
    let results: Vec<Result<BatchOut, Error>> = starts
        .par_chunks(group)
        .map(|firsts| firsts.iter().map(run).collect::<Vec<_>>())
        .collect::<Vec<_>>()
        .into_iter()
        .flatten()
        .collect();
    if let Some(t) = times {
        t.flops.fetch_add(source.flops_done() as u64, Ordering::Relaxed);
    }
    let mut out = Vec::with_capacity(n * d);
    let mut total = vec![0.0f64; if trace { levels } else { 0 }];
    for (r, &first) in results.into_iter().zip(&starts) {
        match r {
            Ok((x, sumsq)) => {
                out.extend(x);
                total.iter_mut().zip(sumsq).for_each(|(t, v)| *t += v);
            }
            Err(e @ Error::NonFinite { what: Quantity::Score, level, .. })
                if source.network().is_some() =>
            {
                let sigma = p.schedule.sigma(level - 1).unwrap_or(f64::NAN);
                anyhow::bail!(
                    "sampling stopped in the batch starting at sample {first}: {e} — the score \
                     network {} returned a NaN or ∞ at σ = {sigma}; nothing was written",
                    source.describe()
                )
            }
            Err(e @ Error::NonFinite { .. }) => {
                anyhow::bail!(
                    "sampling stopped in the batch starting at sample {first}: {e}; nothing was written"
                )
            }
            Err(e @ Error::ScoreFailed { .. }) => anyhow::bail!(
                "sampling stopped in the batch starting at sample {first}: {e}: {}; nothing was written",
                source.network().and_then(|n| n.failure()).unwrap_or_default()
            ),
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

#[cfg(test)]
mod tests {
    use super::balanced_batch;

    /// The same number of rounds per thread, batches as even as they can be, never larger than
    /// asked; unchanged where the batches already divide among the threads.
    #[test]
    fn balanced_batches() {
        assert_eq!(balanced_batch(1280, 256, 2), 214);
        assert_eq!(balanced_batch(256, 256, 2), 128);
        assert_eq!(balanced_batch(1000, 256, 2), 256);
        assert_eq!(balanced_batch(1280, 256, 1), 256);
        assert_eq!(balanced_batch(1, 256, 16), 1);
        for n in 1..600 {
            for batch in [1, 7, 64, 256] {
                for threads in 1..9 {
                    let b = balanced_batch(n, batch, threads);
                    assert!((1..=batch).contains(&b));
                    let rounds = |b: usize| n.div_ceil(b).div_ceil(threads);
                    assert_eq!(rounds(b), rounds(batch), "n {n} batch {batch} threads {threads}");
                }
            }
        }
    }
}
