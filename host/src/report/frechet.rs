//! The Fréchet distance between two point sets, each summarised by a Gaussian (its mean and
//! covariance): ‖m₁ − m₂‖² + tr C₁ + tr C₂ − 2 tr (C₁^{½} C₂ C₁^{½})^{½} — FID's formula. In
//! pixel space, and (for digits) in the feature space of the shipped digit classifier
//! ([`digit_features`]), the analogue of FID's Inception features.
//!
//! What it is not: FID itself (no Inception network, 8×8 images), nor comparable across feature
//! extractors or sample sizes (the estimate is biased upwards for small sets: compare runs with
//! the same n, and against the reference value of two halves of the data).

use nalgebra::{DMatrix, DVector, SymmetricEigen};
use tract_onnx::prelude::*;

/// Rows per block in [`moments`]: its memory is BLOCK × d values, whatever n.
const BLOCK: usize = 1024;

/// The mean and covariance (÷ (n − 1)) of rows of `d` values, in f64, streamed: the column sums
/// in row order, then the centred rows' products a block of rows at a time, the blocks in order
/// (the same bits on every run on one machine: matrixmultiply picks its kernel, FMA or not, by
/// the CPU, which moves the last bits; the Fréchet distance's cancellation amplifies them to
/// ~1e-8 relative on digits, far below its sampling error).
///
/// Where there are fewer rows n than dimensions, also a factor F (d × n) of the covariance,
/// `C = F Fᵀ`: the centred rows / √(n − 1), transposed (at most d² values, as C).
fn moments<'r>(
    rows: impl Iterator<Item = &'r [f32]> + Clone,
    d: usize,
) -> (DVector<f64>, DMatrix<f64>, Option<DMatrix<f64>>) {
    let mut sum = DVector::<f64>::zeros(d);
    let mut n = 0usize;
    for r in rows.clone() {
        sum.iter_mut().zip(r).for_each(|(s, &v)| *s += v as f64);
        n += 1;
    }
    let mean = sum / n.max(1) as f64;
    let mut cov = DMatrix::<f64>::zeros(d, d);
    let mut factor = (n < d).then(|| Vec::with_capacity(n * d));
    let mut block: Vec<f64> = Vec::with_capacity(BLOCK * d);
    let mut rows = rows.peekable();
    while rows.peek().is_some() {
        block.clear();
        for r in rows.by_ref().take(BLOCK) {
            block.extend(r.iter().zip(mean.iter()).map(|(&v, m)| v as f64 - m));
        }
        // cov += blockᵀ block (matrixmultiply's blocked f64 product; nalgebra's `tr_mul` takes
        // column dot products, 8× slower at d = 784).
        if let Some(f) = &mut factor {
            f.extend_from_slice(&block);
        }
        let b = block.len() / d;
        // SAFETY: `block` holds b × d values (row-major) and `cov` d × d (column-major); the
        // strides stay inside them.
        unsafe {
            matrixmultiply::dgemm(
                d,
                b,
                d,
                1.0,
                block.as_ptr(),
                1,
                d as isize,
                block.as_ptr(),
                d as isize,
                1,
                1.0,
                cov.as_mut_ptr(),
                1,
                d as isize,
            );
        }
    }
    let scale = 1.0 / (n.max(2) - 1) as f64;
    // Row-major n × d is column-major d × n: F's columns are the centred rows.
    let factor = factor.map(|f| DMatrix::from_vec(d, n, f) * scale.sqrt());
    (mean, cov * scale, factor)
}

/// Eigenvalues of a symmetric matrix clipped at 0 (a covariance is PSD; rounding makes tiny
/// negative ones), with the eigenvectors.
fn psd_sqrt(c: &DMatrix<f64>) -> DMatrix<f64> {
    let e = SymmetricEigen::new(c.clone());
    let s = DMatrix::from_diagonal(&e.eigenvalues.map(|v| v.max(0.0).sqrt()));
    &e.eigenvectors * s * e.eigenvectors.transpose()
}

/// The Fréchet distance between the rows of `a` and of `b` (both `d` wide, ≥ 2 rows each).
pub fn distance(a: &[f32], b: &[f32], d: usize) -> f64 {
    distance_rows(a.chunks_exact(d), b.chunks_exact(d), d)
}

/// [`distance`] between two sets of rows given as iterators (every other row of the data, say,
/// without a copy).
pub fn distance_rows<'a, 'b>(
    a: impl Iterator<Item = &'a [f32]> + Clone,
    b: impl Iterator<Item = &'b [f32]> + Clone,
    d: usize,
) -> f64 {
    let (ma, ca, fa) = moments(a, d);
    let (mb, cb, fb) = moments(b, d);
    // tr (C_a^½ C_b C_a^½)^½ = Σ √λ over the eigenvalues of C_a C_b, which for any factor
    // C_a = F Fᵀ are those of Fᵀ C_b F: with fewer rows than dimensions F is the centred rows
    // (n × n), else the Cholesky factor where C_a is positive definite; the square root of C_a
    // (an eigen-decomposition with vectors) only where it is singular (digits' constant pixels).
    let inner = match (fa, fb) {
        (Some(f), _) => f.transpose() * &cb * f,
        (None, Some(f)) => f.transpose() * &ca * f,
        (None, None) => match ca.clone().cholesky() {
            Some(ch) => {
                let l = ch.unpack();
                l.transpose() * &cb * l
            }
            None => {
                let ra = psd_sqrt(&ca);
                &ra * &cb * &ra
            }
        },
    };
    let inner = (&inner + inner.transpose()) * 0.5;
    let tr_sqrt: f64 = inner.symmetric_eigenvalues().iter().map(|v| v.max(0.0).sqrt()).sum();
    ((ma - mb).norm_squared() + ca.trace() + cb.trace() - 2.0 * tr_sqrt).max(0.0)
}

const FEATURES: &[u8] = include_bytes!("../../data/digits-features.onnx");

/// The 64 features of the shipped digit classifier (`host/data/train_digits.py`) for rows of
/// 64 pixels in [0, 1] (n × 64).
pub fn digit_features(x: &[f32]) -> anyhow::Result<Vec<f32>> {
    let n = x.len() / 64;
    let model = tract_onnx::onnx()
        .model_for_read(&mut std::io::Cursor::new(FEATURES))?
        .with_input_fact(0, f32::fact([n, 64]).into())?
        .into_optimized()?
        .into_runnable()?;
    let out = model.run(tvec!(Tensor::from_shape(&[n, 64], x)?.into()))?;
    let view = out[0].try_as_plain_ram()?;
    Ok(view.as_slice::<f32>()?.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic rows in [−1, 1)·scale, with correlated columns.
    fn rows(n: usize, d: usize) -> Vec<f32> {
        let mut s = 12345u64;
        let mut out = Vec::with_capacity(n * d);
        for _ in 0..n {
            let mut prev = 0.0f32;
            for j in 0..d {
                s = s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                let u = (s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0;
                prev = 0.5 * prev + u * (j + 1) as f32;
                out.push(prev + 3.0);
            }
        }
        out
    }

    /// The streamed moments (blocks of 1024 rows; 2500 rows make a partial third block) against
    /// the plain two-pass formulas in f64: within 1e-12 of each covariance's scale (f64 sums of
    /// 2500 terms of the same sign pattern: ~2500 · 2⁻⁵³ ≈ 3e-13 relative).
    #[test]
    fn streamed_moments_match_the_plain_formulas() {
        let (n, d) = (2500, 5);
        let x = rows(n, d);
        let (mean, cov, _) = moments(x.chunks_exact(d), d);
        let m: Vec<f64> =
            (0..d).map(|j| (0..n).map(|i| x[i * d + j] as f64).sum::<f64>() / n as f64).collect();
        let scale = (0..d).map(|j| cov[(j, j)]).fold(0.0, f64::max);
        for a in 0..d {
            assert!((mean[a] - m[a]).abs() <= 1e-12 * m[a].abs().max(1.0), "mean {a}");
            for b in 0..d {
                let c: f64 = (0..n)
                    .map(|i| (x[i * d + a] as f64 - m[a]) * (x[i * d + b] as f64 - m[b]))
                    .sum::<f64>()
                    / (n - 1) as f64;
                assert!(
                    (cov[(a, b)] - c).abs() <= 1e-12 * scale,
                    "cov {a},{b}: {} vs {c}",
                    cov[(a, b)]
                );
            }
        }
    }

    /// Fewer rows than dimensions (either set, or both): the n × n form through the factor.
    /// A shifted copy (values on a 1/64 grid, so the shift is exact in f32) is at distance
    /// ‖shift‖² within 4√ε·tr C: the n × n matrix has one zero eigenvalue (the centred rows sum
    /// to zero), whose rounding noise (~ε·λ_max²) loses √ε·λ_max in its square root, twice — the
    /// d × d route has d − n + 1 of them. On random sets both routes agree within d·√ε·tr C; with
    /// more rows than dimensions (C_a positive definite: the Cholesky route) within 1e-12·tr C.
    #[test]
    fn few_rows_give_the_full_formula() {
        let d = 40;
        let x = rows(300, d);
        for n in [2, 8, 39] {
            let a: Vec<f32> = x[..n * d].iter().map(|v| (v * 64.0).round() / 64.0).collect();
            let shift: Vec<f32> = (0..d).map(|c| (c % 5) as f32 * 0.25 - 0.5).collect();
            let b: Vec<f32> = a.iter().enumerate().map(|(i, &v)| v + shift[i % d]).collect();
            let want: f64 = shift.iter().map(|&c| c as f64 * c as f64).sum();
            let tr = moments(a.chunks_exact(d), d).1.trace();
            let got = distance(&a, &b, d);
            let tol = 4.0 * f64::EPSILON.sqrt() * tr;
            assert!((got - want).abs() <= tol, "n = {n}: {got} vs {want} ± {tol}");
        }
        let full = |a: &[f32], b: &[f32]| {
            let (ma, ca, _) = moments(a.chunks_exact(d), d);
            let (mb, cb, _) = moments(b.chunks_exact(d), d);
            let ra = psd_sqrt(&ca);
            let inner = &ra * &cb * &ra;
            let inner = (&inner + inner.transpose()) * 0.5;
            let t: f64 = inner.symmetric_eigenvalues().iter().map(|v| v.max(0.0).sqrt()).sum();
            ((ma - mb).norm_squared() + ca.trace() + cb.trace() - 2.0 * t, ca.trace() + cb.trace())
        };
        for (na, nb) in [(8, 300), (300, 12), (5, 30), (2, 300), (300, 250)] {
            let (a, b) = (&x[..na * d], &x[x.len() - nb * d..]);
            let (want, tr) = full(a, b);
            let got = distance(a, b, d);
            // Both covariances of full rank: no eigenvalue near 0, the routes agree to rounding.
            let full_rank = na > d && nb > d;
            let tol = if full_rank { 1e-12 } else { d as f64 * f64::EPSILON.sqrt() } * tr;
            assert!((got - want.max(0.0)).abs() <= tol, "{na} × {nb}: {got} vs {want}");
        }
    }

    /// Two sets that differ by a shift c have equal covariances, so their distance is ‖c‖²; and
    /// every other row of a set (read in place) gives the same as its copy.
    #[test]
    fn distance_of_a_shifted_copy_is_the_shift() {
        let (n, d) = (1500, 4);
        let a = rows(n, d);
        let shift = [0.5f32, -0.25, 1.0, 0.0];
        let b: Vec<f32> = a.iter().enumerate().map(|(i, &v)| v + shift[i % d]).collect();
        let want: f64 = shift.iter().map(|&c| c as f64 * c as f64).sum();
        let tr: f64 = {
            let (_, c, _) = moments(a.chunks_exact(d), d);
            c.trace()
        };
        // The shifted values are rounded to f32 (2⁻²⁴ relative each) and the square roots of
        // the eigen-decompositions lose about √ε of tr C: 1e-6·tr C covers both.
        let got = distance(&a, &b, d);
        assert!((got - want).abs() <= 1e-6 * tr, "{got} vs {want}");
        let even: Vec<f32> = a.chunks_exact(d).step_by(2).flatten().copied().collect();
        let odd: Vec<f32> = a.chunks_exact(d).skip(1).step_by(2).flatten().copied().collect();
        let in_place =
            distance_rows(a.chunks_exact(d).skip(1).step_by(2), a.chunks_exact(d).step_by(2), d);
        assert_eq!(in_place.to_bits(), distance(&odd, &even, d).to_bits());
    }
}
