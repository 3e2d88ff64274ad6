//! The minimal CAS sampler whose footprint the README reports: a geometric schedule, εc's η/β,
//! the CAS steps, keyed noise and an isotropic mixture score with D = 64, K = 4, one sample on
//! the stack. No formatting machinery: it prints `stack N` (the painted high-water mark, bytes)
//! with hand-made digits and exits 0, or exits 1 on any error.
#![no_std]
#![no_main]

#[path = "../stack.rs"]
mod stack;

use anneal_core::noise::Keyed;
use anneal_core::plan::{self, PerSample, Single};
use anneal_core::samplers::cas::Cas;
use anneal_core::score::{IsotropicMixture, Taus};
use anneal_core::{Error, EtaRule, Geometric};
use cortex_m_rt::entry;
use semihosting::io::Write as _;

const D: usize = 64;
const K: usize = 4;

static MEANS: [f32; K * D] = {
    let mut m = [0.0f32; K * D];
    let mut i = 0;
    while i < K * D {
        m[i] = ((i * 37) % 41) as f32 / 10.0 - 2.0;
        i += 1;
    }
    m
};

fn sample(x: &mut Single<f32, D>) -> Result<(), Error> {
    let mix = IsotropicMixture::new(&MEANS, D, None, Taus::Shared(0.3))?;
    let schedule = Geometric::new(10.0, 0.05, 12)?;
    let cas = Cas::new(&schedule, EtaRule::eps_c(2.0)?).and_then(anneal_core::Plan::denoised)?;
    let mut noise = Keyed::new(7);
    plan::init_normal(&mut noise, 0, D, 10.0, &mut x.x)?;
    plan::run(&cas, &mut PerSample(&mix), &mut noise, x.batch(0), None, &mut ())
}

#[entry]
fn main() -> ! {
    stack::paint();
    let mut x = Single::<f32, D>::new();
    let ok = sample(core::hint::black_box(&mut x)).is_ok() && x.x.iter().all(|v| v.is_finite());
    let mut line = *b"stack 0000000000\n";
    let mut n = stack::high_water();
    for d in line[6..16].iter_mut().rev() {
        *d = b'0' + (n % 10) as u8;
        n /= 10;
    }
    if let Ok(mut out) = semihosting::io::stdout() {
        let _ = out.write_all(&line);
    }
    semihosting::process::exit(if ok { 0 } else { 1 })
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    semihosting::process::exit(1)
}
