//! Scores s(x, σ) ≈ ∇ log p_σ(x): the [`Score`] trait and analytic scores (`MATH.md`, "Analytic
//! scores").
//!
//! - [`Gaussian`]: N(μ, τ²I), so p_σ = N(μ, (τ² + σ²)I) and `s = (μ − x)/(τ² + σ²)`.
//! - [`IsotropicMixture`]: Σ_k w_k N(μ_k, τ_k² I); `s = Σ_k r_k (μ_k − x)/v_k`, `v_k = τ_k² + σ²`,
//!   `r_k ∝ w_k v_k^(−D/2) exp(−‖x − μ_k‖²/(2 v_k))`. The softmax over k is computed online in log
//!   space (running maximum, rescaled running sums), so it needs no buffer of size K and is safe at
//!   the smallest σ, where the logits are ~10⁵ apart.
//! - [`FullCovMixture`]: Σ_k w_k N(μ_k, Σ_k) of fixed size, by nalgebra's Cholesky of Σ_k + σ²I;
//!   `s = Σ_k r_k (Σ_k + σ²I)⁻¹(μ_k − x)` with the log-determinants in r_k.
//!
//! Distances and logits are accumulated in f64 whatever the buffer type.

use core::num::NonZeroUsize;

use nalgebra::{SMatrix, SVector};

use crate::error::{Error, Param};
use crate::real::Real;

/// The score of a noise-perturbed density, one sample at a time, without allocation.
pub trait Score<F: Real> {
    /// The dimension D.
    fn dim(&self) -> usize;
    /// Writes s(x, σ) into `out`. `x` and `out` have length D.
    fn score(&self, x: &[F], sigma: f64, out: &mut [F]) -> Result<(), Error>;
}

impl<F: Real, S: Score<F> + ?Sized> Score<F> for &S {
    fn dim(&self) -> usize {
        (**self).dim()
    }
    fn score(&self, x: &[F], sigma: f64, out: &mut [F]) -> Result<(), Error> {
        (**self).score(x, sigma, out)
    }
}

fn check_len(expected: usize, found: usize) -> Result<(), Error> {
    if expected == found { Ok(()) } else { Err(Error::DimensionMismatch { expected, found }) }
}

fn check_sigma(sigma: f64) -> Result<(), Error> {
    if sigma.is_finite() && sigma >= 0.0 {
        Ok(())
    } else {
        Err(Error::InvalidSigma { level: 0, value: sigma })
    }
}

fn check_tau(tau: f64) -> Result<f64, Error> {
    if tau.is_finite() && tau >= 0.0 {
        Ok(tau)
    } else {
        Err(Error::OutOfRange { param: Param::Tau, value: tau, allowed: "finite and ≥ 0" })
    }
}

/// Validates weights (finite, > 0) and returns ln Σ w.
fn log_weight_sum(weights: &[f64]) -> Result<f64, Error> {
    let mut sum = 0.0;
    for &w in weights {
        if !(w.is_finite() && w > 0.0) {
            return Err(Error::OutOfRange {
                param: Param::Weight,
                value: w,
                allowed: "finite and > 0",
            });
        }
        sum += w;
    }
    Ok(libm::log(sum))
}

/// ‖x − μ‖², summed in blocks of 16 in the buffer type and across blocks in f64: the relative
/// error is ~16 ulps of F plus f64 rounding (~2e-6 for f32, whatever D), where a plain f32 sum over
/// D = 3072 would lose ~2e-4 — enough to move a logit at σ = 0.01 visibly — and a sum entirely in
/// f64 costs a soft-float call per element on a Cortex-M4F.
pub fn squared_distance<F: Real>(x: &[F], mu: &[F]) -> f64 {
    let mut total = 0.0f64;
    for (xb, mb) in x.chunks(16).zip(mu.chunks(16)) {
        let mut block = F::ZERO;
        for (&a, &b) in xb.iter().zip(mb) {
            let d = a - b;
            block += d * d;
        }
        total += block.to_f64();
    }
    total
}

/// N(μ, τ²I): `s(x, σ) = (μ − x)/(τ² + σ²)`.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Gaussian<'a, F> {
    mean: &'a [F],
    tau: f64,
}

impl<'a, F: Real> Gaussian<'a, F> {
    /// Mean μ (length D ≥ 1, finite) and standard deviation τ ≥ 0 (0: a point mass).
    pub fn new(mean: &'a [F], tau: f64) -> Result<Self, Error> {
        if mean.is_empty() {
            return Err(Error::OutOfRange { param: Param::Dim, value: 0.0, allowed: "≥ 1" });
        }
        if let Some(index) = mean.iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFiniteInput { index });
        }
        Ok(Gaussian { mean, tau: check_tau(tau)? })
    }
}

impl<F: Real> Score<F> for Gaussian<'_, F> {
    fn dim(&self) -> usize {
        self.mean.len()
    }
    fn score(&self, x: &[F], sigma: f64, out: &mut [F]) -> Result<(), Error> {
        check_len(self.mean.len(), x.len())?;
        check_len(self.mean.len(), out.len())?;
        check_sigma(sigma)?;
        let inv = F::from_f64(1.0 / perturbed_variance(self.tau, sigma));
        for ((o, &xi), &mu) in out.iter_mut().zip(x).zip(self.mean) {
            *o = (mu - xi) * inv;
        }
        Ok(())
    }
}

/// The per-component standard deviations of an [`IsotropicMixture`].
#[derive(Debug, Clone, Copy)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Taus<'a> {
    /// One τ for every component.
    Shared(f64),
    /// τ_k per component.
    PerComponent(&'a [f64]),
}

/// Σ_k w_k N(μ_k, τ_k² I) with the means borrowed row-major (K × D).
#[derive(Debug, Clone, Copy)]
pub struct IsotropicMixture<'a, F> {
    means: &'a [F],
    dim: NonZeroUsize,
    weights: Option<&'a [f64]>,
    ln_weight_sum: f64,
    taus: Taus<'a>,
}

impl<'a, F: Real> IsotropicMixture<'a, F> {
    /// Components at the rows of `means` (K × `dim`), weights `weights` (K positive values, not
    /// necessarily normalised; `None` = equal), standard deviations `taus`.
    pub fn new(
        means: &'a [F],
        dim: usize,
        weights: Option<&'a [f64]>,
        taus: Taus<'a>,
    ) -> Result<Self, Error> {
        let Some(nz) = NonZeroUsize::new(dim) else {
            return Err(Error::OutOfRange { param: Param::Dim, value: 0.0, allowed: "≥ 1" });
        };
        if means.is_empty() || !means.len().is_multiple_of(dim) {
            return Err(Error::DimensionMismatch {
                expected: (means.len() / nz).max(1) * dim,
                found: means.len(),
            });
        }
        if let Some(index) = means.iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFiniteInput { index });
        }
        let k = means.len() / nz;
        let ln_weight_sum = match weights {
            Some(w) => {
                check_len(k, w.len())?;
                log_weight_sum(w)?
            }
            None => libm::log(k as f64),
        };
        match taus {
            Taus::Shared(t) => {
                check_tau(t)?;
            }
            Taus::PerComponent(t) => {
                check_len(k, t.len())?;
                for &v in t {
                    check_tau(v)?;
                }
            }
        }
        Ok(IsotropicMixture { means, dim: nz, weights, ln_weight_sum, taus })
    }

    /// K, the number of components.
    pub fn components(&self) -> usize {
        self.means.len() / self.dim
    }

    /// The means, row-major.
    pub fn means(&self) -> &'a [F] {
        self.means
    }

    /// τ_k.
    pub fn tau(&self, k: usize) -> f64 {
        match self.taus {
            Taus::Shared(t) => t,
            Taus::PerComponent(t) => t.get(k).copied().unwrap_or(0.0),
        }
    }

    /// ln w_k (normalised).
    pub fn ln_weight(&self, k: usize) -> f64 {
        match self.weights {
            Some(w) => libm::log(w.get(k).copied().unwrap_or(0.0)) - self.ln_weight_sum,
            None => -self.ln_weight_sum,
        }
    }

    /// The log-responsibility logits l_k(x, σ) = ln w_k − (D/2) ln v_k − ‖x − μ_k‖²/(2 v_k),
    /// written into `out` (length K); the softmax of these is r_k.
    pub fn logits(&self, x: &[F], sigma: f64, out: &mut [f64]) -> Result<(), Error> {
        check_len(self.dim.get(), x.len())?;
        check_len(self.components(), out.len())?;
        check_sigma(sigma)?;
        for (k, (o, mu)) in out.iter_mut().zip(self.means.chunks_exact(self.dim.get())).enumerate()
        {
            *o = self.logit(k, x, mu, sigma).0;
        }
        Ok(())
    }

    /// (ln w_k − (D/2) ln v_k, v_k): the logit l_k(x, σ) is the first minus ‖x − μ_k‖²/(2 v_k),
    /// so that a caller evaluating many points computes the first once.
    pub fn logit_parts(&self, k: usize, sigma: f64) -> (f64, f64) {
        let v = perturbed_variance(self.tau(k), sigma);
        (self.ln_weight(k) - 0.5 * self.dim.get() as f64 * libm::log(v), v)
    }

    /// (l_k, 1/v_k).
    fn logit(&self, k: usize, x: &[F], mu: &[F], sigma: f64) -> (f64, f64) {
        let (c, v) = self.logit_parts(k, sigma);
        let d2 = squared_distance(x, mu);
        (c - 0.5 * d2 / v, 1.0 / v)
    }
}

#[cfg(feature = "defmt")]
impl<F> defmt::Format for IsotropicMixture<'_, F> {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(
            f,
            "IsotropicMixture {{ dim: {=usize}, components: {=usize} }}",
            self.dim.get(),
            self.means.len() / self.dim
        );
    }
}

impl<F: Real> Score<F> for IsotropicMixture<'_, F> {
    fn dim(&self) -> usize {
        self.dim.get()
    }

    fn score(&self, x: &[F], sigma: f64, out: &mut [F]) -> Result<(), Error> {
        check_len(self.dim.get(), x.len())?;
        check_len(self.dim.get(), out.len())?;
        check_sigma(sigma)?;
        if sigma == 0.0 && (0..self.components()).any(|k| self.tau(k) == 0.0) {
            return Err(Error::InvalidSigma { level: 0, value: sigma });
        }
        // Online softmax: m = running max logit, z = Σ exp(l_k − m), out = Σ exp(l_k − m)(μ_k − x)/v_k.
        let mut m = f64::NEG_INFINITY;
        let mut z = 0.0f64;
        for o in out.iter_mut() {
            *o = F::ZERO;
        }
        for (k, mu) in self.means.chunks_exact(self.dim.get()).enumerate() {
            let (l, inv_v) = self.logit(k, x, mu, sigma);
            if l > m {
                let rescale = libm::exp(m - l);
                z *= rescale;
                let r = F::from_f64(rescale);
                for o in out.iter_mut() {
                    *o *= r;
                }
                m = l;
            }
            let e = libm::exp(l - m);
            z += e;
            let c = F::from_f64(e * inv_v);
            for ((o, &xi), &mi) in out.iter_mut().zip(x).zip(mu) {
                *o += c * (mi - xi);
            }
        }
        let inv_z = F::from_f64(1.0 / z);
        for o in out.iter_mut() {
            *o *= inv_z;
        }
        Ok(())
    }
}

/// Σ_k w_k N(μ_k, Σ_k) in fixed dimension `D` with `K` components (nalgebra, no allocation).
#[derive(Debug, Clone, Copy)]
pub struct FullCovMixture<const D: usize, const K: usize> {
    means: [SVector<f64, D>; K],
    covs: [SMatrix<f64, D, D>; K],
    ln_weights: [f64; K],
}

impl<const D: usize, const K: usize> FullCovMixture<D, K> {
    /// Components N(μ_k, Σ_k) with weights w_k > 0 (normalised here). Each Σ_k must be symmetric
    /// positive semi-definite (checked at score time through the Cholesky of Σ_k + σ²I).
    pub fn new(
        means: [SVector<f64, D>; K],
        covs: [SMatrix<f64, D, D>; K],
        weights: [f64; K],
    ) -> Result<Self, Error> {
        if D == 0 || K == 0 {
            return Err(Error::OutOfRange { param: Param::Dim, value: 0.0, allowed: "D, K ≥ 1" });
        }
        let ln_sum = log_weight_sum(&weights)?;
        for (k, (m, c)) in means.iter().zip(&covs).enumerate() {
            if !m.iter().chain(c.iter()).all(|v| v.is_finite()) {
                return Err(Error::NonFiniteInput { index: k });
            }
            if (c - c.transpose()).abs().max() > 1e-12 * c.abs().max() {
                return Err(Error::OutOfRange {
                    param: Param::Tau,
                    value: (c - c.transpose()).abs().max(),
                    allowed: "a symmetric covariance",
                });
            }
        }
        let mut ln_weights = [0.0; K];
        for (l, w) in ln_weights.iter_mut().zip(weights) {
            *l = libm::log(w) - ln_sum;
        }
        Ok(FullCovMixture { means, covs, ln_weights })
    }
}

#[cfg(feature = "defmt")]
impl<const D: usize, const K: usize> defmt::Format for FullCovMixture<D, K> {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "FullCovMixture {{ dim: {=usize}, components: {=usize} }}", D, K);
    }
}

impl<F: Real, const D: usize, const K: usize> Score<F> for FullCovMixture<D, K> {
    fn dim(&self) -> usize {
        D
    }

    fn score(&self, x: &[F], sigma: f64, out: &mut [F]) -> Result<(), Error> {
        check_len(D, x.len())?;
        check_len(D, out.len())?;
        check_sigma(sigma)?;
        let xv = SVector::<f64, D>::from_iterator(x.iter().map(|v| v.to_f64()));
        let mut m = f64::NEG_INFINITY;
        let mut z = 0.0f64;
        let mut acc = SVector::<f64, D>::zeros();
        for ((mu, cov), &lw) in self.means.iter().zip(&self.covs).zip(&self.ln_weights) {
            let a = cov + SMatrix::<f64, D, D>::identity() * (sigma * sigma);
            let chol = a.cholesky().ok_or(Error::OutOfRange {
                param: Param::Tau,
                value: sigma,
                allowed: "a positive semi-definite covariance (Σ_k + σ²I must be positive definite)",
            })?;
            let diff = mu - xv;
            let y = chol.solve(&diff);
            let log_det =
                2.0 * chol.l_dirty().diagonal().iter().map(|d| libm::log(*d)).sum::<f64>();
            let l = lw - 0.5 * log_det - 0.5 * diff.dot(&y);
            if l > m {
                let r = libm::exp(m - l);
                z *= r;
                acc *= r;
                m = l;
            }
            let e = libm::exp(l - m);
            z += e;
            acc += y * e;
        }
        for (o, v) in out.iter_mut().zip(acc.iter()) {
            *o = F::from_f64(v / z);
        }
        Ok(())
    }
}

/// Whether a mixture of `components` means in `dim` dimensions is small enough for the direct
/// score — every ‖y − μ_k‖² and the softmax in f64 per sample, no matrix products: K·D ≤ 64 and
/// D ≤ 16 (the GPU's direct kernel keeps a sample's state in registers). The host and the GPU
/// choose their path by this one rule.
pub const fn is_small_mixture(components: usize, dim: usize) -> bool {
    dim <= 16 && components.saturating_mul(dim) <= 64
}

/// v = τ² + σ²: the variance of a component N(μ, τ² I) perturbed by noise of level σ.
#[inline]
pub fn perturbed_variance(tau: f64, sigma: f64) -> f64 {
    tau * tau + sigma * sigma
}

/// A Gaussian mixture whose components share one standard deviation τ, given by its data: K × D
/// means (f32, row-major), K weights summing to 1, τ ≥ 0. The one description that the host's
/// batched score and the GPU backend both take.
#[derive(Debug, Clone, Copy)]
pub struct MixtureData<'a> {
    /// The means, K × D row-major.
    pub means: &'a [f32],
    /// D.
    pub dim: usize,
    /// The K weights.
    pub weights: &'a [f64],
    /// τ.
    pub tau: f64,
}

impl MixtureData<'_> {
    /// K (0 when D is 0).
    pub fn components(&self) -> usize {
        self.means.len().checked_div(self.dim).unwrap_or(0)
    }

    /// Whether the direct score serves it ([`is_small_mixture`]).
    pub fn is_small(&self) -> bool {
        is_small_mixture(self.components(), self.dim)
    }
}
