//! `anneal tune`: the CAS note's Figure 1 as a command. A grid of levels × (εc | ε_b | ε) × seeds,
//! each cell an `anneal sample` run with its metrics; `sweep.csv` and `sweep.json` are rewritten
//! (atomically) after every cell, so an interrupted sweep resumes: cells whose full configuration
//! is already in `sweep.json` are not recomputed.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use anneal_core::Plan;

use crate::cli::{LevelFlags, MetricKind, SamplerArg, StepFlags, TuneArgs};
use crate::config::{DEFAULT_TECHNIQUE2_C, RunConfig, RunSpec};
use crate::error::{CoreError, UsageError};
use crate::io::data::Dataset;
use crate::io::write::write_atomic;

/// Parses a list: `a,b,c` (numbers or `inf`) or `logspace:LO:HI:COUNT`.
pub fn parse_list(flag: &str, s: &str) -> Result<Vec<f64>, UsageError> {
    let bad = |why: &str| {
        UsageError::flag(format!("--{flag} = {s}: {why} (use a,b,c or logspace:LO:HI:COUNT)"))
    };
    if let Some(rest) = s.strip_prefix("logspace:") {
        let parts: Vec<&str> = rest.split(':').collect();
        let [lo, hi, n] = parts[..] else { return Err(bad("logspace needs LO:HI:COUNT")) };
        let (lo, hi): (f64, f64) = (
            lo.parse().map_err(|_| bad("LO is not a number"))?,
            hi.parse().map_err(|_| bad("HI is not a number"))?,
        );
        let n: usize = n.parse().map_err(|_| bad("COUNT is not a whole number"))?;
        if !(lo > 0.0 && hi > lo && lo.is_finite() && hi.is_finite() && n >= 2) {
            return Err(bad("needs 0 < LO < HI and COUNT ≥ 2"));
        }
        return Ok((0..n).map(|i| lo * (hi / lo).powf(i as f64 / (n - 1) as f64)).collect());
    }
    s.split(',')
        .map(|v| v.trim().parse::<f64>().map_err(|_| bad(&format!("'{v}' is not a number"))))
        .collect()
}

/// Everything that defines a cell; its JSON is the cell's key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CellConfig {
    /// anneal's version.
    pub version: String,
    /// --data.
    pub data: String,
    /// --tau as given (null: the dataset's default).
    pub tau: Option<f64>,
    /// --sampler.
    pub sampler: String,
    /// --sigma-max.
    pub sigma_max: String,
    /// --sigma-min.
    pub sigma_min: f64,
    /// N.
    pub levels: usize,
    /// `eps_c`, `eps_b` or `eps` (`eps` absent: Technique 4).
    pub param: String,
    /// Its value as written (`inf` allowed).
    pub value: String,
    /// --steps-per-level.
    pub steps_per_level: Option<u32>,
    /// --n.
    pub n: usize,
    /// --seed.
    pub seed: u64,
    /// --init.
    pub init: String,
}

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
    /// Sampling seconds.
    pub seconds: Option<f64>,
    /// σ_eff/σ_i per traced level (the consistency trace).
    pub trace: Option<Vec<f64>>,
    /// Levels (1-based) of `trace`.
    pub trace_levels: Option<Vec<usize>>,
    /// Every metric of `anneal sample` for this cell (metrics.json).
    pub metrics: Option<crate::report::metrics::Metrics>,
}

#[derive(Serialize, Deserialize, Default)]
struct Sweep {
    rows: Vec<Row>,
}

fn key(c: &CellConfig) -> String {
    serde_json::to_string(c).unwrap_or_default()
}

fn csv(rows: &[Row]) -> String {
    let mut s = String::from(
        "data,sampler,levels,param,value,seed,n,status,mode_tv,sliced_w2,noise_floor,nearest,seconds,message\n",
    );
    let f = |v: Option<f64>| v.map_or(String::new(), |x| x.to_string());
    for r in rows {
        let c = &r.config;
        s.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{},\"{}\"\n",
            c.data,
            c.sampler,
            c.levels,
            c.param,
            c.value,
            c.seed,
            c.n,
            r.status.as_str(),
            f(r.mode_tv),
            f(r.sliced_w2),
            f(r.noise_floor),
            f(r.nearest),
            f(r.seconds),
            r.message.replace('"', "'")
        ));
    }
    s
}

/// The distinct strings of `items`, in first-seen order.
fn unique<'a>(items: impl Iterator<Item = &'a String>) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    for x in items {
        if !v.contains(x) {
            v.push(x.clone());
        }
    }
    v
}

/// The finished rows in grid order, written to sweep.json and sweep.csv.
fn save(dir: &Path, grid: &[CellConfig], done: &HashMap<String, Row>) -> anyhow::Result<Vec<Row>> {
    let sweep = Sweep { rows: grid.iter().filter_map(|c| done.get(&key(c)).cloned()).collect() };
    write_atomic(dir, "sweep.json", serde_json::to_string_pretty(&sweep)?.as_bytes())?;
    write_atomic(dir, "sweep.csv", csv(&sweep.rows).as_bytes())?;
    Ok(sweep.rows)
}

/// Runs one cell's configuration: the sweep's shared flags with the cell's levels, step size and
/// seed.
fn cell_config(a: &TuneArgs, c: &CellConfig, data: &Dataset) -> Result<RunConfig, UsageError> {
    let value: f64 = c.value.parse().unwrap_or(f64::NAN);
    let levels = LevelFlags { levels: Some(c.levels), technique2: false, c: DEFAULT_TECHNIQUE2_C };
    let step = StepFlags {
        eps_c: (c.param == "eps_c").then_some(value),
        eps_b: (c.param == "eps_b").then_some(value),
        eps: (c.param == "eps").then_some(value),
    };
    let sampler = <SamplerArg as clap::ValueEnum>::from_str(&c.sampler, true)
        .map_err(|_| UsageError::flag(format!("--sampler {} is not a sampler", c.sampler)))?;
    let spec = RunSpec {
        tau: a.data.tau,
        sampler,
        sigma: &a.sigma,
        levels: &levels,
        step: &step,
        options: &a.options,
        run: &a.run,
        n: a.n,
        seed: c.seed,
        flags: &serde_json::Value::Null,
    };
    RunConfig::new(&spec, data.clone())
}

/// Runs one cell.
fn run_cell(a: &TuneArgs, c: &CellConfig, data: &Dataset) -> Row {
    let mut row = Row {
        config: c.clone(),
        status: CellStatus::Ok,
        message: String::new(),
        mode_tv: None,
        sliced_w2: None,
        noise_floor: None,
        nearest: None,
        seconds: None,
        trace: None,
        trace_levels: None,
        metrics: None,
    };
    let p = match cell_config(a, c, data) {
        Ok(p) => p,
        Err(e) => {
            row.status = CellStatus::of_refusal(&e);
            row.message = e.to_string();
            return row;
        }
    };
    let start = Instant::now();
    let hidden = indicatif::ProgressBar::hidden();
    match crate::exec::cpu::sample(&p, p.n, p.batch, p.seed, p.init, &hidden, true) {
        Ok((samples, trace)) => {
            let seconds = start.elapsed().as_secs_f64();
            let m = crate::report::metrics::compute(
                &p.truth(),
                &samples,
                p.seed,
                seconds,
                p.plan.len(),
            );
            row.mode_tv = Some(
                m.mode_weights.iter().zip(&m.true_weights).map(|(x, y)| (x - y).abs()).sum::<f64>()
                    / 2.0,
            );
            row.sliced_w2 = Some(m.sliced_wasserstein.value);
            row.noise_floor = Some(m.sliced_wasserstein.noise_floor);
            row.nearest = Some(m.mean_nearest_component_distance);
            row.seconds = Some(seconds);
            if let Some(t) = trace {
                row.trace = Some(t.sigma_eff.iter().zip(&t.sigma).map(|(e, s)| e / s).collect());
                row.trace_levels = Some(t.level);
            }
            row.metrics = Some(m);
        }
        Err(e) => {
            row.status = CellStatus::Error;
            row.message = e.to_string();
        }
    }
    row
}

/// The cells of the grid, in order.
fn cells(a: &TuneArgs) -> Result<Vec<CellConfig>, UsageError> {
    let levels: Vec<usize> = parse_list("levels", &a.levels)?
        .into_iter()
        .map(|v| {
            if v >= 2.0 && v.fract() == 0.0 && v < 1e9 {
                Ok(v as usize)
            } else {
                Err(UsageError::flag(format!("--levels: {v} is not a whole number ≥ 2")))
            }
        })
        .collect::<Result<_, _>>()?;
    let seeds: Vec<u64> = parse_list("seeds", &a.seeds)?
        .into_iter()
        .map(|v| {
            if v >= 0.0 && v.fract() == 0.0 {
                Ok(v as u64)
            } else {
                Err(UsageError::flag(format!("--seeds: {v} is not a whole number ≥ 0")))
            }
        })
        .collect::<Result<_, _>>()?;
    // Values as written in the cell key and the run: short ones as they are, others to four
    // significant digits (the run uses exactly the printed value).
    let fmt = |v: f64| {
        let plain = format!("{v}");
        if v.is_infinite() {
            "inf".to_string()
        } else if plain.len() <= 7 {
            plain
        } else {
            format!("{v:.3e}")
        }
    };
    if (a.eps_c.is_some() || a.eps_b.is_some()) && !a.sampler.contains(&SamplerArg::Cas) {
        return Err(UsageError::flag(
            "--eps-c/--eps-b apply to --sampler cas; use --eps for the others",
        ));
    }
    let mut out = Vec::new();
    for &kind in &a.sampler {
        let mut params: Vec<(&str, f64)> = Vec::new();
        if kind == SamplerArg::Cas {
            let eps_c = match (&a.eps_c, &a.eps_b) {
                (None, None) => Some("1,1.25,1.5,2,3,5,10,inf".to_string()),
                (c, _) => c.clone(),
            };
            if let Some(l) = eps_c {
                params.extend(parse_list("eps-c", &l)?.into_iter().map(|v| ("eps_c", v)));
            }
            if let Some(l) = &a.eps_b {
                params.extend(parse_list("eps-b", l)?.into_iter().map(|v| ("eps_b", v)));
            }
        } else {
            match &a.eps {
                Some(l) => params.extend(parse_list("eps", l)?.into_iter().map(|v| ("eps", v))),
                None => params.push(("technique4", f64::NAN)),
            }
        }
        let name = clap::ValueEnum::to_possible_value(&kind)
            .map_or("cas".to_string(), |v| v.get_name().to_string());
        for &n in &levels {
            for &(param, value) in &params {
                for &seed in &seeds {
                    out.push(CellConfig {
                        version: env!("CARGO_PKG_VERSION").into(),
                        data: a.data.data.clone(),
                        tau: a.data.tau,
                        sampler: name.clone(),
                        sigma_max: a.sigma.sigma_max.clone(),
                        sigma_min: a.sigma.sigma_min,
                        levels: n,
                        param: param.into(),
                        value: if value.is_nan() { String::new() } else { fmt(value) },
                        steps_per_level: a.options.steps_per_level,
                        n: a.n,
                        seed,
                        init: a.run.init.name().to_string(),
                    });
                }
            }
        }
    }
    Ok(out)
}

/// A (sampler, levels, parameter, value) group's quality over its seeds.
struct Agg {
    sampler: String,
    levels: usize,
    param: String,
    value: String,
    mean: f64,
    sd: f64,
    seeds: usize,
}

/// Mean and standard deviation over seeds of the chosen quality of each (sampler, levels, param,
/// value),
/// for groups in which every seed ran.
fn aggregate(rows: &[Row], metric: MetricKind) -> Vec<Agg> {
    let mut groups: Vec<(Agg, Vec<Option<f64>>)> = Vec::new();
    for r in rows {
        let q = match metric {
            MetricKind::SlicedW2 => r.sliced_w2,
            MetricKind::ModeTv => r.mode_tv,
        };
        let v = if r.status == CellStatus::Ok { q } else { None };
        let c = &r.config;
        match groups.iter_mut().find(|(g, _)| {
            g.sampler == c.sampler
                && g.levels == c.levels
                && g.param == c.param
                && g.value == c.value
        }) {
            Some((_, vs)) => vs.push(v),
            None => groups.push((
                Agg {
                    sampler: c.sampler.clone(),
                    levels: c.levels,
                    param: c.param.clone(),
                    value: c.value.clone(),
                    mean: 0.0,
                    sd: 0.0,
                    seeds: 0,
                },
                vec![v],
            )),
        }
    }
    groups
        .into_iter()
        .filter_map(|(mut g, vs)| {
            let vals: Vec<f64> = vs.into_iter().collect::<Option<_>>()?;
            let n = vals.len() as f64;
            g.mean = vals.iter().sum::<f64>() / n;
            g.sd = (vals.iter().map(|x| (x - g.mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0))
                .sqrt();
            g.seeds = vals.len();
            Some(g)
        })
        .collect()
}

/// Runs `anneal tune`.
pub fn run(a: &TuneArgs) -> anyhow::Result<()> {
    let grid = cells(a)?;
    let data = crate::config::load_data(&a.data)?;
    if a.n == 0 || a.run.batch == 0 {
        return Err(UsageError::flag("--n and --batch must be ≥ 1").into());
    }
    // Flags shared by every cell (data, σ, τ, …) are checked once on the first cell: only the
    // per-cell bounds (η, Langevin step) become rows instead of an exit.
    if let Some(first) = grid.first()
        && let Err(e) = cell_config(a, first, &data)
        && CellStatus::of_refusal(&e) == CellStatus::Error
    {
        return Err(e.into());
    }
    std::fs::create_dir_all(&a.out)?;
    let previous: Sweep = std::fs::read(a.out.join("sweep.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let mut done: HashMap<String, Row> =
        previous.rows.into_iter().map(|r| (key(&r.config), r)).collect();
    let todo = grid.iter().filter(|c| !done.contains_key(&key(c))).count();
    println!(
        "{} cells: {} already in {}, {todo} to run",
        grid.len(),
        grid.len() - todo,
        a.out.display()
    );
    let progress = crate::report::progress::bar(todo as u64, "cells");
    let pool = rayon::ThreadPoolBuilder::new().num_threads(a.run.threads).build()?;
    let mut computed = 0usize;
    for c in &grid {
        if done.contains_key(&key(c)) {
            continue;
        }
        let row = pool.install(|| run_cell(a, c, &data));
        done.insert(key(c), row);
        computed += 1;
        progress.inc(1);
        save(&a.out, &grid, &done)?;
    }
    progress.finish_and_clear();
    let rows = save(&a.out, &grid, &done)?;

    // Figures: quality (mean over seeds) against the parameter, one line per (sampler, N); values
    // that did not run (out of bounds, unstable) are marked on the x axis, not left as gaps.
    let agg = aggregate(&rows, a.metric);
    let metric_name = match a.metric {
        MetricKind::SlicedW2 => "sliced W2",
        MetricKind::ModeTv => "mode weights TV",
    };
    let groups: Vec<(String, usize)> = {
        let mut g: Vec<(String, usize)> = Vec::new();
        for r in &rows {
            let k = (r.config.sampler.clone(), r.config.levels);
            if !g.contains(&k) {
                g.push(k);
            }
        }
        g
    };
    let label = |sampler: &str, n: usize| {
        if a.sampler.len() > 1 { format!("{sampler} N={n}") } else { format!("N={n}") }
    };
    for (param, file, x_label) in [
        ("eps_c", "fig_eps_c.png", "eps_c"),
        ("eps_b", "fig_eps_b.png", "eps_b"),
        ("eps", "fig_eps.png", "eps"),
    ] {
        if !rows.iter().any(|r| r.config.param == param) {
            continue;
        }
        let values =
            unique(rows.iter().filter(|r| r.config.param == param).map(|r| &r.config.value));
        let series: Vec<crate::report::plot::Series> = groups
            .iter()
            .filter(|(smp, n)| {
                rows.iter().any(|r| {
                    &r.config.sampler == smp && r.config.levels == *n && r.config.param == param
                })
            })
            .map(|(smp, n)| {
                let mut points = Vec::new();
                let mut flagged = Vec::new();
                for v in &values {
                    let x: f64 = v.parse().unwrap_or(f64::NAN);
                    let g = agg.iter().find(|g| {
                        &g.sampler == smp && g.levels == *n && g.param == param && &g.value == v
                    });
                    points.push((x, g.map_or(f64::NAN, |g| g.mean)));
                    let not_run = rows.iter().any(|r| {
                        &r.config.sampler == smp
                            && r.config.levels == *n
                            && r.config.param == param
                            && &r.config.value == v
                            && r.status != CellStatus::Ok
                    });
                    if not_run {
                        flagged.push(x);
                    }
                }
                crate::report::plot::Series { label: label(smp, *n), points, flagged }
            })
            .collect();
        let png = crate::report::plot::line_chart(&series, true, x_label, metric_name)?;
        write_atomic(&a.out, file, &png)?;
    }
    // The consistency trace of each (sampler, N)'s best cell (its first seed): σ_eff/σ_i against
    // i/N — CAS and ALS side by side when both ran.
    let mut traces = Vec::new();
    for (smp, n) in &groups {
        let best = agg
            .iter()
            .filter(|g| &g.sampler == smp && g.levels == *n)
            .min_by(|x, y| x.mean.total_cmp(&y.mean));
        let row = best.and_then(|b| {
            rows.iter().find(|r| {
                &r.config.sampler == smp
                    && r.config.levels == *n
                    && r.config.param == b.param
                    && r.config.value == b.value
            })
        });
        if let Some(r) = row
            && let (Some(t), Some(l)) = (&r.trace, &r.trace_levels)
        {
            traces.push(crate::report::plot::Series {
                label: label(smp, *n),
                points: l.iter().zip(t).map(|(&i, &v)| (i as f64 / *n as f64, v)).collect(),
                flagged: Vec::new(),
            });
        }
    }
    if !traces.is_empty() {
        write_atomic(
            &a.out,
            "trace.png",
            &crate::report::plot::line_chart(&traces, false, "level i/N", "sigma_eff/sigma_i")?,
        )?;
    }
    // Summary: the best value per sampler, N and parameterisation, with its spread over seeds,
    // and the values that did not run.
    #[derive(Serialize)]
    struct Best {
        sampler: String,
        levels: usize,
        param: String,
        /// None when no value ran for every seed.
        best_value: Option<String>,
        metric: &'static str,
        mean: Option<f64>,
        sd: Option<f64>,
        seeds: usize,
        not_run_values: Vec<String>,
    }
    let mut summary = Vec::new();
    for (smp, n) in &groups {
        for param in ["eps_c", "eps_b", "eps", "technique4"] {
            let best = agg
                .iter()
                .filter(|g| &g.sampler == smp && g.levels == *n && g.param == param)
                .min_by(|x, y| x.mean.total_cmp(&y.mean));
            let not_run = unique(
                rows.iter()
                    .filter(|r| {
                        &r.config.sampler == smp
                            && r.config.levels == *n
                            && r.config.param == param
                            && r.status != CellStatus::Ok
                    })
                    .map(|r| &r.config.value),
            );
            if best.is_none() && not_run.is_empty() {
                continue;
            }
            summary.push(Best {
                sampler: smp.clone(),
                levels: *n,
                param: param.into(),
                best_value: best.map(|b| b.value.clone()),
                metric: metric_name,
                mean: best.map(|b| b.mean),
                sd: best.map(|b| b.sd),
                seeds: best.map_or(0, |b| b.seeds),
                not_run_values: not_run,
            });
        }
    }
    write_atomic(&a.out, "summary.json", serde_json::to_string_pretty(&summary)?.as_bytes())?;
    println!("computed {computed} cells, reused {}", rows.len() - computed);
    println!(
        "{:>12} {:>6} {:>10} {:>10} {:>22} values that did not run",
        "sampler",
        "N",
        "param",
        "best",
        format!("{metric_name} (sd)")
    );
    for b in &summary {
        let q = match (b.mean, b.sd) {
            (Some(m), Some(sd)) => format!("{m:.4} ({sd:.4})"),
            _ => "none ran".into(),
        };
        println!(
            "{:>12} {:>6} {:>10} {:>10} {:>22} {}",
            b.sampler,
            b.levels,
            b.param,
            b.best_value.as_deref().unwrap_or("-"),
            q,
            b.not_run_values.join(",")
        );
    }
    let bad: Vec<&Row> = rows.iter().filter(|r| r.status != CellStatus::Ok).collect();
    for r in bad.iter().take(5) {
        println!(
            "N = {}, {} = {}: {}: {}",
            r.config.levels,
            r.config.param,
            r.config.value,
            r.status.as_str(),
            r.message
        );
    }
    if bad.len() > 5 {
        println!("… and {} more cells that did not run (see sweep.csv)", bad.len() - 5);
    }
    println!(
        "wrote {}/{{sweep.csv, sweep.json, summary.json, fig_*.png, trace.png}}",
        a.out.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

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
        let g = cells(&tune_args("--sampler cas,als --levels 4,8 --seeds 0,1,2")).unwrap();
        assert_eq!(g.len(), 2 * 8 * 3 + 2 * 3);
        assert_eq!((g[0].sampler.as_str(), g[0].levels, g[0].param.as_str()), ("cas", 4, "eps_c"));
        assert_eq!((g[0].value.as_str(), g[1].seed, g[3].value.as_str()), ("1", 1, "1.25"));
        assert_eq!(g[23].value, "inf");
        let als = &g[2 * 8 * 3];
        assert_eq!(
            (als.sampler.as_str(), als.param.as_str(), als.value.as_str()),
            ("als", "technique4", "")
        );
        let lists =
            cells(&tune_args("--eps-c 1,2 --eps-b logspace:1e-4:1e-2:3 --levels 8 --seeds 0"))
                .unwrap();
        let values: Vec<&str> = lists.iter().map(|c| c.value.as_str()).collect();
        assert_eq!(values, ["1", "2", "0.0001", "0.001", "0.01"]);
        assert!(cells(&tune_args("--sampler als --eps-c 2")).is_err());
        assert!(cells(&tune_args("--levels 1")).is_err());
    }

    fn row(levels: usize, value: &str, seed: u64, status: CellStatus, w2: Option<f64>) -> Row {
        let config = CellConfig {
            version: String::new(),
            data: "toy2d".into(),
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
        };
        Row {
            config,
            status,
            message: String::new(),
            mode_tv: w2,
            sliced_w2: w2,
            noise_floor: None,
            nearest: None,
            seconds: None,
            trace: None,
            trace_levels: None,
            metrics: None,
        }
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
