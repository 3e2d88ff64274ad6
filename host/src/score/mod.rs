//! Score sources ([`source`]): the exact mixture score on the CPU — the batched GEMM score over
//! means packed once per run ([`batch_score`], [`gemm`]) with its run-time SIMD dispatch
//! ([`simd`]) — and trained networks from ONNX files ([`network`]); and the keyed noise in
//! parallel ([`par_noise`]).

pub mod batch_score;
pub mod gemm;
pub mod gram;
pub mod network;
pub mod par_noise;
pub mod simd;
pub mod source;
