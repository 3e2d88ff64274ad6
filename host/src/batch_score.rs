//! The mixture score for a batch on the CPU: two matrix products and a row softmax (MATH.md,
//! "Analytic scores").
//!
//! For components N(μ_k, τ² I) with weights w_k and v = τ² + σ²:
//! 1. `G = Y Mᵀ` (B × K, SGEMM) and logits `l_k = ln w_k − (‖y‖² − 2 g_k + ‖μ_k‖²)/(2v)`
//!    (the (D/2) ln v term is shared by all k and dropped);
//! 2. precision: an f32 dot product errs by at most `D·2⁻²⁴·‖y‖‖μ_k‖`, so a logit by
//!    `e = D·2⁻²⁴·‖y‖ max‖μ‖ / v` — at σ = 0.01 this reaches nats (MATH.md's warning). Where
//!    `e > 1e-4` the logits within `36 + 2e` nats of the row's maximum (the only ones whose weight
//!    can exceed e⁻³⁶) are recomputed exactly in f64 from `‖y − μ_k‖²`;
//! 3. row softmax in f64 → R (B × K);
//! 4. `S = R M` (B × D) and `s = (S − y)/v`: a row with at most K/16 non-zero responsibilities
//!    (weights below e⁻⁴⁰ are 0 — most rows once σ is small against the data's spacing) is summed
//!    over its non-zeros; the other rows go through one SGEMM.
//!
//! Rows are independent: a row's result does not depend on the other rows of the batch (the
//! GEMM's summation order depends only on D and K), so samples are the same for any batch size.

use anneal_core::{BatchScore, Error};
use rayon::prelude::*;

/// exp(t) for t ≤ 0, with 0 below −40 (and exactly 1 at 0) without calling exp.
#[inline]
fn weight(t: f64) -> f64 {
    if t < -40.0 {
        0.0
    } else if t == 0.0 {
        1.0
    } else {
        t.exp()
    }
}

/// C (m × n, row stride `ldc`) = A (m × k, row-major, stride `lda`) · B, where B's element (p, j)
/// is at `b + p·rsb + j·csb`; the n columns are split into one block per rayon thread. Each
/// element is computed by one thread with the same k-loop, so the result does not depend on the
/// split; each thread packs only its share of B.
///
/// # Safety
/// The pointers must cover the matrices described, and C must not overlap A or B.
#[allow(clippy::too_many_arguments)]
unsafe fn sgemm_by_columns(
    m: usize,
    k: usize,
    n: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    rsb: isize,
    csb: isize,
    c: *mut f32,
    ldc: usize,
) {
    let threads = if m * k * n >= 1 << 22 {
        rayon::current_num_threads().min(n.div_ceil(64)).max(1)
    } else {
        1
    };
    let block = n.div_ceil(threads);
    // Raw pointers as integers so that the closures are Send; the blocks are disjoint.
    let (a, b, c) = (a as usize, b as usize, c as usize);
    rayon::scope(|s| {
        for t in 0..threads {
            let j0 = t * block;
            let j1 = ((t + 1) * block).min(n);
            if j0 >= j1 {
                continue;
            }
            s.spawn(move |_| {
                // SAFETY: block [j0, j1) of B and C; the caller guarantees the extents.
                unsafe {
                    matrixmultiply::sgemm(
                        m,
                        k,
                        j1 - j0,
                        1.0,
                        a as *const f32,
                        lda as isize,
                        1,
                        (b as *const f32).offset(j0 as isize * csb),
                        rsb,
                        csb,
                        0.0,
                        (c as *mut f32).add(j0),
                        ldc as isize,
                        1,
                    );
                }
            });
        }
    });
}

/// ln w, ‖μ‖² and the means of a mixture with one τ, ready for batches.
pub struct GemmMixture<'a> {
    means: &'a [f32],
    dim: usize,
    k: usize,
    ln_w: Vec<f64>,
    norms2: Vec<f64>,
    max_norm: f64,
    tau: f64,
    /// Rows refined in the last call (for tests).
    pub refined: usize,
}

impl<'a> GemmMixture<'a> {
    /// A mixture of the rows of `means` (K × `dim`) with `weights` (sum 1) and standard deviation τ.
    pub fn new(means: &'a [f32], dim: usize, weights: &[f64], tau: f64) -> Self {
        let k = means.len() / dim;
        let norms2: Vec<f64> =
            means.chunks_exact(dim).map(|m| m.iter().map(|&v| v as f64 * v as f64).sum()).collect();
        let max_norm = norms2.iter().cloned().fold(0.0, f64::max).sqrt();
        GemmMixture {
            means,
            dim,
            k,
            ln_w: weights.iter().map(|w| w.ln()).collect(),
            norms2,
            max_norm,
            tau,
            refined: 0,
        }
    }

    /// Tiny mixtures (K·D ≤ 64, e.g. toy2d) skip the GEMMs: exact f64 logits per row.
    fn score_rows_direct(&self, points: &[f32], sigma: f64, out: &mut [f32]) {
        let (d, k) = (self.dim, self.k);
        let v = self.tau * self.tau + sigma * sigma;
        let (inv_v, half_inv_v) = (1.0 / v, 0.5 / v);
        let mut logits = [0.0f64; 64];
        let logits = &mut logits[..k];
        let mut acc = [0.0f64; 64];
        let acc = &mut acc[..d];
        for (y, o) in points.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
            for ((l, mu), lw) in logits.iter_mut().zip(self.means.chunks_exact(d)).zip(&self.ln_w) {
                let d2: f64 = y.iter().zip(mu).map(|(&a, &m)| (a as f64 - m as f64).powi(2)).sum();
                *l = lw - d2 * half_inv_v;
            }
            let max = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let mut z = 0.0;
            acc.iter_mut().for_each(|a| *a = 0.0);
            for (l, mu) in logits.iter().zip(self.means.chunks_exact(d)) {
                let e = weight(l - max);
                z += e;
                acc.iter_mut().zip(mu).for_each(|(a, &m)| *a += e * m as f64);
            }
            let inv_z = 1.0 / z;
            for ((o, &a), &yv) in o.iter_mut().zip(acc.iter()).zip(y) {
                *o = ((a * inv_z - yv as f64) * inv_v) as f32;
            }
        }
    }

    /// One row's responsibilities `r` from its GEMM products `g` (step 2–3 of the module docs);
    /// returns 1 if its logits were refined.
    fn softmax_row(
        &self,
        y: &[f32],
        g: &[f32],
        v: f64,
        logits: &mut [f64],
        r: &mut [f32],
    ) -> usize {
        let d = self.dim;
        let y2: f64 = y.iter().map(|&a| a as f64 * a as f64).sum();
        let half_inv_v = 0.5 / v;
        for ((l, (&lw, &n2)), &gj) in
            logits.iter_mut().zip(self.ln_w.iter().zip(&self.norms2)).zip(g)
        {
            *l = lw - (y2 - 2.0 * gj as f64 + n2) * half_inv_v;
        }
        let err = d as f64 * f32::EPSILON as f64 * 0.5 * y2.sqrt() * self.max_norm / v;
        let mut max = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let mut refined = 0;
        if err > 1e-4 {
            let cut = max - 36.0 - 2.0 * err;
            for (j, l) in logits.iter_mut().enumerate() {
                if *l >= cut {
                    let mu = &self.means[j * d..(j + 1) * d];
                    let d2: f64 =
                        y.iter().zip(mu).map(|(&a, &m)| (a as f64 - m as f64).powi(2)).sum();
                    *l = self.ln_w[j] - d2 * half_inv_v;
                }
            }
            refined = 1;
            // The refined logits are exact; the rest are at least 36 nats below.
            max = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        }
        // Weights below e⁻⁴⁰ (4e-18) are 0: no exp for the (usually many) far components.
        let mut z = 0.0f64;
        for (o, l) in r.iter_mut().zip(logits.iter()) {
            let e = weight(l - max);
            z += e;
            *o = e as f32;
        }
        let inv = (1.0 / z) as f32;
        r.iter_mut().for_each(|o| *o *= inv);
        refined
    }

    /// The score of a chunk of rows; returns how many rows had their logits refined.
    fn score_rows(&self, points: &[f32], sigma: f64, out: &mut [f32]) -> usize {
        let (d, k) = (self.dim, self.k);
        if k * d <= 64 {
            self.score_rows_direct(points, sigma, out);
            return 0;
        }
        let b = points.len() / d;
        let mut g = vec![0.0f32; b * k];
        let mut r = vec![0.0f32; b * k];
        // SAFETY: points is b×d, M (read transposed through its strides) d×k, g b×k.
        unsafe {
            sgemm_by_columns(
                b,
                d,
                k,
                points.as_ptr(),
                d,
                self.means.as_ptr(),
                1,
                d as isize,
                g.as_mut_ptr(),
                k,
            );
        }
        let v = self.tau * self.tau + sigma * sigma;
        let refined = if b * k >= 1 << 14 {
            points
                .par_chunks(d)
                .zip(g.par_chunks(k).zip(r.par_chunks_mut(k)))
                .map_init(
                    || vec![0.0f64; k],
                    |logits, (y, (g, r))| self.softmax_row(y, g, v, logits, r),
                )
                .sum()
        } else {
            let mut logits = vec![0.0f64; k];
            points
                .chunks_exact(d)
                .zip(g.chunks_exact(k).zip(r.chunks_exact_mut(k)))
                .map(|(y, (g, r))| self.softmax_row(y, g, v, &mut logits, r))
                .sum()
        };
        // S = R M. Rows with few non-zero responsibilities (most rows once σ is small against the
        // spacing of the data) are summed directly over their non-zeros, in component order;
        // the others go through one GEMM. The choice depends on the row alone.
        let sparse_max = k / 16;
        let mut dense: Vec<usize> = Vec::new();
        for (i, (rr, o)) in r.chunks_exact(k).zip(out.chunks_exact_mut(d)).enumerate() {
            let nnz = rr.iter().filter(|&&w| w != 0.0).count();
            if nnz > sparse_max {
                dense.push(i);
                continue;
            }
            o.iter_mut().for_each(|v| *v = 0.0);
            for (j, &w) in rr.iter().enumerate() {
                if w != 0.0 {
                    o.iter_mut()
                        .zip(&self.means[j * d..(j + 1) * d])
                        .for_each(|(v, &m)| *v += w * m);
                }
            }
        }
        if !dense.is_empty() {
            let rd: Vec<f32> =
                dense.iter().flat_map(|&i| r[i * k..(i + 1) * k].iter().copied()).collect();
            let mut sd = vec![0.0f32; dense.len() * d];
            // SAFETY: rd is |dense|×k, M is k×d, sd is |dense|×d, all row-major.
            unsafe {
                sgemm_by_columns(
                    dense.len(),
                    k,
                    d,
                    rd.as_ptr(),
                    k,
                    self.means.as_ptr(),
                    d as isize,
                    1,
                    sd.as_mut_ptr(),
                    d,
                );
            }
            for (&i, row) in dense.iter().zip(sd.chunks_exact(d)) {
                out[i * d..(i + 1) * d].copy_from_slice(row);
            }
        }
        let inv_v = (1.0 / v) as f32;
        for (o, &y) in out.iter_mut().zip(points) {
            *o = (*o - y) * inv_v;
        }
        refined
    }
}

impl BatchScore<f32> for GemmMixture<'_> {
    fn dim(&self) -> usize {
        self.dim
    }

    fn score_batch(&mut self, points: &[f32], sigma: f64, out: &mut [f32]) -> Result<(), Error> {
        let d = self.dim;
        if points.len() != out.len() || !points.len().is_multiple_of(d) {
            return Err(Error::DimensionMismatch { expected: points.len(), found: out.len() });
        }
        // The whole batch at once: its products are split by output columns across threads
        // (`sgemm_by_columns`); splitting rows instead would re-pack the K × D means per piece.
        self.refined = self.score_rows(points, sigma, out);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use anneal_core::noise::{Keyed, Noise, Stream};
    use anneal_core::score::{IsotropicMixture, Taus};
    use anneal_core::{BatchScore, Geometric, Schedule};

    use super::GemmMixture;

    /// The GEMM score against the core's per-sample score in f64, on the digits mixture, at every
    /// σ of a 30-level schedule from 14 to 0.01, for τ = 0 and 0.05, at points near the data
    /// (data + σ noise: where samples are), on bisectors of nearby digits (where the two
    /// responsibilities are ~1/2 and logit errors show), and far from it. Tolerance: 1e-4 of the
    /// score's scale before cancellation, Σ r_k ‖μ_k − x‖/v, per row (f32 GEMMs; the refinement
    /// keeps the logits exact at small σ — without it the bisector rows fail). Also checks that
    /// refinement happened at the smallest σ and not at the largest.
    fn nearest_other(means: &[f32], d: usize, a: usize) -> usize {
        let mu = &means[a * d..(a + 1) * d];
        (0..means.len() / d)
            .filter(|&b| b != a)
            .map(|b| {
                (
                    b,
                    means[b * d..(b + 1) * d]
                        .iter()
                        .zip(mu)
                        .map(|(x, y)| (x - y).powi(2))
                        .sum::<f32>(),
                )
            })
            .filter(|&(_, d2)| d2 > 0.0)
            .min_by(|x, y| x.1.total_cmp(&y.1))
            .map_or(a, |(b, _)| b)
    }

    #[test]
    fn gemm_score_matches_the_f64_reference() {
        let data = crate::data::load("digits").unwrap();
        let (d, k) = (data.dim, data.components());
        let means64: Vec<f64> = data.means.iter().map(|&v| v as f64).collect();
        let schedule = Geometric::new(14.0, 0.01, 30).unwrap();
        let b = 64;
        for tau in [0.0, 0.05] {
            let reference =
                IsotropicMixture::new(&means64, d, Some(&data.weights), Taus::Shared(tau)).unwrap();
            let mut gemm = GemmMixture::new(&data.means, d, &data.weights, tau);
            let mut worst = 0.0f64;
            for i in 0..schedule.levels() {
                let sigma = schedule.sigma(i).unwrap();
                let mut pts = vec![0.0f32; b * d];
                let mut z = vec![0.0f32; d];
                for (j, row) in pts.chunks_exact_mut(d).enumerate() {
                    Keyed::new(4).normals(j as u64, Stream::Step(i as u32), &mut z);
                    let a = (j * 97) % k;
                    let mu = &data.means[a * d..(a + 1) * d];
                    match j % 4 {
                        // Far from the data.
                        3 => row.iter_mut().zip(mu).for_each(|(p, &m)| *p = 0.5 * m),
                        // On the bisector of a digit and its nearest neighbour, where the two
                        // responsibilities are ~1/2 each and logit errors show.
                        2 => {
                            let nb = nearest_other(&data.means, d, a);
                            let other = &data.means[nb * d..(nb + 1) * d];
                            // (Pixels are multiples of 1/16, so the exact bisector makes every f32
                            // product exact; 1e-3·σ of noise keeps r ≈ 1/2 but not the exactness.)
                            let e = 1e-3 * sigma as f32;
                            for (((p, &m), &o), &zz) in row.iter_mut().zip(mu).zip(other).zip(&z) {
                                *p = 0.5 * (m + o) + e * zz;
                            }
                        }
                        // Near a digit, at that level's noise.
                        _ => row
                            .iter_mut()
                            .zip(mu)
                            .zip(&z)
                            .for_each(|((p, &m), &zz)| *p = m + sigma as f32 * zz),
                    }
                }
                let mut out = vec![0.0f32; b * d];
                gemm.score_batch(&pts, sigma, &mut out).unwrap();
                if i == 0 {
                    assert_eq!(gemm.refined, 0, "no refinement needed at σ = 14");
                }
                if i + 1 == schedule.levels() {
                    assert_eq!(gemm.refined, b, "every row refined at σ = 0.01");
                }
                let mut want = vec![0.0f64; d];
                let mut logits = vec![0.0f64; k];
                let v = tau * tau + sigma * sigma;
                for (p, o) in pts.chunks_exact(d).zip(out.chunks_exact(d)) {
                    let p64: Vec<f64> = p.iter().map(|&v| v as f64).collect();
                    anneal_core::Score::score(&reference, &p64, sigma, &mut want).unwrap();
                    // The score's scale before the cancellation in Σ r_k (μ_k − x): Σ r_k ‖μ_k − x‖/v.
                    reference.logits(&p64, sigma, &mut logits).unwrap();
                    let m = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let z: f64 = logits.iter().map(|l| (l - m).exp()).sum();
                    let scale: f64 = logits
                        .iter()
                        .zip(means64.chunks_exact(d))
                        .map(|(l, mu)| {
                            (l - m).exp() / z
                                * mu.iter()
                                    .zip(&p64)
                                    .map(|(a, b)| (a - b).powi(2))
                                    .sum::<f64>()
                                    .sqrt()
                        })
                        .sum::<f64>()
                        / v;
                    let err = o
                        .iter()
                        .zip(&want)
                        .map(|(&a, b)| (a as f64 - b).powi(2))
                        .sum::<f64>()
                        .sqrt();
                    worst = worst.max(err / scale);
                }
            }
            assert!(worst < 1e-4, "τ = {tau}: worst relative error {worst:e}");
        }
    }
}
