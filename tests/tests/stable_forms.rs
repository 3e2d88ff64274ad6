//! The stable forms of MATH.md ("Numerics") against an independent 40-digit reference
//! (num-bigfloat), exactly where the naive formulas fail: γ → 1 (large N) and εc → 1.
//! Tolerance: 1e-12 relative, as the issue asks; the f64 forms reach ~1e-15.

mod common;

use anneal_core::params::{cas_step, eta_beta};
use anneal_core::{Borrowed, EtaRule, Geometric, Ratio, Schedule};
use common::{big, rel_err};
use num_bigfloat::{BigFloat, ONE};

const TOL: f64 = 1e-12;

/// η and β of the εc rule in 40 digits, with the naive formulas (safe at that precision).
fn reference_eps_c(ln_gamma: BigFloat, eps_c: f64) -> (BigFloat, BigFloat) {
    let gamma = ln_gamma.exp();
    let eta = ONE - (big(eps_c) * ln_gamma).exp();
    let q = (ONE - eta) / gamma;
    (eta, (ONE - q * q).sqrt())
}

/// ln γ of a geometric schedule in 40 digits: ln(σ_N/σ_1)/(N−1).
fn reference_ln_gamma(s1: f64, sn: f64, n: u64) -> BigFloat {
    (big(sn) / big(s1)).ln() / BigFloat::from_u64(n - 1)
}

/// The naive f64 formulas, to show that the test sits where they fail.
fn naive(gamma: f64, eps_c: f64) -> (f64, f64) {
    let eta = 1.0 - gamma.powf(eps_c);
    let q = (1.0 - eta) / gamma;
    (eta, (1.0 - q * q).sqrt())
}

#[test]
fn eps_c_near_one_on_long_schedules() {
    let mut worst_naive = 0.0f64;
    for &(s1, sn, n) in
        &[(50.0, 0.01, 1_000_000u64), (1.0, 0.5, 100_000), (348.0, 0.01, 10_000), (20.0, 1.0, 2)]
    {
        let s = Geometric::new(s1, sn, n as usize).unwrap();
        let ln_ref = reference_ln_gamma(s1, sn, n);
        let ratio = s.common_ratio();
        assert!(rel_err(ratio.ln(), &ln_ref) < TOL, "ln γ");
        assert!(rel_err(ratio.one_minus(), &(ONE - ln_ref.exp())) < TOL, "1 − γ");
        for &e in &[1.0 + 1e-12, 1.0 + 1e-9, 1.0 + 1e-6, 1.001, 1.5, 2.0, 10.0] {
            let st = cas_step(&s, EtaRule::eps_c(e).unwrap(), 0).unwrap();
            let (eta_ref, beta_ref) = reference_eps_c(ln_ref, e);
            let (ee, eb) = (rel_err(st.eta, &eta_ref), rel_err(st.beta, &beta_ref));
            assert!(ee < TOL && eb < TOL, "N={n} εc={e}: η err {ee:e}, β err {eb:e}");
            let (ne, nb) = naive(ratio.value(), e);
            worst_naive = worst_naive.max(rel_err(ne, &eta_ref)).max(rel_err(nb, &beta_ref));
        }
    }
    // The naive forms lose at least 4 orders of magnitude over the reference at these points.
    assert!(worst_naive > 1e-8, "naive worst {worst_naive:e}: the test is not where they fail");
}

#[test]
fn user_tables_with_ratios_near_one() {
    // σ_{i+1} = σ_i (1 − δ) for tiny δ: ln γ from log1p of the exact difference.
    for &delta in &[1e-12, 1e-10, 1e-8, 1e-5, 0.3] {
        let a = 3.7f64;
        let b = a * (1.0 - delta);
        let v = [a, b];
        let s = Borrowed::new(&v).unwrap();
        let ln_ref = (big(b) / big(a)).ln();
        let r = s.ratio(0).unwrap();
        assert!(rel_err(r.ln(), &ln_ref) < TOL, "δ={delta}: ln γ {:e}", rel_err(r.ln(), &ln_ref));
        for &e in &[1.0 + 1e-9, 2.0, 5.0] {
            let st = cas_step(&s, EtaRule::eps_c(e).unwrap(), 0).unwrap();
            let (eta_ref, beta_ref) = reference_eps_c(ln_ref, e);
            assert!(rel_err(st.eta, &eta_ref) < TOL, "δ={delta} εc={e} η");
            assert!(rel_err(st.beta, &beta_ref) < TOL, "δ={delta} εc={e} β");
        }
    }
}

#[test]
fn eps_b_beta_near_the_lower_bound() {
    // η = (1 − γ)(1 + d): β² = 1 − ((1 − η)/γ)² cancels as d → 0 and as γ → 1. The input η is an
    // f64, so β's condition number is ~1/d: d ≥ 1e-3 keeps the reachable error below 1e-12.
    for &n in &[10usize, 1_000, 1_000_000] {
        let s = Geometric::new(50.0, 0.01, n).unwrap();
        let ratio = s.common_ratio();
        let ln_ref = reference_ln_gamma(50.0, 0.01, n as u64);
        let gamma_ref = ln_ref.exp();
        for &d in &[1e-3, 1e-2, 0.5] {
            let eta = ratio.one_minus() * (1.0 + d);
            let eps_b = eta * 0.01 * 0.01;
            let (eta_got, beta) = eta_beta(EtaRule::eps_b(eps_b).unwrap(), ratio, 0.01, 0).unwrap();
            let q = (ONE - big(eta_got)) / gamma_ref;
            let beta_ref = (ONE - q * q).sqrt();
            let err = rel_err(beta, &beta_ref);
            assert!(err < TOL, "N={n} d={d}: β err {err:e}");
        }
    }
}

#[test]
fn ratio_conventions_are_inverse() {
    let r = Ratio::between(2.0, 1.0).unwrap();
    assert!((r.value() - 0.5).abs() < 1e-16);
    assert!((r.growth().value() - 2.0).abs() < 1e-15);
    assert_eq!(r.growth().ratio(), r);
}
