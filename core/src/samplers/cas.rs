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

/// CAS over a schedule of N ≥ 2 levels: N − 1 steps, plus the final denoising step.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Cas<S> {
    schedule: S,
    rule: EtaRule,
    denoise: bool,
    len: usize,
}

impl<S: Schedule> Cas<S> {
    /// CAS with η chosen by `rule`; every step's bound is checked here.
    pub fn new(schedule: S, rule: EtaRule, denoise: bool) -> Result<Self, Error> {
        check_cas(&schedule, rule)?;
        let len = super::check_len(schedule.levels() - 1 + denoise as usize)?;
        Ok(Cas { schedule, rule, denoise, len })
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
        } else if self.denoise && k + 1 == n {
            Some(Step::denoise(n - 1, self.schedule.sigma_min()))
        } else {
            None
        }
    }
}
