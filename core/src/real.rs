//! The element types of sample buffers: `f32` (the fast path, and the only float the Cortex-M4F
//! has in hardware) and `f64` (the reference every fast path is checked against).
//!
//! Coefficients are always computed in f64 and converted once per step; elementwise work runs in
//! the buffer's type.

use core::ops::{Add, AddAssign, Mul, MulAssign, Neg, Sub};

/// A buffer element: `f32` or `f64`. Sealed.
pub trait Real:
    Copy
    + Default
    + PartialOrd
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + MulAssign
    + Send
    + Sync
    + sealed::Sealed
    + 'static
{
    /// 0.
    const ZERO: Self;
    /// Converts a coefficient (rounding for f32).
    fn from_f64(v: f64) -> Self;
    /// Widens to f64 (exact).
    fn to_f64(self) -> f64;
    /// Finite (not NaN, not ±∞).
    fn is_finite(self) -> bool;
    /// A standard normal from one 32-bit word, by the inverse normal CDF (see [`crate::noise`]).
    fn normal(w: u32) -> Self;
    /// A uniform in [0, 1) from a 32-bit word.
    fn uniform(w: u32) -> Self;
    /// The slice as `f32`s when `Self` is `f32` (for f32-only fast paths), else `None`.
    fn as_f32_mut(s: &mut [Self]) -> Option<&mut [f32]>;
}

/// 2⁻²⁴: p = (2k + 1)·2⁻²⁴ for the 23-bit k = w >> 9, exact in f32.
const P_SCALE: f32 = 1.0 / 16_777_216.0;

/// Wichura's AS 241 (1988), PPND7: the inverse normal CDF to about 1e-7, in f32, at
/// p = (2k + 1)·2⁻²⁴, k = w >> 9 (so p ∈ (0, 1), symmetric, and q = p − ½ and min(p, 1 − p) are
/// exact). Central region |q| ≤ 0.425 a rational function of q²; tails a rational function of
/// √(−ln min(p, 1 − p)). The pieces are shared with the branch-free lanes of
/// [`crate::noise::lanes`], which must give the same bits.
#[inline]
fn ppnd7(w: u32) -> f32 {
    let (k, q) = ppnd7_q(w);
    if libm::fabsf(q) <= 0.425 {
        return ppnd7_central(q);
    }
    let r = libm::sqrtf(-libm::logf(ppnd7_lower(k)));
    let z = if r <= 5.0 { ppnd7_tail_near(r) } else { ppnd7_tail_far(r) };
    if q < 0.0 { -z } else { z }
}

/// k = w >> 9 and q = p − ½ (exact).
#[inline(always)]
pub(crate) fn ppnd7_q(w: u32) -> (i32, f32) {
    let k = (w >> 9) as i32;
    (k, (2 * k + 1 - (1 << 23)) as f32 * P_SCALE)
}

/// min(p, 1 − p) (exact).
#[inline(always)]
pub(crate) fn ppnd7_lower(k: i32) -> f32 {
    (2 * k.min((1 << 23) - 1 - k) + 1) as f32 * P_SCALE
}

/// PPND7 for |q| ≤ 0.425.
#[inline(always)]
fn ppnd7_central(q: f32) -> f32 {
    let (n, d) = ppnd7_central_parts(q);
    n / d
}

/// The dividend and divisor of PPND7 for |q| ≤ 0.425 (its last operation is their quotient).
#[allow(
    clippy::excessive_precision,
    reason = "the coefficients as published (AS 241); f32 rounds them as any port would"
)]
#[inline(always)]
pub(crate) fn ppnd7_central_parts(q: f32) -> (f32, f32) {
    let r = 0.180625 - q * q;
    (
        q * (((5.9109374720e1 * r + 1.5929113202e2) * r + 5.0434271938e1) * r + 3.3871327179e0),
        ((6.7187563600e1 * r + 7.8757757664e1) * r + 1.7895169469e1) * r + 1.0,
    )
}

/// PPND7's tail magnitude for r = √(−ln min(p, 1 − p)) ≤ 5.
#[inline(always)]
fn ppnd7_tail_near(r: f32) -> f32 {
    let (n, d) = ppnd7_tail_near_parts(r);
    n / d
}

/// The dividend and divisor of PPND7's tail magnitude for r ≤ 5 (its last operation is their
/// quotient).
#[allow(clippy::excessive_precision, reason = "as published (AS 241)")]
#[inline(always)]
pub(crate) fn ppnd7_tail_near_parts(r: f32) -> (f32, f32) {
    let r = r - 1.6;
    (
        ((1.7023821103e-1 * r + 1.3067284816e0) * r + 2.7568153900e0) * r + 1.4234372777e0,
        (1.2021132975e-1 * r + 7.3700164250e-1) * r + 1.0,
    )
}

/// PPND7's tail magnitude for r > 5.
#[allow(clippy::excessive_precision, reason = "as published (AS 241)")]
#[inline(always)]
fn ppnd7_tail_far(r: f32) -> f32 {
    let r = r - 5.0;
    (((1.7337203997e-2 * r + 4.2868294337e-1) * r + 3.0812263860e0) * r + 6.6579051150e0)
        / ((1.2258202635e-2 * r + 2.4197894225e-1) * r + 1.0)
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

impl Real for f32 {
    const ZERO: Self = 0.0;
    #[inline]
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    #[inline]
    fn to_f64(self) -> f64 {
        self as f64
    }
    #[inline]
    fn is_finite(self) -> bool {
        f32::is_finite(self)
    }
    #[inline]
    fn normal(w: u32) -> Self {
        ppnd7(w)
    }
    #[inline]
    fn uniform(w: u32) -> Self {
        (w >> 8) as f32 * (1.0 / 16_777_216.0)
    }
    #[inline]
    fn as_f32_mut(s: &mut [Self]) -> Option<&mut [f32]> {
        Some(s)
    }
}

impl Real for f64 {
    const ZERO: Self = 0.0;
    #[inline]
    fn from_f64(v: f64) -> Self {
        v
    }
    #[inline]
    fn to_f64(self) -> f64 {
        self
    }
    #[inline]
    fn is_finite(self) -> bool {
        f64::is_finite(self)
    }
    #[inline]
    fn normal(w: u32) -> Self {
        // PPND7 in f64, then two Newton steps on Φ(z) = p in the lower tail (erfc keeps the
        // tail's relative precision): quadratic convergence from 1e-7 to full precision.
        let k = (w >> 9) as i64;
        let lower = 2 * k.min((1 << 23) - 1 - k) + 1; // min(p, 1 − p) · 2²⁴, odd
        let r = lower as f64 * P_SCALE as f64;
        let mut z = -libm::fabs(ppnd7(w) as f64);
        for _ in 0..2 {
            let cdf = 0.5 * libm::erfc(-z * core::f64::consts::FRAC_1_SQRT_2);
            let pdf = libm::exp(-0.5 * z * z) * 0.398_942_280_401_432_7;
            z -= (cdf - r) / pdf;
        }
        if k >= 1 << 22 { -z } else { z }
    }
    #[inline]
    fn uniform(w: u32) -> Self {
        (w >> 8) as f64 * (1.0 / 16_777_216.0)
    }
    #[inline]
    fn as_f32_mut(_: &mut [Self]) -> Option<&mut [f32]> {
        None
    }
}
