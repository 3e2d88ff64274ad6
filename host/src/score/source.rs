//! Where scores come from. A [`ScoreSource`] hands each worker thread its own [`BatchScore`]
//! (with its own scratch buffers); the executors and commands see only this trait.
//!
//! Two sources exist: the closed-form [`MixtureSource`] (the exact score of the data smoothed by
//! τ) and a trained [`Network`]. A new source (another runtime, a remote model) implements this
//! trait and gets a variant of `--score`'s loader in [`crate::config`].

use anneal_core::BatchScore;

use super::batch_score::{GemmMixture, Mixture};
use super::network::{Network, NetworkScore};

/// A score function s(x, σ) on batches of f32 rows, shared by the worker threads.
pub trait ScoreSource: Sync {
    /// D.
    fn dim(&self) -> usize;
    /// One line for the output: what computes the score, and where.
    fn describe(&self) -> String;
    /// A scorer for one worker thread.
    fn scorer(&self) -> Box<dyn BatchScore<f32> + Send + '_>;
    /// The network behind the source, if any (for its messages).
    fn network(&self) -> Option<&Network> {
        None
    }
    /// The most scratch memory one scorer holds for batches of `rows` rows (bytes; 0 where it is
    /// small whatever the data): the executor runs fewer batches at once when it is large.
    fn scratch_bytes(&self, _rows: usize) -> usize {
        0
    }
    /// Multiply-adds ×2 of the score's products so far (the mixture's; 0 for a network).
    fn flops_done(&self) -> f64 {
        0.0
    }
}

/// The exact mixture score (GEMM path).
pub struct MixtureSource<'a>(pub Mixture<'a>);

impl ScoreSource for MixtureSource<'_> {
    fn dim(&self) -> usize {
        self.0.dim()
    }
    fn describe(&self) -> String {
        "the exact score of the data smoothed by τ".into()
    }
    fn scorer(&self) -> Box<dyn BatchScore<f32> + Send + '_> {
        Box::new(GemmMixture::new(&self.0))
    }
    fn scratch_bytes(&self, rows: usize) -> usize {
        self.0.scratch_bytes(rows)
    }
    fn flops_done(&self) -> f64 {
        self.0.flops_done()
    }
}

impl ScoreSource for Network {
    fn dim(&self) -> usize {
        Network::dim(self)
    }
    fn describe(&self) -> String {
        Network::describe(self)
    }
    fn scorer(&self) -> Box<dyn BatchScore<f32> + Send + '_> {
        Box::new(NetworkScore(self))
    }
    fn network(&self) -> Option<&Network> {
        Some(self)
    }
}

impl<S: ScoreSource + ?Sized> ScoreSource for &S {
    fn dim(&self) -> usize {
        (**self).dim()
    }
    fn describe(&self) -> String {
        (**self).describe()
    }
    fn scorer(&self) -> Box<dyn BatchScore<f32> + Send + '_> {
        (**self).scorer()
    }
    fn network(&self) -> Option<&Network> {
        (**self).network()
    }
    fn scratch_bytes(&self, rows: usize) -> usize {
        (**self).scratch_bytes(rows)
    }
    fn flops_done(&self) -> f64 {
        (**self).flops_done()
    }
}
