//! Standard normal noise: keyed, reproducible streams, and normals from any `rand_core` RNG.
//!
//! # The keyed stream (what the GPU backend reproduces bit for bit)
//! Sample `j`'s noise at step `k` must not depend on the batch size, the thread count, the order or
//! the shard, so it is a pure function of (seed, j, stream, k, element). The integer part is
//! **Philox4x32-10** (Salmon, Moraes, Dror & Shaw 2011, "Parallel random numbers: as easy as 1, 2,
//! 3"), a counter-based generator: every block of four 32-bit words is computed independently,
//! which is what a GPU thread needs. Exactly:
//!
//! - key `(k0, k1) = (seed as u32, (seed >> 32) as u32)`;
//! - counter `(c0, c1, c2, c3) = (block, index, j as u32, ((j >> 32) as u32 & 0x00FF_FFFF) | tag << 24)`
//!   where `block` = element / 4, `index` = the step (or level) number, `tag` = the stream kind
//!   ([`Stream`]: 0 step noise, 1 initialisation, 2 inpainting level noise, 3 auxiliary
//!   initialisation). Sample indices are below 2^56;
//! - ten rounds of: `(hi0, lo0) = 0xD2511F53 · c0`, `(hi1, lo1) = 0xCD9E8D57 · c2` (32×32 → 64-bit
//!   products), `c = (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0)`; between rounds
//!   `k0 += 0x9E3779B9`, `k1 += 0xBB67AE85` (wrapping). The output is the final `c`.
//!
//! Word `j` of block `b` gives element `4b + j` by the inverse normal CDF ([`Real::normal`]):
//! `k = w >> 9` (23 bits), `p = (2k + 1)·2⁻²⁴` (exact in f32, symmetric about ½), and in f32
//! Wichura's AS 241 PPND7 (a rational function of `q = p − ½` for |q| ≤ 0.425, else of
//! `√(−ln min(p, 1 − p))`; accurate to ~1e-7); in f64 the same start refined by two Newton steps on
//! `Φ(z) = min(p, 1 − p)` (erfc), so the f64 reference sees the same noise as the f32 path up to
//! PPND7's error. Host and microcontroller run the same libm code and agree bit for bit. The tails
//! are cut at Φ⁻¹(2⁻²⁴) ≈ ±5.29 (probability beyond: 1.2e-7 per draw). Uniforms:
//! `(w >> 8)·2⁻²⁴`.
//!
//! # Any `rand_core` RNG
//! [`RngNormals`] draws the same inverse-CDF normals from any [`rand_core::Rng`], sequentially
//! (default: `rand_xoshiro::Xoshiro256PlusPlus`). It ignores sample and stream, so its samples
//! depend on the order in which they are drawn; use [`Keyed`] wherever reproducibility across
//! batches matters.

pub mod lanes;

use rand_core::Rng;
use rand_xoshiro::Xoshiro256PlusPlus;

use crate::real::Real;

const M0: u32 = 0xD251_1F53;
const M1: u32 = 0xCD9E_8D57;
const W0: u32 = 0x9E37_79B9;
const W1: u32 = 0xBB67_AE85;

/// Philox4x32-10 of `counter` under `key`.
#[inline]
pub fn philox4x32_10(counter: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let [mut c0, mut c1, mut c2, mut c3] = counter;
    let [mut k0, mut k1] = key;
    for round in 0..10 {
        if round > 0 {
            k0 = k0.wrapping_add(W0);
            k1 = k1.wrapping_add(W1);
        }
        let p0 = (M0 as u64) * (c0 as u64);
        let p1 = (M1 as u64) * (c2 as u64);
        let (hi0, lo0) = ((p0 >> 32) as u32, p0 as u32);
        let (hi1, lo1) = ((p1 >> 32) as u32, p1 as u32);
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
    }
    [c0, c1, c2, c3]
}

/// Which noise of a sample a draw is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Stream {
    /// The fresh noise ξ of plan step `k` (0-based).
    Step(u32),
    /// The initial state x_0.
    Init,
    /// Inpainting's noise z̃ for level `i` (0-based), drawn once per level.
    InpaintLevel(u32),
    /// The initial auxiliary state (momentum, or BAOAB-limit's previous noise).
    AuxInit,
    /// The mixture component a start drawn near the data is placed at (`--init data`).
    InitComponent,
    /// The metrics' exact reference samples: the component of reference sample j.
    ReferenceComponent,
    /// The metrics' exact reference samples: the noise of reference sample j.
    ReferenceNoise,
    /// The metrics' random projection directions (sliced W2): direction l.
    Projection,
}

impl Stream {
    /// The stream's index (the step k, the inpainting level i, else 0) and its tag (0 step
    /// noise, 1 initialisation, 2 inpainting level noise, 3 the auxiliary state's start, 4 a
    /// start's component, 5–7 the metrics' reference components, reference noise and
    /// projections), the two words of the counter that name it: one tag per purpose, so that no
    /// two purposes read the same Philox word. The GPU kernels use the same tags for the first
    /// four (`STREAM_TAG_*` in `gpu/kernels/common.cu`, checked against these by the emulation
    /// tests).
    #[inline]
    pub const fn index_and_tag(self) -> (u32, u32) {
        match self {
            Stream::Step(k) => (k, 0),
            Stream::Init => (0, 1),
            Stream::InpaintLevel(i) => (i, 2),
            Stream::AuxInit => (0, 3),
            Stream::InitComponent => (0, 4),
            Stream::ReferenceComponent => (0, 5),
            Stream::ReferenceNoise => (0, 6),
            Stream::Projection => (0, 7),
        }
    }
}

/// The Philox counter of block `block` of sample `sample`'s `stream` (see the module docs).
#[inline]
pub fn counter(sample: u64, stream: Stream, block: u32) -> [u32; 4] {
    let (index, tag) = stream.index_and_tag();
    [block, index, sample as u32, ((sample >> 32) as u32 & 0x00FF_FFFF) | (tag << 24)]
}

/// The Philox key of a seed.
#[inline]
pub fn key(seed: u64) -> [u32; 2] {
    [seed as u32, (seed >> 32) as u32]
}

/// A source of standard normal (and uniform) noise for the executor.
pub trait Noise {
    /// Fills `out` with standard normals for `sample`'s `stream`.
    fn normals<F: Real>(&mut self, sample: u64, stream: Stream, out: &mut [F]);
    /// Fills `out` with uniforms in [0, 1) for `sample`'s `stream`.
    fn uniforms<F: Real>(&mut self, sample: u64, stream: Stream, out: &mut [F]);
    /// Fills the rows of `out` (`dim` values each) with the normals of samples `first_sample`,
    /// `first_sample + 1`, …, in that order. The default draws row by row; a source may do the
    /// rows in parallel (the host does) as long as each row is what [`Noise::normals`] gives.
    fn normals_rows<F: Real>(
        &mut self,
        first_sample: u64,
        stream: Stream,
        dim: usize,
        out: &mut [F],
    ) {
        let Some(dim) = core::num::NonZeroUsize::new(dim) else {
            return;
        };
        for (b, row) in out.chunks_exact_mut(dim.get()).enumerate() {
            self.normals(first_sample + b as u64, stream, row);
        }
    }
}

/// The keyed, counter-based stream of the module docs: a pure function of its arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Keyed {
    /// The run's seed.
    pub seed: u64,
}

impl Keyed {
    /// The stream for `seed`.
    pub fn new(seed: u64) -> Self {
        Keyed { seed }
    }
}

impl Noise for Keyed {
    fn normals<F: Real>(&mut self, sample: u64, stream: Stream, out: &mut [F]) {
        let key = key(self.seed);
        for (block, chunk) in out.chunks_mut(4).enumerate() {
            let words = philox4x32_10(counter(sample, stream, block as u32), key);
            for (o, w) in chunk.iter_mut().zip(words) {
                *o = F::normal(w);
            }
        }
    }

    fn uniforms<F: Real>(&mut self, sample: u64, stream: Stream, out: &mut [F]) {
        let key = key(self.seed);
        for (block, chunk) in out.chunks_mut(4).enumerate() {
            let words = philox4x32_10(counter(sample, stream, block as u32), key);
            for (o, w) in chunk.iter_mut().zip(words) {
                *o = F::uniform(w);
            }
        }
    }
}

/// Normals from any `rand_core` RNG, drawn in sequence (see the module docs).
#[derive(Debug, Clone)]
pub struct RngNormals<R = Xoshiro256PlusPlus> {
    rng: R,
}

impl<R: Rng> RngNormals<R> {
    /// Wraps `rng`.
    pub fn new(rng: R) -> Self {
        RngNormals { rng }
    }

    /// The wrapped RNG.
    pub fn into_inner(self) -> R {
        self.rng
    }
}

impl RngNormals<Xoshiro256PlusPlus> {
    /// Xoshiro256++ seeded from a `u64` (by SplitMix64, `SeedableRng::seed_from_u64`).
    pub fn from_seed_u64(seed: u64) -> Self {
        use rand_core::SeedableRng;
        RngNormals { rng: Xoshiro256PlusPlus::seed_from_u64(seed) }
    }
}

#[cfg(feature = "defmt")]
impl<R> defmt::Format for RngNormals<R> {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "RngNormals");
    }
}

impl<R: Rng> Noise for RngNormals<R> {
    fn normals<F: Real>(&mut self, _sample: u64, _stream: Stream, out: &mut [F]) {
        for o in out.iter_mut() {
            *o = F::normal(self.rng.next_u32());
        }
    }

    fn uniforms<F: Real>(&mut self, _sample: u64, _stream: Stream, out: &mut [F]) {
        for o in out.iter_mut() {
            *o = F::uniform(self.rng.next_u32());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Random123's published known-answer vectors for Philox4x32-10.
    #[test]
    fn philox_known_answers() {
        assert_eq!(philox4x32_10([0; 4], [0; 2]), [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]);
        assert_eq!(
            philox4x32_10([u32::MAX; 4], [u32::MAX; 2]),
            [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]
        );
        assert_eq!(
            philox4x32_10(
                [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
                [0xa4093822, 0x299f31d0]
            ),
            [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]
        );
    }
}
