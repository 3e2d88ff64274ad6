//! Noise schedules σ_1 > σ_2 > … > σ_N > 0 and the two conventions for their ratio.
//!
//! `MATH.md` ("Notation") fixes two conventions that the papers use under the same letter γ:
//! - [`Ratio`]: σ_{i+1}/σ_i ∈ (0, 1), the CAS note's γ (η_i = 1 − γ_i^εc, β_i, the bound 1 − γ ≤ η);
//! - [`Growth`]: σ_{i−1}/σ_i > 1, NCSNv2's γ (Technique 2 and Proposition 3).
//!
//! Both are kept as their natural logarithm, so that ratios close to 1 (large N) lose nothing:
//! `1 − γ` is `−expm1(ln γ)`, never `1.0 − γ`.
//!
//! Schedules:
//! - [`Geometric`]: σ_i = σ_1 (σ_N/σ_1)^((i−1)/(N−1)), computed on demand for any N — a model trained on
//!   the continuum [σ_N, σ_1] is sampled at any budget, N = 10⁶ included, with no table.
//! - [`Table`]: a user-given strictly decreasing schedule stored in a fixed capacity.
//! - [`Borrowed`]: the same over a slice the caller owns.
//!
//! Indices passed to [`Schedule`] methods are 0-based (`sigma(0)` is σ_1); out-of-range indices
//! give `None`, never a panic.

use crate::error::{Error, Param, positive};

/// σ_{i+1}/σ_i, the CAS note's γ (in (0, 1)), stored as its logarithm.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Ratio {
    ln: f64,
}

impl Ratio {
    /// The ratio from its natural logarithm, which must be finite and `< 0`.
    pub fn from_ln(ln: f64) -> Option<Self> {
        (ln.is_finite() && ln < 0.0).then_some(Ratio { ln })
    }

    /// The ratio σ_next/σ of two levels, computed as `log1p((σ_next − σ)/σ)`: the difference is
    /// exact in floating point when the two are within a factor 2, so ratios close to 1 keep full
    /// relative precision in `1 − γ`.
    pub fn between(sigma: f64, sigma_next: f64) -> Option<Self> {
        Self::from_ln(libm::log1p((sigma_next - sigma) / sigma))
    }

    /// ln γ (< 0).
    pub fn ln(self) -> f64 {
        self.ln
    }

    /// γ = σ_{i+1}/σ_i.
    pub fn value(self) -> f64 {
        libm::exp(self.ln)
    }

    /// 1 − γ, without cancellation.
    pub fn one_minus(self) -> f64 {
        -libm::expm1(self.ln)
    }

    /// The inverse convention, σ_i/σ_{i+1}.
    pub fn growth(self) -> Growth {
        Growth { ln: -self.ln }
    }
}

/// σ_{i−1}/σ_i, NCSNv2's γ (> 1), stored as its logarithm.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Growth {
    ln: f64,
}

impl Growth {
    /// The growth factor from its natural logarithm, which must be finite and `> 0`.
    pub fn from_ln(ln: f64) -> Option<Self> {
        (ln.is_finite() && ln > 0.0).then_some(Growth { ln })
    }

    /// The growth factor g itself, which must be finite and `> 1`.
    pub fn new(g: f64) -> Option<Self> {
        if g.is_finite() && g > 1.0 { Self::from_ln(libm::log(g)) } else { None }
    }

    /// ln g (> 0).
    pub fn ln(self) -> f64 {
        self.ln
    }

    /// g = σ_{i−1}/σ_i.
    pub fn value(self) -> f64 {
        libm::exp(self.ln)
    }

    /// The inverse convention, σ_{i+1}/σ_i.
    pub fn ratio(self) -> Ratio {
        Ratio { ln: -self.ln }
    }
}

/// A strictly decreasing sequence of noise levels.
pub trait Schedule {
    /// N, the number of levels (≥ 1).
    fn levels(&self) -> usize;

    /// σ at 0-based level `i` (σ_{i+1} in the papers' 1-based notation); `None` past the end.
    fn sigma(&self, i: usize) -> Option<f64>;

    /// σ_{i+1}/σ_i between 0-based levels `i` and `i + 1`; `None` for the last level and beyond.
    fn ratio(&self, i: usize) -> Option<Ratio> {
        Ratio::between(self.sigma(i)?, self.sigma(i + 1)?)
    }

    /// σ_1, the largest level.
    fn sigma_max(&self) -> f64;

    /// σ_N, the smallest level.
    fn sigma_min(&self) -> f64;
}

impl<S: Schedule + ?Sized> Schedule for &S {
    fn levels(&self) -> usize {
        (**self).levels()
    }
    fn sigma(&self, i: usize) -> Option<f64> {
        (**self).sigma(i)
    }
    fn ratio(&self, i: usize) -> Option<Ratio> {
        (**self).ratio(i)
    }
    fn sigma_max(&self) -> f64 {
        (**self).sigma_max()
    }
    fn sigma_min(&self) -> f64 {
        (**self).sigma_min()
    }
}

/// The geometric schedule from (σ_1, σ_N, N), computed on demand.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Geometric {
    sigma_max: f64,
    sigma_min: f64,
    levels: usize,
    ratio: Ratio,
}

impl Geometric {
    /// σ_i = σ_1 (σ_N/σ_1)^((i−1)/(N−1)), i = 1..N.
    ///
    /// Errors: σ not finite or ≤ 0, σ_N ≥ σ_1, N < 2, or N so large that consecutive levels
    /// would be equal in f64.
    pub fn new(sigma_max: f64, sigma_min: f64, levels: usize) -> Result<Self, Error> {
        let sigma_max = positive(Param::SigmaMax, sigma_max)?;
        let sigma_min = positive(Param::SigmaMin, sigma_min)?;
        if sigma_min >= sigma_max {
            return Err(Error::NotDecreasing { level: 1, sigma: sigma_max, next: sigma_min });
        }
        if levels < 2 {
            return Err(Error::TooFewLevels { levels, min: 2 });
        }
        let span = ln_span(sigma_max, sigma_min);
        // Consecutive levels must differ by clearly more than the rounding of exp: 8 ulps.
        let min_step = 8.0 * f64::EPSILON;
        let max_levels = span / min_step + 1.0;
        if (levels as f64) > max_levels {
            return Err(Error::TooManyLevels { levels, max: max_levels as usize });
        }
        let ratio = Ratio::from_ln(-span / (levels - 1) as f64)
            .ok_or(Error::TooManyLevels { levels, max: max_levels as usize })?;
        Ok(Geometric { sigma_max, sigma_min, levels, ratio })
    }

    /// The schedule whose growth factor is `growth` (NCSNv2 Technique 2): N = 1 + ⌈ln(σ_1/σ_N)/ln g⌉
    /// levels, geometric between σ_1 and σ_N (so the realised growth is at most `growth`).
    pub fn with_growth(sigma_max: f64, sigma_min: f64, growth: Growth) -> Result<Self, Error> {
        let sigma_max = positive(Param::SigmaMax, sigma_max)?;
        let sigma_min = positive(Param::SigmaMin, sigma_min)?;
        if sigma_min >= sigma_max {
            return Err(Error::NotDecreasing { level: 1, sigma: sigma_max, next: sigma_min });
        }
        let steps = libm::ceil(ln_span(sigma_max, sigma_min) / growth.ln());
        if !(steps < (usize::MAX / 2) as f64) {
            return Err(Error::TooManyLevels { levels: usize::MAX, max: usize::MAX / 2 });
        }
        Self::new(sigma_max, sigma_min, 1 + steps as usize)
    }

    /// The constant ratio γ = σ_{i+1}/σ_i = (σ_N/σ_1)^(1/(N−1)).
    pub fn common_ratio(&self) -> Ratio {
        self.ratio
    }
}

/// ln(σ_1/σ_N) for finite positive ends: from the quotient where it is a normal float (one
/// rounding), else as ln σ_1 − ln σ_N (ends such as 10³⁰⁰ and 10⁻³⁰⁰, whose quotient overflows).
fn ln_span(sigma_max: f64, sigma_min: f64) -> f64 {
    let q = sigma_max / sigma_min;
    if q.is_normal() { libm::log(q) } else { libm::log(sigma_max) - libm::log(sigma_min) }
}

impl Schedule for Geometric {
    fn levels(&self) -> usize {
        self.levels
    }

    fn sigma(&self, i: usize) -> Option<f64> {
        if i + 1 == self.levels {
            Some(self.sigma_min)
        } else if i < self.levels {
            Some(self.sigma_max * libm::exp(i as f64 * self.ratio.ln()))
        } else {
            None
        }
    }

    fn ratio(&self, i: usize) -> Option<Ratio> {
        (i + 1 < self.levels).then_some(self.ratio)
    }

    fn sigma_max(&self) -> f64 {
        self.sigma_max
    }

    fn sigma_min(&self) -> f64 {
        self.sigma_min
    }
}

/// Validates a user-given schedule: finite, positive, strictly decreasing, at least `min_levels`.
fn validate(sigmas: &[f64], min_levels: usize) -> Result<(), Error> {
    if sigmas.len() < min_levels {
        return Err(Error::TooFewLevels { levels: sigmas.len(), min: min_levels });
    }
    for (i, &s) in sigmas.iter().enumerate() {
        if !(s.is_finite() && s > 0.0) {
            return Err(Error::InvalidSigma { level: i + 1, value: s });
        }
    }
    for (i, pair) in sigmas.windows(2).enumerate() {
        if let [a, b] = *pair {
            // Strictly decreasing, and decreasing enough that the ratio is representable (< 1).
            if b >= a || Ratio::between(a, b).is_none() {
                return Err(Error::NotDecreasing { level: i + 1, sigma: a, next: b });
            }
        }
    }
    Ok(())
}

/// A user-given schedule borrowed from the caller.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Borrowed<'a> {
    sigmas: &'a [f64],
}

impl<'a> Borrowed<'a> {
    /// Validates and wraps `sigmas` (at least 2 levels, finite, positive, strictly decreasing).
    pub fn new(sigmas: &'a [f64]) -> Result<Self, Error> {
        validate(sigmas, 2)?;
        Ok(Borrowed { sigmas })
    }

    /// A single-level "schedule" for the single-level samplers (N = 1 is valid only there).
    pub fn single(sigma: &'a [f64; 1]) -> Result<Self, Error> {
        validate(sigma, 1)?;
        Ok(Borrowed { sigmas: sigma })
    }

    /// The levels.
    pub fn as_slice(&self) -> &'a [f64] {
        self.sigmas
    }
}

impl Schedule for Borrowed<'_> {
    fn levels(&self) -> usize {
        self.sigmas.len()
    }
    fn sigma(&self, i: usize) -> Option<f64> {
        self.sigmas.get(i).copied()
    }
    fn sigma_max(&self) -> f64 {
        self.sigmas.first().copied().unwrap_or(f64::NAN)
    }
    fn sigma_min(&self) -> f64 {
        self.sigmas.last().copied().unwrap_or(f64::NAN)
    }
}

/// A user-given schedule stored in a fixed capacity `CAP` (no allocator).
#[derive(Debug, Clone, PartialEq)]
pub struct Table<const CAP: usize> {
    sigmas: heapless::Vec<f64, CAP>,
}

impl<const CAP: usize> Table<CAP> {
    /// Copies and validates `sigmas`: at least 2 levels, at most `CAP`, finite, positive, strictly
    /// decreasing.
    pub fn new(sigmas: &[f64]) -> Result<Self, Error> {
        validate(sigmas, 2)?;
        let sigmas = heapless::Vec::from_slice(sigmas)
            .map_err(|_| Error::TooManyLevels { levels: sigmas.len(), max: CAP })?;
        Ok(Table { sigmas })
    }

    /// Samples a schedule at its levels into a table (e.g. a [`Geometric`] frozen for display).
    pub fn from_schedule<S: Schedule>(schedule: &S) -> Result<Self, Error> {
        let n = schedule.levels();
        if n > CAP {
            return Err(Error::TooManyLevels { levels: n, max: CAP });
        }
        let mut sigmas = heapless::Vec::new();
        for i in 0..n {
            let s = schedule.sigma(i).unwrap_or(f64::NAN);
            sigmas.push(s).map_err(|_| Error::TooManyLevels { levels: n, max: CAP })?;
        }
        validate(&sigmas, 2)?;
        Ok(Table { sigmas })
    }

    /// The levels.
    pub fn as_slice(&self) -> &[f64] {
        &self.sigmas
    }
}

#[cfg(feature = "defmt")]
impl<const CAP: usize> defmt::Format for Table<CAP> {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "Table({=[?]})", self.sigmas.as_slice());
    }
}

impl<const CAP: usize> Schedule for Table<CAP> {
    fn levels(&self) -> usize {
        self.sigmas.len()
    }
    fn sigma(&self, i: usize) -> Option<f64> {
        self.sigmas.get(i).copied()
    }
    fn sigma_max(&self) -> f64 {
        self.sigmas.first().copied().unwrap_or(f64::NAN)
    }
    fn sigma_min(&self) -> f64 {
        self.sigmas.last().copied().unwrap_or(f64::NAN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometric_endpoints_and_ratio() -> Result<(), Error> {
        let g = Geometric::new(50.0, 0.01, 232)?;
        assert_eq!(g.sigma(0), Some(50.0));
        assert_eq!(g.sigma(231), Some(0.01));
        assert_eq!(g.sigma(232), None);
        let expected = libm::pow(0.01 / 50.0, 1.0 / 231.0);
        assert!((g.common_ratio().value() - expected).abs() < 1e-15);
        assert!((g.common_ratio().growth().value() * expected - 1.0).abs() < 1e-15);
        Ok(())
    }

    #[test]
    fn table_rejects_bad_input() {
        assert!(matches!(Table::<4>::new(&[1.0, 1.0]), Err(Error::NotDecreasing { level: 1, .. })));
        assert!(matches!(
            Table::<4>::new(&[1.0, 0.5, f64::NAN]),
            Err(Error::InvalidSigma { level: 3, .. })
        ));
        assert!(matches!(
            Table::<2>::new(&[3.0, 2.0, 1.0]),
            Err(Error::TooManyLevels { levels: 3, max: 2 })
        ));
        assert!(matches!(Table::<2>::new(&[3.0]), Err(Error::TooFewLevels { levels: 1, min: 2 })));
    }
}

/// A geometric schedule of N ≥ 2 levels, or the single level σ (the single-level samplers): the
/// schedules a run is configured with.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum GeometricOrSingle {
    /// N ≥ 2 geometric levels.
    Geometric(Geometric),
    /// One level σ (finite, > 0).
    Single(f64),
}

impl GeometricOrSingle {
    /// The single level `sigma` (validated like every σ).
    pub fn single(sigma: f64) -> Result<Self, Error> {
        validate(&[sigma], 1)?;
        Ok(GeometricOrSingle::Single(sigma))
    }
}

impl Schedule for GeometricOrSingle {
    fn levels(&self) -> usize {
        match self {
            GeometricOrSingle::Geometric(g) => g.levels(),
            GeometricOrSingle::Single(_) => 1,
        }
    }
    fn sigma(&self, i: usize) -> Option<f64> {
        match self {
            GeometricOrSingle::Geometric(g) => g.sigma(i),
            GeometricOrSingle::Single(s) => (i == 0).then_some(*s),
        }
    }
    fn ratio(&self, i: usize) -> Option<Ratio> {
        match self {
            GeometricOrSingle::Geometric(g) => g.ratio(i),
            GeometricOrSingle::Single(_) => None,
        }
    }
    fn sigma_max(&self) -> f64 {
        match self {
            GeometricOrSingle::Geometric(g) => g.sigma_max(),
            GeometricOrSingle::Single(s) => *s,
        }
    }
    fn sigma_min(&self) -> f64 {
        match self {
            GeometricOrSingle::Geometric(g) => g.sigma_min(),
            GeometricOrSingle::Single(s) => *s,
        }
    }
}
