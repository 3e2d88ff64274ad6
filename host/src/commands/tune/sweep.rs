//! The sweep's rows: how each cell ended, running a cell, and `sweep.json`/`sweep.csv`,
//! rebuilt from the record ([`super::record`]) after every cell.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anneal_core::Plan;
use serde::{Deserialize, Serialize};

use super::grid::{CellConfig, cell_config};
use super::record::Record;
use crate::cli::TuneArgs;
use crate::error::{CoreError, UsageError};
use crate::io::data::Dataset;
use crate::io::write::write_atomic;
use crate::score::network::Network;

/// How a cell ended (`ok`, `out_of_bounds`, `unstable`, `error` in the files).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CellStatus {
    /// Sampled; the metrics are filled in.
    Ok,
    /// η outside [1 − γ, 1] at some step (CAS with ε_b).
    OutOfBounds,
    /// A Langevin step above its stability bound.
    Unstable,
    /// Any other failure.
    Error,
}

impl CellStatus {
    /// The status of a cell whose configuration was refused: by the core's error variant.
    pub fn of_refusal(e: &UsageError) -> CellStatus {
        match e.core() {
            Some(CoreError::EtaOutOfBounds { .. }) => CellStatus::OutOfBounds,
            Some(CoreError::StepUnstable { .. }) => CellStatus::Unstable,
            _ => CellStatus::Error,
        }
    }

    /// The name written in the files.
    pub fn as_str(self) -> &'static str {
        match self {
            CellStatus::Ok => "ok",
            CellStatus::OutOfBounds => "out_of_bounds",
            CellStatus::Unstable => "unstable",
            CellStatus::Error => "error",
        }
    }
}

/// One row of sweep.csv / sweep.json.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    /// The cell.
    pub config: CellConfig,
    /// How the cell ended.
    pub status: CellStatus,
    /// The reason, for cells that did not run.
    pub message: String,
    /// Total variation between the mode weights and the true weights.
    pub mode_tv: Option<f64>,
    /// Sliced W2 to exact samples.
    pub sliced_w2: Option<f64>,
    /// Sliced W2 between two exact sample sets of the same size.
    pub noise_floor: Option<f64>,
    /// Mean distance to the nearest component.
    pub nearest: Option<f64>,
    /// Fréchet distance to the data (digit-classifier features on digits, else pixel space).
    #[serde(default)]
    pub fd: Option<f64>,
    /// Sampling seconds.
    pub seconds: Option<f64>,
    /// σ_eff/σ_i per traced level (the consistency trace).
    pub trace: Option<Vec<f64>>,
    /// Levels (1-based) of `trace`.
    pub trace_levels: Option<Vec<usize>>,
    /// Every metric of `anneal sample` for this cell (metrics.json).
    pub metrics: Option<crate::report::metrics::Metrics>,
    /// The largest σ_eff/σ_i Proposition 3 predicts for the cell (Langevin-step samplers).
    #[serde(default)]
    pub predicted_ratio: Option<f64>,
}

impl Row {
    /// A row of `config` with `status` and no message or metrics yet.
    pub fn new(config: CellConfig, status: CellStatus) -> Row {
        Row {
            config,
            status,
            message: String::new(),
            mode_tv: None,
            sliced_w2: None,
            noise_floor: None,
            nearest: None,
            fd: None,
            seconds: None,
            trace: None,
            trace_levels: None,
            metrics: None,
            predicted_ratio: None,
        }
    }
}

#[derive(Serialize, Deserialize, Default)]
/// The contents of sweep.json.
pub struct Sweep {
    /// The finished cells, in grid order.
    pub rows: Vec<Row>,
}

pub fn key(c: &CellConfig) -> String {
    serde_json::to_string(c).unwrap_or_default()
}

/// sweep.csv: one row per cell, quoted where a field needs it (the `csv` crate).
pub fn csv(rows: &[Row]) -> anyhow::Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "data",
        "sampler",
        "levels",
        "param",
        "value",
        "seed",
        "n",
        "status",
        "mode_tv",
        "sliced_w2",
        "noise_floor",
        "nearest",
        "fd",
        "seconds",
        "predicted_ratio",
        "message",
    ])?;
    let f = |v: Option<f64>| v.map_or(String::new(), |x| x.to_string());
    for r in rows {
        let c = &r.config;
        w.write_record([
            c.data.clone(),
            c.sampler.clone(),
            c.levels.to_string(),
            c.param.clone(),
            c.value.clone(),
            c.seed.to_string(),
            c.n.to_string(),
            r.status.as_str().to_string(),
            f(r.mode_tv),
            f(r.sliced_w2),
            f(r.noise_floor),
            f(r.nearest),
            f(r.fd),
            f(r.seconds),
            f(r.predicted_ratio),
            r.message.clone(),
        ])?;
    }
    Ok(w.into_inner()?)
}

/// Rebuilds sweep.json and sweep.csv from the record: the grid's finished cells in grid order,
/// then the cells of earlier grids in the order they finished. Returns the grid's.
pub fn save(dir: &Path, grid: &[CellConfig], record: &Record) -> anyhow::Result<Vec<Row>> {
    let ours: Vec<Row> = grid.iter().filter_map(|c| record.get(&key(c)).cloned()).collect();
    let keys: HashSet<String> = grid.iter().map(key).collect();
    let others = record.rows().iter().filter(|r| !keys.contains(&key(&r.config))).cloned();
    let sweep = Sweep { rows: ours.iter().cloned().chain(others).collect() };
    write_atomic(dir, "sweep.json", serde_json::to_string_pretty(&sweep)?.as_bytes())?;
    crate::io::write::crash_point("wrote:sweep.json");
    write_atomic(dir, "sweep.csv", &csv(&sweep.rows)?)?;
    Ok(ours)
}

/// Runs one cell.
pub fn run_cell(
    a: &TuneArgs,
    c: &CellConfig,
    data: &Dataset,
    network: Option<&Arc<Network>>,
) -> Row {
    let mut row = Row::new(c.clone(), CellStatus::Ok);
    let p = match cell_config(a, c, data, network) {
        Ok(p) => p,
        Err(e) => {
            row.status = CellStatus::of_refusal(&e);
            row.message = e.to_string();
            return row;
        }
    };
    if let Some(f) = p.record.foresight.filter(|f| f.max_ratio > f.threshold) {
        eprintln!(
            "warning: cell {} {} N = {} {} = {} seed {}: Proposition 3 predicts σ_eff/σ_i = {:.4} \
             at level {} (stable steps, inconsistent plan)",
            c.data, c.sampler, c.levels, c.param, c.value, c.seed, f.max_ratio, f.level
        );
    }
    let start = Instant::now();
    let hidden = indicatif::ProgressBar::hidden();
    match crate::exec::cpu::sample(&p, &hidden, true) {
        Ok((samples, trace)) => {
            let seconds = start.elapsed().as_secs_f64();
            let mut m = crate::report::metrics::compute(
                &p.truth(),
                &samples,
                p.seed,
                seconds,
                p.plan.len(),
            );
            m.predicted_max_ratio = p.record.foresight.map(|f| f.max_ratio);
            row.predicted_ratio = m.predicted_max_ratio;
            row.mode_tv = Some(m.mode_tv);
            row.sliced_w2 = Some(m.sliced_wasserstein.value);
            row.noise_floor = Some(m.sliced_wasserstein.noise_floor);
            row.nearest = Some(m.mean_nearest_component_distance);
            let c = &m.data_comparison;
            row.fd = c.frechet_features.or(c.frechet_pixel);
            row.seconds = Some(seconds);
            if let Some(t) = trace {
                row.trace = Some(t.sigma_eff.iter().zip(&t.sigma).map(|(e, s)| e / s).collect());
                row.trace_levels = Some(t.level);
            }
            m.split_components(None);
            row.metrics = Some(m);
        }
        Err(e) => {
            row.status = CellStatus::Error;
            row.message = e.to_string();
        }
    }
    row
}
