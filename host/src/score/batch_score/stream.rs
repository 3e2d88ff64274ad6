//! The mixture score streamed over blocks of components, for mixtures whose rows of G would not
//! fit a fixed scratch (K > [`STREAM_K`]): memory O(rows × block), not O(rows × K), and the same
//! bits as the whole-row path of the parent module for any block size and thread split.
//!
//! The whole-row path holds a row's K products, picks its maximum, then its candidates, their
//! weights and their sum. Here the row's products are recomputed block by block (they are the
//! same FMA chains over D whatever the block: [`gemm::gemm_cols`]) in passes that each need what
//! the one before found:
//! 1. the largest logit `max t_k` (an exact maximum, the same in any order) — and from it, as in
//!    the whole-row path, whether the row's logits need refinement and the candidates' cut;
//! 2. for rows without refinement, the weights `exp(t_k − max)` of the candidates, their sum z
//!    (added in component order, as the whole-row path adds its candidate list) and how many are
//!    non-zero; for refined rows, the largest refined logit;
//! 3. refined rows only: their weights, z and count, from the refined maximum;
//! 4. the weights again, divided by z as the whole-row path divides them, into the score: summed
//!    in component order for rows with few non-zero weights, or, for the others, into the
//!    product `R M` whose FMA chains over components are carried from block to block
//!    ([`gemm::accumulate`]: the same chains as one product over all of them).
//!
//! The price is the products recomputed: three or four times those of the whole-row path. Pass
//! 2 also gathers what a refined row's entry needs ([`super::memo`]: its candidates while at most
//! 64, their refined logits, and the largest f32 logit below the cut), so that at small σ rows
//! are scored from their last candidates here as on the whole-row path, with the same entries.

use rayon::prelude::*;

use super::memo::{self, Entry};
use super::{
    Cand, Mixture, Precision, Selected, lane_sum, logit, max_lanes, max_logit, refine_candidates,
    weight,
};
use crate::score::gemm::{self, Chains, Packed};

/// Components beyond which the score streams: up to here the whole-row path's scratch is at
/// most its 2²² products (16 MiB) per call plus a candidate list per row being scored.
pub const STREAM_K: usize = 1 << 19;

/// Components per block (a multiple of [`gemm::NR`]).
pub const BLOCK: usize = 1 << 15;

/// Rows scored together on one thread: the means of a block are read once per group.
const GROUP: usize = 32;

/// The most scratch a call holds for `rows` rows with blocks of `block` components: per group
/// being scored (one per thread at most), its products and (for dense rows) weights for a block
/// in f32, the block's c_k in f64 and one row's candidates in it (an index and a logit each).
pub fn scratch_bytes(rows: usize, block: usize) -> usize {
    let groups = rows.div_ceil(GROUP).min(rayon::current_num_threads()).max(1);
    groups * (GROUP.min(rows) * block * 8 + block * 20)
}

/// What a call reports: rows refined, dense rows, and the multiply-adds ×2 of its products.
#[derive(Default)]
pub struct Report {
    pub refined: usize,
    pub dense: usize,
    pub flops: f64,
}

/// The score of `points` at v = τ² + σ² into `out`, with blocks of `block` components, and the
/// rows' entries for [`memo`] into `entries` (as the whole-row path leaves them).
pub fn score_rows(
    mix: &Mixture<'_>,
    block: usize,
    v: f64,
    points: &[f32],
    out: &mut [f32],
    entries: &mut [Entry],
) -> Report {
    let d = mix.dim;
    points
        .par_chunks(GROUP * d)
        .zip(out.par_chunks_mut(GROUP * d))
        .zip(entries.par_chunks_mut(GROUP))
        .map(|((y, o), e)| group(mix, block, v, y, o, e))
        .reduce(Report::default, |a, b| Report {
            refined: a.refined + b.refined,
            dense: a.dense + b.dense,
            flops: a.flops + b.flops,
        })
}

/// One row's state between the passes.
#[derive(Clone, Copy)]
struct Row {
    /// The largest unrefined logit, then (refined rows) the largest refined one.
    max: f64,
    refine: bool,
    cut: f64,
    /// Weights below e^floor are 0 ([`Precision::floor`]).
    floor: f64,
    /// The weights' sum in eight lanes by component index mod 8 ([`lane_sum`]).
    z: [f64; 8],
    nnz: usize,
    inv: f32,
    dense: bool,
}

/// What the passes over one group share.
struct Ctx<'g, 'm, 'a> {
    mix: &'m Mixture<'a>,
    rows: Vec<&'g [f32]>,
    block: usize,
    v: f64,
    /// Multiply-adds ×2 so far.
    flops: f64,
}

impl Ctx<'_, '_, '_> {
    /// Components `j0..j0 + len`: their c_k = ln w_k − ‖μ_k‖²/(2v) into `c` and the products
    /// of the rows `which` (indices into `rows`) into g's rows 0, 1, ….
    #[inline(always)]
    fn products(&mut self, j0: usize, len: usize, which: &[usize], g: &mut [f32], c: &mut [f64]) {
        let mix = self.mix;
        for (j, c) in c[..len].iter_mut().enumerate() {
            *c = mix.c_k(j0 + j, self.v);
        }
        let a: Vec<&[f32]> = which.iter().map(|&i| self.rows[i]).collect();
        let Some((mt, _)) = &mix.packed else { unreachable!("a streamed mixture is packed") };
        gemm::gemm_cols(&a, mt, j0, len, g, self.block);
        self.flops += 2.0 * (which.len() * len * mix.dim) as f64;
    }

    /// The block of components after `j0`'s: (first, length), or None after the last.
    #[inline(always)]
    fn next_block(&self, j0: Option<usize>) -> Option<(usize, usize)> {
        let next = j0.map_or(0, |j| j + self.block);
        (next < self.mix.k).then(|| (next, self.block.min(self.mix.k - next)))
    }

    /// Row i's candidates among the components `j0..j0 + c.len()` (t ≥ its cut; `g`: its products
    /// with them), in order: their offsets from `j0` into `jj` and their logits, refined where
    /// the row is, into `l`. Returns the largest logit below the cut (−∞ if none).
    #[inline(always)]
    fn row_candidates(
        &self,
        s: &Row,
        i: usize,
        j0: usize,
        (c, g): (&[f64], &[f32]),
        (jj, l): (&mut Vec<u32>, &mut Vec<f64>),
    ) -> f64 {
        let inv_v = 1.0 / self.v;
        jj.clear();
        l.clear();
        let mut below = f64::NEG_INFINITY;
        for (j, (&c, &g)) in c.iter().zip(g).enumerate() {
            let t = logit(c, g, inv_v);
            if t >= s.cut {
                jj.push(j as u32);
                l.push(t);
            } else if t > below {
                below = t;
            }
        }
        if s.refine {
            // As `RowsIn::refine_rows` refines a row's candidates: the same bits.
            refine_candidates(self.mix, self.rows[i], (|j| c[j], j0), jj, l, inv_v);
        }
        below
    }
}

/// A group's scratch: the block's products and constants, one row's candidates in it, and the
/// dense rows' weights for it.
#[derive(Default)]
struct Buffers {
    g: Vec<f32>,
    c: Vec<f64>,
    jj: Vec<u32>,
    l: Vec<f64>,
    r: Vec<f32>,
}

std::thread_local! {
    /// Each thread's [`Buffers`], kept from group to group: allocated once (at most
    /// [`scratch_bytes`] per thread), not once per group — allocations of megabytes freed and
    /// made again left the allocator's per-thread heaps holding a varying amount (the run's peak
    /// moved by ±15 MB from run to run).
    static BUFFERS: std::cell::RefCell<Buffers> = std::cell::RefCell::new(Buffers::default());
}

/// The weights e = exp(l − max) of the logits `l`, in place (a pass of its own, so that it
/// vectorises, as in `RowsIn::finish`).
#[inline(always)]
fn to_weights(max: f64, floor: f64, l: &mut [f64]) {
    l.iter_mut().for_each(|l| *l = weight(*l - max, floor));
}

/// [`to_weights`], then adds them to the row's z lanes (component `jj` goes to lane `jj` mod 8:
/// blocks start at multiples of 8) in component order and counts the non-zero ones — the sums of
/// `RowsIn::finish`.
#[inline(always)]
fn weights(s: &mut Row, jj: &[u32], l: &mut [f64]) {
    to_weights(s.max, s.floor, l);
    for (&j, &e) in jj.iter().zip(l.iter()) {
        s.z[j as usize & 7] += e;
        s.nnz += (e != 0.0) as usize;
    }
}

/// Up to [`GROUP`] rows `y` into `o` and their entries into `e`, compiled for this CPU's vector
/// unit (the same bits at every level: [`crate::score::simd`]).
fn group(
    mix: &Mixture<'_>,
    block: usize,
    v: f64,
    y: &[f32],
    o: &mut [f32],
    e: &mut [Entry],
) -> Report {
    crate::score::simd::dispatch!(
        group_inline,
        (mix: &Mixture<'_>, block: usize, v: f64, y: &[f32], o: &mut [f32], e: &mut [Entry])
            -> Report
    )
}

#[inline(always)]
fn group_inline(
    mix: &Mixture<'_>,
    block: usize,
    v: f64,
    y: &[f32],
    o: &mut [f32],
    e: &mut [Entry],
) -> Report {
    let Some((_, m)) = &mix.packed else { unreachable!("a streamed mixture is packed") };
    let (d, k) = (mix.dim, mix.k);
    let n = y.len() / d;
    let mut cx = Ctx { mix, rows: y.chunks_exact(d).collect(), block, v, flops: 0.0 };
    let inv_v = 1.0 / v;
    let mut buf = BUFFERS.with(|b| std::mem::take(&mut *b.borrow_mut()));
    buf.g.resize(n * block, 0.0);
    buf.c.resize(block, 0.0);
    let mut report = Report::default();
    let all: Vec<usize> = (0..n).collect();

    // 1. The largest logit, then the refinement and the cut, as `RowsIn::select`.
    let mut st = vec![
        Row {
            max: f64::NEG_INFINITY,
            refine: false,
            cut: 0.0,
            floor: 0.0,
            z: [0.0; 8],
            nnz: 0,
            inv: 0.0,
            dense: false
        };
        n
    ];
    let mut at = cx.next_block(None);
    while let Some((j0, len)) = at {
        cx.products(j0, len, &all, &mut buf.g, &mut buf.c);
        for (s, g) in st.iter_mut().zip(buf.g.chunks_exact(block)) {
            let x = max_logit(&buf.c[..len], &g[..len], inv_v);
            s.max = if x > s.max { x } else { s.max };
        }
        at = cx.next_block(Some(j0));
    }
    for (s, y) in st.iter_mut().zip(&cx.rows) {
        let prec = Precision::of(mix, y, v);
        s.refine = prec.refine();
        s.cut = prec.cut(s.max);
        s.floor = prec.floor();
        report.refined += s.refine as usize;
    }
    let refined: Vec<usize> = (0..n).filter(|&i| st[i].refine).collect();

    // 2. Rows without refinement: weights and their sum; refined rows: their maximum, and what
    // their entries need (`memo`: the candidates while at most cap(K), their refined logits, and
    // the largest f32 logit below the cut).
    let mut refined_max = vec![f64::NEG_INFINITY; n];
    let cap = memo::cap(k);
    let mut kept: Vec<(Cand, usize, f64)> =
        (0..n).map(|_| (Cand::default(), 0, f64::NEG_INFINITY)).collect();
    let mut at = cx.next_block(None);
    while let Some((j0, len)) = at {
        cx.products(j0, len, &all, &mut buf.g, &mut buf.c);
        for (i, g) in buf.g.chunks_exact(block).enumerate().take(n) {
            let s = &mut st[i];
            let below =
                cx.row_candidates(s, i, j0, (&buf.c[..len], &g[..len]), (&mut buf.jj, &mut buf.l));
            if s.refine {
                let x = max_lanes(&buf.l);
                refined_max[i] = if x > refined_max[i] { x } else { refined_max[i] };
                let (cand, count, out) = &mut kept[i];
                *out = if below > *out { below } else { *out };
                *count += buf.jj.len();
                if *count <= cap {
                    cand.j.extend(buf.jj.iter().map(|&jj| (j0 + jj as usize) as u32));
                    cand.l.extend_from_slice(&buf.l);
                }
            } else {
                weights(s, &buf.jj, &mut buf.l);
            }
        }
        at = cx.next_block(Some(j0));
    }
    for ((e, (cand, count, out)), y) in e.iter_mut().zip(&kept).zip(&cx.rows) {
        *e = Entry::default();
        if *count <= cap {
            let sel = Selected { prec: Precision::of(mix, y, v), max: 0.0, out: *out };
            *e = Entry::of(mix, v, cand, &sel);
        }
    }
    // 3. Refined rows: weights and their sum from the refined maximum.
    for &i in &refined {
        st[i].max = refined_max[i];
    }
    let mut at = if refined.is_empty() { None } else { cx.next_block(None) };
    while let Some((j0, len)) = at {
        cx.products(j0, len, &refined, &mut buf.g, &mut buf.c);
        for (&i, g) in refined.iter().zip(buf.g.chunks_exact(block)) {
            let s = &mut st[i];
            cx.row_candidates(s, i, j0, (&buf.c[..len], &g[..len]), (&mut buf.jj, &mut buf.l));
            weights(s, &buf.jj, &mut buf.l);
        }
        at = cx.next_block(Some(j0));
    }
    for s in st.iter_mut() {
        s.inv = (1.0 / lane_sum(&s.z)) as f32;
        s.dense = s.nnz > k / 16;
        report.dense += s.dense as usize;
    }

    // 4. The score: sparse rows summed in component order into `o`; dense rows' weights by block
    // into `r`, carried through R M.
    o.iter_mut().for_each(|v| *v = 0.0);
    let dense: Vec<usize> = (0..n).filter(|&i| st[i].dense).collect();
    buf.r.clear();
    buf.r.resize(dense.len() * block, 0.0);
    let mut chains = Chains::new(dense.len(), d);
    let mut slot = vec![usize::MAX; n];
    for (q, &i) in dense.iter().enumerate() {
        slot[i] = q;
    }
    let mut at = cx.next_block(None);
    while let Some((j0, len)) = at {
        cx.products(j0, len, &all, &mut buf.g, &mut buf.c);
        for (i, g) in buf.g.chunks_exact(block).enumerate().take(n) {
            let s = st[i];
            cx.row_candidates(&s, i, j0, (&buf.c[..len], &g[..len]), (&mut buf.jj, &mut buf.l));
            to_weights(s.max, s.floor, &mut buf.l);
            if s.dense {
                let r = &mut buf.r[slot[i] * block..(slot[i] + 1) * block];
                for (&jj, &e) in buf.jj.iter().zip(&buf.l) {
                    r[jj as usize] = e as f32 * s.inv;
                }
            } else {
                let oi = &mut o[i * d..(i + 1) * d];
                for (&jj, &e) in buf.jj.iter().zip(&buf.l) {
                    if e != 0.0 {
                        let w = e as f32 * s.inv;
                        let j = j0 + jj as usize;
                        let mu = &mix.means[j * d..(j + 1) * d];
                        oi.iter_mut().zip(mu).for_each(|(v, &m)| *v += w * m);
                    }
                }
            }
        }
        // This block's weights of the dense rows through R M.
        flush(&mut buf.r, dense.len(), block, k, m, j0, &mut chains);
        at = cx.next_block(Some(j0));
    }
    if !dense.is_empty() {
        cx.flops += 2.0 * (dense.len() * k * d) as f64;
    }
    let inv_v32 = inv_v as f32;
    for (i, (oi, yi)) in o.chunks_exact_mut(d).zip(&cx.rows).enumerate() {
        if st[i].dense {
            for ((o, s), &y) in oi.iter_mut().zip(chains.row(slot[i], d)).zip(*yi) {
                *o = (s - y) * inv_v32;
            }
        } else {
            for (o, &y) in oi.iter_mut().zip(*yi) {
                *o = (*o - y) * inv_v32;
            }
        }
    }
    report.flops = cx.flops;
    BUFFERS.with(|b| *b.borrow_mut() = buf);
    report
}

/// The weights `r` of `rows` dense rows for the block of components from `j0` (`block` slots per
/// row) carried into their chains of R M, then cleared for the next block.
fn flush(
    r: &mut [f32],
    rows: usize,
    block: usize,
    k: usize,
    m: &Packed,
    j0: usize,
    chains: &mut Chains,
) {
    if rows == 0 {
        return;
    }
    let len = block.min(k - j0);
    let rd: Vec<&[f32]> = r.chunks_exact(block).map(|row| &row[..len]).collect();
    gemm::accumulate(&rd, m, j0, chains);
    r.fill(0.0);
}
