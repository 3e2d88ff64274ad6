//! `anneal bench`: one sampler step (GEMM score + noise + CAS update) at fixed sizes, beside this
//! machine's SGEMM rate and the NumPy reference in `host/bench/numpy_step.py`.

use std::process::Command;
use std::time::Instant;

use anneal_core::noise::{Keyed, Noise, Stream};
use anneal_core::plan::{self, Batch};
use anneal_core::samplers::cas::Cas;
use anneal_core::{EtaRule, Geometric};
use rayon::prelude::*;

use crate::batch_score::{GemmMixture, Mixture};
use crate::cli::BenchArgs;
use crate::par_noise::ParKeyed;

/// A benchmark size.
struct Case {
    name: &'static str,
    b: usize,
    k: usize,
    d: usize,
}

impl Case {
    /// K standard normal means (keyed, the same on every run).
    fn means(&self) -> Vec<f32> {
        let mut means = vec![0.0f32; self.k * self.d];
        for (j, row) in means.chunks_exact_mut(self.d).enumerate() {
            Keyed::new(1).normals(j as u64, Stream::Init, row);
        }
        means
    }
}

/// Steps of the shorter of the two timed runs (the longer has three times as many).
const STEPS: usize = 10;

const CASES: [Case; 3] = [
    Case { name: "digits-like B=256 K=1797 D=64", b: 256, k: 1797, d: 64 },
    Case { name: "large B=64 K=1000 D=3072", b: 64, k: 1000, d: 3072 },
    Case { name: "toy2d B=1280 K=2 D=2", b: 1280, k: 2, d: 2 },
];

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Seconds of each of `repeats` runs of `f`, after one warm-up run.
fn runs<F: FnMut()>(repeats: usize, mut f: F) -> Vec<f64> {
    f();
    (0..repeats)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .collect()
}

/// The median of [`runs`].
fn time<F: FnMut()>(repeats: usize, f: F) -> f64 {
    median(runs(repeats, f))
}

/// SGEMM GFLOP/s on n×n×n on all threads, best of `repeats`: matrixmultiply (disjoint row
/// blocks per thread) and anneal's own kernel over a packed operand (`crate::gemm`).
fn sgemm_rates(n: usize, threads: usize, repeats: usize) -> (f64, f64) {
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
    let packed = crate::gemm::Packed::plain(&a, n, n);
    let t_own = best(&mut || crate::gemm::gemm(n, &a, &packed, &mut c, n));
    let flops = 2.0 * (n * n * n) as f64;
    (flops / t_mm / 1e9, flops / t_own / 1e9)
}

/// The GPU cases of issue 7.
const GPU_CASES: [Case; 3] = [
    Case { name: "large B=1024 K=10000 D=3072", b: 1024, k: 10000, d: 3072 },
    Case { name: "digits-like B=256 K=1797 D=64", b: 256, k: 1797, d: 64 },
    Case { name: "toy2d B=65536 K=2 D=2", b: 65536, k: 2, d: 2 },
];

/// Runs an external reference script with the cases as JSON; its stdout as JSON, or None (said).
fn reference(
    python: &str,
    script: &str,
    cases: &[&Case],
    repeats: usize,
    what: &str,
) -> Option<serde_json::Value> {
    let list: Vec<serde_json::Value> = cases
        .iter()
        .map(|c| serde_json::json!({"name": c.name, "B": c.b, "K": c.k, "D": c.d}))
        .collect();
    let arg = serde_json::to_string(&list).ok()?;
    match Command::new(python).arg(script).arg(arg).arg(repeats.to_string()).output() {
        Ok(o) if o.status.success() => serde_json::from_slice(&o.stdout).ok(),
        Ok(o) => {
            eprintln!(
                "{what} reference failed: {}",
                String::from_utf8_lossy(&o.stderr).lines().last().unwrap_or("")
            );
            None
        }
        Err(e) => {
            eprintln!("{what} reference not run ({python}: {e})");
            None
        }
    }
}

/// `anneal bench --device cuda`: per case, seconds per CAS step on the device (steps timed by
/// difference, see `Device::time_step`), the two SGEMMs alone, and the PyTorch FP32 step.
fn run_cuda(a: &BenchArgs) -> anyhow::Result<()> {
    let dev = anneal_gpu::Device::open(0)
        .map_err(|e| crate::UsageError(format!("--device cuda: {e}")))?;
    let repeats = a.repeats.max(3);
    println!("anneal bench on {}: median of {repeats} runs per figure", dev.describe());
    let torch = if a.no_torch {
        None
    } else {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../gpu/bench/torch_step.py");
        reference(&a.python, script, &GPU_CASES.iter().collect::<Vec<_>>(), repeats, "PyTorch")
    };
    if let Some(t) = &torch {
        println!(
            "PyTorch {} on {}",
            t["torch"].as_str().unwrap_or("?"),
            t["device"].as_str().unwrap_or("?")
        );
    }
    println!(
        "{:<30} {:>10} {:>10} {:>12} {:>10} {:>12}",
        "case", "anneal ms", "torch ms", "vs torch", "2 SGEMM ms", "of 2 SGEMM"
    );
    for c in &GPU_CASES {
        let means = c.means();
        let weights = vec![1.0 / c.k as f64; c.k];
        let mix = anneal_gpu::Mixture { means: &means, dim: c.d, weights: &weights, tau: 0.1 };
        let steps = if c.b * c.k * c.d > 1 << 30 { 10 } else { 100 };
        let t = dev.time_step(&mix, c.b, steps, repeats)?;
        let g =
            if mix.direct() { None } else { Some(dev.time_sgemm_pair(c.b, c.k, c.d, repeats)?) };
        let tt = torch.as_ref().and_then(|v| v["cases"][c.name].as_f64());
        println!(
            "{:<30} {:>10.4} {:>10} {:>12} {:>10} {:>12}",
            c.name,
            t * 1e3,
            tt.map_or("-".into(), |v| format!("{:.4}", v * 1e3)),
            tt.map_or("-".into(), |v| format!("{:.2}x", v / t)),
            g.map_or("-".into(), |v| format!("{:.4}", v * 1e3)),
            g.map_or("-".into(), |v| format!("{:.2}", t / v)),
        );
    }
    Ok(())
}

/// Runs `anneal bench`.
pub fn run(a: &BenchArgs) -> anyhow::Result<()> {
    if a.device == crate::cli::BenchDevice::Cuda {
        return run_cuda(a);
    }
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
        let plans = [
            Cas::new(&short, EtaRule::eps_c(2.0)?, false)?,
            Cas::new(&long, EtaRule::eps_c(2.0)?, false)?,
        ];
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
        let mix = Mixture::new(&means, c.d, &weights, 0.1);
        let mut scores: Vec<GemmMixture> =
            (0..scratch.len()).map(|_| GemmMixture::new(&mix)).collect();
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
            let mut score = GemmMixture::new(&mix);
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
