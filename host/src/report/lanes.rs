//! Squared distances many at a time, with the bits of one at a time.
//!
//! The metrics compare many rows with many points by sums defined one pair at a time, in
//! coordinate order. A scalar loop over such a sum waits on each addition's latency (four cycles
//! per coordinate) and uses one vector lane in eight. Here a group of rows is held
//! coordinate-major, one row per lane, and compared with `G` points at once: each lane adds the
//! same terms in the same order with the same roundings as the scalar loop — so the same bits at
//! every instruction-set level (no fused multiply-add: Rust does not contract `a + t * t`) — and
//! the `G` independent sums keep the adder busy.
//!
//! Two sums are provided: [`d2_f64`], the f64 sum `Σ (x_c − m_c)²` (the metrics' own distances),
//! and [`d2_blocked`], the core's [`anneal_core::score::squared_distance`] for f32 (blocks of 16
//! coordinates summed in f32, the blocks' sums added in f64), which the mode assignment must
//! reproduce. Callers compile them inside [`crate::score::simd::dispatch`].

/// Rows per group for the f64 sums (one 512-bit register).
pub const LANES: usize = 8;
/// Rows per group for the core's f32-blocked sums.
pub const LANES32: usize = 16;
/// Points compared at once.
pub const WAYS: usize = 4;

/// Up to [`LANES`] rows of `group` (`d` coordinates each), coordinate-major in f64; lanes past the
/// last row repeat it.
pub fn transpose64(group: &[f32], d: usize) -> Vec<[f64; LANES]> {
    let n = group.len() / d;
    (0..d).map(|c| std::array::from_fn(|l| group[l.min(n - 1) * d + c] as f64)).collect()
}

/// Up to [`LANES32`] rows, coordinate-major in f32, as [`transpose64`].
pub fn transpose32(group: &[f32], d: usize) -> Vec<[f32; LANES32]> {
    let n = group.len() / d;
    (0..d).map(|c| std::array::from_fn(|l| group[l.min(n - 1) * d + c])).collect()
}

/// For each of the `G` points `ms` and each lane's row x: `Σ_c (x_c − m_c)²`, with `t = x_c − m_c`
/// and `t·t` each rounded in f64 and added in order from 0 — a scalar
/// `zip(..).map(|(x, m)| (x as f64 − m as f64).powi(2)).sum::<f64>()`, bit for bit.
#[inline(always)]
pub fn d2_f64<const G: usize>(xt: &[[f64; LANES]], ms: [&[f32]; G]) -> [[f64; LANES]; G] {
    let mut acc = [[0.0f64; LANES]; G];
    for (c, x) in xt.iter().enumerate() {
        for (a, m) in acc.iter_mut().zip(&ms) {
            let mc = m[c] as f64;
            for (a, &xv) in a.iter_mut().zip(x) {
                let t = xv - mc;
                *a += t * t;
            }
        }
    }
    acc
}

/// For each of the `G` points `ms` and each lane's row x: the core's `squared_distance(x, m)` for
/// f32 — per block of 16 coordinates `b = Σ (x_c − m_c)²` in f32 from 0, the blocks' sums added
/// in f64 from 0 — bit for bit.
#[inline(always)]
pub fn d2_blocked<const G: usize>(xt: &[[f32; LANES32]], ms: [&[f32]; G]) -> [[f64; LANES32]; G] {
    let mut total = [[0.0f64; LANES32]; G];
    for (c0, block) in xt.chunks(16).enumerate() {
        let mut acc = [[0.0f32; LANES32]; G];
        for (cc, x) in block.iter().enumerate() {
            for (a, m) in acc.iter_mut().zip(&ms) {
                let mc = m[c0 * 16 + cc];
                for (a, &xv) in a.iter_mut().zip(x) {
                    let t = xv - mc;
                    *a += t * t;
                }
            }
        }
        for (t, a) in total.iter_mut().zip(&acc) {
            for (t, &a) in t.iter_mut().zip(a) {
                *t += a as f64;
            }
        }
    }
    total
}

/// The next [`WAYS`] points of `points`, or the few left: (the points, how many).
#[inline(always)]
pub fn next_ways<'a>(points: &mut impl Iterator<Item = &'a [f32]>) -> ([&'a [f32]; WAYS], usize) {
    let mut ms: [&[f32]; WAYS] = [&[]; WAYS];
    let mut n = 0;
    while n < WAYS {
        let Some(m) = points.next() else { break };
        ms[n] = m;
        n += 1;
    }
    (ms, n)
}

/// `each_d2!(kernel, xt, points, |j, acc| body)`: the sums `kernel` ([`d2_f64`] or
/// [`d2_blocked`]) of the rows in `xt` against each of `points` (an iterator of slices) in
/// turn, [`WAYS`] at a time, the last few one by one; `body` runs for the j-th point with `acc`
/// its lanes' sums, in order. A macro, not a function taking closures: a closure is compiled
/// apart from its caller, outside the caller's instruction-set dispatch, and the kernel in it
/// ran unvectorised (7.2 against 4.3 s on 1.9 M points).
macro_rules! each_d2 {
    ($kernel:path, $xt:expr, $points:expr, |$j:ident, $acc:ident| $body:expr) => {{
        let mut points = $points;
        let mut base = 0usize;
        loop {
            let (ms, n) = $crate::report::lanes::next_ways(&mut points);
            if n == $crate::report::lanes::WAYS {
                for (w, $acc) in $kernel($xt, ms).iter().enumerate() {
                    let $j = base + w;
                    $body;
                }
                base += n;
            } else {
                for (w, m) in ms[..n].iter().enumerate() {
                    let $acc = &$kernel($xt, [*m])[0];
                    let $j = base + w;
                    $body;
                }
                break;
            }
        }
    }};
}

pub(crate) use each_d2;

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(n: usize, d: usize, seed: usize) -> Vec<f32> {
        (0..n * d).map(|i| (((i + seed) * 7919 % 1013) as f32 / 37.0 - 13.0) * 1.1f32).collect()
    }

    /// Both sums against their scalar definitions, bit for bit, for dimensions around the
    /// blocks' 16 and partial groups, at the instruction-set level of this CPU and as plain
    /// code (the dispatched copy and the inlined one).
    #[test]
    fn lanes_equal_the_scalar_sums() {
        for d in [1, 3, 15, 16, 17, 64, 100] {
            for n in [1, 5, LANES, LANES32] {
                let (xs, ms) = (rows(n, d, d), rows(3, d, 7 * d + 1));
                let m: [&[f32]; 3] = std::array::from_fn(|k| &ms[k * d..(k + 1) * d]);
                let got64 = if n <= LANES { Some(d2_f64(&transpose64(&xs, d), m)) } else { None };
                let got32 = d2_blocked(&transpose32(&xs, d), m);
                let (t32, ms) = (transpose32(&xs, d), m);
                let xt = &t32[..];
                let dispatched = crate::score::simd::dispatch!(
                    d2_blocked::<3>,
                    (xt: &[[f32; LANES32]], ms: [&[f32]; 3]) -> [[f64; LANES32]; 3]
                );
                assert_eq!(got32, dispatched, "d {d} n {n}");
                for (l, x) in xs.chunks_exact(d).enumerate() {
                    for (k, m) in m.iter().enumerate() {
                        let plain: f64 =
                            x.iter().zip(*m).map(|(&a, &b)| (a as f64 - b as f64).powi(2)).sum();
                        if let Some(g) = &got64 {
                            assert_eq!(g[k][l].to_bits(), plain.to_bits(), "f64 d {d} n {n}");
                        }
                        let core = anneal_core::score::squared_distance(x, m);
                        assert_eq!(got32[k][l].to_bits(), core.to_bits(), "blocked d {d} n {n}");
                    }
                }
            }
        }
    }
}
