//! Predictor–corrector sampling for the variance-exploding SDE.
//!
//! Song, Sohl-Dickstein, Kingma, Kumar, Ermon & Poole (2021), Algorithm 2 (VE), as summarised in the
//! CAS note, Eq. 5. Predictor (reverse diffusion), from σ_i to σ_{i+1}:
//!
//! `x ← x + (σ_i² − σ_{i+1}²) s(x, σ_i) + √(σ_i² − σ_{i+1}²) z`,
//!
//! and M Langevin corrector steps `x ← x + α s + √(2α) z` at the current level, with α by the ALS
//! rule (`α = ε σ²/σ_N²`) or the signal-to-noise rule `α = 2 (snr ‖z‖/‖s‖)²` per sample (the
//! default) or from batch means (score_sde's and diffusers' code; for comparison).
//!
//! Orders: [`Order::PredictorFirst`] (the paper: predictor i → i+1, then the correctors at σ_{i+1})
//! and [`Order::CorrectorFirst`] (score_sde's code: correctors at σ_i, then the predictor; at the
//! last level the correctors are followed by the denoising step, which is score_sde's last
//! predictor step to σ = 0 returned without noise).
//!
//! Departures: σ_i² − σ_{i+1}² is computed as `σ_i² · (−expm1(2 ln γ_i))`. The snr rule's
//! stability (one-point data: x is multiplied by 1 − 2 snr²) requires 0 < snr < 1, checked.

use crate::error::{Error, Param};
use crate::params::{LangevinStep, check_langevin};
use crate::plan::{Plan, SnrNorms, Step, Update};
use crate::schedule::Schedule;

use super::any::{Info, SamplerParams, TakesStep};

/// The corrector's step-size rule.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Corrector {
    /// ALS's rule α_i = ε σ_i²/σ_N² (checked against the stability bound).
    Langevin(LangevinStep),
    /// The signal-to-noise rule.
    Snr {
        /// snr ∈ (0, 1).
        snr: f64,
        /// Per sample (default) or batch mean.
        norms: SnrNorms,
    },
}

/// Predictor-first or corrector-first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Order {
    /// Predictor, then M correctors at the new level (the paper).
    #[default]
    PredictorFirst,
    /// M correctors at the current level, then the predictor (score_sde's code).
    CorrectorFirst,
}

/// Predictor–corrector sampling over a schedule of N ≥ 2 levels.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Pc<S> {
    schedule: S,
    corrector: Corrector,
    m: usize,
    order: Order,
    len: usize,
}

impl<S: Schedule> Pc<S> {
    /// PC with `corrector_steps` = M ≥ 0 correctors per level.
    pub fn new(
        schedule: S,
        corrector: Corrector,
        corrector_steps: u32,
        order: Order,
        tau: f64,
    ) -> Result<Self, Error> {
        super::check_levels(&schedule, 2)?;
        match corrector {
            Corrector::Langevin(step) => check_langevin(&schedule, step, tau)?,
            Corrector::Snr { snr, .. } => {
                if !(snr > 0.0 && snr < 1.0) {
                    return Err(Error::OutOfRange {
                        param: Param::Snr,
                        value: snr,
                        allowed: "in (0, 1); 0.16 is score_sde's CIFAR-10 choice",
                    });
                }
            }
        }
        let n = schedule.levels();
        let m = corrector_steps as usize;
        let len = match order {
            Order::PredictorFirst => (n - 1).saturating_mul(1 + m),
            Order::CorrectorFirst => n.saturating_mul(m).saturating_add(n - 1),
        };
        let len = super::check_len(len)?;
        Ok(Pc { schedule, corrector, m, order, len })
    }

    fn predictor(&self, i: usize) -> Option<Step> {
        let sigma = self.schedule.sigma(i)?;
        let next = self.schedule.sigma(i + 1)?;
        let ratio = self.schedule.ratio(i)?;
        let d = sigma * sigma * -libm::expm1(2.0 * ratio.ln());
        Some(Step::simple(i, sigma, d, libm::sqrt(d), next, i + 1))
    }

    fn corrector(&self, level: usize) -> Option<Step> {
        let sigma = self.schedule.sigma(level)?;
        match self.corrector {
            Corrector::Langevin(step) => {
                let a = step.score_coefficient(sigma, self.schedule.sigma_min());
                Some(Step::simple(level, sigma, a, libm::sqrt(2.0 * a), sigma, level))
            }
            Corrector::Snr { snr, norms } => {
                let mut s = Step::simple(level, sigma, 0.0, 1.0, sigma, level);
                s.update = Update::Snr { snr, norms };
                Some(s)
            }
        }
    }
}

impl<S: Schedule> Plan for Pc<S> {
    fn len(&self) -> usize {
        self.len
    }

    fn end(&self) -> Option<(usize, f64)> {
        Some((self.schedule.levels().checked_sub(1)?, self.schedule.sigma_min()))
    }

    fn step(&self, k: usize) -> Option<Step> {
        if k >= self.len {
            return None;
        }
        let (i, r) = super::split(k, self.m.checked_add(1)?)?;
        match self.order {
            Order::PredictorFirst => {
                if r == 0 {
                    self.predictor(i)
                } else {
                    self.corrector(i + 1)
                }
            }
            Order::CorrectorFirst => {
                if r < self.m {
                    self.corrector(i)
                } else {
                    self.predictor(i)
                }
            }
        }
    }
}

/// PC as the sampler family knows it ([`super::any`]): the Langevin step is its corrector's,
/// unless the snr corrector is chosen; Technique 4 counts its M correctors.
pub(crate) const INFO: Info = Info {
    name: "pc",
    uses_steps_per_level: false,
    langevin_step: TakesStep::UnlessSnr,
    takes_eta: false,
    final_denoise: true,
};

/// PC from the family's parameters: the snr corrector when an snr is given, else the Langevin one.
pub(crate) fn build<S: Schedule>(
    s: S,
    p: &SamplerParams,
    name: &'static str,
) -> Result<Pc<S>, Error> {
    let corrector = match p.snr {
        Some((snr, norms)) => Corrector::Snr { snr, norms },
        None => Corrector::Langevin(p.require_step(name)?),
    };
    Pc::new(s, corrector, p.corrector_steps, p.order, p.tau)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::{LangevinStep, StepConvention};
    use crate::samplers::known::{self, KEEP};

    /// σ = 4, 2, 1, M = 1, Langevin corrector ε = 0.01. Predictor-first: the predictor 4 → 2 is
    /// x ← x + (16 − 4) s + √12 ξ, then the corrector at σ = 2 (α = 0.04), the predictor 2 → 1
    /// (3, √3), the corrector at σ = 1 (α = 0.01), the denoiser. Corrector-first starts with
    /// the corrector at σ = 4 (α = 0.16).
    #[test]
    fn known_coefficients() {
        let st = LangevinStep::new(0.01, StepConvention::Ncsnv2).unwrap();
        let pc = Pc::new(known::schedule(), Corrector::Langevin(st), 1, Order::PredictorFirst, 0.0)
            .and_then(crate::Plan::denoised)
            .unwrap();
        assert_eq!(pc.len(), 5);
        known::step(pc.step(0), 0, 4.0, [1.0, 0.0, 12.0, 3.4641016151377544], KEEP);
        known::step(pc.step(1), 1, 2.0, [1.0, 0.0, 0.04, 0.282842712474619], KEEP);
        known::step(pc.step(2), 1, 2.0, [1.0, 0.0, 3.0, 1.7320508075688772], KEEP);
        known::step(pc.step(3), 2, 1.0, [1.0, 0.0, 0.01, 0.1414213562373095], KEEP);
        known::step(pc.step(4), 2, 1.0, [1.0, 0.0, 1.0, 0.0], KEEP);
        let cf = Pc::new(known::schedule(), Corrector::Langevin(st), 1, Order::CorrectorFirst, 0.0)
            .and_then(crate::Plan::denoised)
            .unwrap();
        known::step(cf.step(0), 0, 4.0, [1.0, 0.0, 0.16, 0.565685424949238], KEEP);
        known::step(cf.step(1), 0, 4.0, [1.0, 0.0, 12.0, 3.4641016151377544], KEEP);
    }
}
