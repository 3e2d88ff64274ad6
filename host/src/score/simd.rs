//! Hot loops compiled for the widest vector unit of the CPU they run on, chosen at run time.
//!
//! The release build targets baseline x86-64 (SSE2), so that one binary runs on any x86-64; the
//! loops that matter (noise, logits, softmax) are written as plain lane-shaped Rust in
//! `#[inline(always)]` functions, and [`dispatch!`] calls one inside a copy compiled with AVX-512F
//! or AVX2 (each with FMA) when the CPU has them. The copies perform the same IEEE operations in
//! the same order (Rust never contracts `a * b + c` into an FMA; the GEMM asks for FMA explicitly
//! and the fallback computes the same exactly rounded FMA), so results are bit for bit the same
//! at every [`Level`]: `tests::every_level_gives_the_same_bits` checks it on the machine it runs
//! on. (The `multiversion` crate does this with a procedural macro; a few call sites do not need
//! one.)

use std::sync::atomic::{AtomicU8, Ordering};

/// An instruction-set level, in order.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code, reason = "only x86-64 has levels"))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Baseline: SSE2 on x86-64; any other architecture.
    Baseline = 0,
    /// AVX2 and FMA.
    Avx2 = 1,
    /// AVX-512F (and FMA).
    Avx512 = 2,
}

/// The highest level [`level`] may return (tests lower it to run every path).
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code, reason = "only x86-64 has levels"))]
static CAP: AtomicU8 = AtomicU8::new(Level::Avx512 as u8);

/// The level this CPU supports, at most the cap (detection is cached by std).
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code, reason = "only x86-64 has levels"))]
#[inline]
pub fn level() -> Level {
    #[cfg(target_arch = "x86_64")]
    let detected = if !std::arch::is_x86_feature_detected!("fma") {
        Level::Baseline
    } else if std::arch::is_x86_feature_detected!("avx512f") {
        Level::Avx512
    } else if std::arch::is_x86_feature_detected!("avx2") {
        Level::Avx2
    } else {
        Level::Baseline
    };
    #[cfg(not(target_arch = "x86_64"))]
    let detected = Level::Baseline;
    match CAP.load(Ordering::Relaxed) {
        0 => Level::Baseline,
        1 => detected.min(Level::Avx2),
        _ => detected,
    }
}

/// Caps [`level`] (for tests and comparisons; results do not change, only speed).
#[cfg(test)]
pub fn set_cap(cap: Level) {
    CAP.store(cap as u8, Ordering::Relaxed);
}

/// `dispatch!(kernel, (arg: Type, …) -> Ret)`: calls the `#[inline(always)]` function `kernel`
/// with the variables of the same names, inside a copy compiled for AVX-512F + FMA or AVX2 + FMA
/// as [`level`] says, else as is.
macro_rules! dispatch {
    ($kernel:path, ($($arg:ident: $ty:ty),* $(,)?) -> $ret:ty) => {{
        #[cfg(target_arch = "x86_64")]
        {
            #[target_feature(enable = "avx512f,fma")]
            fn avx512($($arg: $ty),*) -> $ret {
                $kernel($($arg),*)
            }
            #[target_feature(enable = "avx2,fma")]
            fn avx2($($arg: $ty),*) -> $ret {
                $kernel($($arg),*)
            }
            match $crate::score::simd::level() {
                // SAFETY: level() found AVX-512F and FMA on this CPU.
                $crate::score::simd::Level::Avx512 => unsafe { avx512($($arg),*) },
                // SAFETY: level() found AVX2 and FMA on this CPU.
                $crate::score::simd::Level::Avx2 => unsafe { avx2($($arg),*) },
                $crate::score::simd::Level::Baseline => $kernel($($arg),*),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            $kernel($($arg),*)
        }
    }};
}

pub(crate) use dispatch;

/// e^t for t in [−745, 0] (ℓ = t·log₂e rounded to the nearest integer k, r = t − k ln 2 in two
/// parts (Cody–Waite), e^r by its Taylor series to r¹³ — |r| ≤ ln2/2 leaves a truncation error
/// below 1e-17 — and the factor 2ᵏ written into the exponent bits), within 2 ulp of the
/// correctly rounded value (test below) for t ≥ −708, where 2ᵏ is normal. Branch-free and
/// library-free so that it vectorises; the same operations on every instruction set.
#[inline(always)]
pub fn exp_nonpositive(t: f64) -> f64 {
    // 1.5·2⁵²: adding it rounds to an integer, which then sits in the low mantissa bits.
    const SHIFT: f64 = 6_755_399_441_055_744.0;
    // ln 2 = LN2_HI + LN2_LO, LN2_HI with 32 trailing zero bits (so k·LN2_HI is exact).
    const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
    const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);
    const INV_FACT: [f64; 14] = {
        let mut c = [1.0f64; 14];
        let mut n = 1;
        while n < 14 {
            c[n] = c[n - 1] / n as f64;
            n += 1;
        }
        c
    };
    let big = t * core::f64::consts::LOG2_E + SHIFT;
    let k = big - SHIFT;
    let r = (t - k * LN2_HI) - k * LN2_LO;
    let mut p = INV_FACT[13];
    for &c in INV_FACT[..13].iter().rev() {
        p = p * r + c;
    }
    // k + 1023 in the exponent field: the low bits of `big` hold k (two's complement).
    let bits = big.to_bits().wrapping_sub(SHIFT.to_bits()).wrapping_add(1023) << 52;
    p * f64::from_bits(bits)
}

/// e^t in single precision for t in [−87, 0] (k = t·log₂e rounded to the nearest integer,
/// r = t − k ln 2 in two parts, e^r by its Taylor series to r⁷ — |r| ≤ ln2/2 leaves a truncation
/// error below 2⁻²⁶ — and 2ᵏ written into the exponent bits): within 2 ulp of e^t (test below).
/// Branch-free and library-free, so that it vectorises sixteen to a 512-bit register.
#[inline(always)]
pub fn exp_nonpositive_f32(t: f32) -> f32 {
    // 1.5·2²³: adding it rounds to an integer, which then sits in the low mantissa bits.
    const SHIFT: f32 = 12_582_912.0;
    // ln 2 = LN2_HI + LN2_LO, LN2_HI with 12 trailing zero bits (k·LN2_HI is exact for |k| < 2¹²).
    const LN2_HI: f32 = f32::from_bits(0x3f31_7000);
    const LN2_LO: f32 = 3.194_618_5e-5;
    const INV_FACT: [f32; 8] =
        [1.0, 1.0, 0.5, 1.0 / 6.0, 1.0 / 24.0, 1.0 / 120.0, 1.0 / 720.0, 1.0 / 5040.0];
    let big = t * core::f32::consts::LOG2_E + SHIFT;
    let k = big - SHIFT;
    let r = (t - k * LN2_HI) - k * LN2_LO;
    let mut p = INV_FACT[7];
    for &c in INV_FACT[..7].iter().rev() {
        p = p * r + c;
    }
    let bits = big.to_bits().wrapping_sub(SHIFT.to_bits()).wrapping_add(127) << 23;
    p * f32::from_bits(bits)
}

/// One bit per value of `t` ≥ `cut` (NaN: 0): bit i of `bits[q]` for `t[q][i]`. On AVX-512 one
/// compare into a mask register per group (LLVM vectorises the plain loop across groups with
/// gathers instead, ~10% of the GEMM score's row pass on digits); the same bits everywhere.
pub fn ge_bits(t: &[[f64; 8]], cut: f64, bits: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    if level() == Level::Avx512 {
        // SAFETY: level() found AVX-512F on this CPU.
        unsafe { ge_bits_avx512(t, cut, bits) };
        return;
    }
    for (m, g) in bits.iter_mut().zip(t) {
        let mut b = 0u8;
        for (i, &x) in g.iter().enumerate() {
            b |= u8::from(x >= cut) << i;
        }
        *m = b;
    }
}

/// [`ge_bits`] by `vcmppd` into a mask register (greater-or-equal, ordered: false for NaN).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn ge_bits_avx512(t: &[[f64; 8]], cut: f64, bits: &mut [u8]) {
    use std::arch::x86_64::{_CMP_GE_OQ, _mm512_cmp_pd_mask, _mm512_loadu_pd, _mm512_set1_pd};
    let c = _mm512_set1_pd(cut);
    for (m, g) in bits.iter_mut().zip(t) {
        // SAFETY: g is 8 f64s.
        let v = unsafe { _mm512_loadu_pd(g.as_ptr()) };
        *m = _mm512_cmp_pd_mask::<_CMP_GE_OQ>(v, c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ge_bits at every level: the plain loop's bits, over ties with the cut, NaNs, infinities
    /// and signed zeros.
    #[test]
    fn ge_bits_agree_at_every_level() {
        let top = level();
        let special = [0.0, -0.0, 1.5, -1.5, f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1.5000001];
        let t: Vec<[f64; 8]> = (0..64)
            .map(|q| std::array::from_fn(|i| special[(q * 5 + i * 3) % 8] * (1 + q % 3) as f64))
            .collect();
        for cut in [1.5, 0.0, -0.0, f64::NEG_INFINITY, -3.0, 3.0] {
            let want: Vec<u8> = t
                .iter()
                .map(|g| g.iter().enumerate().map(|(i, &x)| u8::from(x >= cut) << i).sum())
                .collect();
            for cap in [Level::Baseline, Level::Avx2, Level::Avx512] {
                set_cap(cap);
                let mut bits = vec![0u8; t.len()];
                ge_bits(&t, cut, &mut bits);
                assert_eq!(bits, want, "cut {cut}, {cap:?}");
            }
        }
        set_cap(top);
    }
    use anneal_core::BatchScore;
    use anneal_core::noise::Stream;

    /// Everything that dispatches, at every level this CPU has (baseline, AVX2, AVX-512): the
    /// keyed normals, a GEMM with partial blocks, the refinement's f64 product, the direct score (toy2d), the GEMM score with
    /// dense, sparse and refined rows, and whole runs of the executor (CAS, and BAOAB with its
    /// auxiliary state) — bit for bit the baseline's results.
    #[test]
    fn every_level_gives_the_same_bits() {
        let top = level();
        let (k, d) = (100, 20);
        let means: Vec<f32> =
            (0..k * d).map(|i| ((i * 7919 % 1013) as f32 - 506.0) / 300.0).collect();
        let weights = vec![1.0 / k as f64; k];
        let toy = crate::io::data::load("toy2d").expect("toy2d");
        let run = || {
            let mut out: Vec<u32> = Vec::new();
            for dim in [2, 64, 3072] {
                let mut z = vec![0.0f32; dim * 9];
                crate::score::par_noise::normals_rows_f32(5, 3, Stream::Step(4), dim, &mut z);
                out.extend(z.iter().map(|v| v.to_bits()));
            }
            let packed = crate::score::gemm::Packed::transposed(&means, k, d);
            let mut c = vec![0.0f32; 37 * k];
            crate::score::gemm::gemm(37, &means[..37 * d], &packed, &mut c, k);
            out.extend(c.iter().map(|v| v.to_bits()));
            let rows: Vec<&[f32]> = means.chunks_exact(d).take(37).collect();
            let mut c64 = vec![0.0f64; 37 * k];
            let ap = crate::score::gemm::pack64(&rows, d);
            crate::score::gemm::gemm64_cols(&ap, 37, &packed, 0, k, &mut c64, k);
            out.extend(c64.iter().flat_map(|v| [v.to_bits() as u32, (v.to_bits() >> 32) as u32]));
            let pts: Vec<f32> = (0..37 * d).map(|i| ((i * 31 % 97) as f32 - 48.0) / 40.0).collect();
            let mix = crate::score::batch_score::Mixture::new(anneal_core::score::MixtureData {
                means: &means,
                dim: d,
                weights: &weights,
                tau: 0.05,
            });
            let tmix = crate::score::batch_score::Mixture::new(toy.mixture(1.0));
            for sigma in [5.0, 0.3, 0.01] {
                let mut s = vec![0.0f32; pts.len()];
                crate::score::batch_score::GemmMixture::new(&mix)
                    .score_batch(&pts, sigma, &mut s)
                    .unwrap();
                out.extend(s.iter().map(|v| v.to_bits()));
                let mut s = vec![0.0f32; 2 * 13];
                let p2 = &pts[..2 * 13];
                crate::score::batch_score::GemmMixture::new(&tmix)
                    .score_batch(p2, sigma, &mut s)
                    .unwrap();
                out.extend(s.iter().map(|v| v.to_bits()));
            }
            out
        };
        // Whole runs through the executor's dispatched `plan::run` (the update and the checks),
        // with and without an auxiliary state.
        let whole = |sampler: &str| -> Vec<u32> {
            let argv = ["anneal", "sample", "--data", "toy2d", "--n", "40", "--sampler", sampler];
            let crate::cli::Command::Sample(a) =
                <crate::cli::Cli as clap::Parser>::try_parse_from(argv).unwrap().command
            else {
                panic!("not a sample command")
            };
            let (data, net) = crate::config::load_source(&a.data, &a.score).unwrap();
            let spec =
                crate::config::RunSpec::from_sample(&a, &serde_json::Value::Null, net.as_ref());
            let p = crate::config::RunConfig::new(&spec, data).unwrap();
            let hidden = indicatif::ProgressBar::hidden();
            let (x, _) = crate::exec::cpu::sample(&p, &hidden, false).unwrap();
            x.iter().map(|v| v.to_bits()).collect()
        };
        let run = || {
            let mut out = run();
            out.extend(whole("cas"));
            out.extend(whole("baoab"));
            out
        };
        set_cap(Level::Baseline);
        let base = run();
        for cap in [Level::Avx2, Level::Avx512].into_iter().filter(|&c| c <= top) {
            set_cap(cap);
            assert!(run() == base, "{cap:?} differs from the baseline");
        }
        set_cap(Level::Avx512);
    }

    /// Against std's exp (glibc's, correctly rounded in practice) on 2·10⁶ points of [−708, 0]
    /// and at the ends: within 2 ulp, relative 2·2⁻⁵² = 4.4e-16.
    #[test]
    fn exp_within_two_ulp() {
        let mut worst = 0.0f64;
        for i in 0..=2_000_000u32 {
            let t = -708.0 * (i as f64 / 2e6).powf(3.0);
            let (got, want) = (exp_nonpositive(t), t.exp());
            worst = worst.max(((got - want) / want).abs());
        }
        assert!(worst <= 2.0 * f64::EPSILON, "worst relative error {worst:e}");
        assert_eq!(exp_nonpositive(0.0), 1.0);
    }

    /// The single-precision exp against f64's on 2·10⁶ points of [−87, 0] and at the ends:
    /// within 2 ulp, relative 2·2⁻²³ = 2.4e-7.
    #[test]
    fn exp_f32_within_two_ulp() {
        let mut worst = 0.0f64;
        for i in 0..=2_000_000u32 {
            let t = (-87.0 * (i as f64 / 2e6).powf(3.0)) as f32;
            let (got, want) = (exp_nonpositive_f32(t) as f64, (t as f64).exp());
            worst = worst.max(((got - want) / want).abs());
        }
        assert!(worst <= 2.0 * f32::EPSILON as f64, "worst relative error {worst:e}");
        assert_eq!(exp_nonpositive_f32(0.0), 1.0);
    }
}
