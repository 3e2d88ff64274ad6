//! What a run reports: its metrics ([`metrics`]), its pictures and charts ([`plot`]) and its
//! progress bar ([`progress`]).

pub mod frechet;
pub mod lanes;
pub mod metrics;
pub mod nearest;
pub mod plot;
pub mod progress;

use crate::io::data::Dataset;

/// What a run's samples are compared with: the ground-truth mixture (its means and weights), the
/// components' τ and the schedule's σ_N.
#[derive(Debug, Clone, Copy)]
pub struct Truth<'a> {
    /// The data: one component per point.
    pub data: &'a Dataset,
    /// τ.
    pub tau: f64,
    /// σ_N.
    pub sigma_min: f64,
}
