//! Coefficient-level checks of the plans, no sampling: for one-point data at 0 the exact score is
//! `s = −y/σ²`, so a step `x ← x + c_s s(x + p_n ξ) + c_n ξ` maps Var(x) to
//! `(1 − c_s/σ²)² Var + (c_n − c_s p_n/σ²)²` (per coordinate, independent noise).

mod common;

use anneal_core::ncsnv2::prop3_ratio;
use anneal_core::plan::{Lin, Plan, Step, Update};
use anneal_core::samplers::als::Als;
use anneal_core::samplers::cas::Cas;
use anneal_core::samplers::noise_denoise::NoiseDenoise;
use anneal_core::samplers::pc::{Corrector, Order, Pc};
use anneal_core::{Borrowed, EtaRule, Geometric, LangevinStep, Schedule, StepConvention};
use proptest::prelude::*;

/// The x-update of a step without auxiliary state.
fn lin(step: &Step) -> Lin {
    match step.update {
        Update::Linear { x, .. } => {
            assert_eq!((x.x, x.aux), (1.0, 0.0));
            x
        }
        Update::Snr { .. } => panic!("not linear"),
    }
}

/// Var(x) after the step, for one-point data at 0, from Var(x) before.
fn variance_map(step: &Step, var: f64) -> f64 {
    let c = lin(step);
    let s2 = step.sigma * step.sigma;
    let a = 1.0 - c.score / s2;
    let b = c.noise - c.score * step.point.noise / s2;
    a * a * var + b * b
}

/// 1e-12, plus what this test's own arithmetic loses: it recovers 1 − η from the rounded
/// coefficient ησ_i², so η's last ulp (ε) moves the (1 − η)²σ_i² term by 2|1 − η|·2ε·σ_i²,
/// i.e. 4ε|1 − η|σ_i²/σ_{i+1}² relative to σ_{i+1}² — up to ~1e-11 when γ = σ_{i+1}/σ_i is 1e-4.
fn tolerance(step: &Step, si: f64, sn: f64) -> f64 {
    let a = (1.0 - lin(step).score / (si * si)).abs();
    1e-12 + 4.0 * f64::EPSILON * a * si * si / (sn * sn)
}

fn schedule() -> impl Strategy<Value = Geometric> {
    (-2.0f64..1.0, 0.2f64..4.0, prop_oneof![2usize..12, 12usize..300, 300usize..100_000]).prop_map(
        |(lmin, span, n)| {
            let min = 10f64.powf(lmin);
            Geometric::new(min * 10f64.powf(span), min, n).unwrap()
        },
    )
}

fn eps_c() -> impl Strategy<Value = f64> {
    prop_oneof![Just(1.0), 1.0f64..1.001, 1.0f64..20.0, 20.0f64..1e9, Just(f64::INFINITY)]
}

fn steps_of(n: usize) -> impl Iterator<Item = usize> {
    [0, 1, n / 2, n - 2].into_iter().filter(move |&i| i + 1 < n)
}

proptest! {
    #![proptest_config(common::fixed(256))]

    /// CAS consistency: each step maps σ_i² to σ_{i+1}² within 1e-12, for every εc ∈ [1, ∞].
    #[test]
    fn cas_eps_c_is_consistent(s in schedule(), e in eps_c()) {
        let plan = Cas::new(&s, EtaRule::eps_c(e).unwrap()).and_then(anneal_core::Plan::denoised).unwrap();
        prop_assert_eq!(plan.len(), s.levels());
        for i in steps_of(s.levels()) {
            let st = plan.step(i).unwrap();
            let (si, sn) = (s.sigma(i).unwrap(), s.sigma(i + 1).unwrap());
            let v = variance_map(&st, si * si);
            prop_assert!((v / (sn * sn) - 1.0).abs() < tolerance(&st, si, sn), "step {i}: {v} vs {}", sn * sn);
        }
        // The final step is the denoiser: it maps any variance to 0 for one-point data.
        let last = plan.step(s.levels() - 1).unwrap();
        prop_assert_eq!(variance_map(&last, 1.0), 0.0);
    }

    /// The same for every ε_b that keeps η in bounds at every step.
    #[test]
    fn cas_eps_b_is_consistent_in_bounds(s in schedule(), t in 0.0f64..=1.0) {
        let lower = s.common_ratio().one_minus();
        let eta = lower + t * (1.0 - lower);
        let eps_b = eta * s.sigma_min() * s.sigma_min();
        let Ok(plan) = Cas::new(&s, EtaRule::eps_b(eps_b).unwrap()) else {
            // Only the rounding of η·σ_N²/σ_N² can push η over a bound at t ∈ {0, 1}.
            prop_assume!(false);
            unreachable!()
        };
        for i in steps_of(s.levels()) {
            let st = plan.step(i).unwrap();
            let (si, sn) = (s.sigma(i).unwrap(), s.sigma(i + 1).unwrap());
            let v = variance_map(&st, si * si);
            prop_assert!((v / (sn * sn) - 1.0).abs() < tolerance(&st, si, sn));
        }
    }

    /// ALS over the T steps of a level matches NCSNv2's Proposition 3, starting from g²σ_i².
    #[test]
    fn als_matches_proposition_3(s in schedule(), u in 0.001f64..1.9, t in 1u32..200) {
        let eps = u * s.sigma_min() * s.sigma_min();
        let plan = Als::new(&s, LangevinStep::new(eps, StepConvention::Ncsnv2).unwrap(), t, 0.0).unwrap();
        let g = s.common_ratio().growth();
        for level in [0, s.levels() / 2, s.levels() - 1] {
            let si = s.sigma(level).unwrap();
            let mut v = g.value() * g.value() * si * si;
            for k in 0..t as usize {
                let st = plan.step(level * t as usize + k).unwrap();
                prop_assert_eq!(st.level, level);
                v = variance_map(&st, v);
            }
            let want = prop3_ratio(eps, s.sigma_min(), g, t);
            prop_assert!((v / (si * si) / want - 1.0).abs() < 1e-12, "{} vs {want}", v / (si * si));
        }
    }

    /// NCSN's ε is twice NCSNv2's: the two conventions give identical plans.
    #[test]
    fn step_conventions_agree(s in schedule(), u in 0.001f64..1.9) {
        let eps = u * s.sigma_min() * s.sigma_min();
        let v2 = Als::new(&s, LangevinStep::new(eps, StepConvention::Ncsnv2).unwrap(), 3, 0.0).and_then(anneal_core::Plan::denoised).unwrap();
        let v1 = Als::new(&s, LangevinStep::new(2.0 * eps, StepConvention::Ncsn).unwrap(), 3, 0.0).and_then(anneal_core::Plan::denoised).unwrap();
        for k in [0, 1, v2.len() / 2, v2.len() - 1] {
            prop_assert_eq!(v1.step(k), v2.step(k));
        }
    }
}

/// εc = 1, 2, ∞ reduce to the three closed forms of the CAS note ("Relation to other sampling
/// schemes"; MATH.md "Special cases").
#[test]
fn cas_special_cases_are_the_closed_forms() {
    let s = Geometric::new(20.0, 0.05, 17).unwrap();
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-14 * b.abs().max(1e-300);
    let denoise_only =
        Cas::new(&s, EtaRule::eps_c(1.0).unwrap()).and_then(anneal_core::Plan::denoised).unwrap();
    let predictor_like =
        Cas::new(&s, EtaRule::eps_c(2.0).unwrap()).and_then(anneal_core::Plan::denoised).unwrap();
    let renoise = Cas::new(&s, EtaRule::eps_c(f64::INFINITY).unwrap())
        .and_then(anneal_core::Plan::denoised)
        .unwrap();
    for i in 0..16 {
        let (si, sn) = (s.sigma(i).unwrap(), s.sigma(i + 1).unwrap());
        let gamma = sn / si;
        // εc = 1: x ← γx + (1 − γ) H(x, σ_i) = x + (1 − γ) σ_i² s, no noise.
        let c = lin(&denoise_only.step(i).unwrap());
        assert!(close(c.score, (1.0 - gamma) * si * si) && c.noise == 0.0, "εc=1 step {i}");
        assert!(!denoise_only.step(i).unwrap().noise);
        // εc = 2: x ← x + (σ_i² − σ_{i+1}²) s + γ √(σ_i² − σ_{i+1}²) z.
        let c = lin(&predictor_like.step(i).unwrap());
        let d = si * si - sn * sn;
        assert!(close(c.score, d) && close(c.noise, gamma * d.sqrt()), "εc=2 step {i}");
        // εc = ∞: x ← H(x, σ_i) + σ_{i+1} z.
        let c = lin(&renoise.step(i).unwrap());
        assert!(close(c.score, si * si) && close(c.noise, sn), "εc=∞ step {i}");
    }
}

/// PC's predictor is CAS's εc = 2 step without the factor γ on the noise (the CAS note, Eq. 5 vs 8).
#[test]
fn pc_predictor_is_cas_eps_c_2_without_gamma() {
    let s = Geometric::new(10.0, 0.1, 8).unwrap();
    let corr = Corrector::Langevin(LangevinStep::new(0.1 * 0.01, StepConvention::Ncsnv2).unwrap());
    let pc = Pc::new(&s, corr, 2, Order::PredictorFirst, 0.0)
        .and_then(anneal_core::Plan::denoised)
        .unwrap();
    let cas =
        Cas::new(&s, EtaRule::eps_c(2.0).unwrap()).and_then(anneal_core::Plan::denoised).unwrap();
    assert_eq!(pc.len(), 7 * 3 + 1);
    for i in 0..7 {
        let p = lin(&pc.step(3 * i).unwrap());
        let c = lin(&cas.step(i).unwrap());
        let gamma = s.sigma(i + 1).unwrap() / s.sigma(i).unwrap();
        assert!((p.score - c.score).abs() < 1e-13 * c.score);
        assert!((p.noise * gamma - c.noise).abs() < 1e-13 * c.noise);
        // Correctors at the new level (predictor first).
        assert_eq!(pc.step(3 * i + 1).unwrap().level, i + 1);
    }
    let cf = Pc::new(&s, corr, 2, Order::CorrectorFirst, 0.0)
        .and_then(anneal_core::Plan::denoised)
        .unwrap();
    assert_eq!(cf.len(), 8 * 2 + 7 + 1);
    assert_eq!((cf.step(0).unwrap().level, cf.step(2).unwrap().level), (0, 0));
    assert_eq!(lin(&cf.step(2).unwrap()).score, lin(&pc.step(0).unwrap()).score);
    assert_eq!(cf.step(cf.len() - 1), Some(Step::denoise(7, 0.1)));
}

/// Noise-denoise at λ on one-point data: x ↦ (1 − λ) x exactly (the noise cancels).
#[test]
fn noise_denoise_on_one_point_data() {
    let sigma = [0.5];
    let s = Borrowed::single(&sigma).unwrap();
    for lambda in [0.5, 1.0, 2.0] {
        let plan = NoiseDenoise::new(&s, lambda, 4).unwrap();
        let st = plan.step(0).unwrap();
        assert_eq!(st.point.noise, 0.5);
        let v = variance_map(&st, 3.0);
        assert!((v - (1.0 - lambda) * (1.0 - lambda) * 3.0).abs() < 1e-15, "λ={lambda}: {v}");
    }
}
