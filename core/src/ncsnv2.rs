//! NCSNv2's techniques for choosing the noise levels and the Langevin step size
//! (Song & Ermon 2020, "Improved techniques for training score-based generative models", §3–4).
//!
//! - Technique 1 ([`max_pairwise_distance`]): σ_1 = the largest Euclidean distance between two
//!   training points.
//! - Technique 2 ([`technique2_growth`], [`technique2_levels`]): the growth factor g = σ_{i−1}/σ_i
//!   ([`Growth`], NCSNv2's γ) solving `Φ(√(2D)(g−1) + 3g) − Φ(√(2D)(g−1) − 3g) = C` (C = 0.5 by
//!   default), found by bisection; then N = 1 + ⌈ln(σ_1/σ_N)/ln g⌉.
//! - Technique 4 ([`prop3_ratio`], [`technique4_eps`]): Proposition 3's closed form for s_T²/σ_i²
//!   after T Langevin steps at a level, and the ε (NCSNv2 convention) that brings it closest to 1.
//!
//! Departures: Proposition 3's `2ε/(σ_N² − σ_N² r²)` with `r = 1 − ε/σ_N²` is evaluated as
//! `2/(2 − u)`, `u = ε/σ_N²` (the same quantity without the 0/0 at small ε). Technique 4 is a
//! log-spaced grid search, as the paper advises, refined by golden-section search in the best
//! cell.

use crate::error::{Error, Param, positive};
use crate::schedule::Growth;

/// Technique 1: the maximum Euclidean distance between any two of the points in `points`
/// (row-major, `dim` values per point). O(n² D); computed in f64.
pub fn max_pairwise_distance<T: Copy + Into<f64>>(points: &[T], dim: usize) -> Result<f64, Error> {
    if dim == 0 {
        return Err(Error::OutOfRange { param: Param::Dim, value: 0.0, allowed: "≥ 1" });
    }
    if !points.len().is_multiple_of(dim) {
        return Err(Error::DimensionMismatch {
            expected: (points.len() / dim + 1) * dim,
            found: points.len(),
        });
    }
    let n = points.len() / dim;
    if n < 2 {
        return Err(Error::TooFewPoints { points: n, min: 2 });
    }
    if let Some(index) = points.iter().position(|&v| !v.into().is_finite()) {
        return Err(Error::NonFiniteInput { index });
    }
    let mut best = 0.0f64;
    for (i, a) in points.chunks_exact(dim).enumerate() {
        for b in points.chunks_exact(dim).skip(i + 1) {
            let d2: f64 = a
                .iter()
                .zip(b)
                .map(|(&x, &y)| {
                    let d = x.into() - y.into();
                    d * d
                })
                .sum();
            best = best.max(d2);
        }
    }
    Ok(libm::sqrt(best))
}

/// Φ, the standard normal CDF, through `erfc` (accurate in both tails).
pub fn normal_cdf(x: f64) -> f64 {
    0.5 * libm::erfc(-x / core::f64::consts::SQRT_2)
}

/// The left side of Technique 2: `Φ(√(2D)(g−1) + 3g) − Φ(√(2D)(g−1) − 3g)` for `g = exp(ln_g)`.
pub fn technique2_objective(dim: usize, growth: Growth) -> f64 {
    let g = growth.value();
    let gm1 = libm::expm1(growth.ln());
    let m = libm::sqrt(2.0 * dim as f64) * gm1;
    normal_cdf(m + 3.0 * g) - normal_cdf(m - 3.0 * g)
}

/// Technique 2: the growth factor g > 1 with `technique2_objective(dim, g) = c`, by bisection on
/// ln g to full f64 precision. `c` ∈ (0, 1); C = 0.5 is the paper's choice.
pub fn technique2_growth(dim: usize, c: f64) -> Result<Growth, Error> {
    if dim == 0 {
        return Err(Error::OutOfRange { param: Param::Dim, value: 0.0, allowed: "≥ 1" });
    }
    if !(c > 0.0 && c < 1.0) {
        return Err(Error::OutOfRange {
            param: Param::C,
            value: c,
            allowed: "in (0, 1); 0.5 is NCSNv2's choice",
        });
    }
    let f = |ln_g: f64| match Growth::from_ln(ln_g) {
        Some(g) => technique2_objective(dim, g) - c,
        None => f64::NAN,
    };
    // At g → 1 the objective is Φ(3) − Φ(−3) ≈ 0.9973; it decreases with g (for D ≥ 5 to 0).
    let mut lo = 1e-300f64;
    if !(f(lo) > 0.0) {
        return Err(Error::NoGrowth { dim, c });
    }
    let mut hi = 1e-3f64;
    while f(hi) > 0.0 {
        lo = hi;
        hi *= 2.0;
        if hi > 50.0 {
            return Err(Error::NoGrowth { dim, c });
        }
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if mid <= lo || mid >= hi {
            break;
        }
        if f(mid) > 0.0 {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Growth::from_ln(0.5 * (lo + hi)).ok_or(Error::NoGrowth { dim, c })
}

/// The number of levels Technique 2 implies: N = 1 + ⌈ln(σ_1/σ_N)/ln g⌉.
pub fn technique2_levels(sigma_max: f64, sigma_min: f64, growth: Growth) -> Result<usize, Error> {
    crate::schedule::Geometric::with_growth(sigma_max, sigma_min, growth)
        .map(|g| crate::schedule::Schedule::levels(&g))
}

/// Proposition 3: s_T²/σ_i² after T Langevin steps (NCSNv2 convention, `α_i = ε σ_i²/σ_N²`) at a
/// level of a geometric schedule with growth g, starting from `N(0, g² σ_i² I)`, for one-point
/// data. Valid for 0 < ε < 2σ_N²; outside it the chain diverges and the value is `+∞`.
///
/// `s_T²/σ_i² = r^(2T) (g² − A) + A`, `r = 1 − u`, `A = 2/(2 − u)`, `u = ε/σ_N²`.
pub fn prop3_ratio(eps: f64, sigma_min: f64, growth: Growth, steps: u32) -> f64 {
    let u = eps / (sigma_min * sigma_min);
    if !(u > 0.0 && u < 2.0) {
        return f64::INFINITY;
    }
    let g = growth.value();
    let a = 2.0 / (2.0 - u);
    let r2t = libm::pow(1.0 - u, 2.0 * steps as f64);
    r2t * (g * g - a) + a
}

/// The result of Technique 4.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Technique4 {
    /// ε in NCSNv2's convention (α_i = ε σ_i²/σ_N²).
    pub eps: f64,
    /// s_T²/σ_i² at that ε (Proposition 3).
    pub ratio: f64,
}

/// Technique 4: for T steps per level, the ε (NCSNv2 convention) that brings Proposition 3's
/// s_T²/σ_i² closest to 1. A log-spaced grid of 4001 points over u = ε/σ_N² ∈ [1e-10, 1], then
/// golden-section search in the best cell.
pub fn technique4_eps(sigma_min: f64, growth: Growth, steps: u32) -> Result<Technique4, Error> {
    let sigma_min = positive(Param::SigmaMin, sigma_min)?;
    if steps == 0 {
        return Err(Error::OutOfRange {
            param: Param::StepsPerLevel, value: 0.0, allowed: "≥ 1"
        });
    }
    let s2 = sigma_min * sigma_min;
    let cost =
        |ln_u: f64| libm::fabs(prop3_ratio(libm::exp(ln_u) * s2, sigma_min, growth, steps) - 1.0);
    const GRID: usize = 4001;
    let (lo, hi) = (libm::log(1e-10), 0.0f64);
    let at = |k: usize| lo + (hi - lo) * k as f64 / (GRID - 1) as f64;
    let mut best = 0usize;
    let mut best_cost = f64::INFINITY;
    for k in 0..GRID {
        let c = cost(at(k));
        if c < best_cost {
            best_cost = c;
            best = k;
        }
    }
    // Golden-section search on [at(best−1), at(best+1)].
    let mut a = at(best.saturating_sub(1));
    let mut b = at((best + 1).min(GRID - 1));
    let phi = 0.5 * (libm::sqrt(5.0) - 1.0);
    let mut x1 = b - phi * (b - a);
    let mut x2 = a + phi * (b - a);
    let (mut f1, mut f2) = (cost(x1), cost(x2));
    for _ in 0..200 {
        if b - a < 1e-14 {
            break;
        }
        if f1 < f2 {
            b = x2;
            x2 = x1;
            f2 = f1;
            x1 = b - phi * (b - a);
            f1 = cost(x1);
        } else {
            a = x1;
            x1 = x2;
            f1 = f2;
            x2 = a + phi * (b - a);
            f2 = cost(x2);
        }
    }
    let ln_u = if cost(0.5 * (a + b)) <= best_cost { 0.5 * (a + b) } else { at(best) };
    let eps = libm::exp(ln_u) * s2;
    Ok(Technique4 { eps, ratio: prop3_ratio(eps, sigma_min, growth, steps) })
}
