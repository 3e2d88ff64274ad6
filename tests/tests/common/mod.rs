//! Helpers shared by the integration tests.
#![allow(dead_code)]

use num_bigfloat::BigFloat;

/// The exact value of an f64 as a 40-digit BigFloat (mantissa × 2^exponent; `BigFloat::from_f64`
/// goes through a shortest decimal string and is not exact, which matters for differences of
/// nearby σ).
pub fn big(x: f64) -> BigFloat {
    assert!(x.is_finite());
    if x == 0.0 {
        return BigFloat::from_u64(0);
    }
    let bits = x.to_bits();
    let sign = bits >> 63 == 1;
    let exp = ((bits >> 52) & 0x7ff) as i64;
    let frac = bits & ((1u64 << 52) - 1);
    let (mant, e) = if exp == 0 { (frac, -1074) } else { (frac | (1u64 << 52), exp - 1075) };
    let mut v = BigFloat::from_u64(mant);
    let two = BigFloat::from_u64(2);
    for _ in 0..e.unsigned_abs() {
        v = if e > 0 { v * two } else { v / two };
    }
    if sign { -v } else { v }
}

/// Relative error of `got` against the high-precision `want`.
pub fn rel_err(got: f64, want: &BigFloat) -> f64 {
    let w = want.to_f64();
    if w == 0.0 {
        return got.abs();
    }
    ((big(got) - *want) / *want).abs().to_f64()
}

/// Property-test configuration: `cases` cases from a fixed seed (the same cases on every run),
/// without failure-persistence files.
pub fn fixed(cases: u32) -> proptest::test_runner::Config {
    proptest::test_runner::Config {
        cases,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x5EED_A22E_A100),
        failure_persistence: None,
        ..proptest::test_runner::Config::default()
    }
}
