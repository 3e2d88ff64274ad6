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
//! 2. The points, by decreasing distance r to their centroid c, in the frame of
//!    [`crate::score::gram`] (translated by c, scaled by a power of two, rounded to f32: z_i).
//! 3. Tiles of the lower triangle of G = Z Zᵀ, and each pair's approximate squared distance D̃²
//!    ([`gram::approx`]). A pair whose D̃² reaches [`gram::Bounds::above`]`(L)` — every pair whose exact
//!    sum could exceed L does ([`crate::score::gram`] proves the bound) — has its f64 sum taken;
//!    a larger one becomes L.
//! 4. Tiles whose pairs are all out of reach by the triangle inequality (`‖x_i − x_j‖ ≤ r_i +
//!    r_j`, with r decreasing along the order) are not computed: on low-dimensional data most of
//!    the triangle is skipped. The pruning compares `(r_i + r_j)(1 + 10⁻⁹)` with √L, as the
//!    bound's own rounding is about D·10⁻¹⁶ relative.
//!
//! The result does not depend on the order in which tiles finish: it is the largest f64 sum,
//! and every pair that could exceed it was summed. (`tests` compare the bits with the core's
//! double loop, on data where the screen keeps almost nothing and on data where every pair is a
//! tie.)
//!
//! Memory: 20 bytes per point (the order, r, then ‖z‖² in its place), as the triangle pruning
//! alone took, and per thread a block of columns of z (made and packed once per task, then
//! multiplied by every block of rows below it), a block of rows of z (made per tile: 1/width
//! of its products) and the tile of G ([`ROWS`] × [`gram::tile_width`] columns).

use rayon::prelude::*;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::CoreError;
use crate::score::gemm::{self, Packed};
use crate::score::gram::{self, Frame};

/// Below this many points the core's plain double loop is used (it is as fast there).
pub const PLAIN_BELOW: usize = 64;
/// From this dimension on the core's loop is used (the bounds take D < 2¹⁷).
const MAX_DIM: usize = gram::MAX_DIM;
/// Rows of a tile of G.
const ROWS: usize = 256;
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
    gram::exact(&points[i * dim..(i + 1) * dim], &points[j * dim..(j + 1) * dim])
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
    let centre = gram::centroid(points.chunks_exact(dim), dim);
    let r: Vec<f64> = points.par_chunks_exact(dim).map(|p| gram::radius(p, &centre)).collect();
    let mut order: Vec<u32> = (0..k as u32).collect();
    order.par_sort_unstable_by(|&a, &b| r[b as usize].total_cmp(&r[a as usize]).then(a.cmp(&b)));
    let radius: Vec<f64> = order.iter().map(|&i| r[i as usize]).collect();
    drop(r);
    if radius[0] == 0.0 {
        // Every coordinate equals the centroid's: one point, K times.
        return Ok(0.0);
    }
    // The rows z_i (in the order), made when a tile needs them (not held: K·D more values).
    let frame = Frame::new(centre, radius[0]);
    let rows_z = |from: usize, to: usize, out: &mut Vec<f32>| {
        out.clear();
        for &i in &order[from..to] {
            frame.push_z(&points[i as usize * dim..(i as usize + 1) * dim], out);
        }
    };
    let norms: Vec<f64> = (0..k)
        .into_par_iter()
        .map_init(Vec::new, |z, i| {
            rows_z(i, i + 1, z);
            gram::norm2(z)
        })
        .collect();
    let bounds = frame.bounds(norms.iter().fold(0.0f64, |a, &b| a.max(b)));
    let width = gram::tile_width(dim);
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
            let mut t = bounds.above(l);
            let mut found = false;
            for (ii, g) in tile.chunks_exact(width).enumerate() {
                let i = p0 + ii;
                let n = (reach - c0).min(i.saturating_sub(c0));
                let (g, nj, ni) = (&g[..n], &norms[c0..c0 + n], norms[i]);
                if g.iter().zip(nj).filter(|&(&g, &nj)| gram::approx(ni, nj, g) >= t).count() == 0 {
                    continue;
                }
                for (jj, (&g, &nj)) in g.iter().zip(nj).enumerate() {
                    if gram::approx(ni, nj, g) >= t {
                        let v = d2(points, dim, order[i] as usize, order[c0 + jj] as usize);
                        if v > l {
                            (l, t, found) = (v, bounds.above(v), true);
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
