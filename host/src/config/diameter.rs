//! NCSNv2's Technique 1 for many points: the largest pairwise distance, exact and fast.
//!
//! The core's [`anneal_core::ncsnv2::max_pairwise_distance`] compares every pair: O(K²), hours
//! for millions of points. Here the same squared distances (the same f64 sums, so the same bits)
//! are compared only for pairs that can beat the best found so far: by the triangle inequality,
//! `‖x_i − x_j‖ ≤ r_i + r_j` with `r` the distance to the centroid, so with the points in
//! decreasing `r` a point's partners end where `r_i + r_j` drops below the best distance.
//! A double sweep (the farthest point from a point, then from that one, …) finds a near-best
//! distance first. The pruning is exact; its speed depends on the data (points on a sphere
//! prune nothing: O(K²) again).

use rayon::prelude::*;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::CoreError;

/// Below this many points the core's plain double loop is used (it is as fast there).
const PLAIN_BELOW: usize = 2048;

/// The squared distance of points `i` and `j`, summed in coordinate order as the core sums it.
fn d2(points: &[f32], dim: usize, i: usize, j: usize) -> f64 {
    let (a, b) = (&points[i * dim..(i + 1) * dim], &points[j * dim..(j + 1) * dim]);
    a.iter()
        .zip(b)
        .map(|(&x, &y)| {
            let d = x as f64 - y as f64;
            d * d
        })
        .sum()
}

/// The largest distance between two of `points` (K × `dim`, row-major): exactly the core's
/// value, found without comparing every pair where the data allow.
pub fn max_pairwise_distance(points: &[f32], dim: usize) -> Result<f64, CoreError> {
    let k = points.len().checked_div(dim).unwrap_or(0);
    if k < PLAIN_BELOW || !points.len().is_multiple_of(dim) {
        return anneal_core::ncsnv2::max_pairwise_distance(points, dim);
    }
    if let Some(index) = points.iter().position(|v| !v.is_finite()) {
        return Err(CoreError::NonFiniteInput { index });
    }
    // A near-best squared distance by a double sweep from point 0.
    let farthest = |from: usize| -> (usize, f64) {
        (0..k).into_par_iter().map(|j| (j, d2(points, dim, from, j))).reduce(
            || (usize::MAX, -1.0),
            |a, b| if b.1 > a.1 || (b.1 == a.1 && b.0 < a.0) { b } else { a },
        )
    };
    let mut best = 0.0f64;
    let mut from = 0;
    for _ in 0..4 {
        let (to, d) = farthest(from);
        best = best.max(d);
        from = to;
    }
    // Distances to the centroid, and the points by decreasing distance.
    let mut centre = vec![0.0f64; dim];
    for p in points.chunks_exact(dim) {
        for (c, &v) in centre.iter_mut().zip(p) {
            *c += v as f64;
        }
    }
    centre.iter_mut().for_each(|c| *c /= k as f64);
    let r: Vec<f64> = points
        .par_chunks_exact(dim)
        .map(|p| p.iter().zip(&centre).map(|(&v, c)| (v as f64 - c).powi(2)).sum::<f64>().sqrt())
        .collect();
    let mut order: Vec<u32> = (0..k as u32).collect();
    order.par_sort_unstable_by(|&a, &b| r[b as usize].total_cmp(&r[a as usize]).then(a.cmp(&b)));
    let radius: Vec<f64> = order.iter().map(|&i| r[i as usize]).collect();
    // The bound r_i + r_j is compared with a margin far above its rounding (≈ 1e-15
    // relative), so that no pair whose distance could reach the best is skipped.
    const MARGIN: f64 = 1.0 + 1e-9;
    let shared = AtomicU64::new(best.to_bits()); // non-negative f64s order as their bits
    (1..k).into_par_iter().with_min_len(64).for_each(|p| {
        let mut local = f64::from_bits(shared.load(Ordering::Relaxed));
        let rp = radius[p];
        if (rp + radius[0]) * MARGIN <= local.sqrt() {
            return;
        }
        let i = order[p] as usize;
        let mut found = false;
        for q in 0..p {
            if (rp + radius[q]) * MARGIN <= local.sqrt() {
                break;
            }
            let d = d2(points, dim, i, order[q] as usize);
            if d > local {
                local = d;
                found = true;
            }
        }
        if found {
            shared.fetch_max(local.to_bits(), Ordering::Relaxed);
        }
    });
    Ok(f64::from_bits(shared.load(Ordering::Relaxed)).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;
    use anneal_core::noise::{Keyed, Noise, Stream};

    /// The same bits as the core's full double loop, on data that prune well (Gaussian, two
    /// clusters, a cube) and on data that do not (a sphere), with duplicated points.
    #[test]
    fn equals_the_plain_double_loop() {
        for (case, dim, k) in [(0, 10, 4000), (1, 3, 5000), (2, 2, 3000), (3, 8, 2500)] {
            let mut z = vec![0.0f32; k * dim];
            Keyed::new(case).normals(0, Stream::Init, &mut z);
            for (n, p) in z.chunks_exact_mut(dim).enumerate() {
                match case {
                    1 if n % 2 == 0 => p.iter_mut().for_each(|v| *v += 40.0),
                    2 => p.iter_mut().for_each(|v| *v = v.tanh()),
                    3 => {
                        let norm = p.iter().map(|v| v * v).sum::<f32>().sqrt();
                        p.iter_mut().for_each(|v| *v /= norm);
                    }
                    _ => {}
                }
            }
            z.copy_within(0..dim, (k - 1) * dim); // a duplicate point
            let fast = max_pairwise_distance(&z, dim).unwrap();
            let plain = anneal_core::ncsnv2::max_pairwise_distance(&z, dim).unwrap();
            assert_eq!(fast.to_bits(), plain.to_bits(), "case {case}: {fast} vs {plain}");
        }
    }
}
