//! Property tests of CAS's η/β over the whole valid domain, and of every constructor over invalid
//! input (the named error, never a panic, never a NaN).

mod common;

use anneal_core::params::{cas_step, check_cas, check_langevin, eta_beta};
use anneal_core::{
    Borrowed, Error, EtaRule, Geometric, LangevinStep, Param, Schedule, StepConvention,
};
use proptest::prelude::*;

/// Schedules from N = 2 to N = 10⁶ over σ_1/σ_N from 1.5 to 10⁸.
fn geometric() -> impl Strategy<Value = Geometric> {
    (-3.0f64..3.0, 0.17f64..8.0, prop_oneof![2usize..20, 20usize..2000, 2000usize..=1_000_000])
        .prop_map(|(log_min, span, n)| {
            let min = 10f64.powf(log_min);
            Geometric::new(min * 10f64.powf(span), min, n).expect("valid by construction")
        })
}

/// εc ∈ [1, ∞]: values near 1, moderate, huge, and ∞ itself.
fn eps_c() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(1.0),
        (0.0f64..1e-6).prop_map(|d| 1.0 + d),
        1.0f64..10.0,
        10.0f64..1e12,
        Just(f64::INFINITY),
    ]
}

/// Indices of steps to check: first, last and a few in between.
fn steps_of(n: usize) -> impl Iterator<Item = usize> {
    [0, 1, n / 3, n / 2, n - 2].into_iter().filter(move |&i| i + 1 < n)
}

proptest! {
    #![proptest_config(common::fixed(512))]

    #[test]
    fn eps_c_stays_in_bounds(s in geometric(), e in eps_c()) {
        let rule = EtaRule::eps_c(e).unwrap();
        for i in steps_of(s.levels()) {
            let st = cas_step(&s, rule, i).unwrap();
            let lower = st.ratio.one_minus();
            prop_assert!(st.eta >= lower && st.eta <= 1.0, "η = {} lower {}", st.eta, lower);
            prop_assert!((0.0..=1.0).contains(&st.beta), "β = {}", st.beta);
        }
    }

    #[test]
    fn eta_is_monotone_in_eps_c(s in geometric(), a in eps_c(), b in eps_c()) {
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        let r = s.ratio(0).unwrap();
        let (e_lo, _) = eta_beta(EtaRule::eps_c(lo).unwrap(), r, s.sigma_min(), 0).unwrap();
        let (e_hi, _) = eta_beta(EtaRule::eps_c(hi).unwrap(), r, s.sigma_min(), 0).unwrap();
        prop_assert!(e_lo <= e_hi, "εc {lo} → η {e_lo}, εc {hi} → η {e_hi}");
    }

    #[test]
    fn special_cases_of_eps_c(s in geometric()) {
        for i in steps_of(s.levels()) {
            let one = cas_step(&s, EtaRule::eps_c(1.0).unwrap(), i).unwrap();
            prop_assert_eq!(one.beta, 0.0);
            prop_assert_eq!(one.eta, one.ratio.one_minus());
            let inf = cas_step(&s, EtaRule::eps_c(f64::INFINITY).unwrap(), i).unwrap();
            prop_assert_eq!((inf.eta, inf.beta), (1.0, 1.0));
            let two = cas_step(&s, EtaRule::eps_c(2.0).unwrap(), i).unwrap();
            // β² = η up to the rounding of one sqrt and one square: 4 ulps.
            prop_assert!((two.beta * two.beta - two.eta).abs() <= 4.0 * f64::EPSILON * two.eta);
        }
    }

    /// ε_b over eight decades around the bound: in bounds → η, β valid; out of bounds → the
    /// typed error naming the step and the bound, never NaN.
    #[test]
    fn eps_b_is_either_in_bounds_or_a_named_error(s in geometric(), log_eb in -10.0f64..2.0) {
        let eb = 10f64.powf(log_eb) * s.sigma_min() * s.sigma_min();
        let rule = EtaRule::eps_b(eb).unwrap();
        let eta = eb / (s.sigma_min() * s.sigma_min());
        for i in steps_of(s.levels()) {
            let lower = s.ratio(i).unwrap().one_minus();
            match cas_step(&s, rule, i) {
                Ok(st) => {
                    prop_assert!(st.eta >= lower && st.eta <= 1.0);
                    prop_assert!((0.0..=1.0).contains(&st.beta));
                }
                Err(Error::EtaOutOfBounds { step, eta: e, lower: l, upper }) => {
                    prop_assert_eq!(step, i + 1);
                    prop_assert!(e < l || e > upper);
                    prop_assert!((e - eta).abs() <= f64::EPSILON * eta);
                }
                Err(other) => prop_assert!(false, "unexpected {other:?}"),
            }
        }
        // check_cas agrees with the per-step check at the first failing step.
        let first_bad = (0..s.levels() - 1).find(|&i| cas_step(&s, rule, i).is_err());
        match (check_cas(&s, rule), first_bad) {
            (Ok(()), None) => {}
            (Err(Error::EtaOutOfBounds { step, .. }), Some(i)) => prop_assert_eq!(step, i + 1),
            (r, b) => prop_assert!(false, "check_cas {r:?} vs first bad {b:?}"),
        }
    }

    /// User-given schedules with varying ratios: every step's own γ_i is used.
    #[test]
    fn user_schedules_stay_in_bounds(
        mut v in proptest::collection::vec(1e-3f64..1e3, 2..64),
        e in eps_c(),
    ) {
        v.sort_by(|a, b| b.partial_cmp(a).unwrap());
        v.dedup();
        prop_assume!(v.len() >= 2);
        let s = Borrowed::new(&v).unwrap();
        let rule = EtaRule::eps_c(e).unwrap();
        check_cas(&s, rule).unwrap();
        for i in 0..v.len() - 1 {
            let st = cas_step(&s, rule, i).unwrap();
            prop_assert!((st.ratio.value() - v[i + 1] / v[i]).abs() <= 4.0 * f64::EPSILON);
            prop_assert!(st.eta >= st.ratio.one_minus() && st.eta <= 1.0);
            prop_assert!((0.0..=1.0).contains(&st.beta));
        }
    }

    // ---- invalid input: the named error, never a panic ----

    #[test]
    fn bad_sigmas_are_named(
        bad in prop_oneof![Just(f64::NAN), Just(f64::INFINITY), Just(f64::NEG_INFINITY), -1e3f64..=0.0],
        good in 1e-3f64..1e3,
        n in 2usize..100,
    ) {
        prop_assert!(matches!(Geometric::new(bad, good, n), Err(Error::OutOfRange { param: Param::SigmaMax, .. })), "unexpected result");
        prop_assert!(matches!(Geometric::new(good, bad, n), Err(Error::OutOfRange { param: Param::SigmaMin, .. })), "unexpected result");
        let table = [good * 2.0, good, bad];
        prop_assert!(matches!(Borrowed::new(&table), Err(Error::InvalidSigma { level: 3, .. })), "unexpected result");
    }

    #[test]
    fn non_decreasing_and_short_schedules_are_named(a in 1e-3f64..1e3, f in 1.0f64..10.0, n in 0usize..2) {
        prop_assert!(matches!(Geometric::new(a, a * f, 10), Err(Error::NotDecreasing { level: 1, .. })), "unexpected result");
        let v = [a * 3.0, a, a * f];
        prop_assert!(matches!(Borrowed::new(&v), Err(Error::NotDecreasing { level: 2, .. })), "unexpected result");
        prop_assert_eq!(Geometric::new(a * 2.0, a, n), Err(Error::TooFewLevels { levels: n, min: 2 }));
        prop_assert_eq!(Borrowed::new(&v[..n]).err(), Some(Error::TooFewLevels { levels: n, min: 2 }));
    }

    #[test]
    fn bad_eta_rules_are_named(
        ec in prop_oneof![Just(f64::NAN), Just(f64::NEG_INFINITY), -1e9f64..1.0],
        eb in prop_oneof![Just(f64::NAN), Just(f64::INFINITY), -1e9f64..=0.0],
    ) {
        let is_eps_c = |e: Error| matches!(e, Error::OutOfRange { param: Param::EpsC, .. });
        let is_eps_b = |e: Error| matches!(e, Error::OutOfRange { param: Param::EpsB, .. });
        prop_assert!(EtaRule::eps_c(ec).is_err_and(is_eps_c));
        prop_assert!(EtaRule::eps_b(eb).is_err_and(is_eps_b));
        // A rule built by hand is validated again where it is used.
        let s = Geometric::new(10.0, 0.1, 5).unwrap();
        prop_assert!(cas_step(&s, EtaRule::EpsC(ec), 0).is_err_and(is_eps_c));
        prop_assert!(cas_step(&s, EtaRule::EpsB(eb), 0).is_err_and(is_eps_b));
    }

    #[test]
    fn bad_technique_inputs_are_named(
        c in prop_oneof![Just(f64::NAN), Just(f64::INFINITY), -1e6f64..=0.0, 1.0f64..1e6],
        dim in 1usize..100_000,
        sigma in prop_oneof![Just(f64::NAN), -1.0f64..=0.0],
    ) {
        use anneal_core::ncsnv2::{technique2_growth, technique4_eps};
        prop_assert!(matches!(technique2_growth(dim, c), Err(Error::OutOfRange { param: Param::C, .. })), "C");
        let g = anneal_core::Growth::new(1.04).unwrap();
        prop_assert!(matches!(technique4_eps(0.01, g, 0), Err(Error::OutOfRange { param: Param::StepsPerLevel, .. })), "T");
        prop_assert!(matches!(technique4_eps(sigma, g, 5), Err(Error::OutOfRange { param: Param::SigmaMin, .. })), "σ");
    }

    #[test]
    fn langevin_bound_is_checked_per_level(s in geometric(), u in 0.01f64..4.0, tau in 0.0f64..1.0) {
        // ε = u σ_N² (NCSNv2): the step at level i is a_i = u σ_i², the bound a_i < 2(τ² + σ_i²).
        let step = LangevinStep::new(u * s.sigma_min().powi(2), StepConvention::Ncsnv2).unwrap();
        let result = check_langevin(&s, step, tau);
        if u < 2.0 * (1.0 - 1e-12) {
            // a_i/(τ² + σ_i²) ≤ a_i/σ_i² = u < 2 at every level.
            prop_assert_eq!(result, Ok(()));
        }
        if tau == 0.0 && u >= 2.0 {
            prop_assert!(matches!(result, Err(Error::StepUnstable { level: 1, .. })), "unexpected result");
        }
        if let Err(e) = result {
            let Error::StepUnstable { level, step_size, limit } = e else {
                return Err(TestCaseError::fail(format!("unexpected {e:?}")));
            };
            prop_assert!(step_size >= limit);
            let sig = s.sigma(level - 1).unwrap();
            prop_assert!((limit - 2.0 * (tau * tau + sig * sig)).abs() <= 1e-12 * limit);
        }
        // The NCSN convention's ε is twice NCSNv2's for the same chain.
        let ncsn = LangevinStep::new(2.0 * step.eps(), StepConvention::Ncsn).unwrap();
        prop_assert_eq!(check_langevin(&s, ncsn, tau), result);
    }
}

#[test]
fn the_bound_without_tau_is_two_sigma_min_squared() {
    let s = Geometric::new(20.0, 1.0, 10).unwrap();
    let inside = LangevinStep::new(1.99, StepConvention::Ncsnv2).unwrap();
    let outside = LangevinStep::new(2.0, StepConvention::Ncsnv2).unwrap();
    assert_eq!(check_langevin(&s, inside, 0.0), Ok(()));
    assert!(matches!(check_langevin(&s, outside, 0.0), Err(Error::StepUnstable { level: 1, .. })));
    // NCSN's convention: ε < 4σ_N².
    let ncsn = LangevinStep::new(3.99, StepConvention::Ncsn).unwrap();
    assert_eq!(check_langevin(&s, ncsn, 0.0), Ok(()));
    // The NCSN paper's appendix setting (σ 10 → 0.1, ε = 0.1 in NCSN's convention) is refused.
    let paper = Geometric::new(10.0, 0.1, 10).unwrap();
    let eps = LangevinStep::new(0.1, StepConvention::Ncsn).unwrap();
    assert!(matches!(check_langevin(&paper, eps, 1.0), Err(Error::StepUnstable { .. })));
}

#[test]
fn errors_never_carry_nan_for_valid_rules_over_a_million_levels() {
    let s = Geometric::new(50.0, 0.01, 1_000_000).unwrap();
    for e in [1.0, 1.0 + 1e-12, 2.0, 7.5, 1e300, f64::INFINITY] {
        check_cas(&s, EtaRule::eps_c(e).unwrap()).unwrap();
        let st = cas_step(&s, EtaRule::eps_c(e).unwrap(), 999_998).unwrap();
        assert!(st.eta.is_finite() && st.beta.is_finite());
    }
}
