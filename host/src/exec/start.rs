//! The initial states: N(data mean, σ_1² I), N(0, σ_1² I) (the VE prior), uniform on the data's
//! widened bounding box or on a given box, or exact samples of p_σ1 — each a pure function of
//! the sample index and the seed.

use anneal_core::Error;
use anneal_core::Schedule;
use anneal_core::noise::{Keyed, Noise, Stream};
use anneal_core::plan;

use crate::cli::InitKind;
use crate::config::RunConfig;
use crate::report::metrics::Picker;
use crate::score::par_noise::ParKeyed;

/// What the initialisations need from the data: the weighted mean (normal), the widened
/// bounding box (uniform) and the cumulative weights (data).
pub struct Start {
    /// The weighted data mean (the centre of the normal start).
    pub mean: Vec<f32>,
    lo: f64,
    hi: f64,
    /// The cumulative weights (empty unless `data`).
    picker: Picker,
}

impl Start {
    /// The start's parameters for run `p`: the weighted mean for `normal`, the widened bounding
    /// box for `uniform` (each a pass over the points, made only where `p.init` needs it).
    pub fn new(p: &RunConfig) -> Self {
        let d = p.data.dim;
        let mut start = Start { mean: Vec::new(), lo: 0.0, hi: 0.0, picker: Picker::new(&[]) };
        if p.init == InitKind::Normal {
            // Σ_k w_k μ_k per coordinate, in one pass over the rows (the sums in row order).
            let mut acc = vec![-0.0f64; d];
            for (m, w) in p.data.means.chunks_exact(d).zip(&p.data.weights) {
                acc.iter_mut().zip(m).for_each(|(a, &v)| *a += v as f64 * w);
            }
            start.mean = acc.into_iter().map(|a| a as f32).collect();
        }
        if p.init == InitKind::Uniform {
            let (lo, hi) =
                p.data.means.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
                    (lo.min(v as f64), hi.max(v as f64))
                });
            let margin = 3.0 * p.tau.max(p.schedule.sigma_min());
            (start.lo, start.hi) = (lo - margin, hi + margin);
        }
        if p.init == InitKind::Data {
            start.picker = Picker::new(&p.data.weights);
        }
        start
    }

    /// The initial states of samples `first..first + count` by `p.init`, the start [`Start::new`]
    /// prepared for (a pure function of the sample index and the seed, like every draw).
    pub fn rows(
        &self,
        p: &RunConfig,
        first: usize,
        count: usize,
        seed: u64,
    ) -> Result<Vec<f32>, Error> {
        let d = p.data.dim;
        let mut x = vec![0.0f32; count * d];
        // Vectorised and split across threads: the same values as `Keyed`'s.
        let mut noise = ParKeyed(Keyed::new(seed));
        match p.init {
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
                    let k = self.picker.pick(u[0]);
                    row.iter_mut()
                        .zip(&p.data.means[k * d..(k + 1) * d])
                        .for_each(|(v, m)| *v += m);
                }
            }
        }
        Ok(x)
    }
}
