//! What a run reports: its metrics ([`metrics`]), its pictures and charts ([`plot`]) and its
//! progress bar ([`progress`]).

pub mod metrics;
pub mod plot;
pub mod progress;
