//! What a sweep reports: each group's quality over its seeds, the figures (quality against the
//! parameter, one line per sampler and N; the consistency trace of each best cell), and
//! `summary.json` with the table printed at the end.

use serde::Serialize;

use super::sweep::{CellStatus, Row};
use crate::cli::{MetricKind, TuneArgs};
use crate::io::write::write_atomic;

/// The distinct strings of `items`, in first-seen order.
pub fn unique<'a>(items: impl Iterator<Item = &'a String>) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    for x in items {
        if !v.contains(x) {
            v.push(x.clone());
        }
    }
    v
}

/// A (sampler, levels, parameter, value) group's quality over its seeds.
pub struct Agg {
    /// The sampler.
    pub sampler: String,
    /// N.
    pub levels: usize,
    /// `eps_c`, `eps_b`, `eps` or `technique4`.
    pub param: String,
    /// The value as written.
    pub value: String,
    /// Mean of the quality over the seeds.
    pub mean: f64,
    /// Its sample standard deviation (0 for one seed).
    pub sd: f64,
    /// Seeds.
    pub seeds: usize,
}

/// Mean and standard deviation over seeds of the chosen quality of each (sampler, levels, param,
/// value),
/// for groups in which every seed ran.
pub fn aggregate(rows: &[Row], metric: MetricKind) -> Vec<Agg> {
    let mut groups: Vec<(Agg, Vec<Option<f64>>)> = Vec::new();
    for r in rows {
        let q = match metric {
            MetricKind::SlicedW2 => r.sliced_w2,
            MetricKind::ModeTv => r.mode_tv,
            MetricKind::Fd => r.fd,
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

#[derive(Serialize)]
/// The best value of one (sampler, N, parameterisation), and the values that did not run.
pub struct Best {
    /// The sampler.
    pub sampler: String,
    /// N.
    pub levels: usize,
    /// The parameterisation.
    pub param: String,
    /// None when no value ran for every seed.
    pub best_value: Option<String>,
    /// The quality's name.
    pub metric: &'static str,
    /// Its mean over the seeds.
    pub mean: Option<f64>,
    /// Its standard deviation.
    pub sd: Option<f64>,
    /// Seeds.
    pub seeds: usize,
    /// The values that did not run for some seed.
    pub not_run_values: Vec<String>,
}

/// The (sampler, N) pairs of the rows, in first-seen order.
fn groups(rows: &[Row]) -> Vec<(String, usize)> {
    let mut g: Vec<(String, usize)> = Vec::new();
    for r in rows {
        let k = (r.config.sampler.clone(), r.config.levels);
        if !g.contains(&k) {
            g.push(k);
        }
    }
    g
}

/// A line's label: the sampler too when the sweep has several.
fn label(a: &TuneArgs, sampler: &str, n: usize) -> String {
    if a.sampler.len() > 1 { format!("{sampler} N={n}") } else { format!("N={n}") }
}

/// The quality's name in figures and tables.
fn metric_name(m: MetricKind) -> &'static str {
    match m {
        MetricKind::SlicedW2 => "sliced W2",
        MetricKind::ModeTv => "mode weights TV",
        MetricKind::Fd => "Fréchet distance",
    }
}

/// Writes the figures and `summary.json` of the finished `rows` and prints the summary.
pub fn write(a: &TuneArgs, rows: &[Row], computed: usize, data_name: &str) -> anyhow::Result<()> {
    let agg = aggregate(rows, a.metric);
    let groups = groups(rows);
    parameter_figures(a, rows, &agg, &groups, data_name)?;
    trace_figure(a, rows, &agg, &groups)?;
    let summary = summary(a, rows, &agg, &groups);
    print(a, rows, &summary, computed)
}

/// Quality (mean over seeds) against the parameter, one line per (sampler, N); values that did
/// not run (out of bounds, unstable) are marked on the x axis, not left as gaps.
fn parameter_figures(
    a: &TuneArgs,
    rows: &[Row],
    agg: &[Agg],
    groups: &[(String, usize)],
    data_name: &str,
) -> anyhow::Result<()> {
    let metric_name = metric_name(a.metric);
    let data_name = match &a.score.score {
        Some(m) => format!("{data_name}, learned score {}", m.display()),
        None => data_name.to_string(),
    };
    for (param, file, x_label) in [
        ("eps_c", "fig_eps_c.png", "εc"),
        ("eps_b", "fig_eps_b.png", "ε_b"),
        ("eps", "fig_eps.png", "ε (NCSNv2 convention)"),
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
                let mut spread = Vec::new();
                let mut flagged = Vec::new();
                for v in &values {
                    let x: f64 = v.parse().unwrap_or(f64::NAN);
                    let g = agg.iter().find(|g| {
                        &g.sampler == smp && g.levels == *n && g.param == param && &g.value == v
                    });
                    points.push((x, g.map_or(f64::NAN, |g| g.mean)));
                    spread.push(g.map_or(0.0, |g| g.sd));
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
                crate::report::plot::Series { label: label(a, smp, *n), points, spread, flagged }
            })
            .collect();
        let seeds = agg.iter().map(|g| g.seeds).max().unwrap_or(0);
        let title = format!(
            "{metric_name} against {x_label} on {} (mean of {seeds} seeds, bars ±1 sd)",
            data_name
        );
        let chart = crate::report::plot::Chart {
            title: &title,
            x_label,
            y_label: metric_name,
            x_log: true,
            legend_left: false,
        };
        let png = crate::report::plot::line_chart(&chart, &series)?;
        write_atomic(&a.out, file, &png)?;
    }
    Ok(())
}

/// The consistency trace of each (sampler, N)'s best cell (its first seed): σ_eff/σ_i against
/// i/N — CAS and ALS side by side when both ran.
fn trace_figure(
    a: &TuneArgs,
    rows: &[Row],
    agg: &[Agg],
    groups: &[(String, usize)],
) -> anyhow::Result<()> {
    let mut traces = Vec::new();
    for (smp, n) in groups {
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
                label: label(a, smp, *n),
                points: l.iter().zip(t).map(|(&i, &v)| (i as f64 / *n as f64, v)).collect(),
                spread: Vec::new(),
                flagged: Vec::new(),
            });
        }
    }
    if !traces.is_empty() {
        write_atomic(
            &a.out,
            "trace.png",
            &crate::report::plot::line_chart(
                &crate::report::plot::Chart {
                    title: "consistency trace of each best cell (1 = consistent)",
                    x_label: "level i/N",
                    y_label: "σ_eff/σ_i",
                    x_log: false,
                    legend_left: true,
                },
                &traces,
            )?,
        )?;
    }
    Ok(())
}

/// The best value per sampler, N and parameterisation, with its spread over seeds, and the
/// values that did not run.
fn summary(a: &TuneArgs, rows: &[Row], agg: &[Agg], groups: &[(String, usize)]) -> Vec<Best> {
    let metric_name = metric_name(a.metric);
    let mut summary = Vec::new();
    for (smp, n) in groups {
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
    summary
}

/// Writes `summary.json` and prints the table and the first cells that did not run.
fn print(a: &TuneArgs, rows: &[Row], summary: &[Best], computed: usize) -> anyhow::Result<()> {
    let metric_name = metric_name(a.metric);
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
    for b in summary {
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
