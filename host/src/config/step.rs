//! The Langevin step of a run: given (in either convention), or NCSNv2's Technique 4 for the
//! schedule and the steps per level — for the samplers that take one (the core's rule).

use anneal_core::samplers::any::SamplerKind;
use anneal_core::{GeometricOrSingle, LangevinStep, Schedule, StepConvention};

use crate::cli::{ConventionKind, SamplerOptions};
use crate::error::UsageError;

/// The step (None for the samplers that take none) and how it was chosen. A given --eps is
/// passed on even where it does not apply, so that the core refuses it with its name.
pub fn langevin(
    kind: SamplerKind,
    eps: Option<f64>,
    o: &SamplerOptions,
    schedule: &GeometricOrSingle,
    steps_per_level: u32,
) -> Result<(Option<LangevinStep>, Option<&'static str>), UsageError> {
    if let Some(e) = eps {
        let conv = match o.step_convention {
            ConventionKind::Ncsnv2 => StepConvention::Ncsnv2,
            ConventionKind::Ncsn => StepConvention::Ncsn,
        };
        return Ok((Some(LangevinStep::new(e, conv)?), Some("given")));
    }
    if !kind.takes_langevin_step(o.snr.is_some()) {
        return Ok((None, None));
    }
    let GeometricOrSingle::Geometric(g) = schedule else {
        return Err(UsageError::flag(
            "--eps is required with --levels 1 (Technique 4 needs a schedule)",
        ));
    };
    let steps = kind.technique4_steps(steps_per_level, o.corrector_steps());
    let t4 = anneal_core::ncsnv2::technique4_eps(g.sigma_min(), g.common_ratio().growth(), steps)?;
    Ok((Some(LangevinStep::new(t4.eps, StepConvention::Ncsnv2)?), Some("Technique 4")))
}
