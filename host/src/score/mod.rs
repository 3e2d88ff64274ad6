//! The mixture score on the CPU: the batched GEMM score over means packed once per run
//! ([`batch_score`], [`gemm`]), its run-time SIMD dispatch ([`simd`]) and the keyed noise in
//! parallel ([`par_noise`]).

pub mod batch_score;
pub mod gemm;
pub mod par_noise;
pub mod simd;
