//! The GEMM path: per step `G = Y Mᵀ` (DGEMM or SGEMM, [`crate::Options`]), the row softmax,
//! `S' = R' M` (SGEMM, or the sparse gather), `snr_norms` for snr updates, the fused `plan_step`;
//! chunks of steps, each optionally captured once as a CUDA graph and replayed.
//!
//! (Long for one reason: every launch lists its kernel's arguments in order, and one step
//! launches up to five kernels; splitting them would separate each list from its buffers.)

use anneal_core::Plan;
use cudarc::cublas::sys::cublasOperation_t::{CUBLAS_OP_N, CUBLAS_OP_T};
use cudarc::cublas::{Gemm, GemmConfig};
use cudarc::driver::{CudaSlice, LaunchConfig, PushKernelArg};

use crate::options::{
    F64_OVER_F32_EPS, GRAPH_MIN_CHUNKS, SHARED_LOGITS_MAX, SMALL_WORK, SPARSE_MAX, Use,
};
use crate::run::{GEMM_CHUNK, Mixture, RunCtx, RunStats, u32_of};
use crate::table::{SCORE_MIXTURE, STATUS_OK, StepRec, records};
use crate::{Device, Error};

/// What one row chunk of the GEMM path did.
pub(crate) struct GemmStats {
    pub(crate) refined: u64,
    pub(crate) sparse_steps: u64,
    pub(crate) graphs: bool,
    pub(crate) graph_note: Option<String>,
}

/// The launch configurations of the GEMM path.
pub(crate) struct Cfgs {
    step: LaunchConfig,
    softmax: LaunchConfig,
    snr: LaunchConfig,
}

/// The device buffers of the GEMM path.
pub(crate) struct StepBufs<'a> {
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
pub(crate) fn wide_config(c: GemmConfig<f32>) -> GemmConfig<f64> {
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
pub(crate) fn gemm_configs(b: u32, k: u32, d: u32) -> (GemmConfig<f32>, GemmConfig<f32>) {
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

impl Device {
    pub(crate) fn run_gemm<P: Plan + ?Sized>(
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
                    .arg(&SCORE_MIXTURE)
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
    pub(crate) fn capture(
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
    pub(crate) fn launch_step(
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
            .arg(&SCORE_MIXTURE)
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
}
