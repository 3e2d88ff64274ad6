//! The keyed stream ([`super::Keyed`]) for f32, [`BATCH`] Philox blocks at a time and PPND7
//! over chunks of words ([`ppnd7_chunk`]: the central branch for every word, the tail branch
//! for the ~15% that need it, gathered), so that a compiler can map the lanes onto SIMD
//! registers. Every value is bit for bit what `Keyed`'s [`super::Noise::normals`] gives (the
//! integer part is exact, and each float operation is the same IEEE operation in the same
//! order; `tests::ppnd7_chunk_equals_scalar_for_every_word` checks all 2²³ inputs). It pays off
//! only with SIMD: the microcontroller keeps the scalar path.
//!
//! The functions are `#[inline(always)]`: a caller compiles them inside a function with the
//! target features it has detected (the host does: `host/src/score/par_noise.rs`).

use super::{M0, M1, Stream, W0, W1, counter, key};
use crate::real::{ppnd7_central_parts, ppnd7_lower, ppnd7_q, ppnd7_tail_near_parts};

/// Philox blocks per batch (16 u32 lanes: one AVX-512 register, two AVX2 ones).
pub const LANES: usize = 16;

/// Philox blocks per call of [`philox_lanes`]: several registers' worth, so that the rounds of
/// independent registers overlap (one register's rounds are a chain of dependent multiplies).
pub const BATCH: usize = 2 * LANES;

/// Philox4x32-10 of [`BATCH`] counters at once, as structure of arrays: `c[i][l]` is word `i`
/// of lane `l`; the result replaces the counters.
///
/// The lanes are taken in pairs, lane 2m in the low and 2m + 1 in the high half of a u64, so that
/// each 32 × 32 → 64-bit product is one multiply of a u64 lane's masked or shifted half (a single
/// `vpmuludq` per eight products on x86-64) and the halves of the products go back into pairs
/// with a shift and a mask: no widening or narrowing of vectors.
#[inline(always)]
pub fn philox_lanes(c: &mut [[u32; BATCH]; 4], key: [u32; 2]) {
    const PAIRS: usize = BATCH / 2;
    const LO: u64 = 0xFFFF_FFFF;
    let mut p = [[0u64; PAIRS]; 4];
    for (pj, cj) in p.iter_mut().zip(c.iter()) {
        for (m, v) in pj.iter_mut().enumerate() {
            *v = cj[2 * m] as u64 | (cj[2 * m + 1] as u64) << 32;
        }
    }
    let [mut k0, mut k1] = key;
    for round in 0..10 {
        if round > 0 {
            k0 = k0.wrapping_add(W0);
            k1 = k1.wrapping_add(W1);
        }
        let (kk0, kk1) = (k0 as u64 * 0x1_0000_0001, k1 as u64 * 0x1_0000_0001);
        let [c0, c1, c2, c3] = p;
        for m in 0..PAIRS {
            // Products of the low (even lane) and the high (odd lane) words.
            let (e0, o0) = ((c0[m] & LO) * M0 as u64, (c0[m] >> 32) * M0 as u64);
            let (e1, o1) = ((c2[m] & LO) * M1 as u64, (c2[m] >> 32) * M1 as u64);
            let (hi0, lo0) = (e0 >> 32 | o0 & !LO, e0 & LO | o0 << 32);
            let (hi1, lo1) = (e1 >> 32 | o1 & !LO, e1 & LO | o1 << 32);
            p[0][m] = hi1 ^ c1[m] ^ kk0;
            p[1][m] = lo1;
            p[2][m] = hi0 ^ c3[m] ^ kk1;
            p[3][m] = lo0;
        }
    }
    for (cj, pj) in c.iter_mut().zip(p.iter()) {
        for (m, &v) in pj.iter().enumerate() {
            cj[2 * m] = v as u32;
            cj[2 * m + 1] = (v >> 32) as u32;
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

/// Words per call of [`ppnd7_chunk`] (its tail lanes are gathered within a chunk).
pub const CHUNK: usize = 64 * LANES;

/// For each byte, the positions of its set bits in increasing order (the rest 0).
const COMPRESS: [[u8; 8]; 256] = {
    let mut t = [[0u8; 8]; 256];
    let mut b = 0;
    while b < 256 {
        let (mut bit, mut n) = (0, 0);
        while bit < 8 {
            if b >> bit & 1 == 1 {
                t[b][n] = bit as u8;
                n += 1;
            }
            bit += 1;
        }
        b += 1;
    }
    t
};

/// For each byte, its number of set bits.
const COMPRESS_LEN: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = (b as u32).count_ones() as u8;
        b += 1;
    }
    t
};

/// PPND7 of up to [`CHUNK`] words into `out` (`out.len()` values). `sqrt` must be the correctly
/// rounded square root (IEEE 754's): `libm::sqrtf`, or with `std`, `f32::sqrt`, which unlike
/// libm's inline assembly on x86-64 vectorises.
///
/// The same bits as the scalar path, with less work than computing both branches in every lane:
/// - the central branch is computed for every word, `LANES` at a time, and the words of the
///   tail (|q| > 0.425, ~15%) are noted from the lanes' mask; those are then gathered `LANES` at
///   a time for the tail branch (a logarithm, a square root and a division) and scattered back;
/// - PPND7's far tail (r > 5) is never reached: min(p, 1 − p) ≥ 2⁻²⁴, so
///   r = √(−ln min(p, 1 − p)) ≤ √(24 ln 2) ≈ 4.08 and the near tail is the scalar path's choice.
///
/// `tests::ppnd7_chunk_equals_scalar_for_every_word` checks every input.
#[inline(always)]
pub fn ppnd7_chunk(w: &[u32], out: &mut [f32], sqrt: impl Fn(f32) -> f32) {
    let len = out.len().min(w.len()).min(CHUNK);
    let (w, out) = (&w[..len], &mut out[..len]);
    // The central branch ((q·N(r))/D(r) with r = 0.180625 − q²) for every word, and each group
    // of LANES words' tail lanes as a mask; the tail lanes' values are replaced below.
    let central = |wv: &[u32; LANES], ov: &mut [f32; LANES]| {
        let mut mask = 0u32;
        for l in 0..LANES {
            let (_, q) = ppnd7_q(wv[l]);
            let (cn, cd) = ppnd7_central_parts(q);
            ov[l] = cn / cd;
            mask |= ((q.abs() > 0.425) as u32) << l;
        }
        mask as u16
    };
    let mut masks = [0u16; CHUNK / LANES];
    let mut wc = w.chunks_exact(LANES);
    let mut oc = out.chunks_exact_mut(LANES);
    for ((wv, ov), m) in (&mut wc).zip(&mut oc).zip(masks.iter_mut()) {
        if let (Ok(wv), Ok(ov)) = (wv.try_into(), ov.try_into()) {
            *m = central(wv, ov);
        }
    }
    let (wr, or) = (wc.remainder(), oc.into_remainder());
    if !wr.is_empty() {
        let mut wv = [wr[0]; LANES];
        wv[..wr.len()].copy_from_slice(wr);
        let mut ov = [0.0f32; LANES];
        let m = central(&wv, &mut ov) & ((1u32 << wr.len()) - 1) as u16;
        or.copy_from_slice(&ov[..wr.len()]);
        if let Some(last) = masks.get_mut(len / LANES) {
            *last = m;
        }
    }
    // The tail words' positions, in order, by a branch-free compress of the masks a byte at a
    // time (a branch per tail word mispredicts, and stalls the central loop if interleaved).
    let mut tails = [0u16; CHUNK + 8];
    let mut n = 0usize;
    for (g, &m) in masks.iter().enumerate().take(len.div_ceil(LANES)) {
        for half in 0..2 {
            let byte = usize::from((m >> (8 * half)) as u8);
            let base = (g * LANES + 8 * half) as u16;
            if let Some(dst) = tails.get_mut(n..n + 8) {
                for (d, &o) in dst.iter_mut().zip(&COMPRESS[byte]) {
                    *d = base + u16::from(o);
                }
            }
            n += usize::from(COMPRESS_LEN[byte]);
        }
    }
    // The tail: √(−ln min(p, 1 − p)) into the near tail's rational, signed by q.
    for group in tails[..n.min(CHUNK)].chunks(LANES) {
        let mut tw = [0u32; LANES];
        for (l, t) in tw.iter_mut().enumerate() {
            // Lanes past the group repeat its first word; their values are not used.
            let at = group.get(l).or(group.first()).map_or(0, |&a| a as usize);
            *t = w.get(at).copied().unwrap_or(0);
        }
        let mut z = [0.0f32; LANES];
        for l in 0..LANES {
            let (k, q) = ppnd7_q(tw[l]);
            let r = sqrt(-ln_normal(ppnd7_lower(k)));
            let (tn, td) = ppnd7_tail_near_parts(r);
            // IEEE division is symmetric in sign: (−n)/d = −(n/d), the scalar path's value.
            z[l] = if q < 0.0 { -tn } else { tn } / td;
        }
        for (&at, &v) in group.iter().zip(&z) {
            if let Some(o) = out.get_mut(at as usize) {
                *o = v;
            }
        }
    }
}

/// The counters of `n` ≤ [`LANES`] consecutive (row, block) pairs from (`row`, `block`) into
/// the lanes of `c` (lanes past `n` repeat the last pair); returns the pair after them.
#[inline(always)]
fn fill_counters(
    c: &mut [[u32; LANES]; 4],
    first_sample: u64,
    stream: Stream,
    blocks_per_row: usize,
    (row, block): (usize, usize),
    n: usize,
) -> (usize, usize) {
    if block + n <= blocks_per_row {
        // All in one row: only the block number differs between the lanes.
        let [_, c1, c2, c3] = counter(first_sample + row as u64, stream, 0);
        for (l, b) in c[0].iter_mut().enumerate() {
            *b = (block + l.min(n - 1)) as u32;
        }
        (c[1], c[2], c[3]) = ([c1; LANES], [c2; LANES], [c3; LANES]);
        let b = block + n;
        return if b == blocks_per_row { (row + 1, 0) } else { (row, b) };
    }
    if blocks_per_row == 1 {
        // One block per row (D ≤ 4): lane l is block 0 of row `row + l`.
        for l in 0..LANES {
            let ctr = counter(first_sample + (row + l.min(n - 1)) as u64, stream, 0);
            for (cj, v) in c.iter_mut().zip(ctr) {
                cj[l] = v;
            }
        }
        return (row + n, 0);
    }
    let (mut r, mut b) = (row, block);
    for l in 0..LANES {
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
    b += 1;
    if b == blocks_per_row { (r + 1, 0) } else { (r, b) }
}

/// The first `W` words of lanes `0..n` of `c` into `dst`, lane by lane.
#[inline(always)]
fn interleave<const W: usize>(dst: &mut [u32], c: &[[u32; BATCH]; 4], n: usize) {
    for (l, d) in dst.chunks_exact_mut(W).take(n).enumerate() {
        for (j, v) in d.iter_mut().enumerate() {
            *v = c[j][l];
        }
    }
}

/// Fills the rows of `out` (`dim` values each) with the f32 normals of samples `first_sample`,
/// `first_sample + 1`, … of `stream` under `seed`: the same values as
/// [`super::Noise::normals_rows`] of [`super::Keyed`]. `sqrt` as for [`ppnd7_chunk`].
///
/// The Philox words are laid out in output order [`CHUNK`] at a time (the used words of
/// consecutive (row, block) pairs are consecutive values of `out`), then turned into normals.
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
    // A row's last block uses `last_words` of its four.
    let last_words = dim - 4 * (blocks_per_row - 1);
    let out = out.get_mut(..rows * dim).unwrap_or_default();
    // Words waiting for PPND7: fewer than CHUNK, plus one batch's at most 4·BATCH.
    let mut words = [0u32; CHUNK + 4 * BATCH];
    let mut pending = 0usize;
    let mut at = 0usize;
    let mut c = [[0u32; BATCH]; 4];
    // (row, block) of the batch's first pair.
    let mut pair = (0usize, 0usize);
    let mut next = 0usize;
    while next < total {
        let n = (total - next).min(BATCH);
        // LANES lanes at a time; lanes past the end repeat the last pair (their words are not
        // used), and groups past the end keep the previous batch's counters.
        let mut after = pair;
        for (g, first) in (0..n).step_by(LANES).enumerate() {
            let mut part = [[0u32; LANES]; 4];
            after = fill_counters(
                &mut part,
                first_sample,
                stream,
                blocks_per_row,
                after,
                (n - first).min(LANES),
            );
            for (cj, pj) in c.iter_mut().zip(&part) {
                if let Some(dst) = cj.get_mut(g * LANES..(g + 1) * LANES) {
                    dst.copy_from_slice(pj);
                }
            }
        }
        philox_lanes(&mut c, key);
        let dst = words.get_mut(pending..).unwrap_or_default();
        if last_words == 4 || blocks_per_row == 1 {
            // Every lane uses the same number of words (all four, or a one-block row's D):
            // lane l's go to W·l … W·l + W − 1 (an interleaving store).
            match last_words {
                1 => interleave::<1>(dst, &c, n),
                2 => interleave::<2>(dst, &c, n),
                3 => interleave::<3>(dst, &c, n),
                _ => interleave::<4>(dst, &c, n),
            }
            pending += last_words * n;
        } else {
            let (mut block, mut used_so_far) = (pair.1, 0usize);
            for l in 0..n {
                let used = if block + 1 == blocks_per_row { last_words } else { 4 };
                for (d, cj) in dst.iter_mut().skip(used_so_far).zip(&c).take(used) {
                    *d = cj[l];
                }
                used_so_far += used;
                block = if block + 1 == blocks_per_row { 0 } else { block + 1 };
            }
            pending += used_so_far;
        }
        pair = after;
        next += n;
        if pending >= CHUNK {
            if let Some(o) = out.get_mut(at..at + CHUNK) {
                ppnd7_chunk(&words, o, sqrt);
            }
            at += CHUNK;
            words.copy_within(CHUNK..pending, 0);
            pending -= CHUNK;
        }
    }
    // Exactly `pending` values of `out` are left.
    if let Some(o) = out.get_mut(at..at + pending) {
        ppnd7_chunk(&words, o, sqrt);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::noise::{Keyed, Noise};
    use crate::real::Real;

    /// Every one of the 2²³ inputs PPND7 distinguishes (k = w >> 9), with varying ignored low
    /// bits: the chunked path gives the scalar path's bits (so the msun logarithm above is
    /// libm's, too).
    #[test]
    fn ppnd7_chunk_equals_scalar_for_every_word() {
        let mut w = [0u32; CHUNK];
        let mut z = [0.0f32; CHUNK];
        let mut mismatches = 0u32;
        for k0 in (0u32..1 << 23).step_by(CHUNK) {
            for (l, wl) in w.iter_mut().enumerate() {
                let k = k0 + l as u32;
                *wl = (k << 9) | (k.wrapping_mul(0x9E37_79B9) >> 23);
            }
            // In two calls, so that every remainder length (fewer than LANES words) is met.
            let len = CHUNK - 1 - (k0 as usize / CHUNK) % LANES;
            ppnd7_chunk(&w[..len], &mut z[..len], libm::sqrtf);
            ppnd7_chunk(&w[len..], &mut z[len..], libm::sqrtf);
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
