//! One sweep across several processes or cluster tasks: `anneal tune --shard I/N` runs one
//! share of the grid's cells in its own folder, `anneal tune merge` builds from the shards'
//! folders the folder one process would have written, and `anneal tune status` counts what each
//! shard has done.
//!
//! **The partition.** The grid's cells are ranked by the 64-bit FNV-1a hash of their key (the
//! cell's whole configuration as JSON, [`super::sweep::key`]), ties broken by the key; the cell
//! of rank r belongs to shard r mod N + 1. It depends on the grid alone — not on the order in
//! which cells finish, nor on which task starts first — every cell is in exactly one shard, and
//! the shards' sizes differ by at most one (a shard of a grid with fewer cells than N is empty).
//!
//! **`tune.json`.** Every tune folder holds the invocation that last ran in it: anneal's
//! version, the command's flags without `--out`, `--shard` and `--threads` (no result depends
//! on the thread count), the shard, the fingerprint of the whole grid (a hash of its keys in
//! order) and the hashes of the shard's cells. Merge refuses folders that disagree on any of
//! these, naming the difference; status counts a folder's finished cells among its shard's.
//!
//! **Merge.** The flags are parsed again and the grid rebuilt (the same data and model must be
//! at hand); its fingerprint must be the shards'. Every cell's row is taken from the shards'
//! records, and the merged folder gets the record in grid order (what one uninterrupted process
//! appends), `sweep.json`, `sweep.csv`, `summary.json`, the figures and its own `tune.json` (shard
//! 1/1), all through the code `tune` itself runs, so that every field is what one process writes
//! except the wall-clock ones (`seconds` and the timings inside `metrics`). Missing cells are
//! listed by shard, never invented: merge then writes nothing unless `--partial`.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use clap::Parser;
use serde::{Deserialize, Serialize};

use super::grid::{CellConfig, cells};
use super::record::{self, Record};
use super::sweep::{Row, key, save};
use crate::cli::{Cli, Command, TuneArgs, TuneMergeArgs, TuneStatusArgs};
use crate::commands::shards::{self, Shard, fnv1a};
use crate::error::UsageError;
use crate::io::write::{FolderLock, write_atomic};

/// The invocation file of a tune folder.
pub const FILE: &str = "tune.json";

/// A cell key's hash as the record of `tune.json` keeps it.
fn key_hash(key: &str) -> String {
    format!("{:016x}", fnv1a(key.as_bytes()))
}

/// The grid's fingerprint: the hash of its keys in order.
pub fn fingerprint(grid: &[CellConfig]) -> String {
    let joined: Vec<String> = grid.iter().map(key).collect();
    key_hash(&joined.join("\n"))
}

/// The shard (0-based) of each cell of `grid` among `of` shards (module docs).
pub fn partition(grid: &[CellConfig], of: usize) -> Vec<usize> {
    let keys: Vec<String> = grid.iter().map(key).collect();
    let mut order: Vec<usize> = (0..grid.len()).collect();
    order.sort_by(|&a, &b| {
        (fnv1a(keys[a].as_bytes()), &keys[a]).cmp(&(fnv1a(keys[b].as_bytes()), &keys[b]))
    });
    let mut shard = vec![0; grid.len()];
    for (rank, &cell) in order.iter().enumerate() {
        shard[cell] = rank % of.max(1);
    }
    shard
}

/// The cells of `grid` in `shard`, in grid order.
pub fn cells_of(grid: Vec<CellConfig>, shard: Shard) -> Vec<CellConfig> {
    if shard.of == 1 {
        return grid;
    }
    let part = partition(&grid, shard.of);
    grid.into_iter().zip(part).filter(|(_, p)| p + 1 == shard.index).map(|(c, _)| c).collect()
}

/// `tune.json`: what ran in a folder (module docs).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Invocation {
    /// The run and the shard; its flags are those after `tune`, without `--out`, `--shard` and
    /// `--threads`.
    #[serde(flatten)]
    pub id: shards::RunId,
    /// [`fingerprint`] of the whole grid.
    pub grid: String,
    /// The whole grid's number of cells.
    pub grid_cells: usize,
    /// The hashes of the shard's cells' keys, in grid order.
    pub cells: Vec<String>,
}

impl Invocation {
    /// The invocation of `shard` of `grid` (the whole grid) run with `args`.
    pub fn new(args: Vec<String>, shard: Shard, grid: &[CellConfig], ours: &[CellConfig]) -> Self {
        Invocation {
            id: shards::RunId::new(args, shard),
            grid: fingerprint(grid),
            grid_cells: grid.len(),
            cells: ours.iter().map(|c| key_hash(&key(c))).collect(),
        }
    }

    /// Writes `dir/tune.json`.
    pub fn write(&self, dir: &Path) -> anyhow::Result<()> {
        write_atomic(dir, FILE, serde_json::to_string_pretty(self)?.as_bytes())
    }

    /// Reads `dir/tune.json`, refusing a folder without one (exit 2).
    pub fn read(dir: &Path) -> Result<Invocation, UsageError> {
        let path = dir.join(FILE);
        let bytes = std::fs::read(&path).map_err(|e| {
            UsageError::flag(format!(
                "{}: {e}: not a folder written by `anneal tune` (version {} or later)",
                path.display(),
                env!("CARGO_PKG_VERSION")
            ))
        })?;
        serde_json::from_slice(&bytes)
            .map_err(|e| UsageError::flag(format!("{} cannot be read: {e}", path.display())))
    }
}

/// The flags of this process's `tune` command without `--out`, `--shard` and `--threads` (what
/// the shards of one sweep share: no result depends on the thread count, so shards may run on
/// machines of different sizes).
pub fn shared_args() -> Vec<String> {
    shards::shared_args("tune", &["--out", "--shard", "--threads"], &[])
}

impl AsRef<shards::RunId> for Invocation {
    fn as_ref(&self) -> &shards::RunId {
        &self.id
    }
}

/// The grid (whole) of `a`, and the data set's name, as `tune` builds them.
fn grid_of(a: &TuneArgs) -> anyhow::Result<(Vec<CellConfig>, crate::io::data::Dataset, String)> {
    let (data, network) = crate::config::load_source(&a.data, &a.score)?;
    let data_name = a.data.name(network.as_ref().and_then(|n| n.conventions().data.as_deref()));
    let grid = cells(a, &data_name, network.as_ref().map(|n| n.runtime()))?;
    Ok((grid, data, data_name))
}

/// Runs `anneal tune merge`.
pub fn merge(m: &TuneMergeArgs) -> anyhow::Result<()> {
    let shards = shards::collect(&m.dirs, Invocation::read, |a, b| {
        (a.grid != b.grid).then(|| "have different grids".to_string())
    })?;
    let first = shards[0].1.clone();
    for (d, _) in &shards {
        if same_folder(d, &m.out) {
            return Err(UsageError::flag(format!(
                "--out = {}: is one of the shard folders; merge into a new folder",
                m.out.display()
            ))
            .into());
        }
    }
    // The sweep's flags, parsed again, with the merged folder as --out.
    let mut argv: Vec<String> = vec!["anneal".into(), "tune".into()];
    argv.extend(first.id.args.iter().cloned());
    argv.push("--out".into());
    argv.push(m.out.display().to_string());
    let Command::Tune(a) = Cli::try_parse_from(&argv)?.command else {
        anyhow::bail!("the shards' flags are not a tune command: {}", first.id.args.join(" "))
    };
    let (grid, _data, data_name) = grid_of(&a)?;
    if fingerprint(&grid) != first.grid {
        return Err(UsageError::flag(format!(
            "the shards' grid ({} cells) is not the one their flags give now ({} cells): the data \
             or the model changed since they ran; merge with the inputs they ran on",
            first.grid_cells,
            grid.len()
        ))
        .into());
    }
    // Every cell's row from the shards' records (a cell in two folders: the first given).
    let mut found: HashMap<String, Row> = HashMap::new();
    for (dir, _) in &shards {
        for row in Record::read(dir)? {
            found.entry(key(&row.config)).or_insert(row);
        }
    }
    let part = partition(&grid, first.id.of);
    let given: HashSet<usize> = shards.iter().map(|(_, i)| i.id.shard).collect();
    let mut missing: Vec<(usize, &CellConfig)> = Vec::new();
    let mut rows = Vec::new();
    for (c, &p) in grid.iter().zip(&part) {
        match found.remove(&key(c)) {
            Some(r) => rows.push(r),
            None => missing.push((p + 1, c)),
        }
    }
    if !missing.is_empty() {
        let mut by_shard: std::collections::BTreeMap<usize, usize> = Default::default();
        for &(s, _) in &missing {
            *by_shard.entry(s).or_default() += 1;
        }
        for (c_shard, c) in missing.iter().take(20) {
            eprintln!(
                "missing: shard {c_shard}/{}: {} N = {} {} = {} seed {}",
                first.id.of, c.sampler, c.levels, c.param, c.value, c.seed
            );
        }
        if missing.len() > 20 {
            eprintln!("missing: … and {} more cells", missing.len() - 20);
        }
        let list: Vec<String> = by_shard
            .iter()
            .map(|(s, n)| {
                let note = if given.contains(s) { "" } else { ", no folder given" };
                format!("shard {s}/{}: {n}{note}", first.id.of)
            })
            .collect();
        if !m.partial {
            return Err(UsageError::flag(format!(
                "{} of {} cells are missing ({}): run those shards to the end (a shard resumes \
                 in its folder) and merge again, or merge with --partial",
                missing.len(),
                grid.len(),
                list.join("; ")
            ))
            .into());
        }
        eprintln!(
            "note: --partial: {} of {} cells are missing ({}); the merged folder has the others",
            missing.len(),
            grid.len(),
            list.join("; ")
        );
    }
    let _lock = FolderLock::acquire(&m.out, "--out")?;
    if m.out.join(record::FILE).exists() {
        return Err(UsageError::flag(format!(
            "--out = {}: already holds a sweep ({}); merge into a new folder",
            m.out.display(),
            record::FILE
        ))
        .into());
    }
    let mut text = String::new();
    for r in &rows {
        text.push_str(&record::line(r)?);
    }
    write_atomic(&m.out, record::FILE, text.as_bytes())?;
    let (record, _) = Record::open(&m.out)?;
    Invocation::new(first.id.args.clone(), Shard::ALL, &grid, &grid).write(&m.out)?;
    let rows = save(&m.out, &grid, &record)?;
    println!(
        "merged {} shard folder(s) of {}: {} of {} cells",
        shards.len(),
        first.id.of,
        rows.len(),
        grid.len()
    );
    super::report::write(&a, &rows, rows.len(), &data_name)
}

/// Whether two paths name one folder (compared as canonical paths where they exist).
fn same_folder(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

/// Runs `anneal tune status`.
pub fn status(s: &TuneStatusArgs) -> anyhow::Result<()> {
    let mut done_all = 0usize;
    let mut total_all = 0usize;
    let mut sweeps: HashMap<(String, usize), HashSet<usize>> = HashMap::new();
    println!("{:<40} {:>9} {:>15}", "folder", "shard", "cells done");
    for dir in &s.dirs {
        let inv = Invocation::read(dir)?;
        let ours: HashSet<&str> = inv.cells.iter().map(String::as_str).collect();
        let done = Record::read(dir)?
            .iter()
            .filter(|r| ours.contains(key_hash(&key(&r.config)).as_str()))
            .count();
        println!(
            "{:<40} {:>9} {:>15}",
            dir.display(),
            format!("{}/{}", inv.id.shard, inv.id.of),
            format!("{done}/{}", inv.cells.len())
        );
        done_all += done;
        total_all += inv.cells.len();
        sweeps.entry((inv.grid.clone(), inv.id.of)).or_default().insert(inv.id.shard);
    }
    println!("overall: {done_all}/{total_all} cells done");
    for ((_, of), given) in &sweeps {
        let absent: Vec<String> =
            (1..=*of).filter(|i| !given.contains(i)).map(|i| i.to_string()).collect();
        if !absent.is_empty() && absent.len() <= 50 {
            println!("shards of {of} not among these folders: {}", absent.join(", "));
        } else if !absent.is_empty() {
            println!("{} of {of} shards are not among these folders", absent.len());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(n: usize) -> Vec<CellConfig> {
        (0..n)
            .map(|i| CellConfig {
                version: "t".into(),
                data: "toy2d".into(),
                score: None,
                runtime: None,
                tau: None,
                sampler: "cas".into(),
                sigma_max: "auto".into(),
                sigma_min: 0.01,
                levels: 4 + i / 7,
                param: "eps_c".into(),
                value: (i % 7).to_string(),
                steps_per_level: None,
                n: 10,
                seed: (i % 3) as u64,
                init: "normal".into(),
                options: String::new(),
            })
            .collect()
    }

    /// For any N ≥ 1 — more shards than cells included — every cell is in exactly one shard, the
    /// shards' sizes differ by at most one, and the assignment does not depend on the grid's
    /// order.
    #[test]
    fn the_partition_covers_every_cell_once() {
        for cells in [0usize, 1, 5, 12, 97] {
            let g = grid(cells);
            for of in [1usize, 2, 3, 4, 7, 12, 50, 200] {
                let mut seen = vec![0usize; cells];
                let mut sizes = Vec::new();
                for index in 1..=of {
                    let ours = cells_of(g.clone(), Shard { index, of });
                    sizes.push(ours.len());
                    for c in &ours {
                        let i = g.iter().position(|x| x == c).unwrap();
                        seen[i] += 1;
                    }
                }
                assert!(seen.iter().all(|&s| s == 1), "cells {cells}, N {of}: {seen:?}");
                let (lo, hi) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
                assert!(hi - lo <= 1, "cells {cells}, N {of}: sizes {sizes:?}");
                let mut reversed = g.clone();
                reversed.reverse();
                let mut back = partition(&reversed, of);
                back.reverse();
                assert_eq!(partition(&g, of), back, "cells {cells}, N {of}");
            }
        }
    }
}
