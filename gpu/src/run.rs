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
use cudarc::driver::{CudaSlice, LaunchConfig, PushKernelArg};

use crate::table::status_error;
use crate::{Device, Error};

/// Steps per `direct_run` launch (and between status checks).
pub const DIRECT_CHUNK: usize = 256;
/// Steps of the GEMM path between status checks (and table uploads).
pub const GEMM_CHUNK: usize = 64;
/// Device memory for the B × K scratch (G in f32 and the logits in f64) of one row chunk.
pub(crate) const SCRATCH_BYTES: usize = 1 << 30;

/// A Gaussian mixture with one component standard deviation τ: the core's
/// [`anneal_core::score::MixtureData`], the description the host's CPU score takes too.
pub use anneal_core::score::MixtureData as Mixture;

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
    /// A score network's path ([`Device::run_plan_network`]).
    pub network: bool,
    /// Network path: wall-clock seconds inside the network's forward passes.
    pub seconds_network: f64,
    /// Network path: forward passes whose output went through the host
    /// ([`crate::DeviceNetwork::host_copies`]).
    pub network_host_copies: u64,
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
        if self.network {
            let outputs = match self.network_host_copies {
                0 => "states and network outputs on the device".to_string(),
                n => format!("states on the device, {n} network outputs copied through the host"),
            };
            return format!(
                "network path: forward passes {:.0}% of the steps' time, {outputs}",
                100.0 * self.seconds_network / self.seconds_steps.max(1e-12)
            );
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
pub(crate) struct RunCtx<'a> {
    pub(crate) seed: u64,
    pub(crate) first: u64,
    pub(crate) start: Start<'a>,
}

/// Checks the rows `x` (B × `d`) and the start: finite given states, or a finite centre of D
/// values and a σ finite in f32 and > 0.
pub(crate) fn check_start(start: Start<'_>, d: usize, x: &[f32]) -> Result<(), Error> {
    if !x.len().is_multiple_of(d) {
        return Err(anneal_core::Error::DimensionMismatch { expected: d, found: x.len() }.into());
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
    Ok(())
}

pub(crate) fn u32_of(what: &'static str, v: usize) -> Result<u32, Error> {
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
        check_start(start, d, x)?;
        u32_of("D", d)?;
        u32_of("K", k)?;
        let rows = x.len() / d;
        let rows_per_chunk =
            if mix.is_small() { rows.max(1) } else { (SCRATCH_BYTES / (12 * k)).max(1) };
        let mut stats = RunStats { direct: mix.is_small(), ..Default::default() };
        let mut row = 0;
        while row < rows {
            let count = rows_per_chunk.min(rows - row);
            let chunk = &mut x[row * d..(row + count) * d];
            let first = first_sample + row as u64;
            let ctx = RunCtx { seed, first, start };
            if mix.is_small() {
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
    pub(crate) fn start_states(
        &self,
        ctx: RunCtx<'_>,
        d: usize,
        x: &[f32],
    ) -> Result<CudaSlice<f32>, Error> {
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

    pub(crate) fn aux_init<P: Plan + ?Sized>(
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

    pub(crate) fn status<P: Plan + ?Sized>(
        &self,
        plan: &P,
        status: &CudaSlice<u32>,
    ) -> Result<(), Error> {
        let s = self.stream.clone_dtoh(status).map_err(Error::driver("reading the status"))?;
        match s.first().and_then(|&w| status_error(plan, w)) {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
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
