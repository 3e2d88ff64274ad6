//! Running a validated [`crate::config::RunConfig`]: the initial states ([`start`]), on the CPU
//! ([`cpu`]) or on a CUDA device ([`cuda`]). Samples are a pure function of the configuration
//! and the seed: the same whatever the batch size, the threads or (within float rounding) the
//! device.

pub mod cpu;
pub mod cuda;
pub mod start;
