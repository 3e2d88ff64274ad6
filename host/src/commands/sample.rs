//! `anneal sample`: flags → [`RunConfig`] → the CPU or a CUDA device → metrics and pictures →
//! files, each written atomically, `samples.npy` last (its presence means the run is complete).

use std::path::Path;
use std::time::Instant;

use anneal_core::{Plan, Schedule};

use crate::cli::SampleArgs;
use crate::config::{RunConfig, RunSpec};
use crate::error::UsageError;
use crate::exec;
use crate::io::write::write_atomic;

/// The validated run of `sample`'s flags.
pub fn config(a: &SampleArgs) -> Result<RunConfig, UsageError> {
    let (data, network) = crate::config::load_source(&a.data, &a.score)?;
    let flags = serde_json::to_value(a).unwrap_or(serde_json::Value::Null);
    RunConfig::new(&RunSpec::from_sample(a, &flags, network.as_ref()), data)
}

/// Refuses an --out that exists (unless --force) or is not a folder.
fn check_out(out: &Path, force: bool) -> Result<(), UsageError> {
    if out.exists() && !force {
        return Err(UsageError::flag(format!(
            "--out = {} exists: choose another folder or add --force to overwrite its files",
            out.display()
        )));
    }
    if out.exists() && !out.is_dir() {
        return Err(UsageError::flag(format!(
            "--out = {} exists and is not a folder",
            out.display()
        )));
    }
    Ok(())
}

/// The pictures' title: sampler, N, its step size, the data and the number of samples.
fn title(p: &RunConfig, n: usize) -> String {
    let r = &p.record;
    let step = match (&r.cas, r.eps_ncsnv2) {
        (Some((name, v)), _) => format!("{} = {v}", if name == "eps_c" { "εc" } else { "ε_b" }),
        (None, Some(e)) => format!("ε = {e:.3e}"),
        (None, None) => String::new(),
    };
    let step = if step.is_empty() { String::new() } else { format!(", {step}") };
    let source = match &p.network {
        Some(net) => format!(" from the network {}", net.path().display()),
        None => String::new(),
    };
    format!("{}, N = {}{step} — {n} samples of {}{source}", p.kind.name(), r.levels, p.data.name)
}

/// Runs `anneal sample`.
pub fn run(a: &SampleArgs) -> anyhow::Result<()> {
    let mut p = config(a)?;
    check_out(&a.out, a.force)?;
    let (device, mut device_line) = exec::cuda::resolve_device(a)?;
    // Said before sampling, on stderr (and kept in config.json).
    for w in &p.record.warnings {
        eprintln!("warning: {w}");
    }
    let pool = rayon::ThreadPoolBuilder::new().num_threads(p.record.threads).build()?;
    let start = Instant::now();
    let (samples, trace) = match &device {
        Some(dev) => {
            p.record.device = dev.describe();
            if let Some(score) = &mut p.record.score {
                score.runtime = crate::score::network::cuda_engine::TRACT_CUDA.into();
            }
            let progress =
                crate::report::progress::bar((a.n * p.plan.len()) as u64, "sample-steps");
            let (samples, stats) = exec::cuda::sample_cuda(&p, dev, &progress)?;
            device_line = format!("{device_line}; {}", stats.summary());
            progress.finish_and_clear();
            (samples, None)
        }
        None => {
            let batches = a.n.div_ceil(p.batch);
            let progress = crate::report::progress::bar((batches * p.plan.len()) as u64, "steps");
            let out = pool.install(|| exec::cpu::sample(&p, &progress, a.trace))?;
            progress.finish_and_clear();
            out
        }
    };
    let seconds = start.elapsed().as_secs_f64();
    let truth = p.truth();
    let mut metrics = pool.install(|| {
        crate::report::metrics::compute(&truth, &samples, a.seed, seconds, p.plan.len())
    });
    metrics.predicted_max_ratio = p.record.foresight.map(|f| f.max_ratio);
    let png = crate::report::plot::render(&truth, &samples, &title(&p, a.n));

    std::fs::create_dir_all(&a.out)
        .map_err(|e| anyhow::anyhow!("creating {}: {e}", a.out.display()))?;
    write_atomic(&a.out, "config.json", serde_json::to_string_pretty(&p.record)?.as_bytes())?;
    write_atomic(&a.out, "metrics.json", serde_json::to_string_pretty(&metrics)?.as_bytes())?;
    write_atomic(&a.out, "samples.png", &png?)?;
    if let Some(t) = &trace {
        write_atomic(&a.out, "trace.csv", t.csv().as_bytes())?;
        let points: Vec<(f64, f64)> = t
            .level
            .iter()
            .zip(t.sigma_eff.iter().zip(&t.sigma))
            .map(|(&i, (e, s))| (i as f64, e / s))
            .collect();
        let series = [crate::report::plot::Series {
            label: p.kind.name().to_string(),
            points,
            spread: Vec::new(),
            flagged: Vec::new(),
        }];
        write_atomic(
            &a.out,
            "trace.png",
            &crate::report::plot::line_chart(
                &crate::report::plot::Chart {
                    title: &format!("consistency trace: {} (1 = consistent)", title(&p, a.n)),
                    x_label: "level i",
                    y_label: "σ_eff/σ_i",
                    x_log: false,
                    legend_left: true,
                },
                &series,
            )?,
        )?;
    }
    write_atomic(&a.out, "samples.npy", &crate::io::npy::write_f32(&samples, a.n, p.data.dim))?;

    println!(
        "{} samples of {} (D = {}, K = {}) by {}, N = {} levels, {} steps: {}",
        a.n,
        p.data.name,
        p.data.dim,
        p.data.components(),
        p.kind.name(),
        p.schedule.levels(),
        p.plan.len(),
        if seconds < 0.1 { format!("{:.1} ms", seconds * 1e3) } else { format!("{seconds:.2} s") }
    );
    println!("device: {device_line}");
    if let Some(net) = &p.network {
        let (describe, busy) = match &device {
            Some(_) => (net.describe_on(crate::score::network::cuda_engine::TRACT_CUDA), 1),
            None => (net.describe(), p.busy_threads()),
        };
        println!(
            "score: {describe}; {} forward passes took {:.1}% of the sampling time per thread \
             (the rest: noise, updates, conversions)",
            net.forward_time().1,
            100.0 * net.forward_share(seconds, busy)
        );
    }
    crate::report::metrics::print_summary(&metrics, p.network.is_some());
    println!("wrote {}/{{samples.npy, metrics.json, samples.png, config.json}}", a.out.display());
    Ok(())
}
