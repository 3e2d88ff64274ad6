//! How the GEMM path runs: the techniques measured on an H200 (BENCHMARKS.md) and where each
//! pays — f64 logits by DGEMM, the sparse second product, CUDA-graph chunk replay.

/// Whether a GEMM-path technique is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// Where it was measured to pay (see [`Options`]).
    Auto,
    /// Always (tests and benchmarks compare the variants).
    Always,
    /// Never.
    Never,
}

/// How the GEMM path runs. [`Options::for_capability`] gives the defaults. Results agree within
/// float rounding whatever the options (the device tests run every combination).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Capture a chunk of steps as a CUDA graph and replay it for every chunk. Auto: when a
    /// step's work is small (B·K·D ≤ [`SMALL_WORK`], launches then matter) and the plan has at
    /// least [`GRAPH_MIN_CHUNKS`] chunks — the capture costs about 2 ms, more than it saves on a
    /// 100-step run (BENCHMARKS.md).
    pub graphs: Use,
    /// G = Y Mᵀ by DGEMM on the f32 values widened to f64: logits whose error bound is 2⁻²⁹ times
    /// the SGEMM's, so that the f64 refinement (which recomputes every logit within 36 nats of a
    /// row's maximum — all of them at large σ) practically never runs. Worth it where FP64
    /// tensor cores make DGEMM about as fast as SGEMM (compute capability 8.0, 9.0, 10.0).
    pub f64_logits: bool,
    /// S' = R' M from the few non-zero responsibilities instead of the second GEMM, at steps
    /// where every row has at most [`SPARSE_MAX`] of them (small σ). It reads a counter back
    /// every step, so it never runs inside a captured graph. Auto: when a step's work is large
    /// (B·K·D > [`SMALL_WORK`]); on small steps the read costs more than the GEMM it saves.
    pub sparse: Use,
}

impl Options {
    /// The defaults for a device of compute capability `(major, minor)`: graphs and sparse
    /// products where they pay; f64 logits where FP64 runs at the FP32 rate (A100, H100/H200,
    /// B200).
    pub fn for_capability(capability: (i32, i32)) -> Options {
        let fast_fp64 = matches!(capability, (8, 0) | (9, 0) | (10, 0));
        Options { graphs: Use::Auto, f64_logits: fast_fp64, sparse: Use::Auto }
    }

    /// Every combination with the techniques forced on or off (for tests and benchmarks).
    pub fn combinations() -> Vec<Options> {
        let mut v = Vec::new();
        for graphs in [Use::Never, Use::Always] {
            for f64_logits in [false, true] {
                for sparse in [Use::Never, Use::Always] {
                    v.push(Options { graphs, f64_logits, sparse });
                }
            }
        }
        v
    }
}

/// Largest B·K·D of a "small" step (about where its kernels take as long as launching them).
pub const SMALL_WORK: f64 = (1u64 << 28) as f64;
/// Fewest chunks of [`crate::GEMM_CHUNK`] steps for which graphs are captured under [`Use::Auto`].
pub const GRAPH_MIN_CHUNKS: usize = 8;
/// Most non-zero responsibilities of a row that the sparse product handles (the kernels'
/// `SPARSE_MAX`).
pub const SPARSE_MAX: usize = 16;
/// Most components whose logits the softmax keeps in shared memory (the kernels'
/// `SHARED_LOGITS_MAX`).
pub(crate) const SHARED_LOGITS_MAX: usize = 4096;
/// 2⁻⁵³/2⁻²⁴: the f64 logit error bound over the f32 one.
pub(crate) const F64_OVER_F32_EPS: f64 = 1.0 / (1u64 << 29) as f64;
