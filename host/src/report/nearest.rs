//! Each sample's nearest data point in high dimension: the exact f64 sums, screened by an f32
//! Gram product ([`crate::score::gram`]).
//!
//! For a row x and the points m_j: per block of points, the f32 products give every point's
//! approximate squared distance D̃²; the block's approximately nearest point is summed exactly,
//! which bounds the row's nearest distance by U (the least such sum so far), and every point
//! with `D̃² ≤` [`Bounds::within`]`(U)` — every point whose exact sum could be ≤ U — is summed
//! exactly. The nearest is the least exact sum, the first index on ties: every point that
//! reaches it was summed, in index order. So the result is [`super::metrics`]' lane search's,
//! bit for bit (`tests`), at the SGEMM rate instead of f64 lanes: for 1000 samples against
//! 10 000 points in 784-D, ~16 GFLOP of f64 sums become f32 products and a few sums per row.

use rayon::prelude::*;

use crate::score::gemm::{self, Packed};
use crate::score::gram::{self, Bounds, Frame};

/// Rows of a tile.
const ROWS: usize = 64;
/// For each row of `xs`, the nearest of `points` rows `first`, `first + stride`, … (`count` of
/// them, D = `d` < [`gram::MAX_DIM`], all finite): (its index among them, the exact squared
/// distance).
pub fn screened(
    xs: &[f32],
    points: &[f32],
    d: usize,
    first: usize,
    stride: usize,
    count: usize,
) -> Vec<(usize, f64)> {
    let n = xs.len() / d;
    let point = |j: usize| &points[(first + j * stride) * d..(first + j * stride + 1) * d];
    let centre = gram::centroid((0..count).map(point), d);
    let radius = |x: &[f32]| gram::radius(x, &centre);
    let rmax = (0..count)
        .into_par_iter()
        .map(|j| radius(point(j)))
        .chain(xs.par_chunks_exact(d).map(radius))
        .reduce(|| 0.0, f64::max);
    if rmax == 0.0 {
        // Every row and point equals the centre: every sum is 0, the first point the nearest.
        return vec![(0, 0.0); n];
    }
    let frame = Frame::new(centre, rmax);
    let norm = |z: &mut Vec<f32>, x: &[f32]| {
        z.clear();
        frame.push_z(x, z);
        gram::norm2(z)
    };
    let norms_m: Vec<f64> =
        (0..count).into_par_iter().map_init(Vec::new, |z, j| norm(z, point(j))).collect();
    let norms_x: Vec<f64> = xs.par_chunks_exact(d).map_init(Vec::new, |z, x| norm(z, x)).collect();
    let zmax2 = norms_m.iter().chain(&norms_x).fold(0.0f64, |a, &b| a.max(b));
    let bounds = frame.bounds(zmax2);
    let packed = Packed::from_fn(d, count, |p, j| frame.z_at(point(j), p));
    let width = gram::tile_width(d);
    let search =
        Search { frame: &frame, bounds: &bounds, packed: &packed, norms_m: &norms_m, width };
    xs.par_chunks(ROWS * d)
        .zip(norms_x.par_chunks(ROWS))
        .flat_map_iter(|(block, nx)| search.block(block, nx, d, &point))
        .collect()
}

/// What every block of rows shares.
struct Search<'a> {
    frame: &'a Frame,
    bounds: &'a Bounds,
    packed: &'a Packed<'a>,
    norms_m: &'a [f64],
    width: usize,
}

impl Search<'_> {
    /// The nearest point of each row of `block` (with its ‖z‖², `nx`).
    fn block<'p>(
        &self,
        block: &[f32],
        nx: &[f64],
        d: usize,
        point: &impl Fn(usize) -> &'p [f32],
    ) -> Vec<(usize, f64)> {
        let (n, count, width) = (block.len() / d, self.norms_m.len(), self.width);
        let mut z = Vec::with_capacity(n * d);
        block.chunks_exact(d).for_each(|x| self.frame.push_z(x, &mut z));
        let rows: Vec<&[f32]> = z.chunks_exact(d).collect();
        let mut best = vec![(0usize, f64::INFINITY); n];
        let mut bound = vec![f64::INFINITY; n];
        let mut tile = vec![0.0f32; n * width];
        for c0 in (0..count).step_by(width) {
            let len = width.min(count - c0);
            gemm::gemm_cols(&rows, self.packed, c0, len, &mut tile, width);
            let nm = &self.norms_m[c0..c0 + len];
            for (i, g) in tile.chunks_exact(width).enumerate() {
                let (x, g, ni) = (&block[i * d..(i + 1) * d], &g[..len], nx[i]);
                let (mut jmin, mut amin) = (0, f64::INFINITY);
                for (j, (&g, &nm)) in g.iter().zip(nm).enumerate() {
                    let a = gram::approx(ni, nm, g);
                    if a < amin {
                        (jmin, amin) = (j, a);
                    }
                }
                bound[i] = bound[i].min(gram::exact(x, point(c0 + jmin)));
                let t = self.bounds.within(bound[i]);
                for (j, (&g, &nm)) in g.iter().zip(nm).enumerate() {
                    if gram::approx(ni, nm, g) <= t {
                        let v = gram::exact(x, point(c0 + j));
                        if v < best[i].1 {
                            best[i] = (c0 + j, v);
                        }
                    }
                }
            }
        }
        best
    }
}
