//! # anneal-gpu
//!
//! CUDA execution of anneal's sampler plans through `cudarc`: mixture scores by cuBLAS and one
//! fused kernel per plan step. **Not built yet** — this crate is a placeholder so that the
//! workspace has its final shape; the work is tracked as its own issue. It holds no code that
//! touches a GPU, and it depends on nothing but the core.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

/// The version of the core whose plans this backend executes.
pub const CORE_VERSION: &str = env!("CARGO_PKG_VERSION");
