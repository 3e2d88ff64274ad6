//! The sweep's grid: the lists of `tune`'s flags, the cells in order, and each cell's run
//! configuration (the sweep's shared flags with the cell's levels, step size and seed).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use anneal_core::samplers::any::SamplerKind;

use crate::cli::{
    ConventionKind, LevelFlags, SamplerArg, SamplerOptions, SnrNormsKind, StepFlags, TuneArgs,
};
use crate::config::{DEFAULT_TECHNIQUE2_C, RunConfig, RunSpec};
use crate::error::UsageError;
use crate::io::data::Dataset;
use crate::score::network::Network;

/// The most values one list may hold (`logspace`'s COUNT included).
pub const MAX_LIST: usize = 10_000;
/// The most cells a sweep may have (samplers × levels × values × seeds).
pub const MAX_CELLS: usize = 100_000;

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
        if n > MAX_LIST {
            return Err(bad(&format!("COUNT = {n} is above the limit of {MAX_LIST} values")));
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
    /// --score (absent: the exact mixture score).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<String>,
    /// The runtime that ran the network (its results differ by rounding between runtimes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
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
    /// The sampler's other options where they differ from the defaults (`--lambda 0.5` →
    /// `lambda=0.5`; empty: all defaults), so that a sweep with other options never reuses
    /// these cells.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub options: String,
}

/// The options of `o` that `kind` uses and that differ from their defaults, as `name=value`
/// joined by commas (the cell key's `options`; `steps_per_level` has a field of its own).
pub fn cell_options(kind: SamplerKind, o: &SamplerOptions, batch: usize) -> String {
    let snr = o.snr.is_some();
    let mut v: Vec<String> = o
        .uses()
        .into_iter()
        .filter(|u| u.key != "steps_per_level" && (u.applies)(kind, snr) && !u.is_default)
        .map(|u| match u.value.as_str() {
            Some(text) => format!("{}={text}", u.key),
            None => format!("{}={}", u.key, u.value),
        })
        .collect();
    // Batch means depend on the batch; the step convention on how --eps is read.
    if kind == SamplerKind::Pc && snr && o.snr_norms() == SnrNormsKind::BatchMean {
        v.push(format!("batch={batch}"));
    }
    if o.step_convention != ConventionKind::Ncsnv2 {
        v.push(format!("step_convention={:?}", o.step_convention));
    }
    v.join(",")
}

/// The cells of the sweep on `data_name` (--data as resolved), the network run by `runtime`.
pub fn cells(
    a: &TuneArgs,
    data_name: &str,
    runtime: Option<String>,
) -> Result<Vec<CellConfig>, UsageError> {
    let data_name = data_name.to_string();
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
    let kinds: Vec<SamplerKind> = a.sampler.iter().map(|&k| k.into()).collect();
    a.options.check_applicable(&kinds).map_err(UsageError::flag)?;
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
        let cells = levels
            .len()
            .checked_mul(params.len())
            .and_then(|x| x.checked_mul(seeds.len()))
            .and_then(|x| x.checked_add(out.len()));
        if cells.is_none_or(|c| c > MAX_CELLS) {
            return Err(UsageError::flag(format!(
                "the sweep has {} cells (samplers × --levels × values × --seeds), above the limit \
                 of {MAX_CELLS}: split it into several tune runs (they can share --out)",
                cells.map_or("too many".to_string(), |c| c.to_string())
            )));
        }
        let name = clap::ValueEnum::to_possible_value(&kind)
            .map_or("cas".to_string(), |v| v.get_name().to_string());
        for &n in &levels {
            for &(param, value) in &params {
                for &seed in &seeds {
                    out.push(CellConfig {
                        version: env!("CARGO_PKG_VERSION").into(),
                        data: data_name.clone(),
                        score: a.score.score.as_ref().map(|p| p.display().to_string()),
                        runtime: runtime.clone(),
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
                        options: cell_options(kind.into(), &a.options, a.run.batch),
                    });
                }
            }
        }
    }
    Ok(out)
}

/// Runs one cell's configuration: the sweep's shared flags with the cell's levels, step size and
/// seed.
pub fn cell_config(
    a: &TuneArgs,
    c: &CellConfig,
    data: &Dataset,
    network: Option<&Arc<Network>>,
) -> Result<RunConfig, UsageError> {
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
        network,
        snap_levels: a.score.snap_levels,
    };
    RunConfig::new(&spec, data.clone())
}
