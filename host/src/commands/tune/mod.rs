//! `anneal tune`: the CAS note's Figure 1 as a command. A grid of levels × (εc | ε_b | ε) × seeds
//! ([`grid`]), each cell an `anneal sample` run with its metrics ([`sweep`]). Each finished cell
//! is appended to the folder's record ([`record`]), from which `sweep.csv` and `sweep.json` are
//! rebuilt, so an interrupted sweep resumes: cells whose full configuration is already recorded
//! are not recomputed. One process at a time works in a folder (a lock). Then the figures and
//! the summary of the cells the grid asks for ([`report`]).

pub mod grid;
pub mod record;
pub mod report;
pub mod shard;
pub mod sweep;

use grid::{cell_config, cells};
use record::Record;
use shard::Invocation;
use sweep::{CellStatus, key, run_cell, save};

use crate::cli::{TuneAction, TuneArgs};
use crate::commands::shards::Shard;
use crate::error::UsageError;

/// Runs `anneal tune` (or `tune merge`, `tune status`).
pub fn run(a: &TuneArgs) -> anyhow::Result<()> {
    match &a.action {
        Some(TuneAction::Merge(m)) => return shard::merge(m),
        Some(TuneAction::Status(s)) => return shard::status(s),
        None => {}
    }
    let shard = a.shard.as_deref().map(Shard::parse).transpose()?.unwrap_or(Shard::ALL);
    let (data, network) = crate::config::load_source(&a.data, &a.score)?;
    let data_name = a.data.name(network.as_ref().and_then(|n| n.conventions().data.as_deref()));
    let whole = cells(a, &data_name, network.as_ref().map(|n| n.runtime()))?;
    let grid = shard::cells_of(whole.clone(), shard);
    if a.n == 0 || a.run.batch == 0 {
        return Err(UsageError::flag("--n and --batch must be ≥ 1").into());
    }
    // Flags shared by every cell (data, σ, τ, …) are checked once on the first cell: only the
    // per-cell bounds (η, Langevin step) become rows instead of an exit.
    if let Some(first) = grid.first()
        && let Err(e) = cell_config(a, first, &data, network.as_ref())
        && CellStatus::of_refusal(&e) == CellStatus::Error
    {
        return Err(e.into());
    }
    let _lock = crate::io::write::FolderLock::acquire(&a.out, "--out")?;
    let (mut record, notes) = Record::open(&a.out)?;
    for n in notes {
        eprintln!("note: {n}");
    }
    Invocation::new(shard::shared_args(), shard, &whole, &grid).write(&a.out)?;
    let todo = grid.iter().filter(|c| record.get(&key(c)).is_none()).count();
    let others = record.rows().len() - (grid.len() - todo);
    let of_shard = if shard.of > 1 {
        format!(" (shard {shard} of a grid of {})", whole.len())
    } else {
        String::new()
    };
    println!(
        "{} cells{of_shard}: {} already in {}, {todo} to run{}",
        grid.len(),
        grid.len() - todo,
        a.out.display(),
        if others > 0 {
            format!(" ({others} cells of other grids are kept)")
        } else {
            String::new()
        }
    );
    let progress = crate::report::progress::bar(todo as u64, "cells");
    let pool = crate::exec::pool(a.run.threads)?;
    let mut computed = 0usize;
    for c in &grid {
        if record.get(&key(c)).is_some() {
            continue;
        }
        let row = pool.install(|| run_cell(a, c, &data, network.as_ref()));
        record.append(row)?;
        computed += 1;
        progress.inc(1);
        save(&a.out, &grid, &record)?;
    }
    progress.finish_and_clear();
    let rows = save(&a.out, &grid, &record)?;
    if shard.of > 1 {
        // A shard's figures and summary would cover a scattered part of the grid: they come
        // with the merge.
        println!(
            "shard {shard}: computed {computed} cells, reused {}; wrote {}/{{sweep.csv, \
             sweep.json}}; when every shard is done: anneal tune merge --out MERGED SHARD_DIR…",
            rows.len() - computed,
            a.out.display()
        );
        return Ok(());
    }
    report::write(a, &rows, computed, &data_name)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::grid::CellConfig;
    use super::report::aggregate;
    use super::sweep::Row;
    use super::*;
    use crate::cli::{Cli, Command, MetricKind};

    fn tune_args(args: &str) -> TuneArgs {
        let mut argv = vec!["anneal", "tune"];
        argv.extend(args.split_whitespace());
        let Command::Tune(a) = Cli::try_parse_from(argv).expect("flags parse").command else {
            unreachable!("a tune command")
        };
        *a
    }

    /// The grid is samplers × levels × parameter values × seeds, in that order; CAS without
    /// lists takes the default εc list, the other samplers Technique 4.
    #[test]
    fn the_grid_is_every_combination_in_order() {
        let g = cells(&tune_args("--sampler cas,als --levels 4,8 --seeds 0,1,2"), "toy2d", None)
            .unwrap();
        assert_eq!(g.len(), 2 * 8 * 3 + 2 * 3);
        assert_eq!((g[0].sampler.as_str(), g[0].levels, g[0].param.as_str()), ("cas", 4, "eps_c"));
        assert_eq!((g[0].value.as_str(), g[1].seed, g[3].value.as_str()), ("1", 1, "1.25"));
        assert_eq!(g[23].value, "inf");
        let als = &g[2 * 8 * 3];
        assert_eq!(
            (als.sampler.as_str(), als.param.as_str(), als.value.as_str()),
            ("als", "technique4", "")
        );
        let lists = cells(
            &tune_args("--eps-c 1,2 --eps-b logspace:1e-4:1e-2:3 --levels 8 --seeds 0"),
            "toy2d",
            None,
        )
        .unwrap();
        let values: Vec<&str> = lists.iter().map(|c| c.value.as_str()).collect();
        assert_eq!(values, ["1", "2", "0.0001", "0.001", "0.01"]);
        assert!(cells(&tune_args("--sampler als --eps-c 2"), "toy2d", None).is_err());
        assert!(cells(&tune_args("--levels 1"), "toy2d", None).is_err());
    }

    fn row(levels: usize, value: &str, seed: u64, status: CellStatus, w2: Option<f64>) -> Row {
        let config = CellConfig {
            version: String::new(),
            data: "toy2d".into(),
            score: None,
            runtime: None,
            tau: None,
            sampler: "cas".into(),
            sigma_max: "auto".into(),
            sigma_min: 0.01,
            levels,
            param: "eps_c".into(),
            value: value.into(),
            steps_per_level: None,
            n: 10,
            seed,
            init: "normal".into(),
            options: String::new(),
        };
        Row { mode_tv: w2, sliced_w2: w2, ..Row::new(config, status) }
    }

    /// Each (sampler, N, parameter, value) group gets the mean and sample standard deviation over
    /// its seeds; a group in which a seed did not run is left out.
    #[test]
    fn aggregation_is_over_complete_groups_of_seeds() {
        let rows = [
            row(4, "1", 0, CellStatus::Ok, Some(1.0)),
            row(4, "1", 1, CellStatus::Ok, Some(3.0)),
            row(4, "2", 0, CellStatus::Ok, Some(5.0)),
            row(4, "2", 1, CellStatus::OutOfBounds, None),
            row(8, "1", 0, CellStatus::Ok, Some(7.0)),
        ];
        let agg = aggregate(&rows, MetricKind::SlicedW2);
        let got: Vec<(usize, &str, f64, f64, usize)> =
            agg.iter().map(|g| (g.levels, g.value.as_str(), g.mean, g.sd, g.seeds)).collect();
        assert_eq!(got, [(4, "1", 2.0, 2.0f64.sqrt(), 2), (8, "1", 7.0, 0.0, 1)]);
    }
}
