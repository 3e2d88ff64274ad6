//! Consistent annealed sampling (CAS).
//!
//! Jolicoeur-Martineau et al. (2021) as written in the CAS note (Serrà, Pascual, Pons), Eqs. 2–4
//! and 7. Start from `x ~ N(0, σ_1² I)`; for i = 1..N−1
//!
//! `x ← x + η_i σ_i² s(x, σ_i) + β_i σ_{i+1} z`, `β_i = √(1 − ((1 − η_i)/γ_i)²)`, `γ_i = σ_{i+1}/σ_i`,
//!
//! and last the denoiser `x ← x + σ_N² s(x, σ_N)` (Eq. 4). η from ε_b (`η = ε_b/σ_N²`) or from εc
//! (`η_i = 1 − γ_i^εc`), see [`crate::params`].
//!
//! Departures: the bound `1 − γ_i ≤ η_i ≤ 1` is checked for every step at construction (the note
//! states it; the original algorithm does not check it). The final denoising step can be turned
//! off to study the last level's samples.

use crate::error::Error;
use crate::params::{EtaRule, cas_step, check_cas};
use crate::plan::{Plan, Step};
use crate::schedule::Schedule;

use super::any::{Info, SamplerParams, TakesStep};

/// CAS over a schedule of N ≥ 2 levels: N − 1 steps (the final denoising step is
/// [`Plan::denoised`]'s).
#[derive(Debug, Clone)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Cas<S> {
    schedule: S,
    rule: EtaRule,
    len: usize,
}

impl<S: Schedule> Cas<S> {
    /// CAS with η chosen by `rule`; every step's bound is checked here.
    pub fn new(schedule: S, rule: EtaRule) -> Result<Self, Error> {
        check_cas(&schedule, rule)?;
        let len = super::check_len(schedule.levels() - 1)?;
        Ok(Cas { schedule, rule, len })
    }

    /// The schedule.
    pub fn schedule(&self) -> &S {
        &self.schedule
    }
}

impl<S: Schedule> Plan for Cas<S> {
    fn len(&self) -> usize {
        self.len
    }

    fn end(&self) -> Option<(usize, f64)> {
        Some((self.schedule.levels().checked_sub(1)?, self.schedule.sigma_min()))
    }

    fn step(&self, k: usize) -> Option<Step> {
        let n = self.schedule.levels();
        if k + 1 < n {
            let c = cas_step(&self.schedule, self.rule, k).ok()?;
            Some(Step::simple(
                k,
                c.sigma,
                c.eta * c.sigma * c.sigma,
                c.beta * c.sigma_next,
                c.sigma_next,
                k + 1,
            ))
        } else {
            None
        }
    }
}

/// CAS as the sampler family knows it ([`super::any`]).
pub(crate) const INFO: Info = Info {
    name: "cas",
    uses_steps_per_level: false,
    langevin_step: TakesStep::Never,
    takes_eta: true,
    final_denoise: true,
};

/// CAS from the family's parameters: η from its rule.
pub(crate) fn build<S: Schedule>(
    s: S,
    p: &SamplerParams,
    name: &'static str,
) -> Result<Cas<S>, Error> {
    Cas::new(s, p.require_eta(name)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::samplers::known::{self, KEEP};

    /// σ = 4, 2, 1 (γ = 1/2). εc = 2: η = 1 − γ² = 3/4, so x ← x + η σ_i² s + β σ_{i+1} ξ with
    /// β = √(1 − (1 − η)²/γ²) = √(3/4); then the denoiser x ← x + σ_N² s. ε_b = 0.8: η = 0.8,
    /// β = √(1 − 0.04/0.25) = √0.84.
    #[test]
    fn known_coefficients() {
        let cas = Cas::new(known::schedule(), EtaRule::eps_c(2.0).unwrap())
            .and_then(crate::Plan::denoised)
            .unwrap();
        assert_eq!(cas.len(), 3);
        known::step(cas.step(0), 0, 4.0, [1.0, 0.0, 12.0, 1.7320508075688772], KEEP);
        known::step(cas.step(1), 1, 2.0, [1.0, 0.0, 3.0, 0.8660254037844386], KEEP);
        known::step(cas.step(2), 2, 1.0, [1.0, 0.0, 1.0, 0.0], KEEP);
        assert!(cas.step(3).is_none());
        let b = Cas::new(known::schedule(), EtaRule::eps_b(0.8).unwrap()).unwrap();
        assert_eq!(b.len(), 2);
        known::step(b.step(0), 0, 4.0, [1.0, 0.0, 12.8, 1.833030277982336], KEEP);
        known::step(b.step(1), 1, 2.0, [1.0, 0.0, 3.2, 0.916515138991168], KEEP);
    }
}
