//! NCSNv2's Technique 1 for many points: the largest pairwise distance, exact and fast.
//!
//! The core's [`anneal_core::ncsnv2::max_pairwise_distance`] sums every pair's squared distance
//! in f64, one coordinate after another: O(K²·D) scalar operations (0.1 s for the 1797 digits,
//! half a minute for 10 000 points in 784-D). Here the result is the same value — the same bits:
//! the largest of the same f64 sums ([`d2`]) — but the pairs are screened by a single-precision
//! Gram product ([`crate::score::gemm`], at the SGEMM rate) and only the few that may beat the
//! best sum found so far are summed in f64.
//!
//! 1. A first best sum L: a double sweep (the farthest point from point 0, then from that one,
//!    four times), each distance the exact sum.
//! 2. The points, by decreasing distance r to their centroid c, translated by c, scaled by a power
//!    of two s (so that the largest is about 1 long; exact) and rounded to f32: the rows z_i.
//! 3. Tiles of the lower triangle of G = Z Zᵀ (f32, each element one fused multiply-add chain),
//!    and the approximate squared distance `D̃²_ij = fl(fl(N_i + N_j) − 2 G_ij)` in f64, with
//!    `N_i = ‖z_i‖²` summed in f64. A pair whose D̃² reaches the threshold T(L) below has its f64
//!    sum taken; a larger one becomes L.
//! 4. Tiles whose pairs are all out of reach by the triangle inequality (`‖x_i − x_j‖ ≤ r_i +
//!    r_j`, with r decreasing along the order) are not computed: on low-dimensional data most of
//!    the triangle is skipped.
//!
//! **No pair that could beat L is skipped.** With `u = 2⁻²⁴`, `u₆₄ = 2⁻⁵³`, δ = ‖x_i − x_j‖ (real)
//! and Z the largest ‖z_i‖:
//! - rounding to f32 moves each coordinate by at most `2u|z_p| + 2⁻¹⁴⁹` (the f64 difference and
//!   the f32 rounding, or f32's subnormal spacing), so each row by at most
//!   `ρ = 2uZ + √D·2⁻¹⁴⁹`, and since c cancels in the difference, `|‖z_i − z_j‖ − sδ| ≤ 2ρ`;
//! - a chain of D fused multiply-adds errs by at most `γ_D Σ_p|z_ip z_jp| + D·2⁻¹⁴⁹` (`γ_D =
//!   Du/(1 − Du)`; the second term for subnormal results) `≤ γ_D Z² + D·2⁻¹⁴⁹`; N_i (D exact
//!   squares summed) by `γ₆₄,D·Z²`, and the two f64 operations of D̃² by `2u₆₄(N_i + N_j + 2|G|)`;
//!   together `|D̃² − ‖z_i − z_j‖²| ≤ E = 2γ_D Z² + (5D + 20)u₆₄Z² + D·2⁻¹⁴⁶`;
//! - the core's sum is `δ²(1 + θ)` with `|θ| ≤ γ₆₄,D+2` (a rounded difference, a rounded square,
//!   D − 1 rounded additions), so a sum above L needs `sδ > s√L (1 − 2(D + 3)u₆₄)`, taken here as
//!   `R = s√L (1 − 10⁻⁹)` (D < 2¹⁷, so 10⁻⁹ also covers the rounding of R itself);
//! - so it needs `‖z_i − z_j‖ > R − 2ρ` and `D̃² > (R − 2ρ)² − E`: the threshold is
//!   `T = (R − 2ρ)²(1 − 10⁻¹²) − E` (every pair when R ≤ 2ρ).
//!
//! The tiles' pruning compares `(r_i + r_j)(1 + 10⁻⁹)` with √L, as the bound's own rounding is
//! about D·10⁻¹⁶ relative. The result does not depend on the order in which tiles finish: it is
//! the largest f64 sum, and every pair that could exceed it was summed. (`tests` compare the bits
//! with the core's double loop, on data where the screen keeps almost nothing and on data where
//! every pair is a tie.)
//!
//! Memory: 20 bytes per point (the order, r, then ‖z‖² in its place), as the triangle pruning
//! alone took, and per thread a block of columns of z (made and packed once per task, then
//! multiplied by every block of rows below it), a block of rows of z (made per tile: 1/width
//! of its products) and the tile of G ([`ROWS`] × at most [`COLS`] columns, whose values stay
//! within [`TILE_VALUES`]).

use rayon::prelude::*;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::CoreError;
use crate::score::gemm::{self, Packed};

/// Below this many points the core's plain double loop is used (it is as fast there).
pub const PLAIN_BELOW: usize = 64;
/// From this dimension on the core's loop is used (the bounds above take D < 2¹⁷).
const MAX_DIM: usize = 1 << 17;
/// Rows of a tile of G.
const ROWS: usize = 256;
/// Columns of a tile of G, at most (a multiple of [`gemm::NR`]).
const COLS: usize = 1024;
/// The values of a tile's columns, at most (256 Ki: 1 MiB of f32).
const TILE_VALUES: usize = 1 << 18;

/// A thread's scratch: a tile's rows and columns (z, row-major) and its block of G.
#[derive(Default)]
struct Scratch {
    rows: Vec<f32>,
    cols: Vec<f32>,
    tile: Vec<f32>,
}
/// The triangle inequality's margin over its rounding.
const MARGIN: f64 = 1.0 + 1e-9;

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
/// value.
pub fn max_pairwise_distance(points: &[f32], dim: usize) -> Result<f64, CoreError> {
    let k = points.len().checked_div(dim).unwrap_or(0);
    if k < PLAIN_BELOW || dim >= MAX_DIM || !points.len().is_multiple_of(dim) {
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
    drop(r);
    if radius[0] == 0.0 {
        // Every coordinate equals the centroid's: one point, K times.
        return Ok(0.0);
    }
    // The rows z_i (in the order), scaled by s = 2⁻ᵉ with 2^(e−1) < r_max ≤ 2^e, made when a
    // tile needs them (not held: K·D more values).
    let e = radius[0].log2().ceil() as i32;
    let s = f64::from_bits(((1023 - e) as u64) << 52);
    let rows_z = |from: usize, to: usize, out: &mut Vec<f32>| {
        out.clear();
        for &i in &order[from..to] {
            let x = &points[i as usize * dim..(i as usize + 1) * dim];
            out.extend(x.iter().zip(&centre).map(|(&x, c)| ((x as f64 - c) * s) as f32));
        }
    };
    let norms: Vec<f64> = (0..k)
        .into_par_iter()
        .map_init(Vec::new, |z, i| {
            rows_z(i, i + 1, z);
            z.iter().map(|&v| v as f64 * v as f64).sum()
        })
        .collect();
    let (d, u, u64_) = (dim as f64, f32::EPSILON as f64 * 0.5, f64::EPSILON * 0.5);
    let zmax2 = norms.iter().fold(0.0f64, |a, &b| a.max(b)) * (1.0 + 1e-12);
    let rho = 2.0 * u * zmax2.sqrt() + d.sqrt() * 2f64.powi(-149);
    let gamma = d * u / (1.0 - d * u);
    let err = 2.0 * gamma * zmax2 + (5.0 * d + 20.0) * u64_ * zmax2 + d * 2f64.powi(-146);
    let threshold = |l: f64| {
        let reach = l.sqrt() * s * (1.0 - 1e-9) - 2.0 * rho;
        if reach <= 0.0 { f64::NEG_INFINITY } else { reach * reach * (1.0 - 1e-12) - err }
    };
    // Columns per tile: up to COLS, their values within TILE_VALUES.
    let width = (TILE_VALUES / dim).clamp(gemm::NR, COLS) / gemm::NR * gemm::NR;
    let shared = AtomicU64::new(best.to_bits()); // non-negative f64s order as their bits
    // A task per block of columns, packed once, against the blocks of rows below it (pairs
    // (i, j) with j < i), until a block's rows are out of reach of every column in it.
    (0..k.div_ceil(width)).into_par_iter().for_each_init(Scratch::default, |scratch, cb| {
        let (c0, c1) = (cb * width, ((cb + 1) * width).min(k));
        let Scratch { rows: z, cols: zc, tile } = scratch;
        rows_z(c0, c1, zc);
        let packed = Packed::transposed(zc, c1 - c0, dim);
        for b in (c0 + 1) / ROWS..k.div_ceil(ROWS) {
            let (p0, p1) = (b * ROWS, ((b + 1) * ROWS).min(k));
            let mut l = f64::from_bits(shared.load(Ordering::Relaxed));
            // Columns from `reach` on are out of reach of every row here, and of every later
            // block (its radii are smaller, L larger).
            let reach = radius[..p1 - 1]
                .partition_point(|&rq| (radius[p0] + rq) * MARGIN > l.sqrt())
                .min(c1);
            if reach <= c0 {
                break;
            }
            rows_z(p0, p1, z);
            let rows: Vec<&[f32]> = z.chunks_exact(dim).collect();
            tile.resize((p1 - p0) * width, 0.0f32);
            gemm::gemm_rows_here(&rows, &packed, tile, width);
            let mut t = threshold(l);
            let mut found = false;
            for (ii, g) in tile.chunks_exact(width).enumerate() {
                let i = p0 + ii;
                let n = (reach - c0).min(i.saturating_sub(c0));
                let (g, nj, ni) = (&g[..n], &norms[c0..c0 + n], norms[i]);
                if g.iter().zip(nj).filter(|&(&g, &nj)| (ni + nj) - 2.0 * g as f64 >= t).count()
                    == 0
                {
                    continue;
                }
                for (jj, (&g, &nj)) in g.iter().zip(nj).enumerate() {
                    if (ni + nj) - 2.0 * g as f64 >= t {
                        let v = d2(points, dim, order[i] as usize, order[c0 + jj] as usize);
                        if v > l {
                            (l, t, found) = (v, threshold(v), true);
                        }
                    }
                }
            }
            if found {
                shared.fetch_max(l.to_bits(), Ordering::Relaxed);
            }
        }
    });
    Ok(f64::from_bits(shared.load(Ordering::Relaxed)).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;
    use anneal_core::noise::{Keyed, Noise, Stream};

    /// The same bits as the core's full double loop, on data that prune well (Gaussian, two
    /// clusters, a cube) and on data that do not (a sphere, 784-D Gaussian), with duplicated
    /// points; at the sizes where the tiles are partly filled and where they are not.
    #[test]
    fn equals_the_plain_double_loop() {
        for (case, dim, k) in [
            (0, 10, 4000),
            (1, 3, 5000),
            (2, 2, 3000),
            (3, 8, 2500),
            (0, 784, 600),
            (0, 1, 2000),
            (0, 64, PLAIN_BELOW),
            (1, 33, 1300),
        ] {
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
            same_as_core(&z, dim, &format!("case {case}, D = {dim}, K = {k}"));
        }
    }

    fn same_as_core(z: &[f32], dim: usize, what: &str) {
        let fast = max_pairwise_distance(z, dim).unwrap();
        let plain = anneal_core::ncsnv2::max_pairwise_distance(z, dim).unwrap();
        assert_eq!(fast.to_bits(), plain.to_bits(), "{what}: {fast} vs {plain}");
    }

    /// Where the screen cannot separate the pairs: every pair at the same distance (the corners
    /// of a simplex: one-hot rows), all points equal, points whose difference is at the f32
    /// rounding of their offset, and scales where the f32 products would overflow or underflow
    /// without the power-of-two scaling.
    #[test]
    fn ties_and_extreme_scales_give_the_core_value() {
        let k = 200;
        let onehot: Vec<f32> = (0..k * k).map(|n| if n / k == n % k { 1.0 } else { 0.0 }).collect();
        same_as_core(&onehot, k, "one-hot");
        same_as_core(&vec![3.5f32; k * 5], 5, "equal points");
        let offset: Vec<f32> =
            (0..k * 4).map(|n| 1e6 + (n % 7) as f32 * 0.0625 * (n % 3) as f32).collect();
        same_as_core(&offset, 4, "far from the origin");
        let mut g = vec![0.0f32; k * 16];
        Keyed::new(9).normals(0, Stream::Init, &mut g);
        for scale in [1e30f32, 1e-30, 1e-42] {
            let x: Vec<f32> = g.iter().map(|v| v * scale).collect();
            same_as_core(&x, 16, &format!("scale {scale:e}"));
        }
        let mut outlier = g.clone();
        outlier[16 * 77 + 3] = 1e20;
        same_as_core(&outlier, 16, "one outlier");
    }
}
