//! Rows scored from what their last full computation left: at small σ a sample sits near one
//! or a few means, moves little from one step to the next, and every other component stays
//! far below the 36-nat floor — so its products with them need not be taken again.
//!
//! A scorer keeps, for each row of its batch, an entry from the row's last full computation
//! (a refined row with at most [`cap`]`(K)` candidates; over whole rows or streamed over blocks
//! of components, [`super::stream`], which leave the same entries): the point `y₀`, the candidates `S`
//! (in component order) and a distance `ρ` that every other component's mean is at least as
//! far from `y₀` as. At the next call with the row at `y` and variance `v`, the row is scored
//! from its entry alone — the refined logits of `S` ([`super::refine_candidates`]), then
//! [`super::RowsIn::finish`] — when the bound below shows that every component outside `S`
//! has weight 0 in the full computation. Otherwise the row is computed in full, which
//! replaces its entry.
//!
//! **The bound.** Write `t_k = ln w_k + (‖y‖² − ‖y − μ_k‖²)/(2v)` for the exact logit in the
//! scorer's convention (the module docs' `c_k + (y·μ_k)/v`). Let `δ ≥ ‖y − y₀‖`. For k ∉ S,
//! `‖y − μ_k‖ ≥ ρ − δ` (triangle inequality), so with `L = max(ρ − δ, 0)`:
//!
//! `t_k ≤ A = max_k ln w_k + (‖y‖² − L²)/(2v)`.
//!
//! A refined logit is within `e₆₄` of exact (module docs, step 2). Let `b` be the candidate of
//! largest refined logit at the last full computation; its refined logit now, `t̂_b`, takes
//! one product, and the exact maximum is at least `t̂_b − e₆₄`. The row is scored from its
//! entry when
//!
//! `A + 37 + slack ≤ t̂_b − e₆₄`,
//!
//! `slack` covering the f64 roundings of A, δ and ‖y‖² (below). Then for k ∉ S the refined
//! logit the full computation would take is `t̂_k ≤ t_k + e₆₄ ≤ A + e₆₄ ≤ t̂_b − 37 ≤ t̂_max −
//! 37`, `t̂_max` the largest refined logit of S: its
//! weight is 0 whether or not the f32 cut keeps it (the floor is −36). The refined maximum over
//! all components is in S (everything outside is 37 nats below it), so both take the same
//! maximum; the cut keeps every component whose refined logit is within 36 nats of it (module
//! docs, step 2), so a component of S that the cut would drop weighs 0 here as well. The
//! components of non-zero weight are then the same, with the same refined logits (the same
//! products in the same order: [`super::refine_candidates`]) and so the same weights; z sums
//! them by component index mod 8 in component order, which the zeros of either set do not
//! change; the non-zero count and so the sparse-or-dense choice are the same (a row scored from
//! its entry has at most `cap(K) ≤ K/16` candidates, so it is sparse in both). The score has
//! the same bits as the full computation's.
//!
//! **ρ**, from the full computation at `y₀`, `v₀`: every k ∉ S had its f32 logit `t̃_k` below
//! the cut; let `out = max_{k∉S} t̃_k`. An f32 logit errs by at most `e + e₆₄` (module docs,
//! step 2), so exact `t_k ≤ out + e + e₆₄`, and from `‖y₀ − μ_k‖² = ‖y₀‖² + 2v₀(ln w_k − t_k)`:
//!
//! `ρ² = ‖y₀‖² + 2v₀(min_k ln w_k − out − e − e₆₄) − slack`.
//!
//! **slack**: `10⁻⁹` of the sum of the magnitudes of the terms. Each computed term (‖y‖² and
//! ‖y − y₀‖² as sums of D ≤ 2¹⁷ squares, the few products and sums after them, a square root)
//! errs by at most `(D + 10)·2⁻⁵³ ≤ 1.5·10⁻¹¹` of its magnitude, 60 times less.
//!
//! The bound holds for any `y`: the entry does not have to belong to the same sample (a
//! scorer given other rows simply finds the bound fails), and a non-finite `y` never passes
//! it (its e is NaN, or δ and A are infinite). Rows that are not refined (e ≤ 1e-4: large σ
//! against the data's scale) are always computed in full.

use super::{Cand, Mixture, Precision, RowsIn, Selected, max_lanes, refine_candidates};

/// The most candidates an entry holds.
pub(super) const CAP: usize = 64;

/// The most candidates an entry holds for K components: [`CAP`], and at most K/16 so that a
/// row scored from its entry is a sparse row ([`RowsIn::finish`]).
pub(super) fn cap(k: usize) -> usize {
    CAP.min(k / 16)
}

/// The margin of the bound, in nats: 36 (the floor) and 1 to spare (module docs).
const MARGIN: f64 = 37.0;

/// The relative allowance for the f64 roundings of the bound's terms (module docs).
const SLACK: f64 = 1e-9;

/// What a full computation leaves for one row: its candidates and ρ; `len` 0 for none.
#[derive(Clone, Copy)]
pub(super) struct Entry {
    len: u16,
    /// The candidate (its place in `s`) of largest refined logit.
    best: u16,
    s: [u32; CAP],
    reach: f64,
}

impl Default for Entry {
    fn default() -> Self {
        Entry { len: 0, best: 0, s: [0; CAP], reach: 0.0 }
    }
}

impl Entry {
    /// The entry a full computation of the row `y` at variance `v` leaves, given its candidates
    /// (component order) and what [`RowsIn::select`] found; none (`len` 0) unless the row was
    /// refined from f32 logits with at most [`cap`]`(K)` candidates.
    pub(super) fn of(mix: &Mixture<'_>, v: f64, cand: &Cand, sel: &Selected) -> Entry {
        let (n, p) = (cand.j.len(), sel.prec);
        if !p.refine() || n == 0 || n > cap(mix.k) || !sel.out.is_finite() {
            return Entry::default();
        }
        let e = p.err + p.err64;
        let r2 = p.y2 + 2.0 * v * (mix.ln_w_min - sel.out - e);
        let slack = SLACK * (p.y2 + 2.0 * v * (mix.ln_w_min.abs() + sel.out.abs() + e));
        let reach = (r2 - slack).max(0.0).sqrt() * (1.0 - SLACK);
        if !reach.is_finite() || reach <= 0.0 {
            return Entry::default();
        }
        let mut s = [0u32; CAP];
        s[..n].copy_from_slice(&cand.j);
        let best = (1..n).fold(0, |b, i| if cand.l[i] > cand.l[b] { i } else { b });
        Entry { len: n as u16, best: best as u16, s, reach }
    }
}

/// A batch's entries, by row of the batch.
#[derive(Default)]
pub(super) struct Memo {
    /// y₀ of each row (D values each).
    y: Vec<f32>,
    entries: Vec<Entry>,
}

impl Memo {
    /// Bytes held for `rows` rows of D values.
    pub(super) fn bytes(rows: usize, d: usize) -> usize {
        rows * (d * 4 + std::mem::size_of::<Entry>())
    }

    /// Whether any of rows `first..first + n` of the batch has an entry.
    pub(super) fn any(&self, first: usize, n: usize) -> bool {
        self.entries.iter().skip(first).take(n).any(|e| e.len > 0)
    }

    /// Records the entries of rows `rows` (batch indices) from their points (`y`, in the same
    /// order) and what their full computation left.
    pub(super) fn store(&mut self, d: usize, rows: &[usize], y: &[f32], entries: &[Entry]) {
        let need = rows.iter().map(|&r| r + 1).max().unwrap_or(0);
        if self.entries.len() < need {
            self.entries.resize(need, Entry::default());
            self.y.resize(need * d, 0.0);
        }
        for ((&r, y), e) in rows.iter().zip(y.chunks_exact(d)).zip(entries) {
            self.entries[r] = *e;
            if e.len > 0 {
                self.y[r * d..(r + 1) * d].copy_from_slice(y);
            }
        }
    }

    /// Row `row` of the batch at `y`: its score into `o` from its entry where the bound holds
    /// (module docs), returning its non-zero weights and the products it took; None where it
    /// must be computed in full.
    #[inline(always)]
    pub(super) fn try_row(
        &self,
        rows: &RowsIn<'_, '_>,
        row: usize,
        y: &[f32],
        o: &mut [f32],
        cand: &mut Cand,
    ) -> Option<(usize, usize)> {
        let mix = rows.mix;
        let d = mix.dim;
        let entry = self.entries.get(row).filter(|e| e.len > 0)?;
        let prec = Precision::of(mix, y, rows.v);
        if !prec.refine() {
            return None;
        }
        let y0 = &self.y[row * d..(row + 1) * d];
        let moved: f64 = y
            .iter()
            .zip(y0)
            .map(|(&a, &b)| {
                let t = a as f64 - b as f64;
                t * t
            })
            .sum();
        let delta = moved.sqrt() * (1.0 + SLACK);
        let low = (entry.reach - delta).max(0.0);
        let half_inv_v = 0.5 / rows.v;
        let a = mix.ln_w_max + (prec.y2 - low * low) * half_inv_v;
        // The test on the last full computation's best candidate first: one product.
        let s = &entry.s[..entry.len as usize];
        let mut best = [0.0f64];
        let c = |j| mix.c_k(j, rows.v);
        refine_candidates(mix, y, (c, 0), &s[entry.best as usize..][..1], &mut best, 1.0 / rows.v);
        let best = best[0];
        let sizes = prec.y2 + entry.reach * entry.reach + delta * delta;
        let slack = SLACK * (mix.ln_w_max.abs() + sizes * half_inv_v + best.abs());
        // (False for NaN.)
        let others_weigh_nothing = a + MARGIN + slack <= best - prec.err64;
        if !others_weigh_nothing {
            return None;
        }
        cand.j.clear();
        cand.j.extend_from_slice(s);
        cand.l.resize(s.len(), 0.0);
        refine_candidates(mix, y, (c, 0), s, &mut cand.l, 1.0 / rows.v);
        let max = max_lanes(&cand.l);
        let done = rows.finish(y, o, cand, Selected { prec, max, out: f64::NEG_INFINITY });
        debug_assert!(done.dense.is_none(), "a row scored from its entry is sparse");
        Some((done.nnz, s.len() + 1))
    }
}

/// What the rows scored from their entries did.
#[derive(Default)]
pub(super) struct Scored {
    /// Rows scored from their entries.
    pub rows: usize,
    /// Their candidates' products (D multiply-adds each).
    pub products: usize,
    /// Their non-zero weights (D multiply-adds each in Σ r_k μ_k).
    pub terms: usize,
}

impl Scored {
    fn add(self, s: Scored) -> Scored {
        Scored {
            rows: self.rows + s.rows,
            products: self.products + s.products,
            terms: self.terms + s.terms,
        }
    }
}

/// The rows `first..` of the batch (`points`) that their entries score, into `out`, marked in
/// `done`; the others are left for the full computation. On the pool's threads if `par`.
pub(super) fn score_rows(
    memo: &Memo,
    rows: &RowsIn<'_, '_>,
    first: usize,
    points: &[f32],
    out: &mut [f32],
    done: &mut [bool],
    par: bool,
) -> Scored {
    use rayon::prelude::*;
    /// One chunk's rows, as one argument for `dispatch!`.
    struct Job<'j, 'm, 'a> {
        memo: &'j Memo,
        rows: &'j RowsIn<'m, 'a>,
        first: usize,
        y: &'j [f32],
        o: &'j mut [f32],
        done: &'j mut [bool],
    }
    #[inline(always)]
    fn chunk(job: Job<'_, '_, '_>) -> Scored {
        let Job { memo, rows, first, y, o, done } = job;
        let d = rows.mix.dim;
        let mut cand = Cand::default();
        let mut s = Scored::default();
        for (i, ((y, o), done)) in
            y.chunks_exact(d).zip(o.chunks_exact_mut(d)).zip(done).enumerate()
        {
            if let Some((nnz, n)) = memo.try_row(rows, first + i, y, o, &mut cand) {
                *done = true;
                s.rows += 1;
                s.products += n;
                s.terms += nnz;
            }
        }
        s
    }
    let d = rows.mix.dim;
    let b = points.len() / d;
    let per = if par { b.div_ceil(4 * rayon::current_num_threads()).max(1) } else { b.max(1) };
    points
        .par_chunks(per * d)
        .zip(out.par_chunks_mut(per * d))
        .zip(done.par_chunks_mut(per))
        .enumerate()
        .map(|(c, ((y, o), done))| {
            let job = Job { memo, rows, first: first + c * per, y, o, done };
            crate::score::simd::dispatch!(chunk, (job: Job<'_, '_, '_>) -> Scored)
        })
        .reduce(Scored::default, Scored::add)
}

#[cfg(test)]
mod tests {
    use anneal_core::noise::{Keyed, Noise, Stream};
    use anneal_core::score::MixtureData;
    use anneal_core::{BatchScore, Geometric, Schedule};

    use super::super::{GemmMixture, Mixture};

    /// Panics at the first value whose bits differ.
    fn same_bits(got: &[f32], want: &[f32], what: &str) {
        assert_eq!(got.len(), want.len());
        if let Some(i) = got.iter().zip(want).position(|(a, b)| a.to_bits() != b.to_bits()) {
            panic!("{what}: value {i} is {:e}, the full computation's {:e}", got[i], want[i]);
        }
    }

    /// The score of `pts` by a scorer that has no entries: every row computed in full.
    fn fresh(mix: &Mixture<'_>, pts: &[f32], sigma: f64) -> Vec<f32> {
        let mut out = vec![0.0f32; pts.len()];
        GemmMixture::new(mix).score_batch(pts, sigma, &mut out).unwrap();
        out
    }

    /// Rows along the paths a sampler's take at small σ — near a digit, moving with σ — and
    /// rows that jump (fresh noise each level, the batch reversed at one level, bisectors of two
    /// digits where both weigh ~1/2), on digits for τ = 0 and 0.05, whole rows and streamed over
    /// blocks of 512 components (the entries from the streamed passes), down a 60-level schedule
    /// from 14 to 0.01: one scorer across every level gives the bits of a scorer without entries
    /// at every level, and scores most of the moving rows from their entries below σ = 0.1.
    #[test]
    fn rows_scored_from_their_entries_have_the_bits_of_the_full_computation() {
        let data = crate::io::data::load("digits").unwrap();
        let (d, k) = (data.dim, data.components());
        let schedule = Geometric::new(14.0, 0.01, 60).unwrap();
        let b = 64;
        for (tau, streamed) in [(0.0, false), (0.05, false), (0.0, true)] {
            let mix = Mixture::new(data.mixture(tau));
            let mix = if streamed { mix.streamed(512) } else { mix };
            let mut memo = GemmMixture::new(&mix);
            let (mut pruned_small, mut moving_small) = (0, 0);
            let mut z = vec![0.0f32; d];
            for i in 0..schedule.levels() {
                let sigma = schedule.sigma(i).unwrap() as f32;
                let mut pts = vec![0.0f32; b * d];
                for (j, row) in pts.chunks_exact_mut(d).enumerate() {
                    let a = (j * 97) % k;
                    let mu = &data.means[a * d..(a + 1) * d];
                    let other = &data.means[((a + 1) % k) * d..][..d];
                    let step = if j % 4 == 3 { Stream::Step(i as u32) } else { Stream::Step(0) };
                    Keyed::new(5).normals(j as u64, step, &mut z);
                    for (((p, &m), &o), &zz) in row.iter_mut().zip(mu).zip(other).zip(&z) {
                        *p = match j % 4 {
                            2 => 0.5 * (m + o) + 1e-3 * sigma * zz,
                            _ => m + sigma * zz,
                        };
                    }
                }
                if i == 45 {
                    // Each row meets another row's entry.
                    let rev: Vec<f32> = pts.chunks_exact(d).rev().flatten().copied().collect();
                    pts = rev;
                }
                let mut out = vec![0.0f32; b * d];
                memo.score_batch(&pts, sigma as f64, &mut out).unwrap();
                let want = fresh(&mix, &pts, sigma as f64);
                same_bits(&out, &want, &format!("σ = {sigma}, streamed {streamed}"));
                if sigma < 0.1 && i != 45 {
                    pruned_small += memo.pruned;
                    moving_small += b / 2;
                }
            }
            eprintln!(
                "τ = {tau}, streamed {streamed}: {pruned_small} rows scored from entries below σ = 0.1"
            );
            assert!(
                2 * pruned_small > moving_small,
                "τ = {tau}, streamed {streamed}: {pruned_small} of {moving_small} moving rows from \
                 their entries"
            );
        }
    }

    /// Where the bound is tight: a row at μ₀, a second mean 39 nats away, then the row moved
    /// towards it until it is 35.9 nats away (weight e^−35.9, not 0). The second mean differs
    /// from μ₀ in a coordinate where the row and μ₀ are 0, so its weight alone makes that
    /// coordinate of the score non-zero: the row must be computed in full (without the movement
    /// in the bound, or with a margin below 35.9 nats, the entry would score it and the
    /// coordinate would be 0). Moved 1e-3 of that distance, the row is scored from its entry.
    #[test]
    fn an_entry_scores_a_row_only_where_the_others_weigh_nothing() {
        let (d, k) = (8usize, 64usize);
        let (sigma, c3) = (0.1f64, 0.5f32);
        let v = sigma * sigma;
        // μ₁ − μ₀ = (a, b) in coordinates 1 and 2, a² + b² = 78v (39 nats at μ₀).
        let (a, bb) = ((70.0 * v).sqrt(), (8.0 * v).sqrt());
        let mut means = vec![0.0f32; k * d];
        means[3] = c3;
        means[d + 1] = a as f32;
        means[d + 2] = bb as f32;
        means[d + 3] = c3;
        for (j, m) in means.chunks_exact_mut(d).enumerate().skip(2) {
            m[4] = 50.0;
            m[5] = j as f32;
        }
        let weights = vec![1.0 / k as f64; k];
        let mix = Mixture::new(MixtureData { means: &means, dim: d, weights: &weights, tau: 0.0 });
        let mut memo = GemmMixture::new(&mix);
        let at = |x1: f64| {
            let mut y = vec![0.0f32; d];
            y[1] = x1 as f32;
            y[3] = c3;
            y
        };
        let mut out = vec![0.0f32; d];
        let y0 = at(0.0);
        memo.score_batch(&y0, sigma, &mut out).unwrap();
        assert_eq!((memo.refined, memo.pruned), (1, 0), "the first call is refined, in full");
        // Exact gap (a² + b² − 2·a·x1)/(2v) = 39 − a·x1/v.
        let near = at(3.1 * v / a);
        let want = fresh(&mix, &near, sigma);
        assert!(want[2] > 0.0, "μ₁'s weight shows in coordinate 2: {}", want[2]);
        memo.score_batch(&near, sigma, &mut out).unwrap();
        same_bits(&out, &want, "35.9 nats");
        assert_eq!(memo.pruned, 0, "35.9 nats: computed in full");
        // A new scorer at μ₀ (its entry: μ₀ alone), then a small move.
        let mut memo = GemmMixture::new(&mix);
        memo.score_batch(&y0, sigma, &mut out).unwrap();
        let small = at(1e-3 * 3.1 * v / a);
        memo.score_batch(&small, sigma, &mut out).unwrap();
        let want = fresh(&mix, &small, sigma);
        assert_eq!(want[2], 0.0);
        same_bits(&out, &want, "≈ 39 nats");
        assert_eq!(memo.pruned, 1, "≈ 39 nats: scored from the entry");
        // `without_memo` (the bench's one step) computes it in full.
        let mut plain = GemmMixture::new(&mix).without_memo();
        plain.score_batch(&y0, sigma, &mut out).unwrap();
        plain.score_batch(&small, sigma, &mut out).unwrap();
        same_bits(&out, &want, "without entries");
        assert_eq!(plain.pruned, 0, "without entries: in full");
    }
}
