//! metrics.json: how good the samples are against the ground-truth mixture.

use anneal_core::noise::{Keyed, Noise, Stream};
use anneal_core::score::{IsotropicMixture, Taus};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::Truth;
use super::lanes::{self, LANES, LANES32};

/// Sliced Wasserstein-2 distance to exact samples of the ground truth.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SlicedWasserstein {
    /// √(mean over projections of W2² between the projected sample sets).
    pub value: f64,
    /// Random directions (uniform on the sphere).
    pub projections: usize,
    /// Samples compared.
    pub samples: usize,
    /// Exact ground-truth samples drawn (same count).
    pub reference_samples: usize,
    /// The same distance between two independent sets of exact samples of this size: the value
    /// an exact sampler would show (with well-separated modes it is dominated by the binomial
    /// fluctuation of the mode weights).
    pub noise_floor: f64,
}

/// Mean pairwise Euclidean distance.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PairwiseDistance {
    /// Over the first `samples_used` samples.
    pub samples: f64,
    /// Over the first `data_used` data points (component means).
    pub data: f64,
    /// Samples used.
    pub samples_used: usize,
    /// Data points used.
    pub data_used: usize,
}

/// metrics.json.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Metrics {
    /// Total variation between `mode_weights` and `true_weights`: ½ Σ_k |m_k − w_k|.
    #[serde(default)]
    pub mode_tv: f64,
    /// Where the per-component lists are when the mixture has more than
    /// [`PER_COMPONENT_MAX`] components (then the three lists here are empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_component: Option<String>,
    /// Fraction of samples whose most responsible component at σ_N is k, in component order.
    pub mode_weights: Vec<f64>,
    /// The mixture's weights.
    pub true_weights: Vec<f64>,
    /// √(w(1 − w)/n) for each true weight: the standard error of `mode_weights` if the sampler were exact.
    pub mode_weights_standard_error: Vec<f64>,
    /// Sliced W2 to exact samples.
    pub sliced_wasserstein: SlicedWasserstein,
    /// Mean pairwise distances of samples and of data.
    pub mean_pairwise_distance: PairwiseDistance,
    /// Mean over samples of the distance to the nearest component mean.
    pub mean_nearest_component_distance: f64,
    /// The samples against the data points, without a closed form: memorisation and Fréchet
    /// distances (the metrics of a learned score).
    pub data_comparison: DataComparison,
    /// Samples with a NaN or ∞ (a run that meets one stops, so a written file has 0).
    pub non_finite: usize,
    /// Sampling time (not metrics), seconds.
    pub seconds: f64,
    /// Score evaluations (samples × plan steps) per second of sampling.
    pub score_evals_per_second: f64,
    /// The largest σ_eff/σ_i Proposition 3 predicted before sampling (ALS, Langevin, PC's
    /// Langevin corrector; config.json's `foresight`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicted_max_ratio: Option<f64>,
}

/// The samples against the data points (the components' means), with each value's reference:
/// the same quantity between the two halves of the data (even- and odd-numbered points).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DataComparison {
    /// Distinct nearest data points among the samples ÷ samples (memorisation: a sampler that
    /// copies a few data points scores low).
    pub distinct_nearest_fraction: f64,
    /// Mean distance from an odd-numbered data point (the first 2000 of them) to the nearest
    /// even-numbered one: what
    /// `mean_nearest_component_distance` is for new points from the data's distribution (well
    /// below it: samples copy data points).
    pub data_split_nearest_distance: Option<f64>,
    /// Fréchet distance between samples and data, pixel (coordinate) space (each set needs ≥ 2
    /// points).
    pub frechet_pixel: Option<f64>,
    /// The same between the two halves of the data.
    pub frechet_pixel_data_split: Option<f64>,
    /// Fréchet distance in the shipped digit classifier's 64 features (digits only).
    pub frechet_features: Option<f64>,
    /// The same between the two halves of the data.
    pub frechet_features_data_split: Option<f64>,
}

/// For each row x of `xs`, the nearest of the rows `first`, `first + stride`, … of `points` (D =
/// `d`): (its index among them, squared distance), the first such row on ties. Each distance is
/// Σ (x_c − m_c)² in f64 in coordinate order, as one row alone would be compared; the rows of
/// `xs` go [`LANES`] at a time (in parallel), against each point in turn, so that the points are
/// read once per group and the sums vectorise.
///
/// From [`SCREEN_DIM`] dimensions on, with enough rows and points, the same results come from
/// [`super::nearest::screened`] (f32 products screen the points; the exact sums of the few left).
fn nearest_rows(
    xs: &[f32],
    points: &[f32],
    d: usize,
    first: usize,
    stride: usize,
) -> Vec<(usize, f64)> {
    let stride = stride.max(1);
    let count = (points.len() / d).saturating_sub(first).div_ceil(stride);
    let finite = || xs.iter().chain(points).all(|v| v.is_finite());
    let screen = (SCREEN_DIM..crate::score::gram::MAX_DIM).contains(&d);
    if screen && count >= 64 && xs.len() >= 16 * d && finite() {
        return super::nearest::screened(xs, points, d, first, stride, count);
    }
    nearest_by_lanes(xs, points, d, first, stride)
}

/// [`nearest_rows`] by the lanes: [`LANES`] rows at a time against each point.
fn nearest_by_lanes(
    xs: &[f32],
    points: &[f32],
    d: usize,
    first: usize,
    stride: usize,
) -> Vec<(usize, f64)> {
    xs.par_chunks(LANES * d)
        .flat_map_iter(|group| {
            let n = group.len() / d;
            let found = nearest_group(group, points, d, first, stride);
            found.into_iter().take(n)
        })
        .collect()
}

/// The dimension from which [`nearest_rows`] screens by f32 products.
const SCREEN_DIM: usize = 32;

/// [`nearest_rows`] for up to [`LANES`] rows, compiled for this CPU's vector unit (the same bits at
/// every level: each lane's sum is in coordinate order whatever the instructions).
fn nearest_group(
    group: &[f32],
    points: &[f32],
    d: usize,
    first: usize,
    stride: usize,
) -> [(usize, f64); LANES] {
    crate::score::simd::dispatch!(
        nearest_lanes,
        (group: &[f32], points: &[f32], d: usize, first: usize, stride: usize) -> [(usize, f64); LANES]
    )
}

#[inline(always)]
fn nearest_lanes(
    group: &[f32],
    points: &[f32],
    d: usize,
    first: usize,
    stride: usize,
) -> [(usize, f64); LANES] {
    let xt = lanes::transpose64(group, d);
    let mut best_v = [f64::INFINITY; LANES];
    let mut best_i = [0usize; LANES];
    let mut keep = |i: usize, acc: &[f64; LANES]| {
        for ((bv, bi), &a) in best_v.iter_mut().zip(best_i.iter_mut()).zip(acc) {
            let closer = a < *bv;
            *bv = if closer { a } else { *bv };
            *bi = if closer { i } else { *bi };
        }
    };
    let rows = points.chunks_exact(d).skip(first).step_by(stride.max(1));
    lanes::each_d2!(lanes::d2_f64, &xt, rows, |i, acc| keep(i, acc));
    std::array::from_fn(|l| (best_i[l], best_v[l]))
}

/// The mode assignment for up to [`LANES32`] samples against a block of components (from `j0`,
/// with their logits' constant parts): each sample's best (component, logit) so far in `best`
/// is replaced by a later component only if its logit is larger — the core's logit, bit for bit
/// ([`lanes::d2_blocked`]). Compiled for this CPU's vector unit.
fn modes_group(
    group: &[f32],
    means: &[f32],
    parts: &[(f64, f64)],
    j0: usize,
    d: usize,
    best: &mut [(usize, f64)],
) {
    crate::score::simd::dispatch!(
        modes_lanes,
        (group: &[f32], means: &[f32], parts: &[(f64, f64)], j0: usize, d: usize, best: &mut [(usize, f64)]) -> ()
    )
}

#[inline(always)]
fn modes_lanes(
    group: &[f32],
    means: &[f32],
    parts: &[(f64, f64)],
    j0: usize,
    d: usize,
    best: &mut [(usize, f64)],
) {
    let xt = lanes::transpose32(group, d);
    let mut keep = |j: usize, acc: &[f64; LANES32]| {
        let (c, v) = parts[j];
        for (b, &d2) in best.iter_mut().zip(acc) {
            let l = c - 0.5 * d2 / v;
            if l > b.1 {
                *b = (j0 + j, l);
            }
        }
    };
    lanes::each_d2!(lanes::d2_blocked, &xt, means.chunks_exact(d), |j, acc| keep(j, acc));
}

/// [`DataComparison`] of `samples` with the data, given each sample's nearest data point. The
/// data's halves (even- and odd-numbered points) are read in place, not copied.
fn compare_with_data(p: &Truth<'_>, samples: &[f32], nearest: &[(usize, f64)]) -> DataComparison {
    let d = p.data.dim;
    let data = &p.data.means;
    let n = samples.len() / d;
    let k = data.len() / d;
    let mut distinct: Vec<usize> = nearest.iter().map(|v| v.0).collect();
    distinct.sort_unstable();
    distinct.dedup();
    let even = || data.chunks_exact(d).step_by(2);
    let odd = || data.chunks_exact(d).skip(1).step_by(2);
    let (k_even, k_odd) = (k.div_ceil(2), k / 2);
    let split = (k_odd > 0).then(|| {
        // The first PAIRS_MAX odd rows (each against every even row: O(K), not O(K²)).
        let first: Vec<f32> = odd().take(PAIRS_MAX).flatten().copied().collect();
        let dist: Vec<f64> =
            nearest_rows(&first, data, d, 0, 2).iter().map(|v| v.1.sqrt()).collect();
        dist.iter().sum::<f64>() / dist.len() as f64
    });
    let frechet = |a: &[f32], b: &[f32], w: usize| {
        (a.len() / w >= 2 && b.len() / w >= 2).then(|| super::frechet::distance(a, b, w))
    };
    // In the digit classifier's features: digits only (the classifier was trained on them, and
    // its 1797 points are copied into halves for it).
    let features = |x: &[f32]| super::frechet::digit_features(x).ok();
    let in_features = (p.data.name == "digits" && d == 64)
        .then(|| {
            let even: Vec<f32> = even().flatten().copied().collect();
            let odd: Vec<f32> = odd().flatten().copied().collect();
            Some((features(samples)?, features(data)?, features(&even)?, features(&odd)?))
        })
        .flatten();
    DataComparison {
        distinct_nearest_fraction: distinct.len() as f64 / n.max(1) as f64,
        data_split_nearest_distance: split,
        frechet_pixel: frechet(samples, data, d),
        frechet_pixel_data_split: (k_even >= 2 && k_odd >= 2)
            .then(|| super::frechet::distance_rows(odd(), even(), d)),
        frechet_features: in_features.as_ref().and_then(|(s, all, _, _)| frechet(s, all, 64)),
        frechet_features_data_split: in_features
            .as_ref()
            .and_then(|(_, _, e, o)| frechet(o, e, 64)),
    }
}

const PROJECTIONS: usize = 128;
/// Components per block of the mode assignment's logit constants.
const MODE_BLOCK: usize = 4096;
const PAIRS_MAX: usize = 2000;

/// The mean distance between the first `max` points, and how many were used: for each point its
/// distances to the later ones (in order), the roots of those summed by [`sum_of_roots_lanes`], and
/// the points' sums added in index order — the same bits whatever the threads. The points go
/// [`LANES`] at a time against [`lanes::WAYS`] later points at once.
fn mean_pairwise(points: &[f32], d: usize, max: usize) -> (f64, usize) {
    let m = (points.len() / d).min(max);
    if m < 2 {
        return (0.0, m);
    }
    let points = &points[..m * d];
    let total: f64 = points
        .par_chunks(LANES * d)
        .enumerate()
        .map_init(
            || vec![Vec::new(); LANES],
            |squares, (g, group)| {
                let (i0, n) = (g * LANES, group.len() / d);
                let sums = pairwise_group(group, points, d, i0, squares);
                sums[..n].to_vec()
            },
        )
        .flatten_iter()
        .collect::<Vec<f64>>()
        .iter()
        .sum(); // in index order: the same bits whatever the threads
    (total / (m * (m - 1) / 2) as f64, m)
}

/// [`mean_pairwise`]'s sums for the points `i0 …` of `group`, compiled for this CPU's vector unit.
fn pairwise_group(
    group: &[f32],
    points: &[f32],
    d: usize,
    i0: usize,
    squares: &mut [Vec<f64>],
) -> [f64; LANES] {
    crate::score::simd::dispatch!(
        pairwise_lanes,
        (group: &[f32], points: &[f32], d: usize, i0: usize, squares: &mut [Vec<f64>]) -> [f64; LANES]
    )
}

#[inline(always)]
fn pairwise_lanes(
    group: &[f32],
    points: &[f32],
    d: usize,
    i0: usize,
    squares: &mut [Vec<f64>],
) -> [f64; LANES] {
    let n = group.len() / d;
    let xt = lanes::transpose64(group, d);
    squares.iter_mut().for_each(Vec::clear);
    // Lane l is point i0 + l; it keeps the squared distances to the points after it, in order.
    let mut keep = |j: usize, acc: &[f64; LANES]| {
        for (l, (s, &a)) in squares.iter_mut().zip(acc).enumerate().take(n) {
            if j > i0 + l {
                s.push(a);
            }
        }
    };
    let later = points.chunks_exact(d).skip(i0 + 1);
    lanes::each_d2!(lanes::d2_f64, &xt, later, |j, acc| keep(i0 + 1 + j, acc));
    std::array::from_fn(|l| squares.get(l).map_or(0.0, |s| sum_of_roots_lanes(s)))
}

/// Σ √v over `values`, in eight interleaved partial sums (so that the roots and sums vectorise;
/// the same bits at every instruction-set level), then the rest in order.
#[inline(always)]
fn sum_of_roots_lanes(values: &[f64]) -> f64 {
    let mut lanes = [0.0f64; 8];
    let mut blocks = values.chunks_exact(8);
    for block in &mut blocks {
        for (l, v) in lanes.iter_mut().zip(block) {
            *l += v.sqrt();
        }
    }
    let head: f64 = lanes.iter().sum();
    blocks.remainder().iter().fold(head, |t, v| t + v.sqrt())
}

/// Draws components by weight: the component whose cumulative weight first exceeds u·Σw, for
/// u ∈ [0, 1) — by a binary search over the cumulative weights, summed once in component order
/// (the sums a linear scan would form, so the same component).
pub struct Picker {
    cumulative: Vec<f64>,
    total: f64,
}

impl Picker {
    /// The cumulative sums of `weights` (non-negative).
    pub fn new(weights: &[f64]) -> Self {
        let mut acc = 0.0;
        let cumulative: Vec<f64> = weights
            .iter()
            .map(|w| {
                acc += w;
                acc
            })
            .collect();
        // The last sum is Σw, added in the same order as `iter().sum()` adds it.
        Picker { total: cumulative.last().copied().unwrap_or(0.0), cumulative }
    }

    /// The first k with u·Σw < w_0 + … + w_k (the last component if none).
    pub fn pick(&self, u: f64) -> usize {
        let target = u * self.total;
        // The sums before the first one above the target (they never decrease).
        let k = self.cumulative.partition_point(|&a| a <= target || a.is_nan());
        k.min(self.cumulative.len().saturating_sub(1))
    }
}

fn exact_samples(p: &Truth<'_>, n: usize, seed: u64) -> Vec<f32> {
    let d = p.data.dim;
    let picker = Picker::new(&p.data.weights);
    (0..n)
        .into_par_iter()
        .flat_map_iter(|j| {
            let mut noise = Keyed::new(seed);
            let mut u = [0.0f64; 1];
            noise.uniforms(j as u64, Stream::ReferenceComponent, &mut u);
            let comp = picker.pick(u[0]);
            let mut z = vec![0.0f32; d];
            noise.normals(j as u64, Stream::ReferenceNoise, &mut z);
            let mu = &p.data.means[comp * d..(comp + 1) * d];
            mu.iter().zip(z).map(|(&m, z)| m + p.tau as f32 * z).collect::<Vec<_>>()
        })
        .collect()
}

/// Sliced W2 of `samples` to `reference`, and of `reference2` to `reference` (the noise floor),
/// all of the same size: √(mean over random directions of the mean squared difference of the
/// sorted projections). Each set is projected once per direction.
fn sliced_w2(
    samples: &[f32],
    reference: &[f32],
    reference2: &[f32],
    d: usize,
    seed: u64,
) -> (f64, f64) {
    let n = samples.len() / d;
    let (total, floor) = (0..PROJECTIONS)
        .into_par_iter()
        .map(|l| {
            let mut dir = vec![0.0f64; d];
            Keyed::new(seed).normals(l as u64, Stream::Projection, &mut dir);
            let norm = dir.iter().map(|v| v * v).sum::<f64>().sqrt();
            // Sorted by `f64::total_cmp`, as the integers that order compares (faster than the
            // comparison of floats; unstable: elements equal under the total order have the
            // same bits).
            let project = |pts: &[f32]| {
                let mut v = projection_keys(pts, &dir, norm, d);
                v.sort_unstable();
                v
            };
            let (a, r, r2) = (project(samples), project(reference), project(reference2));
            let w2 = |x: &[i64]| {
                let each =
                    x.iter().zip(&r).map(|(&x, &y)| (total_value(x) - total_value(y)).powi(2));
                each.sum::<f64>() / n as f64
            };
            (w2(&a), w2(&r2))
        })
        .collect::<Vec<(f64, f64)>>()
        .iter()
        .fold((0.0, 0.0), |x, y| (x.0 + y.0, x.1 + y.1)); // in order, as above
    ((total / PROJECTIONS as f64).sqrt(), (floor / PROJECTIONS as f64).sqrt())
}

/// The [`total_key`]s of the points' projections on `dir`: `Σ_c (x_c·dir_c)/norm`, each term
/// rounded twice and summed in coordinate order from −0 — a scalar `map(..).sum::<f64>()`, bit
/// for bit — [`LANES`] points at a time in vector lanes (the division, one per term, is the cost).
fn projection_keys(pts: &[f32], dir: &[f64], norm: f64, d: usize) -> Vec<i64> {
    crate::score::simd::dispatch!(
        projection_lanes,
        (pts: &[f32], dir: &[f64], norm: f64, d: usize) -> Vec<i64>
    )
}

#[inline(always)]
fn projection_lanes(pts: &[f32], dir: &[f64], norm: f64, d: usize) -> Vec<i64> {
    let mut keys = Vec::with_capacity(pts.len() / d);
    for group in pts.chunks(LANES * d) {
        let xt = lanes::transpose64(group, d);
        let mut acc = [-0.0f64; LANES];
        for (x, &b) in xt.iter().zip(dir) {
            for (a, &xv) in acc.iter_mut().zip(x) {
                *a += xv * b / norm;
            }
        }
        keys.extend(acc[..group.len() / d].iter().map(|&a| total_key(a)));
    }
    keys
}

/// The integer whose order is `f64::total_cmp`'s (the transformation it applies to the bits).
fn total_key(x: f64) -> i64 {
    let b = x.to_bits() as i64;
    b ^ (((b >> 63) as u64) >> 1) as i64
}

/// The f64 of a [`total_key`] (the transformation is its own inverse).
fn total_value(k: i64) -> f64 {
    f64::from_bits((k ^ (((k >> 63) as u64) >> 1) as i64) as u64)
}

/// All metrics of a finished run of `plan_steps` steps that took `seconds`.
pub fn compute(
    p: &Truth<'_>,
    samples: &[f32],
    seed: u64,
    seconds: f64,
    plan_steps: usize,
) -> Metrics {
    let d = p.data.dim;
    let n = samples.len() / d;
    let k = p.data.components();
    let mix = IsotropicMixture::new(&p.data.means, d, Some(&p.data.weights), Taus::Shared(p.tau));
    let sigma = p.sigma_min;
    // Mode assignment by responsibility at σ_N: each sample's largest logit as the core's
    // `IsotropicMixture::logits` computes it (the first on ties), the logits' constant parts
    // computed once per block of components for a share of the samples (libm's logarithms, two
    // per component, cost more than the distance for small D).
    let modes: Vec<Option<usize>> = match mix.as_ref() {
        Ok(mix) if sigma.is_finite() && sigma >= 0.0 => {
            let per = n.div_ceil(rayon::current_num_threads()).max(1);
            samples
                .par_chunks(per * d)
                .flat_map_iter(|xs| {
                    let rows = xs.len() / d;
                    let mut best = vec![(0usize, f64::NEG_INFINITY); rows];
                    let mut parts = Vec::with_capacity(MODE_BLOCK.min(k));
                    for j0 in (0..k).step_by(MODE_BLOCK) {
                        let j1 = (j0 + MODE_BLOCK).min(k);
                        parts.clear();
                        parts.extend((j0..j1).map(|j| mix.logit_parts(j, sigma)));
                        let means = &p.data.means[j0 * d..j1 * d];
                        for (best, group) in best.chunks_mut(LANES32).zip(xs.chunks(LANES32 * d)) {
                            modes_group(group, means, &parts, j0, d, best);
                        }
                    }
                    best.into_iter().map(|b| Some(b.0))
                })
                .collect()
        }
        _ => vec![None; n],
    };
    let mut counts = vec![0usize; k];
    modes.iter().flatten().for_each(|&j| counts[j] += 1);
    let mode_weights: Vec<f64> = counts.iter().map(|&c| c as f64 / n as f64).collect();
    let mode_tv =
        mode_weights.iter().zip(&p.data.weights).map(|(a, b)| (a - b).abs()).sum::<f64>() / 2.0;

    let ref_seed = seed ^ 0x5157_AE57_0000_0001;
    let reference = exact_samples(p, n, ref_seed);
    let reference2 = exact_samples(p, n, ref_seed ^ 0xF100_0000);
    let (sw2, floor) = sliced_w2(samples, &reference, &reference2, d, ref_seed);
    let (mps, ms) = mean_pairwise(samples, d, PAIRS_MAX);
    let (mpd, md) = mean_pairwise(&p.data.means, d, PAIRS_MAX);
    // Each sample's nearest data point, once: its distance here, its index for the comparison.
    let nearest_points: Vec<(usize, f64)> = nearest_rows(samples, &p.data.means, d, 0, 1);
    let nearest = nearest_points.iter().map(|v| v.1.sqrt()).sum::<f64>() / n as f64;
    let non_finite = samples.chunks_exact(d).filter(|x| x.iter().any(|v| !v.is_finite())).count();
    let evals = n as f64 * plan_steps as f64;
    Metrics {
        predicted_max_ratio: None,
        mode_tv,
        per_component: None,
        mode_weights,
        true_weights: p.data.weights.clone(),
        mode_weights_standard_error: p
            .data
            .weights
            .iter()
            .map(|w| (w * (1.0 - w) / n as f64).sqrt())
            .collect(),
        sliced_wasserstein: SlicedWasserstein {
            value: sw2,
            projections: PROJECTIONS,
            samples: n,
            reference_samples: n,
            noise_floor: floor,
        },
        mean_pairwise_distance: PairwiseDistance {
            samples: mps,
            data: mpd,
            samples_used: ms,
            data_used: md,
        },
        mean_nearest_component_distance: nearest,
        data_comparison: compare_with_data(p, samples, &nearest_points),
        non_finite,
        seconds,
        score_evals_per_second: evals / seconds.max(1e-9),
    }
}

/// Above this many components the per-component lists leave metrics.json (which stays a few
/// kilobytes): `sample` writes them to components.csv, `tune` keeps only their total variation.
pub const PER_COMPONENT_MAX: usize = 10_000;

/// The per-component lists moved out of [`Metrics`] for a large mixture: components.csv.
pub struct Components {
    mode_weights: Vec<f64>,
    true_weights: Vec<f64>,
    standard_error: Vec<f64>,
}

impl Components {
    /// components.csv (component, mode weight, true weight, standard error), streamed to `w`.
    pub fn write_csv(&self, w: &mut dyn std::io::Write) -> std::io::Result<()> {
        let mut w = csv::Writer::from_writer(w);
        w.write_record(["component", "mode_weight", "true_weight", "standard_error"])?;
        let rows = self.mode_weights.iter().zip(&self.true_weights).zip(&self.standard_error);
        for (j, ((m, t), e)) in rows.enumerate() {
            w.serialize((j, m, t, e))?;
        }
        w.flush()
    }

    /// Components with at least one sample.
    fn hit(&self) -> usize {
        self.mode_weights.iter().filter(|&&w| w > 0.0).count()
    }
}

impl Metrics {
    /// Moves the per-component lists out when they are too long for metrics.json (more than
    /// [`PER_COMPONENT_MAX`] components), leaving a note of where they went: `file` (sample's
    /// components.csv, which the caller writes from the result) or nowhere (tune's rows).
    pub fn split_components(&mut self, file: Option<&str>) -> Option<Components> {
        let k = self.mode_weights.len();
        if k <= PER_COMPONENT_MAX {
            return None;
        }
        self.per_component = Some(match file {
            Some(f) => format!("{f} ({k} components)"),
            None => format!("omitted ({k} components; mode_tv summarises them)"),
        });
        Some(Components {
            mode_weights: std::mem::take(&mut self.mode_weights),
            true_weights: std::mem::take(&mut self.true_weights),
            standard_error: std::mem::take(&mut self.mode_weights_standard_error),
        })
        .filter(|_| file.is_some())
    }
}

/// A few lines on stdout; with `against_data`, also the comparison with the data points (the
/// metrics of a learned score; metrics.json always has them).
pub fn print_summary(m: &Metrics, components: Option<&Components>, against_data: bool) {
    if let Some(c) = components {
        println!(
            "modes hit: {} of {}; total variation to the true weights {:.4}",
            c.hit(),
            c.mode_weights.len(),
            m.mode_tv
        );
    } else if m.mode_weights.len() <= 10 {
        let f = |v: &[f64]| v.iter().map(|x| format!("{x:.4}")).collect::<Vec<_>>().join(", ");
        println!(
            "mode weights [{}] (true [{}], standard error [{}])",
            f(&m.mode_weights),
            f(&m.true_weights),
            f(&m.mode_weights_standard_error)
        );
    } else {
        let hit = m.mode_weights.iter().filter(|&&w| w > 0.0).count();
        println!(
            "modes hit: {hit} of {}; total variation to the true weights {:.4}",
            m.mode_weights.len(),
            m.mode_tv
        );
    }
    println!(
        "sliced W2 to exact samples {:.4} (an exact sampler: {:.4}; {} projections); mean nearest-component distance {:.4}; mean pairwise distance {:.4} (data {:.4})",
        m.sliced_wasserstein.value,
        m.sliced_wasserstein.noise_floor,
        m.sliced_wasserstein.projections,
        m.mean_nearest_component_distance,
        m.mean_pairwise_distance.samples,
        m.mean_pairwise_distance.data
    );
    if against_data {
        print_data_comparison(&m.data_comparison);
    }
    println!("{:.3e} score evaluations per second", m.score_evals_per_second);
}

/// The comparison with the data points, one line.
fn print_data_comparison(c: &DataComparison) {
    let features = match (c.frechet_features, c.frechet_features_data_split) {
        (Some(f), Some(r)) => format!("; in digit-classifier features {f:.4} (data halves {r:.4})"),
        _ => String::new(),
    };
    let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.4}"));
    println!(
        "against the data: distinct nearest points {:.3} of samples; data halves' nearest distance {}; Fréchet distance {} (data halves {}){features}",
        c.distinct_nearest_fraction,
        f(c.data_split_nearest_distance),
        f(c.frechet_pixel),
        f(c.frechet_pixel_data_split)
    );
}

#[cfg(test)]
mod tests {
    use super::{
        LANES, Picker, mean_pairwise, nearest_by_lanes, nearest_rows, projection_keys, total_key,
        total_value,
    };

    /// total_key orders as f64::total_cmp does, and total_value inverts it, over signed zeros,
    /// infinities, NaNs of both signs, subnormals and ordinary values.
    #[test]
    fn total_keys_order_as_total_cmp() {
        let v = [
            0.0,
            -0.0,
            1.0,
            -1.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
            -f64::NAN,
            5e-324,
            -5e-324,
            f64::MAX,
            f64::MIN,
            1e-300,
            -2.5,
            3.75,
            f64::MIN_POSITIVE,
        ];
        for a in v {
            assert_eq!(total_value(total_key(a)).to_bits(), a.to_bits());
            for b in v {
                assert_eq!(total_key(a).cmp(&total_key(b)), a.total_cmp(&b), "{a} {b}");
            }
        }
    }

    /// The mean pairwise distance (roots summed in eight lanes) against a plain double loop, for
    /// D = 1, 2, 64 and point counts around the lanes' width; `max` keeps the first points.
    #[test]
    fn mean_pairwise_matches_a_plain_double_loop() {
        for (d, n) in [(1, 2), (2, 9), (2, 1280), (64, 37), (3, 17)] {
            let points: Vec<f32> =
                (0..n * d).map(|i| ((i * 7919) % 1000) as f32 / 97.0 - 4.0).collect();
            for max in [n, n - 1, 2].into_iter().filter(|&max| max >= 2) {
                let m = n.min(max);
                let mut total = 0.0f64;
                for i in 0..m {
                    for j in i + 1..m {
                        let (a, b) = (&points[i * d..(i + 1) * d], &points[j * d..(j + 1) * d]);
                        total += a
                            .iter()
                            .zip(b)
                            .map(|(&x, &y)| (x as f64 - y as f64).powi(2))
                            .sum::<f64>()
                            .sqrt();
                    }
                }
                let plain = total / (m * (m - 1) / 2) as f64;
                let (mean, used) = mean_pairwise(&points, d, max);
                assert_eq!(used, m);
                // Reordered sums of m² / 2 positive terms: within m² ulp.
                assert!((mean - plain).abs() <= plain * (m * m) as f64 * f64::EPSILON, "{d} {n}");
            }
        }
        assert_eq!(mean_pairwise(&[1.0, 2.0], 2, 10), (0.0, 1));
    }

    /// The picker's binary search finds the component of a linear scan over the cumulative
    /// weights (the first k with u·Σw < w_0 + … + w_k), for weights with zeros, ties and a wide
    /// range, at u = 0, near 1 and at every cumulative boundary.
    #[test]
    fn picker_matches_the_linear_scan() {
        let scan = |w: &[f64], u: f64| {
            let total: f64 = w.iter().sum();
            let mut acc = 0.0;
            for (k, x) in w.iter().enumerate() {
                acc += x;
                if u * total < acc {
                    return k;
                }
            }
            w.len() - 1
        };
        let mut s = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            s = s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (s >> 11) as f64 / (1u64 << 53) as f64
        };
        for k in [1, 2, 7, 1000] {
            let w: Vec<f64> = (0..k)
                .map(|i| match i % 5 {
                    0 => 0.0,
                    1 => 0.25,
                    _ => next() * 10f64.powi(i % 7 - 3),
                })
                .collect();
            if w.iter().sum::<f64>() == 0.0 {
                continue;
            }
            let picker = Picker::new(&w);
            let total: f64 = w.iter().sum();
            let mut us: Vec<f64> = (0..500).map(|_| next()).collect();
            us.extend([0.0, 1.0 - f64::EPSILON]);
            us.extend(picker.cumulative.iter().map(|&c| c / total));
            for u in us {
                assert_eq!(picker.pick(u), scan(&w, u), "K = {k}, u = {u}");
            }
        }
    }

    /// The projections' keys against the scalar sum, bit for bit: partial groups, a row of
    /// zeros and negative zeros (whose sum from −0 stays −0).
    #[test]
    fn projection_keys_match_the_scalar_sums() {
        for (d, n) in [(1, 3), (2, 17), (64, 9), (5, 8)] {
            let mut pts: Vec<f32> =
                (0..n * d).map(|i| ((i * 7919) % 1000) as f32 / 97.0 - 4.0).collect();
            pts[..d].iter_mut().for_each(|v| *v = 0.0);
            pts[d..2 * d].iter_mut().for_each(|v| *v = -0.0);
            let dir: Vec<f64> = (0..d).map(|c| -0.5 + (c % 3) as f64 * 0.75).collect();
            let norm = dir.iter().map(|v| v * v).sum::<f64>().sqrt();
            let keys = projection_keys(&pts, &dir, norm, d);
            for (x, &k) in pts.chunks_exact(d).zip(&keys) {
                let plain: f64 = x.iter().zip(&dir).map(|(&a, b)| a as f64 * b / norm).sum();
                assert_eq!(k, total_key(plain), "d {d}: {} vs {plain}", total_value(k));
            }
        }
    }

    /// The screened search (f32 products, then exact sums) against the lanes' search, bit for
    /// bit and index for index: Gaussian points in 32-D to 784-D, every point and every other
    /// one, samples near points (the nearest settled by far) and between them, duplicated
    /// points (ties: the first), points on a 1/8 grid (many exact ties), and scales of 1e30 and
    /// 1e-30 (the products would overflow or underflow without the frame's scale).
    #[test]
    fn screened_nearest_equals_the_lanes() {
        use anneal_core::noise::{Keyed, Noise, Stream};
        for (case, d, k, n) in
            [(0, 32, 700, 50), (1, 100, 300, 37), (2, 784, 200, 20), (3, 40, 500, 64)]
        {
            let mut pts = vec![0.0f32; k * d];
            Keyed::new(case).normals(0, Stream::Init, &mut pts);
            let mut xs = vec![0.0f32; n * d];
            Keyed::new(case + 10).normals(0, Stream::Init, &mut xs);
            for (i, x) in xs.chunks_exact_mut(d).enumerate() {
                // Half the samples near a point, half between points.
                if i % 2 == 0 {
                    let m = &pts[(i * 7 % k) * d..(i * 7 % k + 1) * d];
                    x.iter_mut().zip(m).for_each(|(x, &m)| *x = m + 0.01 * *x);
                }
            }
            pts.copy_within(0..d, (k - 1) * d); // a duplicate of point 0
            if case == 3 {
                pts.iter_mut().chain(xs.iter_mut()).for_each(|v| *v = (*v * 8.0).round() / 8.0);
            }
            let scales: &[f32] = if case == 0 { &[1.0, 1e30, 1e-30] } else { &[1.0] };
            for &scale in scales {
                let p: Vec<f32> = pts.iter().map(|v| v * scale).collect();
                let x: Vec<f32> = xs.iter().map(|v| v * scale).collect();
                for (first, stride) in [(0, 1), (1, 2)] {
                    let count = (k - first).div_ceil(stride);
                    let lanes = nearest_by_lanes(&x, &p, d, first, stride);
                    let screened = super::super::nearest::screened(&x, &p, d, first, stride, count);
                    for (i, (a, b)) in lanes.iter().zip(&screened).enumerate() {
                        assert_eq!(
                            (a.0, a.1.to_bits()),
                            (b.0, b.1.to_bits()),
                            "case {case}, scale {scale:e}, ({first}, {stride}), row {i}"
                        );
                    }
                }
            }
        }
    }

    /// The nearest point of each row, [`LANES`] rows at a time, against a plain search (the first
    /// of equal distances), every point and every other one, with a partial group of rows.
    #[test]
    fn nearest_rows_match_a_plain_search() {
        let d = 3;
        let points: Vec<f32> = (0..301 * d).map(|i| ((i * 37 % 17) as f32 - 8.0) / 4.0).collect();
        let xs: Vec<f32> =
            (0..(2 * LANES + 3) * d).map(|i| ((i * 11 % 13) as f32 - 6.0) / 3.0).collect();
        for (first, stride) in [(0, 1), (0, 2), (1, 2)] {
            let got = nearest_rows(&xs, &points, d, first, stride);
            assert_eq!(got.len(), xs.len() / d);
            for (x, g) in xs.chunks_exact(d).zip(&got) {
                let want = points
                    .chunks_exact(d)
                    .skip(first)
                    .step_by(stride)
                    .map(|m| {
                        x.iter().zip(m).map(|(&a, &b)| (a as f64 - b as f64).powi(2)).sum::<f64>()
                    })
                    .enumerate()
                    .fold((0, f64::INFINITY), |b, (j, v)| if v < b.1 { (j, v) } else { b });
                assert_eq!((g.0, g.1.to_bits()), (want.0, want.1.to_bits()));
            }
        }
    }
}
