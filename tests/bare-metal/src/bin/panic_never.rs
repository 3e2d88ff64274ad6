//! Proof that no panic path survives in the core's plan/step API: this binary calls it (every
//! sampler, inpainting, the snr corrector, user tables, NCSNv2's techniques) on
//! opaque inputs (`black_box`), and its panic handler calls a function that does not exist. A
//! release build links only if the optimiser removed every call to the panic handler.
//! Built with `--release --features panic-never` (a debug build keeps overflow checks).
#![no_std]
#![no_main]

use core::hint::black_box;

use anneal_core::noise::Keyed;
use anneal_core::plan::{self, Inpaint, PerSample, Plan, Single, SnrNorms};
use anneal_core::samplers::als::Als;
use anneal_core::samplers::baoab::{BaoabLimit, Splitting, Underdamped};
use anneal_core::samplers::cas::Cas;
use anneal_core::samplers::noise_denoise::NoiseDenoise;
use anneal_core::samplers::pc::{Corrector, Order, Pc};
use anneal_core::score::{IsotropicMixture, Taus};
use anneal_core::{Error, EtaRule, Geometric, LangevinStep, Schedule, StepConvention, Table};
use cortex_m_rt::entry;

const D: usize = 16;

fn everything(
    means: &[f32],
    sigmas: (f64, f64, usize),
    eps_c: f64,
    eps: f64,
    t: u32,
    seed: u64,
) -> Result<f32, Error> {
    let mix = IsotropicMixture::new(means, D, None, Taus::Shared(black_box(0.3)))?;
    let s = Geometric::new(sigmas.0, sigmas.1, sigmas.2)?;
    let mut acc = 0.0f64;
    for i in 0..s.levels() {
        acc += s.sigma(i).unwrap_or(0.0) + s.ratio(i).map_or(0.0, |r| r.one_minus());
        if let Ok(c) = anneal_core::params::cas_step(&s, EtaRule::eps_c(eps_c)?, i) {
            acc += c.eta + c.beta;
        }
    }
    let step = LangevinStep::new(eps, StepConvention::Ncsnv2)?;
    let mut x = Single::<f32, D>::new();
    let mut noise = Keyed::new(seed);
    let mut score = PerSample(&mix);
    plan::init_normal(&mut noise, seed, D, sigmas.0, &mut x.x)?;
    plan::run(
        &Cas::new(&s, EtaRule::eps_c(eps_c)?).and_then(anneal_core::Plan::denoised)?,
        &mut score,
        &mut noise,
        x.batch(seed),
        None,
        &mut (),
    )?;
    plan::run(
        &Als::new(&s, step, t, 0.0).and_then(anneal_core::Plan::denoised)?,
        &mut score,
        &mut noise,
        x.batch(seed),
        None,
        &mut (),
    )?;
    plan::run(
        &BaoabLimit::new(&s, step, t, 0.0)?,
        &mut score,
        &mut noise,
        x.batch(seed),
        None,
        &mut (),
    )?;
    let ud = Underdamped::new(&s, step, black_box(1.0), Splitting::Obabo, t, 0.0)?;
    plan::run(&ud, &mut score, &mut noise, x.batch(seed), None, &mut ())?;
    let pc = Pc::new(&s, Corrector::Langevin(step), t, Order::CorrectorFirst, 0.0)
        .and_then(anneal_core::Plan::denoised)?;
    acc += pc.len() as f64;
    plan::run(&pc, &mut score, &mut noise, x.batch(seed), None, &mut ())?;
    let snr = Corrector::Snr { snr: black_box(0.16), norms: SnrNorms::PerSample };
    let pc =
        Pc::new(&s, snr, t, Order::PredictorFirst, 0.0).and_then(anneal_core::Plan::denoised)?;
    plan::run(&pc, &mut score, &mut noise, x.batch(seed), None, &mut ())?;
    let nd = NoiseDenoise::new(&s, black_box(1.5), t)?;
    plan::run(&nd, &mut score, &mut noise, x.batch(seed), None, &mut ())?;
    let ud = Underdamped::new(&s, step, black_box(2.0), Splitting::Baoab, t, 0.0)?;
    plan::run(&ud, &mut score, &mut noise, x.batch(seed), None, &mut ())?;
    // Inpainting with half of the coordinates known.
    let known = black_box([0.25f32; D]);
    let mut mask = [0.0f32; D];
    mask.iter_mut().step_by(2).for_each(|m| *m = 1.0);
    let mut level_noise = [0.0f32; D];
    let ip = Inpaint { known: &known, mask: &black_box(mask), level_noise: &mut level_noise };
    let als = Als::new(&s, step, t, 0.0).and_then(anneal_core::Plan::denoised)?;
    plan::run(&als, &mut score, &mut noise, x.batch(seed), Some(ip), &mut ())?;
    // A user table and NCSNv2's techniques.
    let table = Table::<16>::new(&black_box([4.0, 2.0, 1.0, 0.5]))?;
    plan::run(
        &Cas::new(&table, EtaRule::eps_b(black_box(0.2))?).and_then(anneal_core::Plan::denoised)?,
        &mut score,
        &mut noise,
        x.batch(seed),
        None,
        &mut (),
    )?;
    let g = anneal_core::ncsnv2::technique2_growth(black_box(3072), black_box(0.5))?;
    let t4 = anneal_core::ncsnv2::technique4_eps(black_box(0.01), g, t)?;
    acc += t4.eps + anneal_core::ncsnv2::max_pairwise_distance(means, D)?;
    let full = anneal_core::score::FullCovMixture::<2, 2>::new(
        [nalgebra::Vector2::new(black_box(1.0), 0.0), nalgebra::Vector2::new(0.0, black_box(1.0))],
        [nalgebra::Matrix2::identity() * black_box(0.5); 2],
        [1.0, 2.0],
    )?;
    let mut y = Single::<f32, 2>::new();
    plan::run(
        &Cas::new(&s, EtaRule::eps_c(eps_c)?).and_then(anneal_core::Plan::denoised)?,
        &mut PerSample(&full),
        &mut noise,
        y.batch(seed),
        None,
        &mut (),
    )?;
    Ok(x.x.iter().sum::<f32>() + y.x[0] + acc as f32)
}

#[entry]
fn main() -> ! {
    let means = black_box([0.5f32; 4 * D]);
    let r = everything(
        &means,
        black_box((10.0, 0.05, 12)),
        black_box(2.0),
        black_box(1e-3),
        black_box(3),
        black_box(42),
    );
    black_box(r.ok());
    loop {
        cortex_m::asm::wfi();
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    unsafe extern "C" {
        fn anneal_core_public_api_has_a_panic_path() -> !;
    }
    // SAFETY: never called; the symbol does not exist, so any remaining call fails the link.
    unsafe { anneal_core_public_api_has_a_panic_path() }
}
