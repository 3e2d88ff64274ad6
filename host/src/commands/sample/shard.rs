//! A large sample set across processes or cluster tasks: `anneal sample --shard I/N` draws a
//! share of the run's samples — whole batches of it, [`range`] — into its own folder, and
//! `anneal sample merge` builds from the shards' folders the output set one process would have
//! written.
//!
//! Each sample's noise (its start and every step) is keyed by its index ([`anneal_core::noise`]),
//! and a shard's batches are the single run's, so a shard's rows are exactly those rows of the
//! whole run — also under a network runtime whose results depend on the rows of a call — and
//! the merged `samples.npy` is the single run's byte for byte (with the same `--batch`) on the
//! CPU. On a CUDA device (`--device cuda`) a shard starts its keyed streams at its first sample
//! too, but cuBLAS and tract-cuda may sum in another order for another number of rows: the
//! merged set equals the single GPU run within float rounding (byte for byte on the direct
//! path; host/tests/network_gpu.rs). Merge then computes the metrics and pictures over the whole set
//! with the code `sample` itself runs: every field is the single run's except the wall-clock
//! ones (`seconds`, `score_evals_per_second`: the shards' sampling seconds summed) and `out`
//! in `config.json`.
//!
//! A shard folder holds `samples.npy` (its rows), `config.json` and `shard.json`: anneal's
//! version, the command's flags without `--out`, `--force` and `--shard`, the shard, its range
//! and the device it was drawn on. Merge refuses folders that disagree (in flags or device), a
//! shard given twice, and a missing shard (named).

use std::path::Path;

use clap::Parser;
use serde::{Deserialize, Serialize};

use super::{Ran, config, finish};
use crate::cli::{Cli, Command, SampleArgs, SampleMergeArgs};
use crate::commands::shards::{self, Shard};
use crate::config::RunConfig;
use crate::error::UsageError;
use crate::io::write::{OutputSet, SAMPLE_FILES};

/// The files of a shard's folder.
pub const FILES: [&str; 3] = ["samples.npy", "config.json", "shard.json"];

/// The sample indices of `shard` of `n` drawn in batches of `batch`: whole batches of the
/// single run, ⌊(I−1)m/N⌋·B .. ⌊Im/N⌋·B (end excluded, at most n) for its m = ⌈n/B⌉ batches.
/// A shard's batches are then the single run's, row for row, which matters for a network
/// runtime whose results depend on the rows of a call (the mixture score's do not).
pub fn range(n: usize, batch: usize, shard: Shard) -> (usize, usize) {
    let batch = batch.max(1);
    let m = n.div_ceil(batch);
    let at = |i: usize| {
        let b = ((i as u128 * m as u128) / shard.of as u128) as usize;
        b.saturating_mul(batch).min(n)
    };
    (at(shard.index - 1), at(shard.index))
}

/// `shard.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ShardFile {
    /// The run and the shard; its flags are those after `sample`, without `--out`, `--force`
    /// and `--shard`.
    #[serde(flatten)]
    pub id: shards::RunId,
    /// The whole run's number of samples.
    pub n: usize,
    /// The shard's first sample and the one after its last.
    pub range: [usize; 2],
    /// Sampling seconds.
    pub seconds: f64,
    /// Where the shard was drawn: `cpu`, or the CUDA device's model and compute capability
    /// (its rows equal the CPU's within float rounding, not bit for bit, so merge refuses a mix).
    /// Shards written before anneal recorded it ran on the CPU.
    #[serde(default = "cpu")]
    pub device: String,
}

/// The device of a `shard.json` without one.
fn cpu() -> String {
    "cpu".into()
}

/// The flags of this process's `sample` command without `--out`, `--force` and `--shard`.
fn shared_args() -> Vec<String> {
    shards::shared_args("sample", &["--out", "--shard"], &["--force"])
}

impl AsRef<shards::RunId> for ShardFile {
    fn as_ref(&self) -> &shards::RunId {
        &self.id
    }
}

/// Writes a shard's folder: its rows, the run's config.json and shard.json.
pub fn write(
    a: &SampleArgs,
    p: &RunConfig,
    shard: Shard,
    set: OutputSet,
    samples: &[f32],
    seconds: f64,
    device: String,
) -> anyhow::Result<()> {
    let file = ShardFile {
        id: shards::RunId::new(shared_args(), shard),
        n: a.n,
        range: [p.first, p.first + p.n],
        seconds,
        device,
    };
    set.write("config.json", serde_json::to_string_pretty(&p.record)?.as_bytes())?;
    set.write("shard.json", serde_json::to_string_pretty(&file)?.as_bytes())?;
    set.write_with("samples.npy", |w| crate::io::npy::write_f32_to(w, samples, p.n, p.data.dim))?;
    set.commit(a.force)?;
    println!(
        "shard {shard}: samples {}..{} of {} ({} of them) on {} in {seconds:.2} s; wrote {}/{{samples.npy, \
         config.json, shard.json}}; when every shard is done: anneal sample merge --out MERGED \
         SHARD_DIR…",
        p.first,
        p.first + p.n,
        a.n,
        p.n,
        file.device,
        a.out.display()
    );
    Ok(())
}

/// Reads `dir/shard.json`, refusing a folder without one (exit 2).
fn read_shard(dir: &Path) -> Result<ShardFile, UsageError> {
    let path = dir.join("shard.json");
    let bytes = std::fs::read(&path).map_err(|e| {
        UsageError::flag(format!(
            "{}: {e}: not a folder written by `anneal sample --shard`",
            path.display()
        ))
    })?;
    serde_json::from_slice(&bytes)
        .map_err(|e| UsageError::flag(format!("{} cannot be read: {e}", path.display())))
}

/// A shard's rows from its samples.npy, checked against its range and the data's dimension.
fn read_rows(dir: &Path, f: &ShardFile, dim: usize) -> Result<Vec<f32>, UsageError> {
    let path = dir.join("samples.npy");
    let bad = |why: String| UsageError::flag(format!("{}: {why}", path.display()));
    let bytes = std::fs::read(&path).map_err(|e| bad(e.to_string()))?;
    let h = crate::io::npy::header(&bytes).map_err(&bad)?;
    let rows = f.range[1] - f.range[0];
    if h.descr != "<f4" || h.rows != rows || h.cols != dim {
        return Err(bad(format!(
            "holds {} × {} of '{}' where shard {}/{} has {rows} × {dim} of '<f4'",
            h.rows, h.cols, h.descr, f.id.shard, f.id.of
        )));
    }
    let a = crate::io::npy::read(&bytes).map_err(&bad)?;
    Ok(a.data.iter().map(|&v| v as f32).collect())
}

/// Runs `anneal sample merge`.
pub fn merge(m: &SampleMergeArgs) -> anyhow::Result<()> {
    let mut shards = shards::collect(&m.dirs, read_shard, |a: &ShardFile, b: &ShardFile| {
        (a.device != b.device).then(|| {
            format!(
                "were drawn on different devices ({} and {}), whose samples agree only within \
                 float rounding: draw every shard on one kind of device (--device cpu, or \
                 --device cuda on one GPU model)",
                a.device, b.device
            )
        })
    })?;
    let first = shards[0].1.clone();
    let missing: Vec<String> = (1..=first.id.of)
        .filter(|i| !shards.iter().any(|(_, f)| f.id.shard == *i))
        .map(|i| format!("{i}/{}", first.id.of))
        .collect();
    if !missing.is_empty() {
        return Err(UsageError::flag(format!(
            "shard(s) {} missing: every shard's folder is needed (run the missing ones, each \
             with its own --out, then merge again)",
            missing.join(", ")
        ))
        .into());
    }
    shards.sort_by_key(|(_, f)| f.id.shard);
    // The run's flags, parsed again, with the merged folder as --out.
    let mut argv: Vec<String> = vec!["anneal".into(), "sample".into()];
    argv.extend(first.id.args.iter().cloned());
    argv.push("--out".into());
    argv.push(m.out.display().to_string());
    if m.force {
        argv.push("--force".into());
    }
    let Command::Sample(a) = Cli::try_parse_from(&argv)?.command else {
        anyhow::bail!("the shards' flags are not a sample command: {}", first.id.args.join(" "))
    };
    let mut p = config(&a)?;
    if first.device != "cpu" {
        // As the single run on that device records it: the device, and the network's runtime.
        let cfg = std::fs::read(shards[0].0.join("config.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
        let text = |v: Option<&serde_json::Value>| v.and_then(|v| v.as_str()).map(String::from);
        if let Some(cfg) = cfg {
            if let Some(device) = text(cfg.get("device")) {
                p.record.device = device;
            }
            if let (Some(score), Some(runtime)) =
                (&mut p.record.score, text(cfg.pointer("/score/runtime")))
            {
                score.runtime = runtime;
            }
        }
    }
    let set = OutputSet::begin(&m.out, m.force, &SAMPLE_FILES)?;
    let mut samples = Vec::with_capacity(a.n * p.data.dim);
    let mut seconds = 0.0;
    for (dir, f) in &shards {
        let (lo, hi) = range(a.n, p.batch, f.id.shard());
        if f.range != [lo, hi] || f.n != a.n {
            return Err(UsageError::flag(format!(
                "{}: shard {}/{} holds samples {}..{} of {} where the run's flags give {lo}..{hi} \
                 of {}",
                dir.display(),
                f.id.shard,
                f.id.of,
                f.range[0],
                f.range[1],
                f.n,
                a.n
            ))
            .into());
        }
        samples.extend(read_rows(dir, f, p.data.dim)?);
        seconds += f.seconds;
    }
    let pool = crate::exec::pool(p.record.threads)?;
    let device_line = format!("{}, merged from {} shards", first.device, shards.len());
    let on_gpu = first.device != "cpu";
    let ran = Ran { samples, trace: None, seconds, device_line, on_gpu };
    finish(&a, &p, &pool, set, ran)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ranges of 1..N tile 0..n in order, in whole batches (each starts on a batch
    /// boundary), as evenly as whole batches allow, for n below, at and above N.
    #[test]
    fn ranges_tile_the_samples_in_whole_batches() {
        for n in [0usize, 1, 5, 100, 1001] {
            for batch in [1usize, 7, 256] {
                for of in [1usize, 2, 3, 7, 64] {
                    let mut next = 0;
                    for index in 1..=of {
                        let (lo, hi) = range(n, batch, Shard { index, of });
                        assert_eq!(lo, next, "n {n}, B {batch}, N {of}");
                        assert!(lo % batch == 0 && hi >= lo, "n {n}, B {batch}, N {of}");
                        let most = n.div_ceil(batch).div_ceil(of) * batch;
                        assert!(hi - lo <= most, "n {n}, B {batch}, N {of}");
                        next = hi;
                    }
                    assert_eq!(next, n, "n {n}, B {batch}, N {of}");
                }
            }
        }
    }
}
