//! Proof that no panic path survives in the core's plan/step API: this binary calls it on
//! opaque inputs (`black_box`), and its panic handler calls a function that does not exist. A
//! release build links only if the optimiser removed every call to the panic handler.
//! Built with `--release --features panic-never` (a debug build keeps overflow checks).
#![no_std]
#![no_main]

use core::hint::black_box;

use anneal_core::noise::Keyed;
use anneal_core::plan::{self, PerSample, Plan, Single};
use anneal_core::samplers::als::Als;
use anneal_core::samplers::baoab::{BaoabLimit, Splitting, Underdamped};
use anneal_core::samplers::cas::Cas;
use anneal_core::samplers::pc::{Corrector, Order, Pc};
use anneal_core::score::{IsotropicMixture, Taus};
use anneal_core::{Error, EtaRule, Geometric, LangevinStep, Schedule, StepConvention};
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
        &Cas::new(&s, EtaRule::eps_c(eps_c)?, true)?,
        &mut score,
        &mut noise,
        x.batch(seed),
        None,
        &mut (),
    )?;
    plan::run(
        &Als::new(&s, step, t, true, 0.0)?,
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
    let pc = Pc::new(&s, Corrector::Langevin(step), t, Order::CorrectorFirst, true, 0.0)?;
    acc += pc.len() as f64;
    plan::run(&pc, &mut score, &mut noise, x.batch(seed), None, &mut ())?;
    Ok(x.x.iter().sum::<f32>() + acc as f32)
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
