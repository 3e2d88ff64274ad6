//! Every sampler by name, which parameters each takes, and one plan over all of them: the one
//! place that knows the samplers as a family. Each sampler's file states its own rules (an
//! [`Info`]) and how it is built from [`SamplerParams`]; the table in `samplers!` below names them,
//! one line per sampler, and makes [`SamplerKind`], [`Base`] and the dispatch from it. The final
//! denoising step is not a sampler's business: [`Plan::denoised`] adds it to any plan.
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
use super::baoab::{BaoabLimit, Underdamped};
use super::cas::Cas;
use super::noise_denoise::NoiseDenoise;
use super::pc::{Order, Pc};
use super::{als, baoab, cas, langevin, noise_denoise, pc};

/// Whether a sampler takes a Langevin step ε.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum TakesStep {
    /// Never (CAS, noise-denoise).
    Never,
    /// Always (ALS, Langevin, BAOAB-limit, BAOAB, OBABO).
    Always,
    /// For its Langevin corrector, unless the snr corrector is chosen (PC).
    UnlessSnr,
}

/// What a sampler is and takes; each sampler's file states its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Info {
    /// The name the CLI and every output use.
    pub name: &'static str,
    /// Runs T steps per level (and so also on a single level).
    pub uses_steps_per_level: bool,
    /// Whether it takes a Langevin step.
    pub langevin_step: TakesStep,
    /// Takes CAS's η rule (εc or ε_b).
    pub takes_eta: bool,
    /// Ends with the optional denoising step `x ← x + σ_N² s(x, σ_N)`.
    pub final_denoise: bool,
}

/// The table of samplers: one line each — its kind, doc line, rules, builder and plan type.
macro_rules! samplers {
    ($($kind:ident: $doc:literal => $info:path, $build:path, $plan:ident;)*) => {
        /// The samplers of anneal.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[cfg_attr(feature = "defmt", derive(defmt::Format))]
        pub enum SamplerKind {
            $(#[doc = $doc] $kind,)*
        }

        const COUNT: usize = [$(stringify!($kind)),*].len();

        impl SamplerKind {
            /// Every sampler, in the CLI's order.
            pub const ALL: [SamplerKind; COUNT] = [$(SamplerKind::$kind),*];

            /// Its rules, as its file states them.
            pub const fn info(self) -> Info {
                match self {
                    $(SamplerKind::$kind => $info,)*
                }
            }
        }

        /// The sampler's own plan, before the optional denoising step.
        #[derive(Debug, Clone)]
        #[cfg_attr(feature = "defmt", derive(defmt::Format))]
        pub enum Base<S> {
            $(#[doc = $doc] $kind($plan<S>),)*
        }

        /// Builds `kind`'s plan by its file's builder (`name` for its errors).
        fn build<S: Schedule>(
            kind: SamplerKind,
            schedule: S,
            p: &SamplerParams,
            name: &'static str,
        ) -> Result<Base<S>, Error> {
            Ok(match kind {
                $(SamplerKind::$kind => Base::$kind($build(schedule, p, name)?),)*
            })
        }

        impl<S: Schedule> Plan for Base<S> {
            fn len(&self) -> usize {
                match self {
                    $(Base::$kind(p) => p.len(),)*
                }
            }
            fn step(&self, k: usize) -> Option<Step> {
                match self {
                    $(Base::$kind(p) => p.step(k),)*
                }
            }
            fn end(&self) -> Option<(usize, f64)> {
                match self {
                    $(Base::$kind(p) => p.end(),)*
                }
            }
            fn aux_init(&self) -> AuxInit {
                match self {
                    $(Base::$kind(p) => p.aux_init(),)*
                }
            }
        }
    };
}

samplers! {
    Cas: "Consistent annealed sampling." => cas::INFO, cas::build, Cas;
    Als: "Annealed Langevin sampling with the final denoising step." => als::INFO, als::build, Als;
    Pc: "Predictor–corrector." => pc::INFO, pc::build, Pc;
    Langevin: "Overdamped Langevin, level by level." => langevin::INFO, als::build, Als;
    NoiseDenoise: "Generalized noise-denoise (λ)." => noise_denoise::INFO, noise_denoise::build, NoiseDenoise;
    BaoabLimit: "BAOAB-limit." => baoab::LIMIT_INFO, baoab::build_limit, BaoabLimit;
    Baoab: "BAOAB with friction." => baoab::BAOAB_INFO, baoab::build_baoab, Underdamped;
    Obabo: "OBABO with friction." => baoab::OBABO_INFO, baoab::build_obabo, Underdamped;
}

impl SamplerKind {
    /// The name the CLI and every output use.
    pub const fn name(self) -> &'static str {
        self.info().name
    }

    /// Whether it runs T steps per level (`steps_per_level`); those samplers also run on a single
    /// level.
    pub const fn uses_steps_per_level(self) -> bool {
        self.info().uses_steps_per_level
    }

    /// The fewest levels: 2 for the samplers that step from level to level, 1 for the others.
    pub const fn min_levels(self) -> usize {
        if self.uses_steps_per_level() { 1 } else { 2 }
    }

    /// Whether it takes a Langevin step ε (`snr`: whether the snr corrector is chosen).
    pub const fn takes_langevin_step(self, snr: bool) -> bool {
        match self.info().langevin_step {
            TakesStep::Never => false,
            TakesStep::Always => true,
            TakesStep::UnlessSnr => !snr,
        }
    }

    /// Whether it takes CAS's η rule (εc or ε_b).
    pub const fn takes_eta(self) -> bool {
        self.info().takes_eta
    }

    /// Whether it ends with the optional denoising step `x ← x + σ_N² s(x, σ_N)`.
    pub const fn has_final_denoise(self) -> bool {
        self.info().final_denoise
    }

    /// The Langevin steps per level that Technique 4's ε is computed for: T, or — for a sampler
    /// whose step is its corrector's (PC) — its M correctors (at least 1).
    pub const fn technique4_steps(self, steps_per_level: u32, corrector_steps: u32) -> u32 {
        match self.info().langevin_step {
            TakesStep::UnlessSnr if corrector_steps == 0 => 1,
            TakesStep::UnlessSnr => corrector_steps,
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
    /// The Langevin step, or the error naming it as missing for sampler `name`.
    pub fn require_step(&self, name: &'static str) -> Result<LangevinStep, Error> {
        self.step.ok_or(Error::MissingParam { param: Param::Eps, sampler: name })
    }

    /// The η rule, or the error naming εc as missing for sampler `name`.
    pub fn require_eta(&self, name: &'static str) -> Result<EtaRule, Error> {
        self.eta.ok_or(Error::MissingParam { param: Param::EpsC, sampler: name })
    }

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
        let base = build(kind, schedule, p, name)?;
        let plan = Denoised::new(base, p.denoise && kind.has_final_denoise())?;
        Ok(AnySampler { plan })
    }

    /// The sampler's own plan (without the denoising step).
    pub fn base(&self) -> &Base<S> {
        self.plan.inner()
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
            // The last step, as the README's table states it: CAS, ALS and PC end with the
            // denoiser x ← x + σ_N² s(x, σ_N) (no noise, leaving σ = 0); the others end with their
            // own step at σ_N, which leaves noise at σ_N (BAOAB/OBABO: the momentum's closing
            // half-step; the position keeps its last A step).
            let last = plan.step(plan.len() - 1).unwrap();
            let denoiser = matches!(kind, SamplerKind::Cas | SamplerKind::Als | SamplerKind::Pc);
            assert_eq!(kind.has_final_denoise(), denoiser, "{kind:?}");
            if denoiser {
                assert_eq!((last.sigma, last.sigma_after, last.noise), (0.1, 0.0, false));
                let crate::plan::Update::Linear { x, .. } = last.update else { panic!("{kind:?}") };
                assert_eq!((x.x, x.aux, x.noise), (1.0, 0.0, 0.0), "{kind:?}");
                assert!((x.score - 0.01).abs() < 1e-15, "{kind:?}: {x:?}");
            } else {
                assert_eq!((last.sigma, last.sigma_after), (0.1, 0.1), "{kind:?}");
            }
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
