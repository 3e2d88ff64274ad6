//! The samplers, one file each, as [`crate::plan::Plan`]s. Each file's header names the paper,
//! the equation, the update and where anneal departs from the paper.
//!
//! | sampler | file | state |
//! | --- | --- | --- |
//! | annealed Langevin (NCSN, NCSNv2) | [`als`] | x |
//! | consistent annealed sampling | [`cas`] | x |
//! | predictor–corrector (VE SDE) | [`pc`] | x |
//! | overdamped Langevin at one level | [`langevin`] | x |
//! | generalized noise-denoise (λ) | [`noise_denoise`] | x |
//! | BAOAB-limit, BAOAB, OBABO | [`baoab`] | x and ξ_n or momentum |
//! | inpainting (with any of them) | [`inpaint`] | x |
//!
//! [`any`] names them all ([`any::SamplerKind`]), says which parameter each takes, and builds any
//! of them as one plan ([`any::AnySampler`]).
//!
//! The single-level samplers take a schedule too: one level (`Borrowed::single`) is the
//! single-level sampler, more levels anneal it level by level.

pub mod als;
pub mod any;
pub mod baoab;
pub mod cas;
pub mod inpaint;
pub mod langevin;
pub mod noise_denoise;
pub mod pc;

use crate::error::{Error, Param};
use crate::schedule::Schedule;

/// T ≥ 1.
pub(crate) fn check_steps(steps_per_level: u32) -> Result<u32, Error> {
    if steps_per_level == 0 {
        Err(Error::OutOfRange { param: Param::StepsPerLevel, value: 0.0, allowed: "≥ 1" })
    } else {
        Ok(steps_per_level)
    }
}

/// A schedule with at least `min` levels.
pub(crate) fn check_levels<S: Schedule>(schedule: &S, min: usize) -> Result<(), Error> {
    let n = schedule.levels();
    if n < min { Err(Error::TooFewLevels { levels: n, min }) } else { Ok(()) }
}

/// Splits a step number into (block, position within the block) without a division that could
/// panic (a block size of 0 gives `None`).
pub(crate) fn split(k: usize, per_block: usize) -> Option<(usize, usize)> {
    Some((k.checked_div(per_block)?, k.checked_rem(per_block)?))
}

/// Steps counts must fit the noise streams' 32-bit step index.
pub(crate) fn check_len(len: usize) -> Result<usize, Error> {
    if len > u32::MAX as usize {
        Err(Error::TooManyLevels { levels: len, max: u32::MAX as usize })
    } else {
        Ok(len)
    }
}
