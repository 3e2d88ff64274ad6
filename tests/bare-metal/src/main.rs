//! anneal-core on a Cortex-M4F (QEMU `mps2-an386`): one line per check, then `N passed, N failed`;
//! exit status 0 when every check passed, 1 otherwise (also on a panic or a HardFault).
//!
//! The reproducibility checks compare against `expected.bin` in QEMU's working directory, written
//! by the host side of the test (`tests/tests/bare_metal.rs`) with the same `problems.rs`.
#![no_std]
#![no_main]

mod problems;
mod stack;

use core::fmt::Write as _;

use anneal_core::ncsnv2::prop3_ratio;
use anneal_core::params::{cas_step, check_langevin};
use anneal_core::plan::{self, Plan, Single, Update};
use anneal_core::samplers::als::Als;
use anneal_core::samplers::cas::Cas;
use anneal_core::score::{IsotropicMixture, Taus};
use anneal_core::{Error, EtaRule, Geometric, LangevinStep, Quantity, Schedule, StepConvention};
use cortex_m::peripheral::syst::SystClkSource;
use cortex_m_rt::{ExceptionFrame, entry, exception};
use problems::{D, EXPECTED_WORDS, NOISE_CASES, SAMPLERS, SAMPLES};
use semihosting::io::Read as _;
use semihosting::{eprintln, println};

struct Report {
    passed: u32,
    failed: u32,
}

impl Report {
    fn check(&mut self, name: &str, ok: bool, detail: core::fmt::Arguments<'_>) {
        if ok {
            self.passed += 1;
            println!("ok   {name}");
        } else {
            self.failed += 1;
            println!("FAIL {name}: {detail}");
        }
    }
}

fn rel(a: f64, b: f64) -> f64 {
    if b == 0.0 { a.abs() } else { ((a - b) / b).abs() }
}

/// η_i ∈ [1 − γ_i, 1], β_i ∈ [0, 1] and monotonicity in εc over a grid of N and εc.
fn cas_bounds_grid() -> (bool, u32) {
    let eps_cs = [1.0, 1.0 + 1e-9, 1.0001, 1.5, 2.0, 10.0, 1e6, f64::INFINITY];
    let mut n_checked = 0u32;
    for n in [2usize, 3, 5, 10, 100, 1000, 100_000, 1_000_000] {
        let Ok(s) = Geometric::new(50.0, 0.01, n) else { return (false, n_checked) };
        for i in [0, n / 2, n - 2].into_iter().filter(|&i| i + 1 < n) {
            let mut last_eta = -1.0;
            for e in eps_cs {
                let Ok(rule) = EtaRule::eps_c(e) else { return (false, n_checked) };
                let Ok(st) = cas_step(&s, rule, i) else { return (false, n_checked) };
                let lower = st.ratio.one_minus();
                if !(st.eta >= lower
                    && st.eta <= 1.0
                    && (0.0..=1.0).contains(&st.beta)
                    && st.eta >= last_eta)
                {
                    return (false, n_checked);
                }
                last_eta = st.eta;
                n_checked += 1;
            }
        }
    }
    (true, n_checked)
}

/// One-point data: every CAS step maps σ_i² to σ_{i+1}² (coefficients only).
fn cas_consistency() -> f64 {
    let mut worst = 0.0f64;
    for n in [2usize, 7, 50, 1000] {
        let Ok(s) = Geometric::new(20.0, 0.02, n) else { return f64::INFINITY };
        for e in [1.0, 1.3, 2.0, 7.0, f64::INFINITY] {
            let Ok(p) = EtaRule::eps_c(e).and_then(|r| Cas::new(&s, r)) else {
                return f64::INFINITY;
            };
            for k in 0..p.len() {
                let Some(st) = p.step(k) else { return f64::INFINITY };
                let Update::Linear { x, .. } = st.update else { return f64::INFINITY };
                let (si, sn) = (st.sigma, st.sigma_after);
                let a = 1.0 - x.score / (si * si);
                let v = a * a * si * si + x.noise * x.noise;
                worst = worst.max(rel(v, sn * sn));
            }
        }
    }
    worst
}

/// ALS over T steps of a level reproduces Proposition 3.
fn als_prop3() -> f64 {
    let Ok(s) = Geometric::new(50.0, 0.01, 232) else { return f64::INFINITY };
    let g = s.common_ratio().growth();
    let mut worst = 0.0f64;
    for (u, t) in [(0.062, 5u32), (0.5, 3), (1.5, 20)] {
        let eps = u * 1e-4;
        let Ok(p) =
            LangevinStep::new(eps, StepConvention::Ncsnv2).and_then(|st| Als::new(&s, st, t, 0.0))
        else {
            return f64::INFINITY;
        };
        let level = 100;
        let Some(si) = s.sigma(level) else { return f64::INFINITY };
        let mut v = g.value() * g.value() * si * si;
        for k in 0..t as usize {
            let Some(st) = p.step(level * t as usize + k) else { return f64::INFINITY };
            let Update::Linear { x, .. } = st.update else { return f64::INFINITY };
            let a = 1.0 - x.score / (si * si);
            v = a * a * v + x.noise * x.noise;
        }
        worst = worst.max(rel(v / (si * si), prop3_ratio(eps, 0.01, g, t)));
    }
    worst
}

/// A score that returns NaN below σ = 2: the run must stop naming level 3, step 3.
struct NanBelow2;

impl anneal_core::BatchScore<f32> for NanBelow2 {
    fn dim(&self) -> usize {
        D
    }
    fn score_batch(&mut self, _p: &[f32], sigma: f64, out: &mut [f32]) -> Result<(), Error> {
        let v = if sigma < 2.0 { f32::NAN } else { 0.0 };
        out.iter_mut().for_each(|o| *o = v);
        Ok(())
    }
}

fn read_expected(buf: &mut [u8; EXPECTED_WORDS * 4]) -> bool {
    match semihosting::fs::File::open(c"expected.bin") {
        Ok(mut f) => f.read_exact(buf).is_ok(),
        Err(_) => false,
    }
}

fn word(buf: &[u8; EXPECTED_WORDS * 4], i: usize) -> u32 {
    match buf.get(4 * i..4 * i + 4) {
        Some(&[a, b, c, d]) => u32::from_le_bytes([a, b, c, d]),
        _ => 0,
    }
}

/// Instructions per element of one CAS step (score + noise + update), by SysTick under
/// `-icount shift=0` (1 ns of virtual time per instruction; SysTick runs at 25 MHz there, so a
/// tick is 40 instructions). The 12-level run minus the 2-level run is 10 CAS steps of D elements.
fn cas_step_instructions(means: &[f32]) -> Option<(u32, u32)> {
    let mut p = cortex_m::Peripherals::take()?;
    p.SYST.set_clock_source(SystClkSource::Core);
    p.SYST.set_reload(0x00FF_FFFF);
    p.SYST.clear_current();
    p.SYST.enable_counter();
    let mix =
        IsotropicMixture::new(means, D, Some(&problems::WEIGHTS), Taus::Shared(problems::TAU))
            .ok()?;
    let mut ticks = [0u32; 2];
    for (t, levels) in ticks.iter_mut().zip([2usize, 12]) {
        let s = Geometric::new(10.0, 0.05, levels).ok()?;
        let cas = Cas::new(&s, EtaRule::eps_c(2.0).ok()?).ok()?;
        let mut buf = Single::<f32, D>::new();
        let mut noise = anneal_core::noise::Keyed::new(1);
        plan::init_normal(&mut noise, 0, D, 10.0, &mut buf.x).ok()?;
        let start = cortex_m::peripheral::SYST::get_current();
        plan::run(&cas, &mut plan::PerSample(&mix), &mut noise, buf.batch(0), None, &mut ())
            .ok()?;
        let end = cortex_m::peripheral::SYST::get_current();
        *t = start.wrapping_sub(end) & 0x00FF_FFFF;
    }
    let per_element = (ticks[1].saturating_sub(ticks[0]) as u64 * 40 / (10 * D as u64)) as u32;
    Some((per_element, ticks[1]))
}

#[entry]
fn main() -> ! {
    stack::paint();
    let mut r = Report { passed: 0, failed: 0 };

    let (ok, n) = cas_bounds_grid();
    r.check(
        "cas η/β bounds and monotonicity over N ∈ [2, 10⁶] × εc ∈ [1, ∞]",
        ok,
        format_args!("after {n} checks"),
    );

    let refused = Geometric::new(20.0, 1.0, 10).and_then(|s| {
        Cas::new(&s, EtaRule::eps_b(0.1)?).and_then(anneal_core::Plan::denoised).map(|_| ())
    });
    r.check(
        "eps_b out of bounds refused, naming step 1",
        matches!(refused, Err(Error::EtaOutOfBounds { step: 1, .. })),
        format_args!("{refused:?}"),
    );

    let worst = cas_consistency();
    r.check(
        "cas consistency σ_i² → σ_{i+1}² (coefficients)",
        worst < 1e-12,
        format_args!("worst {worst:e}"),
    );

    let worst = als_prop3();
    r.check(
        "als matches NCSNv2 Prop. 3 (coefficients)",
        worst < 1e-12,
        format_args!("worst {worst:e}"),
    );

    let paper = Geometric::new(10.0, 0.1, 10)
        .and_then(|s| check_langevin(&s, LangevinStep::new(0.1, StepConvention::Ncsn)?, 1.0));
    r.check(
        "NCSN appendix setting (σ 10 → 0.1, ε = 0.1) refused",
        matches!(paper, Err(Error::StepUnstable { .. })),
        format_args!("{paper:?}"),
    );

    let mut b = Single::<f32, D>::new();
    let nan = Geometric::new(10.0, 0.1, 5)
        .and_then(|s| Cas::new(s, EtaRule::eps_c(2.0)?).and_then(anneal_core::Plan::denoised))
        .and_then(|p| {
            plan::run(
                &p,
                &mut NanBelow2,
                &mut anneal_core::noise::Keyed::new(1),
                b.batch(0),
                None,
                &mut (),
            )
        });
    r.check(
        "non-finite score stops the run at level 3, step 3",
        nan == Err(Error::NonFinite { what: Quantity::Score, level: 3, step: 3 }),
        format_args!("{nan:?}"),
    );

    let means = problems::means();
    let mut expected = [0u8; EXPECTED_WORDS * 4];
    let have = read_expected(&mut expected);
    r.check(
        "expected.bin from the host",
        have,
        format_args!("cannot read expected.bin in QEMU's working directory"),
    );
    if have {
        let mut w = 0usize;
        for (case, &(s, k)) in NOISE_CASES.iter().enumerate() {
            let mut bits = [0u32; D];
            problems::noise_bits(case, &mut bits);
            let same = bits.iter().enumerate().all(|(i, &v)| v == word(&expected, w + i));
            w += D;
            r.check("noise bits equal the host's", same, format_args!("sample {s} step {k}"));
        }
        for (which, name) in SAMPLERS.iter().enumerate() {
            for &sample in &SAMPLES {
                let mut buf = Single::<f32, D>::new();
                let res = problems::run(which, sample, &means, &mut buf);
                let mut worst = 0.0f64;
                for (i, &v) in buf.x.iter().enumerate() {
                    let host = f32::from_bits(word(&expected, w + i)) as f64;
                    worst = worst.max((v as f64 - host).abs() / host.abs().max(1.0));
                }
                w += D;
                let mut label: heapless::String<64> = heapless::String::new();
                let _ = write!(label, "{name} sample {sample} equals the host's within 1e-6");
                r.check(
                    &label,
                    res.is_ok() && worst <= 1e-6,
                    format_args!("{res:?}, worst {worst:e}"),
                );
            }
        }
        let host = (
            f64::from_bits(word(&expected, w) as u64 | (word(&expected, w + 1) as u64) << 32),
            f64::from_bits(word(&expected, w + 2) as u64 | (word(&expected, w + 3) as u64) << 32),
        );
        let dev = problems::techniques();
        let ok = dev.is_ok_and(|(g, e)| rel(g, host.0) < 1e-12 && rel(e, host.1) < 1e-12);
        r.check(
            "Techniques 2 and 4 equal the host's within 1e-12",
            ok,
            format_args!("{dev:?} vs {host:?}"),
        );
    }

    if let Some((per_element, ticks)) = cas_step_instructions(&means) {
        println!(
            "info cas step, D = {D}, K = {}: {per_element} instructions per element (icount; {ticks} ticks for 11 steps)",
            problems::K
        );
    }
    println!("info stack high-water: {} bytes", stack::high_water());
    println!("{} passed, {} failed", r.passed, r.failed);
    semihosting::process::exit(if r.failed == 0 { 0 } else { 1 })
}

#[exception]
unsafe fn HardFault(ef: &ExceptionFrame) -> ! {
    eprintln!("HardFault at pc = {:#010x}", ef.pc());
    semihosting::process::exit(1)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    eprintln!("panic: {info}");
    semihosting::process::exit(1)
}
