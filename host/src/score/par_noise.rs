//! The core's keyed noise, fast: f32 rows through the core's SIMD-shaped lanes
//! ([`anneal_core::noise::lanes`]) compiled for the widest vector unit this CPU has (detected at
//! run time), and large batches split into rows across threads (rayon). Each row is bit for bit
//! what `Keyed::normals` gives for that sample, so samples depend on neither threads nor CPU.

use anneal_core::Real;
use anneal_core::noise::{Keyed, Noise, Stream, lanes};
use rayon::prelude::*;

/// Below this many values a batch is drawn on the calling thread.
const PARALLEL_FROM: usize = 1 << 14;

/// [`Keyed`] with vectorised f32 normals and parallel rows.
#[derive(Debug, Clone, Copy)]
pub struct ParKeyed(pub Keyed);

/// f32 normal rows by [`lanes::normals_rows`] with the best instruction set of this CPU.
pub fn normals_rows_f32(seed: u64, first: u64, stream: Stream, dim: usize, out: &mut [f32]) {
    #[inline(always)]
    fn rows(seed: u64, first: u64, stream: Stream, dim: usize, out: &mut [f32]) {
        lanes::normals_rows(seed, first, stream, dim, out, f32::sqrt);
    }
    crate::score::simd::dispatch!(
        rows,
        (seed: u64, first: u64, stream: Stream, dim: usize, out: &mut [f32]) -> ()
    )
}

impl Noise for ParKeyed {
    fn normals<F: Real>(&mut self, sample: u64, stream: Stream, out: &mut [F]) {
        let dim = out.len();
        self.normals_rows(sample, stream, dim, out);
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
        let seed = self.0.seed;
        let rows_of = |first: u64, chunk: &mut [F]| match F::as_f32_mut(chunk) {
            Some(c) => normals_rows_f32(seed, first, stream, dim, c),
            None => Keyed::new(seed).normals_rows(first, stream, dim, chunk),
        };
        if out.len() < PARALLEL_FROM {
            return rows_of(first_sample, out);
        }
        let rows = (out.len() / dim).div_ceil(rayon::current_num_threads() * 4).max(1);
        out.par_chunks_mut(rows * dim).enumerate().for_each(|(i, chunk)| {
            rows_of(first_sample + (i * rows) as u64, chunk);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The dispatched path (AVX-512 or AVX2 on x86-64 where present), serial and split across
    /// threads, gives the scalar stream's bits, in f32 and f64.
    #[test]
    fn par_keyed_equals_the_scalar_stream() {
        for (dim, rows) in [(2usize, 5000usize), (3, 77), (64, 300), (3072, 7)] {
            let mut want = vec![0.0f32; dim * rows];
            let mut got = vec![1.0f32; dim * rows];
            Keyed::new(3).normals_rows(40, Stream::Step(9), dim, &mut want);
            ParKeyed(Keyed::new(3)).normals_rows(40, Stream::Step(9), dim, &mut got);
            assert!(want.iter().zip(&got).all(|(a, b)| a.to_bits() == b.to_bits()), "dim {dim}");
            let mut want = vec![0.0f64; dim * rows];
            let mut got = vec![1.0f64; dim * rows];
            Keyed::new(3).normals_rows(40, Stream::Init, dim, &mut want);
            ParKeyed(Keyed::new(3)).normals_rows(40, Stream::Init, dim, &mut got);
            assert!(want.iter().zip(&got).all(|(a, b)| a.to_bits() == b.to_bits()), "dim {dim}");
        }
    }
}
