//! Every sampler by name, which parameters each takes, and one plan over all of them: the one
//! place that knows the samplers as a family. Adding a sampler is its own file plus one variant
//! of [`SamplerKind`] and one arm in each `match` of this file (the compiler lists them). The
//! final denoising step is not a sampler's business: [`Plan::denoised`] adds it to any plan.
//!
//! ```
//! use anneal_core::samplers::any::{AnySampler, SamplerKind, SamplerParams};
//! use anneal_core::{EtaRule, Geometric, Plan};
//!
//! let schedule = Geometric::new(10.0, 0.01, 8)?;
//! assert!(SamplerKind::Cas.takes_eta() && !SamplerKind::Cas.uses_steps_per_level());
//! let params = SamplerParams { eta: Some(EtaRule::eps_c(2.0)?), ..SamplerParams::DEFAULT };
//! let cas = AnySampler::new(SamplerKind::Cas, schedule, &params)?;
//! assert_eq!(cas.len(), 8); // 7 transitions and the final denoising step
//! // A parameter the sampler does not take is refused, not ignored.
//! assert!(AnySampler::new(SamplerKind::NoiseDenoise, schedule, &params).is_err());
//! # Ok::<(), anneal_core::Error>(())
//! ```

use crate::error::{Error, Param};
use crate::params::{EtaRule, LangevinStep};
use crate::plan::{AuxInit, Denoised, Plan, SnrNorms, Step};
use crate::schedule::Schedule;

use super::als::Als;
use super::baoab::{BaoabLimit, Splitting, Underdamped};
use super::cas::Cas;
use super::noise_denoise::NoiseDenoise;
use super::pc::{Corrector, Order, Pc};

/// The samplers of anneal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum SamplerKind {
    /// Consistent annealed sampling ([`super::cas`]).
    Cas,
    /// Annealed Langevin sampling with the final denoising step ([`super::als`]).
    Als,
    /// Predictor–corrector ([`super::pc`]).
    Pc,
    /// Overdamped Langevin level by level, no denoising step ([`super::als`]; one level is the
    /// single-level sampler of [`super::langevin`]).
    Langevin,
    /// Generalized noise-denoise with λ ([`super::noise_denoise`]).
    NoiseDenoise,
    /// BAOAB-limit ([`super::baoab`]).
    BaoabLimit,
    /// BAOAB with friction ([`super::baoab`]).
    Baoab,
    /// OBABO with friction ([`super::baoab`]).
    Obabo,
}

impl SamplerKind {
    /// Every sampler, in the CLI's order.
    pub const ALL: [SamplerKind; 8] = [
        SamplerKind::Cas,
        SamplerKind::Als,
        SamplerKind::Pc,
        SamplerKind::Langevin,
        SamplerKind::NoiseDenoise,
        SamplerKind::BaoabLimit,
        SamplerKind::Baoab,
        SamplerKind::Obabo,
    ];

    /// The name the CLI and every output use.
    pub const fn name(self) -> &'static str {
        match self {
            SamplerKind::Cas => "cas",
            SamplerKind::Als => "als",
            SamplerKind::Pc => "pc",
            SamplerKind::Langevin => "langevin",
            SamplerKind::NoiseDenoise => "noise-denoise",
            SamplerKind::BaoabLimit => "baoab-limit",
            SamplerKind::Baoab => "baoab",
            SamplerKind::Obabo => "obabo",
        }
    }

    /// Whether it runs T steps per level (`steps_per_level`); those samplers also run on a single
    /// level.
    pub const fn uses_steps_per_level(self) -> bool {
        !matches!(self, SamplerKind::Cas | SamplerKind::Pc)
    }

    /// The fewest levels: 2 for the samplers that step from level to level, 1 for the others.
    pub const fn min_levels(self) -> usize {
        if self.uses_steps_per_level() { 1 } else { 2 }
    }

    /// Whether it takes a Langevin step ε; PC takes one for its Langevin corrector only (`snr`:
    /// whether the snr corrector is chosen instead).
    pub const fn takes_langevin_step(self, snr: bool) -> bool {
        match self {
            SamplerKind::Cas | SamplerKind::NoiseDenoise => false,
            SamplerKind::Pc => !snr,
            _ => true,
        }
    }

    /// Whether it takes CAS's η rule (εc or ε_b).
    pub const fn takes_eta(self) -> bool {
        matches!(self, SamplerKind::Cas)
    }

    /// Whether it ends with the optional denoising step `x ← x + σ_N² s(x, σ_N)`.
    pub const fn has_final_denoise(self) -> bool {
        matches!(self, SamplerKind::Cas | SamplerKind::Als | SamplerKind::Pc)
    }

    /// The Langevin steps per level that Technique 4's ε is computed for: T, or PC's M
    /// correctors (at least 1).
    pub const fn technique4_steps(self, steps_per_level: u32, corrector_steps: u32) -> u32 {
        match self {
            SamplerKind::Pc if corrector_steps == 0 => 1,
            SamplerKind::Pc => corrector_steps,
            _ => steps_per_level,
        }
    }
}

/// Everything a sampler may take. [`AnySampler::new`] uses what the kind takes (see
/// [`SamplerKind`]) and refuses an η rule or a Langevin step given to a sampler that does not take
/// it; `denoise` (the [`Plan::denoised`] adapter) is ignored where there is no final denoising
/// step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SamplerParams {
    /// CAS: η from εc or ε_b.
    pub eta: Option<EtaRule>,
    /// The Langevin step (ALS, Langevin, BAOAB-limit, BAOAB, OBABO, PC's Langevin corrector).
    pub step: Option<LangevinStep>,
    /// T ≥ 1, steps per level (the samplers that use it).
    pub steps_per_level: u32,
    /// PC: the snr corrector's snr ∈ (0, 1) and norms, instead of the Langevin corrector.
    pub snr: Option<(f64, SnrNorms)>,
    /// PC: M, corrector steps per level.
    pub corrector_steps: u32,
    /// PC: predictor or corrector first.
    pub order: Order,
    /// Noise-denoise: λ ∈ (0, 2].
    pub lambda: f64,
    /// BAOAB, OBABO: friction κ > 0.
    pub friction: f64,
    /// CAS, ALS, PC: end with the denoising step.
    pub denoise: bool,
    /// τ ≥ 0, the mode width the Langevin stability bound is checked for (0 = strictest).
    pub tau: f64,
}

impl SamplerParams {
    /// The defaults of every optional parameter (the CLI's defaults are these): no η rule or
    /// step, T = 100, the Langevin corrector with M = 1 predictor-first, λ = 1, κ = 1, the final
    /// denoising step on, τ = 0.
    pub const DEFAULT: SamplerParams = SamplerParams {
        eta: None,
        step: None,
        steps_per_level: 100,
        snr: None,
        corrector_steps: 1,
        order: Order::PredictorFirst,
        lambda: 1.0,
        friction: 1.0,
        denoise: true,
        tau: 0.0,
    };
}

/// The sampler's own plan, before the optional denoising step.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Base<S> {
    /// CAS.
    Cas(Cas<S>),
    /// ALS and Langevin.
    Als(Als<S>),
    /// PC.
    Pc(Pc<S>),
    /// Noise-denoise.
    NoiseDenoise(NoiseDenoise<S>),
    /// BAOAB-limit.
    BaoabLimit(BaoabLimit<S>),
    /// BAOAB, OBABO.
    Underdamped(Underdamped<S>),
}

/// Any sampler's plan over schedule `S`, with the final denoising step where the sampler has one
/// and `denoise` asks for it.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct AnySampler<S> {
    plan: Denoised<Base<S>>,
}

impl<S: Schedule> AnySampler<S> {
    /// The plan of sampler `kind` over `schedule` with `params`; each sampler's constructor
    /// validates its own parameters.
    pub fn new(kind: SamplerKind, schedule: S, params: &SamplerParams) -> Result<Self, Error> {
        let p = params;
        let snr = p.snr.is_some();
        let name = match kind {
            SamplerKind::Pc if snr => "pc with --snr",
            k => k.name(),
        };
        if let Some(rule) = p.eta
            && !kind.takes_eta()
        {
            let param = match rule {
                EtaRule::EpsB(_) => Param::EpsB,
                EtaRule::EpsC(_) => Param::EpsC,
            };
            return Err(Error::NotApplicable { param, sampler: name });
        }
        if p.step.is_some() && !kind.takes_langevin_step(snr) {
            return Err(Error::NotApplicable { param: Param::Eps, sampler: name });
        }
        let step = || p.step.ok_or(Error::MissingParam { param: Param::Eps, sampler: name });
        let t = p.steps_per_level;
        let base = match kind {
            SamplerKind::Cas => {
                let rule =
                    p.eta.ok_or(Error::MissingParam { param: Param::EpsC, sampler: name })?;
                Base::Cas(Cas::new(schedule, rule)?)
            }
            SamplerKind::Als | SamplerKind::Langevin => {
                Base::Als(Als::new(schedule, step()?, t, p.tau)?)
            }
            SamplerKind::Pc => {
                let corrector = match p.snr {
                    Some((snr, norms)) => Corrector::Snr { snr, norms },
                    None => Corrector::Langevin(step()?),
                };
                Base::Pc(Pc::new(schedule, corrector, p.corrector_steps, p.order, p.tau)?)
            }
            SamplerKind::NoiseDenoise => {
                Base::NoiseDenoise(NoiseDenoise::new(schedule, p.lambda, t)?)
            }
            SamplerKind::BaoabLimit => {
                Base::BaoabLimit(BaoabLimit::new(schedule, step()?, t, p.tau)?)
            }
            SamplerKind::Baoab | SamplerKind::Obabo => {
                let split =
                    if kind == SamplerKind::Baoab { Splitting::Baoab } else { Splitting::Obabo };
                Base::Underdamped(Underdamped::new(schedule, step()?, p.friction, split, t, p.tau)?)
            }
        };
        let plan = Denoised::new(base, p.denoise && kind.has_final_denoise())?;
        Ok(AnySampler { plan })
    }

    /// The sampler's own plan (without the denoising step).
    pub fn base(&self) -> &Base<S> {
        self.plan.inner()
    }
}

impl<S: Schedule> Plan for Base<S> {
    fn len(&self) -> usize {
        match self {
            Base::Cas(p) => p.len(),
            Base::Als(p) => p.len(),
            Base::Pc(p) => p.len(),
            Base::NoiseDenoise(p) => p.len(),
            Base::BaoabLimit(p) => p.len(),
            Base::Underdamped(p) => p.len(),
        }
    }
    fn step(&self, k: usize) -> Option<Step> {
        match self {
            Base::Cas(p) => p.step(k),
            Base::Als(p) => p.step(k),
            Base::Pc(p) => p.step(k),
            Base::NoiseDenoise(p) => p.step(k),
            Base::BaoabLimit(p) => p.step(k),
            Base::Underdamped(p) => p.step(k),
        }
    }
    fn end(&self) -> Option<(usize, f64)> {
        match self {
            Base::Cas(p) => p.end(),
            Base::Als(p) => p.end(),
            Base::Pc(p) => p.end(),
            Base::NoiseDenoise(p) => p.end(),
            Base::BaoabLimit(p) => p.end(),
            Base::Underdamped(p) => p.end(),
        }
    }
    fn aux_init(&self) -> AuxInit {
        match self {
            Base::Cas(p) => p.aux_init(),
            Base::Als(p) => p.aux_init(),
            Base::Pc(p) => p.aux_init(),
            Base::NoiseDenoise(p) => p.aux_init(),
            Base::BaoabLimit(p) => p.aux_init(),
            Base::Underdamped(p) => p.aux_init(),
        }
    }
}

impl<S: Schedule> Plan for AnySampler<S> {
    fn len(&self) -> usize {
        self.plan.len()
    }
    fn step(&self, k: usize) -> Option<Step> {
        self.plan.step(k)
    }
    fn aux_init(&self) -> AuxInit {
        self.plan.aux_init()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::StepConvention;
    use crate::schedule::{Geometric, GeometricOrSingle};

    fn step() -> LangevinStep {
        LangevinStep::new(1e-6, StepConvention::Ncsnv2).unwrap()
    }

    /// Every sampler builds from the parameters it takes, on N = 5 levels; its length follows
    /// from its rules (T = 3, M = 2, the denoising step where there is one; `Underdamped` runs
    /// T + 1 steps per level).
    #[test]
    fn every_sampler_builds_with_what_it_takes() {
        let s = Geometric::new(10.0, 0.1, 5).unwrap();
        for kind in SamplerKind::ALL {
            let p = SamplerParams {
                eta: kind.takes_eta().then(|| EtaRule::eps_c(2.0).unwrap()),
                step: kind.takes_langevin_step(false).then(step),
                steps_per_level: 3,
                corrector_steps: 2,
                ..SamplerParams::DEFAULT
            };
            let plan = AnySampler::new(kind, s, &p).unwrap_or_else(|e| panic!("{kind:?}: {e}"));
            let want = match kind {
                SamplerKind::Cas => 4 + 1,
                SamplerKind::Pc => 4 * (1 + 2) + 1,
                SamplerKind::Als => 5 * 3 + 1,
                SamplerKind::Baoab | SamplerKind::Obabo => 5 * (3 + 1),
                _ => 5 * 3,
            };
            assert_eq!(plan.len(), want, "{kind:?}");
            assert_eq!(kind.min_levels() == 1, kind.uses_steps_per_level(), "{kind:?}");
        }
    }

    /// A parameter the sampler does not take is refused with its name; a missing one is named.
    #[test]
    fn refusals_name_the_parameter_and_the_sampler() {
        let s = Geometric::new(10.0, 0.1, 5).unwrap();
        let eta =
            SamplerParams { eta: Some(EtaRule::eps_b(1e-4).unwrap()), ..SamplerParams::DEFAULT };
        assert_eq!(
            AnySampler::new(SamplerKind::Als, s, &SamplerParams { step: Some(step()), ..eta })
                .unwrap_err(),
            Error::NotApplicable { param: Param::EpsB, sampler: "als" }
        );
        let with_step = SamplerParams { step: Some(step()), ..SamplerParams::DEFAULT };
        for (kind, name) in
            [(SamplerKind::Cas, "cas"), (SamplerKind::NoiseDenoise, "noise-denoise")]
        {
            assert_eq!(
                AnySampler::new(kind, s, &with_step).unwrap_err(),
                Error::NotApplicable { param: Param::Eps, sampler: name }
            );
        }
        let snr = SamplerParams { snr: Some((0.16, SnrNorms::PerSample)), ..with_step };
        assert_eq!(
            AnySampler::new(SamplerKind::Pc, s, &snr).unwrap_err(),
            Error::NotApplicable { param: Param::Eps, sampler: "pc with --snr" }
        );
        assert_eq!(
            AnySampler::new(SamplerKind::Baoab, s, &SamplerParams::DEFAULT).unwrap_err(),
            Error::MissingParam { param: Param::Eps, sampler: "baoab" }
        );
        assert_eq!(
            AnySampler::new(SamplerKind::Cas, s, &SamplerParams::DEFAULT).unwrap_err(),
            Error::MissingParam { param: Param::EpsC, sampler: "cas" }
        );
    }

    /// One level runs the samplers that use T and is refused by CAS and PC.
    #[test]
    fn a_single_level_is_for_the_samplers_that_use_t() {
        let one = GeometricOrSingle::single(0.5).unwrap();
        for kind in SamplerKind::ALL {
            let p = SamplerParams {
                eta: kind.takes_eta().then(|| EtaRule::eps_c(2.0).unwrap()),
                step: kind.takes_langevin_step(false).then(step),
                steps_per_level: 4,
                ..SamplerParams::DEFAULT
            };
            let r = AnySampler::new(kind, one, &p);
            assert_eq!(r.is_ok(), kind.min_levels() == 1, "{kind:?}: {:?}", r.err());
        }
    }
}
