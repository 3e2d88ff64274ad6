//! Running a validated [`crate::config::RunConfig`]: the initial states ([`start`]), on the CPU
//! ([`cpu`]) or on a CUDA device ([`cuda`]). Samples are a pure function of the configuration
//! and the seed: the same whatever the batch size, the threads or (within float rounding) the
//! device.

pub mod cpu;
pub mod cuda;
pub mod start;

/// The most worker threads a run may ask for (`--threads`): more cannot help on any machine
/// anneal runs on, and spawning them takes longer than the work.
pub const MAX_THREADS: usize = 1024;

/// A pool of `threads` worker threads (0: one per core); a failure to start them is one line.
pub fn pool(threads: usize) -> anyhow::Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| anyhow::anyhow!("starting {threads} worker threads failed: {e}"))
}
