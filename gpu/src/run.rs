//! The executor: a whole plan on the device, data resident from the first step to the last.
//!
//! Two paths, chosen by the mixture's size:
//! - **direct** (K·D ≤ 64, D ≤ 16 — toy2d): the `direct_run` kernel runs each sample through a
//!   chunk of steps in one thread (a persistent loop: one launch per [`DIRECT_CHUNK`] steps, no
//!   GEMM), with the CPU's exact f64 logits;
//! - **GEMM**: per step, cuBLAS SGEMM `G = Y Mᵀ`, `mixture_softmax` (row logits, exact refinement
//!   of near-max logits where the f32 error bound exceeds 1e-4, row softmax), SGEMM `S' = R' M`,
//!   `snr_norms` for snr updates only, and the fused `plan_step` (score finish, update, checks,
//!   next noise and score point).
//!
//! Noise is the core's keyed stream computed on the device; the auxiliary state's initial
//! normals are drawn on the host by the core (once, B × D). Rows are independent: a sample does
//! not depend on the others, but the GEMM's summation order (cuBLAS's choice of kernel) may
//! depend on the batch's shape, so device samples equal the CPU's within float rounding, not bit
//! for bit.

use anneal_core::Plan;
use anneal_core::noise::{Keyed, Noise, Stream};
use anneal_core::plan::AuxInit;
use cudarc::cublas::sys::cublasOperation_t::{CUBLAS_OP_N, CUBLAS_OP_T};
use cudarc::cublas::{Gemm, GemmConfig};
use cudarc::driver::{CudaSlice, LaunchConfig, PushKernelArg};

use crate::table::{STATUS_OK, records, status_error};
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

    /// Whether the direct (GEMM-free) path serves this mixture.
    pub fn direct(&self) -> bool {
        let k = self.components();
        self.dim <= 16 && k <= 64 && k * self.dim <= 64
    }
}

/// Which path ran and what it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RunStats {
    /// True for the direct path.
    pub direct: bool,
    /// Row-steps whose logits were refined in f64 (GEMM path).
    pub refined_rows: u64,
    /// Row chunks the batch was split into (device memory).
    pub chunks: usize,
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
        if let Some(index) = x.iter().position(|v| !v.is_finite()) {
            return Err(anneal_core::Error::NonFiniteInput { index }.into());
        }
        u32_of("D", d)?;
        u32_of("K", k)?;
        let rows = x.len() / d;
        let rows_per_chunk =
            if mix.direct() { rows.max(1) } else { (SCRATCH_BYTES / (12 * k)).max(1) };
        let mut stats = RunStats { direct: mix.direct(), ..Default::default() };
        let mut start = 0;
        while start < rows {
            let count = rows_per_chunk.min(rows - start);
            let chunk = &mut x[start * d..(start + count) * d];
            let first = first_sample + start as u64;
            let refined = if mix.direct() {
                self.run_direct(plan, mix, seed, first, chunk, progress)?
            } else {
                self.run_gemm(plan, mix, seed, first, chunk, progress)?
            };
            stats.refined_rows += refined;
            stats.chunks += 1;
            start += count;
        }
        Ok(stats)
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
        seed: u64,
        first: u64,
        x: &mut [f32],
        progress: &mut dyn FnMut(u64),
    ) -> Result<u64, Error> {
        let (d, k) = (mix.dim, mix.components());
        let b = x.len() / d;
        let b32 = u32_of("rows", b)?;
        let s = &self.stream;
        let up = Error::driver("copying to the device");
        let mut x_d = s.clone_htod(&*x).map_err(up)?;
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
        s.memcpy_dtoh(&x_d, x).map_err(Error::driver("copying the samples back"))?;
        Ok(0)
    }

    fn run_gemm<P: Plan + ?Sized>(
        &self,
        plan: &P,
        mix: &Mixture<'_>,
        seed: u64,
        first: u64,
        x: &mut [f32],
        progress: &mut dyn FnMut(u64),
    ) -> Result<u64, Error> {
        let (d, k) = (mix.dim, mix.components());
        let b = x.len() / d;
        let (b32, d32, k32) = (u32_of("rows", b)?, d as u32, k as u32);
        u32_of("rows × K", b * k)?;
        let s = &self.stream;
        let up = || Error::driver("copying to the device");
        let alloc = || Error::driver("allocating device memory");
        let mut x_d = s.clone_htod(&*x).map_err(up())?;
        let (has_aux, aux) = self.aux_init(plan, seed, first, d, x.len());
        let mut a_d = s.clone_htod(&aux).map_err(up())?;
        let means_d = s.clone_htod(mix.means).map_err(up())?;
        let norms2: Vec<f64> = mix
            .means
            .chunks_exact(d)
            .map(|m| m.iter().map(|&v| v as f64 * v as f64).sum())
            .collect();
        let max_norm = norms2.iter().cloned().fold(0.0, f64::max).sqrt();
        let ln_w: Vec<f64> = mix.weights.iter().map(|w| w.ln()).collect();
        let lnw_d = s.clone_htod(&ln_w).map_err(up())?;
        let norms2_d = s.clone_htod(&norms2).map_err(up())?;
        let mut y_d = s.alloc_zeros::<f32>(b * d).map_err(alloc())?;
        let mut sp_d = s.alloc_zeros::<f32>(b * d).map_err(alloc())?;
        let mut g_d = s.alloc_zeros::<f32>(b * k).map_err(alloc())?;
        let mut logits_d = s.alloc_zeros::<f64>(b * k).map_err(alloc())?;
        let mut z_d = s.alloc_zeros::<f64>(b).map_err(alloc())?;
        let mut alpha_d = s.alloc_zeros::<f64>(b).map_err(alloc())?;
        let mut refined_d = s.alloc_zeros::<u32>(1).map_err(alloc())?;
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
        let step_cfg = LaunchConfig {
            grid_dim: ((b32 * per_row).div_ceil(256), 1, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        let softmax_cfg =
            LaunchConfig { grid_dim: (b32, 1, 1), block_dim: (256, 1, 1), shared_mem_bytes: 0 };
        let snr_cfg = LaunchConfig {
            grid_dim: (b32.div_ceil(128), 1, 1),
            block_dim: (128, 1, 1),
            shared_mem_bytes: 0,
        };
        let (gemm1, gemm2) = gemm_configs(b32, k32, d32);
        let aux32 = has_aux as u32;
        let len = plan.len();
        let mut table = records(plan, 0..GEMM_CHUNK.min(len), mix.tau, d, max_norm)?;
        let mut table_d = s.clone_htod(&table).map_err(up())?;
        let mut c0 = 0usize;
        // The prologue: step 0's noise and score point.
        if len > 0 {
            self.launch_step(
                &table_d,
                -1,
                0,
                &mut x_d,
                &mut a_d,
                aux32,
                &mut y_d,
                &sp_d,
                &z_d,
                &alpha_d,
                [b32, d32],
                seed,
                first,
                &mut status_d,
                step_cfg,
            )?;
        }
        for step in 0..len {
            if step == c0 + GEMM_CHUNK {
                self.status(plan, &status_d)?;
                progress(GEMM_CHUNK as u64 * b as u64);
                c0 = step;
                table = records(plan, c0..(c0 + GEMM_CHUNK).min(len), mix.tau, d, max_norm)?;
                table_d = s.clone_htod(&table).map_err(up())?;
            }
            let i = step - c0;
            // SAFETY (both GEMMs): column-major views of the row-major buffers — means K × D,
            // y and S' B × D, G B × K — with the extents and leading dimensions above.
            unsafe { self.blas.gemm(gemm1, &means_d, &y_d, &mut g_d) }
                .map_err(Error::cublas("SGEMM G = Y Mᵀ"))?;
            let rec = table_d.slice(i..i + 1);
            let mut launch = s.launch_builder(&self.kernels.mixture_softmax);
            launch
                .arg(&mut g_d)
                .arg(&mut logits_d)
                .arg(&y_d)
                .arg(&means_d)
                .arg(&lnw_d)
                .arg(&norms2_d)
                .arg(&rec)
                .arg(&b32)
                .arg(&k32)
                .arg(&d32)
                .arg(&mut z_d)
                .arg(&mut refined_d)
                .arg(&status_d);
            // SAFETY: arguments in mixture_softmax's order and types; one block per row of the
            // B × K and B × D buffers.
            unsafe { launch.launch(softmax_cfg) }
                .map_err(Error::driver("launching mixture_softmax"))?;
            unsafe { self.blas.gemm(gemm2, &means_d, &g_d, &mut sp_d) }
                .map_err(Error::cublas("SGEMM S = R M"))?;
            if table.get(i).is_some_and(|r| r.kind == 1) {
                let upd = i as i32;
                let mut launch = s.launch_builder(&self.kernels.snr_norms);
                launch
                    .arg(&table_d)
                    .arg(&upd)
                    .arg(&y_d)
                    .arg(&sp_d)
                    .arg(&z_d)
                    .arg(&mut alpha_d)
                    .arg(&b32)
                    .arg(&d32)
                    .arg(&seed)
                    .arg(&first);
                // SAFETY: arguments in snr_norms's order and types; one thread per row.
                unsafe { launch.launch(snr_cfg) }.map_err(Error::driver("launching snr_norms"))?;
            }
            let nxt = if step + 1 < len { i as i32 + 1 } else { -1 };
            self.launch_step(
                &table_d,
                i as i32,
                nxt,
                &mut x_d,
                &mut a_d,
                aux32,
                &mut y_d,
                &sp_d,
                &z_d,
                &alpha_d,
                [b32, d32],
                seed,
                first,
                &mut status_d,
                step_cfg,
            )?;
        }
        self.status(plan, &status_d)?;
        progress((len - c0.min(len)) as u64 * b as u64);
        s.memcpy_dtoh(&x_d, x).map_err(Error::driver("copying the samples back"))?;
        let refined =
            s.clone_dtoh(&refined_d).map_err(Error::driver("reading the refinement count"))?;
        Ok(refined.first().copied().unwrap_or(0) as u64)
    }

    #[allow(clippy::too_many_arguments)]
    fn launch_step(
        &self,
        table_d: &CudaSlice<crate::table::StepRec>,
        upd: i32,
        nxt: i32,
        x_d: &mut CudaSlice<f32>,
        a_d: &mut CudaSlice<f32>,
        has_aux: u32,
        y_d: &mut CudaSlice<f32>,
        sp_d: &CudaSlice<f32>,
        z_d: &CudaSlice<f64>,
        alpha_d: &CudaSlice<f64>,
        [b32, d32]: [u32; 2],
        seed: u64,
        first: u64,
        status_d: &mut CudaSlice<u32>,
        cfg: LaunchConfig,
    ) -> Result<(), Error> {
        let mut launch = self.stream.launch_builder(&self.kernels.plan_step);
        launch
            .arg(table_d)
            .arg(&upd)
            .arg(&nxt)
            .arg(x_d)
            .arg(a_d)
            .arg(&has_aux)
            .arg(y_d)
            .arg(sp_d)
            .arg(z_d)
            .arg(alpha_d)
            .arg(&b32)
            .arg(&d32)
            .arg(&seed)
            .arg(&first)
            .arg(status_d);
        // SAFETY: arguments in plan_step's order and types; the grid covers B × ⌈D/4⌉ threads
        // over B × D buffers (a: 1 element when has_aux = 0, then never read).
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
        let (index, tag) = match stream {
            Stream::Step(k) => (k, 0u32),
            Stream::Init => (0, 1),
            Stream::InpaintLevel(i) => (i, 2),
            Stream::AuxInit => (0, 3),
        };
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
        let plan_of = |s: usize| -> Result<
            anneal_core::samplers::cas::Cas<anneal_core::Geometric>,
            Error,
        > {
            let g = anneal_core::Geometric::new(0.5, 0.5 * 0.9f64.powf(s as f64 / 100.0), s + 1)?;
            Ok(anneal_core::samplers::cas::Cas::new(g, anneal_core::EtaRule::eps_c(2.0)?, false)?)
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
