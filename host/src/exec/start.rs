//! The initial states: N(data mean, σ_1² I), N(0, σ_1² I) (the VE prior), uniform on the data's
//! widened bounding box or on a given box, or exact samples of p_σ1 — each a pure function of
//! the sample index and the seed.

use anneal_core::Error;
use anneal_core::Schedule;
use anneal_core::noise::{Keyed, Noise, Stream};
use anneal_core::plan;

use crate::cli::InitKind;
use crate::config::RunConfig;

/// What the initialisations need from the data: the weighted mean (normal) and the widened
/// bounding box (uniform).
pub struct Start {
    /// The weighted data mean (the centre of the normal start).
    pub mean: Vec<f32>,
    lo: f64,
    hi: f64,
}

impl Start {
    /// The start's parameters for run `p`.
    pub fn new(p: &RunConfig) -> Self {
        let d = p.data.dim;
        let mean: Vec<f32> = (0..d)
            .map(|j| {
                p.data
                    .means
                    .chunks_exact(d)
                    .zip(&p.data.weights)
                    .map(|(m, w)| m[j] as f64 * w)
                    .sum::<f64>() as f32
            })
            .collect();
        let (lo, hi) =
            p.data.means.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v as f64), hi.max(v as f64))
            });
        let margin = 3.0 * p.tau.max(p.schedule.sigma_min());
        Start { mean, lo: lo - margin, hi: hi + margin }
    }

    /// The initial states of samples `first..first + count` (a pure function of the sample
    /// index and the seed, like every draw).
    pub fn rows(
        &self,
        p: &RunConfig,
        first: usize,
        count: usize,
        seed: u64,
        init: InitKind,
    ) -> Result<Vec<f32>, Error> {
        let d = p.data.dim;
        let mut x = vec![0.0f32; count * d];
        let mut noise = Keyed::new(seed);
        match init {
            InitKind::Normal => {
                plan::init_normal(&mut noise, first as u64, d, p.schedule.sigma_max(), &mut x)?;
                for row in x.chunks_exact_mut(d) {
                    row.iter_mut().zip(&self.mean).for_each(|(v, m)| *v += m);
                }
            }
            InitKind::Prior => {
                plan::init_normal(&mut noise, first as u64, d, p.schedule.sigma_max(), &mut x)?
            }
            InitKind::Uniform => {
                plan::init_uniform(&mut noise, first as u64, d, self.lo, self.hi, &mut x)?
            }
            InitKind::UniformBox { lo, hi } => {
                plan::init_uniform(&mut noise, first as u64, d, lo, hi, &mut x)?
            }
            InitKind::Data => {
                let s1 =
                    anneal_core::score::perturbed_variance(p.tau, p.schedule.sigma_max()).sqrt();
                plan::init_normal(&mut noise, first as u64, d, s1, &mut x)?;
                let mut u = [0.0f64; 1];
                for (j, row) in x.chunks_exact_mut(d).enumerate() {
                    noise.uniforms((first + j) as u64, Stream::InitComponent, &mut u);
                    let k = crate::report::metrics::pick_component(&p.data.weights, u[0]);
                    row.iter_mut()
                        .zip(&p.data.means[k * d..(k + 1) * d])
                        .for_each(|(v, m)| *v += m);
                }
            }
        }
        Ok(x)
    }
}
