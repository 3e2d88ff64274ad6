//! Single-precision products against a constant operand packed once: the mixture's means.
//!
//! Every step multiplies the batch by the same K × D means (twice: `Y Mᵀ`, and `R M` for dense
//! rows). A general GEMM (matrixmultiply, OpenBLAS) re-packs that operand into cache-friendly
//! panels on every call — for the large case (K = 1000, D = 3072: 12 MB) the packing took more
//! time than the arithmetic (`BENCHMARKS.md`), and no well-kept Rust GEMM takes a pre-packed
//! operand. So the means are packed here once per run, into panels of [`NR`] columns, and each
//! product runs a register-blocked kernel over them: [`MR`] rows of A times one panel, in FMA
//! accumulators — explicit AVX-512 or AVX2 + FMA intrinsics as [`crate::score::simd::level`] says, else
//! a portable `f32::mul_add` loop.
//!
//! Every element of C is one fused multiply-add chain over p = 0, 1, …, k − 1 from 0, whatever
//! the block, the thread split or the instruction set (FMA is exactly rounded), so results do
//! not depend on the batch, the threads or the CPU. On an x86-64 without FMA (before 2013) the
//! same code runs through libm's `fmaf`: same results, much slower.

use rayon::prelude::*;

/// Columns per panel.
pub const NR: usize = 32;
/// Rows of A per kernel call.
const MR: usize = 8;

/// The operand B (k × n) of `C = A B`, packed: panel q holds columns q·NR … q·NR + NR − 1 as k
/// rows of NR values (zero past n).
pub struct Packed {
    k: usize,
    n: usize,
    panels: Vec<f32>,
}

impl Packed {
    /// B = Sᵀ for the row-major n × k matrix `s` (`B[p][j] = s[j][p]`): `Y Mᵀ` from the means.
    pub fn transposed(s: &[f32], n: usize, k: usize) -> Self {
        Self::pack(k, n, |p, j| s[j * k + p])
    }

    /// B = S for the row-major k × n matrix `s`: `R M` from the means.
    pub fn plain(s: &[f32], k: usize, n: usize) -> Self {
        Self::pack(k, n, |p, j| s[p * n + j])
    }

    fn pack(k: usize, n: usize, at: impl Fn(usize, usize) -> f32) -> Self {
        let panels_n = n.div_ceil(NR);
        let mut panels = vec![0.0f32; panels_n * k * NR];
        if k == 0 {
            return Packed { k, n, panels };
        }
        for (q, panel) in panels.chunks_exact_mut(k * NR).enumerate() {
            for (p, row) in panel.chunks_exact_mut(NR).enumerate() {
                for (c, v) in row.iter_mut().enumerate() {
                    let j = q * NR + c;
                    if j < n {
                        *v = at(p, j);
                    }
                }
            }
        }
        Packed { k, n, panels }
    }
}

/// A block of `MR` rows of A (packed: p-major, `MR` values per p) times one panel:
/// `acc[i][c] = fma(a[p][i], b[p][c], acc[i][c])` for p = 0, 1, …, from 0. The AVX-512 and AVX2 kernels perform
/// exactly these operations with explicit vector FMAs (LLVM does not keep the portable loop's 128
/// accumulators in registers); the portable loop is the fallback.
fn kernel(ap: &[[f32; MR]], panel: &[[f32; NR]]) -> [[f32; NR]; MR] {
    #[cfg(target_arch = "x86_64")]
    match crate::score::simd::level() {
        // SAFETY: level() found AVX-512F on this CPU.
        crate::score::simd::Level::Avx512 => return unsafe { x86::kernel_avx512(ap, panel) },
        // SAFETY: level() found AVX2 and FMA on this CPU.
        crate::score::simd::Level::Avx2 => return unsafe { x86::kernel_avx2(ap, panel) },
        crate::score::simd::Level::Baseline => {}
    }
    // Portable: passes of 8 columns, so that the 8 × 8 accumulators fit in registers (on
    // aarch64: 16 of NEON's 32; LLVM turns the `mul_add`s into `fmla`).
    let mut out = [[0.0f32; NR]; MR];
    for c0 in (0..NR).step_by(8) {
        let mut acc = [[0.0f32; 8]; MR];
        for (a, b) in ap.iter().zip(panel) {
            let (_, b) = b.split_at(c0);
            for (acc, &av) in acc.iter_mut().zip(a) {
                for (s, &bv) in acc.iter_mut().zip(b) {
                    *s = av.mul_add(bv, *s);
                }
            }
        }
        for (o, acc) in out.iter_mut().zip(&acc) {
            o[c0..c0 + 8].copy_from_slice(acc);
        }
    }
    out
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{MR, NR};

    /// [`super::kernel`] with two 16-lane registers per row (16 accumulators: ten loads per
    /// sixteen FMAs).
    #[target_feature(enable = "avx512f")]
    pub(super) fn kernel_avx512(ap: &[[f32; MR]], panel: &[[f32; NR]]) -> [[f32; NR]; MR] {
        let mut lo = [_mm512_setzero_ps(); MR];
        let mut hi = [_mm512_setzero_ps(); MR];
        for (a, b) in ap.iter().zip(panel) {
            // SAFETY: b is NR = 32 f32s.
            let (bl, bh) =
                unsafe { (_mm512_loadu_ps(b.as_ptr()), _mm512_loadu_ps(b.as_ptr().add(16))) };
            for ((lo, hi), &av) in lo.iter_mut().zip(hi.iter_mut()).zip(a) {
                let av = _mm512_set1_ps(av);
                *lo = _mm512_fmadd_ps(av, bl, *lo);
                *hi = _mm512_fmadd_ps(av, bh, *hi);
            }
        }
        let mut out = [[0.0f32; NR]; MR];
        for ((o, lo), hi) in out.iter_mut().zip(lo).zip(hi) {
            // SAFETY: o is NR = 32 f32s.
            unsafe {
                _mm512_storeu_ps(o.as_mut_ptr(), lo);
                _mm512_storeu_ps(o.as_mut_ptr().add(16), hi);
            }
        }
        out
    }

    /// [`super::kernel`] in four passes of 8 columns (8 accumulators each, so that nothing spills
    /// from AVX2's 16 registers).
    #[target_feature(enable = "avx2,fma")]
    pub(super) fn kernel_avx2(ap: &[[f32; MR]], panel: &[[f32; NR]]) -> [[f32; NR]; MR] {
        let mut out = [[0.0f32; NR]; MR];
        for half in 0..NR / 8 {
            let mut acc = [_mm256_setzero_ps(); MR];
            for (a, b) in ap.iter().zip(panel) {
                // SAFETY: b[8·half..] holds 8 f32s (half < NR/8).
                let bv = unsafe { _mm256_loadu_ps(b.as_ptr().add(8 * half)) };
                for (acc, &av) in acc.iter_mut().zip(a) {
                    *acc = _mm256_fmadd_ps(_mm256_set1_ps(av), bv, *acc);
                }
            }
            for (o, acc) in out.iter_mut().zip(acc) {
                // SAFETY: o[8·half..] holds 8 f32s (half < NR/8).
                unsafe { _mm256_storeu_ps(o.as_mut_ptr().add(8 * half), acc) };
            }
        }
        out
    }
}

/// One thread's share: panels `q0..` times every row block of the packed A into its column
/// pieces of C (`c[i]`: row i's columns from q0·NR on).
fn panels(ap: &[[f32; MR]], q0: usize, b: &Packed, c: &mut [&mut [f32]]) {
    let k = b.k;
    let cols = c.first().map_or(0, |r| r.len());
    let (panels, _) = b.panels.as_chunks::<NR>();
    for (qi, panel) in panels.chunks_exact(k).skip(q0).take(cols.div_ceil(NR)).enumerate() {
        let (c0, c1) = (qi * NR, ((qi + 1) * NR).min(cols));
        for (a, c) in ap.chunks_exact(k).zip(c.chunks_mut(MR)) {
            let acc = kernel(a, panel);
            for (row, acc) in c.iter_mut().zip(&acc) {
                if let Some(row) = row.get_mut(c0..c1) {
                    row.iter_mut().zip(acc).for_each(|(c, &v)| *c = v);
                }
            }
        }
    }
}

/// C (m × n, row-major, leading dimension `ldc`) = A (m × k, row-major, contiguous) · B. Large
/// products split B's panels across rayon's threads (each C element is computed by one thread).
pub fn gemm(m: usize, a: &[f32], b: &Packed, c: &mut [f32], ldc: usize) {
    let (k, n) = (b.k, b.n);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        c.chunks_mut(ldc).take(m).for_each(|row| row[..n].fill(0.0));
        return;
    }
    let panels_n = n.div_ceil(NR);
    let threads =
        if m * k * n >= 1 << 22 { rayon::current_num_threads().min(panels_n).max(1) } else { 1 };
    // Whole panels per thread; each thread gets the column piece of every row of C.
    let per = panels_n.div_ceil(threads);
    let mut pieces: Vec<Vec<&mut [f32]>> = (0..threads).map(|_| Vec::with_capacity(m)).collect();
    for row in c.chunks_mut(ldc).take(m) {
        let mut rest = &mut row[..n];
        for piece in pieces.iter_mut() {
            let (head, tail) = rest.split_at_mut((per * NR).min(rest.len()));
            piece.push(head);
            rest = tail;
        }
    }
    // A packed in blocks of MR rows, p-major (rows past m repeat the last row).
    let blocks = m.div_ceil(MR);
    let mut ap = vec![[0.0f32; MR]; blocks * k];
    for (blk, chunk) in ap.chunks_exact_mut(k).enumerate() {
        for (i, lane) in (0..MR).map(|i| (blk * MR + i).min(m - 1)).enumerate() {
            let row = &a[lane * k..(lane + 1) * k];
            for (dst, &v) in chunk.iter_mut().zip(row) {
                dst[i] = v;
            }
        }
    }
    let run = |t: usize, piece: &mut Vec<&mut [f32]>| panels(&ap, t * per, b, piece);
    if threads == 1 {
        run(0, &mut pieces[0]);
    } else {
        pieces.par_iter_mut().enumerate().for_each(|(t, piece)| run(t, piece));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against an f64 reference, for shapes with partial row blocks and partial panels, both
    /// packings, serial and threaded: each element within its f32 bound k·2⁻²⁴·Σ|a||b| (the
    /// error of any order of k f32 roundings).
    #[test]
    fn products_match_f64() {
        for &(m, k, n) in &[(1, 1, 1), (7, 5, 17), (9, 64, 33), (64, 300, 100), (130, 64, 1797)] {
            let a: Vec<f32> =
                (0..m * k).map(|i| ((i * 7919 % 1009) as f32 - 504.0) / 97.0).collect();
            let s: Vec<f32> =
                (0..k * n).map(|i| ((i * 104_729 % 997) as f32 - 498.0) / 89.0).collect();
            for transposed in [false, true] {
                // B[p][j]: from s as k × n, or from s as n × k transposed.
                let bij = |p: usize, j: usize| if transposed { s[j * k + p] } else { s[p * n + j] };
                let b =
                    if transposed { Packed::transposed(&s, n, k) } else { Packed::plain(&s, k, n) };
                let ldc = n + 3;
                let mut c = vec![f32::NAN; m * ldc];
                gemm(m, &a, &b, &mut c, ldc);
                for i in 0..m {
                    for j in 0..n {
                        let (mut want, mut mag) = (0.0f64, 0.0f64);
                        for p in 0..k {
                            want += a[i * k + p] as f64 * bij(p, j) as f64;
                            mag += (a[i * k + p] as f64 * bij(p, j) as f64).abs();
                        }
                        let bound = k as f64 * (f32::EPSILON as f64 / 2.0) * mag + 1e-30;
                        let got = c[i * ldc + j] as f64;
                        assert!(
                            (got - want).abs() <= bound,
                            "({m},{k},{n}) [{i}][{j}]: {got} vs {want}"
                        );
                    }
                    assert!(
                        c[i * ldc + n..i * ldc + ldc].iter().all(|v| v.is_nan()),
                        "padding kept"
                    );
                }
            }
        }
    }

    /// A row's result does not depend on the other rows or the thread split: the product of
    /// row i alone equals row i of the whole product, bit for bit.
    #[test]
    fn rows_are_independent_of_the_batch() {
        let (m, k, n) = (100, 64, 1797);
        let a: Vec<f32> = (0..m * k).map(|i| ((i * 31 % 101) as f32 - 50.0) / 13.0).collect();
        let s: Vec<f32> = (0..k * n).map(|i| ((i * 17 % 103) as f32 - 51.0) / 11.0).collect();
        let b = Packed::transposed(&s, n, k);
        let mut all = vec![0.0f32; m * n];
        gemm(m, &a, &b, &mut all, n);
        for i in [0, 7, 8, 99] {
            let mut one = vec![0.0f32; n];
            gemm(1, &a[i * k..(i + 1) * k], &b, &mut one, n);
            assert!(
                one.iter().zip(&all[i * n..(i + 1) * n]).all(|(x, y)| x.to_bits() == y.to_bits())
            );
        }
    }
}
