//! BAOAB-limit, BAOAB and OBABO: Langevin samplers that carry a second state vector.
//!
//! Jain & Poole, "Journey to the BAOAB-limit", Eq. 10, and the splitting methods of underdamped
//! Langevin dynamics it starts from (Leimkuhler & Matthews), with unit mass, friction κ and step h:
//! O: `p ← c p + √(1 − c²) ξ`; B: `p ← p + (h/2) s(z)`; A: `z ← z + (h/2) p` (BAOAB) or `z ← z + h p`
//! (OBABO).
//!
//! - **BAOAB-limit** (Eq. 10): `z ← z + ε s(z) + √(ε/2) (ξ_{n+1} + ξ_n)`; the state carries ξ_n
//!   (initially N(0, I)). It is BAOAB's κ → ∞ limit with ε = h²/2.
//! - **BAOAB** = B A O A B with `c = e^(−κh)`.
//! - **OBABO** = O B A B O with each O a half step, `c = e^(−κh/2)`.
//!
//! The step is parameterised like ALS: ε (NCSNv2 convention) gives ε_i = ε σ_i²/σ_N² at level i and
//! `h_i = √(2 ε_i)`, so all of them share ALS's stability bound (`ε_i < 2(τ² + σ_i²)`, checked).
//!
//! One score evaluation per step: consecutive B half-steps share their point. Written as plans:
//! - BAOAB keeps `p̃ = p + (h/2) s(z)` (momentum after the first B). Per level: one set-up step
//!   `p̃ ← p + (h/2) s(z)`, then T steps `z ← z + (h/2)(1 + c) p̃ + (h/2) √(1 − c²) ξ` (the score
//!   point), `p̃ ← c p̃ + √(1 − c²) ξ + h s(z_new)` — the last step of a level adds only `(h/2) s`,
//!   returning the true momentum p to the next level, whose σ differs.
//! - OBABO keeps the momentum between its B A and B. Per level: a set-up O B A, then T − 1 merged
//!   steps B O O B A, and a final B O. The two O's of a merged step are one Gaussian update:
//!   `p ← c² p + (h/2)(1 + c²) s + √(1 − c⁴) ξ` — the same Markov chain in law, one noise draw.
//!
//! Departures: the merged O's (above) and the per-level set-up steps (T + 1 score evaluations
//! per level instead of T, because the score of the shared point changes with σ).

use crate::error::{Error, Param};
use crate::params::{LangevinStep, check_langevin};
use crate::plan::{AuxInit, Lin, Plan, Point, Step, Update};
use crate::schedule::Schedule;

use super::any::{Info, SamplerParams, TakesStep};

/// BAOAB-limit over a schedule (one level = the single-level sampler).
#[derive(Debug, Clone)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct BaoabLimit<S> {
    schedule: S,
    step: LangevinStep,
    steps_per_level: u32,
    len: usize,
}

impl<S: Schedule> BaoabLimit<S> {
    /// ε (NCSNv2 convention), T ≥ 1 steps per level, `tau` for the stability check.
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
        Ok(BaoabLimit { schedule, step, steps_per_level: t, len })
    }
}

impl<S: Schedule> Plan for BaoabLimit<S> {
    fn len(&self) -> usize {
        self.len
    }

    fn aux_init(&self) -> AuxInit {
        AuxInit::Normal
    }

    fn step(&self, k: usize) -> Option<Step> {
        if k >= self.len {
            return None;
        }
        let (level, _) = super::split(k, self.steps_per_level as usize)?;
        let sigma = self.schedule.sigma(level)?;
        let eps = self.step.score_coefficient(sigma, self.schedule.sigma_min());
        let c = libm::sqrt(0.5 * eps);
        Some(Step {
            level,
            sigma,
            noise: true,
            point: Point::default(),
            update: Update::Linear {
                x: Lin { x: 1.0, aux: c, score: eps, noise: c },
                aux: Lin { x: 0.0, aux: 0.0, score: 0.0, noise: 1.0 },
            },
            sigma_after: sigma,
            level_after: level,
        })
    }
}

/// Which splitting of underdamped Langevin dynamics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Splitting {
    /// B A O A B, `c = e^(−κh)`.
    Baoab,
    /// O B A B O, each O with `c = e^(−κh/2)`.
    Obabo,
}

/// BAOAB or OBABO over a schedule (one level = the single-level sampler).
#[derive(Debug, Clone)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Underdamped<S> {
    schedule: S,
    step: LangevinStep,
    friction: f64,
    splitting: Splitting,
    steps_per_level: u32,
    len: usize,
}

impl<S: Schedule> Underdamped<S> {
    /// ε (NCSNv2 convention; h_i = √(2 ε σ_i²/σ_N²)), friction κ > 0, T ≥ 1 steps per level.
    pub fn new(
        schedule: S,
        step: LangevinStep,
        friction: f64,
        splitting: Splitting,
        steps_per_level: u32,
        tau: f64,
    ) -> Result<Self, Error> {
        super::check_levels(&schedule, 1)?;
        let t = super::check_steps(steps_per_level)?;
        crate::error::positive(Param::Friction, friction)?;
        check_langevin(&schedule, step, tau)?;
        let per_level = t as usize + 1;
        let len = super::check_len(schedule.levels().saturating_mul(per_level))?;
        Ok(Underdamped { schedule, step, friction, splitting, steps_per_level: t, len })
    }
}

impl<S: Schedule> Plan for Underdamped<S> {
    fn len(&self) -> usize {
        self.len
    }

    fn aux_init(&self) -> AuxInit {
        AuxInit::Normal
    }

    fn step(&self, k: usize) -> Option<Step> {
        if k >= self.len {
            return None;
        }
        let t = self.steps_per_level as usize;
        let (level, r) = super::split(k, t.checked_add(1)?)?;
        let sigma = self.schedule.sigma(level)?;
        let h = libm::sqrt(2.0 * self.step.score_coefficient(sigma, self.schedule.sigma_min()));
        let (point, x, aux, noise) = match self.splitting {
            Splitting::Baoab => {
                let c = libm::exp(-self.friction * h);
                let d = libm::sqrt(-libm::expm1(-2.0 * self.friction * h));
                if r == 0 {
                    // B: p̃ = p + (h/2) s(z).
                    (
                        Point::default(),
                        Lin::KEEP_X,
                        Lin { x: 0.0, aux: 1.0, score: 0.5 * h, noise: 0.0 },
                        false,
                    )
                } else {
                    // A O A: z' = z + (h/2)(1 + c) p̃ + (h/2) d ξ (the score point); then B (+ B).
                    let pa = 0.5 * h * (1.0 + c);
                    let pn = 0.5 * h * d;
                    let b = if r == t { 0.5 * h } else { h };
                    (
                        Point { aux: pa, noise: pn },
                        Lin { x: 1.0, aux: pa, score: 0.0, noise: pn },
                        Lin { x: 0.0, aux: c, score: b, noise: d },
                        true,
                    )
                }
            }
            Splitting::Obabo => {
                let c = libm::exp(-0.5 * self.friction * h);
                let d = libm::sqrt(-libm::expm1(-self.friction * h));
                if r == 0 {
                    // O B A: p' = c p + d ξ + (h/2) s(z); z' = z + h p'.
                    let p = Lin { x: 0.0, aux: c, score: 0.5 * h, noise: d };
                    (
                        Point::default(),
                        Lin { x: 1.0, aux: h * c, score: h * 0.5 * h, noise: h * d },
                        p,
                        true,
                    )
                } else if r < t {
                    // B O O B A: p' = c² p + (h/2)(1 + c²) s + √(1 − c⁴) ξ; z' = z + h p'.
                    let c2 = c * c;
                    let d2 = libm::sqrt(-libm::expm1(-2.0 * self.friction * h));
                    let p = Lin { x: 0.0, aux: c2, score: 0.5 * h * (1.0 + c2), noise: d2 };
                    (
                        Point::default(),
                        Lin { x: 1.0, aux: h * p.aux, score: h * p.score, noise: h * p.noise },
                        p,
                        true,
                    )
                } else {
                    // B O: p' = c (p + (h/2) s) + d ξ.
                    (
                        Point::default(),
                        Lin::KEEP_X,
                        Lin { x: 0.0, aux: c, score: 0.5 * h * c, noise: d },
                        true,
                    )
                }
            }
        };
        Some(Step {
            level,
            sigma,
            noise,
            point,
            update: Update::Linear { x, aux },
            sigma_after: sigma,
            level_after: level,
        })
    }
}

/// BAOAB-limit, BAOAB and OBABO as the sampler family knows them ([`super::any`]).
pub(crate) const LIMIT_INFO: Info = Info {
    name: "baoab-limit",
    uses_steps_per_level: true,
    langevin_step: TakesStep::Always,
    takes_eta: false,
    final_denoise: false,
};
/// BAOAB (see [`LIMIT_INFO`]).
pub(crate) const BAOAB_INFO: Info = Info { name: "baoab", ..LIMIT_INFO };
/// OBABO (see [`LIMIT_INFO`]).
pub(crate) const OBABO_INFO: Info = Info { name: "obabo", ..LIMIT_INFO };

/// BAOAB-limit from the family's parameters.
pub(crate) fn build_limit<S: Schedule>(
    s: S,
    p: &SamplerParams,
    name: &'static str,
) -> Result<BaoabLimit<S>, Error> {
    BaoabLimit::new(s, p.require_step(name)?, p.steps_per_level, p.tau)
}

/// BAOAB from the family's parameters.
pub(crate) fn build_baoab<S: Schedule>(
    s: S,
    p: &SamplerParams,
    name: &'static str,
) -> Result<Underdamped<S>, Error> {
    build_underdamped(s, p, name, Splitting::Baoab)
}

/// OBABO from the family's parameters.
pub(crate) fn build_obabo<S: Schedule>(
    s: S,
    p: &SamplerParams,
    name: &'static str,
) -> Result<Underdamped<S>, Error> {
    build_underdamped(s, p, name, Splitting::Obabo)
}

fn build_underdamped<S: Schedule>(
    s: S,
    p: &SamplerParams,
    name: &'static str,
    split: Splitting,
) -> Result<Underdamped<S>, Error> {
    Underdamped::new(s, p.require_step(name)?, p.friction, split, p.steps_per_level, p.tau)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::StepConvention;
    use crate::samplers::known;

    fn eps() -> LangevinStep {
        LangevinStep::new(0.01, StepConvention::Ncsnv2).unwrap()
    }

    /// BAOAB-limit, ε = 0.01 on σ = 4, 2, 1 (ε_i = 0.16, 0.04, 0.01): z ← z + ε_i s +
    /// √(ε_i/2)(ξ + ξ_n), and the state's ξ_n becomes ξ.
    #[test]
    fn baoab_limit_known_coefficients() {
        let bl = BaoabLimit::new(known::schedule(), eps(), 1, 0.0).unwrap();
        let xi_n = [0.0, 0.0, 0.0, 1.0];
        for (k, (sigma, e, r)) in [
            (4.0, 0.16, 0.282842712474619),
            (2.0, 0.04, 0.1414213562373095),
            (1.0, 0.01, 0.07071067811865475),
        ]
        .into_iter()
        .enumerate()
        {
            known::step(bl.step(k), k, sigma, [1.0, r, e, r], xi_n);
        }
    }

    /// BAOAB, κ = 2, T = 2 at σ = 4: h = √(2ε_i) = √0.32, c = e^(−κh) = 0.32259…; the set-up
    /// p̃ ← p + (h/2) s; then z ← z + (h/2)(1 + c) p̃ + (h/2)√(1 − c²) ξ and
    /// p̃ ← c p̃ + √(1 − c²) ξ + h s (the level's last step adds h/2 only).
    #[test]
    fn baoab_known_coefficients() {
        let b = Underdamped::new(known::schedule(), eps(), 2.0, Splitting::Baoab, 2, 0.0).unwrap();
        assert_eq!(b.len(), 9);
        let (h2, c, sq) = (0.282842712474619, 0.3225907297036365, 0.946538547080506);
        known::step(b.step(0), 0, 4.0, [1.0, 0.0, 0.0, 0.0], [0.0, 1.0, h2, 0.0]);
        let x = [1.0, 0.37408514948316224, 0.0, 0.2677215301180352];
        known::step(b.step(1), 0, 4.0, x, [0.0, c, 2.0 * h2, sq]);
        known::step(b.step(2), 0, 4.0, x, [0.0, c, h2, sq]);
    }

    /// OBABO, κ = 2, T = 2 at σ = 4: c = e^(−κh/2) = 0.56797…; the merged B O O B step carries
    /// p ← c² p + (h/2)(1 + c²) s + √(1 − c⁴) ξ, the level's final B O p ← c p + c (h/2) s +
    /// √(1 − c²) ξ.
    #[test]
    fn obabo_known_coefficients() {
        let o = Underdamped::new(known::schedule(), eps(), 2.0, Splitting::Obabo, 2, 0.0).unwrap();
        assert_eq!(o.len(), 9);
        let (h2, c) = (0.282842712474619, 0.5679707120121922);
        let Some(Step { update: crate::plan::Update::Linear { aux, .. }, .. }) = o.step(1) else {
            panic!("linear")
        };
        known::lin(
            aux,
            [0.0, 0.32259072970363656, 0.37408514948316224, 0.946538547080506],
            "merged",
        );
        let Some(Step { update: crate::plan::Update::Linear { x, aux }, .. }) = o.step(2) else {
            panic!("linear")
        };
        known::lin(x, [1.0, 0.0, 0.0, 0.0], "final x");
        known::lin(aux, [0.0, c, c * h2, 0.8230487654424636], "final B O");
    }
}
