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

/// The mean and covariance (÷ (n − 1)) of `n` rows of `d` values, in f64.
fn moments(x: &[f32], d: usize) -> (DVector<f64>, DMatrix<f64>) {
    let n = x.len() / d;
    let m = DMatrix::from_fn(n, d, |i, j| x[i * d + j] as f64);
    let mean = DVector::from_fn(d, |j, _| m.column(j).sum() / n as f64);
    let centred = DMatrix::from_fn(n, d, |i, j| m[(i, j)] - mean[j]);
    let cov = centred.transpose() * &centred / (n.max(2) - 1) as f64;
    (mean, cov)
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
    let (ma, ca) = moments(a, d);
    let (mb, cb) = moments(b, d);
    let ra = psd_sqrt(&ca);
    let inner = &ra * &cb * &ra;
    let inner = (&inner + inner.transpose()) * 0.5;
    let tr_sqrt: f64 =
        SymmetricEigen::new(inner).eigenvalues.iter().map(|v| v.max(0.0).sqrt()).sum();
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
