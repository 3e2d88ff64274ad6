//! Timings for `anneal bench --device cuda`: a step by difference of two runs, and the score's
//! two SGEMMs alone.

use anneal_core::Plan;
use anneal_core::noise::{Keyed, Noise, Stream};

use cudarc::cublas::Gemm;

use crate::gemm::gemm_configs;
use crate::run::{Mixture, u32_of};
use crate::{Device, Error};

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
