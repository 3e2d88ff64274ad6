//! # anneal-core
//!
//! The mathematics of sampling from score-based (denoising score matching) models, for any target
//! from a microcontroller to a server: `#![no_std]`, no allocator, no `unsafe`, no panicking paths
//! in the public API (every fallible call returns [`Error`]).
//!
//! - [`schedule`]: noise schedules σ_1 > … > σ_N (geometric for any N, user tables) and the two ratio
//!   conventions of the papers, [`schedule::Ratio`] (σ_{i+1}/σ_i) and [`schedule::Growth`] (σ_{i−1}/σ_i).
//! - [`ncsnv2`]: NCSNv2's Techniques 1, 2 and 4 (σ_1, the number of levels, the step size).
//! - [`params`]: CAS's η (from ε_b or εc) and β with the bound 1 − γ ≤ η ≤ 1, and the Langevin step
//!   size in both conventions with its stability bound — all in f64 with the stable forms of
//!   `MATH.md`.
//! - [`plan`]: samplers as per-step coefficient records, and the one executor over `&mut [f32]`
//!   (or `f64`) buffers; [`samplers`]: one file per sampler of the papers.
//! - [`score`]: the [`score::Score`] trait and analytic scores (Gaussian, isotropic mixture,
//!   full-covariance mixture).
//! - [`noise`]: keyed, reproducible Philox streams and normals from any `rand_core` RNG.
//! - [`error`]: the one error type.
//!
//! Formulas, notation and where the papers disagree: `MATH.md` in the project's shared folder;
//! each module names the paper and equation it implements.
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![allow(
    clippy::neg_cmp_op_on_partial_ord,
    reason = "`!(x < bound)` is deliberate: a NaN must fail every bound check"
)]

pub mod error;
pub mod ncsnv2;
pub mod noise;
pub mod params;
pub mod plan;
pub mod real;
pub mod samplers;
pub mod schedule;
pub mod score;

pub use error::{Error, Param, Quantity};
pub use params::{CasStep, EtaRule, LangevinStep, StepConvention};
pub use plan::{Batch, BatchScore, Plan, Step};
pub use real::Real;
pub use schedule::{Borrowed, Geometric, GeometricOrSingle, Growth, Ratio, Schedule, Table};
pub use score::Score;
