//! Plans — per-step coefficient records — and the one executor that runs any plan.
//!
//! Every sampler of `MATH.md` is, per step, a few linear updates of at most two state vectors: `x`
//! and an auxiliary `a` (BAOAB/OBABO's momentum, or BAOAB-limit's previous noise). A step
//! 1. draws fresh noise ξ ~ N(0, I) (if [`Step::noise`]);
//! 2. evaluates the score once, at the point `y = x + point.aux·a + point.noise·ξ`, at σ = [`Step::sigma`];
//! 3. replaces `x ← x.x·x + x.aux·a + x.score·s + x.noise·ξ` and `a ← aux.x·x + aux.aux·a + aux.score·s + aux.noise·ξ`
//!    (both from the old values).
//!
//! A sampler is a [`Plan`]: a function from the step number to its [`Step`], computed on demand
//! (no table; N = 10⁶ costs nothing). Backends execute plans and never re-derive a coefficient.
//! The two data-dependent updates stay explicit: the signal-to-noise corrector ([`Update::Snr`],
//! its α needs ‖s‖ and ‖ξ‖) and inpainting's mask projection ([`Inpaint`]).
//!
//! [`run`] executes a plan over a batch of samples stored row-major in caller-provided buffers.
//! Noise comes from a [`Noise`] source addressed by (sample index, step), so with
//! [`crate::noise::Keyed`] sample j's trajectory does not depend on the batch it is run in. After
//! every step the state is checked: a NaN or ∞ stops the run with [`Error::NonFinite`] naming
//! the level and step.

use core::num::NonZeroUsize;

use crate::error::{Error, Quantity};
use crate::noise::{Noise, Stream};
use crate::real::Real;
use crate::score::Score;

/// Where the score is evaluated: `y = x + aux·a + noise·ξ`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Point {
    /// Coefficient of the auxiliary state.
    pub aux: f64,
    /// Coefficient of the fresh noise ξ.
    pub noise: f64,
}

/// A linear combination `x·x + aux·a + score·s + noise·ξ`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Lin {
    /// Coefficient of x.
    pub x: f64,
    /// Coefficient of the auxiliary state a.
    pub aux: f64,
    /// Coefficient of the score s(y, σ).
    pub score: f64,
    /// Coefficient of the fresh noise ξ.
    pub noise: f64,
}

impl Lin {
    /// `x ← x` (and nothing else).
    pub const KEEP_X: Lin = Lin { x: 1.0, aux: 0.0, score: 0.0, noise: 0.0 };
    /// `a ← a`.
    pub const KEEP_AUX: Lin = Lin { x: 0.0, aux: 1.0, score: 0.0, noise: 0.0 };
}

/// How the signal-to-noise corrector's norms are taken.
///
/// The step `α = 2 (snr ‖ξ‖/‖s‖)²` taken from a sample's *own* norms depends on its state: near a
/// mode's centre ‖s‖ → 0 and α grows without bound. A Langevin chain whose step α(x) depends on
/// the state has the stationary density p(x)/α(x), not p(x) (zero Fokker–Planck flux of
/// `dX = α ∇log p dt + √(2α) dW`), and with α ∝ 1/‖s‖² that pushes mass out of every mode: in
/// low dimension (where ‖s‖ does not concentrate) the per-sample rule is biased, and it can
/// diverge. Means over many samples make α (almost) state-free, as score_sde's batch means do;
/// [`SnrNorms::Grouped`] takes them over fixed groups of samples so that a sample does not depend
/// on the batch it runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum SnrNorms {
    /// The means of ‖s‖ and of ‖ξ‖ over consecutive groups of `size` rows of the batch (the
    /// last group of a batch may be shorter). A caller that starts every batch at a multiple
    /// of `size` (and makes every batch but the last a multiple of it) gets samples that do not
    /// depend on the batch size: the default, with [`SnrNorms::DEFAULT_GROUP`].
    Grouped {
        /// Samples per group, ≥ 1.
        size: u32,
    },
    /// ‖s‖ and ‖ξ‖ of each sample (biased in low dimension, see above; `Grouped` with size 1).
    PerSample,
    /// Their means over the batch, as score_sde and diffusers compute them — for comparison only:
    /// a sample then depends on the batch it is run in.
    BatchMean,
}

impl SnrNorms {
    /// The default group: 256 samples.
    pub const DEFAULT_GROUP: u32 = 256;
}

impl Default for SnrNorms {
    fn default() -> Self {
        SnrNorms::Grouped { size: SnrNorms::DEFAULT_GROUP }
    }
}

/// How a step replaces the state.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Update {
    /// `x ← x·…`, `a ← aux·…` (see [`Lin`]).
    Linear {
        /// The new x.
        x: Lin,
        /// The new auxiliary state.
        aux: Lin,
    },
    /// The signal-to-noise corrector (Song et al. 2021): `α = 2 (snr ‖ξ‖/‖s‖)²`, then
    /// `x ← x + α s + √(2α) ξ`.
    Snr {
        /// The signal-to-noise ratio, in (0, 1).
        snr: f64,
        /// Per sample or batch mean.
        norms: SnrNorms,
    },
}

/// One step of a plan.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Step {
    /// The level (0-based) whose σ the score is evaluated at.
    pub level: usize,
    /// σ of the score evaluation.
    pub sigma: f64,
    /// Whether fresh noise ξ is drawn (otherwise ξ = 0).
    pub noise: bool,
    /// The score evaluation point.
    pub point: Point,
    /// The update.
    pub update: Update,
    /// The noise level the state is at after this step: inpainting projects the known part onto
    /// `x_known + sigma_after · z̃_{level_after}`. 0 after a final denoising step.
    pub sigma_after: f64,
    /// The level (0-based) whose inpainting noise z̃ goes with `sigma_after`.
    pub level_after: usize,
}

impl Step {
    /// A plain Langevin-type step at `level`: `x ← x + a s(x, σ) + c ξ`.
    pub fn simple(
        level: usize,
        sigma: f64,
        score: f64,
        noise: f64,
        sigma_after: f64,
        level_after: usize,
    ) -> Self {
        Step {
            level,
            sigma,
            noise: noise != 0.0,
            point: Point::default(),
            update: Update::Linear {
                x: Lin { x: 1.0, aux: 0.0, score, noise },
                aux: Lin::KEEP_AUX,
            },
            sigma_after,
            level_after,
        }
    }

    /// The final denoising step `x ← H(x, σ) = x + σ² s(x, σ)` (Tweedie), at `level`.
    pub fn denoise(level: usize, sigma: f64) -> Self {
        Step::simple(level, sigma, sigma * sigma, 0.0, 0.0, level)
    }
}

/// How a plan's auxiliary state starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum AuxInit {
    /// The plan has no auxiliary state (the aux buffer may be empty).
    None,
    /// a_0 ~ N(0, I) (momentum at unit mass; BAOAB-limit's ξ_0).
    Normal,
}

/// A sampler as a sequence of steps.
pub trait Plan {
    /// The number of steps.
    fn len(&self) -> usize;
    /// Step `k` (0-based); `None` past the end.
    fn step(&self, k: usize) -> Option<Step>;
    /// How the auxiliary state starts.
    fn aux_init(&self) -> AuxInit {
        AuxInit::None
    }
    /// Whether the plan has no step.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The level and σ the state is at after the last step (None for a plan without steps). By
    /// default the last step says; a sampler over a schedule answers from the schedule.
    fn end(&self) -> Option<(usize, f64)> {
        let last = self.step(self.len().checked_sub(1)?)?;
        Some((last.level_after, last.sigma_after))
    }

    /// This plan followed by the denoising step `x ← x + σ² s(x, σ)` at the level and σ its last
    /// step leaves the state at (σ_N for CAS, ALS and PC) — NCSNv2's "denoise", for any plan.
    fn denoised(self) -> Result<Denoised<Self>, Error>
    where
        Self: Sized,
    {
        Denoised::new(self, true)
    }
}

impl<P: Plan + ?Sized> Plan for &P {
    fn len(&self) -> usize {
        (**self).len()
    }
    fn step(&self, k: usize) -> Option<Step> {
        (**self).step(k)
    }
    fn aux_init(&self) -> AuxInit {
        (**self).aux_init()
    }
    fn end(&self) -> Option<(usize, f64)> {
        (**self).end()
    }
}

/// A plan and, optionally, the final denoising step ([`Plan::denoised`]): the one place that adds
/// it, whatever the sampler. The step's level and σ are where the plan leaves the state
/// ([`Plan::end`]), read when the step is asked for.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Denoised<P> {
    plan: P,
    on: bool,
}

impl<P: Plan> Denoised<P> {
    /// `plan`, followed by the denoising step when `on` (a plan without steps cannot be).
    pub fn new(plan: P, on: bool) -> Result<Self, Error> {
        let n = plan.len();
        if on && n == 0 {
            return Err(Error::TooFewLevels { levels: 0, min: 1 });
        }
        crate::samplers::check_len(n.saturating_add(on as usize))?;
        Ok(Denoised { plan, on })
    }

    /// The plan it wraps.
    pub fn inner(&self) -> &P {
        &self.plan
    }
}

impl<P: Plan> Plan for Denoised<P> {
    #[inline]
    fn len(&self) -> usize {
        self.plan.len() + self.on as usize
    }
    #[inline]
    fn step(&self, k: usize) -> Option<Step> {
        let n = self.plan.len();
        if k < n {
            self.plan.step(k)
        } else if self.on && k == n {
            let (level, sigma) = self.plan.end()?;
            Some(Step::denoise(level, sigma))
        } else {
            None
        }
    }
    #[inline]
    fn aux_init(&self) -> AuxInit {
        self.plan.aux_init()
    }
}

/// A score evaluated for a batch of points at once (row-major, B × D). Every per-sample
/// [`Score`] is one, row by row; the host's batched GEMM score implements it directly.
pub trait BatchScore<F: Real> {
    /// The dimension D.
    fn dim(&self) -> usize;
    /// Writes s(points_b, σ) into row b of `out` for every row b.
    fn score_batch(&mut self, points: &[F], sigma: f64, out: &mut [F]) -> Result<(), Error>;
}

/// Adapts a per-sample [`Score`] to [`BatchScore`].
#[derive(Debug, Clone, Copy)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct PerSample<S>(pub S);

impl<F: Real, S: Score<F>> BatchScore<F> for PerSample<S> {
    fn dim(&self) -> usize {
        self.0.dim()
    }
    fn score_batch(&mut self, points: &[F], sigma: f64, out: &mut [F]) -> Result<(), Error> {
        let d = nonzero_dim(self.0.dim(), points.len())?;
        if points.len() != out.len() {
            return Err(Error::DimensionMismatch { expected: points.len(), found: out.len() });
        }
        for (p, o) in points.chunks_exact(d.get()).zip(out.chunks_exact_mut(d.get())) {
            self.0.score(p, sigma, o)?;
        }
        Ok(())
    }
}

/// The buffers of a batch of B samples of dimension D, all row-major B × D except where noted.
#[derive(Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Batch<'a, F> {
    /// D.
    pub dim: usize,
    /// The global index of row 0 (noise streams are keyed by global index).
    pub first_sample: u64,
    /// The states x (input: the initial states; output: the samples).
    pub x: &'a mut [F],
    /// The auxiliary states (B × D, or empty for plans with [`AuxInit::None`]).
    pub aux: &'a mut [F],
    /// Scratch: the score.
    pub score: &'a mut [F],
    /// Scratch: the noise ξ.
    pub noise: &'a mut [F],
    /// Scratch: the score evaluation points.
    pub point: &'a mut [F],
}

impl<F: Real> Batch<'_, F> {
    /// B.
    pub fn samples(&self) -> usize {
        self.x.len().checked_div(self.dim).unwrap_or(0)
    }

    fn validate(&self, needs_aux: bool) -> Result<(), Error> {
        let n = self.x.len();
        if self.dim == 0 || !n.is_multiple_of(self.dim) {
            return Err(Error::DimensionMismatch { expected: self.dim.max(1), found: n });
        }
        for len in [self.score.len(), self.noise.len(), self.point.len()] {
            if len != n {
                return Err(Error::DimensionMismatch { expected: n, found: len });
            }
        }
        if needs_aux && self.aux.len() != n {
            return Err(Error::DimensionMismatch { expected: n, found: self.aux.len() });
        }
        Ok(())
    }
}

/// Inpainting (NCSN, Alg. 2): after every step, `x ← x ⊙ (1 − m) + y ⊙ m` with
/// `y = x_known + σ_after z̃`, z̃ drawn once per level.
#[derive(Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Inpaint<'a, F> {
    /// The known values: D (shared by the batch) or B × D (one row per sample).
    pub known: &'a [F],
    /// The mask, 1 = known, 0 = unknown: D or B × D. Other values are refused.
    pub mask: &'a [F],
    /// Scratch for the level noise z̃, B × D.
    pub level_noise: &'a mut [F],
}

impl<F: Real> Inpaint<'_, F> {
    fn validate(&self, dim: usize, n: usize) -> Result<(), Error> {
        for len in [self.known.len(), self.mask.len()] {
            if len != dim && len != n {
                return Err(Error::DimensionMismatch { expected: n, found: len });
            }
        }
        if self.level_noise.len() != n {
            return Err(Error::DimensionMismatch { expected: n, found: self.level_noise.len() });
        }
        if let Some(&m) = self.mask.iter().find(|&&m| m.to_f64() != 0.0 && m.to_f64() != 1.0) {
            return Err(Error::OutOfRange {
                param: crate::Param::Mask,
                value: m.to_f64(),
                allowed: "0 (unknown) or 1 (known)",
            });
        }
        if let Some(index) = self.known.iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFiniteInput { index });
        }
        Ok(())
    }

    fn row(v: &[F], b: usize, dim: usize) -> &[F] {
        if v.len() == dim { v } else { v.get(b * dim..(b + 1) * dim).unwrap_or(&[]) }
    }
}

/// Observes the batch after every step (for traces, tests, progress).
pub trait Observer<F> {
    /// Called after step `k` with the states x (B × D).
    fn after_step(&mut self, k: usize, step: &Step, x: &[F]);
}

impl<F> Observer<F> for () {
    fn after_step(&mut self, _k: usize, _step: &Step, _x: &[F]) {}
}

impl<F, T: FnMut(usize, &Step, &[F])> Observer<F> for T {
    fn after_step(&mut self, k: usize, step: &Step, x: &[F]) {
        self(k, step, x)
    }
}

/// A [`Lin`] converted to the buffer type once per step (not once per element: on a Cortex-M4F
/// each f64 → f32 conversion is a soft-float call).
#[derive(Clone, Copy)]
struct LinF<F> {
    x: F,
    aux: F,
    score: F,
    noise: F,
}

impl<F: Real> LinF<F> {
    fn new(c: &Lin) -> Self {
        LinF {
            x: F::from_f64(c.x),
            aux: F::from_f64(c.aux),
            score: F::from_f64(c.score),
            noise: F::from_f64(c.noise),
        }
    }

    #[inline(always)]
    fn apply(&self, x: F, a: F, s: F, n: F) -> F {
        self.x * x + self.aux * a + self.score * s + self.noise * n
    }
}

fn norm<F: Real>(v: &[F]) -> f64 {
    libm::sqrt(v.iter().map(|&e| e.to_f64() * e.to_f64()).sum::<f64>())
}

/// Whether any value is NaN or ±∞, in blocks without an early exit inside one (so that the test
/// vectorises).
#[inline(always)]
fn non_finite<F: Real>(v: &[F]) -> bool {
    v.chunks(256).any(|c| c.iter().fold(false, |any, e| any | !e.is_finite()))
}

/// D as a `NonZeroUsize` (so that `chunks_exact` cannot panic), checked to divide `len`.
fn nonzero_dim(dim: usize, len: usize) -> Result<NonZeroUsize, Error> {
    match NonZeroUsize::new(dim) {
        Some(d) if len.is_multiple_of(dim) => Ok(d),
        _ => Err(Error::DimensionMismatch { expected: dim.max(1), found: len }),
    }
}

/// Fills x (B × D) with N(0, σ² I) initial states (stream [`Stream::Init`]).
pub fn init_normal<F: Real, N: Noise>(
    noise: &mut N,
    first_sample: u64,
    dim: usize,
    sigma: f64,
    x: &mut [F],
) -> Result<(), Error> {
    let dim = nonzero_dim(dim, x.len())?.get();
    let sigma = crate::error::positive(crate::Param::SigmaMax, sigma)?;
    noise.normals_rows(first_sample, Stream::Init, dim, x);
    let s = F::from_f64(sigma);
    x.iter_mut().for_each(|v| *v *= s);
    Ok(())
}

/// Fills x (B × D) uniformly on the box [lo, hi]^D (stream [`Stream::Init`]), NCSN's initialisation.
pub fn init_uniform<F: Real, N: Noise>(
    noise: &mut N,
    first_sample: u64,
    dim: usize,
    lo: f64,
    hi: f64,
    x: &mut [F],
) -> Result<(), Error> {
    let dim = nonzero_dim(dim, x.len())?.get();
    if !(lo.is_finite() && hi.is_finite() && lo < hi) {
        return Err(Error::OutOfRange {
            param: crate::Param::InitBox,
            value: if lo.is_finite() { hi } else { lo },
            allowed: "finite, with lo < hi",
        });
    }
    for (b, row) in x.chunks_exact_mut(dim).enumerate() {
        noise.uniforms(first_sample + b as u64, Stream::Init, row);
        for v in row.iter_mut() {
            *v = F::from_f64(lo + (hi - lo) * v.to_f64());
        }
    }
    Ok(())
}

/// Runs every step of `plan` on `batch`, starting from the states in `batch.x`.
///
/// The auxiliary state is initialised here as the plan asks. Errors: buffers of the wrong length,
/// a score error, or a non-finite score, state or auxiliary state ([`Error::NonFinite`], naming
/// the 1-based level and step; the buffers then hold the state of the failed step).
pub fn run<F, P, S, N, O>(
    plan: &P,
    score: &mut S,
    noise: &mut N,
    batch: Batch<'_, F>,
    inpaint: Option<Inpaint<'_, F>>,
    observer: &mut O,
) -> Result<(), Error>
where
    F: Real,
    P: Plan + ?Sized,
    S: BatchScore<F> + ?Sized,
    N: Noise + ?Sized,
    O: Observer<F> + ?Sized,
{
    run_inline(plan, score, noise, batch, inpaint, observer)
}

/// [`run`], always inlined: a caller that compiles it inside a function with the target
/// features it has detected gets the update and the checks for its vector unit (the host does:
/// `host/src/exec/cpu.rs`). The same IEEE operations in the same order, so the same bits.
#[inline(always)]
pub fn run_inline<F, P, S, N, O>(
    plan: &P,
    score: &mut S,
    noise: &mut N,
    batch: Batch<'_, F>,
    mut inpaint: Option<Inpaint<'_, F>>,
    observer: &mut O,
) -> Result<(), Error>
where
    F: Real,
    P: Plan + ?Sized,
    S: BatchScore<F> + ?Sized,
    N: Noise + ?Sized,
    O: Observer<F> + ?Sized,
{
    let needs_aux = plan.aux_init() != AuxInit::None;
    batch.validate(needs_aux)?;
    let dim = nonzero_dim(batch.dim, batch.x.len())?.get();
    if score.dim() != dim {
        return Err(Error::DimensionMismatch { expected: dim, found: score.dim() });
    }
    let n = batch.x.len();
    if let Some(ip) = &inpaint {
        ip.validate(dim, n)?;
    }
    if let Some(index) = batch.x.iter().position(|v| !v.is_finite()) {
        return Err(Error::NonFiniteInput { index });
    }
    let Batch { first_sample, x, aux, score: s_buf, noise: xi, point, .. } = batch;
    if needs_aux {
        noise.normals_rows(first_sample, Stream::AuxInit, dim, aux);
    }
    let mut inpaint_level: Option<usize> = None;

    for k in 0..plan.len() {
        let Some(step) = plan.step(k) else { break };
        let stream = Stream::Step(k as u32);
        // 1. Noise.
        if step.noise {
            noise.normals_rows(first_sample, stream, dim, xi);
        } else {
            xi.iter_mut().for_each(|v| *v = F::ZERO);
        }
        // 2. Score at y = x + p.aux a + p.noise ξ (at x itself without a copy).
        let p = step.point;
        let (level, step_no) = (step.level + 1, k + 1);
        let located = |e: Error| match e {
            Error::ScoreFailed { .. } => Error::ScoreFailed { level, step: step_no },
            e => e,
        };
        if p.aux == 0.0 && p.noise == 0.0 {
            score.score_batch(x, step.sigma, s_buf).map_err(located)?;
        } else {
            let (pa, pn) = (F::from_f64(p.aux), F::from_f64(p.noise));
            for (i, y) in point.iter_mut().enumerate() {
                let a = if needs_aux { aux.get(i).copied().unwrap_or(F::ZERO) } else { F::ZERO };
                let xv = x.get(i).copied().unwrap_or(F::ZERO);
                let nv = xi.get(i).copied().unwrap_or(F::ZERO);
                *y = xv + pa * a + pn * nv;
            }
            score.score_batch(point, step.sigma, s_buf).map_err(located)?;
        }
        if non_finite(s_buf) {
            return Err(Error::NonFinite { what: Quantity::Score, level, step: step_no });
        }
        // 3. Update.
        match step.update {
            Update::Linear { x: cx, aux: ca } => {
                let (cx, ca) = (LinF::<F>::new(&cx), LinF::<F>::new(&ca));
                if needs_aux {
                    for (((xv, av), &sv), &nv) in
                        x.iter_mut().zip(aux.iter_mut()).zip(s_buf.iter()).zip(xi.iter())
                    {
                        let (x0, a0) = (*xv, *av);
                        *xv = cx.apply(x0, a0, sv, nv);
                        *av = ca.apply(x0, a0, sv, nv);
                    }
                } else {
                    for ((xv, &sv), &nv) in x.iter_mut().zip(s_buf.iter()).zip(xi.iter()) {
                        *xv = cx.x * *xv + cx.score * sv + cx.noise * nv;
                    }
                }
            }
            Update::Snr { snr, norms } => {
                // Rows per group of shared norms (one: each sample's own), then values.
                let rows_per_group = match norms {
                    SnrNorms::PerSample => 1,
                    SnrNorms::Grouped { size } => size as usize,
                    SnrNorms::BatchMean => n.checked_div(dim).unwrap_or(1),
                };
                let group = NonZeroUsize::new(rows_per_group.saturating_mul(dim))
                    .unwrap_or(NonZeroUsize::MIN)
                    .get();
                for ((xg, sg), ng) in
                    x.chunks_mut(group).zip(s_buf.chunks(group)).zip(xi.chunks(group))
                {
                    let rows = sg.len().checked_div(dim).unwrap_or(1) as f64;
                    let gs = sg.chunks_exact(dim).map(norm).sum::<f64>() / rows;
                    let ns = ng.chunks_exact(dim).map(norm).sum::<f64>() / rows;
                    let alpha = snr_alpha(snr, gs, ns);
                    let (a, c) = (F::from_f64(alpha), F::from_f64(libm::sqrt(2.0 * alpha)));
                    for ((xv, &sv), &nv) in xg.iter_mut().zip(sg).zip(ng) {
                        *xv = *xv + a * sv + c * nv;
                    }
                }
            }
        }
        // 4. Inpainting's projection.
        if let Some(ip) = inpaint.as_mut() {
            if inpaint_level != Some(step.level_after) {
                let stream = Stream::InpaintLevel(step.level_after as u32);
                noise.normals_rows(first_sample, stream, dim, ip.level_noise);
                inpaint_level = Some(step.level_after);
            }
            let sa = F::from_f64(step.sigma_after);
            for (b, (xr, zr)) in
                x.chunks_exact_mut(dim).zip(ip.level_noise.chunks_exact(dim)).enumerate()
            {
                let known = Inpaint::row(ip.known, b, dim);
                let mask = Inpaint::row(ip.mask, b, dim);
                for (((xv, &kv), &mv), &zv) in xr.iter_mut().zip(known).zip(mask).zip(zr) {
                    if mv.to_f64() == 1.0 {
                        *xv = kv + sa * zv;
                    }
                }
            }
        }
        // 5. Finite?
        if non_finite(x) {
            return Err(Error::NonFinite { what: Quantity::State, level, step: step_no });
        }
        if needs_aux && non_finite(aux) {
            return Err(Error::NonFinite { what: Quantity::Aux, level, step: step_no });
        }
        observer.after_step(k, &step, x);
    }
    Ok(())
}

/// The signal-to-noise corrector's step `α = 2 (snr ‖ξ‖/‖s‖)²` (0 when ‖s‖ = 0).
pub fn snr_alpha(snr: f64, score_norm: f64, noise_norm: f64) -> f64 {
    if score_norm > 0.0 {
        let r = snr * noise_norm / score_norm;
        2.0 * r * r
    } else {
        0.0
    }
}

/// Buffers for one sample, on the stack: `D` elements per vector.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Single<F, const D: usize> {
    /// The state.
    pub x: [F; D],
    /// The auxiliary state.
    pub aux: [F; D],
    score: [F; D],
    noise: [F; D],
    point: [F; D],
}

impl<F: Real, const D: usize> Single<F, D> {
    /// Zeroed buffers.
    pub fn new() -> Self {
        Single {
            x: [F::ZERO; D],
            aux: [F::ZERO; D],
            score: [F::ZERO; D],
            noise: [F::ZERO; D],
            point: [F::ZERO; D],
        }
    }

    /// A [`Batch`] of this one sample with global index `sample`.
    pub fn batch(&mut self, sample: u64) -> Batch<'_, F> {
        Batch {
            dim: D,
            first_sample: sample,
            x: &mut self.x,
            aux: &mut self.aux,
            score: &mut self.score,
            noise: &mut self.noise,
            point: &mut self.point,
        }
    }
}

impl<F: Real, const D: usize> Default for Single<F, D> {
    fn default() -> Self {
        Self::new()
    }
}
