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
//!
//! From a schedule to samples — NCSN's toy mixture 1/5 N((−5, −5), I) + 4/5 N((5, 5), I), CAS with
//! εc = 2 over 100 levels and the final denoising step, one sample on the stack:
//!
//! ```
//! use anneal_core::noise::Keyed;
//! use anneal_core::plan::{self, PerSample, Single};
//! use anneal_core::samplers::cas::Cas;
//! use anneal_core::score::{IsotropicMixture, Taus};
//! use anneal_core::{EtaRule, Geometric, Plan};
//!
//! let means = [-5.0f32, -5.0, 5.0, 5.0];
//! let mix = IsotropicMixture::new(&means, 2, Some(&[0.2, 0.8]), Taus::Shared(1.0))?;
//! // σ_1 = 14.2 (Technique 1: the largest distance between two data points) down to σ_N = 0.01.
//! let schedule = Geometric::new(14.2, 0.01, 100)?;
//! let cas = Cas::new(&schedule, EtaRule::eps_c(2.0)?)?.denoised()?;
//! assert_eq!(cas.len(), 100); // 99 transitions, then x ← x + σ_N² s(x, σ_N)
//!
//! let mut noise = Keyed::new(7); // sample j's noise is a pure function of (seed, j, step)
//! let mut x = Single::<f32, 2>::new();
//! plan::init_normal(&mut noise, 0, 2, 14.2, &mut x.x)?;
//! plan::run(&cas, &mut PerSample(&mix), &mut noise, x.batch(0), None, &mut ())?;
//! // The sample ends in one of the two modes.
//! assert!(x.x.iter().all(|v| (v.abs() - 5.0).abs() < 4.0), "{:?}", x.x);
//! # Ok::<(), anneal_core::Error>(())
//! ```
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![allow(
    clippy::neg_cmp_op_on_partial_ord,
    reason = "`!(x < bound)` is deliberate: a NaN must fail every bound check"
)]

pub mod error;
pub mod foresight;
pub mod ncsnv2;
pub mod noise;
pub mod params;
pub mod plan;
pub mod real;
pub mod samplers;
pub mod schedule;
pub mod score;

pub use error::{Error, Num, Param, Quantity};
pub use params::{CasStep, EtaRule, LangevinStep, StepConvention};
pub use plan::{Batch, BatchScore, Plan, Step};
pub use real::Real;
pub use schedule::{Borrowed, Geometric, GeometricOrSingle, Growth, Ratio, Schedule, Table};
pub use score::Score;
