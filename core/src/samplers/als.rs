//! Annealed Langevin sampling (ALS).
//!
//! NCSNv2 (Song & Ermon 2020), Algorithm 1; NCSN (Song & Ermon 2019), Algorithm 1. For each level
//! i = 1..N, T steps of
//!
//! `x ← x + α_i s(x, σ_i) + √(2α_i) z`, `α_i = ε σ_i²/σ_N²` (NCSNv2's convention), or
//! `x ← x + (α_i/2) s(x, σ_i) + √α_i z` (NCSN's convention: its ε is twice NCSNv2's),
//!
//! optionally followed by the denoising step `x ← x + σ_N² s(x, σ_N)` (NCSNv2, "denoise").
//!
//! Departures: the stability bound of `MATH.md` (`α_i < 2(τ² + σ_i²)` per level, τ the data's
//! mode width, 0 for the strictest check) is enforced at construction, so a setting like the NCSN
//! appendix's σ 10 → 0.1 with ε = 0.1 is refused instead of overflowing.

use crate::error::Error;
use crate::params::{LangevinStep, check_langevin};
use crate::plan::{Plan, Step};
use crate::schedule::Schedule;

use super::any::{Info, SamplerParams, TakesStep};

/// ALS over a schedule.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Als<S> {
    schedule: S,
    step: LangevinStep,
    steps_per_level: u32,
    len: usize,
}

impl<S: Schedule> Als<S> {
    /// ALS with `steps_per_level` = T ≥ 1 steps per level and an optional final denoising step.
    /// `tau` ≥ 0 is the mode width the stability bound is checked for (0 = strictest).
    pub fn new(
        schedule: S,
        step: LangevinStep,
        steps_per_level: u32,
        tau: f64,
    ) -> Result<Self, Error> {
        super::check_levels(&schedule, 1)?;
        let t = super::check_steps(steps_per_level)?;
        check_langevin(&schedule, step, tau)?;
        let len = super::check_len(schedule.levels().saturating_mul(t as usize))?;
        Ok(Als { schedule, step, steps_per_level: t, len })
    }

    /// The schedule.
    pub fn schedule(&self) -> &S {
        &self.schedule
    }

    /// α_i (the score coefficient) at 0-based level `i`.
    pub fn alpha(&self, i: usize) -> Option<f64> {
        Some(self.step.score_coefficient(self.schedule.sigma(i)?, self.schedule.sigma_min()))
    }
}

impl<S: Schedule> Plan for Als<S> {
    fn len(&self) -> usize {
        self.len
    }

    fn end(&self) -> Option<(usize, f64)> {
        Some((self.schedule.levels().checked_sub(1)?, self.schedule.sigma_min()))
    }

    fn step(&self, k: usize) -> Option<Step> {
        let n = self.schedule.levels();
        let (level, _) = super::split(k, self.steps_per_level as usize)?;
        if level < n {
            let sigma = self.schedule.sigma(level)?;
            let a = self.alpha(level)?;
            Some(Step::simple(level, sigma, a, libm::sqrt(2.0 * a), sigma, level))
        } else {
            None
        }
    }
}

/// ALS as the sampler family knows it ([`super::any`]).
pub(crate) const INFO: Info = Info {
    name: "als",
    uses_steps_per_level: true,
    langevin_step: TakesStep::Always,
    takes_eta: false,
    final_denoise: true,
};

/// ALS from the family's parameters.
pub(crate) fn build<S: Schedule>(
    s: S,
    p: &SamplerParams,
    name: &'static str,
) -> Result<Als<S>, Error> {
    Als::new(s, p.require_step(name)?, p.steps_per_level, p.tau)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::StepConvention;
    use crate::samplers::known::{self, KEEP};

    /// σ = 4, 2, 1, ε = 0.01 (NCSNv2), T = 2: α_i = ε σ_i²/σ_N² = 0.16, 0.04, 0.01, each step
    /// x ← x + α s + √(2α) ξ; then the denoiser. NCSN's convention with ε = 0.02 is the same chain.
    #[test]
    fn known_coefficients() {
        for step in [
            LangevinStep::new(0.01, StepConvention::Ncsnv2).unwrap(),
            LangevinStep::new(0.02, StepConvention::Ncsn).unwrap(),
        ] {
            let als =
                Als::new(known::schedule(), step, 2, 0.0).and_then(crate::Plan::denoised).unwrap();
            assert_eq!(als.len(), 7);
            let want = [
                (4.0, 0.16, 0.565685424949238),
                (2.0, 0.04, 0.282842712474619),
                (1.0, 0.01, 0.1414213562373095),
            ];
            for (k, &(sigma, a, n)) in [0, 1, 2, 3, 4, 5]
                .iter()
                .zip(&[want[0], want[0], want[1], want[1], want[2], want[2]])
            {
                known::step(als.step(*k), k / 2, sigma, [1.0, 0.0, a, n], KEEP);
            }
            known::step(als.step(6), 2, 1.0, [1.0, 0.0, 1.0, 0.0], KEEP);
        }
    }
}
