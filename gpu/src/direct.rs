//! The direct path (small mixtures, toy2d): `direct_run`, one thread per sample through a chunk
//! of steps with the CPU's exact f64 logits — one launch per chunk, no GEMM.

use anneal_core::Plan;
use cudarc::driver::{LaunchConfig, PushKernelArg};

use crate::run::{DIRECT_CHUNK, Mixture, RunCtx, RunStats, u32_of};
use crate::table::{STATUS_OK, records};
use crate::{Device, Error};

impl Device {
    pub(crate) fn run_direct<P: Plan + ?Sized>(
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
}
