//! # anneal-gpu
//!
//! CUDA execution of anneal's sampler plans through `cudarc`: mixture scores by two cuBLAS
//! products and a row-softmax kernel, and **one fused kernel per plan step** (score finish,
//! update, finiteness checks, the next step's noise and score point) whatever the sampler — the
//! core's coefficients, never re-derived. The logits come from a DGEMM where FP64 runs at the
//! FP32 rate, the second product becomes a gather at steps whose rows are sparse, and long plans
//! of small steps replay a captured CUDA graph ([`Options`]). Small mixtures (toy2d) run a
//! persistent loop instead: one thread per sample through a chunk of steps, one launch per chunk.
//! A score network ([`DeviceNetwork`], run by a runtime outside this crate on the same stream)
//! takes the mixture's place: the same fused step reads its output on the device
//! ([`Device::run_plan_network`]).
//!
//! Everything is loaded at run time (`dynamic-loading`, CUDA 13.0): the crate builds and its
//! non-GPU tests run on a machine without CUDA, and a missing driver, device, NVRTC or cuBLAS is
//! a typed [`Error`], never a panic ([`probe`] checks the libraries first). The kernels
//! (`gpu/kernels/*.cu`) are embedded, include no header, and are compiled by NVRTC once per
//! architecture per process ([`kernels::ptx`]).
//!
//! Noise is the core's keyed stream (Philox4x32-10 and the AS 241 inverse CDF,
//! `anneal_core::noise`): the integer words bit for bit, the normals within float rounding
//! (the device's `logf`/`sqrtf` and FMA contraction). Samples therefore equal the CPU's within
//! float rounding, not bit for bit.
#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

mod device;
mod direct;
mod error;
mod gemm;
pub mod kernels;
mod net;
mod options;
mod run;
pub mod table;
mod timing;

pub use device::{Device, Probe, driver_present, probe};
pub use error::Error;
pub use net::{DeviceNetwork, NetOutput};
pub use options::{GRAPH_MIN_CHUNKS, Options, SMALL_WORK, SPARSE_MAX, Use};
pub use run::{DIRECT_CHUNK, GEMM_CHUNK, Mixture, RunStats, Start};
