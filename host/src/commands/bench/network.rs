//! `anneal bench --score MODEL`: a score network's whole runs as `anneal sample --score MODEL`
//! runs them (the default plan: CAS, εc = 2, 100 levels, the final denoising step) at 1 and 2
//! threads, with the share of the network's forward passes in each, and its forward pass alone
//! at batch 256 — beside `host/bench/torch_network.py`: the same model in a PyTorch CPU loop
//! given the same per-step coefficients and σ's, and its forward pass in PyTorch and
//! onnxruntime (the shipped digits network; other models: onnxruntime only).

use std::time::Instant;

use anneal_core::{Plan, Schedule};
use clap::Parser;

use super::{median, time};
use crate::cli::{BenchArgs, Cli};
use crate::config::{RunConfig, RunSpec};

/// The run of `anneal sample --score MODEL --n N --threads T --batch B` (defaults otherwise).
fn sample_config(model: &str, n: usize, threads: usize, batch: usize) -> anyhow::Result<RunConfig> {
    let (n, threads, batch) = (n.to_string(), threads.to_string(), batch.to_string());
    let argv =
        ["anneal", "sample", "--score", model, "--n", &n, "--threads", &threads, "--batch", &batch];
    let crate::cli::Command::Sample(a) = Cli::try_parse_from(argv)?.command else {
        anyhow::bail!("not a sample command")
    };
    let (data, net) = crate::config::load_source(&a.data, &a.score)?;
    Ok(RunConfig::new(&RunSpec::from_sample(&a, &serde_json::Value::Null, net.as_ref()), data)?)
}

/// Runs `anneal bench --score` (on the GPU with `--device cuda`).
pub fn run(a: &BenchArgs, model: &str) -> anyhow::Result<()> {
    if a.device == crate::cli::BenchDevice::Cuda {
        return run_cuda(a, model);
    }
    let n = a.n;
    let repeats = a.repeats.clamp(3, 10);
    println!("anneal bench --score {model}: whole runs of n = {n}, median of {repeats}");
    let mut cases = Vec::new();
    let mut rows = Vec::new();
    // 2 threads run two batches of n/2 in parallel (one batch would keep one thread idle).
    for (threads, batch) in [(1usize, n), (2, n.div_ceil(2))] {
        let p = sample_config(model, n, threads, batch)?;
        let net = p.network.clone().ok_or_else(|| anyhow::anyhow!("no network"))?;
        let pool = crate::exec::pool(threads)?;
        let hidden = indicatif::ProgressBar::hidden();
        let mut shares = Vec::new();
        let runs = super::runs(repeats, || {
            net.reset_timing();
            let t = Instant::now();
            let r = pool.install(|| crate::exec::cpu::sample(&p, &hidden, false));
            let total = t.elapsed().as_secs_f64();
            shares.push(net.forward_share(total, p.busy_threads()));
            if let Err(e) = r {
                eprintln!("run failed: {e}");
            }
        });
        let d = net.dim();
        let x = vec![0.5f32; 256 * d];
        let mut out = vec![0.0f32; 256 * d];
        let sigma = p.schedule.sigma(p.schedule.levels() / 2).unwrap_or(1.0);
        let fwd = time(repeats * 3, || {
            if let Err(e) = net.forward(&x, 256, sigma, &mut out) {
                eprintln!("forward failed: {e}");
            }
        });
        let whole = median(runs);
        let share = median(shares);
        rows.push((threads, batch, whole, share, fwd));
        if threads == 1 {
            cases.push(steps_json(&p)?);
        }
    }
    let torch = reference(a, model, &cases[0], repeats, None);
    let runtime =
        sample_config(model, n, 1, n)?.network.map(|net| net.runtime()).unwrap_or_default();
    println!("runtime: {runtime}");
    println!(
        "{:<8} {:>6} {:>12} {:>12} {:>9} {:>16} {:>16}",
        "threads", "batch", "anneal s", "torch s", "speed-up", "network share", "forward@256 ms"
    );
    for (threads, batch, whole, share, fwd) in &rows {
        let t = torch.as_ref().and_then(|t| t["whole"][threads.to_string()].as_f64());
        println!(
            "{threads:<8} {batch:>6} {whole:>12.3} {:>12} {:>9} {:>15.1}% {:>16.2}",
            t.map_or("-".into(), |v| format!("{v:.3}")),
            t.map_or("-".into(), |v| format!("{:.2}×", v / whole)),
            100.0 * share,
            fwd * 1e3
        );
    }
    if let Some(t) = &torch {
        for (name, key) in [("PyTorch", "torch_forward"), ("onnxruntime", "ort_forward")] {
            for threads in ["1", "2"] {
                if let Some(v) = t[key][threads].as_f64() {
                    println!("{name} forward@256, {threads} thread(s): {:.2} ms", v * 1e3);
                }
            }
        }
        if let Some(v) = t["versions"].as_str() {
            println!("reference: {v}");
        }
    }
    let share = rows.first().map(|r| r.3).unwrap_or(f64::NAN);
    println!(
        "anneal's per-step work besides the network (noise, update, conversions), 1 thread: {:.1}% of the run, {:.1}% of the network's forward time",
        100.0 * (1.0 - share),
        100.0 * (1.0 - share) / share
    );
    Ok(())
}

/// `anneal bench --score MODEL --device cuda`: whole runs of the default plan with the network
/// on the GPU (tract-cuda) and the plan's steps on the same stream, beside the same PyTorch loop
/// on the same GPU (float32, TF32 off). The preparation (tract's CUDA transform and
/// optimisation) is timed apart, once: a run reuses it.
fn run_cuda(a: &BenchArgs, model: &str) -> anyhow::Result<()> {
    use crate::score::network::cuda_engine;
    let n = a.n;
    let repeats = a.repeats.clamp(3, 10);
    let dev = cuda_engine::open_device().map_err(|e| anyhow::anyhow!("--device cuda: {e}"))?;
    println!(
        "anneal bench --score {model} --device cuda on {}: whole runs of n = {n}, median of {repeats}",
        dev.describe()
    );
    let p = sample_config(model, n, 1, n)?;
    let net = p.network.clone().ok_or_else(|| anyhow::anyhow!("no network"))?;
    let t = Instant::now();
    let mut on_device = crate::exec::cuda::prepare_network(&net, n)?;
    let prepare = t.elapsed().as_secs_f64();
    let center = crate::exec::start::Start::new(&p).mean;
    let from = anneal_gpu::Start::Normal { center: &center, sigma: p.schedule.sigma_max() };
    let mut x = vec![0.0f32; n * p.data.dim];
    let mut shares = Vec::new();
    let mut summary = String::new();
    let runs = super::runs(repeats, || {
        net.reset_timing();
        let t = Instant::now();
        let r = dev.run_plan_network(
            &p.plan,
            &mut on_device,
            p.data.dim,
            p.seed,
            0,
            from,
            &mut x,
            &mut |_| {},
        );
        let total = t.elapsed().as_secs_f64();
        shares.push(net.forward_share(total, 1));
        match r {
            Ok(stats) => summary = stats.summary(),
            Err(e) => eprintln!("run failed: {e}"),
        }
    });
    let whole = median(runs);
    let share = median(shares);
    let torch = reference(a, model, &steps_json(&p)?, repeats, Some("cuda"));
    let t = torch.as_ref().and_then(|t| t["whole_cuda"].as_f64());
    println!("runtime: {}; {summary}", cuda_engine::TRACT_CUDA);
    println!("preparation (tract-cuda transform and optimisation, once): {:.3} s", prepare);
    println!(
        "{:<6} {:>12} {:>12} {:>9} {:>16} {:>14}",
        "n", "anneal s", "torch s", "speed-up", "network share", "ms per step"
    );
    println!(
        "{n:<6} {whole:>12.4} {:>12} {:>9} {:>15.1}% {:>14.3}",
        t.map_or("-".into(), |v| format!("{v:.4}")),
        t.map_or("-".into(), |v| format!("{:.2}×", v / whole)),
        100.0 * share,
        whole * 1e3 / p.plan.len().max(1) as f64
    );
    if let Some(v) = torch.as_ref().and_then(|t| t["torch_forward_cuda"].as_f64()) {
        println!("PyTorch forward@256 on the GPU: {:.3} ms", v * 1e3);
    }
    if let Some(v) = torch.as_ref().and_then(|t| t["versions"].as_str()) {
        println!("reference: {v}");
    }
    Ok(())
}

/// The plan's steps for the PyTorch loop, and the run's sizes.
fn steps_json(p: &RunConfig) -> anyhow::Result<serde_json::Value> {
    Ok(serde_json::json!({
        "n": p.n,
        "batch": p.batch,
        "dim": p.data.dim,
        "sigma1": p.schedule.sigma(0).unwrap_or(1.0),
        "steps": super::linear_steps(&p.plan)?,
    }))
}

/// Runs `host/bench/torch_network.py MODEL CASE.json REPEATS`; its JSON, or None (said).
fn reference(
    a: &BenchArgs,
    model: &str,
    case: &serde_json::Value,
    repeats: usize,
    device: Option<&str>,
) -> Option<serde_json::Value> {
    if a.no_numpy {
        return None;
    }
    let dir = std::env::temp_dir().join(format!("anneal-bench-net-{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok()?;
    let file = dir.join("case.json");
    std::fs::write(&file, serde_json::to_vec(case).ok()?).ok()?;
    let model_path = match crate::score::network::built_in(std::path::Path::new(model)) {
        Some(_) => concat!(env!("CARGO_MANIFEST_DIR"), "/data/digits-score.onnx").to_string(),
        None => model.to_string(),
    };
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/bench/torch_network.py");
    let file = file.to_string_lossy();
    let repeats = repeats.to_string();
    let mut args = vec![model_path.as_str(), &file, &repeats];
    args.extend(device);
    let out = super::python_json(&a.python, script, &args, "PyTorch");
    let _ = std::fs::remove_dir_all(&dir);
    out
}
