//! The mixture score for a batch on the CPU: two matrix products and a row softmax (MATH.md,
//! "Analytic scores").
//!
//! (About 500 lines and their tests: the three stages below and the precision argument that
//! links them read best in one file.)
//!
//! For components N(μ_k, τ² I) with weights w_k and v = τ² + σ²:
//! 1. `G = Y Mᵀ` (B × K, single precision, [`crate::score::gemm`] over the means packed once per run)
//!    and logits up to a per-row constant, `t_k = c_k + g_k/v` with `c_k = ln w_k − ‖μ_k‖²/(2v)`
//!    (the row's −‖y‖²/(2v) and the (D/2) ln v term are shared by all k and dropped);
//! 2. precision: an f32 dot product of D terms errs by at most `γ_D‖y‖‖μ_k‖` (`γ_D =
//!    Du/(1 − Du)`, `u = 2⁻²⁴`), so a logit by `e = γ_D‖y‖ max‖μ‖ / v` from its product, plus
//!    at most e₆₄ (below) from the f64 roundings of its formula — at σ = 0.01 this reaches nats
//!    (MATH.md's warning). Where `e > 1e-4` the row is refined: the logits within `36 + 2e +
//!    6e₆₄` nats of its f32 maximum are kept and recomputed in f64 (below), and the weights of
//!    those more than 36 nats below the refined maximum are 0 (e⁻³⁶ = 2e-16). The cut keeps
//!    every component whose refined logit t̂_k is within 36 nats of the refined maximum t̂_max:
//!    `t̃_k ≥ t̂_k − e − 2e₆₄ ≥ t̂_max − 36 − e − 2e₆₄`, and `t̂_max ≥` the refined logit of the
//!    f32 maximum's component `≥ max t̃ − e − 2e₆₄` (the last e₆₄ of 6 covers the cut's own
//!    roundings) — so the kept set depends on the refined logits alone ([`Precision`]).
//!    Elsewhere the logits within 40 nats are kept (weights below e⁻⁴⁰ = 4e-18 are 0);
//!
//!    **The refined logit** is the same formula with the product in f64:
//!    `t̂_k = fl(c_k + fl(ĝ_k · fl(1/v)))`, where ĝ_k sums the D products `y_p μ_kp` in order
//!    from zero. Each product of two f32 is exact in f64 (24 + 24 significant bits ≤ 53; no
//!    overflow or underflow), so ĝ_k has D − 1 roundings: `|ĝ_k − y·μ_k| ≤ γ_{D−1} Σ_p |y_p μ_kp|
//!    ≤ γ_{D−1} ‖y‖‖μ_k‖` (Cauchy–Schwarz; `γ_n = nu/(1 − nu)`, `u = 2⁻⁵³`). `‖μ_k‖²` in `c_k` is
//!    a sum of D exact squares: error ≤ `γ_{D−1} ‖μ_k‖²`. The six other roundings (0.5/v, 1/v,
//!    two products, two sums; each of a value bounded by `B = |ln w_k| + ‖μ_k‖²/(2v) +
//!    ‖y‖‖μ_k‖/v`) add at most `6u·B`, and the terms of second order in u (γ's
//!    denominator included) less than `u·B` for D < 10⁶. Together, with `‖y‖‖μ_k‖ + ‖μ_k‖²/2 ≤
//!    (‖y‖ + ‖μ_k‖)²/2`:
//!
//!    `|t̂_k − t_k| ≤ e₆₄ = (D + 6)·2⁻⁵³·(|ln w_k| + (‖y‖ + ‖μ_k‖)²/(2v))`
//!
//!    (ln w_k is taken as the weight's definition; the shared −‖y‖²/(2v) is not computed). On
//!    digits at σ = 0.01, where it is largest, e₆₄ ≈ 4e-9 nats against e ≈ 1 nat unrefined
//!    (`tests::refined_logits_are_within_their_bound` checks every candidate there against a
//!    double-double reference). A row with many candidates gets its products from an f64 GEMM
//!    over all K ([`gemm::gemm64_cols`]), a row with few from one product per candidate
//!    ([`gemm::dot64`]): both sum the exact products in the same order, so the bits agree. And
//!    where every row of a call is refined and the last call's rows kept most components, the
//!    f32 products are skipped: every component's comes from the f64 GEMM, with the same bits
//!    (the kept set is the refined logits' own; [`RowsIn::all64`]);
//! 3. the row's softmax over those candidates: each weight `e^{t − max}` in single precision
//!    (sixteen lanes; relative error ≤ 2.6e-7 of the row's largest weight, about the two f32
//!    ulps at which the responsibilities are stored: [`weight`]), their sum in f64 in eight
//!    lanes by component index mod 8;
//! 4. `S = R M` (B × D) and `s = (S − y)/v`: a row with at most K/16 non-zero weights (most rows
//!    once σ is small against the data's spacing) is summed over them in component order; the
//!    other rows go through one product with the packed means.
//!
//! At small σ a row's products with most components are not taken again: where its last full
//! computation kept at most 64 candidates, and a bound on how far the row has moved since shows
//! that every other component still weighs 0, the row is scored from those candidates alone,
//! with the bits of the full computation ([`memo`]).
//!
//! Rows are independent: a row's result does not depend on the other rows of the batch, the
//! thread count or the instruction set (see [`crate::score::gemm`] and [`crate::score::simd`]), so samples are
//! the same for any batch size.
//!
//! Beyond 2¹⁹ components a row's K products are not held: the score streams over blocks of
//! components ([`stream`]), with the same bits, in scratch that does not grow with K.

use anneal_core::score::MixtureData;
use anneal_core::{BatchScore, Error};

use std::sync::atomic::{AtomicU64, Ordering};

use crate::score::gemm::{self, Packed};
use rayon::prelude::*;

mod memo;
mod stream;

/// exp(t) for t ≤ 0 (exactly 1 at 0), with 0 below −40; branch-free (it vectorises). The
/// direct path's weight (toy2d: a handful of components, exact f64 logits).
#[inline(always)]
fn weight64(t: f64) -> f64 {
    let e = crate::score::simd::exp_nonpositive(t);
    if t < -40.0 { 0.0 } else { e }
}

/// A GEMM-path weight: e^t for a logit t ≤ 0 below its row's maximum, taken in single
/// precision ([`crate::score::simd::exp_nonpositive_f32`], sixteen lanes), and 0 below `floor`
/// ([`Precision::floor`]). t rounded to f32 errs by at most |t|·2⁻²⁴ nats, so the weight by a
/// relative |t|·2⁻²⁴ + 2 ulp: at most 2⁻²⁴/e + 2⁻²² ≈ 2.6e-7 of the row's largest weight (1),
/// about two f32 ulps — the precision at which the responsibilities are stored anyway.
#[inline(always)]
fn weight(t: f64, floor: f64) -> f64 {
    let e = crate::score::simd::exp_nonpositive_f32(t as f32) as f64;
    if t < floor { 0.0 } else { e }
}

/// A row's precision rule (module docs, step 2), shared by the whole-row and streamed paths.
#[derive(Clone, Copy)]
struct Precision {
    /// The f32 logits' error bound e (their products'; the formula's roundings are within e₆₄).
    err: f64,
    /// The refined logits' error bound e₆₄.
    err64: f64,
    /// ‖y‖² (an f64 sum of the D squares).
    y2: f64,
}

impl Precision {
    /// The bounds for the row `y` at variance `v`.
    #[inline(always)]
    fn of(mix: &Mixture<'_>, y: &[f32], v: f64) -> Self {
        let y2: f64 = y.iter().map(|&a| a as f64 * a as f64).sum();
        let (ny, d) = (y2.sqrt(), mix.dim as f64);
        // γ_D for u = 2⁻²⁴ (D ≤ 2¹⁷, so Du ≤ 2⁻⁷).
        let du = d * f32::EPSILON as f64 * 0.5;
        Precision {
            err: du / (1.0 - du) * ny * mix.max_norm / v,
            err64: (d + 6.0)
                * (f64::EPSILON * 0.5)
                * (mix.max_abs_ln_w + (ny + mix.max_norm) * (ny + mix.max_norm) * (0.5 / v)),
            y2,
        }
    }

    /// Whether the row's logits are refined: e > 1e-4 nats.
    #[inline(always)]
    fn refine(self) -> bool {
        self.err > 1e-4
    }

    /// The cut on the row's f32 logits given their maximum: a refined row keeps every logit
    /// that may be within 36 nats of the refined maximum (36 + 2e + 6e₆₄ below the f32 one:
    /// module docs, step 2), the others those within 40 nats.
    #[inline(always)]
    fn cut(self, max: f64) -> f64 {
        if self.refine() { max - 36.0 - 2.0 * self.err - 6.0 * self.err64 } else { max - 40.0 }
    }

    /// Weights below e^floor are 0: −36 below the refined maximum for a refined row — exactly
    /// the components within 36 nats of it, whichever way its products were taken (every
    /// component's by one f64 product, or the cut's candidates' only: the cut keeps all of
    /// these), so both give the same bits — and −40 for a row of f32 logits.
    #[inline(always)]
    fn floor(self) -> f64 {
        if self.refine() { -36.0 } else { -40.0 }
    }
}

/// ln w, ‖μ‖², the means and (for the GEMM path) the means packed for both products: a mixture
/// with one τ, built once per run and shared by the batches' [`GemmMixture`]s.
pub struct Mixture<'a> {
    means: &'a [f32],
    dim: usize,
    k: usize,
    ln_w: Vec<f64>,
    max_abs_ln_w: f64,
    /// The smallest and largest ln w_k ([`memo`]'s bound).
    ln_w_min: f64,
    ln_w_max: f64,
    norms2: Vec<f64>,
    max_norm: f64,
    tau: f64,
    /// Mᵀ (D × K) for G = Y Mᵀ and M (K × D) for S = R M; None for the direct path.
    packed: Option<(Packed<'a>, Packed<'a>)>,
    /// Components per block where the score streams over them ([`stream`]: K > 2¹⁹).
    stream_block: Option<usize>,
    /// Multiply-adds ×2 of every scorer's products so far (`anneal bench`).
    flops: AtomicU64,
}

impl<'a> Mixture<'a> {
    /// The score's set-up for mixture `data` (the core's description, which the GPU takes too):
    /// ln w, ‖μ_k‖², and the packed means unless the direct path serves it.
    pub fn new(data: MixtureData<'a>) -> Self {
        let MixtureData { means, dim, weights, tau } = data;
        let k = data.components();
        let norms2: Vec<f64> =
            means.chunks_exact(dim).map(|m| m.iter().map(|&v| v as f64 * v as f64).sum()).collect();
        let max_norm = norms2.iter().cloned().fold(0.0, f64::max).sqrt();
        let packed = (!data.is_small())
            .then(|| (Packed::transposed(means, k, dim), Packed::plain(means, k, dim)));
        let stream_block = (packed.is_some() && k > stream::STREAM_K).then_some(stream::BLOCK);
        Mixture {
            means,
            dim,
            k,
            ln_w: weights.iter().map(|w| w.ln()).collect(),
            max_abs_ln_w: weights.iter().map(|w| w.ln().abs()).fold(0.0, f64::max),
            ln_w_min: weights.iter().map(|w| w.ln()).fold(f64::INFINITY, f64::min),
            ln_w_max: weights.iter().map(|w| w.ln()).fold(f64::NEG_INFINITY, f64::max),
            norms2,
            max_norm,
            tau,
            packed,
            stream_block,
            flops: AtomicU64::new(0),
        }
    }

    /// This mixture streamed over blocks of `block` components whatever K (tests: the bits do
    /// not depend on the block).
    #[cfg(test)]
    fn streamed(mut self, block: usize) -> Self {
        assert!(self.packed.is_some() && block.is_multiple_of(gemm::NR));
        self.stream_block = Some(block);
        self
    }

    /// Multiply-adds ×2 of every scorer's products so far.
    pub fn flops_done(&self) -> f64 {
        self.flops.load(Ordering::Relaxed) as f64
    }

    /// D.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Whether scores go through the two products rather than the direct path (the core's
    /// [`anneal_core::score::is_small_mixture`] rule, shared with the GPU).
    pub fn uses_gemm(&self) -> bool {
        self.packed.is_some()
    }

    /// The most scratch a [`GemmMixture`] holds for batches of `rows` rows: G and R for one block
    /// of rows (f32, at most 2²² products each), the per-σ constants c_k (f64), and the
    /// candidate lists (an index and a logit per component at most) of the rows scored at once,
    /// and the dense refinement's f64 tiles, per thread; each row's entry ([`memo`]: its point
    /// and at most 64 candidates) and, per block, the new entries and the rows computed in full
    /// gathered (their points and scores); beyond 2¹⁹ components, a fixed amount per thread
    /// ([`stream`]), whatever K.
    pub fn scratch_bytes(&self, rows: usize) -> usize {
        if self.packed.is_none() {
            return 0;
        }
        let d = self.dim;
        // The entries, and per call the new ones and the rows computed in full gathered.
        let memo = |block: usize| {
            memo::Memo::bytes(rows, d) + block * (std::mem::size_of::<memo::Entry>() + 8 * d + 17)
        };
        if let Some(block) = self.stream_block {
            return stream::scratch_bytes(rows, block) + memo(rows);
        }
        let k = self.k;
        let block = rows.min(rows_per_call(k));
        let threads = rayon::current_num_threads();
        let lists = block.min(threads * refine_rows(k));
        block * k * 8 + k * 8 + lists * k * 12 + threads * 16 * TILE64 * 8 + memo(block)
    }

    /// c_k = ln w_k − ‖μ_k‖²/(2v): component k's logit up to `(y·μ_k)/v` (module docs, step
    /// 1), one expression wherever it is taken, so that every path has its bits.
    #[inline(always)]
    fn c_k(&self, k: usize, v: f64) -> f64 {
        self.ln_w[k] - self.norms2[k] * (0.5 / v)
    }

    /// v = τ² + σ², the variance of each component at noise level σ.
    fn variance(&self, sigma: f64) -> f64 {
        anneal_core::score::perturbed_variance(self.tau, sigma)
    }
}

/// The most entries of G (and of the responsibilities R) one call holds: 2²² (16 MiB each in
/// f32); a batch of B rows is scored in blocks of ⌊2²²/K⌋ ≥ 8 rows when B·K is larger. Beyond
/// K = 2¹⁹ components the score streams over blocks of components instead ([`stream`]).
const MAX_PRODUCTS: usize = 1 << 22;

/// Rows per call of [`GemmMixture::score_rows`] for K components.
fn rows_per_call(k: usize) -> usize {
    (MAX_PRODUCTS / k.max(1)).max(gemm::MR)
}

/// One batch's scorer over a shared [`Mixture`], with its scratch.
pub struct GemmMixture<'m, 'a> {
    mix: &'m Mixture<'a>,
    /// Rows refined in the last call (for tests).
    pub refined: usize,
    /// Whether the last call took every product in f64 alone ([`RowsIn::all64`]; for tests).
    pub all64: bool,
    /// Multiply-adds ×2 of the last call's products: 2·B·K·D for G plus, for S = R M, 2·K·D per
    /// dense row and 2·D per non-zero responsibility of a sparse row (`anneal bench`).
    pub flops: f64,
    /// Scratch kept between calls: G (B × K), dense responsibility rows, and per-σ constants.
    g: Vec<f32>,
    r: Vec<f32>,
    c: Vec<f64>,
    /// Whether most rows of the last call kept more than K/[`DENSE_REFINE`] non-zero weights:
    /// then a call whose rows all need refinement takes their products in f64 alone
    /// ([`RowsIn::all64`]). It changes the time, not the bits.
    wide: bool,
    /// Rows scored from their entries in the last call (for tests).
    pub pruned: usize,
    /// Each row's entry from its last full computation ([`memo`]), if `use_memo`.
    memo: memo::Memo,
    use_memo: bool,
    /// Scratch of [`Self::score_rows`]: which rows their entries scored, the others' batch
    /// indices, their new entries, and those rows' points and scores gathered.
    done: Vec<bool>,
    rest: Vec<usize>,
    entries: Vec<memo::Entry>,
    ys: Vec<f32>,
    os: Vec<f32>,
}

impl<'m, 'a> GemmMixture<'m, 'a> {
    /// A scorer for batches of `mix`.
    pub fn new(mix: &'m Mixture<'a>) -> Self {
        GemmMixture {
            mix,
            refined: 0,
            all64: false,
            flops: 0.0,
            g: Vec::new(),
            r: Vec::new(),
            c: Vec::new(),
            wide: false,
            pruned: 0,
            memo: memo::Memo::default(),
            use_memo: true,
            done: Vec::new(),
            rest: Vec::new(),
            entries: Vec::new(),
            ys: Vec::new(),
            os: Vec::new(),
        }
    }

    /// This scorer computing every row in full, never from an entry ([`memo`]): `anneal bench`'s
    /// one step at one σ, repeated, which times the products rather than how far rows moved.
    pub fn without_memo(mut self) -> Self {
        self.use_memo = false;
        self
    }

    /// Tiny mixtures (K·D ≤ 64, e.g. toy2d) skip the GEMMs: exact f64 logits per row, eight rows
    /// at a time in lanes (vectorised by [`crate::score::simd::dispatch!`]).
    fn score_rows_direct(&self, points: &[f32], sigma: f64, out: &mut [f32]) {
        let mix = self.mix;
        let v = mix.variance(sigma);
        crate::score::simd::dispatch!(
            direct_rows,
            (mix: &Mixture<'_>, v: f64, points: &[f32], out: &mut [f32]) -> ()
        );
    }

    /// The score of the batch's rows `first..` (`points`); returns how many rows had their
    /// logits refined. Rows whose entry shows that their other components weigh nothing are
    /// scored from it ([`memo`]); the others in full, leaving new entries.
    fn score_rows(&mut self, points: &[f32], sigma: f64, out: &mut [f32], first: usize) -> usize {
        let mix = self.mix;
        let (d, k) = (mix.dim, mix.k);
        if mix.packed.is_none() {
            self.score_rows_direct(points, sigma, out);
            self.flops = 0.0;
            return 0;
        }
        let b = points.len() / d;
        let v = mix.variance(sigma);
        // The rows scored from their entries take their c_k from `Mixture::c_k` (only `finish`
        // of this `RowsIn` runs), so the per-σ constants are made only for the full rows.
        let rows = RowsIn { mix, c: &[], v, all64: false };
        let mut done = std::mem::take(&mut self.done);
        done.clear();
        done.resize(b, false);
        let memo = if self.memo.any(first, b) {
            memo::score_rows(&self.memo, &rows, first, points, out, &mut done, b * k >= 1 << 14)
        } else {
            memo::Scored::default()
        };
        let mut rest = std::mem::take(&mut self.rest);
        rest.clear();
        rest.extend((0..b).filter(|&i| !done[i]).map(|i| first + i));
        let mut entries = std::mem::take(&mut self.entries);
        entries.clear();
        entries.resize(rest.len(), memo::Entry::default());
        let full = if rest.len() == b {
            let full = self.full(points, v, out, &mut entries);
            if self.use_memo {
                self.memo.store(d, &rest, points, &entries);
            }
            full
        } else if !rest.is_empty() {
            // The rows computed in full, gathered (rows are independent: the same bits).
            let (mut ys, mut os) = (std::mem::take(&mut self.ys), std::mem::take(&mut self.os));
            ys.clear();
            for &i in &rest {
                ys.extend_from_slice(&points[(i - first) * d..(i - first + 1) * d]);
            }
            os.resize(ys.len(), 0.0);
            let full = self.full(&ys, v, &mut os, &mut entries);
            for (&i, o) in rest.iter().zip(os.chunks_exact(d)) {
                out[(i - first) * d..(i - first + 1) * d].copy_from_slice(o);
            }
            self.memo.store(d, &rest, &ys, &entries);
            (self.ys, self.os) = (ys, os);
            full
        } else {
            RowsOut::default()
        };
        self.flops = full.flops + 2.0 * (memo.products + memo.terms) as f64 * d as f64;
        self.pruned = memo.rows;
        (self.done, self.rest, self.entries) = (done, rest, entries);
        full.refined + memo.rows
    }

    /// The rows `points` computed in full, leaving their entries in `entries`: over the whole
    /// row ([`Self::full_rows`]) or streamed over blocks of components ([`stream`]).
    fn full(
        &mut self,
        points: &[f32],
        v: f64,
        out: &mut [f32],
        entries: &mut [memo::Entry],
    ) -> RowsOut {
        match self.mix.stream_block {
            Some(block) => {
                let r = stream::score_rows(self.mix, block, v, points, out, entries);
                RowsOut { refined: r.refined, flops: r.flops, ..RowsOut::default() }
            }
            None => self.full_rows(points, v, out, entries),
        }
    }

    /// The rows `points` computed in full (step 1's products for every component), leaving
    /// their entries in `entries`; returns what they report, with `flops` their products'.
    fn full_rows(
        &mut self,
        points: &[f32],
        v: f64,
        out: &mut [f32],
        entries: &mut [memo::Entry],
    ) -> RowsOut {
        let mix = self.mix;
        let (d, k) = (mix.dim, mix.k);
        let Some((mt, _)) = &mix.packed else { return RowsOut::default() };
        let b = points.len() / d;
        let mut g = std::mem::take(&mut self.g);
        let mut r = std::mem::take(&mut self.r);
        g.resize(b * k, 0.0);
        r.resize(b * k, 0.0);
        // Rows that all need refinement and (as the last call's) keep most components: their
        // products with every component are taken in f64 (`RowsIn::all64`) — the f32 ones
        // would only pick candidates that are all of them.
        let all64 = self.wide && points.chunks_exact(d).all(|y| Precision::of(mix, y, v).refine());
        if !all64 {
            gemm::gemm(b, points, mt, &mut g, k);
        }
        self.all64 = all64;
        // Logits up to the row's constant −‖y‖²/(2v): t_k = c_k + g_k/v, c_k = ln w_k − ‖μ_k‖²/(2v).
        let mut c = std::mem::take(&mut self.c);
        c.clear();
        c.extend((0..k).map(|j| mix.c_k(j, v)));
        let rows = RowsIn { mix, c: &c, v, all64 };
        let report = if b * k >= 1 << 14 {
            let per = b.div_ceil(4 * rayon::current_num_threads()).max(1);
            let parts: Vec<RowsOut> = points
                .par_chunks(per * d)
                .zip(g.par_chunks(per * k))
                .zip(out.par_chunks_mut(per * d).zip(r.par_chunks_mut(per * k)))
                .zip(entries.par_chunks_mut(per))
                .map(|(((y, g), (o, r)), e)| rows.run(y, g, o, r, e))
                .collect();
            parts.into_iter().fold(RowsOut::default(), |mut all, part| {
                all.refined += part.refined;
                all.terms += part.terms;
                all.wide += part.wide;
                all.dense_rows += part.dense_rows;
                all
            })
        } else {
            rows.run(points, &g, out, &mut r, entries)
        };
        self.wide = 2 * report.wide > b;
        (self.g, self.r, self.c) = (g, r, c);
        let flops = 2.0 * (b * k * d + report.dense_rows * k * d + report.terms * d) as f64;
        RowsOut { flops, ..report }
    }
}

/// A refined logit: `c_k + (y·μ_k)/v` with `g` = y·μ_k in f64 ([`gemm::dot64`] or
/// [`gemm::gemm64_cols`], the same bits), `inv_v` = 1/v — the f32 logit's formula ([`logit`]) with
/// the product exact to f64 rounding (the error bound: module docs, step 2).
#[inline(always)]
fn refined_logit(c: f64, g: f64, inv_v: f64) -> f64 {
    c + g * inv_v
}

/// The refined logits of candidates `js` (component `off + j` for each j) of the row `y`, into
/// `l`: `c(j) + (y·μ)/v`, eight candidates' products at a time ([`gemm::dot64`]), `c(j)` the
/// component's [`Mixture::c_k`].
#[inline(always)]
fn refine_candidates(
    mix: &Mixture<'_>,
    y: &[f32],
    (c, off): (impl Fn(usize) -> f64, usize),
    js: &[u32],
    l: &mut [f64],
    inv_v: f64,
) {
    let d = mix.dim;
    let mu = |j: u32| &mix.means[(off + j as usize) * d..(off + j as usize + 1) * d];
    let mut groups = js.chunks_exact(8);
    let mut out = l.chunks_exact_mut(8);
    for (js, l) in (&mut groups).zip(&mut out) {
        let g = gemm::dot64(y, std::array::from_fn::<_, 8, _>(|i| mu(js[i])));
        for ((l, &j), g) in l.iter_mut().zip(js).zip(g) {
            *l = refined_logit(c(j as usize), g, inv_v);
        }
    }
    for (&j, l) in groups.remainder().iter().zip(out.into_remainder()) {
        *l = refined_logit(c(j as usize), gemm::dot64(y, [mu(j)])[0], inv_v);
    }
}

/// The sum of a row's weights from its eight lanes (lane i: the components ≡ i mod 8, in order),
/// lane 0 first.
#[inline(always)]
fn lane_sum(acc: &[f64; 8]) -> f64 {
    acc[1..].iter().fold(acc[0], |s, &x| s + x)
}

/// Rows at a time in [`direct_rows`].
const LANES: usize = 8;

/// The direct score (K·D ≤ 64) of the rows of `points`, [`LANES`] at a time: per lane, the
/// logits ln w_k − ‖y − μ_k‖²/(2v) in f64, the softmax, and (Σ r_k μ_k − y)/v.
#[inline(always)]
fn direct_rows(mix: &Mixture<'_>, v: f64, points: &[f32], out: &mut [f32]) {
    let (d, k) = (mix.dim, mix.k);
    let (inv_v, half_inv_v) = (1.0 / v, 0.5 / v);
    let mut y = [[0.0f64; LANES]; 64];
    let mut logits = [[0.0f64; LANES]; 64];
    let mut acc = [[0.0f64; LANES]; 64];
    let (y, logits, acc) = (&mut y[..d], &mut logits[..k], &mut acc[..d]);
    for (pts, outs) in points.chunks(LANES * d).zip(out.chunks_mut(LANES * d)) {
        let n = pts.len() / d;
        // Lanes past the last row repeat it; their results are not written.
        for l in 0..LANES {
            let row = pts.chunks_exact(d).nth(l.min(n.saturating_sub(1))).unwrap_or_default();
            for (yi, &p) in y.iter_mut().zip(row) {
                yi[l] = p as f64;
            }
        }
        let mut max = [f64::NEG_INFINITY; LANES];
        for ((lj, mu), &lw) in logits.iter_mut().zip(mix.means.chunks_exact(d)).zip(&mix.ln_w) {
            let mut d2 = [0.0f64; LANES];
            for (yi, &m) in y.iter().zip(mu) {
                for (d2, &yv) in d2.iter_mut().zip(yi) {
                    let t = yv - m as f64;
                    *d2 += t * t;
                }
            }
            for ((l, m), d2) in lj.iter_mut().zip(max.iter_mut()).zip(d2) {
                *l = lw - d2 * half_inv_v;
                *m = if *l > *m { *l } else { *m };
            }
        }
        let mut z = [0.0f64; LANES];
        acc.iter_mut().for_each(|a| *a = [0.0; LANES]);
        for (lj, mu) in logits.iter().zip(mix.means.chunks_exact(d)) {
            let mut e = [0.0f64; LANES];
            for (((e, &l), &m), z) in e.iter_mut().zip(lj).zip(&max).zip(z.iter_mut()) {
                *e = weight64(l - m);
                *z += *e;
            }
            for (a, &m) in acc.iter_mut().zip(mu) {
                for (a, &e) in a.iter_mut().zip(&e) {
                    *a += e * m as f64;
                }
            }
        }
        let inv_z = z.map(|z| 1.0 / z);
        for (l, o) in outs.chunks_exact_mut(d).enumerate() {
            for ((o, (a, yi)), _) in o.iter_mut().zip(acc.iter().zip(y.iter())).zip(0..d) {
                *o = ((a[l] * inv_z[l] - yi[l]) * inv_v) as f32;
            }
        }
    }
}

/// A row's candidate components (logits within the cut of the maximum): indices and logits,
/// then their weights.
#[derive(Default)]
struct Cand {
    j: Vec<u32>,
    l: Vec<f64>,
    /// The weights of `l`, as [`RowsIn::finish`] takes them ([`weights_f32`]).
    w: Vec<f32>,
    /// Scratch of [`RowsIn::select`]: which of each group of eight logits are kept, by bit.
    mask: Vec<u8>,
}

/// [`weight`] of each `l − max` into `w`, in two passes so that the exponentials run sixteen to
/// a register: the differences in f64, compared with `floor` there and rounded to f32 (−∞ for
/// those below it), then e^t where t is finite and 0 where it is −∞. The same bits as `weight`.
#[inline(always)]
fn weights_f32(l: &[f64], max: f64, floor: f64, w: &mut Vec<f32>) {
    w.clear();
    w.extend(l.iter().map(|&l| {
        let t = l - max;
        if t < floor { f32::NEG_INFINITY } else { t as f32 }
    }));
    w.iter_mut().for_each(|t| {
        let e = crate::score::simd::exp_nonpositive_f32(*t);
        *t = if *t == f32::NEG_INFINITY { 0.0 } else { e };
    });
}

/// What rows of one call report.
#[derive(Default)]
struct RowsOut {
    /// Rows whose logits were refined.
    refined: usize,
    /// Non-zero responsibilities of the sparse rows.
    terms: usize,
    /// Dense rows (their `R M` taken in their chunk).
    dense_rows: usize,
    /// Rows with more than K/[`DENSE_REFINE`] non-zero weights.
    wide: usize,
    /// Multiply-adds ×2 of the rows' products ([`GemmMixture::full_rows`]).
    flops: f64,
}

/// A thread's scratch for [`RowsIn::run`], kept from call to call (allocated once per thread,
/// at most [`Mixture::scratch_bytes`]' share, not once per chunk and step).
#[derive(Default)]
struct Scratch {
    cands: Vec<Cand>,
    /// The dense refined rows' f64 products with a tile of components.
    g64: Vec<f64>,
    /// The chunk's dense rows (their responsibilities in its rows of R).
    dense: Vec<usize>,
    report: RowsOut,
}

std::thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

/// What every row of one call shares.
struct RowsIn<'m, 'a> {
    mix: &'m Mixture<'a>,
    /// c_k = ln w_k − ‖μ_k‖²/(2v).
    c: &'m [f64],
    v: f64,
    /// Every row needs refinement: each row's products with every component are taken in f64
    /// ([`RowsIn::refine_rows`]' dense path), none in f32, and every component is a candidate.
    /// The refined logits, the weights (0 more than 36 nats below the refined maximum:
    /// [`Precision::floor`]) and so the score have the bits that selecting candidates from f32
    /// logits first gives.
    all64: bool,
}

/// The largest element (NaN-free input), in 8 independent lanes so that it vectorises.
#[inline(always)]
fn max_lanes(t: &[f64]) -> f64 {
    let mut m = [f64::NEG_INFINITY; 8];
    let mut chunks = t.chunks_exact(8);
    for ch in chunks.by_ref() {
        for (m, &x) in m.iter_mut().zip(ch) {
            *m = if x > *m { x } else { *m };
        }
    }
    let tail = chunks.remainder().iter().fold(f64::NEG_INFINITY, |a, &x| if x > a { x } else { a });
    m.iter().fold(tail, |a, &x| if x > a { x } else { a })
}

/// The largest element below `cut` (−∞ if none; NaN-free input), in 8 lanes.
#[inline(always)]
fn max_below(t: &[f64], cut: f64) -> f64 {
    let below = |a: f64, x: f64| if x < cut && x > a { x } else { a };
    let mut m = [f64::NEG_INFINITY; 8];
    let (chunks, rest) = t.as_chunks::<8>();
    for ch in chunks {
        for (m, &x) in m.iter_mut().zip(ch) {
            *m = below(*m, x);
        }
    }
    rest.iter().chain(&m).fold(f64::NEG_INFINITY, |a, &x| below(a, x))
}

/// A row's logit t_k = c_k + g_k·(1/v) (computed where it is needed, not stored: a row of K).
#[inline(always)]
fn logit(c: f64, g: f32, inv_v: f64) -> f64 {
    c + g as f64 * inv_v
}

/// The largest logit of a row, [`max_lanes`] over [`logit`]s.
#[inline(always)]
fn max_logit(c: &[f64], g: &[f32], inv_v: f64) -> f64 {
    logits_max(c, g, inv_v, |_| {})
}

/// The logits of a row handed to `keep` eight at a time (then the rest), and their maximum as
/// [`max_lanes`] takes it (the same lanes, so the same value): one pass.
#[inline(always)]
fn logits_max(c: &[f64], g: &[f32], inv_v: f64, mut keep: impl FnMut(&[f64])) -> f64 {
    let mut m = [f64::NEG_INFINITY; 8];
    let (cc, cr) = c.as_chunks::<8>();
    let (gc, gr) = g.as_chunks::<8>();
    for (cc, gc) in cc.iter().zip(gc) {
        let x: [f64; 8] = std::array::from_fn(|i| logit(cc[i], gc[i], inv_v));
        for (m, &x) in m.iter_mut().zip(&x) {
            *m = if x > *m { x } else { *m };
        }
        keep(&x);
    }
    let mut tail = f64::NEG_INFINITY;
    for (&c, &g) in cr.iter().zip(gr) {
        let x = logit(c, g, inv_v);
        tail = if x > tail { x } else { tail };
        keep(&[x]);
    }
    m.iter().fold(tail, |a, &x| if x > a { x } else { a })
}

/// Rows whose refinements run together ([`RowsIn::refine_rows`]: their dense rows share the f64
/// GEMM's reads of the means) for K components: up to 16, while their candidate lists (12 bytes
/// per component each) stay within 2²⁰ entries (12 MiB).
fn refine_rows(k: usize) -> usize {
    ((1 << 20) / k.max(1)).clamp(1, 16)
}

/// A refined row with more than K/`DENSE_REFINE` candidates takes its products with every
/// component from the f64 GEMM ([`RowsIn::refine_rows`]). Timed on digits (D = 64) on the AMD
/// machine of BENCHMARKS.md: the GEMM costs 4.7 µs per row for all 1797 components, one product
/// alone ([`gemm::dot64`], eight chains side by side) 23 ns, so the GEMM pays from ~200
/// candidates, K/9.
const DENSE_REFINE: usize = 8;

/// Components per tile of the dense refinement's f64 products (a multiple of [`gemm::NR`]):
/// 16 rows × 256 × 8 bytes = 32 KiB of scratch.
const TILE64: usize = 256;

/// What [`RowsIn::select`] found for a row.
#[derive(Clone, Copy)]
struct Selected {
    prec: Precision,
    /// The largest logit (before refinement).
    max: f64,
    /// For a refined row with at most [`memo::cap`] candidates (of fewer than K), the largest
    /// f32 logit of the others (for its entry: [`memo::Entry::of`]); −∞ otherwise.
    out: f64,
}

impl RowsIn<'_, '_> {
    /// Rows `first..` of the batch (`y`, their products `g`): the score rows of those with few
    /// non-zero responsibilities go straight into `o`; the others get their responsibilities in
    /// `r` and are returned (batch row indices) for the GEMM. Also returns the refined count.
    fn run(
        &self,
        y: &[f32],
        g: &[f32],
        o: &mut [f32],
        r: &mut [f32],
        e: &mut [memo::Entry],
    ) -> RowsOut {
        /// The chunk's work, as one argument for `dispatch!`.
        struct Job<'j, 'm, 'a> {
            this: &'j RowsIn<'m, 'a>,
            y: &'j [f32],
            g: &'j [f32],
            o: &'j mut [f32],
            r: &'j mut [f32],
            e: &'j mut [memo::Entry],
            sc: &'j mut Scratch,
        }
        #[inline(always)]
        fn rows(job: Job<'_, '_, '_>) {
            let Job { this, y, g, o, r, e, sc } = job;
            let (d, k) = (this.mix.dim, this.mix.k);
            let Some((_, m)) = &this.mix.packed else { return };
            let rb = sc.cands.len();
            let blocks = y.chunks(rb * d).zip(g.chunks(rb * k)).zip(o.chunks_mut(rb * d));
            for (b, ((y, g), o)) in blocks.enumerate() {
                let none = Precision { err: 0.0, err64: 0.0, y2: 0.0 };
                let mut sel = [Selected { prec: none, max: 0.0, out: f64::NEG_INFINITY }; 16];
                if this.all64 {
                    for ((y, s), cand) in y.chunks_exact(d).zip(sel.iter_mut()).zip(&mut sc.cands) {
                        let prec = Precision::of(this.mix, y, this.v);
                        *s = Selected { prec, max: 0.0, out: f64::NEG_INFINITY };
                        cand.j.clear();
                        cand.j.extend(0..k as u32);
                        cand.l.resize(k, 0.0);
                    }
                } else {
                    let rows = y.chunks_exact(d).zip(g.chunks_exact(k));
                    for (((y, g), s), cand) in rows.zip(sel.iter_mut()).zip(sc.cands.iter_mut()) {
                        *s = this.select(y, g, cand);
                    }
                }
                let n = y.len() / d;
                this.refine_rows(y, &sel[..n], &mut sc.cands[..n], &mut sc.g64);
                let rows = y.chunks_exact(d).zip(o.chunks_exact_mut(d));
                for (i, ((y, o), (s, cand))) in
                    rows.zip(sel.iter().zip(sc.cands.iter_mut())).enumerate()
                {
                    let done = this.finish(y, o, cand, *s);
                    e[b * rb + i] = memo::Entry::of(this.mix, this.v, cand, s);
                    sc.report.refined += s.prec.refine() as usize;
                    sc.report.wide += (done.nnz > k / DENSE_REFINE) as usize;
                    let Some(inv) = done.dense else {
                        sc.report.terms += done.nnz;
                        continue;
                    };
                    let row = b * rb + i;
                    responsibilities(cand, inv, &mut r[row * k..(row + 1) * k]);
                    sc.dense.push(row);
                }
            }
            // S = R M for the dense rows, on this thread, then their scores.
            sc.report.dense_rows = sc.dense.len();
            if !sc.dense.is_empty() {
                let rows: Vec<&[f32]> = sc.dense.iter().map(|&i| &r[i * k..(i + 1) * k]).collect();
                let mut s = vec![0.0f32; rows.len() * d];
                gemm::gemm_rows_here(&rows, m, &mut s, d);
                let inv_v = (1.0 / this.v) as f32;
                for (&row, s) in sc.dense.iter().zip(s.chunks_exact(d)) {
                    let (o, y) = (&mut o[row * d..(row + 1) * d], &y[row * d..(row + 1) * d]);
                    for ((o, &s), &y) in o.iter_mut().zip(s).zip(y) {
                        *o = (s - y) * inv_v;
                    }
                }
            }
        }
        let rb = refine_rows(self.mix.k);
        let mut scratch = SCRATCH.with(|s| std::mem::take(&mut *s.borrow_mut()));
        scratch.cands.resize_with(rb, Cand::default);
        scratch.dense.clear();
        let job = Job { this: self, y, g, o, r, e, sc: &mut scratch };
        crate::score::simd::dispatch!(rows, (job: Job<'_, '_, '_>) -> ());
        let report = std::mem::take(&mut scratch.report);
        SCRATCH.with(|s| *s.borrow_mut() = scratch);
        report
    }

    /// Steps 1–2 for one row: its logits' maximum, whether they need refinement, and the
    /// candidates (components whose logit is within the cut of the maximum), with their logits.
    #[inline(always)]
    fn select(&self, y: &[f32], g: &[f32], cand: &mut Cand) -> Selected {
        let inv_v = 1.0 / self.v;
        let k = self.c.len().min(g.len());
        // Every logit and their maximum (a loop that vectorises).
        cand.l.clear();
        cand.l.reserve(k);
        let max = logits_max(&self.c[..k], &g[..k], inv_v, |x| cand.l.extend_from_slice(x));
        // Weights below e⁻⁴⁰ (4e-18) are 0; with refinement, the logits that may be within 36
        // nats of the refined maximum are kept and refined (`refine_rows`: within e₆₄, module
        // docs), and `finish` zeroes those that are not.
        let prec = Precision::of(self.mix, y, self.v);
        let cut = prec.cut(max);
        // How many logits are kept (a count that vectorises): all of them in the rows of larger
        // σ. Otherwise which, as one bit per component in a byte per group of eight, and the
        // kept ones moved to the front in order, visiting only the groups that hold one (few, at
        // small σ) and, in those, only their set bits.
        let kept = cand.l.iter().map(|&t| (t >= cut) as usize).sum::<usize>();
        cand.j.clear();
        if kept == k {
            cand.j.extend(0..k as u32);
            return Selected { prec, max, out: f64::NEG_INFINITY };
        }
        let out = if prec.refine() && kept <= memo::cap(k) {
            max_below(&cand.l, cut)
        } else {
            f64::NEG_INFINITY
        };
        let (groups, rest) = cand.l.as_chunks::<8>();
        cand.mask.resize(groups.len(), 0);
        crate::score::simd::ge_bits(groups, cut, &mut cand.mask);
        let tail = k - rest.len();
        cand.j.resize(kept, 0);
        let (jj, ll) = (&mut cand.j[..], &mut cand.l[..]);
        let mut n = 0;
        for (q, &m) in cand.mask.iter().enumerate() {
            let mut m = m;
            while m != 0 {
                let j = q * 8 + m.trailing_zeros() as usize;
                jj[n] = j as u32;
                ll[n] = ll[j];
                n += 1;
                m &= m - 1;
            }
        }
        for j in tail..k {
            if ll[j] >= cut {
                jj[n] = j as u32;
                ll[n] = ll[j];
                n += 1;
            }
        }
        cand.l.truncate(n);
        Selected { prec, max, out }
    }

    /// The refinement of the rows that need it: each candidate's logit recomputed as
    /// [`refined_logit`], with y·μ_j in f64. A row with more than K/[`DENSE_REFINE`] candidates
    /// (at intermediate σ, most of them) gets the products with every component from
    /// [`gemm::gemm64_cols`], a tile of [`TILE64`] components at a time, with the block's other
    /// such rows; a row with fewer, its candidates' products alone ([`gemm::dot64`]). Both give
    /// each product the same bits, so the choice changes the time, not the result.
    #[inline(always)]
    fn refine_rows(&self, y: &[f32], sel: &[Selected], cands: &mut [Cand], g64: &mut Vec<f64>) {
        let mix = self.mix;
        let (d, k) = (mix.dim, mix.k);
        let inv_v = 1.0 / self.v;
        let Some((mt, _)) = &mix.packed else { return };
        let mut dense = [0usize; 16];
        let mut n = 0;
        for (i, ((y, s), cand)) in y.chunks_exact(d).zip(sel).zip(cands.iter_mut()).enumerate() {
            if !s.prec.refine() {
                continue;
            }
            if cand.j.len() > k / DENSE_REFINE {
                dense[n] = i;
                n += 1;
            } else {
                refine_candidates(mix, y, (|j| self.c[j], 0), &cand.j, &mut cand.l, inv_v);
            }
        }
        if n == 0 {
            return;
        }
        let rows: Vec<&[f32]> = dense[..n].iter().map(|&i| &y[i * d..(i + 1) * d]).collect();
        let ap = gemm::pack64(&rows, d);
        g64.resize(n * TILE64, 0.0);
        let mut cursor = [0usize; 16];
        for j0 in (0..k).step_by(TILE64) {
            let len = TILE64.min(k - j0);
            gemm::gemm64_cols(&ap, n, mt, j0, len, g64, TILE64);
            for ((&i, at), g) in dense[..n].iter().zip(cursor.iter_mut()).zip(g64.chunks(TILE64)) {
                let cand = &mut cands[i];
                if cand.j.len() == k {
                    // Every component is a candidate: candidate j is component j.
                    let (l, c) = (&mut cand.l[j0..j0 + len], &self.c[j0..j0 + len]);
                    for ((l, &c), &g) in l.iter_mut().zip(c).zip(g) {
                        *l = refined_logit(c, g, inv_v);
                    }
                    continue;
                }
                while let Some(&j) = cand.j.get(*at).filter(|&&j| (j as usize) < j0 + len) {
                    cand.l[*at] = refined_logit(self.c[j as usize], g[j as usize - j0], inv_v);
                    *at += 1;
                }
            }
        }
    }

    /// Steps 3–4 for one row: the softmax over its candidates, then either its responsibilities
    /// in `r` for the GEMM (a dense row) or its score in `o` (a sparse row). Returns the number
    /// of non-zero responsibilities and whether the row was sparse.
    #[inline(always)]
    fn finish(&self, y: &[f32], o: &mut [f32], cand: &mut Cand, s: Selected) -> Finished {
        let mix = self.mix;
        let (d, k) = (mix.dim, mix.k);
        let max = if s.prec.refine() { max_lanes(&cand.l) } else { s.max };
        // Separate passes, so that the exponentials vectorise.
        weights_f32(&cand.l, max, s.prec.floor(), &mut cand.w);
        // z in eight lanes by component index mod 8 (independent chains, not one of K
        // dependent additions; the streamed score sums its blocks the same way).
        let mut acc = [0.0f64; 8];
        if cand.j.len() == k {
            let (groups, rest) = cand.w.as_chunks::<8>();
            for g in groups {
                acc.iter_mut().zip(g).for_each(|(a, &e)| *a += e as f64);
            }
            acc.iter_mut().zip(rest).for_each(|(a, &e)| *a += e as f64);
        } else {
            for (&j, &e) in cand.j.iter().zip(&cand.w) {
                acc[j as usize & 7] += e as f64;
            }
        }
        let z = lane_sum(&acc);
        let nnz = cand.w.iter().filter(|&&e| e != 0.0).count();
        let inv = (1.0 / z) as f32;
        if nnz > k / 16 {
            return Finished { nnz, dense: Some(inv) };
        }
        o.iter_mut().for_each(|v| *v = 0.0);
        for (&j, &e) in cand.j.iter().zip(&cand.w) {
            if e != 0.0 {
                let w = e * inv;
                let mu = &mix.means[j as usize * d..(j as usize + 1) * d];
                o.iter_mut().zip(mu).for_each(|(v, &m)| *v += w * m);
            }
        }
        let inv_v = (1.0 / self.v) as f32;
        for (o, &y) in o.iter_mut().zip(y) {
            *o = (*o - y) * inv_v;
        }
        Finished { nnz, dense: None }
    }
}

/// What [`RowsIn::finish`] did with a row.
struct Finished {
    /// Its non-zero responsibilities.
    nnz: usize,
    /// For a dense row, 1/z: its responsibilities are its candidates' weights (in `Cand::w`)
    /// times this, and its score comes from the product `R M`; None for a sparse row, whose
    /// score `finish` wrote.
    dense: Option<f32>,
}

/// A dense row's responsibilities into `r` (K values): `e_j · inv` for its candidates j, 0
/// elsewhere.
#[inline(always)]
fn responsibilities(cand: &Cand, inv: f32, r: &mut [f32]) {
    if cand.j.len() == r.len() {
        // Every component is a candidate (candidate j is component j).
        r.iter_mut().zip(&cand.w).for_each(|(r, &e)| *r = e * inv);
    } else {
        r.iter_mut().for_each(|v| *v = 0.0);
        cand.j.iter().zip(&cand.w).for_each(|(&j, &e)| r[j as usize] = e * inv);
    }
}

impl BatchScore<f32> for GemmMixture<'_, '_> {
    fn dim(&self) -> usize {
        self.mix.dim
    }

    fn score_batch(&mut self, points: &[f32], sigma: f64, out: &mut [f32]) -> Result<(), Error> {
        let d = self.mix.dim;
        if points.len() != out.len() || !points.len().is_multiple_of(d) {
            return Err(Error::DimensionMismatch { expected: points.len(), found: out.len() });
        }
        // The whole batch at once where its B × K products fit the scratch bound: they are split
        // by the means' panels across threads (`gemm::gemm`), so that each thread streams only
        // its share of the means. For many components, blocks of rows (rows are independent:
        // the same bits in any block).
        let rows = match self.mix.stream_block {
            Some(_) => points.len().max(1),
            None => rows_per_call(self.mix.k) * d,
        };
        let (mut refined, mut flops, mut pruned) = (0, 0.0, 0);
        for (i, (p, o)) in points.chunks(rows).zip(out.chunks_mut(rows)).enumerate() {
            refined += self.score_rows(p, sigma, o, i * (rows / d));
            flops += self.flops;
            pruned += self.pruned;
        }
        (self.refined, self.flops, self.pruned) = (refined, flops, pruned);
        self.mix.flops.fetch_add(flops as u64, Ordering::Relaxed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use anneal_core::noise::{Keyed, Noise, Stream};
    use anneal_core::score::{IsotropicMixture, Taus};
    use anneal_core::{BatchScore, Geometric, Schedule};

    use super::{GemmMixture, Mixture, gemm};

    /// The GEMM score against the core's per-sample score in f64, on the digits mixture, at every
    /// σ of a 30-level schedule from 14 to 0.01, for τ = 0 and 0.05, at points near the data
    /// (data + σ noise: where samples are), on bisectors of nearby digits (where the two
    /// responsibilities are ~1/2 and logit errors show), and far from it. Tolerance: 1e-4 of the
    /// score's scale before cancellation, Σ r_k ‖μ_k − x‖/v, per row, in each σ band of `anneal
    /// bench` ([`BANDS`]) (f32 GEMMs; the refinement keeps the logits within e₆₄ at small σ —
    /// without it the bisector rows fail). Also checks that refinement happened at the smallest σ
    /// and not at the largest, and that a scorer told that rows keep most components (so that
    /// where every row needs refinement it takes every product in f64, [`super::RowsIn::all64`])
    /// gives the same bits at every σ.
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

    /// The lower ends of `anneal bench`'s σ bands (≥ 2, 2–0.8, 0.8–0.3, 0.3–0.1, 0.1–0.03, below).
    const BANDS: [f64; 6] = [2.0, 0.8, 0.3, 0.1, 0.03, 0.0];

    #[test]
    fn gemm_score_matches_the_f64_reference() {
        let data = crate::io::data::load("digits").unwrap();
        let (d, k) = (data.dim, data.components());
        let means64: Vec<f64> = data.means.iter().map(|&v| v as f64).collect();
        let schedule = Geometric::new(14.0, 0.01, 30).unwrap();
        let b = 64;
        for tau in [0.0, 0.05] {
            let reference =
                IsotropicMixture::new(&means64, d, Some(&data.weights), Taus::Shared(tau)).unwrap();
            let mix = Mixture::new(data.mixture(tau));
            let mut gemm = GemmMixture::new(&mix);
            // Told before every call that the last one's rows kept most components: it takes
            // every product in f64 wherever all rows need refinement, with the same bits.
            let mut all64 = GemmMixture::new(&mix);
            let mut all64_calls = 0;
            // The worst error in each σ band of `anneal bench`'s table.
            let mut worst = [0.0f64; BANDS.len()];
            for i in 0..schedule.levels() {
                let sigma = schedule.sigma(i).unwrap();
                let band = BANDS.iter().position(|&lo| sigma >= lo).unwrap_or(BANDS.len() - 1);
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
                let mut out64 = vec![0.0f32; b * d];
                all64.wide = true;
                all64.score_batch(&pts, sigma, &mut out64).unwrap();
                all64_calls += all64.all64 as usize;
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&out64), bits(&out), "σ = {sigma}: products all in f64");
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
                    worst[band] = worst[band].max(err / scale);
                }
            }
            for (w, lo) in worst.iter().zip(BANDS) {
                assert!(
                    *w > 0.0 && *w < 1e-4,
                    "τ = {tau}, σ ≥ {lo} band: worst relative error {w:e}"
                );
            }
            eprintln!("τ = {tau}: {all64_calls} calls with every product in f64");
            assert!(all64_calls >= 10, "τ = {tau}: only {all64_calls} calls took products in f64");
        }
    }

    /// The refined logits (module docs, step 2) against their bound e₆₄, as the scorer refines
    /// them (`RowsIn::select` and `refine_rows`), on digits at σ = 0.3 (rows with every
    /// component a candidate: the f64 GEMM) and σ = 0.01 (where e₆₄ is largest; a few
    /// candidates: one product each), for 16 rows near digits, on bisectors and far out: every
    /// candidate's logit within e₆₄ of a reference exact to ~3·2⁻⁵³ of the bound's scale (its
    /// sums by TwoSum, its division by 2v with an FMA remainder). The worst error ÷ e₆₄ is
    /// printed.
    #[test]
    fn refined_logits_are_within_their_bound() {
        let data = crate::io::data::load("digits").unwrap();
        let (d, k) = (data.dim, data.components());
        let mix = Mixture::new(data.mixture(0.0));
        let Some((mt, _)) = &mix.packed else { panic!("digits takes the GEMM path") };
        let u = 2f64.powi(-53);
        let mut worst = 0.0f64;
        for (sigma, dense_rows) in [(0.3, true), (0.01, false)] {
            let v = mix.variance(sigma);
            let c: Vec<f64> =
                mix.ln_w.iter().zip(&mix.norms2).map(|(lw, n2)| lw - n2 * (0.5 / v)).collect();
            let b = 16;
            let mut pts = vec![0.0f32; b * d];
            let mut z = vec![0.0f32; d];
            for (j, row) in pts.chunks_exact_mut(d).enumerate() {
                Keyed::new(11).normals(j as u64, Stream::Step(0), &mut z);
                let a = (j * 113) % k;
                let mu = &data.means[a * d..(a + 1) * d];
                let nb = &data.means[nearest_other(&data.means, d, a) * d..][..d];
                for (((p, &m), &o), &zz) in row.iter_mut().zip(mu).zip(nb).zip(&z) {
                    *p = match j % 3 {
                        0 => m + sigma as f32 * zz,
                        1 => 0.5 * (m + o) + 1e-3 * sigma as f32 * zz,
                        _ => 0.5 * m + zz,
                    };
                }
            }
            let mut g = vec![0.0f32; b * k];
            gemm::gemm(b, &pts, mt, &mut g, k);
            let rows = super::RowsIn { mix: &mix, c: &c, v, all64: false };
            let mut cands: Vec<super::Cand> = (0..b).map(|_| super::Cand::default()).collect();
            let sel: Vec<super::Selected> = pts
                .chunks_exact(d)
                .zip(g.chunks_exact(k))
                .zip(cands.iter_mut())
                .map(|((y, g), cand)| rows.select(y, g, cand))
                .collect();
            rows.refine_rows(&pts, &sel, &mut cands, &mut Vec::new());
            let dense = cands.iter().filter(|c| c.j.len() > k / super::DENSE_REFINE).count();
            assert_eq!(dense > 0, dense_rows, "σ = {sigma}: {dense} rows with the f64 GEMM");
            for ((y, s), cand) in pts.chunks_exact(d).zip(&sel).zip(&cands) {
                assert!(s.prec.refine(), "σ = {sigma}: every row here is refined");
                let y2: f64 = y.iter().map(|&a| a as f64 * a as f64).sum();
                for (&j, &got) in cand.j.iter().zip(&cand.l) {
                    let mu = &data.means[j as usize * d..(j as usize + 1) * d];
                    // ‖μ‖² − 2 y·μ exactly (a double-double), then ÷ 2v.
                    let (mut hi, mut lo) = (0.0f64, 0.0f64);
                    for (&yv, &m) in y.iter().zip(mu) {
                        let m = m as f64;
                        for t in [m * m, -2.0 * yv as f64 * m] {
                            let (s, e) = gemm::two_sum(hi, t);
                            (hi, lo) = (s, lo + e);
                        }
                    }
                    let (n, w) = (hi + lo, 2.0 * v);
                    let q_hi = n / w;
                    let q_lo = ((-q_hi).mul_add(w, hi) + lo) / w;
                    let lw = mix.ln_w[j as usize];
                    let err = (((got - lw) + q_hi) + q_lo).abs();
                    let norm_mu = mix.norms2[j as usize].sqrt();
                    let bound = (d + 6) as f64 * u * (lw.abs() + (y2.sqrt() + norm_mu).powi(2) / w);
                    assert!(err <= bound, "σ = {sigma}, component {j}: error {err:e} > {bound:e}");
                    worst = worst.max(err / bound);
                }
            }
        }
        eprintln!("refined logits: worst error {worst:.3e} of the bound e₆₄");
    }

    /// The score streamed over blocks of components ([`super::stream`]) against the whole-row
    /// path, bit for bit: on digits (K = 1797, D = 64: R M through packed panels) and on 3000
    /// points in D = 10 (R M through the narrow operand), at σ from 14 to 0.01 (rows dense and
    /// sparse, refined and not), for blocks of one panel, of 512 and 1024 components (a partial
    /// last block each), at 1 and 2 threads; rows near the data, on bisectors and far out.
    #[test]
    fn streamed_score_has_the_same_bits_for_any_block() {
        let digits = crate::io::data::load("digits").unwrap();
        let (k10, d10) = (3000usize, 10usize);
        let mut s = 0x2545_F491_4F6C_DD1Du64;
        let cloud: Vec<f32> = (0..k10 * d10)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0
            })
            .collect();
        let weights = vec![1.0 / k10 as f64; k10];
        let cases = [
            (digits.mixture(0.0), "digits"),
            (
                anneal_core::score::MixtureData {
                    means: &cloud,
                    dim: d10,
                    weights: &weights,
                    tau: 0.0,
                },
                "cloud",
            ),
        ];
        let schedule = Geometric::new(14.0, 0.01, 12).unwrap();
        for (data, name) in cases {
            let (d, k) = (data.dim, data.components());
            let whole = Mixture::new(data);
            assert!(whole.uses_gemm() && whole.stream_block.is_none());
            let b = 45;
            let (mut dense, mut sparse, mut refined) = (0, 0, 0);
            for i in 0..schedule.levels() {
                let sigma = schedule.sigma(i).unwrap();
                let mut pts = vec![0.0f32; b * d];
                let mut z = vec![0.0f32; d];
                for (j, row) in pts.chunks_exact_mut(d).enumerate() {
                    Keyed::new(9).normals(j as u64, Stream::Step(i as u32), &mut z);
                    let a = (j * 97) % k;
                    let mu = &data.means[a * d..(a + 1) * d];
                    let nb = &data.means[((a + 1) % k) * d..((a + 1) % k + 1) * d];
                    for (((p, &m), &o), &zz) in row.iter_mut().zip(mu).zip(nb).zip(&z) {
                        *p = match j % 3 {
                            0 => m + sigma as f32 * zz,
                            1 => 0.5 * (m + o) + 1e-3 * sigma as f32 * zz,
                            _ => 3.0 * m + zz,
                        };
                    }
                }
                let mut want = vec![0.0f32; b * d];
                let mut scorer = GemmMixture::new(&whole);
                scorer.score_batch(&pts, sigma, &mut want).unwrap();
                refined += scorer.refined;
                for block in [gemm::NR, 512, 1024] {
                    let streamed = Mixture::new(data).streamed(block);
                    for threads in [1, 2] {
                        let pool =
                            rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                        let mut got = vec![0.0f32; b * d];
                        // Through the scorer (as sampling calls it), and once alone for its
                        // report of dense rows.
                        let mut scorer = GemmMixture::new(&streamed);
                        pool.install(|| scorer.score_batch(&pts, sigma, &mut got)).unwrap();
                        if block == 512 && threads == 1 {
                            let mut again = vec![0.0f32; b * d];
                            let v = whole.variance(sigma);
                            let mut entries = vec![super::memo::Entry::default(); b];
                            let report = super::stream::score_rows(
                                &streamed,
                                block,
                                v,
                                &pts,
                                &mut again,
                                &mut entries,
                            );
                            assert!(again == got && report.refined == scorer.refined);
                            dense += report.dense;
                            sparse += b - report.dense;
                        }
                        let same = got.iter().zip(&want).all(|(x, y)| x.to_bits() == y.to_bits());
                        assert!(same, "{name}: σ = {sigma}, block {block}, {threads} threads");
                    }
                }
            }
            assert!(
                dense > 0 && sparse > 0 && refined > 0,
                "{name}: {dense} dense, {sparse} sparse, {refined} refined rows"
            );
        }
    }

    /// The direct path (toy2d, K·D ≤ 64: eight rows per lane block, the polynomial exp) against
    /// the core's f64 score, at every σ of a schedule from 20 to 0.01, on 13 rows (a partial
    /// block) near the modes, between them and far out. Tolerance 1e-6 of the score's scale
    /// (f32 output: 6e-8 relative, plus the exp's 2 ulp and f64 rounding).
    #[test]
    fn direct_score_matches_the_f64_reference() {
        let data = crate::io::data::load("toy2d").unwrap();
        let means64: Vec<f64> = data.means.iter().map(|&v| v as f64).collect();
        let reference =
            IsotropicMixture::new(&means64, 2, Some(&data.weights), Taus::Shared(1.0)).unwrap();
        let mix = Mixture::new(data.mixture(1.0));
        let mut score = GemmMixture::new(&mix);
        let pts: Vec<f32> = (0..13)
            .flat_map(|i| {
                let t = i as f32 / 12.0;
                [
                    -5.0 + 10.0 * t + 0.3 * (i % 3) as f32,
                    -5.0 + 10.0 * t - if i == 12 { 40.0 } else { 0.0 },
                ]
            })
            .collect();
        let schedule = Geometric::new(20.0, 0.01, 25).unwrap();
        let mut worst = 0.0f64;
        for i in 0..schedule.levels() {
            let sigma = schedule.sigma(i).unwrap();
            let mut out = vec![0.0f32; pts.len()];
            score.score_batch(&pts, sigma, &mut out).unwrap();
            let v = 1.0 + sigma * sigma;
            for (p, o) in pts.chunks_exact(2).zip(out.chunks_exact(2)) {
                let p64 = [p[0] as f64, p[1] as f64];
                let mut want = [0.0f64; 2];
                anneal_core::Score::score(&reference, &p64, sigma, &mut want).unwrap();
                let scale = means64
                    .chunks_exact(2)
                    .map(|m| ((m[0] - p64[0]).powi(2) + (m[1] - p64[1]).powi(2)).sqrt())
                    .fold(0.0, f64::max)
                    / v;
                let err =
                    ((o[0] as f64 - want[0]).powi(2) + (o[1] as f64 - want[1]).powi(2)).sqrt();
                worst = worst.max(err / scale);
            }
        }
        assert!(worst < 1e-6, "worst relative error {worst:e}");
    }
}
