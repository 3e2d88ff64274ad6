//! The keyed stream ([`super::Keyed`]) for f32, [`LANES`] Philox blocks at a time and PPND7
//! without branches, so that a compiler can map the lanes onto SIMD registers. Every value is
//! bit for bit what `Keyed`'s [`super::Noise::normals`] gives (the integer part is exact, and each float
//! operation is the same IEEE operation in the same order; `tests::ppnd7_lanes_equal_scalar_for_every_word`
//! checks all 2²³ inputs). It computes both PPND7 branches for every value, so it pays off only
//! with SIMD: the microcontroller keeps the scalar path.
//!
//! The functions are `#[inline(always)]`: a caller compiles them inside a function with the
//! target features it has detected (the host does: `host/src/score/par_noise.rs`).

use super::{M0, M1, Stream, W0, W1, counter, key};
use crate::real::{ppnd7_central, ppnd7_lower, ppnd7_q, ppnd7_tail_far, ppnd7_tail_near};

/// Philox blocks per batch (16 u32 lanes: one AVX-512 register, two AVX2 ones).
pub const LANES: usize = 16;

/// Philox4x32-10 of `LANES` counters at once, as structure of arrays: `c[i][l]` is word `i` of
/// lane `l`; the result replaces the counters.
#[inline(always)]
pub fn philox_lanes(c: &mut [[u32; LANES]; 4], key: [u32; 2]) {
    let [mut k0, mut k1] = key;
    for round in 0..10 {
        if round > 0 {
            k0 = k0.wrapping_add(W0);
            k1 = k1.wrapping_add(W1);
        }
        let [c0, c1, c2, c3] = *c;
        for l in 0..LANES {
            let p0 = (M0 as u64) * (c0[l] as u64);
            let p1 = (M1 as u64) * (c2[l] as u64);
            c[0][l] = (p1 >> 32) as u32 ^ c1[l] ^ k0;
            c[1][l] = p1 as u32;
            c[2][l] = (p0 >> 32) as u32 ^ c3[l] ^ k1;
            c[3][l] = p0 as u32;
        }
    }
}

/// ln x for a positive normal f32 other than 1, bit for bit as `libm::logf` (the FreeBSD msun
/// algorithm: x = 2ᵏ(1 + f) with 1 + f in [√2/2, √2), s = f/(2 + f),
/// ln(1 + f) = f − f²/2 + s(f²/2 + R(s²)) with R a degree-4 polynomial, plus k ln 2 in two parts),
/// without the special cases (zero, negative, subnormal, ∞, NaN, 1) that PPND7's arguments
/// never reach.
#[allow(clippy::excessive_precision, reason = "the constants as libm has them")]
#[inline(always)]
fn ln_normal(x: f32) -> f32 {
    const LN2_HI: f32 = 6.9313812256e-01;
    const LN2_LO: f32 = 9.0580006145e-06;
    const LG1: f32 = 0.66666662693;
    const LG2: f32 = 0.40000972152;
    const LG3: f32 = 0.28498786688;
    const LG4: f32 = 0.24279078841;
    let ix = x.to_bits().wrapping_add(0x3f80_0000 - 0x3f35_04f3);
    let k = (ix >> 23) as i32 - 0x7f;
    let f = f32::from_bits((ix & 0x007f_ffff) + 0x3f35_04f3) - 1.0;
    let s = f / (2.0 + f);
    let z = s * s;
    let w = z * z;
    let r = z * (LG1 + w * LG3) + w * (LG2 + w * LG4);
    let hfsq = 0.5 * f * f;
    let dk = k as f32;
    s * (hfsq + r) + dk * LN2_LO - hfsq + f + dk * LN2_HI
}

/// PPND7 of `LANES` words, both branches computed and one selected per lane. `sqrt` must be the
/// correctly rounded square root (IEEE 754's): `libm::sqrtf`, or with `std`, `f32::sqrt`, which
/// unlike libm's inline assembly on x86-64 vectorises.
#[inline(always)]
pub fn ppnd7_lanes(w: &[u32; LANES], out: &mut [f32; LANES], sqrt: impl Fn(f32) -> f32) {
    for l in 0..LANES {
        let (k, q) = ppnd7_q(w[l]);
        let central = ppnd7_central(q);
        let r = sqrt(-ln_normal(ppnd7_lower(k)));
        let near = ppnd7_tail_near(r);
        let far = ppnd7_tail_far(r);
        let tail = if r <= 5.0 { near } else { far };
        let tail = if q < 0.0 { -tail } else { tail };
        out[l] = if q.abs() <= 0.425 { central } else { tail };
    }
}

/// Fills the rows of `out` (`dim` values each) with the f32 normals of samples `first_sample`,
/// `first_sample + 1`, … of `stream` under `seed`: the same values as
/// [`super::Noise::normals_rows`] of [`super::Keyed`]. `sqrt` as for [`ppnd7_lanes`].
#[inline(always)]
pub fn normals_rows(
    seed: u64,
    first_sample: u64,
    stream: Stream,
    dim: usize,
    out: &mut [f32],
    sqrt: impl Fn(f32) -> f32 + Copy,
) {
    if dim == 0 {
        return;
    }
    let key = key(seed);
    let blocks_per_row = dim.div_ceil(4);
    let rows = out.len() / dim;
    let total = rows * blocks_per_row;
    // The used words of consecutive (row, block) pairs, in that order, are the consecutive values
    // of `out`; a row's last block uses `last_words` of its four.
    let last_words = dim - 4 * (blocks_per_row - 1);
    let out = out.get_mut(..rows * dim).unwrap_or_default();
    // Words waiting for PPND7: fewer than LANES left over, plus one batch's at most 4·LANES.
    let mut words = [0u32; 5 * LANES];
    let mut pending = 0usize;
    let mut at = 0usize;
    let mut z = [0.0f32; LANES];
    let mut c = [[0u32; LANES]; 4];
    // (row, block) of the batch's first pair.
    let (mut row, mut block) = (0usize, 0usize);
    let mut next = 0usize;
    while next < total {
        let n = (total - next).min(LANES);
        let (mut r, mut b) = (row, block);
        for l in 0..LANES {
            // Lanes past the end repeat the last pair; their words are not used.
            let ctr = counter(first_sample + r as u64, stream, b as u32);
            for (cj, v) in c.iter_mut().zip(ctr) {
                cj[l] = v;
            }
            if l + 1 < n {
                b += 1;
                if b == blocks_per_row {
                    (r, b) = (r + 1, 0);
                }
            }
        }
        philox_lanes(&mut c, key);
        let [c0, c1, c2, c3] = &c;
        for (((&w0, &w1), &w2), &w3) in c0.iter().zip(c1).zip(c2).zip(c3).take(n) {
            let used = if block + 1 == blocks_per_row { last_words } else { 4 };
            if let Some(slot) = words.get_mut(pending..pending + 4) {
                slot.copy_from_slice(&[w0, w1, w2, w3]);
            }
            pending += used;
            block += 1;
            if block == blocks_per_row {
                (row, block) = (row + 1, 0);
            }
        }
        let full = pending / LANES;
        for g in words.chunks_exact(LANES).take(full) {
            if let (Ok(g), Some(o)) = (g.try_into(), out.get_mut(at..at + LANES)) {
                ppnd7_lanes(g, &mut z, sqrt);
                o.copy_from_slice(&z);
            }
            at += LANES;
        }
        words.copy_within(full * LANES..pending, 0);
        pending -= full * LANES;
        next += n;
    }
    if pending > 0 {
        // The words past `pending` are stale; exactly `pending` values of `out` are left.
        if let (Some(w), Some(o)) = (words.first_chunk::<LANES>(), out.get_mut(at..)) {
            ppnd7_lanes(w, &mut z, sqrt);
            o.iter_mut().zip(z).for_each(|(d, v)| *d = v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::noise::{Keyed, Noise};
    use crate::real::Real;

    /// Every one of the 2²³ inputs PPND7 distinguishes (k = w >> 9), with varying ignored low
    /// bits: the lanes give the scalar path's bits (so the msun logarithm above is libm's, too).
    #[test]
    fn ppnd7_lanes_equal_scalar_for_every_word() {
        let mut w = [0u32; LANES];
        let mut z = [0.0f32; LANES];
        let mut mismatches = 0u32;
        for k0 in (0u32..1 << 23).step_by(LANES) {
            for (l, wl) in w.iter_mut().enumerate() {
                let k = k0 + l as u32;
                *wl = (k << 9) | (k.wrapping_mul(0x9E37_79B9) >> 23);
            }
            ppnd7_lanes(&w, &mut z, libm::sqrtf);
            for (&wl, &zl) in w.iter().zip(&z) {
                if zl.to_bits() != f32::normal(wl).to_bits() {
                    mismatches += 1;
                }
            }
        }
        assert_eq!(mismatches, 0);
    }

    /// Rows of every width from 1 to 9 and a few wide ones, row counts that do and do not fill
    /// the lanes, sample indices past 2³², all streams (dim 3072 with up to 1 row + a half): the scalar stream's values exactly, and
    /// a trailing partial row left untouched (as the scalar default does).
    #[test]
    fn rows_equal_the_scalar_stream() {
        const BUF: usize = 8192;
        let streams = [Stream::Step(7), Stream::Init, Stream::InpaintLevel(3), Stream::AuxInit];
        for dim in (1..=9).chain([15, 16, 17, 64, 3072]) {
            for rows in [1usize, 3, 16, 37] {
                let len = rows * dim + dim / 2;
                if len > BUF {
                    continue;
                }
                for (s, &stream) in streams.iter().enumerate() {
                    let first = if s % 2 == 0 { 5 } else { (1 << 33) + 11 };
                    let (mut want, mut got) = ([-7.0f32; BUF], [-7.0f32; BUF]);
                    let (want, got) = (&mut want[..len], &mut got[..len]);
                    Keyed::new(99).normals_rows(first, stream, dim, want);
                    normals_rows(99, first, stream, dim, got, libm::sqrtf);
                    let same = want.iter().zip(got.iter()).all(|(a, b)| a.to_bits() == b.to_bits());
                    assert!(same, "dim {dim}, rows {rows}, {stream:?}");
                }
            }
        }
    }
}
