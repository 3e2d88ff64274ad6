//! Sampling with the executor: statistical checks with fixed seeds. Each tolerance is derived
//! from the sample size and stated beside the assertion.

use anneal_core::noise::Keyed;
use anneal_core::plan::{self, Batch, Denoised, Inpaint, PerSample, Plan};
use anneal_core::samplers::als::Als;
use anneal_core::samplers::baoab::{BaoabLimit, Splitting, Underdamped};
use anneal_core::samplers::cas::Cas;
use anneal_core::samplers::langevin::overdamped;
use anneal_core::score::{FullCovMixture, Gaussian, IsotropicMixture, Taus};
use anneal_core::{
    BatchScore, Borrowed, Error, EtaRule, Geometric, LangevinStep, Quantity, Real, StepConvention,
};
use nalgebra::{Matrix2, Vector2};

/// Owned buffers for `b` samples of dimension `d`.
struct Bufs<F> {
    d: usize,
    x: Vec<F>,
    aux: Vec<F>,
    s: Vec<F>,
    n: Vec<F>,
    p: Vec<F>,
}

impl<F: Real> Bufs<F> {
    fn new(b: usize, d: usize) -> Self {
        let z = vec![F::ZERO; b * d];
        Bufs { d, x: z.clone(), aux: z.clone(), s: z.clone(), n: z.clone(), p: z }
    }
    fn batch(&mut self, first: u64) -> Batch<'_, F> {
        Batch {
            dim: self.d,
            first_sample: first,
            x: &mut self.x,
            aux: &mut self.aux,
            score: &mut self.s,
            noise: &mut self.n,
            point: &mut self.p,
        }
    }
}

fn mean_var(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    (m, v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1.0))
}

/// CAS on one-point data in D = 1000: the empirical variance after step i is σ_{i+1}².
/// 20 samples × 1000 coordinates = 20 000 values per level: the relative standard error of a
/// variance is √(2/20 000) = 1%, and we allow 5 standard errors.
#[test]
fn cas_is_consistent_on_one_point_data_in_d_1000() {
    let (b, d) = (20usize, 1000usize);
    let zero = vec![0.0f32; d];
    let score = Gaussian::new(&zero, 0.0).unwrap();
    let s = Geometric::new(10.0, 0.01, 12).unwrap();
    for rule in [
        EtaRule::eps_c(1.0).unwrap(),
        EtaRule::eps_c(2.5).unwrap(),
        EtaRule::eps_c(f64::INFINITY).unwrap(),
        EtaRule::eps_b(0.8 * 1e-4).unwrap(),
    ] {
        let plan = Cas::new(&s, rule).unwrap();
        let mut bufs = Bufs::<f32>::new(b, d);
        let mut noise = Keyed::new(7);
        plan::init_normal(&mut noise, 0, d, 10.0, &mut bufs.x).unwrap();
        let mut checked = 0;
        let mut obs = |k: usize, st: &anneal_core::Step, x: &[f32]| {
            let v: Vec<f64> = x.iter().map(|&e| e as f64).collect();
            let var = v.iter().map(|e| e * e).sum::<f64>() / v.len() as f64;
            let want = st.sigma_after * st.sigma_after;
            assert!(
                (var / want - 1.0).abs() < 5.0 * (2.0 / v.len() as f64).sqrt(),
                "{rule:?} step {k}: {var} vs {want}"
            );
            checked += 1;
        };
        plan::run(&plan, &mut PerSample(&score), &mut noise, bufs.batch(0), None, &mut obs)
            .unwrap();
        assert_eq!(checked, 11);
    }
}

/// ALS with a step far above the consistent one visibly departs (the CAS property is real).
#[test]
fn als_is_not_consistent() {
    let (b, d) = (20usize, 1000usize);
    let zero = vec![0.0f32; d];
    let score = Gaussian::new(&zero, 0.0).unwrap();
    let s = Geometric::new(10.0, 0.01, 12).unwrap();
    // One step per level with ε = σ_N² (u = 1): x ← 0·x + √2 σ_i ξ, so Var = 2σ_i², not σ_i².
    let plan =
        Als::new(&s, LangevinStep::new(1e-4, StepConvention::Ncsnv2).unwrap(), 1, 0.0).unwrap();
    let mut bufs = Bufs::<f32>::new(b, d);
    let mut noise = Keyed::new(7);
    plan::init_normal(&mut noise, 0, d, 10.0, &mut bufs.x).unwrap();
    let mut obs = |_k: usize, st: &anneal_core::Step, x: &[f32]| {
        let var = x.iter().map(|&e| (e as f64).powi(2)).sum::<f64>() / x.len() as f64;
        assert!((var / (st.sigma * st.sigma) - 2.0).abs() < 0.1, "{var}");
    };
    plan::run(&plan, &mut PerSample(&score), &mut noise, bufs.batch(0), None, &mut obs).unwrap();
}

/// NCSN's toy (MATH.md): p = 1/5 N((−5,−5), I) + 4/5 N((5,5), I) as run by NCSN's code (point
/// masses perturbed by σ, σ 20 → 1 over 10 levels, T = 100, ε = 0.1 NCSN convention, uniform
/// initialisation on [−8, 8]²). 2000 samples: the standard error of a weight is
/// √(0.2·0.8/2000) = 0.009; ALS must be within 4 of them of 0.2, and single-level Langevin (T = 1000
/// at σ = 1, same ε) stays near the initial 1/2 : 1/2 split, more than 20 of them away.
#[test]
fn ncsn_toy_als_recovers_the_weights_and_langevin_does_not() {
    let means = [-5.0f32, -5.0, 5.0, 5.0];
    let weights = [0.2, 0.8];
    let mix = IsotropicMixture::new(&means, 2, Some(&weights), Taus::Shared(0.0)).unwrap();
    let n = 2000usize;
    let se = (0.2f64 * 0.8 / n as f64).sqrt();
    let weight_of_first = |x: &[f32]| {
        x.chunks(2)
            .filter(|p| {
                (p[0] + 5.0).powi(2) + (p[1] + 5.0).powi(2)
                    < (p[0] - 5.0).powi(2) + (p[1] - 5.0).powi(2)
            })
            .count() as f64
            / n as f64
    };

    let s = Geometric::new(20.0, 1.0, 10).unwrap();
    let als =
        Als::new(&s, LangevinStep::new(0.1, StepConvention::Ncsn).unwrap(), 100, 0.0).unwrap();
    let mut bufs = Bufs::<f32>::new(n, 2);
    let mut noise = Keyed::new(2019);
    plan::init_uniform(&mut noise, 0, 2, -8.0, 8.0, &mut bufs.x).unwrap();
    plan::run(&als, &mut PerSample(&mix), &mut noise, bufs.batch(0), None, &mut ()).unwrap();
    let w = weight_of_first(&bufs.x);
    assert!((w - 0.2).abs() < 4.0 * se, "ALS weight {w}");

    let one = [1.0];
    let old = overdamped(&one, 0.05, 1000, 0.0).unwrap();
    let mut bufs = Bufs::<f32>::new(n, 2);
    plan::init_uniform(&mut noise, 0, 2, -8.0, 8.0, &mut bufs.x).unwrap();
    plan::run(&old, &mut PerSample(&mix), &mut noise, bufs.batch(0), None, &mut ()).unwrap();
    let w = weight_of_first(&bufs.x);
    assert!(
        (w - 0.2).abs() > 20.0 * se && (w - 0.5).abs() < 4.0 * (0.25 / n as f64).sqrt(),
        "Langevin weight {w}"
    );
}

/// A correlated 2-D Gaussian N(μ, Σ) as a one-component full-covariance mixture.
fn gaussian_2d() -> (FullCovMixture<2, 1>, Vector2<f64>, Matrix2<f64>) {
    let mu = Vector2::new(1.0, -2.0);
    let cov = Matrix2::new(1.0, 0.6, 0.6, 0.5);
    (FullCovMixture::new([mu], [cov], [1.0]).unwrap(), mu, cov)
}

/// BAOAB-limit, BAOAB, OBABO (and OLD) at one small σ = 0.1 on a correlated Gaussian: the
/// sample mean and covariance match N(μ, Σ + σ²I). 8000 chains, 1500 steps (ε = 0.002, h = 0.063:
/// mixing takes a few hundred steps; OBABO's discretisation bias h²/(4 v_min) ≈ 0.9% of a
/// variance). Standard errors: mean √(v/n), variance v√(2/n), covariance √((v₀v₁ + c²)/n); the
/// tolerance is 5 of them plus 1.5% for the discretisation.
#[test]
fn momentum_samplers_sample_a_gaussian() {
    let (score, mu, cov) = gaussian_2d();
    let sigma = [0.1];
    let s = Borrowed::single(&sigma).unwrap();
    let target = cov + Matrix2::identity() * 0.01;
    let tau = 0.1f64.sqrt() * 0.99; // √λ_min(Σ)
    let step = LangevinStep::new(0.002, StepConvention::Ncsnv2).unwrap();
    let plans: Vec<(&str, Box<dyn Plan>)> = vec![
        ("BAOAB-limit", Box::new(BaoabLimit::new(&s, step, 1500, tau).unwrap())),
        ("BAOAB", Box::new(Underdamped::new(&s, step, 1.0, Splitting::Baoab, 1500, tau).unwrap())),
        ("OBABO", Box::new(Underdamped::new(&s, step, 1.0, Splitting::Obabo, 1500, tau).unwrap())),
        ("OLD", Box::new(overdamped(&sigma, 0.002, 1500, tau).unwrap())),
    ];
    let n = 8000usize;
    for (name, plan) in plans {
        let mut bufs = Bufs::<f64>::new(n, 2);
        let mut noise = Keyed::new(3);
        plan::init_normal(&mut noise, 0, 2, 1.0, &mut bufs.x).unwrap();
        plan::run(plan.as_ref(), &mut PerSample(&score), &mut noise, bufs.batch(0), None, &mut ())
            .unwrap();
        let x0: Vec<f64> = bufs.x.chunks(2).map(|p| p[0]).collect();
        let x1: Vec<f64> = bufs.x.chunks(2).map(|p| p[1]).collect();
        let ((m0, v0), (m1, v1)) = (mean_var(&x0), mean_var(&x1));
        let c01 =
            x0.iter().zip(&x1).map(|(a, b)| (a - m0) * (b - m1)).sum::<f64>() / (n as f64 - 1.0);
        let nf = n as f64;
        let (t0, t1, tc) = (target[(0, 0)], target[(1, 1)], target[(0, 1)]);
        assert!((m0 - mu[0]).abs() < 5.0 * (t0 / nf).sqrt(), "{name}: mean0 {m0}");
        assert!((m1 - mu[1]).abs() < 5.0 * (t1 / nf).sqrt(), "{name}: mean1 {m1}");
        assert!(
            (v0 - t0).abs() < t0 * (5.0 * (2.0 / nf).sqrt() + 0.015),
            "{name}: var0 {v0} vs {t0}"
        );
        assert!(
            (v1 - t1).abs() < t1 * (5.0 * (2.0 / nf).sqrt() + 0.015),
            "{name}: var1 {v1} vs {t1}"
        );
        assert!(
            (c01 - tc).abs() < 5.0 * ((t0 * t1 + tc * tc) / nf).sqrt() + 0.015 * tc,
            "{name}: cov {c01} vs {tc}"
        );
    }
}

/// Inpainting on the correlated Gaussian: x₀ known (= 1.5), x₁ unknown. After every step the
/// known coordinate is exactly x_known + σ_after z̃ (z̃ recomputed here from the keyed stream);
/// at the end the unknown coordinate has the conditional mean μ₁ + Σ₁₀/Σ₀₀ (1.5 − μ₀), within 5
/// standard errors √(Var(x₁|x₀)/n) plus σ_N-sized slack.
#[test]
fn inpainting_keeps_the_known_part_and_gets_the_conditional_mean() {
    const CAS_LEVELS: usize = 1000;
    use anneal_core::noise::{Noise, Stream};
    let (score, mu, cov) = gaussian_2d();
    let known = [1.5f64, 0.0];
    let mask = [1.0f64, 0.0];
    let cond_mean = mu[1] + cov[(1, 0)] / cov[(0, 0)] * (1.5 - mu[0]);
    let cond_var = cov[(1, 1)] - cov[(1, 0)] * cov[(1, 0)] / cov[(0, 0)];
    let s = Geometric::new(5.0, 0.01, 10).unwrap();
    let n = 2000usize;
    let als = Als::new(&s, LangevinStep::new(2e-5, StepConvention::Ncsnv2).unwrap(), 60, 0.0)
        .and_then(anneal_core::Plan::denoised)
        .unwrap();
    // CAS makes one move per level, so its conditional needs more levels than ALS's 60 steps each.
    let s_cas = Geometric::new(5.0, 0.01, CAS_LEVELS).unwrap();
    let cas = Cas::new(&s_cas, EtaRule::eps_c(1.5).unwrap())
        .and_then(anneal_core::Plan::denoised)
        .unwrap();
    let plans: [(&str, &dyn Plan); 2] = [("ALS", &als), ("CAS", &cas)];
    for (name, plan) in plans {
        let mut bufs = Bufs::<f64>::new(n, 2);
        let mut level_noise = vec![0.0f64; 2 * n];
        let mut noise = Keyed::new(11);
        plan::init_normal(&mut noise, 0, 2, 5.0, &mut bufs.x).unwrap();
        let mut steps = 0;
        let mut obs = |_k: usize, st: &anneal_core::Step, x: &[f64]| {
            let mut z = [0.0f64; 2];
            for (j, row) in x.chunks(2).enumerate().step_by(97) {
                Keyed::new(11).normals(
                    j as u64,
                    Stream::InpaintLevel(st.level_after as u32),
                    &mut z,
                );
                assert_eq!(row[0], 1.5 + st.sigma_after * z[0], "{name}: sample {j}");
            }
            steps += 1;
        };
        let ip = Inpaint { known: &known, mask: &mask, level_noise: &mut level_noise };
        plan::run(plan, &mut PerSample(&score), &mut noise, bufs.batch(0), Some(ip), &mut obs)
            .unwrap();
        assert_eq!(steps, plan.len());
        let x1: Vec<f64> = bufs.x.chunks(2).map(|p| p[1]).collect();
        let (m, _) = mean_var(&x1);
        assert!(
            (m - cond_mean).abs() < 5.0 * (cond_var / n as f64).sqrt() + 0.01,
            "{name}: {m} vs {cond_mean}"
        );
        assert!(bufs.x.chunks(2).all(|p| p[0] == 1.5), "{name}: known part after denoising");
    }
}

/// Sample j is bit-identical run alone, in a batch of 1000, and split across 4 threads.
#[test]
fn samples_do_not_depend_on_batch_or_threads() {
    let means = [-5.0f32, -5.0, 0.0, 3.0, 5.0, 5.0];
    let mix = IsotropicMixture::new(&means, 2, Some(&[0.2, 0.3, 0.5]), Taus::Shared(0.3)).unwrap();
    let s = Geometric::new(20.0, 0.05, 30).unwrap();
    let plan =
        Cas::new(&s, EtaRule::eps_c(2.0).unwrap()).and_then(anneal_core::Plan::denoised).unwrap();
    let run = |first: u64, count: usize| {
        let mut bufs = Bufs::<f32>::new(count, 2);
        let mut noise = Keyed::new(42);
        plan::init_normal(&mut noise, first, 2, 20.0, &mut bufs.x).unwrap();
        plan::run(&plan, &mut PerSample(&mix), &mut noise, bufs.batch(first), None, &mut ())
            .unwrap();
        bufs.x
    };
    let all = run(0, 1000);
    for j in [0usize, 1, 517, 999] {
        let alone = run(j as u64, 1);
        assert_eq!(alone[0].to_bits(), all[2 * j].to_bits());
        assert_eq!(alone[1].to_bits(), all[2 * j + 1].to_bits());
    }
    let split: Vec<f32> = std::thread::scope(|sc| {
        let handles: Vec<_> = (0..4).map(|t| sc.spawn(move || run(250 * t as u64, 250))).collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    assert!(split.iter().zip(&all).all(|(a, b)| a.to_bits() == b.to_bits()));
}

/// The f32 fast path against the f64 reference: same plan, seed, score and (24-bit) noise
/// uniforms; the two differ by f32 rounding only.
#[test]
fn f32_executor_matches_the_f64_reference() {
    let means32 = [-5.0f32, -5.0, 0.0, 3.0, 5.0, 5.0];
    let means64: Vec<f64> = means32.iter().map(|&v| v as f64).collect();
    let w = [0.2, 0.3, 0.5];
    let m32 = IsotropicMixture::new(&means32, 2, Some(&w), Taus::Shared(0.5)).unwrap();
    let m64 = IsotropicMixture::new(&means64, 2, Some(&w), Taus::Shared(0.5)).unwrap();
    let s = Geometric::new(20.0, 0.05, 20).unwrap();
    let plan =
        Cas::new(&s, EtaRule::eps_c(1.5).unwrap()).and_then(anneal_core::Plan::denoised).unwrap();
    let (mut a, mut b) = (Bufs::<f32>::new(200, 2), Bufs::<f64>::new(200, 2));
    plan::init_normal(&mut Keyed::new(5), 0, 2, 20.0, &mut a.x).unwrap();
    plan::init_normal(&mut Keyed::new(5), 0, 2, 20.0, &mut b.x).unwrap();
    plan::run(&plan, &mut PerSample(&m32), &mut Keyed::new(5), a.batch(0), None, &mut ()).unwrap();
    plan::run(&plan, &mut PerSample(&m64), &mut Keyed::new(5), b.batch(0), None, &mut ()).unwrap();
    let worst = a.x.iter().zip(&b.x).map(|(&p, &q)| (p as f64 - q).abs()).fold(0.0, f64::max);
    // Measured: 8e-6 (states start at scale 20; f32 rounds at 6e-8 relative). Allowed: 1e-4.
    assert!(worst < 1e-4, "worst |f32 − f64| = {worst}");
}

/// A non-finite score or state stops the run and names the level and step.
#[test]
fn non_finite_values_stop_the_run_with_level_and_step() {
    struct Bad {
        at_sigma_below: f64,
        value: f32,
    }
    impl BatchScore<f32> for Bad {
        fn dim(&self) -> usize {
            2
        }
        fn score_batch(&mut self, _p: &[f32], sigma: f64, out: &mut [f32]) -> Result<(), Error> {
            let v = if sigma < self.at_sigma_below { self.value } else { 0.0 };
            out.iter_mut().for_each(|o| *o = v);
            Ok(())
        }
    }
    let s = Geometric::new(1000.0, 10.0, 5).unwrap(); // σ = 1000, 316, 100, 31.6, 10
    let plan =
        Cas::new(&s, EtaRule::eps_c(2.0).unwrap()).and_then(anneal_core::Plan::denoised).unwrap();
    let mut bufs = Bufs::<f32>::new(3, 2);
    let r = plan::run(
        &plan,
        &mut Bad { at_sigma_below: 200.0, value: f32::NAN },
        &mut Keyed::new(1),
        bufs.batch(0),
        None,
        &mut (),
    );
    assert_eq!(r, Err(Error::NonFinite { what: Quantity::Score, level: 3, step: 3 }));
    let mut bufs = Bufs::<f32>::new(3, 2);
    let r = plan::run(
        &plan,
        &mut Bad { at_sigma_below: 50.0, value: f32::MAX },
        &mut Keyed::new(1),
        bufs.batch(0),
        None,
        &mut (),
    );
    assert_eq!(r, Err(Error::NonFinite { what: Quantity::State, level: 4, step: 4 }));
}

/// Noise-denoise on a 1-D Gaussian N(0, τ²) at noise σ: with ρ = σ²/(τ² + σ²) a step is
/// x ← (1 − λρ) x + λσ(1 − ρ) ξ, so the stationary variance is λ²σ²(1 − ρ)²/(1 − (1 − λρ)²):
/// λ = 2 gives τ² exactly (the clean data), λ = 1 less (the oversmoothing of plain
/// noise-denoise). 20 000 chains: relative standard error √(2/20 000) = 1%, 5 allowed.
#[test]
fn noise_denoise_stationary_variance() {
    use anneal_core::samplers::noise_denoise::NoiseDenoise;
    let (tau, sigma) = (1.0f64, 0.5f64);
    let zero = [0.0f64];
    let score = Gaussian::new(&zero, tau).unwrap();
    let sig = [sigma];
    let s = Borrowed::single(&sig).unwrap();
    let rho = sigma * sigma / (tau * tau + sigma * sigma);
    let n = 20_000usize;
    for lambda in [1.0, 2.0] {
        let plan = NoiseDenoise::new(&s, lambda, 200).unwrap();
        let mut bufs = Bufs::<f64>::new(n, 1);
        let mut noise = Keyed::new(8);
        plan::init_normal(&mut noise, 0, 1, 1.0, &mut bufs.x).unwrap();
        plan::run(&plan, &mut PerSample(&score), &mut noise, bufs.batch(0), None, &mut ()).unwrap();
        let (_, v) = mean_var(&bufs.x);
        let want = lambda * lambda * sigma * sigma * (1.0 - rho).powi(2)
            / (1.0 - (1.0 - lambda * rho).powi(2));
        assert!(
            (v / want - 1.0).abs() < 5.0 * (2.0 / n as f64).sqrt(),
            "λ={lambda}: {v} vs {want}"
        );
        if lambda == 2.0 {
            assert!((want - tau * tau).abs() < 1e-12);
        }
    }
}

/// Predictor–corrector on a two-mode mixture in D = 16 (means ∓5·1, τ = 1, weights 0.2/0.8),
/// σ 100 → 0.05 over 300 levels, one corrector step: both orders and both corrector rules recover
/// the weights (2000 samples, standard error 0.009, 4 allowed). σ_1 = 100 because an N(0, σ_1²I)
/// start ignores the data's mean (here 3·1): at σ_1 = 20 that alone moves the weight to ~0.23.
/// (In D = 2 the snr rule is biased towards equal weights — ‖s‖ is small between the modes, so
/// α = 2(snr‖z‖/‖s‖)² is large there; see the README.)
/// With per-sample norms a sample is the same in any batch; with batch-mean norms (score_sde's
/// choice) it is not.
#[test]
fn predictor_corrector() {
    use anneal_core::plan::SnrNorms;
    use anneal_core::samplers::pc::{Corrector, Order, Pc};
    let d = 16usize;
    let means: Vec<f32> = (0..2 * d).map(|i| if i < d { -5.0 } else { 5.0 }).collect();
    let mix = IsotropicMixture::new(&means, d, Some(&[0.2, 0.8]), Taus::Shared(1.0)).unwrap();
    let s = Geometric::new(100.0, 0.05, 300).unwrap();
    let n = 2000usize;
    let se = (0.16f64 / n as f64).sqrt();
    let run = |plan: &Denoised<Pc<&Geometric>>, first: u64, count: usize| {
        let mut bufs = Bufs::<f32>::new(count, d);
        let mut noise = Keyed::new(21);
        plan::init_normal(&mut noise, first, d, 100.0, &mut bufs.x).unwrap();
        plan::run(plan, &mut PerSample(&mix), &mut noise, bufs.batch(first), None, &mut ())
            .unwrap();
        bufs.x
    };
    let snr = Corrector::Snr { snr: 0.16, norms: SnrNorms::PerSample };
    let langevin =
        Corrector::Langevin(LangevinStep::new(0.5 * 0.05 * 0.05, StepConvention::Ncsnv2).unwrap());
    for (order, corrector) in [
        (Order::PredictorFirst, snr),
        (Order::CorrectorFirst, snr),
        (Order::PredictorFirst, langevin),
    ] {
        let plan =
            Pc::new(&s, corrector, 1, order, 0.0).and_then(anneal_core::Plan::denoised).unwrap();
        let x = run(&plan, 0, n);
        let w = x.chunks(d).filter(|p| p.iter().sum::<f32>() < 0.0).count() as f64 / n as f64;
        assert!((w - 0.2).abs() < 4.0 * se, "{order:?} {corrector:?}: weight {w}");
        let alone = run(&plan, 17, 1);
        assert!(alone.iter().zip(&x[17 * d..18 * d]).all(|(a, b)| a.to_bits() == b.to_bits()));
    }
    let mean = Pc::new(
        &s,
        Corrector::Snr { snr: 0.16, norms: SnrNorms::BatchMean },
        1,
        Order::PredictorFirst,
        0.0,
    )
    .and_then(anneal_core::Plan::denoised)
    .unwrap();
    let (a, b) = (run(&mean, 0, 5), run(&mean, 0, 10));
    assert_ne!(a[..5 * d], b[..5 * d], "batch-mean norms make a sample depend on its batch");
    assert!(matches!(
        Pc::new(
            &s,
            Corrector::Snr { snr: 1.0, norms: SnrNorms::PerSample },
            1,
            Order::PredictorFirst,
            0.0
        )
        .and_then(anneal_core::Plan::denoised),
        Err(Error::OutOfRange { param: anneal_core::Param::Snr, .. })
    ));
}
