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
    /// Two standard normals by Box–Muller from two 32-bit words (see [`crate::noise`]).
    fn normal_pair(w0: u32, w1: u32) -> (Self, Self);
    /// A uniform in [0, 1) from a 32-bit word.
    fn uniform(w: u32) -> Self;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

impl Real for f32 {
    const ZERO: Self = 0.0;
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    fn to_f64(self) -> f64 {
        self as f64
    }
    fn is_finite(self) -> bool {
        f32::is_finite(self)
    }
    fn normal_pair(w0: u32, w1: u32) -> (Self, Self) {
        // 24-bit uniforms, exact in f32: u1 ∈ (0, 1], u2 ∈ [0, 1).
        const SCALE: f32 = 1.0 / 16_777_216.0;
        let u1 = ((w0 >> 8) + 1) as f32 * SCALE;
        let u2 = (w1 >> 8) as f32 * SCALE;
        let r = libm::sqrtf(-2.0 * libm::logf(u1));
        let (s, c) = libm::sincosf(core::f32::consts::TAU * u2);
        (r * c, r * s)
    }
    fn uniform(w: u32) -> Self {
        (w >> 8) as f32 * (1.0 / 16_777_216.0)
    }
}

impl Real for f64 {
    const ZERO: Self = 0.0;
    fn from_f64(v: f64) -> Self {
        v
    }
    fn to_f64(self) -> f64 {
        self
    }
    fn is_finite(self) -> bool {
        f64::is_finite(self)
    }
    fn normal_pair(w0: u32, w1: u32) -> (Self, Self) {
        // The same 24-bit uniforms as f32, so that the f64 reference sees the same noise.
        const SCALE: f64 = 1.0 / 16_777_216.0;
        let u1 = ((w0 >> 8) + 1) as f64 * SCALE;
        let u2 = (w1 >> 8) as f64 * SCALE;
        let r = libm::sqrt(-2.0 * libm::log(u1));
        let (s, c) = libm::sincos(core::f64::consts::TAU * u2);
        (r * c, r * s)
    }
    fn uniform(w: u32) -> Self {
        (w >> 8) as f64 * (1.0 / 16_777_216.0)
    }
}
