//! Squared distances screened by a single-precision Gram product, with a rigorous bound.
//!
//! Technique 1 (the largest pairwise distance, [`crate::config::diameter`]) and the metrics'
//! nearest data points ([`crate::report::metrics`]) are defined by f64 sums, one pair at a time
//! in coordinate order: `d2(x, m) = Σ_p fl(fl(x_p − m_p)²)` summed from 0. Computing them for
//! every pair costs O(K²·D) scalar f64 operations. Instead the points are moved into a frame
//! where an f32 Gram product ([`crate::score::gemm`], at the SGEMM rate) gives every pair's
//! squared distance to within a proved bound, and only the pairs that this cannot settle are
//! summed exactly: the results are the exact sums' (the same bits).
//!
//! **The frame.** Translated by a centre c (any f64 vector: it cancels in differences), scaled by
//! a power of two s (exact) so that the longest is about 1, and rounded to f32: `z =
//! fl32(fl64(x − c)·s)`. `N = ‖z‖²` is summed in f64, `G = z_x·z_m` is one chain of D fused
//! multiply-adds in f32, and the approximate squared distance is `D̃² = fl(fl(N_x + N_m) − 2G)`
//! ([`approx`]).
//!
//! **The bound.** With `u = 2⁻²⁴`, `u₆₄ = 2⁻⁵³`, δ = ‖x − m‖ (real) and Z ≥ every ‖z‖:
//! - rounding to f32 moves each coordinate by at most `2u|z_p| + 2⁻¹⁴⁹` (the f64 difference and
//!   the f32 rounding, or f32's subnormal spacing), so each point by at most
//!   `ρ = 2uZ + √D·2⁻¹⁴⁹`, and since c cancels, `|‖z_x − z_m‖ − sδ| ≤ 2ρ`;
//! - a chain of D fused multiply-adds errs by at most `γ_D Σ_p|z_xp z_mp| + D·2⁻¹⁴⁹` (`γ_D =
//!   Du/(1 − Du)`; the second term for subnormal results) `≤ γ_D Z² + D·2⁻¹⁴⁹`; N (D exact
//!   squares summed) by `γ₆₄,D·Z²`, and the two f64 operations of D̃² by `2u₆₄(N_x + N_m + 2|G|)`;
//!   together `|D̃² − ‖z_x − z_m‖²| ≤ E = 2γ_D Z² + (5D + 20)u₆₄Z² + D·2⁻¹⁴⁶`;
//! - the exact sum is `d2 = δ²(1 + θ)` with `|θ| ≤ γ₆₄,D+2` (a rounded difference, a rounded
//!   square, D − 1 rounded additions), within `2(D + 3)u₆₄ < 10⁻⁹` relative for D < 2¹⁷ — which
//!   also covers the rounding of the thresholds themselves.
//!
//! So ([`Bounds::above`]) a pair with `d2 > L` has `sδ > R = s√L(1 − 10⁻⁹)`, `‖z_x − z_m‖ > R − 2ρ`
//! and `D̃² > (R − 2ρ)² − E`; and ([`Bounds::within`]) a pair with `d2 ≤ U` has `sδ ≤ R =
//! s√U(1 + 10⁻⁹)`, `‖z_x − z_m‖ ≤ R + 2ρ` and `D̃² ≤ (R + 2ρ)² + E`. Each threshold carries a
//! further 10⁻¹² relative margin for its own roundings.

/// The largest dimension the bounds are stated for.
pub const MAX_DIM: usize = 1 << 17;

/// The frame: a centre and a power-of-two scale.
pub struct Frame {
    centre: Vec<f64>,
    s: f64,
}

/// The thresholds of a frame, for points whose ‖z‖² are at most a given bound.
pub struct Bounds {
    s: f64,
    rho: f64,
    err: f64,
}

/// Columns of a tile of G, at most (a multiple of [`crate::score::gemm::NR`]).
const COLS: usize = 1024;
/// The values of a tile's columns, at most (256 Ki: 1 MiB of f32).
const TILE_VALUES: usize = 1 << 18;

/// Columns per tile of G for points of D = `d`: up to [`COLS`], their values within
/// [`TILE_VALUES`], a multiple of the GEMM's panel width.
pub fn tile_width(d: usize) -> usize {
    use crate::score::gemm::NR;
    (TILE_VALUES / d).clamp(NR, COLS) / NR * NR
}

/// The mean of `points` (rows of D = `d`), summed in f64 in order: the frame's centre.
pub fn centroid<'a>(points: impl Iterator<Item = &'a [f32]>, d: usize) -> Vec<f64> {
    let mut centre = vec![0.0f64; d];
    let mut count = 0usize;
    for p in points {
        centre.iter_mut().zip(p).for_each(|(c, &v)| *c += v as f64);
        count += 1;
    }
    centre.iter_mut().for_each(|c| *c /= count.max(1) as f64);
    centre
}

/// ‖x − c‖ in f64 (the radii that [`Frame::new`] and the triangle pruning take).
#[inline]
pub fn radius(x: &[f32], centre: &[f64]) -> f64 {
    x.iter().zip(centre).map(|(&v, c)| (v as f64 - c).powi(2)).sum::<f64>().sqrt()
}

/// The approximate squared distance from the norms and the f32 product.
#[inline(always)]
pub fn approx(nx: f64, nm: f64, g: f32) -> f64 {
    (nx + nm) - 2.0 * g as f64
}

/// ‖z‖² summed in f64 (each square exact).
#[inline]
pub fn norm2(z: &[f32]) -> f64 {
    z.iter().map(|&v| v as f64 * v as f64).sum()
}

/// The exact sum, `Σ_p fl(fl(x_p − m_p)²)` in coordinate order from 0.
#[inline(always)]
pub fn exact(x: &[f32], m: &[f32]) -> f64 {
    x.iter()
        .zip(m)
        .map(|(&a, &b)| {
            let t = a as f64 - b as f64;
            t * t
        })
        .sum()
}

impl Frame {
    /// The frame of centre `centre` (D = its length, < 2¹⁷) for points within `rmax` of it
    /// (positive, finite): s = 2⁻ᵉ with `2^(e−1) < rmax ≤ 2^e`, so that every ‖z‖ ≲ 1.
    pub fn new(centre: Vec<f64>, rmax: f64) -> Self {
        let e = rmax.log2().ceil() as i32;
        Frame { centre, s: f64::from_bits(((1023 - e) as u64) << 52) }
    }

    /// Appends x's z to `out`.
    #[inline]
    pub fn push_z(&self, x: &[f32], out: &mut Vec<f32>) {
        let s = self.s;
        out.extend(x.iter().zip(&self.centre).map(|(&x, c)| ((x as f64 - c) * s) as f32));
    }

    /// z's value at coordinate p for x (to pack without a copy of the rows).
    #[inline]
    pub fn z_at(&self, x: &[f32], p: usize) -> f32 {
        ((x[p] as f64 - self.centre[p]) * self.s) as f32
    }

    /// The thresholds for points whose ‖z‖² are at most `zmax2`.
    pub fn bounds(&self, zmax2: f64) -> Bounds {
        let (d, u, u64_) =
            (self.centre.len() as f64, f32::EPSILON as f64 * 0.5, f64::EPSILON * 0.5);
        let zmax2 = zmax2 * (1.0 + 1e-12);
        let gamma = d * u / (1.0 - d * u);
        Bounds {
            s: self.s,
            rho: 2.0 * u * zmax2.sqrt() + d.sqrt() * 2f64.powi(-149),
            err: 2.0 * gamma * zmax2 + (5.0 * d + 20.0) * u64_ * zmax2 + d * 2f64.powi(-146),
        }
    }
}

impl Bounds {
    /// Every pair whose exact sum exceeds `l` has `D̃² ≥` this (−∞: every pair).
    pub fn above(&self, l: f64) -> f64 {
        let reach = l.sqrt() * self.s * (1.0 - 1e-9) - 2.0 * self.rho;
        if reach <= 0.0 { f64::NEG_INFINITY } else { reach * reach * (1.0 - 1e-12) - self.err }
    }

    /// Every pair whose exact sum is at most `u` has `D̃² ≤` this.
    pub fn within(&self, u: f64) -> f64 {
        let reach = u.sqrt() * self.s * (1.0 + 1e-9) + 2.0 * self.rho;
        reach * reach * (1.0 + 1e-12) + self.err
    }
}
