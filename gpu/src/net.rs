//! A score network on the device: the plan's steps around a network's forward pass, both on one
//! stream over device memory. Per step the network reads the score points where `plan_step`
//! wrote them (its input buffer) and `plan_step` reads the network's output where the network
//! left it, turns it into the score by the network's output convention ([`NetOutput`]), updates
//! the states and writes the next score points: no copy through the host, no kernel per
//! sampler. The network's runtime lives outside this crate ([`DeviceNetwork`]; the `anneal` CLI
//! runs ONNX models through tract's CUDA runtime).

use anneal_core::Plan;
use cudarc::driver::{CudaSlice, LaunchConfig, PushKernelArg};

use crate::run::{GEMM_CHUNK, RunCtx, RunStats, Start, check_start, u32_of};
use crate::table::{STATUS_OK, records};
use crate::{Device, Error};

/// What a network returns, and so how the kernels turn its output o at the score point y into
/// the score (in f64, rounded once, as the CPU does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetOutput {
    /// s = o.
    Score,
    /// s = o / σ.
    SigmaScore,
    /// s = −o / σ.
    Eps,
    /// s = (o − y) / σ².
    Denoiser,
}

impl NetOutput {
    /// The kernels' `SCORE_NET*` mode.
    pub(crate) fn mode(self) -> u32 {
        match self {
            NetOutput::Score => 1,
            NetOutput::SigmaScore => 2,
            NetOutput::Eps => 3,
            NetOutput::Denoiser => 4,
        }
    }
}

/// A score network's forward pass on a [`Device`]'s stream (see [`Device::on_stream`]).
pub trait DeviceNetwork {
    /// What the network returns.
    fn output(&self) -> NetOutput;

    /// The device address of the network's input for `rows` samples: rows × D f32, row-major.
    /// The plan's kernels write the score points there before each [`DeviceNetwork::forward`].
    /// It stays valid until this is called again.
    fn input(&mut self, rows: usize) -> Result<u64, String>;

    /// Runs the network on its input at noise level σ. Work queued on the device's stream
    /// before the call is done before the network reads its input, and the work of the
    /// forward pass is done, or queued on the device's stream, when it returns. Returns the
    /// device address of the output (rows × D f32, row-major), valid until the next call.
    fn forward(&mut self, sigma: f64) -> Result<u64, String>;

    /// Forward passes so far whose output the runtime returned through the host (put back on
    /// the device by the implementation): 0 when every output stayed in device memory.
    fn host_copies(&self) -> u64 {
        0
    }
}

impl Device {
    /// Runs every step of `plan` with the score of `net` on the rows of `x` (B × D, `dim` = D:
    /// the initial states in, the samples out; all rows in one batch), samples numbered from
    /// `first_sample`, noise keyed by `seed`, the default start drawn on the device as in
    /// [`Device::run_plan_from`]. A non-finite network output, state or auxiliary state stops
    /// the run with the core's [`anneal_core::Error::NonFinite`] naming the level and step; a
    /// failed forward pass with [`Error::Network`].
    #[allow(clippy::too_many_arguments)]
    pub fn run_plan_network<P: Plan + ?Sized>(
        &self,
        plan: &P,
        net: &mut dyn DeviceNetwork,
        dim: usize,
        seed: u64,
        first_sample: u64,
        start: Start<'_>,
        x: &mut [f32],
        progress: &mut dyn FnMut(u64),
    ) -> Result<RunStats, Error> {
        let t0 = std::time::Instant::now();
        let d = dim;
        if d == 0 {
            return Err(
                anneal_core::Error::DimensionMismatch { expected: 1, found: x.len() }.into()
            );
        }
        check_start(start, d, x)?;
        let rows = x.len() / d;
        let (b32, d32) = (u32_of("rows", rows)?, u32_of("D", d)?);
        u32_of("rows × D", rows * d)?;
        let mode = net.output().mode();
        let s = &self.stream;
        let up = || Error::driver("copying to the device");
        let alloc = || Error::driver("allocating device memory");
        let ctx = RunCtx { seed, first: first_sample, start };
        let mut x_d = self.start_states(ctx, d, x)?;
        let (has_aux, aux) = self.aux_init(plan, seed, first_sample, d, x.len());
        let mut a_d = s.clone_htod(&aux).map_err(up())?;
        let len = plan.len();
        // Every step's record at once (a network's steps are few and each is long). τ = 0:
        // the network is the score of the noised data itself; v and the logit bound go unused.
        let table = records(plan, 0..len, 0.0, d, 0.0)?;
        let table_d = s.clone_htod(&table).map_err(up())?;
        let mut alpha_d = s.alloc_zeros::<f64>(rows).map_err(alloc())?;
        let mut status_d = s.clone_htod(&[STATUS_OK]).map_err(up())?;
        let net_err = |k: usize, detail: String| Error::Network {
            level: plan.step(k).map_or(0, |st| st.level) + 1,
            step: k + 1,
            detail,
        };
        let y = net.input(rows).map_err(|e| net_err(0, e))?;
        let per_row = d32.div_ceil(4);
        let step_cfg = LaunchConfig {
            grid_dim: ((b32 * per_row).div_ceil(256).max(1), 1, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        let snr_cfg = LaunchConfig {
            grid_dim: (b32.div_ceil(128).max(1), 1, 1),
            block_dim: (128, 1, 1),
            shared_mem_bytes: 0,
        };
        let (null, aux32) = (0u64, has_aux as u32);
        // plan_step: update by step `upd` from the network's output at `out` (none: -1), then
        // the noise and score point of step `nxt` into the network's input.
        let step = |upd: i32,
                    nxt: i32,
                    out: u64,
                    x_d: &mut CudaSlice<f32>,
                    a_d: &mut CudaSlice<f32>,
                    alpha_d: &CudaSlice<f64>,
                    status_d: &mut CudaSlice<u32>|
         -> Result<(), Error> {
            let mut launch = s.launch_builder(&self.kernels.plan_step);
            launch
                .arg(&table_d)
                .arg(&upd)
                .arg(&nxt)
                .arg(x_d)
                .arg(a_d)
                .arg(&aux32)
                .arg(&y)
                .arg(&null)
                .arg(&out)
                .arg(&null)
                .arg(alpha_d)
                .arg(&mode)
                .arg(&b32)
                .arg(&d32)
                .arg(&seed)
                .arg(&first_sample)
                .arg(status_d);
            // SAFETY: arguments in plan_step's order and types; y (the network's input) and
            // out (its output) hold rows × D f32 (the DeviceNetwork contract), a holds rows × D
            // or one element when has_aux = 0 (then never read); y64 and z are null (not read
            // for a network's mode); the grid covers rows × ⌈D/4⌉ threads.
            unsafe { launch.launch(step_cfg) }.map_err(Error::driver("launching plan_step"))?;
            Ok(())
        };
        self.synchronize()?;
        let t1 = std::time::Instant::now();
        let mut network_seconds = 0.0;
        if len > 0 {
            step(-1, 0, null, &mut x_d, &mut a_d, &alpha_d, &mut status_d)?;
        }
        for (k, rec) in table.iter().enumerate() {
            let t = std::time::Instant::now();
            let out = net.forward(rec.sigma).map_err(|e| net_err(k, e))?;
            network_seconds += t.elapsed().as_secs_f64();
            if rec.kind == 1 {
                let upd = k as i32;
                let mut launch = s.launch_builder(&self.kernels.snr_norms);
                launch
                    .arg(&table_d)
                    .arg(&upd)
                    .arg(&y)
                    .arg(&out)
                    .arg(&null)
                    .arg(&mut alpha_d)
                    .arg(&mode)
                    .arg(&b32)
                    .arg(&d32)
                    .arg(&seed)
                    .arg(&first_sample);
                // SAFETY: arguments in snr_norms's order and types; z is null (not read for a
                // network's mode); one thread per row of the rows × D buffers.
                unsafe { launch.launch(snr_cfg) }.map_err(Error::driver("launching snr_norms"))?;
            }
            let nxt = if k + 1 < len { k as i32 + 1 } else { -1 };
            step(k as i32, nxt, out, &mut x_d, &mut a_d, &alpha_d, &mut status_d)?;
            if (k + 1) % GEMM_CHUNK == 0 || k + 1 == len {
                // A non-finite value stops the run within a chunk of steps of where it arose.
                self.status(plan, &status_d)?;
                progress(((k % GEMM_CHUNK) + 1) as u64 * rows as u64);
            }
        }
        let t2 = std::time::Instant::now();
        s.memcpy_dtoh(&x_d, x).map_err(Error::driver("copying the samples back"))?;
        Ok(RunStats {
            chunks: 1,
            network: true,
            network_host_copies: net.host_copies(),
            seconds_network: network_seconds,
            seconds_setup: (t1 - t0).as_secs_f64(),
            seconds_steps: (t2 - t1).as_secs_f64(),
            seconds_copy_back: t2.elapsed().as_secs_f64(),
            ..Default::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernels' `SCORE_*` defines are the modes the host passes.
    #[test]
    fn modes_match_the_kernels() {
        let src = crate::kernels::module_source();
        let define = |name: &str| -> u32 {
            let line = src
                .lines()
                .find(|l| l.starts_with(&format!("#define {name} ")))
                .unwrap_or_else(|| panic!("no #define {name}"));
            line.split_whitespace().nth(2).unwrap().trim_end_matches('u').parse().unwrap()
        };
        assert_eq!(define("SCORE_MIXTURE"), crate::table::SCORE_MIXTURE);
        for (name, out) in [
            ("SCORE_NET", NetOutput::Score),
            ("SCORE_NET_SIGMA", NetOutput::SigmaScore),
            ("SCORE_NET_EPS", NetOutput::Eps),
            ("SCORE_NET_DENOISER", NetOutput::Denoiser),
        ] {
            assert_eq!(define(name), out.mode(), "{name}");
        }
    }
}
