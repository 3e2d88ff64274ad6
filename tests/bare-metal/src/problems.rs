//! The problems that both the Cortex-M4F and the host compute, so that the host side of the test
//! can produce the expected values (`expected.bin`) and the device can compare against them.
//! Compiled into the device binaries and, through `#[path]`, into `tests/tests/bare_metal.rs`.

use anneal_core::noise::{Keyed, Noise, Stream};
use anneal_core::plan::{self, PerSample, Plan, Single};
use anneal_core::samplers::als::Als;
use anneal_core::samplers::baoab::BaoabLimit;
use anneal_core::samplers::cas::Cas;
use anneal_core::score::{IsotropicMixture, Taus};
use anneal_core::{Error, EtaRule, Geometric, LangevinStep, StepConvention};

/// Dimension of the sampled vectors.
pub const D: usize = 64;
/// Mixture components.
pub const K: usize = 4;
/// The seed of every keyed stream here.
pub const SEED: u64 = 0x5EED_2026_0001;
/// Mixture weights.
pub const WEIGHTS: [f64; K] = [0.1, 0.2, 0.3, 0.4];
/// Component standard deviation.
pub const TAU: f64 = 0.3;
/// Global sample indices that are run.
pub const SAMPLES: [u64; 2] = [0, 1_000_003];
/// (sample, step) pairs whose noise bits are compared.
pub const NOISE_CASES: [(u64, u32); 3] = [(0, 0), (7, 12345), (1 << 40, 3)];
/// The samplers that are run.
pub const SAMPLERS: [&str; 3] = ["cas", "als", "baoab-limit"];
/// Words in `expected.bin`: noise bits, then the samples, then two f64 technique values.
pub const EXPECTED_WORDS: usize = NOISE_CASES.len() * D + SAMPLERS.len() * SAMPLES.len() * D + 4;

/// The mixture means, K × D, from a fixed integer formula (values in [−2, 2]).
pub fn means() -> [f32; K * D] {
    let mut m = [0.0f32; K * D];
    for (i, v) in m.iter_mut().enumerate() {
        *v = ((i as u64 * 2_654_435_761) % 401) as f32 / 100.0 - 2.0;
    }
    m
}

/// The noise of `NOISE_CASES[case]` as f32 bits.
pub fn noise_bits(case: usize, out: &mut [u32; D]) {
    let (sample, step) = NOISE_CASES[case % NOISE_CASES.len()];
    let mut v = [0.0f32; D];
    Keyed::new(SEED).normals(sample, Stream::Step(step), &mut v);
    for (o, x) in out.iter_mut().zip(v) {
        *o = x.to_bits();
    }
}

/// Runs sampler `which` (index into `SAMPLERS`) for global sample `sample` into `buf.x`.
pub fn run(
    which: usize,
    sample: u64,
    means: &[f32],
    buf: &mut Single<f32, D>,
) -> Result<(), Error> {
    let mix = IsotropicMixture::new(means, D, Some(&WEIGHTS), Taus::Shared(TAU))?;
    let schedule = Geometric::new(10.0, 0.05, 12)?;
    let mut noise = Keyed::new(SEED);
    plan::init_normal(&mut noise, sample, D, 10.0, &mut buf.x)?;
    let step = LangevinStep::new(0.5 * 0.05 * 0.05, StepConvention::Ncsnv2)?;
    let mut score = PerSample(&mix);
    match which {
        0 => {
            let p =
                Cas::new(&schedule, EtaRule::eps_c(2.0)?).and_then(anneal_core::Plan::denoised)?;
            exec(&p, &mut score, &mut noise, sample, buf)
        }
        1 => {
            let p = Als::new(&schedule, step, 3, 0.0).and_then(anneal_core::Plan::denoised)?;
            exec(&p, &mut score, &mut noise, sample, buf)
        }
        _ => {
            let p = BaoabLimit::new(&schedule, step, 3, 0.0)?;
            exec(&p, &mut score, &mut noise, sample, buf)
        }
    }
}

fn exec<P: Plan>(
    p: &P,
    score: &mut PerSample<&IsotropicMixture<'_, f32>>,
    noise: &mut Keyed,
    sample: u64,
    buf: &mut Single<f32, D>,
) -> Result<(), Error> {
    plan::run(p, score, noise, buf.batch(sample), None, &mut ())
}

/// Technique 2's ln g for D = 3072, C = 0.5, and Technique 4's ε for NCSNv2's CIFAR-10 setting
/// (σ 50 → 0.01 over 232 levels, T = 5).
pub fn techniques() -> Result<(f64, f64), Error> {
    use anneal_core::ncsnv2::{technique2_growth, technique4_eps};
    let g = technique2_growth(3072, 0.5)?;
    let growth = Geometric::new(50.0, 0.01, 232)?.common_ratio().growth();
    let t4 = technique4_eps(0.01, growth, 5)?;
    Ok((g.ln(), t4.eps))
}
