//! The kernels, compiled on the host by a C++ compiler (`gpu/tests/emu/`), run in the launch
//! order of the executor and compared with the core: the keyed noise bit for bit, and whole
//! sampler runs of both paths (direct and GEMM, with its f64 refinement at small σ) against the
//! core's f64 executor. This checks the kernels' arithmetic and indexing without a GPU; what it
//! cannot check (warp shuffles, block reductions with many threads, cuBLAS, the driver) is checked
//! by `gpu/tests/device.rs` on a GPU machine.
//!
//! Skips with the reason when no C++ compiler runs, unless `ANNEAL_REQUIRE_CXX=1` (CI).

mod common;
use common::skipped;

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use anneal_core::noise::{Keyed, Noise, Stream};
use anneal_core::plan::{self, AuxInit, Batch, PerSample, Plan, SnrNorms};
use anneal_core::samplers::als::Als;
use anneal_core::samplers::baoab::{Splitting, Underdamped};
use anneal_core::samplers::cas::Cas;
use anneal_core::samplers::pc::{Corrector, Order, Pc};
use anneal_core::score::{IsotropicMixture, Taus};
use anneal_core::{BatchScore, EtaRule, Geometric, LangevinStep, Real, StepConvention};
use anneal_gpu::table::{StepRec, records, status_error};

fn driver() -> Option<PathBuf> {
    static EXE: OnceLock<Option<PathBuf>> = OnceLock::new();
    EXE.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/emu");
        let exe = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("anneal-gpu-emu");
        let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
        // No FMA contraction: the emulation then rounds exactly as the CPU executor does.
        let out = Command::new(&cxx)
            .args(["-std=c++17", "-O2", "-ffp-contract=off", "-Wall", "-Wno-unknown-pragmas", "-o"])
            .arg(&exe)
            .arg(dir.join("driver.cpp"))
            .output();
        match out {
            Ok(o) if o.status.success() => Some(exe),
            Ok(o) => panic!("{cxx} failed on the kernels:\n{}", String::from_utf8_lossy(&o.stderr)),
            Err(e) => {
                let why = format!("no C++ compiler ({cxx}: {e})");
                assert!(
                    std::env::var("ANNEAL_REQUIRE_CXX").as_deref() != Ok("1"),
                    "ANNEAL_REQUIRE_CXX=1 but {why}"
                );
                skipped(&format!("SKIPPED: {why}"));
                None
            }
        }
    })
    .clone()
}

struct Problem<'a> {
    means: &'a [f32],
    dim: usize,
    weights: &'a [f64],
    tau: f64,
}

struct Emulated {
    x: Vec<f32>,
    status: u32,
    refined: u32,
    sparse_steps: u32,
    layout: [u64; 8],
    tags: [u32; 4],
}

fn bytes<T: Copy>(v: &[T]) -> &[u8] {
    // SAFETY: plain-old-data slices (f32, f64, u64, StepRec) viewed as bytes for the file.
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), std::mem::size_of_val(v)) }
}

/// The direct path.
const DIRECT: u64 = 0;
/// The GEMM path: SGEMM logits, S' always by the second GEMM.
const GEMM: u64 = 1;
/// Added to [`GEMM`]: G by DGEMM (f64 logits).
const G_F64: u64 = 2;
/// Added to [`GEMM`]: S' by `sparse_rm` at steps where every row is sparse.
const SPARSE: u64 = 4;
/// Added to [`GEMM`]: the softmax's logits in global memory (as for K > 4096) instead of shared.
const GLOBAL_LOGITS: u64 = 8;

/// Runs `plan` in the emulated kernels (`mode`: [`DIRECT`], or [`GEMM`] plus options) from the
/// states `x0`.
fn emulate<P: Plan + ?Sized>(
    exe: &PathBuf,
    plan: &P,
    p: &Problem,
    mode: u64,
    seed: u64,
    first: u64,
    x0: &[f32],
) -> Emulated {
    let d = p.dim;
    let k = p.means.len() / d;
    let b = x0.len() / d;
    let norms2: Vec<f64> =
        p.means.chunks_exact(d).map(|m| m.iter().map(|&v| v as f64 * v as f64).sum()).collect();
    let max_norm = norms2.iter().cloned().fold(0.0, f64::max).sqrt();
    let table: Vec<StepRec> = records(plan, 0..plan.len(), p.tau, d, max_norm).unwrap();
    let has_aux = plan.aux_init() != AuxInit::None;
    let mut aux = vec![0.0f32; x0.len()];
    if has_aux {
        Keyed::new(seed).normals_rows(first, Stream::AuxInit, d, &mut aux);
    }
    let header: [u64; 8] =
        [b as u64, d as u64, k as u64, table.len() as u64, has_aux as u64, seed, first, mode];
    let ln_w: Vec<f64> = p.weights.iter().map(|w| w.ln()).collect();
    let mut input = Vec::new();
    for part in [
        bytes(&header),
        bytes(&table),
        bytes(x0),
        bytes(&aux),
        bytes(p.means),
        bytes(&ln_w),
        bytes(&norms2),
    ] {
        input.extend_from_slice(part);
    }
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let tag = format!(
        "{}-{}",
        std::process::id(),
        std::thread::current().name().unwrap_or("t").replace(':', "_")
    );
    let (fin, fout) = (tmp.join(format!("emu-in-{tag}")), tmp.join(format!("emu-out-{tag}")));
    std::fs::write(&fin, input).unwrap();
    let st = Command::new(exe).arg(&fin).arg(&fout).status().unwrap();
    assert!(st.success(), "emulator exit {st}");
    let out = std::fs::read(&fout).unwrap();
    let n = x0.len();
    assert_eq!(out.len(), 4 * n + 12 + 64 + 16);
    let x =
        out[..4 * n].chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
    let word =
        |i: usize| u32::from_le_bytes(out[4 * n + 4 * i..4 * n + 4 * i + 4].try_into().unwrap());
    let mut layout = [0u64; 8];
    for (i, l) in layout.iter_mut().enumerate() {
        let o = 4 * n + 12 + 8 * i;
        *l = u64::from_le_bytes(out[o..o + 8].try_into().unwrap());
    }
    let tags = std::array::from_fn(|i| word(3 + 16 + i));
    Emulated { x, status: word(0), refined: word(1), sparse_steps: word(2), layout, tags }
}

/// The core's executor in f64 from the same states: the reference.
fn reference<P: Plan + ?Sized>(
    plan: &P,
    p: &Problem,
    seed: u64,
    first: u64,
    x0: &[f32],
) -> Result<Vec<f64>, anneal_core::Error> {
    let d = p.dim;
    let means: Vec<f64> = p.means.iter().map(|&v| v as f64).collect();
    let mix = IsotropicMixture::new(&means, d, Some(p.weights), Taus::Shared(p.tau)).unwrap();
    let x: Vec<f64> = x0.iter().map(|&v| v as f64).collect();
    run_core(plan, &mut PerSample(mix), d, seed, first, x)
}

/// The core's executor with `score` from the states `x`, noise keyed by `seed` from sample `first`.
fn run_core<F: Real, P: Plan + ?Sized, S: BatchScore<F>>(
    plan: &P,
    score: &mut S,
    dim: usize,
    seed: u64,
    first: u64,
    mut x: Vec<F>,
) -> Result<Vec<F>, anneal_core::Error> {
    let n = x.len();
    let (mut aux, mut s, mut xi, mut pt) =
        (vec![F::ZERO; n], vec![F::ZERO; n], vec![F::ZERO; n], vec![F::ZERO; n]);
    let batch = Batch {
        dim,
        first_sample: first,
        x: &mut x,
        aux: &mut aux,
        score: &mut s,
        noise: &mut xi,
        point: &mut pt,
    };
    plan::run(plan, score, &mut Keyed::new(seed), batch, None, &mut ())?;
    Ok(x)
}

/// The CPU's direct score (host/src/score/batch_score.rs, `score_rows_direct`): exact f64 logits and
/// softmax, rounded to f32 — what the direct kernel computes.
struct DirectScore<'a> {
    means: &'a [f32],
    dim: usize,
    ln_w: Vec<f64>,
    tau: f64,
}

impl BatchScore<f32> for DirectScore<'_> {
    fn dim(&self) -> usize {
        self.dim
    }
    fn score_batch(
        &mut self,
        points: &[f32],
        sigma: f64,
        out: &mut [f32],
    ) -> Result<(), anneal_core::Error> {
        let d = self.dim;
        let v = self.tau * self.tau + sigma * sigma;
        let (inv_v, half_inv_v) = (1.0 / v, 0.5 / v);
        for (y, o) in points.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
            let logits: Vec<f64> = self
                .means
                .chunks_exact(d)
                .zip(&self.ln_w)
                .map(|(mu, lw)| {
                    lw - y.iter().zip(mu).map(|(&a, &m)| (a as f64 - m as f64).powi(2)).sum::<f64>()
                        * half_inv_v
                })
                .collect();
            let max = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let mut acc = vec![0.0f64; d];
            let mut z = 0.0;
            for (l, mu) in logits.iter().zip(self.means.chunks_exact(d)) {
                let t = l - max;
                let e = if t < -40.0 {
                    0.0
                } else if t == 0.0 {
                    1.0
                } else {
                    t.exp()
                };
                z += e;
                acc.iter_mut().zip(mu).for_each(|(a, &m)| *a += e * m as f64);
            }
            let inv_z = 1.0 / z;
            for ((o, &a), &yv) in o.iter_mut().zip(&acc).zip(y) {
                *o = ((a * inv_z - yv as f64) * inv_v) as f32;
            }
        }
        Ok(())
    }
}

/// The core's f32 executor with the direct score: the CPU's own path for small mixtures.
fn reference_f32<P: Plan + ?Sized>(
    plan: &P,
    p: &Problem,
    seed: u64,
    first: u64,
    x0: &[f32],
) -> Result<Vec<f32>, anneal_core::Error> {
    let mut score = DirectScore {
        means: p.means,
        dim: p.dim,
        ln_w: p.weights.iter().map(|w| w.ln()).collect(),
        tau: p.tau,
    };
    run_core(plan, &mut score, p.dim, seed, first, x0.to_vec())
}

/// Initial states N(0, σ_1² I) + `center`, drawn by the core.
fn init(b: usize, d: usize, sigma: f64, center: f32, seed: u64) -> Vec<f32> {
    let mut x = vec![0.0f32; b * d];
    plan::init_normal(&mut Keyed::new(seed), 0, d, sigma, &mut x).unwrap();
    x.iter_mut().for_each(|v| *v += center);
    x
}

/// max |emulated − reference| / max(1, |reference|).
fn max_rel(e: &[f32], r: &[f64]) -> f64 {
    e.iter().zip(r).map(|(&a, &b)| (a as f64 - b).abs() / b.abs().max(1.0)).fold(0.0, f64::max)
}

#[test]
fn step_record_layout_matches_the_kernels() {
    let Some(exe) = driver() else { return };
    let means = [0.0f32, 0.0];
    let p = Problem { means: &means, dim: 2, weights: &[1.0], tau: 1.0 };
    let s = Geometric::new(2.0, 1.0, 2).unwrap();
    let plan = Cas::new(&s, EtaRule::eps_c(1.0).unwrap()).unwrap();
    let e = emulate(&exe, &plan, &p, DIRECT, 0, 0, &[0.5, 0.5]);
    let o = |f: usize| f as u64;
    use std::mem::offset_of;
    let rust = [
        std::mem::size_of::<StepRec>() as u64,
        o(offset_of!(StepRec, inv_v)),
        o(offset_of!(StepRec, point_aux)),
        o(offset_of!(StepRec, x)),
        o(offset_of!(StepRec, a)),
        o(offset_of!(StepRec, snr)),
        o(offset_of!(StepRec, step)),
        o(offset_of!(StepRec, active)),
    ];
    assert_eq!(e.layout, rust, "C++ sizeof/offsetof of StepRec differ from the Rust struct");
    let core_tags = [Stream::Step(0), Stream::Init, Stream::InpaintLevel(0), Stream::AuxInit]
        .map(|s| s.index_and_tag().1);
    assert_eq!(e.tags, core_tags, "the kernels' STREAM_TAG_* differ from the core's tags");
}

/// The direct path (toy2d: K = 2, D = 2) for CAS, PC with the snr corrector and OBABO (auxiliary
/// state) against the CPU's own f32 path for small mixtures (the core's executor with the direct
/// score) from the same start and seed: the same operations on the same noise words, so only
/// glibc's and libm's `logf`/`exp` (≤ 1 ulp apart) separate them. Measured: CAS and OBABO equal
/// in most coordinates (median 0), at most 2.2e-7 relative; bound 1e-6. The snr corrector in
/// D = 2 amplifies an ulp (α ∝ (‖ξ‖/‖s‖)² where ‖s‖ is near 0): median 7e-8, 99th percentile
/// 6e-5, max 1e-3; bounds 1e-6 on the median and 1e-4 on the 99th percentile. Against the core's
/// f64 executor, CAS agrees to 1e-5 as well.
#[test]
fn direct_path_matches_the_core_on_toy2d() {
    let Some(exe) = driver() else { return };
    let means = [-5.0f32, -5.0, 5.0, 5.0];
    let weights = [0.2, 0.8];
    let p = Problem { means: &means, dim: 2, weights: &weights, tau: 1.0 };
    let s = Geometric::new(14.0, 0.01, 50).unwrap();
    let x0 = init(300, 2, 14.0, 3.0, 7);
    let cas =
        Cas::new(&s, EtaRule::eps_c(2.0).unwrap()).and_then(anneal_core::Plan::denoised).unwrap();
    let snr = Corrector::Snr { snr: 0.16, norms: SnrNorms::PerSample };
    let pc = Pc::new(&s, snr, 1, Order::PredictorFirst, 1.0)
        .and_then(anneal_core::Plan::denoised)
        .unwrap();
    let step = LangevinStep::new(2e-5, StepConvention::Ncsnv2).unwrap();
    let obabo = Underdamped::new(&s, step, 1.0, Splitting::Obabo, 3, 1.0).unwrap();
    let plans: [(&str, &dyn Plan); 3] = [("cas", &cas), ("obabo", &obabo), ("pc-snr", &pc)];
    for (name, plan) in plans {
        let e = emulate(&exe, plan, &p, DIRECT, 11, 0, &x0);
        assert_eq!(e.status, u32::MAX, "{name}: status {}", e.status);
        let r = reference_f32(plan, &p, 11, 0, &x0).unwrap();
        let r: Vec<f64> = r.iter().map(|&v| v as f64).collect();
        let mut errs: Vec<f64> =
            e.x.iter().zip(&r).map(|(&a, &b)| (a as f64 - b).abs() / b.abs().max(1.0)).collect();
        errs.sort_by(f64::total_cmp);
        let (median, max) = (errs[errs.len() / 2], errs[errs.len() - 1]);
        let p99 = errs[errs.len() * 99 / 100];
        let ok = if name == "pc-snr" { median < 1e-6 && p99 < 1e-4 } else { max < 1e-6 };
        assert!(
            ok,
            "{name}: relative difference median {median:e}, 99th percentile {p99:e}, max {max:e}"
        );
        // The samples moved: not the start.
        assert!(
            e.x.iter().zip(&x0).any(|(a, b)| (a - b).abs() > 1.0),
            "{name}: samples did not move"
        );
    }
    let e = emulate(&exe, &cas, &p, DIRECT, 11, 0, &x0);
    let err = max_rel(&e.x, &reference(&cas, &p, 11, 0, &x0).unwrap());
    assert!(err < 1e-5, "cas against f64: {err:e}");
}

/// The GEMM path (K = 40, D = 12, τ = 0.05, σ down to 0.01, where the f32 logits need the f64
/// refinement) for CAS, ALS and PC-snr against the core's f64 executor, in each variant: SGEMM
/// logits, DGEMM logits, either with S' from `sparse_rm` where every row is sparse, and either
/// with the logits in global instead of shared memory. f32 state
/// and GEMMs against f64 everywhere, measured at ≤ 1.1e-6 relative (CAS 4.9e-7, ALS 1.1e-6,
/// PC-snr 8.2e-7 with SGEMM logits); the bound 1e-5 leaves room for other compilers and is far
/// below the O(0.1) error of a wrong index or coefficient. With SGEMM logits the refinement must
/// have run; with DGEMM logits (bound 2⁻²⁹ times smaller) it must not have; with the sparse
/// option some steps must have taken it.
#[test]
fn gemm_path_matches_the_core_down_to_sigma_001() {
    let Some(exe) = driver() else { return };
    let (k, d) = (40usize, 12usize);
    // Means in [0, 1] from the core's keyed uniforms (deterministic).
    let mut means = vec![0.0f32; k * d];
    for (c, row) in means.chunks_exact_mut(d).enumerate() {
        Keyed::new(99).uniforms(c as u64, Stream::Init, row);
    }
    let weights: Vec<f64> = (0..k).map(|c| (1 + c % 3) as f64).collect();
    let total: f64 = weights.iter().sum();
    let weights: Vec<f64> = weights.iter().map(|w| w / total).collect();
    let p = Problem { means: &means, dim: d, weights: &weights, tau: 0.05 };
    let s = Geometric::new(2.0, 0.01, 30).unwrap();
    let x0 = init(48, d, 2.0, 0.5, 5);
    let cas =
        Cas::new(&s, EtaRule::eps_c(1.5).unwrap()).and_then(anneal_core::Plan::denoised).unwrap();
    let growth = anneal_core::Schedule::ratio(&s, 0).unwrap().growth();
    let t4 = anneal_core::ncsnv2::technique4_eps(0.01, growth, 3).unwrap().eps;
    let als = Als::new(&s, LangevinStep::new(t4, StepConvention::Ncsnv2).unwrap(), 3, 0.05)
        .and_then(anneal_core::Plan::denoised)
        .unwrap();
    let snr = Corrector::Snr { snr: 0.1, norms: SnrNorms::PerSample };
    let pc = Pc::new(&s, snr, 1, Order::CorrectorFirst, 0.05)
        .and_then(anneal_core::Plan::denoised)
        .unwrap();
    let plans: [(&str, &dyn Plan); 3] = [("cas", &cas), ("als", &als), ("pc-snr", &pc)];
    for (name, plan) in plans {
        let r = reference(plan, &p, 3, 1000, &x0).unwrap();
        for mode in [
            GEMM,
            GEMM + SPARSE,
            GEMM + G_F64,
            GEMM + G_F64 + SPARSE,
            GEMM + GLOBAL_LOGITS,
            GEMM + G_F64 + GLOBAL_LOGITS,
        ] {
            let e = emulate(&exe, plan, &p, mode, 3, 1000, &x0);
            assert_eq!(e.status, u32::MAX, "{name}, mode {mode}: status {}", e.status);
            if mode & G_F64 == 0 {
                assert!(e.refined > 0, "{name}: the f64 refinement never ran");
            } else {
                assert_eq!(e.refined, 0, "{name}: refined with f64 logits");
            }
            if mode & SPARSE != 0 {
                assert!(e.sparse_steps > 0, "{name}: no step took the sparse product");
            }
            let err = max_rel(&e.x, &r);
            eprintln!(
                "{name}, mode {mode}: max relative difference {err:e}, rows refined {}, sparse steps {}",
                e.refined, e.sparse_steps
            );
            assert!(err < 1e-5, "{name}, mode {mode}: max relative difference {err:e}");
        }
    }
}

/// A score that overflows f32 stops the run at the step and level the CPU's f32 path names.
#[test]
fn non_finite_values_are_reported_at_the_cpus_step() {
    let Some(exe) = driver() else { return };
    let means = [0.0f32, 0.0, 1.0, 1.0];
    let p = Problem { means: &means, dim: 2, weights: &[0.5, 0.5], tau: 0.0 };
    let s = Geometric::new(1.0, 1e-3, 4).unwrap();
    let plan = Cas::new(&s, EtaRule::eps_c(1.0).unwrap()).unwrap();
    // |x| = 1e37: s ≈ −x/σ² overflows f32 at a later level, once σ² is small enough.
    let x0 = [1e37f32, -1e37, 2e36, 1.0];
    let want = reference_f32(&plan, &p, 0, 0, &x0).unwrap_err();
    assert!(matches!(want, anneal_core::Error::NonFinite { level: 2.., .. }), "{want:?}");
    for mode in [DIRECT, GEMM, GEMM + G_F64 + SPARSE] {
        let e = emulate(&exe, &plan, &p, mode, 0, 0, &x0);
        let got = status_error(&plan, e.status).expect("no failure reported");
        assert_eq!(got, want, "mode = {mode}");
    }
}

/// The emulated noise of a run is the core's: a plan whose only randomness is ξ (CAS from a
/// fixed point with one-point data, D = 7, not a multiple of 4) reproduces x_N = Σ c_k ξ_k.
#[test]
fn keyed_noise_is_the_cores_for_odd_dimensions() {
    let Some(exe) = driver() else { return };
    let d = 7;
    let means = vec![0.0f32; d];
    let p = Problem { means: &means, dim: d, weights: &[1.0], tau: 0.0 };
    let s = Geometric::new(1.0, 0.5, 2).unwrap();
    // εc = ∞: η = 1, β = 1, so x_1 = σ_2 ξ_0 exactly (εc = 1 would make the step noiseless).
    let plan = Cas::new(&s, EtaRule::eps_c(f64::INFINITY).unwrap()).unwrap();
    let x0 = vec![0.0f32; 5 * d];
    let e = emulate(&exe, &plan, &p, DIRECT, 42, 1 << 40, &x0);
    let mix = IsotropicMixture::new(&means, d, None, Taus::Shared(0.0)).unwrap();
    let x = run_core(&plan, &mut PerSample(mix), d, 42, 1 << 40, x0.clone()).unwrap();
    // Same f32 operations on the same words: equal up to libm's and glibc's logf (≤ 1 ulp).
    for (a, b) in e.x.iter().zip(&x) {
        assert!((a - b).abs() <= 4.0 * f32::EPSILON * b.abs().max(1e-3), "{a} vs {b}");
    }
    assert!(x.iter().all(|v| v.is_finite() && *v != 0.0));
}
