//! The core's keyed noise with its rows drawn in parallel (rayon). Each row is exactly what
//! `Keyed::normals` gives for that sample, so samples do not depend on threads.

use anneal_core::Real;
use anneal_core::noise::{Keyed, Noise, Stream};
use rayon::prelude::*;

/// Below this many values a batch is drawn on the calling thread.
const PARALLEL_FROM: usize = 1 << 14;

/// [`Keyed`] with parallel rows.
#[derive(Debug, Clone, Copy)]
pub struct ParKeyed(pub Keyed);

impl Noise for ParKeyed {
    fn normals<F: Real>(&mut self, sample: u64, stream: Stream, out: &mut [F]) {
        self.0.normals(sample, stream, out);
    }

    fn uniforms<F: Real>(&mut self, sample: u64, stream: Stream, out: &mut [F]) {
        self.0.uniforms(sample, stream, out);
    }

    fn normals_rows<F: Real>(
        &mut self,
        first_sample: u64,
        stream: Stream,
        dim: usize,
        out: &mut [F],
    ) {
        if dim == 0 {
            return;
        }
        if out.len() < PARALLEL_FROM {
            return self.0.normals_rows(first_sample, stream, dim, out);
        }
        let keyed = self.0;
        let rows = (out.len() / dim).div_ceil(rayon::current_num_threads() * 4).max(1);
        out.par_chunks_mut(rows * dim).enumerate().for_each(|(i, chunk)| {
            let mut k = keyed;
            k.normals_rows(first_sample + (i * rows) as u64, stream, dim, chunk);
        });
    }
}
