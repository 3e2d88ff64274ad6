//! `anneal bench` on the CPU: whole runs first ([`super::whole`]), then one CAS step at fixed sizes as `sample` runs it (batches in
//! parallel, the step timed by difference of a 3S- and an S-step run) beside NumPy.

use anneal_core::noise::{Keyed, Noise, Stream};
use anneal_core::plan::{self, Batch};
use anneal_core::samplers::cas::Cas;
use anneal_core::{EtaRule, Geometric};
use rayon::prelude::*;

use super::{Case, reference, runs, time};
use crate::cli::BenchArgs;
use crate::score::batch_score::{GemmMixture, Mixture};
use crate::score::par_noise::ParKeyed;

/// Steps of the shorter of the two timed runs (the longer has three times as many).
pub const STEPS: usize = 10;

pub const CASES: [Case; 3] = [
    Case { name: "digits-like B=256 K=1797 D=64", b: 256, k: 1797, d: 64 },
    Case { name: "large B=64 K=1000 D=3072", b: 64, k: 1000, d: 3072 },
    Case { name: "toy2d B=1280 K=2 D=2", b: 1280, k: 2, d: 2 },
];

/// SGEMM GFLOP/s on n×n×n on all threads, best of `repeats`: matrixmultiply (disjoint row
/// blocks per thread) and anneal's own kernel over a packed operand (`crate::score::gemm`).
pub(super) fn sgemm_rates(n: usize, threads: usize, repeats: usize) -> (f64, f64) {
    let a: Vec<f32> = (0..n * n).map(|i| ((i * 7919) % 1000) as f32 / 1000.0).collect();
    let mut c = vec![0.0f32; n * n];
    let rows = n.div_ceil(threads);
    let best = |f: &mut dyn FnMut()| runs(repeats, f).into_iter().fold(f64::INFINITY, f64::min);
    let t_mm = best(&mut || {
        a.par_chunks(rows * n).zip(c.par_chunks_mut(rows * n)).for_each(|(ab, cb)| {
            let m = ab.len() / n;
            // SAFETY: ab is m×n, a is n×n, cb is m×n, row-major.
            unsafe {
                matrixmultiply::sgemm(
                    m,
                    n,
                    n,
                    1.0,
                    ab.as_ptr(),
                    n as isize,
                    1,
                    a.as_ptr(),
                    n as isize,
                    1,
                    0.0,
                    cb.as_mut_ptr(),
                    n as isize,
                    1,
                );
            }
        })
    });
    let packed = crate::score::gemm::Packed::plain(&a, n, n);
    let t_own = best(&mut || crate::score::gemm::gemm(n, &a, &packed, &mut c, n));
    let flops = 2.0 * (n * n * n) as f64;
    (flops / t_mm / 1e9, flops / t_own / 1e9)
}

/// `anneal bench` (CPU).
pub fn run(a: &BenchArgs) -> anyhow::Result<()> {
    super::whole::run(a)?;
    if a.whole_only {
        return Ok(());
    }
    println!(
        "\none CAS step at σ = 0.5 over random means, every row's products taken (one point of a \
         run, not a run; runs score rows from their last candidates where a bound allows):"
    );
    let threads = rayon::current_num_threads();
    let repeats = a.repeats.max(3);
    println!("anneal bench: {threads} threads, median of {repeats} runs per figure");
    let (mm, own) = sgemm_rates(1024, threads, repeats.clamp(5, 20));
    let peak = mm.max(own);
    println!(
        "SGEMM 1024³ on {threads} threads, best run: matrixmultiply {mm:.1} GFLOP/s, anneal's packed kernel {own:.1} GFLOP/s (the larger is the peak below)"
    );
    let cases: Vec<&Case> = CASES
        .iter()
        .filter(|c| a.case.as_ref().is_none_or(|o| c.name.contains(o.as_str())))
        .collect();
    let numpy = if a.no_numpy {
        None
    } else {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/bench/numpy_step.py");
        reference(&a.python, script, &cases, repeats, "NumPy")
    };
    if let Some(np) = &numpy {
        println!(
            "NumPy {} SGEMM 1024³: {:.1} GFLOP/s",
            np["numpy"].as_str().unwrap_or("?"),
            np["sgemm_gflops"].as_f64().unwrap_or(f64::NAN)
        );
    }
    println!(
        "{:<32} {:>10} {:>10} {:>9} {:>15} {:>12}",
        "case", "anneal ms", "numpy ms", "speed-up", "GFLOP/s nominal", "GFLOP/s done"
    );
    for c in cases {
        let means = c.means();
        let weights = vec![1.0 / c.k as f64; c.k];
        // S and 3S CAS steps from σ = 0.5 down to 0.45 (the same regime throughout).
        let (short, long) =
            (Geometric::new(0.5, 0.45, STEPS + 1)?, Geometric::new(0.5, 0.45, 3 * STEPS + 1)?);
        let plans =
            [Cas::new(&short, EtaRule::eps_c(2.0)?)?, Cas::new(&long, EtaRule::eps_c(2.0)?)?];
        // As `anneal sample` runs it: batches of at most --batch samples, in parallel; when there
        // are several, their count is rounded up to a multiple of the threads (balance).
        let mut nb = c.b.div_ceil(a.batch.max(1));
        if nb > 1 {
            nb = nb.div_ceil(threads) * threads;
        }
        let per = c.b.div_ceil(nb);
        let mut x = vec![0.0f32; c.b * c.d];
        plan::init_normal(&mut Keyed::new(2), 0, c.d, 1.0, &mut x)?;
        let mut scratch: Vec<[Vec<f32>; 4]> = (0..c.b.div_ceil(per))
            .map(|_| std::array::from_fn(|_| vec![0.0f32; per * c.d]))
            .collect();
        // The score's set-up (‖μ_k‖², ln w) is done once per batch per run, as in `sample`.
        let mix = Mixture::new(anneal_core::score::MixtureData {
            means: &means,
            dim: c.d,
            weights: &weights,
            tau: 0.1,
        });
        let mut scores: Vec<GemmMixture> =
            (0..scratch.len()).map(|_| GemmMixture::new(&mix).without_memo()).collect();
        let mut run = |cas: &Cas<&Geometric>| {
            x.par_chunks_mut(per * c.d)
                .zip(scratch.par_iter_mut().zip(scores.par_iter_mut()))
                .enumerate()
                .for_each(|(i, (xs, (sc, score)))| {
                    let len = xs.len();
                    let [aux, s, xi, pt] = sc;
                    let batch = Batch {
                        dim: c.d,
                        first_sample: (i * per) as u64,
                        x: xs,
                        aux: &mut aux[..len],
                        score: &mut s[..len],
                        noise: &mut xi[..len],
                        point: &mut pt[..len],
                    };
                    plan::run(cas, score, &mut ParKeyed(Keyed::new(2)), batch, None, &mut ())
                        .expect("a finite benchmark step");
                })
        };
        // Per step by difference, so that what a run pays once (starting the threads) cancels.
        let t_short = time(repeats, || run(&plans[0]));
        let t_long = time(repeats, || run(&plans[1]));
        let t = (t_long - t_short) / (2 * STEPS) as f64;
        if a.breakdown {
            let xs = &x[..per * c.d];
            let mut out = vec![0.0f32; per * c.d];
            let mut score = GemmMixture::new(&mix).without_memo();
            let ts = time(repeats, || {
                anneal_core::BatchScore::score_batch(&mut score, xs, 0.5, &mut out).expect("score");
            });
            let mut z = vec![0.0f32; per * c.d];
            let tn = time(repeats, || {
                ParKeyed(Keyed::new(3)).normals_rows(0, Stream::Step(0), c.d, &mut z);
            });
            eprintln!(
                "  {}: one batch of {per}: score {:.4} ms, noise {:.4} ms",
                c.name,
                ts * 1e3,
                tn * 1e3
            );
        }
        // Nominal: the step's two full products, 4·B·K·D; done: what the last step computed
        // (G, plus S = R M over the dense rows and the non-zero responsibilities of the others).
        let nominal = 4.0 * (c.b * c.k * c.d) as f64 / t / 1e9;
        let done = scores.iter().map(|s| s.flops).sum::<f64>() / t / 1e9;
        let rate = |g: f64| {
            if !mix.uses_gemm() {
                "-".to_string()
            } else {
                format!("{g:.0} ({:.0}%)", 100.0 * g / peak)
            }
        };
        let np_t = numpy.as_ref().and_then(|v| v["cases"][c.name].as_f64());
        println!(
            "{:<32} {:>10.4} {:>10} {:>9} {:>15} {:>12}",
            c.name,
            t * 1e3,
            np_t.map_or("-".into(), |v| format!("{:.4}", v * 1e3)),
            np_t.map_or("-".into(), |v| format!("{:.2}x", v / t)),
            rate(nominal),
            rate(done),
        );
    }
    Ok(())
}
