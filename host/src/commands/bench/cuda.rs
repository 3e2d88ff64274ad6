//! `anneal bench --device cuda`: one CAS step at three sizes, then whole runs over every σ,
//! each beside the PyTorch FP32 references.

use std::time::Instant;

use anneal_core::samplers::cas::Cas;
use anneal_core::{EtaRule, Geometric, Plan};

use super::{Case, reference};
use crate::cli::BenchArgs;

/// The GPU cases of issue 7.
pub const GPU_CASES: [Case; 3] = [
    Case { name: "large B=1024 K=10000 D=3072", b: 1024, k: 10000, d: 3072 },
    Case { name: "digits-like B=256 K=1797 D=64", b: 256, k: 1797, d: 64 },
    Case { name: "toy2d B=65536 K=2 D=2", b: 65536, k: 2, d: 2 },
];

/// `anneal bench --device cuda`: per case, seconds per CAS step on the device (steps timed by
/// difference, see `Device::time_step`), the two SGEMMs alone, and the PyTorch FP32 step.
pub fn run(a: &BenchArgs) -> anyhow::Result<()> {
    let mut dev = anneal_gpu::Device::open(0)
        .map_err(|e| crate::error::UsageError::flag(format!("--device cuda: {e}")))?;
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
            if mix.is_small() { None } else { Some(dev.time_sgemm_pair(c.b, c.k, c.d, repeats)?) };
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
    run_cuda_whole(a, &mut dev)
}

/// A whole run of the GPU benchmark: a mixture, a plan over every σ, n samples.
struct WholeCase {
    name: &'static str,
    means: Vec<f32>,
    dim: usize,
    weights: Vec<f64>,
    tau: f64,
    n: usize,
    sigma1: f64,
    plan: Box<dyn Plan>,
    /// Fewer repeats and variants (long or large runs).
    heavy: bool,
}

impl WholeCase {
    /// A dataset with `sample`'s defaults: σ_1 by Technique 1, σ_N = 0.01, 100 levels, CAS
    /// εc = 2 with the final denoising step.
    fn with_defaults(name: &'static str, data: &str, n: usize, als: bool) -> anyhow::Result<Self> {
        let ds = crate::io::data::load(data).map_err(|e| anyhow::anyhow!(e))?;
        let sigma1 = anneal_core::ncsnv2::max_pairwise_distance(&ds.means, ds.dim)?;
        let g = Geometric::new(sigma1, 0.01, crate::config::DEFAULT_LEVELS)?;
        let plan: Box<dyn Plan> = if als {
            // `sample --sampler als`: T = 100, Technique 4's ε, the final denoising step.
            let t = anneal_core::samplers::any::SamplerParams::DEFAULT.steps_per_level;
            let eps = anneal_core::ncsnv2::technique4_eps(0.01, g.common_ratio().growth(), t)?.eps;
            let step = anneal_core::LangevinStep::new(eps, anneal_core::StepConvention::Ncsnv2)?;
            Box::new(
                anneal_core::samplers::als::Als::new(g, step, t, ds.default_tau)
                    .and_then(anneal_core::Plan::denoised)?,
            )
        } else {
            Box::new(
                Cas::new(g, EtaRule::eps_c(crate::config::DEFAULT_EPS_C)?)
                    .and_then(anneal_core::Plan::denoised)?,
            )
        };
        Ok(WholeCase {
            heavy: als,
            name,
            dim: ds.dim,
            means: ds.means,
            weights: ds.weights,
            tau: ds.default_tau,
            n,
            sigma1,
            plan,
        })
    }

    /// The data mean (the centre of `sample`'s default start N(mean, σ_1² I)).
    fn center(&self) -> Vec<f64> {
        let mut c = vec![0.0f64; self.dim];
        for (row, w) in self.means.chunks_exact(self.dim).zip(&self.weights) {
            c.iter_mut().zip(row).for_each(|(c, &m)| *c += w * m as f64);
        }
        c
    }
}

/// The whole runs of issue 18: (a) digits as `sample --data digits --n 1000` runs it, (b) a
/// CIFAR-size closed form (K = 50 000 standard normal points in D = 3072, τ = 0, n = 1024, CAS
/// over 100 levels), (c) toy2d with n = 10⁶; and (d) digits with `--sampler als` (10⁴ steps:
/// where CUDA graphs can pay). For (b), σ_1 = 2 max‖μ_k − mean‖, an upper bound of Technique 1's
/// largest pairwise distance (which costs K²D).
fn whole_cases() -> anyhow::Result<Vec<WholeCase>> {
    let digits = WholeCase::with_defaults("(a) digits n=1000", "digits", 1000, false)?;
    let big = Case { name: "", b: 1024, k: 50_000, d: 3072 };
    let means = big.means();
    let mut wc = WholeCase {
        name: "(b) K=50000 D=3072 n=1024",
        means,
        dim: big.d,
        weights: vec![1.0 / big.k as f64; big.k],
        tau: 0.0,
        n: big.b,
        sigma1: 1.0,
        plan: Box::new(
            Cas::new(Geometric::new(2.0, 0.01, 100)?, EtaRule::eps_c(2.0)?)
                .and_then(anneal_core::Plan::denoised)?,
        ),
        heavy: true,
    };
    let c = wc.center();
    let r = wc
        .means
        .chunks_exact(wc.dim)
        .map(|row| row.iter().zip(&c).map(|(&m, &c)| (m as f64 - c).powi(2)).sum::<f64>())
        .fold(0.0, f64::max)
        .sqrt();
    wc.sigma1 = 2.0 * r;
    wc.plan = Box::new(
        Cas::new(Geometric::new(wc.sigma1, 0.01, 100)?, EtaRule::eps_c(2.0)?)
            .and_then(anneal_core::Plan::denoised)?,
    );
    let toy = WholeCase::with_defaults("(c) toy2d n=1000000", "toy2d", 1_000_000, false)?;
    let als = WholeCase::with_defaults("(d) digits ALS n=1000", "digits", 1000, true)?;
    Ok(vec![digits, wc, toy, als])
}

/// Writes the cases for `gpu/bench/torch_run.py` (means as .npy files beside) into `dir`.
fn torch_cases(cases: &[WholeCase], dir: &std::path::Path) -> anyhow::Result<std::path::PathBuf> {
    std::fs::create_dir_all(dir)?;
    let mut list = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        let path = dir.join(format!("means{i}.npy"));
        let k = c.means.len() / c.dim;
        std::fs::write(&path, crate::io::npy::write_f32(&c.means, k, c.dim))?;
        let steps =
            super::linear_steps(&*c.plan).map_err(|e| anyhow::anyhow!("{}: {e}", c.name))?;
        list.push(serde_json::json!({
            "name": c.name,
            "means": path,
            "ln_w": c.weights.iter().map(|w| w.ln()).collect::<Vec<_>>(),
            "tau": c.tau,
            "n": c.n,
            "sigma1": c.sigma1,
            "center": c.center(),
            "steps": steps,
        }));
    }
    let file = dir.join("cases.json");
    std::fs::write(&file, serde_json::to_vec(&list)?)?;
    Ok(file)
}

/// Whole runs on the device beside the PyTorch loop: seconds per run (median; uploads of the
/// means and the start, every step, the copy back), per step, and against PyTorch's two SGEMMs
/// per step.
fn run_cuda_whole(a: &BenchArgs, dev: &mut anneal_gpu::Device) -> anyhow::Result<()> {
    let cases = whole_cases()?;
    let torch = if a.no_torch {
        None
    } else {
        let dir = std::env::temp_dir().join(format!("anneal-bench-{}", std::process::id()));
        let file = torch_cases(&cases, &dir)?;
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../gpu/bench/torch_run.py");
        let repeats = a.repeats.clamp(3, 5).to_string();
        let file_arg = file.to_string_lossy();
        let out =
            super::python_json(&a.python, script, &[&file_arg, &repeats], "PyTorch whole-run");
        let _ = std::fs::remove_dir_all(&dir);
        out
    };
    println!(
        "\nwhole runs (every σ of the default schedule, 100 levels + the denoising step; start drawn on the device; median of runs)"
    );
    println!(
        "{:<24} {:>6} {:>9} {:>20} {:>9} {:>9} {:>11} {:>7}  path",
        "case",
        "steps",
        "anneal s",
        "(setup/steps/copy)",
        "torch s",
        "vs torch",
        "torch 2xGEMM",
        "of 2xGEMM",
    );
    let defaults = dev.options();
    for c in &cases {
        let center: Vec<f32> = c.center().iter().map(|&v| v as f32).collect();
        let from = anneal_gpu::Start::Normal { center: &center, sigma: c.sigma1 };
        let mix =
            anneal_gpu::Mixture { means: &c.means, dim: c.dim, weights: &c.weights, tau: c.tau };
        let big = (c.n * c.means.len()) as f64 > anneal_gpu::SMALL_WORK;
        let repeats = if c.heavy { a.repeats.clamp(3, 3) } else { a.repeats.clamp(3, 20) };
        let mut opts = vec![defaults];
        if a.variants && !mix.is_small() {
            for o in anneal_gpu::Options::combinations() {
                // Graphs matter only for small steps, sparse products only for large ones.
                let skip = (big && o.graphs == anneal_gpu::Use::Always)
                    || (c.heavy && !big && o.sparse == anneal_gpu::Use::Always);
                if !skip {
                    opts.push(o);
                }
            }
        }
        for (vi, o) in opts.into_iter().enumerate() {
            dev.set_options(o);
            // The other variants of a heavy case: one run each (the device is warm by then).
            let (repeats, warm) = if vi > 0 && c.heavy { (1, false) } else { (repeats, true) };
            let mut x = vec![0.0f32; c.n * c.dim];
            let mut run = || -> anyhow::Result<(f64, anneal_gpu::RunStats)> {
                let t = Instant::now();
                let st = dev.run_plan_from(&*c.plan, &mix, 0, 0, from, &mut x, &mut |_| {})?;
                let secs = t.elapsed().as_secs_f64();
                anyhow::ensure!(x.iter().all(|v| v.is_finite()), "{}: non-finite samples", c.name);
                Ok((secs, st))
            };
            if warm {
                run()?;
            }
            let mut runs = Vec::new();
            for _ in 0..repeats {
                runs.push(run()?);
            }
            runs.sort_by(|p, q| p.0.total_cmp(&q.0));
            let (t, st) = runs.swap_remove(runs.len() / 2);
            let tt = torch.as_ref().and_then(|v| v["runs"][c.name].as_f64());
            let tg = torch.as_ref().and_then(|v| v["sgemm_pairs"][c.name].as_f64());
            let forced = if vi == 0 {
                "defaults".to_string()
            } else {
                format!("graphs {:?}, f64 logits {}, sparse {:?}", o.graphs, o.f64_logits, o.sparse)
            };
            println!(
                "{:<24} {:>6} {:>9.4} {:>20} {:>9} {:>9} {:>11} {:>7}  {forced}: {}",
                c.name,
                c.plan.len(),
                t,
                format!(
                    "{:.3}/{:.3}/{:.3}",
                    st.seconds_setup, st.seconds_steps, st.seconds_copy_back
                ),
                tt.map_or("-".into(), |v| format!("{v:.4}")),
                tt.map_or("-".into(), |v| format!("{:.2}x", v / t)),
                tg.map_or("-".into(), |v| format!("{v:.4}")),
                tg.map_or("-".into(), |v| format!("{:.2}", t / v)),
                st.summary()
            );
        }
    }
    dev.set_options(defaults);
    Ok(())
}
