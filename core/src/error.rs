//! The one error type of the core.
//!
//! Every variant names the offending value, the bound it broke and, where it applies, the level or
//! step. Levels and steps in errors count **from 1**, as in the papers and `MATH.md`: level `i` is
//! σ_i, and step `i` of a CAS run goes from σ_i to σ_{i+1}. (The core's functions take 0-based
//! indices; only the error reports are 1-based, because they are read by people.)

use core::fmt;

/// A named parameter, for [`Error::OutOfRange`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Param {
    /// σ_1, the largest noise level.
    SigmaMax,
    /// σ_N, the smallest noise level.
    SigmaMin,
    /// N, the number of levels.
    Levels,
    /// εc of the CAS note (η = 1 − γ^εc).
    EpsC,
    /// ε_b of the original CAS (η = ε_b / σ_N²).
    EpsB,
    /// ε, the Langevin step-size parameter.
    Eps,
    /// C, the target probability of NCSNv2's Technique 2.
    C,
    /// T, Langevin steps per level.
    StepsPerLevel,
    /// D, the data dimension.
    Dim,
    /// τ, a mixture component's standard deviation.
    Tau,
    /// A mixture weight.
    Weight,
    /// The signal-to-noise ratio of the PC corrector.
    Snr,
    /// λ of the generalized noise-denoise sampler.
    Lambda,
    /// κ, the friction of the momentum samplers.
    Friction,
    /// M, corrector steps per predictor step.
    CorrectorSteps,
    /// A bound of an initialisation box.
    InitBox,
    /// A mask entry (inpainting): must be 0 or 1.
    Mask,
}

impl Param {
    /// The flag-like name of the parameter, as the CLI spells it.
    pub const fn name(self) -> &'static str {
        match self {
            Param::SigmaMax => "sigma-max",
            Param::SigmaMin => "sigma-min",
            Param::Levels => "levels",
            Param::EpsC => "eps-c",
            Param::EpsB => "eps-b",
            Param::Eps => "eps",
            Param::C => "c",
            Param::StepsPerLevel => "steps-per-level",
            Param::Dim => "dim",
            Param::Tau => "tau",
            Param::Weight => "weight",
            Param::Snr => "snr",
            Param::Lambda => "lambda",
            Param::Friction => "friction",
            Param::CorrectorSteps => "corrector-steps",
            Param::InitBox => "init-box",
            Param::Mask => "mask",
        }
    }
}

impl fmt::Display for Param {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What became non-finite during a run, for [`Error::NonFinite`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Quantity {
    /// The sample state x.
    State,
    /// The auxiliary state (momentum or previous noise).
    Aux,
    /// The score s(x, σ).
    Score,
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Quantity::State => "state x",
            Quantity::Aux => "auxiliary state",
            Quantity::Score => "score",
        })
    }
}

/// Everything that can go wrong in the core. Small, `Copy`, allocation-free.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Error {
    /// A σ of a schedule is NaN, infinite, zero or negative.
    InvalidSigma {
        /// Level (1-based).
        level: usize,
        /// The value given.
        value: f64,
    },
    /// σ_{level+1} ≥ σ_level: schedules must be strictly decreasing.
    NotDecreasing {
        /// Level (1-based) of the first σ of the offending pair.
        level: usize,
        /// σ_level.
        sigma: f64,
        /// σ_{level+1}, which should have been smaller.
        next: f64,
    },
    /// Fewer levels than the sampler needs.
    TooFewLevels {
        /// N given.
        levels: usize,
        /// The smallest N allowed.
        min: usize,
    },
    /// More levels than can be represented: a fixed-capacity table is full, or a geometric
    /// schedule's consecutive σ would be equal in f64.
    TooManyLevels {
        /// N given.
        levels: usize,
        /// The largest N allowed here.
        max: usize,
    },
    /// A scalar parameter outside its allowed range.
    OutOfRange {
        /// Which parameter.
        param: Param,
        /// The value given.
        value: f64,
        /// The allowed range, in words (e.g. `"≥ 1, or +∞"`).
        allowed: &'static str,
    },
    /// η_step is outside the CAS bound 1 − γ_step ≤ η ≤ 1 (the CAS note, Eq. 6).
    EtaOutOfBounds {
        /// Step (1-based): from σ_step to σ_{step+1}.
        step: usize,
        /// The η of that step.
        eta: f64,
        /// 1 − γ_step.
        lower: f64,
        /// 1.
        upper: f64,
    },
    /// A Langevin step is outside the stability bound of `MATH.md`: the step multiplies the
    /// distance to a mode by |1 − a/(τ² + σ²)| ≥ 1 and the chain diverges.
    StepUnstable {
        /// Level (1-based).
        level: usize,
        /// The coefficient of the score in that step (α_i, or α_i/2 in NCSN's convention).
        step_size: f64,
        /// The bound it must stay below, 2(τ² + σ_level²).
        limit: f64,
    },
    /// Technique 2 has no solution: C cannot be reached for this dimension.
    NoGrowth {
        /// The dimension D.
        dim: usize,
        /// The target C.
        c: f64,
    },
    /// A point set (Technique 1) has fewer than two points.
    TooFewPoints {
        /// Points given.
        points: usize,
        /// Points needed.
        min: usize,
    },
    /// A buffer's length does not match the dimension.
    DimensionMismatch {
        /// The length expected.
        expected: usize,
        /// The length found.
        found: usize,
    },
    /// An input value (data point, initial state) is NaN or infinite.
    NonFiniteInput {
        /// Index of the first offending entry.
        index: usize,
    },
    /// A sampler needs a parameter that was not given.
    MissingParam {
        /// The parameter.
        param: Param,
        /// The sampler's name.
        sampler: &'static str,
    },
    /// A parameter was given to a sampler that does not take it.
    NotApplicable {
        /// The parameter.
        param: Param,
        /// The sampler's name.
        sampler: &'static str,
    },
    /// A value became NaN or infinite during a run. The run stops here.
    NonFinite {
        /// What became non-finite.
        what: Quantity,
        /// Level (1-based) of the step.
        level: usize,
        /// Step (1-based) within the whole plan.
        step: usize,
    },
    /// The score function itself failed (a network runtime's error: the score source keeps its
    /// message). A score returns it with `level` and `step` 0; [`crate::plan::run`] fills them in.
    ScoreFailed {
        /// Level (1-based) of the step.
        level: usize,
        /// Step (1-based) within the whole plan.
        step: usize,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::InvalidSigma { level, value } => {
                let value = Num(value);
                write!(f, "σ_{level} = {value} is invalid: every σ must be finite and > 0")
            }
            Error::NotDecreasing { level, sigma, next } => write!(
                f,
                "σ_{level} = {} and σ_{} = {} are not strictly decreasing: \
                 give the noise levels from largest to smallest, without repeats",
                Num(sigma),
                level + 1,
                Num(next)
            ),
            Error::TooFewLevels { levels, min } => {
                write!(f, "{levels} noise level(s) given: this sampler needs at least {min}")
            }
            Error::TooManyLevels { levels, max } => write!(
                f,
                "{levels} noise levels requested: at most {max} fit here \
                 (capacity, or consecutive σ would be equal in f64)"
            ),
            Error::OutOfRange { param, value, allowed } => {
                let value = Num(value);
                write!(f, "{param} = {value} is out of range: must be {allowed}")
            }
            Error::EtaOutOfBounds { step, eta, lower, upper } => write!(
                f,
                "η = {} outside [1−γ, 1] = [{}, {}] at step {step} \
                 (σ_{step} → σ_{}): choose eps-b so that η stays in bounds, or use eps-c",
                Num(eta),
                Num(lower),
                Num(upper),
                step + 1
            ),
            Error::StepUnstable { level, step_size, limit } => write!(
                f,
                "Langevin step {} at level {level} is not below the stability bound \
                 2(τ² + σ²) = {}: the chain would diverge; reduce eps",
                Num(step_size),
                Num(limit)
            ),
            Error::NoGrowth { dim, c } => write!(
                f,
                "Technique 2 has no growth factor g > 1 reaching C = {} in dimension {dim}: \
                 choose C below Φ(3) − Φ(−3) ≈ 0.9973, or give the levels",
                Num(c)
            ),
            Error::TooFewPoints { points, min } => {
                write!(f, "{points} point(s) given: at least {min} are needed")
            }
            Error::DimensionMismatch { expected, found } => {
                write!(f, "buffer of length {found} where {expected} was expected")
            }
            Error::NonFiniteInput { index } => {
                write!(f, "input entry {index} is NaN or infinite")
            }
            Error::MissingParam { param, sampler } => {
                write!(f, "--sampler {sampler} needs --{param}")
            }
            Error::NotApplicable { param, sampler } => {
                write!(f, "--{param} does not apply to --sampler {sampler}")
            }
            Error::NonFinite { what, level, step } => write!(
                f,
                "the {what} became non-finite at level {level}, step {step}: \
                 the run was stopped there"
            ),
            Error::ScoreFailed { level, step } => write!(
                f,
                "the score function failed at level {level}, step {step}: the run was stopped there"
            ),
        }
    }
}

impl core::error::Error for Error {}

/// A number as messages print it: as written where that is short (`0.01`, `14.14`, `2`), in
/// scientific form outside [10⁻⁴, 10⁶) (`1e300`, not 301 digits; `1.5e-9`), like C's `%g`
/// without its rounding: every digit of the shortest exact representation is kept.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Num(pub f64);

impl fmt::Display for Num {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.0;
        if v == 0.0 || !v.is_finite() || (1e-4..1e6).contains(&v.abs()) {
            write!(f, "{v}")
        } else {
            write!(f, "{v:e}")
        }
    }
}

/// Checks that `value` is finite and `> 0`, or returns [`Error::OutOfRange`].
pub(crate) fn positive(param: Param, value: f64) -> Result<f64, Error> {
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(Error::OutOfRange { param, value, allowed: "finite and > 0" })
    }
}
