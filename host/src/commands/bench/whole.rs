//! `anneal bench` on the CPU, first table: whole runs as `anneal sample` runs them — its
//! defaults, every σ of the schedule, batches in parallel — beside the plain NumPy loop of the
//! same run (`host/bench/numpy_run.py`), at 1 thread and at every thread, with the SGEMM rate
//! measured in the same process, the run's nominal and done products, and the time per σ band.

use std::time::Instant;

use anneal_core::{Plan, Schedule};
use clap::Parser;

use super::Case;
use crate::cli::{BenchArgs, Cli, Command};
use crate::exec::cpu::StepTimes;

/// The σ bands' lower edges (issue 16's table): σ ≥ 2, 2–0.8, 0.8–0.3, 0.3–0.1, 0.1–0.03, < 0.03.
const EDGES: [f64; 5] = [2.0, 0.8, 0.3, 0.1, 0.03];
/// The bands' names.
const BANDS: [&str; 6] = ["σ≥2", "2–0.8", "0.8–0.3", "0.3–0.1", "0.1–0.03", "<0.03"];

/// The band of a step at σ.
fn band(sigma: f64) -> usize {
    EDGES.iter().position(|&e| sigma >= e).unwrap_or(EDGES.len())
}

/// A whole-run case: `anneal sample`'s flags.
struct Whole {
    name: &'static str,
    flags: Vec<String>,
}

/// (a) digits as `anneal sample --data digits --n 1000` runs it; (b) K = 10 000 standard normal
/// points in D = 784 (a .npy written to `dir`), n = 256, sample's defaults (Technique 1's σ_1,
/// 100 levels to 0.01, CAS εc = 2 and the denoising step).
fn cases(dir: &std::path::Path) -> anyhow::Result<Vec<Whole>> {
    let big = Case { name: "", b: 256, k: 10_000, d: 784 };
    let path = dir.join("k10000-d784.npy");
    std::fs::write(&path, crate::io::npy::write_f32(&big.means(), big.k, big.d))?;
    let flags = |data: &str, n: usize| -> Vec<String> {
        ["sample", "--data", data, "--n", &n.to_string(), "--out", "unused"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    };
    Ok(vec![
        Whole { name: "(a) digits n=1000", flags: flags("digits", 1000) },
        Whole { name: "(b) K=10000 D=784 n=256", flags: flags(&path.to_string_lossy(), 256) },
    ])
}

/// One case's runs at one thread count.
struct Timed {
    /// Wall seconds of each run (sorted).
    walls: Vec<f64>,
    /// Thread-seconds per σ band, summed over runs.
    bands: [f64; 6],
    /// The score's products per run.
    flops: f64,
    /// The batches a run was split into.
    batches: usize,
}

/// `runs` whole runs of `p` (after one warm-up) on the current pool.
fn time_runs(p: &crate::config::RunConfig, runs: usize) -> anyhow::Result<Timed> {
    let hidden = indicatif::ProgressBar::hidden();
    let steps = p.plan.len();
    let band_of: Vec<usize> =
        (0..steps).map(|j| p.plan.step(j).map_or(EDGES.len(), |s| band(s.sigma))).collect();
    let mut out = Timed { walls: Vec::new(), bands: [0.0; 6], flops: 0.0, batches: 1 };
    for r in 0..=runs {
        let times = StepTimes::new(steps);
        let t = Instant::now();
        crate::exec::cpu::sample_timed(p, &hidden, false, Some(&times))?;
        let wall = t.elapsed().as_secs_f64();
        if r == 0 {
            continue;
        }
        out.walls.push(wall);
        for (ns, &b) in times.ns.iter().zip(&band_of) {
            out.bands[b] += ns.load(std::sync::atomic::Ordering::Relaxed) as f64 * 1e-9;
        }
        out.flops = times.flops.load(std::sync::atomic::Ordering::Relaxed) as f64;
        out.batches = times.batches.load(std::sync::atomic::Ordering::Relaxed) as usize;
    }
    out.walls.sort_by(f64::total_cmp);
    Ok(out)
}

/// The NumPy loop of every case at `threads` BLAS threads, or None (said).
fn numpy_runs(
    a: &BenchArgs,
    configs: &[(Whole, crate::config::RunConfig)],
    dir: &std::path::Path,
    threads: usize,
    runs: usize,
) -> Option<serde_json::Value> {
    let mut list = Vec::new();
    for (i, (c, p)) in configs.iter().enumerate() {
        let path = dir.join(format!("means{i}.npy"));
        let k = p.data.components();
        std::fs::write(&path, crate::io::npy::write_f32(&p.data.means, k, p.data.dim)).ok()?;
        let steps = match super::linear_steps(&p.plan) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("NumPy whole runs not run: {}: {e}", c.name);
                return None;
            }
        };
        list.push(serde_json::json!({
            "name": c.name,
            "means": path,
            "ln_w": p.data.weights.iter().map(|w| w.ln()).collect::<Vec<_>>(),
            "tau": p.tau,
            "n": p.n,
            "sigma1": p.schedule.sigma_max(),
            "steps": steps,
        }));
    }
    let file = dir.join("cases.json");
    std::fs::write(&file, serde_json::to_vec(&list).ok()?).ok()?;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/bench/numpy_run.py");
    let (t, runs) = (threads.to_string(), runs.to_string());
    let env = [("OPENBLAS_NUM_THREADS", &*t), ("OMP_NUM_THREADS", &*t), ("MKL_NUM_THREADS", &*t)];
    let file_arg = file.to_string_lossy();
    super::python_json_env(&a.python, script, &[&file_arg, &runs], &env, "NumPy whole-run")
}

/// The CPU's model name and vector extensions (from /proc/cpuinfo; "unknown" elsewhere).
fn cpu_model() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |key: &str| {
        info.lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
    };
    let flags = field("flags").unwrap_or_default();
    let simd: Vec<&str> = ["avx2", "fma", "avx512f", "avx512_bf16", "amx_tile", "asimd", "sve"]
        .into_iter()
        .filter(|f| flags.split_whitespace().any(|x| x == *f))
        .collect();
    format!(
        "{}, {} logical CPUs, flags {}",
        field("model name").unwrap_or_else(|| "unknown".into()),
        info.lines().filter(|l| l.starts_with("processor")).count(),
        if simd.is_empty() { "-".to_string() } else { simd.join(" ") }
    )
}

/// The whole-run table.
pub fn run(a: &BenchArgs) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("anneal-bench-whole-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = run_in(a, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn run_in(a: &BenchArgs, dir: &std::path::Path) -> anyhow::Result<()> {
    let runs = a.runs.max(1);
    let all = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut threads =
        if a.thread_counts.is_empty() { vec![1, all] } else { a.thread_counts.clone() };
    threads.dedup();
    if let Some(&t) = threads.iter().find(|&&t| t == 0 || t > crate::exec::MAX_THREADS) {
        return Err(crate::error::UsageError::flag(format!(
            "--thread-counts has {t}, out of range: each count must be 1 to {} ({all} cores here)",
            crate::exec::MAX_THREADS
        ))
        .into());
    }
    let mut configs = Vec::new();
    for c in cases(dir)? {
        if a.case.as_ref().is_some_and(|o| !c.name.contains(o.as_str())) {
            continue;
        }
        let cli =
            Cli::try_parse_from(std::iter::once("anneal".to_string()).chain(c.flags.clone()))?;
        let Command::Sample(s) = cli.command else { unreachable!("sample flags") };
        let p = crate::commands::sample::config(&s)?;
        configs.push((c, p));
    }
    if configs.is_empty() {
        return Ok(());
    }
    println!("machine: {}", cpu_model());
    println!(
        "whole runs as `anneal sample` runs them (its defaults, every σ); {runs} runs after a \
         warm-up: median [min–max] s"
    );
    for &t in &threads {
        let pool = crate::exec::pool(t)?;
        let sgemm = || pool.install(|| super::cpu::sgemm_rates(1024, t, 10));
        let before = sgemm();
        let numpy = if a.no_numpy { None } else { numpy_runs(a, &configs, dir, t, runs) };
        let timed: Vec<_> =
            configs.iter().map(|(_, p)| pool.install(|| time_runs(p, runs))).collect();
        // The rate measured again after the runs, and the best of both taken: on a shared machine
        // a core taken away for the first measurement's second would halve the bound.
        let after = sgemm();
        let (mm, own) = (before.0.max(after.0), before.1.max(after.1));
        let peak = mm.max(own);
        println!(
            "\n{t} thread{}: SGEMM 1024³ {peak:.1} GFLOP/s (best of matrixmultiply {mm:.1}, anneal's kernel {own:.1}; before and after the runs: {:.1}, {:.1}){}",
            if t == 1 { "" } else { "s" },
            before.0.max(before.1),
            after.0.max(after.1),
            numpy.as_ref().map_or(String::new(), |v| format!(
                "; NumPy {} with {t} BLAS thread{}",
                v["numpy"].as_str().unwrap_or("?"),
                if t == 1 { "" } else { "s" }
            ))
        );
        for ((c, p), r) in configs.iter().zip(timed) {
            let r = r?;
            let med = r.walls[r.walls.len() / 2];
            let (k, d) = (p.data.components(), p.data.dim);
            let nominal = 4.0 * (p.n * k * d) as f64 * p.plan.len() as f64;
            let at_peak = nominal / (peak * 1e9);
            let np = numpy.as_ref().map(|v| &v["runs"][c.name]);
            let np_med = np.and_then(|v| v["median"].as_f64());
            println!(
                "{:<26} anneal {med:.3} [{:.3}–{:.3}] s   NumPy {}   {}   nominal {:.1} GFLOP = {at_peak:.3} s at the SGEMM rate: anneal {:.2}× that   done {:.1} GFLOP ({:.0} GFLOP/s)",
                c.name,
                r.walls[0],
                r.walls[r.walls.len() - 1],
                np.map_or("-".to_string(), |v| format!(
                    "{:.3} [{:.3}–{:.3}] s",
                    v["median"].as_f64().unwrap_or(f64::NAN),
                    v["min"].as_f64().unwrap_or(f64::NAN),
                    v["max"].as_f64().unwrap_or(f64::NAN)
                )),
                np_med.map_or("-".to_string(), |v| format!("{:.2}× NumPy", v / med)),
                nominal / 1e9,
                med / at_peak,
                r.flops / 1e9,
                r.flops / 1e9 / med,
            );
            // anneal's bands: thread-seconds per run over the busy threads (≈ wall seconds).
            let busy = r.batches.min(t).max(1) as f64;
            let ours: Vec<f64> = r.bands.iter().map(|b| b / runs as f64 / busy).collect();
            let theirs: Option<Vec<f64>> = np.and_then(|v| {
                v["bands"].as_array().map(|b| b.iter().filter_map(|x| x.as_f64()).collect())
            });
            let row = |v: &[f64]| v.iter().map(|x| format!("{x:>9.3}")).collect::<String>();
            println!(
                "  {:<24}{}",
                "σ band",
                BANDS.iter().map(|b| format!("{b:>9}")).collect::<String>()
            );
            println!("  {:<24}{}", "anneal s (thread-s/busy)", row(&ours));
            if let Some(th) = theirs {
                println!("  {:<24}{}", "NumPy s", row(&th));
                let ratio: Vec<f64> = th.iter().zip(&ours).map(|(n, o)| n / o).collect();
                println!(
                    "  {:<24}{}",
                    "NumPy / anneal",
                    ratio.iter().map(|x| format!("{x:>8.2}×")).collect::<String>()
                );
            }
        }
    }
    Ok(())
}
