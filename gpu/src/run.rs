//! The executor: a whole plan on the device, data resident from the first step to the last.
//!
//! Two paths, chosen by the mixture's size:
//! - **direct** (K·D ≤ 64, D ≤ 16 — toy2d): the `direct_run` kernel runs each sample through a
//!   chunk of steps in one thread (a persistent loop: one launch per [`DIRECT_CHUNK`] steps, no
//!   GEMM), with the CPU's exact f64 logits;
//! - **GEMM**: per step `G = Y Mᵀ` (DGEMM on the widened values, or SGEMM: [`Options`]),
//!   `mixture_softmax` (row logits in f64, exact refinement of near-max logits where the error
//!   bound exceeds 1e-4, row softmax, the rows' non-zero counts), `S' = R' M` (SGEMM, or
//!   `sparse_rm` when every row is sparse), `snr_norms` for snr updates only, and the fused
//!   `plan_step` (score finish, update, checks, next noise and score point). Steps run in chunks
//!   of equal length (≤ [`GEMM_CHUNK`]) with a status check between chunks; a chunk can be
//!   captured once as a CUDA graph and replayed with each chunk's step table.
//!
//! Noise is the core's keyed stream computed on the device, and so is `sample`'s default start
//! ([`Start::Normal`]); the auxiliary state's initial normals are drawn on the host by the core
//! (once, B × D). Rows are independent: a sample does not depend on the others, but the GEMM's
//! summation order (cuBLAS's choice of kernel) may depend on the batch's shape, so device samples
//! equal the CPU's within float rounding, not bit for bit.

use anneal_core::Plan;
use anneal_core::noise::{Keyed, Noise, Stream};
use anneal_core::plan::AuxInit;
use cudarc::cublas::sys::cublasOperation_t::{CUBLAS_OP_N, CUBLAS_OP_T};
use cudarc::cublas::{Gemm, GemmConfig};
use cudarc::driver::{CudaSlice, LaunchConfig, PushKernelArg};

use crate::table::{STATUS_OK, StepRec, records, status_error};
use crate::{Device, Error};

/// Steps per `direct_run` launch (and between status checks).
pub const DIRECT_CHUNK: usize = 256;
/// Steps of the GEMM path between status checks (and table uploads).
pub const GEMM_CHUNK: usize = 64;
/// Device memory for the B × K scratch (G in f32 and the logits in f64) of one row chunk.
const SCRATCH_BYTES: usize = 1 << 30;

/// A Gaussian mixture with one component standard deviation τ, as the host holds it.
#[derive(Debug, Clone, Copy)]
pub struct Mixture<'a> {
    /// The means, K × D row-major.
    pub means: &'a [f32],
    /// D.
    pub dim: usize,
    /// The K weights (sum 1).
    pub weights: &'a [f64],
    /// τ ≥ 0.
    pub tau: f64,
}

impl Mixture<'_> {
    fn components(&self) -> usize {
        self.means.len().checked_div(self.dim).unwrap_or(0)
    }

    /// Whether the direct (GEMM-free) path serves this mixture (the core's
    /// [`anneal_core::score::is_small_mixture`], the host's rule too).
    pub fn direct(&self) -> bool {
        anneal_core::score::is_small_mixture(self.components(), self.dim)
    }
}

/// Which path ran and what it did.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunStats {
    /// True for the direct path.
    pub direct: bool,
    /// Row-steps whose logits were refined in f64 (GEMM path).
    pub refined_rows: u64,
    /// Row chunks the batch was split into (device memory).
    pub chunks: usize,
    /// GEMM path: the chunks of steps ran as captured CUDA graphs.
    pub graphs: bool,
    /// GEMM path: why a capture failed (the run then went on without graphs).
    pub graph_note: Option<String>,
    /// GEMM path: G came from a DGEMM (f64 logits).
    pub f64_logits: bool,
    /// GEMM path: steps (summed over row chunks) whose S' = R' M came from the sparse kernel.
    pub sparse_steps: u64,
    /// Wall-clock seconds of the set-up: the states, means and tables on the device, the means'
    /// norms (GEMM path; the direct path counts it in the steps).
    pub seconds_setup: f64,
    /// Wall-clock seconds of the steps (to the last status check).
    pub seconds_steps: f64,
    /// Wall-clock seconds of the copy of the samples to the host.
    pub seconds_copy_back: f64,
}

impl RunStats {
    /// One line: the path and what it did, e.g. "GEMM path, f64 logits, sparse S' at 64 steps".
    pub fn summary(&self) -> String {
        if self.direct {
            return "direct path".into();
        }
        let mut s = String::from("GEMM path");
        if self.f64_logits {
            s.push_str(", f64 logits (DGEMM)");
        } else {
            s.push_str(&format!(", f32 logits ({} row-steps refined in f64)", self.refined_rows));
        }
        if self.graphs {
            s.push_str(", CUDA graphs");
        }
        if self.sparse_steps > 0 {
            s.push_str(&format!(", sparse S' at {} steps", self.sparse_steps));
        }
        if let Some(n) = &self.graph_note {
            s.push_str(&format!(", graph capture failed ({n})"));
        }
        s
    }
}

/// Where a run's initial states come from.
#[derive(Debug, Clone, Copy)]
pub enum Start<'a> {
    /// The rows of `x` hold them (uploaded).
    Given,
    /// `sample`'s default: N(centre, σ² I) from the core's keyed stream `Init`, drawn on the
    /// device (equal to the core's `init_normal` plus the centre within float rounding: the
    /// device's `logf`/`sqrtf` in the normals).
    Normal {
        /// The centre (D values).
        center: &'a [f32],
        /// σ (> 0).
        sigma: f64,
    },
}

/// One row chunk's keys and start.
#[derive(Debug, Clone, Copy)]
struct RunCtx<'a> {
    seed: u64,
    first: u64,
    start: Start<'a>,
}

/// What one row chunk of the GEMM path did.
struct GemmStats {
    refined: u64,
    sparse_steps: u64,
    graphs: bool,
    graph_note: Option<String>,
}

/// Whether a GEMM-path technique is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// Where it was measured to pay (see [`Options`]).
    Auto,
    /// Always (tests and benchmarks compare the variants).
    Always,
    /// Never.
    Never,
}

/// How the GEMM path runs. [`Options::for_capability`] gives the defaults. Results agree within
/// float rounding whatever the options (the device tests run every combination).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Capture a chunk of steps as a CUDA graph and replay it for every chunk. Auto: when a
    /// step's work is small (B·K·D ≤ [`SMALL_WORK`], launches then matter) and the plan has at
    /// least [`GRAPH_MIN_CHUNKS`] chunks — the capture costs about 2 ms, more than it saves on a
    /// 100-step run (BENCHMARKS.md).
    pub graphs: Use,
    /// G = Y Mᵀ by DGEMM on the f32 values widened to f64: logits whose error bound is 2⁻²⁹ times
    /// the SGEMM's, so that the f64 refinement (which recomputes every logit within 36 nats of a
    /// row's maximum — all of them at large σ) practically never runs. Worth it where FP64
    /// tensor cores make DGEMM about as fast as SGEMM (compute capability 8.0, 9.0, 10.0).
    pub f64_logits: bool,
    /// S' = R' M from the few non-zero responsibilities instead of the second GEMM, at steps
    /// where every row has at most [`SPARSE_MAX`] of them (small σ). It reads a counter back
    /// every step, so it never runs inside a captured graph. Auto: when a step's work is large
    /// (B·K·D > [`SMALL_WORK`]); on small steps the read costs more than the GEMM it saves.
    pub sparse: Use,
}

impl Options {
    /// The defaults for a device of compute capability `(major, minor)`: graphs and sparse
    /// products where they pay; f64 logits where FP64 runs at the FP32 rate (A100, H100/H200,
    /// B200).
    pub fn for_capability(capability: (i32, i32)) -> Options {
        let fast_fp64 = matches!(capability, (8, 0) | (9, 0) | (10, 0));
        Options { graphs: Use::Auto, f64_logits: fast_fp64, sparse: Use::Auto }
    }

    /// Every combination with the techniques forced on or off (for tests and benchmarks).
    pub fn combinations() -> Vec<Options> {
        let mut v = Vec::new();
        for graphs in [Use::Never, Use::Always] {
            for f64_logits in [false, true] {
                for sparse in [Use::Never, Use::Always] {
                    v.push(Options { graphs, f64_logits, sparse });
                }
            }
        }
        v
    }
}

/// Largest B·K·D of a "small" step (about where its kernels take as long as launching them).
pub const SMALL_WORK: f64 = (1u64 << 28) as f64;
/// Fewest chunks of [`GEMM_CHUNK`] steps for which graphs are captured under [`Use::Auto`].
pub const GRAPH_MIN_CHUNKS: usize = 8;
/// Most non-zero responsibilities of a row that the sparse product handles (the kernels'
/// `SPARSE_MAX`).
pub const SPARSE_MAX: usize = 16;
/// Most components whose logits the softmax keeps in shared memory (the kernels'
/// `SHARED_LOGITS_MAX`).
const SHARED_LOGITS_MAX: usize = 4096;
/// 2⁻⁵³/2⁻²⁴: the f64 logit error bound over the f32 one.
const F64_OVER_F32_EPS: f64 = 1.0 / (1u64 << 29) as f64;

/// The launch configurations of the GEMM path.
struct Cfgs {
    step: LaunchConfig,
    softmax: LaunchConfig,
    snr: LaunchConfig,
}

/// The device buffers of the GEMM path.
struct StepBufs<'a> {
    table: &'a mut CudaSlice<StepRec>,
    x: &'a mut CudaSlice<f32>,
    a: &'a mut CudaSlice<f32>,
    y: &'a mut CudaSlice<f32>,
    y64: &'a mut CudaSlice<f64>,
    sp: &'a mut CudaSlice<f32>,
    g: &'a mut CudaSlice<f32>,
    wide: &'a mut CudaSlice<f64>,
    z: &'a mut CudaSlice<f64>,
    alpha: &'a mut CudaSlice<f64>,
    refined: &'a mut CudaSlice<u32>,
    idx: &'a mut CudaSlice<u32>,
    nnz: &'a mut CudaSlice<u32>,
    dense: &'a mut CudaSlice<u32>,
    status: &'a mut CudaSlice<u32>,
}

/// The f64 version of a GEMM configuration.
fn wide_config(c: GemmConfig<f32>) -> GemmConfig<f64> {
    GemmConfig {
        transa: c.transa,
        transb: c.transb,
        m: c.m,
        n: c.n,
        k: c.k,
        alpha: c.alpha as f64,
        lda: c.lda,
        ldb: c.ldb,
        beta: c.beta as f64,
        ldc: c.ldc,
    }
}

/// The two products of the score on row-major buffers, as cuBLAS (column-major) sees them:
/// `G = Y Mᵀ` (B × K) and `S' = R' M` (B × D), with M K × D.
fn gemm_configs(b: u32, k: u32, d: u32) -> (GemmConfig<f32>, GemmConfig<f32>) {
    let (b, k, d) = (b as i32, k as i32, d as i32);
    let g1 = GemmConfig {
        transa: CUBLAS_OP_T,
        transb: CUBLAS_OP_N,
        m: k,
        n: b,
        k: d,
        alpha: 1.0,
        lda: d,
        ldb: d,
        beta: 0.0,
        ldc: k,
    };
    let g2 = GemmConfig {
        transa: CUBLAS_OP_N,
        transb: CUBLAS_OP_N,
        m: d,
        n: b,
        k,
        alpha: 1.0,
        lda: d,
        ldb: k,
        beta: 0.0,
        ldc: d,
    };
    (g1, g2)
}

fn u32_of(what: &'static str, v: usize) -> Result<u32, Error> {
    u32::try_from(v).ok().filter(|&v| v < (1 << 31)).ok_or(Error::TooLarge {
        what,
        value: v,
        max: (1 << 31) - 1,
    })
}

impl Device {
    /// Runs every step of `plan` on the rows of `x` (B × D: the initial states in, the samples
    /// out), samples numbered from `first_sample`, noise keyed by `seed`. `progress` is called
    /// with the number of row-steps done since its last call. A non-finite score or state stops
    /// the run with the core's [`anneal_core::Error::NonFinite`] naming the level and step.
    pub fn run_plan<P: Plan + ?Sized>(
        &self,
        plan: &P,
        mix: &Mixture<'_>,
        seed: u64,
        first_sample: u64,
        x: &mut [f32],
        progress: &mut dyn FnMut(u64),
    ) -> Result<RunStats, Error> {
        self.run_plan_from(plan, mix, seed, first_sample, Start::Given, x, progress)
    }

    /// [`Device::run_plan`] from `start`: with [`Start::Normal`] the initial states are drawn on
    /// the device (nothing is uploaded; `x` only receives the samples).
    #[allow(clippy::too_many_arguments)]
    pub fn run_plan_from<P: Plan + ?Sized>(
        &self,
        plan: &P,
        mix: &Mixture<'_>,
        seed: u64,
        first_sample: u64,
        start: Start<'_>,
        x: &mut [f32],
        progress: &mut dyn FnMut(u64),
    ) -> Result<RunStats, Error> {
        let d = mix.dim;
        let k = mix.components();
        if d == 0 || k == 0 || mix.means.len() != k * d || mix.weights.len() != k {
            return Err(anneal_core::Error::DimensionMismatch {
                expected: k.max(1) * d.max(1),
                found: mix.means.len(),
            }
            .into());
        }
        if !x.len().is_multiple_of(d) {
            return Err(
                anneal_core::Error::DimensionMismatch { expected: d, found: x.len() }.into()
            );
        }
        match start {
            Start::Given => {
                if let Some(index) = x.iter().position(|v| !v.is_finite()) {
                    return Err(anneal_core::Error::NonFiniteInput { index }.into());
                }
            }
            Start::Normal { center, sigma } => {
                if center.len() != d {
                    return Err(anneal_core::Error::DimensionMismatch {
                        expected: d,
                        found: center.len(),
                    }
                    .into());
                }
                if let Some(index) = center.iter().position(|v| !v.is_finite()) {
                    return Err(anneal_core::Error::NonFiniteInput { index }.into());
                }
                if !(sigma.is_finite() && sigma > 0.0 && (sigma as f32).is_finite()) {
                    return Err(anneal_core::Error::OutOfRange {
                        param: anneal_core::Param::SigmaMax,
                        value: sigma,
                        allowed: "finite (in f32) and > 0",
                    }
                    .into());
                }
            }
        }
        u32_of("D", d)?;
        u32_of("K", k)?;
        let rows = x.len() / d;
        let rows_per_chunk =
            if mix.direct() { rows.max(1) } else { (SCRATCH_BYTES / (12 * k)).max(1) };
        let mut stats = RunStats { direct: mix.direct(), ..Default::default() };
        let mut row = 0;
        while row < rows {
            let count = rows_per_chunk.min(rows - row);
            let chunk = &mut x[row * d..(row + count) * d];
            let first = first_sample + row as u64;
            let ctx = RunCtx { seed, first, start };
            if mix.direct() {
                self.run_direct(plan, mix, ctx, chunk, progress, &mut stats)?;
            } else {
                let g = self.run_gemm(plan, mix, ctx, chunk, progress, &mut stats)?;
                stats.refined_rows += g.refined;
                stats.sparse_steps += g.sparse_steps;
                stats.graphs = g.graphs;
                stats.f64_logits = self.options.f64_logits;
                if g.graph_note.is_some() {
                    stats.graph_note = g.graph_note;
                }
            }
            stats.chunks += 1;
            row += count;
        }
        Ok(stats)
    }

    /// The rows' initial states on the device: uploaded, or drawn there.
    fn start_states(&self, ctx: RunCtx<'_>, d: usize, x: &[f32]) -> Result<CudaSlice<f32>, Error> {
        let s = &self.stream;
        match ctx.start {
            Start::Given => s.clone_htod(x).map_err(Error::driver("copying to the device")),
            Start::Normal { center, sigma } => {
                let rows = u32_of("rows", x.len() / d)?;
                let d32 = u32_of("D", d)?;
                let mut x_d = s
                    .alloc_zeros::<f32>(x.len())
                    .map_err(Error::driver("allocating device memory"))?;
                let c_d = s.clone_htod(center).map_err(Error::driver("copying to the device"))?;
                // The core's init_normal multiplies by σ rounded to f32.
                let sigma32 = sigma as f32;
                let threads = rows * d32.div_ceil(4);
                let cfg = LaunchConfig {
                    grid_dim: (threads.div_ceil(256).max(1), 1, 1),
                    block_dim: (256, 1, 1),
                    shared_mem_bytes: 0,
                };
                let mut launch = s.launch_builder(&self.kernels.init_normal_rows);
                launch
                    .arg(&ctx.seed)
                    .arg(&ctx.first)
                    .arg(&d32)
                    .arg(&rows)
                    .arg(&sigma32)
                    .arg(&c_d)
                    .arg(&mut x_d);
                // SAFETY: arguments in init_normal_rows's order and types; x_d holds rows × D,
                // the centre D.
                unsafe { launch.launch(cfg) }
                    .map_err(Error::driver("launching init_normal_rows"))?;
                Ok(x_d)
            }
        }
    }

    fn aux_init<P: Plan + ?Sized>(
        &self,
        plan: &P,
        seed: u64,
        first: u64,
        d: usize,
        len: usize,
    ) -> (bool, Vec<f32>) {
        if plan.aux_init() == AuxInit::None {
            return (false, vec![0.0]);
        }
        let mut aux = vec![0.0f32; len];
        Keyed::new(seed).normals_rows(first, Stream::AuxInit, d, &mut aux);
        (true, aux)
    }

    fn status<P: Plan + ?Sized>(&self, plan: &P, status: &CudaSlice<u32>) -> Result<(), Error> {
        let s = self.stream.clone_dtoh(status).map_err(Error::driver("reading the status"))?;
        match s.first().and_then(|&w| status_error(plan, w)) {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }

    fn run_direct<P: Plan + ?Sized>(
        &self,
        plan: &P,
        mix: &Mixture<'_>,
        ctx: RunCtx<'_>,
        x: &mut [f32],
        progress: &mut dyn FnMut(u64),
        stats: &mut RunStats,
    ) -> Result<(), Error> {
        let t0 = std::time::Instant::now();
        let (seed, first) = (ctx.seed, ctx.first);
        let (d, k) = (mix.dim, mix.components());
        let b = x.len() / d;
        let b32 = u32_of("rows", b)?;
        let s = &self.stream;
        let mut x_d = self.start_states(ctx, d, x)?;
        let (has_aux, aux) = self.aux_init(plan, seed, first, d, x.len());
        let mut a_d = s.clone_htod(&aux).map_err(Error::driver("copying to the device"))?;
        let means_d = s.clone_htod(mix.means).map_err(Error::driver("copying to the device"))?;
        let ln_w: Vec<f64> = mix.weights.iter().map(|w| w.ln()).collect();
        let lnw_d = s.clone_htod(&ln_w).map_err(Error::driver("copying to the device"))?;
        let mut status_d =
            s.clone_htod(&[STATUS_OK]).map_err(Error::driver("copying to the device"))?;
        let cfg = LaunchConfig {
            grid_dim: (b32.div_ceil(128), 1, 1),
            block_dim: (128, 1, 1),
            shared_mem_bytes: 0,
        };
        let (d32, k32, aux32) = (d as u32, k as u32, has_aux as u32);
        for c0 in (0..plan.len()).step_by(DIRECT_CHUNK) {
            let c1 = (c0 + DIRECT_CHUNK).min(plan.len());
            let table = records(plan, c0..c1, mix.tau, d, 0.0)?;
            let table_d = s.clone_htod(&table).map_err(Error::driver("copying the step table"))?;
            let count = (c1 - c0) as u32;
            let mut launch = s.launch_builder(&self.kernels.direct_run);
            launch
                .arg(&table_d)
                .arg(&count)
                .arg(&mut x_d)
                .arg(&mut a_d)
                .arg(&aux32)
                .arg(&means_d)
                .arg(&lnw_d)
                .arg(&b32)
                .arg(&d32)
                .arg(&k32)
                .arg(&seed)
                .arg(&first)
                .arg(&mut status_d);
            // SAFETY: the arguments match direct_run's parameters in order and type; every
            // buffer covers the B × D, K × D, K, count extents the kernel indexes.
            unsafe { launch.launch(cfg) }.map_err(Error::driver("launching direct_run"))?;
            self.status(plan, &status_d)?;
            progress((c1 - c0) as u64 * b as u64);
        }
        let t2 = std::time::Instant::now();
        s.memcpy_dtoh(&x_d, x).map_err(Error::driver("copying the samples back"))?;
        // The set-up (uploads, tables) overlaps the first launch here: it is counted in steps.
        stats.seconds_steps += (t2 - t0).as_secs_f64();
        stats.seconds_copy_back += t2.elapsed().as_secs_f64();
        Ok(())
    }

    fn run_gemm<P: Plan + ?Sized>(
        &self,
        plan: &P,
        mix: &Mixture<'_>,
        ctx: RunCtx<'_>,
        x: &mut [f32],
        progress: &mut dyn FnMut(u64),
        stats: &mut RunStats,
    ) -> Result<GemmStats, Error> {
        let t0 = std::time::Instant::now();
        let (seed, first) = (ctx.seed, ctx.first);
        let (d, k) = (mix.dim, mix.components());
        let b = x.len() / d;
        let (b32, d32, k32) = (u32_of("rows", b)?, d as u32, k as u32);
        u32_of("rows × K", b * k)?;
        let opts = self.options;
        let len = plan.len();
        // Chunks of equal length (at most GEMM_CHUNK steps): a captured chunk then wastes at most
        // one padded step per chunk at the plan's end.
        let chunks = len.div_ceil(GEMM_CHUNK).max(1);
        let c_len = len.div_ceil(chunks).max(1);
        let small = (b * k * d) as f64 <= SMALL_WORK;
        let mut use_graph = match opts.graphs {
            Use::Auto => small && chunks >= GRAPH_MIN_CHUNKS,
            Use::Always => true,
            Use::Never => false,
        };
        let g64 = opts.f64_logits;
        let use_sparse = !use_graph
            && match opts.sparse {
                Use::Auto => !small,
                Use::Always => true,
                Use::Never => false,
            };
        let s = &self.stream;
        let up = || Error::driver("copying to the device");
        let alloc = || Error::driver("allocating device memory");
        let mut x_d = self.start_states(ctx, d, x)?;
        let (has_aux, aux) = self.aux_init(plan, seed, first, d, x.len());
        let mut a_d = s.clone_htod(&aux).map_err(up())?;
        let means_d = s.clone_htod(mix.means).map_err(up())?;
        let mut means64_d = s.alloc_zeros::<f64>(if g64 { k * d } else { 1 }).map_err(alloc())?;
        let mut norms2_d = s.alloc_zeros::<f64>(k).map_err(alloc())?;
        {
            let null = 0u64;
            let mut launch = s.launch_builder(&self.kernels.means_prep);
            launch.arg(&means_d).arg(&k32).arg(&d32);
            if g64 {
                launch.arg(&mut means64_d);
            } else {
                launch.arg(&null);
            }
            launch.arg(&mut norms2_d);
            let cfg =
                LaunchConfig { grid_dim: (k32, 1, 1), block_dim: (256, 1, 1), shared_mem_bytes: 0 };
            // SAFETY: arguments in means_prep's order and types (means64 null unless it holds
            // K × D); one block per component.
            unsafe { launch.launch(cfg) }.map_err(Error::driver("launching means_prep"))?;
        }
        let norms2 = s.clone_dtoh(&norms2_d).map_err(Error::driver("reading the mean norms"))?;
        let max_norm = norms2.iter().cloned().fold(0.0, f64::max).sqrt();
        let ln_w: Vec<f64> = mix.weights.iter().map(|w| w.ln()).collect();
        let lnw_d = s.clone_htod(&ln_w).map_err(up())?;
        let mut y_d = s.alloc_zeros::<f32>(b * d).map_err(alloc())?;
        let mut y64_d = s.alloc_zeros::<f64>(if g64 { b * d } else { 1 }).map_err(alloc())?;
        let mut sp_d = s.alloc_zeros::<f32>(b * d).map_err(alloc())?;
        // G (SGEMM) and then R' in f32; the f64 B × K buffer holds G (DGEMM) or the logits.
        let mut g_d = s.alloc_zeros::<f32>(b * k).map_err(alloc())?;
        let mut wide_d = s.alloc_zeros::<f64>(b * k).map_err(alloc())?;
        let mut z_d = s.alloc_zeros::<f64>(b).map_err(alloc())?;
        let mut alpha_d = s.alloc_zeros::<f64>(b).map_err(alloc())?;
        let mut refined_d = s.alloc_zeros::<u32>(1).map_err(alloc())?;
        let mut idx_d =
            s.alloc_zeros::<u32>(if use_sparse { b * SPARSE_MAX } else { 1 }).map_err(alloc())?;
        let mut nnz_d = s.alloc_zeros::<u32>(b).map_err(alloc())?;
        let mut dense_d = s.alloc_zeros::<u32>(1).map_err(alloc())?;
        let mut status_d = s.clone_htod(&[STATUS_OK]).map_err(up())?;
        // SAFETY: sets a mode on the handle this Device owns; no TF32 or other reduced precision.
        let mode = unsafe {
            cudarc::cublas::sys::cublasSetMathMode(
                *self.blas.handle(),
                cudarc::cublas::sys::cublasMath_t::CUBLAS_DEFAULT_MATH,
            )
        };
        mode.result().map_err(Error::cublas("cublasSetMathMode"))?;

        let per_row = d32.div_ceil(4);
        let cfg = Cfgs {
            step: LaunchConfig {
                grid_dim: ((b32 * per_row).div_ceil(256), 1, 1),
                block_dim: (256, 1, 1),
                shared_mem_bytes: 0,
            },
            softmax: LaunchConfig {
                grid_dim: (b32, 1, 1),
                block_dim: (256, 1, 1),
                shared_mem_bytes: 0,
            },
            snr: LaunchConfig {
                grid_dim: (b32.div_ceil(128), 1, 1),
                block_dim: (128, 1, 1),
                shared_mem_bytes: 0,
            },
        };
        let (gemm1, gemm2) = gemm_configs(b32, k32, d32);
        let gemm1_64 = wide_config(gemm1);
        // The softmax keeps a row's logits in shared memory when they fit (K doubles ≤ 32 KiB).
        let shared_logits = (k <= SHARED_LOGITS_MAX) as u32;
        let softmax_cfg = LaunchConfig {
            shared_mem_bytes: if shared_logits == 1 { 8 * k32 } else { 0 },
            ..cfg.softmax
        };
        let aux32 = has_aux as u32;
        let table_of = |c: usize| -> Result<Vec<StepRec>, Error> {
            let start = (c * c_len).min(len);
            let mut t = records(plan, start..(start + c_len).min(len), mix.tau, d, max_norm)?;
            t.resize(c_len + 1, StepRec::default());
            Ok(t)
        };
        let any_snr = (0..chunks).try_fold(false, |acc, c| {
            Ok::<bool, Error>(acc || table_of(c)?.iter().any(|r| r.kind == 1 && r.active == 1))
        })?;
        let mut table_d = s.clone_htod(&table_of(0)?).map_err(up())?;
        let null = 0u64;
        let err_scale = if g64 { F64_OVER_F32_EPS } else { 1.0 };
        let mut sparse_steps = 0u64;
        let mut graph_note = None;
        // A captured chunk cannot choose per step: it launches snr_norms at every step (the
        // kernel returns at once where the step is no snr update).
        let snr_every_step = use_graph && any_snr;

        // Everything one step launches; `check` reads the sparse-row count (eager only).
        let step_body = |i: usize,
                         kind: u32,
                         bufs: &mut StepBufs<'_>,
                         sparse_steps: &mut u64|
         -> Result<(), Error> {
            // SAFETY (all GEMMs): column-major views of the row-major buffers — means K × D, y
            // and S' B × D, G B × K — with the extents and leading dimensions of gemm_configs.
            if g64 {
                unsafe { self.blas.gemm(gemm1_64, &means64_d, &*bufs.y64, &mut *bufs.wide) }
                    .map_err(Error::cublas("DGEMM G = Y Mᵀ"))?;
            } else {
                unsafe { self.blas.gemm(gemm1, &means_d, &*bufs.y, &mut *bufs.g) }
                    .map_err(Error::cublas("SGEMM G = Y Mᵀ"))?;
            }
            if use_sparse {
                s.memset_zeros(&mut *bufs.dense).map_err(Error::driver("clearing a counter"))?;
            }
            let rec = bufs.table.slice(i..i + 1);
            // G (read), R' (written) and the f64 scratch alias by design (the kernel reads each
            // g_k before it writes that slot), so they go in as raw device pointers.
            let (g_ptr, wide_ptr) = {
                use cudarc::driver::DevicePtr;
                (bufs.g.device_ptr(s).0, bufs.wide.device_ptr(s).0)
            };
            let (g32_arg, g64_arg) = if g64 { (null, wide_ptr) } else { (g_ptr, null) };
            let mut launch = s.launch_builder(&self.kernels.mixture_softmax);
            launch.arg(&g32_arg).arg(&g64_arg).arg(&g_ptr).arg(&wide_ptr);
            launch
                .arg(&*bufs.y)
                .arg(&means_d)
                .arg(&lnw_d)
                .arg(&norms2_d)
                .arg(&rec)
                .arg(&b32)
                .arg(&k32)
                .arg(&d32)
                .arg(&err_scale)
                .arg(&mut *bufs.z)
                .arg(&mut *bufs.refined)
                .arg(&*bufs.status);
            if use_sparse {
                launch.arg(&mut *bufs.idx);
            } else {
                launch.arg(&null);
            }
            launch.arg(&mut *bufs.nnz).arg(&mut *bufs.dense).arg(&shared_logits);
            // SAFETY: arguments in mixture_softmax's order and types (a null pointer for the G
            // it does not read and for `sparse` when off); one block per row of the B × K and
            // B × D buffers.
            unsafe { launch.launch(softmax_cfg) }
                .map_err(Error::driver("launching mixture_softmax"))?;
            let all_sparse = use_sparse
                && s.clone_dtoh(&*bufs.dense)
                    .map_err(Error::driver("reading the dense-row count"))?
                    .first()
                    == Some(&0);
            if all_sparse {
                *sparse_steps += 1;
                let mut launch = s.launch_builder(&self.kernels.sparse_rm);
                launch
                    .arg(&*bufs.g)
                    .arg(&*bufs.idx)
                    .arg(&*bufs.nnz)
                    .arg(&means_d)
                    .arg(&mut *bufs.sp)
                    .arg(&b32)
                    .arg(&k32)
                    .arg(&d32)
                    .arg(&*bufs.status)
                    .arg(&rec);
                // SAFETY: arguments in sparse_rm's order and types; one block per row.
                unsafe { launch.launch(cfg.softmax) }
                    .map_err(Error::driver("launching sparse_rm"))?;
            } else {
                unsafe { self.blas.gemm(gemm2, &means_d, &*bufs.g, &mut *bufs.sp) }
                    .map_err(Error::cublas("SGEMM S = R M"))?;
            }
            if kind == 1 || snr_every_step {
                let upd = i as i32;
                let mut launch = s.launch_builder(&self.kernels.snr_norms);
                launch
                    .arg(&*bufs.table)
                    .arg(&upd)
                    .arg(&*bufs.y)
                    .arg(&*bufs.sp)
                    .arg(&*bufs.z)
                    .arg(&mut *bufs.alpha)
                    .arg(&b32)
                    .arg(&d32)
                    .arg(&seed)
                    .arg(&first);
                // SAFETY: arguments in snr_norms's order and types; one thread per row.
                unsafe { launch.launch(cfg.snr) }.map_err(Error::driver("launching snr_norms"))?;
            }
            self.launch_step(bufs, i as i32, i as i32 + 1, aux32, [b32, d32], seed, first, cfg.step)
        };
        let mut bufs = StepBufs {
            table: &mut table_d,
            x: &mut x_d,
            a: &mut a_d,
            y: &mut y_d,
            y64: &mut y64_d,
            sp: &mut sp_d,
            g: &mut g_d,
            wide: &mut wide_d,
            z: &mut z_d,
            alpha: &mut alpha_d,
            refined: &mut refined_d,
            idx: &mut idx_d,
            nnz: &mut nnz_d,
            dense: &mut dense_d,
            status: &mut status_d,
        };
        self.synchronize()?;
        let t1 = std::time::Instant::now();
        let mut graph: Option<cudarc::driver::CudaGraph> = None;
        let mut done = 0usize;
        for c in 0..chunks {
            let table = table_of(c)?;
            if c > 0 {
                s.memcpy_htod(&table, &mut *bufs.table).map_err(up())?;
            } else if len > 0 {
                // The prologue: step 0's noise and score point.
                self.launch_step(&mut bufs, -1, 0, aux32, [b32, d32], seed, first, cfg.step)?;
            }
            let steps = c_len.min(len - done);
            if use_graph && graph.is_none() {
                // cuBLAS picks and sets up its kernels outside the capture (outputs are
                // recomputed by the step itself).
                unsafe { self.blas.gemm(gemm1, &means_d, &*bufs.y, &mut *bufs.g) }
                    .map_err(Error::cublas("SGEMM G = Y Mᵀ"))?;
                if g64 {
                    unsafe { self.blas.gemm(gemm1_64, &means64_d, &*bufs.y64, &mut *bufs.wide) }
                        .map_err(Error::cublas("DGEMM G = Y Mᵀ"))?;
                }
                unsafe { self.blas.gemm(gemm2, &means_d, &*bufs.g, &mut *bufs.sp) }
                    .map_err(Error::cublas("SGEMM S = R M"))?;
                match self.capture(c_len, &mut |i| {
                    step_body(i, table[i].kind, &mut bufs, &mut sparse_steps)
                }) {
                    Ok(g) => graph = Some(g),
                    Err(e) => {
                        graph_note = Some(e.to_string());
                        use_graph = false;
                    }
                }
            }
            match &graph {
                Some(g) if use_graph => {
                    g.launch().map_err(Error::driver("launching a captured chunk"))?
                }
                _ => {
                    for (i, r) in table.iter().enumerate().take(steps) {
                        step_body(i, r.kind, &mut bufs, &mut sparse_steps)?;
                    }
                }
            }
            self.status(plan, bufs.status)?;
            progress(steps as u64 * b as u64);
            done += steps;
        }
        let t2 = std::time::Instant::now();
        s.memcpy_dtoh(&*bufs.x, x).map_err(Error::driver("copying the samples back"))?;
        stats.seconds_setup += (t1 - t0).as_secs_f64();
        stats.seconds_steps += (t2 - t1).as_secs_f64();
        stats.seconds_copy_back += t2.elapsed().as_secs_f64();
        let refined =
            s.clone_dtoh(&*bufs.refined).map_err(Error::driver("reading the refinement count"))?;
        Ok(GemmStats {
            refined: refined.first().copied().unwrap_or(0) as u64,
            sparse_steps,
            graphs: use_graph,
            graph_note,
        })
    }

    /// Captures `steps` calls of `body` (the steps of one chunk) as a CUDA graph. The capture is
    /// always ended, also when a call fails inside it.
    fn capture(
        &self,
        steps: usize,
        body: &mut dyn FnMut(usize) -> Result<(), Error>,
    ) -> Result<cudarc::driver::CudaGraph, Error> {
        use cudarc::driver::sys::{CUgraphInstantiate_flags, CUstreamCaptureMode};
        let s = &self.stream;
        s.begin_capture(CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL)
            .map_err(Error::driver("beginning a stream capture"))?;
        let mut result = Ok(());
        for i in 0..steps {
            result = body(i);
            if result.is_err() {
                break;
            }
        }
        let graph = s.end_capture(CUgraphInstantiate_flags(0));
        result?;
        match graph.map_err(Error::driver("ending a stream capture"))? {
            Some(g) => {
                g.upload().map_err(Error::driver("uploading a captured chunk"))?;
                Ok(g)
            }
            None => Err(Error::Unsupported("the stream capture recorded no graph")),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn launch_step(
        &self,
        bufs: &mut StepBufs<'_>,
        upd: i32,
        nxt: i32,
        has_aux: u32,
        [b32, d32]: [u32; 2],
        seed: u64,
        first: u64,
        cfg: LaunchConfig,
    ) -> Result<(), Error> {
        let null = 0u64;
        let mut launch = self.stream.launch_builder(&self.kernels.plan_step);
        launch
            .arg(&*bufs.table)
            .arg(&upd)
            .arg(&nxt)
            .arg(&mut *bufs.x)
            .arg(&mut *bufs.a)
            .arg(&has_aux)
            .arg(&mut *bufs.y);
        if self.options.f64_logits {
            launch.arg(&mut *bufs.y64);
        } else {
            launch.arg(&null);
        }
        launch
            .arg(&*bufs.sp)
            .arg(&*bufs.z)
            .arg(&*bufs.alpha)
            .arg(&b32)
            .arg(&d32)
            .arg(&seed)
            .arg(&first)
            .arg(&mut *bufs.status);
        // SAFETY: arguments in plan_step's order and types (y64 null unless the f64 logits are
        // on, when it holds B × D); the grid covers B × ⌈D/4⌉ threads over B × D buffers (a: 1
        // element when has_aux = 0, then never read).
        unsafe { launch.launch(cfg) }.map_err(Error::driver("launching plan_step"))?;
        Ok(())
    }

    /// The device's keyed noise for rows `first..first + rows` of `stream`, `dim` per row: the
    /// raw Philox words and the normals (for the parity checks against the core).
    pub fn noise_rows(
        &self,
        seed: u64,
        first: u64,
        stream: Stream,
        dim: usize,
        rows: usize,
    ) -> Result<(Vec<u32>, Vec<f32>), Error> {
        let (index, tag) = stream.index_and_tag();
        let (d32, r32) = (u32_of("D", dim)?, u32_of("rows", rows)?);
        let n = u32_of("rows × D", rows * dim)?;
        let alloc = || Error::driver("allocating device memory");
        let mut words = self.stream.alloc_zeros::<u32>(n as usize).map_err(alloc())?;
        let mut normals = self.stream.alloc_zeros::<f32>(n as usize).map_err(alloc())?;
        let threads = r32 * d32.div_ceil(4);
        let cfg = LaunchConfig {
            grid_dim: (threads.div_ceil(256).max(1), 1, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut launch = self.stream.launch_builder(&self.kernels.noise_rows);
        launch
            .arg(&seed)
            .arg(&first)
            .arg(&index)
            .arg(&tag)
            .arg(&d32)
            .arg(&r32)
            .arg(&mut words)
            .arg(&mut normals);
        // SAFETY: arguments in noise_rows's order and types; both buffers hold rows × dim.
        unsafe { launch.launch(cfg) }.map_err(Error::driver("launching noise_rows"))?;
        let w = self.stream.clone_dtoh(&words).map_err(Error::driver("copying back"))?;
        let z = self.stream.clone_dtoh(&normals).map_err(Error::driver("copying back"))?;
        Ok((w, z))
    }
}

impl Device {
    /// Seconds per step of a CAS plan at σ ≈ 0.5 (τ = 0.1) for `b` samples of `mix`: the median
    /// over `repeats` of (time of 3·`steps` steps − time of `steps` steps)/(2·`steps`), so the
    /// uploads, the initial copy and the final copy cancel. Host clock after a synchronising
    /// copy-back; the first run (kernel compilation, handles) is not timed.
    pub fn time_step(
        &self,
        mix: &Mixture<'_>,
        b: usize,
        steps: usize,
        repeats: usize,
    ) -> Result<f64, Error> {
        let steps = steps.max(1);
        let mut x0 = vec![0.0f32; b * mix.dim];
        anneal_core::plan::init_normal(&mut Keyed::new(7), 0, mix.dim, 0.5, &mut x0)?;
        let plan_of =
            |s: usize| -> Result<anneal_core::samplers::cas::Cas<anneal_core::Geometric>, Error> {
                let g =
                    anneal_core::Geometric::new(0.5, 0.5 * 0.9f64.powf(s as f64 / 100.0), s + 1)?;
                Ok(anneal_core::samplers::cas::Cas::new(g, anneal_core::EtaRule::eps_c(2.0)?)?)
            };
        let (short, long) = (plan_of(steps)?, plan_of(3 * steps)?);
        let run = |plan: &dyn Plan| -> Result<f64, Error> {
            let mut x = x0.clone();
            let t = std::time::Instant::now();
            self.run_plan(plan, mix, 0, 0, &mut x, &mut |_| {})?;
            Ok(t.elapsed().as_secs_f64())
        };
        run(&short)?;
        let mut per_step = Vec::with_capacity(repeats.max(1));
        for _ in 0..repeats.max(1) {
            let t1 = run(&short)?;
            let t3 = run(&long)?;
            per_step.push((t3 - t1) / (2 * steps) as f64);
        }
        per_step.sort_by(f64::total_cmp);
        Ok(per_step[per_step.len() / 2])
    }

    /// Seconds for the score's two SGEMMs alone (`G = Y Mᵀ`, `S = R M`) at B × K × D: the median
    /// over `repeats` batches of 20 pairs, synchronised.
    pub fn time_sgemm_pair(
        &self,
        b: usize,
        k: usize,
        d: usize,
        repeats: usize,
    ) -> Result<f64, Error> {
        let (b32, k32, d32) = (u32_of("B", b)?, u32_of("K", k)?, u32_of("D", d)?);
        u32_of("B × K", b * k)?;
        let fill = |n: usize, seed: u64| {
            let mut v = vec![0.0f32; n];
            Keyed::new(seed).normals(0, Stream::Init, &mut v);
            v
        };
        let s = &self.stream;
        let up = || Error::driver("copying to the device");
        let means = s.clone_htod(&fill(k * d, 1)).map_err(up())?;
        let y = s.clone_htod(&fill(b * d, 2)).map_err(up())?;
        let mut g = s.clone_htod(&fill(b * k, 3)).map_err(up())?;
        let mut out = s.clone_htod(&fill(b * d, 4)).map_err(up())?;
        let (g1, g2) = gemm_configs(b32, k32, d32);
        let mut pair = || -> Result<(), Error> {
            // SAFETY: the buffers have the extents of the configurations (as in run_gemm).
            unsafe { self.blas.gemm(g1, &means, &y, &mut g) }.map_err(Error::cublas("SGEMM"))?;
            unsafe { self.blas.gemm(g2, &means, &g, &mut out) }.map_err(Error::cublas("SGEMM"))?;
            Ok(())
        };
        pair()?;
        self.synchronize()?;
        let mut times = Vec::new();
        for _ in 0..repeats.max(1) {
            let t = std::time::Instant::now();
            for _ in 0..20 {
                pair()?;
            }
            self.synchronize()?;
            times.push(t.elapsed().as_secs_f64() / 20.0);
        }
        times.sort_by(f64::total_cmp);
        Ok(times[times.len() / 2])
    }
}
