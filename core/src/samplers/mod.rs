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

/// Known-answer helpers: the schedule σ = 4, 2, 1 (γ = 1/2 exactly) and coefficient checks
/// against values computed by hand from each paper's formula (to 1e-15 relative).
#[cfg(test)]
pub(crate) mod known {
    use crate::plan::{Lin, Step, Update};
    use crate::schedule::Geometric;

    /// σ = 4, 2, 1.
    pub fn schedule() -> Geometric {
        Geometric::new(4.0, 1.0, 3).unwrap()
    }

    fn close(got: f64, want: f64) -> bool {
        (got - want).abs() <= 1e-15 * want.abs().max(1.0)
    }

    /// Asserts a [`Lin`]'s coefficients of x, aux, s, ξ.
    pub fn lin(got: Lin, want: [f64; 4], what: &str) {
        let g = [got.x, got.aux, got.score, got.noise];
        assert!(g.iter().zip(want).all(|(&a, b)| close(a, b)), "{what}: {g:?} vs {want:?}");
    }

    /// The x and aux updates of a linear step, with its level and σ.
    pub fn step(s: Option<Step>, level: usize, sigma: f64, x: [f64; 4], aux: [f64; 4]) {
        let s = s.expect("a step");
        assert_eq!(s.level, level);
        assert!(close(s.sigma, sigma), "σ {} vs {sigma}", s.sigma);
        let Update::Linear { x: gx, aux: ga } = s.update else { panic!("not linear") };
        lin(gx, x, "x");
        lin(ga, aux, "aux");
    }

    /// `aux ← aux` (the samplers without a second state).
    pub const KEEP: [f64; 4] = [0.0, 1.0, 0.0, 0.0];
}
