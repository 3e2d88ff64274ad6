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
//! 4. `S = R M` (B × D, SGEMM) and `s = (S − y)/v`.
//!
//! Rows are independent: a row's result does not depend on the other rows of the batch (the
//! GEMM's summation order depends only on D and K), so samples are the same for any batch size.

use anneal_core::{BatchScore, Error};

/// ln w, ‖μ‖²/2 and the means of a mixture with one τ, ready for batches.
pub struct GemmMixture<'a> {
    means: &'a [f32],
    dim: usize,
    k: usize,
    ln_w: Vec<f64>,
    norms2: Vec<f64>,
    max_norm: f64,
    tau: f64,
    // Scratch, grown on demand.
    g: Vec<f32>,
    r: Vec<f32>,
    logits: Vec<f64>,
    /// Rows refined in the last call (for tests and metrics).
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
            g: Vec::new(),
            r: Vec::new(),
            logits: Vec::new(),
            refined: 0,
        }
    }

    /// The softmax responsibilities of the rows of `points` at σ into `self.r` (B × K); returns
    /// the number of rows whose logits were refined.
    fn responsibilities(&mut self, points: &[f32], sigma: f64) -> usize {
        let (d, k) = (self.dim, self.k);
        let b = points.len() / d;
        self.g.resize(b * k, 0.0);
        self.r.resize(b * k, 0.0);
        self.logits.resize(k, 0.0);
        // SAFETY (matrixmultiply's contract): the pointers cover b×d, d×k (M read transposed
        // through its strides) and b×k elements with the given strides.
        unsafe {
            matrixmultiply::sgemm(
                b,
                d,
                k,
                1.0,
                points.as_ptr(),
                d as isize,
                1,
                self.means.as_ptr(),
                1,
                d as isize,
                0.0,
                self.g.as_mut_ptr(),
                k as isize,
                1,
            );
        }
        let v = self.tau * self.tau + sigma * sigma;
        let mut refined = 0;
        for (y, (g, r)) in
            points.chunks_exact(d).zip(self.g.chunks_exact(k).zip(self.r.chunks_exact_mut(k)))
        {
            let y2: f64 = y.iter().map(|&a| a as f64 * a as f64).sum();
            for (j, l) in self.logits.iter_mut().enumerate() {
                *l = self.ln_w[j] - (y2 - 2.0 * g[j] as f64 + self.norms2[j]) / (2.0 * v);
            }
            let err = d as f64 * f32::EPSILON as f64 * 0.5 * y2.sqrt() * self.max_norm / v;
            let mut max = self.logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            if err > 1e-4 {
                let cut = max - 36.0 - 2.0 * err;
                for (j, l) in self.logits.iter_mut().enumerate() {
                    if *l >= cut {
                        let mu = &self.means[j * d..(j + 1) * d];
                        let d2: f64 =
                            y.iter().zip(mu).map(|(&a, &m)| (a as f64 - m as f64).powi(2)).sum();
                        *l = self.ln_w[j] - d2 / (2.0 * v);
                    }
                }
                refined += 1;
                // The refined logits are exact; the rest are at least 36 nats below.
                max = self.logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            }
            let z: f64 = self.logits.iter().map(|l| (l - max).exp()).sum();
            for (o, l) in r.iter_mut().zip(&self.logits) {
                *o = ((l - max).exp() / z) as f32;
            }
        }
        refined
    }
}

impl BatchScore<f32> for GemmMixture<'_> {
    fn dim(&self) -> usize {
        self.dim
    }

    fn score_batch(&mut self, points: &[f32], sigma: f64, out: &mut [f32]) -> Result<(), Error> {
        let (d, k) = (self.dim, self.k);
        if points.len() != out.len() || !points.len().is_multiple_of(d) {
            return Err(Error::DimensionMismatch { expected: points.len(), found: out.len() });
        }
        let b = points.len() / d;
        self.refined = self.responsibilities(points, sigma);
        // SAFETY (matrixmultiply's contract): R is b×k, M is k×d, out is b×d, all row-major.
        unsafe {
            matrixmultiply::sgemm(
                b,
                k,
                d,
                1.0,
                self.r.as_ptr(),
                k as isize,
                1,
                self.means.as_ptr(),
                d as isize,
                1,
                0.0,
                out.as_mut_ptr(),
                d as isize,
                1,
            );
        }
        let inv_v = (1.0 / (self.tau * self.tau + sigma * sigma)) as f32;
        for (o, &y) in out.iter_mut().zip(points) {
            *o = (*o - y) * inv_v;
        }
        Ok(())
    }
}
