//! `anneal sample`: flags → [`RunConfig`] → the CPU or a CUDA device → metrics and pictures →
//! an output set, built beside `--out` and moved into place whole ([`OutputSet`]). A shard of
//! the samples (`--shard I/N`) and the merge of shards: [`shard`].

pub mod shard;

use std::time::Instant;

use anneal_core::{Plan, Schedule};

use crate::cli::{SampleAction, SampleArgs};
use crate::commands::shards::Shard;
use crate::config::{RunConfig, RunSpec};
use crate::error::UsageError;
use crate::exec;
use crate::io::write::{OutputSet, SAMPLE_FILES};

/// The validated run of `sample`'s flags.
pub fn config(a: &SampleArgs) -> Result<RunConfig, UsageError> {
    let (data, network) = crate::config::load_source(&a.data, &a.score)?;
    a.options
        .check_applicable(&[anneal_core::samplers::any::SamplerKind::from(a.sampler)])
        .map_err(UsageError::flag)?;
    let mut flags = serde_json::to_value(a).unwrap_or(serde_json::Value::Null);
    a.options.fill_defaults(&mut flags);
    RunConfig::new(&RunSpec::from_sample(a, &flags, network.as_ref()), data)
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

/// Runs `anneal sample` (or `sample merge`).
pub fn run(a: &SampleArgs) -> anyhow::Result<()> {
    if let Some(SampleAction::Merge(m)) = &a.action {
        return shard::merge(m);
    }
    let shard = a.shard.as_deref().map(Shard::parse).transpose()?;
    if shard.is_some() && a.trace {
        return Err(UsageError::flag(
            "--trace with --shard: the trace is a sum over every sample in one order, which \
             shards cannot reproduce; run the trace without --shard",
        )
        .into());
    }
    let mut p = config(a)?;
    // --out is checked, and its partial folder made, before any sampling.
    let files: &[&str] = if shard.is_some() { &shard::FILES } else { &SAMPLE_FILES };
    let set = OutputSet::begin(&a.out, a.force, files)?;
    let (device, mut device_line) = exec::cuda::resolve_device(a)?;
    if let Some(s) = shard {
        (p.first, p.n) = {
            let (lo, hi) = shard::range(a.n, p.batch, s);
            (lo, hi - lo)
        };
    }
    // Said before sampling, on stderr (and kept in config.json).
    for w in &p.record.warnings {
        eprintln!("warning: {w}");
    }
    let pool = exec::pool(p.record.threads)?;
    let start = Instant::now();
    let (samples, trace) = match &device {
        Some(dev) => {
            p.record.device = dev.describe();
            if let Some(score) = &mut p.record.score {
                score.runtime = crate::score::network::cuda_engine::TRACT_CUDA.into();
            }
            let progress =
                crate::report::progress::bar((p.n * p.plan.len()) as u64, "sample-steps");
            let (samples, stats) = exec::cuda::sample_cuda(&p, dev, &progress)?;
            device_line = format!("{device_line}; {}", stats.summary());
            progress.finish_and_clear();
            (samples, None)
        }
        None => {
            let progress =
                crate::report::progress::bar((p.n * p.plan.len()) as u64, "sample-steps");
            let out = pool.install(|| exec::cpu::sample(&p, &progress, a.trace))?;
            progress.finish_and_clear();
            out
        }
    };
    let seconds = start.elapsed().as_secs_f64();
    if let Some(s) = shard {
        let model = device.as_ref().map_or_else(|| "cpu".to_string(), |d| d.model());
        return shard::write(a, &p, s, set, &samples, seconds, model);
    }
    let ran = Ran { samples, trace, seconds, device_line, on_gpu: device.is_some() };
    finish(a, &p, &pool, set, ran)
}

/// What sampling gave: the samples, the trace, the seconds, and where it ran.
pub struct Ran {
    /// n × D samples.
    pub samples: Vec<f32>,
    /// The consistency trace, with --trace.
    pub trace: Option<crate::exec::cpu::Trace>,
    /// Sampling seconds.
    pub seconds: f64,
    /// The device, for the output.
    pub device_line: String,
    /// Whether it ran on a GPU.
    pub on_gpu: bool,
}

/// Metrics and pictures of `ran`, the output set written and committed, the summary printed.
pub fn finish(
    a: &SampleArgs,
    p: &RunConfig,
    pool: &rayon::ThreadPool,
    set: OutputSet,
    ran: Ran,
) -> anyhow::Result<()> {
    let Ran { samples, trace, seconds, device_line, on_gpu } = ran;
    let truth = p.truth();
    let mut metrics = pool.install(|| {
        crate::report::metrics::compute(&truth, &samples, a.seed, seconds, p.plan.len())
    });
    metrics.predicted_max_ratio = p.record.foresight.map(|f| f.max_ratio);
    let png = crate::report::plot::render(&truth, &samples, &title(p, a.n));

    set.write("config.json", serde_json::to_string_pretty(&p.record)?.as_bytes())?;
    let per_component = metrics.split_components(Some("components.csv"));
    set.write("metrics.json", serde_json::to_string_pretty(&metrics)?.as_bytes())?;
    if let Some(c) = &per_component {
        set.write_with("components.csv", |w| c.write_csv(w))?;
    }
    set.write("samples.png", &png?)?;
    if let Some(t) = &trace {
        set.write("trace.csv", t.csv().as_bytes())?;
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
        set.write(
            "trace.png",
            &crate::report::plot::line_chart(
                &crate::report::plot::Chart {
                    title: &format!("consistency trace: {} (1 = consistent)", title(p, a.n)),
                    x_label: "level i",
                    y_label: "σ_eff/σ_i",
                    x_log: false,
                    legend_left: true,
                },
                &series,
            )?,
        )?;
    }
    set.write_with("samples.npy", |w| crate::io::npy::write_f32_to(w, &samples, a.n, p.data.dim))?;
    set.commit(a.force)?;

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
    if let Some(net) = p.network.as_ref().filter(|n| n.forward_time().1 > 0) {
        let (describe, busy) = if on_gpu {
            (net.describe_on(crate::score::network::cuda_engine::TRACT_CUDA), 1)
        } else {
            (net.describe(), p.busy_threads())
        };
        println!(
            "score: {describe}; {} forward passes took {:.1}% of the sampling time per thread \
             (the rest: noise, updates, conversions)",
            net.forward_time().1,
            100.0 * net.forward_share(seconds, busy)
        );
    }
    crate::report::metrics::print_summary(&metrics, per_component.as_ref(), p.network.is_some());
    println!(
        "wrote {}/{{samples.npy, metrics.json, samples.png, config.json{}{}}}",
        a.out.display(),
        if per_component.is_some() { ", components.csv" } else { "" },
        if trace.is_some() { ", trace.csv, trace.png" } else { "" }
    );
    Ok(())
}
