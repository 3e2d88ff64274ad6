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
pub const MR: usize = 8;

/// The operand B (k × n) of `C = A B`, packed: panel q holds columns q·NR … q·NR + NR − 1 as k
/// rows of NR values (zero past n). A row-major B narrower than a panel (n < NR, the means of
/// low-dimensional data in `R M`) is not copied: padding it to NR columns would take NR/n times
/// its size (3.2× for D = 10), so its panel is built [`CHUNK`] rows at a time during the product.
pub struct Packed<'a> {
    k: usize,
    n: usize,
    layout: Layout<'a>,
}

/// How [`Packed`] holds B.
enum Layout<'a> {
    /// Panels of NR columns, k rows each.
    Panels(Vec<f32>),
    /// B itself, row-major k × n with n < NR.
    Narrow(&'a [f32]),
}

/// Rows of a narrow B padded per step of the product (64 KiB: it stays in L2).
const CHUNK: usize = 512;

impl<'a> Packed<'a> {
    /// B = Sᵀ for the row-major n × k matrix `s` (`B[p][j] = s[j][p]`): `Y Mᵀ` from the means.
    pub fn transposed(s: &[f32], n: usize, k: usize) -> Self {
        Self::pack(k, n, |p, j| s[j * k + p])
    }

    /// B = S for the row-major k × n matrix `s`: `R M` from the means (borrowed, not copied,
    /// when n < NR).
    pub fn plain(s: &'a [f32], k: usize, n: usize) -> Self {
        if n < NR {
            return Packed { k, n, layout: Layout::Narrow(&s[..k * n]) };
        }
        Self::pack(k, n, |p, j| s[p * n + j])
    }

    /// B with `B[p][j] = at(p, j)` (k × n), packed without a copy of its rows.
    pub fn from_fn(k: usize, n: usize, at: impl Fn(usize, usize) -> f32 + Sync) -> Self {
        Self::pack(k, n, at)
    }

    /// Panels filled on rayon's threads from 2¹⁸ values on (a copy: the same values either way).
    fn pack(k: usize, n: usize, at: impl Fn(usize, usize) -> f32 + Sync) -> Self {
        let panels_n = n.div_ceil(NR);
        let mut panels = vec![0.0f32; panels_n * k * NR];
        let fill = |(q, panel): (usize, &mut [f32])| {
            for (p, row) in panel.chunks_exact_mut(NR).enumerate() {
                for (c, v) in row.iter_mut().enumerate() {
                    let j = q * NR + c;
                    if j < n {
                        *v = at(p, j);
                    }
                }
            }
        };
        if k > 0 && panels.len() >= 1 << 18 {
            panels.par_chunks_exact_mut(k * NR).enumerate().for_each(fill);
        } else if k > 0 {
            panels.chunks_exact_mut(k * NR).enumerate().for_each(fill);
        }
        Packed { k, n, layout: Layout::Panels(panels) }
    }
}

/// A block of `MR` rows of A (packed: p-major, `MR` values per p) times one panel:
/// `acc[i][c] = fma(a[p][i], b[p][c], acc[i][c])` for p = 0, 1, …, from `init` (zero, or the
/// chains' values after the rows of B before this panel's: a chain carried over pieces of B is
/// the same chain). The AVX-512 and AVX2 kernels perform
/// exactly these operations with explicit vector FMAs (LLVM does not keep the portable loop's 128
/// accumulators in registers); the portable loop is the fallback.
fn kernel(ap: &[[f32; MR]], panel: &[[f32; NR]], init: &[[f32; NR]; MR]) -> [[f32; NR]; MR] {
    #[cfg(target_arch = "x86_64")]
    match crate::score::simd::level() {
        // SAFETY: level() found AVX-512F on this CPU.
        crate::score::simd::Level::Avx512 => return unsafe { x86::kernel_avx512(ap, panel, init) },
        // SAFETY: level() found AVX2 and FMA on this CPU.
        crate::score::simd::Level::Avx2 => return unsafe { x86::kernel_avx2(ap, panel, init) },
        crate::score::simd::Level::Baseline => {}
    }
    // Portable: passes of 8 columns, so that the 8 × 8 accumulators fit in registers (on
    // aarch64: 16 of NEON's 32; LLVM turns the `mul_add`s into `fmla`).
    let mut out = [[0.0f32; NR]; MR];
    for c0 in (0..NR).step_by(8) {
        let mut acc = [[0.0f32; 8]; MR];
        for (acc, init) in acc.iter_mut().zip(init) {
            acc.copy_from_slice(&init[c0..c0 + 8]);
        }
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

    use super::{MR, MR64, NR};

    /// [`super::kernel`] with two 16-lane registers per row (16 accumulators: ten loads per
    /// sixteen FMAs).
    #[target_feature(enable = "avx512f")]
    pub(super) fn kernel_avx512(
        ap: &[[f32; MR]],
        panel: &[[f32; NR]],
        init: &[[f32; NR]; MR],
    ) -> [[f32; NR]; MR] {
        let panel = &panel[..ap.len().min(panel.len())];
        block(panel, init, |p| ap[p])
    }

    /// [`kernel_avx512`] from zero, with A's `MR` rows read where they are (`rows[i][p]`, each
    /// at least `panel.len()` long) instead of from a packed block: the same operations.
    #[target_feature(enable = "avx512f")]
    pub(super) fn kernel_rows_avx512(rows: &[&[f32]; MR], panel: &[[f32; NR]]) -> [[f32; NR]; MR] {
        let k = panel.len();
        let rows: [&[f32]; MR] = std::array::from_fn(|i| &rows[i][..k]);
        block(panel, &[[0.0; NR]; MR], |p| std::array::from_fn(|i| rows[i][p]))
    }

    /// Both kernels' loop: from `init`, `acc[i] = fma(a(p)[i], panel[p], acc[i])` for each
    /// step p of the panel, A's values at step p given by `a`.
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn block(
        panel: &[[f32; NR]],
        init: &[[f32; NR]; MR],
        a: impl Fn(usize) -> [f32; MR],
    ) -> [[f32; NR]; MR] {
        let mut lo = [_mm512_setzero_ps(); MR];
        let mut hi = [_mm512_setzero_ps(); MR];
        for ((lo, hi), r) in lo.iter_mut().zip(hi.iter_mut()).zip(init) {
            // SAFETY: r is NR = 32 f32s.
            unsafe {
                *lo = _mm512_loadu_ps(r.as_ptr());
                *hi = _mm512_loadu_ps(r.as_ptr().add(16));
            }
        }
        for (p, b) in panel.iter().enumerate() {
            // SAFETY: b is NR = 32 f32s.
            let (bl, bh) =
                unsafe { (_mm512_loadu_ps(b.as_ptr()), _mm512_loadu_ps(b.as_ptr().add(16))) };
            for ((lo, hi), av) in lo.iter_mut().zip(hi.iter_mut()).zip(a(p)) {
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

    /// [`super::kernel64`] with four 8-lane registers per row (16 accumulators); B's f32 values
    /// converted to f64 once per step of p and used by the [`MR64`] rows.
    #[target_feature(enable = "avx512f")]
    pub(super) fn kernel64_avx512(ap: &[[f64; MR64]], panel: &[[f32; NR]]) -> [[f64; NR]; MR64] {
        let mut acc = [[_mm512_setzero_pd(); 4]; MR64];
        for (a, b) in ap.iter().zip(panel) {
            // SAFETY: b is NR = 32 f32s: four loads of 8.
            let bv: [__m512d; 4] = std::array::from_fn(|l| unsafe {
                _mm512_cvtps_pd(_mm256_loadu_ps(b.as_ptr().add(8 * l)))
            });
            for (acc, &av) in acc.iter_mut().zip(a) {
                let av = _mm512_set1_pd(av);
                for (s, &bv) in acc.iter_mut().zip(&bv) {
                    *s = _mm512_fmadd_pd(av, bv, *s);
                }
            }
        }
        let mut out = [[0.0f64; NR]; MR64];
        for (o, acc) in out.iter_mut().zip(&acc) {
            for (l, &v) in acc.iter().enumerate() {
                // SAFETY: o is NR = 32 f64s: 8 at 8·l (l < 4).
                unsafe { _mm512_storeu_pd(o.as_mut_ptr().add(8 * l), v) };
            }
        }
        out
    }

    /// [`super::kernel`] in four passes of 8 columns (8 accumulators each, so that nothing spills
    /// from AVX2's 16 registers).
    #[target_feature(enable = "avx2,fma")]
    pub(super) fn kernel_avx2(
        ap: &[[f32; MR]],
        panel: &[[f32; NR]],
        init: &[[f32; NR]; MR],
    ) -> [[f32; NR]; MR] {
        let mut out = [[0.0f32; NR]; MR];
        for half in 0..NR / 8 {
            let mut acc = [_mm256_setzero_ps(); MR];
            for (acc, r) in acc.iter_mut().zip(init) {
                // SAFETY: r[8·half..] holds 8 f32s (half < NR/8).
                *acc = unsafe { _mm256_loadu_ps(r.as_ptr().add(8 * half)) };
            }
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

/// Rows of A per call of [`kernel64`].
pub const MR64: usize = 4;

/// The f64 product of a block of [`MR64`] rows of A (packed p-major, converted to f64) and one
/// panel of B (f32): `acc[i][c] = acc[i][c] + a[p][i]·b[p][c]` for p = 0, 1, …, from zero. A
/// product of two f32 is exact in f64 (24 + 24 significant bits ≤ 53, and no overflow or
/// underflow), so each step rounds once, whether it is computed as an FMA or as a multiply and
/// an add: every instruction set gives the same bits. AVX-512 by explicit intrinsics (16
/// accumulators); otherwise lane-shaped Rust compiled for the CPU's level.
fn kernel64(ap: &[[f64; MR64]], panel: &[[f32; NR]]) -> [[f64; NR]; MR64] {
    #[cfg(target_arch = "x86_64")]
    if crate::score::simd::level() == crate::score::simd::Level::Avx512 {
        // SAFETY: level() found AVX-512F on this CPU.
        return unsafe { x86::kernel64_avx512(ap, panel) };
    }
    /// Passes of 8 columns (32 accumulators: 8 AVX2 registers).
    #[inline(always)]
    fn lanes(ap: &[[f64; MR64]], panel: &[[f32; NR]]) -> [[f64; NR]; MR64] {
        let mut out = [[0.0f64; NR]; MR64];
        for c0 in (0..NR).step_by(8) {
            let mut acc = [[0.0f64; 8]; MR64];
            for (a, b) in ap.iter().zip(panel) {
                let mut bv = [0.0f64; 8];
                bv.iter_mut().zip(&b[c0..c0 + 8]).for_each(|(d, &s)| *d = s as f64);
                for (acc, &av) in acc.iter_mut().zip(a) {
                    for (s, &bv) in acc.iter_mut().zip(&bv) {
                        *s += av * bv;
                    }
                }
            }
            for (o, acc) in out.iter_mut().zip(&acc) {
                o[c0..c0 + 8].copy_from_slice(acc);
            }
        }
        out
    }
    crate::score::simd::dispatch!(
        lanes,
        (ap: &[[f64; MR64]], panel: &[[f32; NR]]) -> [[f64; NR]; MR64]
    )
}

/// The rows of A (k columns each) for [`gemm64_cols`]: blocks of [`MR64`] rows, p-major, in f64
/// (lanes past the last row repeat it).
pub fn pack64(a: &[&[f32]], k: usize) -> Vec<[f64; MR64]> {
    if k == 0 {
        return Vec::new();
    }
    let mut ap = vec![[0.0f64; MR64]; a.len().div_ceil(MR64) * k];
    let last = a.len().saturating_sub(1);
    for (blk, chunk) in ap.chunks_exact_mut(k).enumerate() {
        for i in 0..MR64 {
            let row = &a[(blk * MR64 + i).min(last)][..k];
            for (dst, &v) in chunk.iter_mut().zip(row) {
                dst[i] = v as f64;
            }
        }
    }
    ap
}

/// Columns `j0..j0 + len` of C = A B in f64 (`j0` a multiple of [`NR`]; B packed in panels, as
/// [`Packed::transposed`] packs it; A's `m` rows packed by [`pack64`]) into the rows of `c`
/// (leading dimension `ldc`), on this thread. Each element is one chain of exact products
/// summed in p order from zero ([`kernel64`]): the same bits as `dot64` of the row and the
/// column, whatever the block.
pub fn gemm64_cols(
    ap: &[[f64; MR64]],
    m: usize,
    b: &Packed,
    j0: usize,
    len: usize,
    c: &mut [f64],
    ldc: usize,
) {
    let k = b.k;
    let Layout::Panels(panels_b) = &b.layout else {
        unreachable!("column blocks are taken of a panel-packed operand")
    };
    debug_assert!(j0.is_multiple_of(NR) && j0 + len <= b.n && ap.len() == m.div_ceil(MR64) * k);
    if m == 0 || len == 0 {
        return;
    }
    if k == 0 {
        c.chunks_mut(ldc).take(m).for_each(|row| row[..len].fill(0.0));
        return;
    }
    let (panels_b, _) = panels_b.as_chunks::<NR>();
    let q0 = j0 / NR;
    for (qi, panel) in panels_b.chunks_exact(k).skip(q0).take(len.div_ceil(NR)).enumerate() {
        let (c0, c1) = (qi * NR, ((qi + 1) * NR).min(len));
        for (blk, a) in ap.chunks_exact(k).enumerate() {
            let acc = kernel64(a, panel);
            for (i, acc) in acc.iter().enumerate().take(m - (blk * MR64).min(m)) {
                let row = &mut c[(blk * MR64 + i) * ldc..];
                row[c0..c1].copy_from_slice(&acc[..c1 - c0]);
            }
        }
    }
}

/// y·μ in f64 as [`gemm64_cols`] computes each element: the exact products summed in order from
/// zero, one chain per lane; `G` columns at a time (independent chains, so that they overlap).
#[inline(always)]
pub fn dot64<const G: usize>(y: &[f32], mus: [&[f32]; G]) -> [f64; G] {
    let mut acc = [0.0f64; G];
    for (p, &yv) in y.iter().enumerate() {
        let yv = yv as f64;
        for (a, mu) in acc.iter_mut().zip(&mus) {
            *a += yv * mu[p] as f64;
        }
    }
    acc
}

/// One thread's share: panels `q0..` times every row block of the packed A into its column
/// pieces of C (`c[i]`: row i's columns from q0·NR on).
fn panels(ap: &[[f32; MR]], q0: usize, panels: &[f32], k: usize, c: &mut [&mut [f32]]) {
    let cols = c.first().map_or(0, |r| r.len());
    let (panels, _) = panels.as_chunks::<NR>();
    for (qi, panel) in panels.chunks_exact(k).skip(q0).take(cols.div_ceil(NR)).enumerate() {
        let (c0, c1) = (qi * NR, ((qi + 1) * NR).min(cols));
        for (a, c) in ap.chunks_exact(k).zip(c.chunks_mut(MR)) {
            let acc = kernel(a, panel, &[[0.0; NR]; MR]);
            for (row, acc) in c.iter_mut().zip(&acc) {
                if let Some(row) = row.get_mut(c0..c1) {
                    row.iter_mut().zip(acc).for_each(|(c, &v)| *c = v);
                }
            }
        }
    }
}

/// Columns `p0..p0 + out.len()` of the rows `blk·MR …` of A, packed p-major with MR values per p
/// (lanes past the last row repeat it).
fn pack_a(a: &[&[f32]], blk: usize, p0: usize, out: &mut [[f32; MR]]) {
    let last = a.len() - 1;
    for i in 0..MR {
        let row = &a[(blk * MR + i).min(last)][p0..p0 + out.len()];
        for (dst, &v) in out.iter_mut().zip(row) {
            dst[i] = v;
        }
    }
}

/// The rows of A (k columns each) packed in blocks of [`MR`] rows, p-major.
fn pack_all(a: &[&[f32]], k: usize) -> Vec<[f32; MR]> {
    let mut ap = vec![[0.0f32; MR]; a.len().div_ceil(MR) * k];
    for (blk, chunk) in ap.chunks_exact_mut(k).enumerate() {
        pack_a(a, blk, 0, chunk);
    }
    ap
}

/// C (m × n, row-major, leading dimension `ldc`) = A (m × k, row-major, contiguous) · B. Large
/// products split B's panels across rayon's threads (each C element is computed by one thread).
pub fn gemm(m: usize, a: &[f32], b: &Packed, c: &mut [f32], ldc: usize) {
    if b.k == 0 {
        c.chunks_mut(ldc).take(m).for_each(|row| row[..b.n].fill(0.0));
        return;
    }
    let rows: Vec<&[f32]> = a.chunks_exact(b.k).take(m).collect();
    gemm_rows(&rows, b, c, ldc);
}

/// C (m × n, leading dimension `ldc`) = A · B on this thread, A's rows given as slices: the same
/// bits as [`gemm_rows`]. With AVX-512 the kernel reads A's rows where they are
/// ([`x86::kernel_rows_avx512`]: a broadcast from each of the block's rows per step of p, as
/// from a packed block), so nothing is packed; elsewhere each block of [`MR`] rows is packed
/// first.
pub fn gemm_rows_here(a: &[&[f32]], b: &Packed, c: &mut [f32], ldc: usize) {
    let (m, k, n) = (a.len(), b.k, b.n);
    let Layout::Panels(panels_b) = &b.layout else {
        return gemm_rows(a, b, c, ldc);
    };
    if m == 0 || n == 0 || k == 0 {
        return gemm_rows(a, b, c, ldc);
    }
    let (panels_b, _) = panels_b.as_chunks::<NR>();
    let mut ap = Vec::new();
    for (blk, c) in c.chunks_mut(MR * ldc).take(m.div_ceil(MR)).enumerate() {
        // The block's rows, the last repeated past m (as `pack_a` pads).
        let rows: [&[f32]; MR] = std::array::from_fn(|i| &a[(blk * MR + i).min(m - 1)][..k]);
        let packed = !cfg!(target_arch = "x86_64")
            || crate::score::simd::level() != crate::score::simd::Level::Avx512;
        if packed {
            ap.resize(k, [0.0f32; MR]);
            pack_a(&rows, 0, 0, &mut ap);
        }
        for (q, panel) in panels_b.chunks_exact(k).take(n.div_ceil(NR)).enumerate() {
            #[cfg(target_arch = "x86_64")]
            let acc = if packed {
                kernel(&ap, panel, &[[0.0; NR]; MR])
            } else {
                // SAFETY: level() found AVX-512F on this CPU.
                unsafe { x86::kernel_rows_avx512(&rows, panel) }
            };
            #[cfg(not(target_arch = "x86_64"))]
            let acc = kernel(&ap, panel, &[[0.0; NR]; MR]);
            let (c0, c1) = (q * NR, ((q + 1) * NR).min(n));
            for (row, acc) in c.chunks_mut(ldc).zip(&acc) {
                row[c0..c1].copy_from_slice(&acc[..c1 - c0]);
            }
        }
    }
}

/// [`gemm`] with the rows of A given as slices (rows picked from a larger matrix, not copied).
pub fn gemm_rows(a: &[&[f32]], b: &Packed, c: &mut [f32], ldc: usize) {
    let (m, k, n) = (a.len(), b.k, b.n);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        c.chunks_mut(ldc).take(m).for_each(|row| row[..n].fill(0.0));
        return;
    }
    let panels_b = match &b.layout {
        Layout::Panels(p) => p,
        Layout::Narrow(_) => {
            // One panel, padded CHUNK rows of B at a time, the chains carried over the chunks:
            // scratch of O(CHUNK), whatever k.
            let mut chains = Chains::new(m, n);
            accumulate(a, b, 0, &mut chains);
            for (i, row) in c.chunks_mut(ldc).take(m).enumerate() {
                row[..n].iter_mut().zip(chains.row(i, n)).for_each(|(c, v)| *c = v);
            }
            return;
        }
    };
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
    let ap = pack_all(a, k);
    let run = |t: usize, piece: &mut Vec<&mut [f32]>| panels(&ap, t * per, panels_b, k, piece);
    if threads == 1 {
        run(0, &mut pieces[0]);
    } else {
        pieces.par_iter_mut().enumerate().for_each(|(t, piece)| run(t, piece));
    }
}

/// Columns `j0..j0 + len` of C = A B (`j0` a multiple of [`NR`]; B packed in panels, as
/// [`Packed::transposed`] packs it) into the rows of `c` (leading dimension `ldc`), on this
/// thread: each element is the same chain as in the whole product, so a block of columns has the
/// same bits as those columns of [`gemm_rows`].
pub fn gemm_cols(a: &[&[f32]], b: &Packed, j0: usize, len: usize, c: &mut [f32], ldc: usize) {
    let (m, k) = (a.len(), b.k);
    let Layout::Panels(panels_b) = &b.layout else {
        unreachable!("column blocks are taken of a panel-packed operand")
    };
    debug_assert!(j0.is_multiple_of(NR) && j0 + len <= b.n);
    if m == 0 || len == 0 {
        return;
    }
    if k == 0 {
        c.chunks_mut(ldc).take(m).for_each(|row| row[..len].fill(0.0));
        return;
    }
    let ap = pack_all(a, k);
    let mut rows: Vec<&mut [f32]> = c.chunks_mut(ldc).take(m).map(|r| &mut r[..len]).collect();
    panels(&ap, j0 / NR, panels_b, k, &mut rows);
}

/// The chains of C = A B carried over pieces of B's rows ([`accumulate`]), for C of `m` rows:
/// one block of [`MR`] rows × [`NR`] columns per row block and panel.
pub struct Chains {
    acc: Vec<[[f32; NR]; MR]>,
    panels_n: usize,
}

impl Chains {
    /// Chains from zero for `m` rows of C and B's `n` columns.
    pub fn new(m: usize, n: usize) -> Self {
        let panels_n = n.div_ceil(NR);
        Chains { acc: vec![[[0.0; NR]; MR]; m.div_ceil(MR) * panels_n], panels_n }
    }

    /// Row `i` of C: its first `n` values (B's columns).
    pub fn row(&self, i: usize, n: usize) -> impl Iterator<Item = f32> + '_ {
        (0..n).map(move |j| self.acc[(i / MR) * self.panels_n + j / NR][i % MR][j % NR])
    }
}

/// Carries the chains of C = A B over B's rows `p0..p0 + len` (A's columns `p0..`, given as the
/// rows of `a`, `len` values each): after the pieces 0..k in order, `chains` holds the same bits
/// as [`gemm_rows`] over all of B's rows (each element is one FMA chain over p = 0, 1, …).
pub fn accumulate(a: &[&[f32]], b: &Packed, p0: usize, chains: &mut Chains) {
    let (m, k, n) = (a.len(), b.k, b.n);
    let len = a.first().map_or(0, |r| r.len());
    debug_assert!(p0 + len <= k && chains.acc.len() == m.div_ceil(MR) * n.div_ceil(NR));
    let mut ap = vec![[0.0f32; MR]; CHUNK.min(len)];
    let mut pad = vec![[0.0f32; NR]; CHUNK.min(len)];
    for s0 in (0..len).step_by(CHUNK) {
        let sl = CHUNK.min(len - s0);
        for blk in 0..m.div_ceil(MR) {
            pack_a(a, blk, s0, &mut ap[..sl]);
            for q in 0..chains.panels_n {
                let panel: &[[f32; NR]] = match &b.layout {
                    Layout::Panels(p) => {
                        let start = (q * k + p0 + s0) * NR;
                        p[start..start + sl * NR].as_chunks::<NR>().0
                    }
                    Layout::Narrow(s) => {
                        if blk == 0 {
                            let rows = &s[(p0 + s0) * n..(p0 + s0 + sl) * n];
                            for (dst, src) in pad.iter_mut().zip(rows.chunks_exact(n)) {
                                dst[..n].copy_from_slice(src);
                            }
                        }
                        &pad[..sl]
                    }
                };
                let acc = &mut chains.acc[blk * chains.panels_n + q];
                *acc = kernel(&ap[..sl], panel, acc);
            }
        }
    }
}

/// Two f64s summing to a + b exactly (Knuth's TwoSum): the tests' exact references of f64
/// products.
#[cfg(test)]
pub(crate) fn two_sum(a: f64, b: f64) -> (f64, f64) {
    let s = a + b;
    let bb = s - a;
    (s, (a - (s - bb)) + (b - bb))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The f64 product ([`gemm64_cols`]) in column blocks of one panel, of several and of all
    /// columns, for row counts that do and do not fill [`MR64`] and widths that do and do not fill
    /// a panel: every element has the bits of [`dot64`] (one chain and eight side by side), and
    /// lies within its bound (k − 1)·2⁻⁵³·Σ|a b| (scaled by 1 + 1e-12 for γ's denominator) of
    /// the exact sum (TwoSum, exact to 2⁻¹⁰⁶ of it).
    #[test]
    fn f64_products_are_exact_chains() {
        for &(m, k, n) in &[(1, 1, 1), (3, 7, 40), (5, 64, 33), (9, 300, 100), (16, 784, 64)] {
            let a: Vec<f32> =
                (0..m * k).map(|i| ((i * 7919 % 1009) as f32 - 504.0) / 97.0).collect();
            let s: Vec<f32> =
                (0..k * n).map(|i| ((i * 104_729 % 997) as f32 - 498.0) / 89.3).collect();
            let b = Packed::transposed(&s, n, k);
            let rows: Vec<&[f32]> = a.chunks_exact(k).collect();
            let ap = pack64(&rows, k);
            for block in [NR, 2 * NR, n.div_ceil(NR) * NR] {
                let ldc = block + 1;
                let mut c = vec![f64::NAN; m * ldc];
                for j0 in (0..n).step_by(block) {
                    let len = block.min(n - j0);
                    gemm64_cols(&ap, m, &b, j0, len, &mut c, ldc);
                    for (i, y) in rows.iter().enumerate() {
                        let mus: [&[f32]; 8] = std::array::from_fn(|l| {
                            let j = (j0 + l).min(n - 1);
                            &s[j * k..(j + 1) * k]
                        });
                        let eight = dot64(y, mus);
                        for j in j0..j0 + len {
                            let mu = &s[j * k..(j + 1) * k];
                            let got = c[i * ldc + j - j0];
                            let one = dot64(y, [mu])[0];
                            assert_eq!(got.to_bits(), one.to_bits(), "({m},{k},{n}) [{i}][{j}]");
                            if j - j0 < 8 {
                                assert_eq!(got.to_bits(), eight[j - j0].to_bits());
                            }
                            let (mut hi, mut lo, mut mag) = (0.0f64, 0.0f64, 0.0f64);
                            for (&yv, &mv) in y.iter().zip(mu) {
                                let pr = yv as f64 * mv as f64;
                                let (s, e) = two_sum(hi, pr);
                                (hi, lo, mag) = (s, lo + e, mag + pr.abs());
                            }
                            let bound = (k - 1) as f64 * 2f64.powi(-53) * mag * (1.0 + 1e-12);
                            assert!((got - (hi + lo)).abs() <= bound, "[{i}][{j}]: {got} vs {hi}");
                        }
                    }
                }
            }
        }
    }

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

    /// A narrow B (n < NR, borrowed and padded chunk by chunk) gives the same bits as the same B
    /// packed into a padded panel: the chains carried over chunks are the chains over all of k.
    #[test]
    fn narrow_operand_matches_its_packed_panel_bit_for_bit() {
        for &(m, k, n) in &[(1, 1, 1), (19, 1300, 10), (8, CHUNK, 31), (3, 2 * CHUNK + 1, 2)] {
            let a: Vec<f32> =
                (0..m * k).map(|i| ((i * 7919 % 1009) as f32 - 504.0) / 97.0).collect();
            let s: Vec<f32> =
                (0..k * n).map(|i| ((i * 104_729 % 997) as f32 - 498.0) / 89.0).collect();
            let narrow = Packed::plain(&s, k, n);
            assert!(matches!(narrow.layout, Layout::Narrow(_)), "n = {n} < NR is borrowed");
            let panel = Packed::pack(k, n, |p, j| s[p * n + j]);
            let (mut c1, mut c2) = (vec![0.0f32; m * n], vec![1.0f32; m * n]);
            gemm(m, &a, &narrow, &mut c1, n);
            gemm(m, &a, &panel, &mut c2, n);
            assert!(c1.iter().zip(&c2).all(|(x, y)| x.to_bits() == y.to_bits()), "({m},{k},{n})");
        }
    }

    /// Blocks of columns ([`gemm_cols`]), pieces of B's rows carried in chains ([`accumulate`])
    /// and the product on this thread ([`gemm_rows_here`]) give the same bits as the whole
    /// product, for both packings of B.
    #[test]
    fn column_blocks_and_carried_pieces_match_the_whole_product() {
        let (m, k) = (11, 1300);
        let a: Vec<f32> = (0..m * k).map(|i| ((i * 7919 % 1009) as f32 - 504.0) / 97.0).collect();
        let rows: Vec<&[f32]> = a.chunks_exact(k).collect();
        for n in [10, 40] {
            let s: Vec<f32> =
                (0..k * n).map(|i| ((i * 104_729 % 997) as f32 - 498.0) / 89.0).collect();
            // C = A B with B = s (k × n), whole and in pieces of 300 rows of B.
            let b = Packed::plain(&s, k, n);
            let mut whole = vec![0.0f32; m * n];
            gemm_rows(&rows, &b, &mut whole, n);
            // On this thread, A's rows read where they are (AVX-512) or packed per block.
            let mut here = vec![0.0f32; m * n];
            gemm_rows_here(&rows, &b, &mut here, n);
            assert!(here.iter().zip(&whole).all(|(x, y)| x.to_bits() == y.to_bits()), "n = {n}");
            let mut chains = Chains::new(m, n);
            for p0 in (0..k).step_by(300) {
                let len = 300.min(k - p0);
                let piece: Vec<&[f32]> = rows.iter().map(|r| &r[p0..p0 + len]).collect();
                accumulate(&piece, &b, p0, &mut chains);
            }
            for (i, want) in whole.chunks_exact(n).enumerate() {
                assert!(chains.row(i, n).zip(want).all(|(x, y)| x.to_bits() == y.to_bits()));
            }
            // Y Sᵀ with S (n × k) as the product's B: whole, and in blocks of NR columns.
            let t: Vec<f32> = s.iter().map(|v| v * 0.5).collect();
            let bt = Packed::transposed(&t[..n * 100], n, 100);
            let short: Vec<&[f32]> = rows.iter().map(|r| &r[..100]).collect();
            let mut whole = vec![0.0f32; m * n];
            gemm_rows(&short, &bt, &mut whole, n);
            let mut cols = vec![0.0f32; m * NR];
            for j0 in (0..n).step_by(NR) {
                let len = NR.min(n - j0);
                gemm_cols(&short, &bt, j0, len, &mut cols, NR);
                for (i, row) in cols.chunks_exact(NR).enumerate() {
                    let want = &whole[i * n + j0..i * n + j0 + len];
                    assert!(row[..len].iter().zip(want).all(|(x, y)| x.to_bits() == y.to_bits()));
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
