//! Generalized noise-denoise sampling.
//!
//! Jain & Poole, "Journey to the BAOAB-limit", Eq. 3, variance-exploding form (α = 1): draw ξ,
//! `y = x + σ ξ`, then
//!
//! `x ← x + λ σ (ξ + σ s(y, σ))`
//!
//! (the predicted noise is `ε̂(y) = −σ s(y)`). λ = 1 is plain noise-denoise (which oversmooths),
//! λ = 2 is the BAOAB-limit with ε = 2σ². The score is evaluated at `y`, not at `x`.
//!
//! Departures: λ must lie in (0, 2] — for one-point data a step maps x to (1 − λ) x, so λ > 2
//! diverges. Annealed over a schedule, each level runs T steps at its own σ.

use crate::error::{Error, Param};
use crate::plan::{Lin, Plan, Point, Step, Update};
use crate::schedule::Schedule;

use super::any::{Info, SamplerParams, TakesStep};

/// Noise-denoise with λ over a schedule (one level = the single-level sampler).
#[derive(Debug, Clone)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct NoiseDenoise<S> {
    schedule: S,
    lambda: f64,
    steps_per_level: u32,
    len: usize,
}

impl<S: Schedule> NoiseDenoise<S> {
    /// λ ∈ (0, 2], T ≥ 1 steps per level.
    pub fn new(schedule: S, lambda: f64, steps_per_level: u32) -> Result<Self, Error> {
        super::check_levels(&schedule, 1)?;
        if !(lambda > 0.0 && lambda <= 2.0) {
            return Err(Error::OutOfRange {
                param: Param::Lambda,
                value: lambda,
                allowed: "in (0, 2]; 1 = noise-denoise, 2 = BAOAB-limit",
            });
        }
        let t = super::check_steps(steps_per_level)?;
        let len = super::check_len(schedule.levels().saturating_mul(t as usize))?;
        Ok(NoiseDenoise { schedule, lambda, steps_per_level: t, len })
    }
}

impl<S: Schedule> Plan for NoiseDenoise<S> {
    fn len(&self) -> usize {
        self.len
    }

    fn step(&self, k: usize) -> Option<Step> {
        if k >= self.len {
            return None;
        }
        let (level, _) = super::split(k, self.steps_per_level as usize)?;
        let sigma = self.schedule.sigma(level)?;
        let l = self.lambda;
        Some(Step {
            level,
            sigma,
            noise: true,
            point: Point { aux: 0.0, noise: sigma },
            update: Update::Linear {
                x: Lin { x: 1.0, aux: 0.0, score: l * sigma * sigma, noise: l * sigma },
                aux: Lin::KEEP_AUX,
            },
            sigma_after: sigma,
            level_after: level,
        })
    }
}

/// Noise-denoise as the sampler family knows it ([`super::any`]).
pub(crate) const INFO: Info = Info {
    name: "noise-denoise",
    uses_steps_per_level: true,
    langevin_step: TakesStep::Never,
    takes_eta: false,
    final_denoise: false,
};

/// Noise-denoise from the family's parameters.
pub(crate) fn build<S: Schedule>(
    s: S,
    p: &SamplerParams,
    _name: &'static str,
) -> Result<NoiseDenoise<S>, Error> {
    NoiseDenoise::new(s, p.lambda, p.steps_per_level)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::samplers::known::{self, KEEP};

    /// λ = 1.5, T = 1 on σ = 4, 2, 1: the score is taken at y = x + σ ξ, and
    /// x ← x + λ σ ξ + λ σ² s(y): at σ = 4, (6, 24); at 2, (3, 6); at 1, (1.5, 1.5).
    #[test]
    fn known_coefficients() {
        let nd = NoiseDenoise::new(known::schedule(), 1.5, 1).unwrap();
        assert_eq!(nd.len(), 3);
        for (k, (sigma, s, n)) in
            [(4.0, 24.0, 6.0), (2.0, 6.0, 3.0), (1.0, 1.5, 1.5)].into_iter().enumerate()
        {
            let step = nd.step(k);
            assert_eq!(step.map(|s| (s.point.aux, s.point.noise)), Some((0.0, sigma)));
            known::step(step, k, sigma, [1.0, 0.0, s, n], KEEP);
        }
    }
}
