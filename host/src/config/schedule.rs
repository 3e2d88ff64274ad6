//! The schedule of a run: σ_1 (given, or NCSNv2's Technique 1), and N (given, the default,
//! Technique 2, or one level for the samplers that allow it).

use anneal_core::samplers::any::SamplerKind;
use anneal_core::{Geometric, GeometricOrSingle};

use crate::cli::{LevelFlags, SigmaFlags};
use crate::error::UsageError;
use crate::io::data::Dataset;

/// From this many data values (points × D) on, Technique 1 says on stderr that it is working,
/// and how long it took.
const LARGE: usize = 1 << 22;

/// σ_1 and how it was chosen.
pub fn sigma_max(flags: &SigmaFlags, data: &Dataset) -> Result<(f64, &'static str), UsageError> {
    if flags.sigma_max == "auto" {
        let k = data.components();
        let large = k.saturating_mul(data.dim) >= LARGE;
        let started = std::time::Instant::now();
        if large {
            eprintln!(
                "--sigma-max auto: Technique 1 (the largest distance between two of {k} points, \
                 exact)…"
            );
        }
        let s = super::diameter::max_pairwise_distance(&data.means, data.dim).map_err(|e| {
            UsageError::flag(format!(
                "--sigma-max = auto needs at least two distinct data points: {e}"
            ))
        })?;
        if s <= 0.0 || s.is_nan() {
            return Err(UsageError::flag(
                "--sigma-max = auto: all data points coincide; give --sigma-max",
            ));
        }
        if large {
            eprintln!(
                "--sigma-max auto: σ_1 = {} ({:.2} s)",
                crate::error::exact(s),
                started.elapsed().as_secs_f64()
            );
        }
        Ok((s, "Technique 1 (largest pairwise distance of the data)"))
    } else {
        let s: f64 = flags.sigma_max.parse().map_err(|_| {
            UsageError::flag(format!("--sigma-max = {} is not a number or `auto`", flags.sigma_max))
        })?;
        Ok((s, "given"))
    }
}

/// The levels from σ_1 = `sigma_max` to σ_N = `sigma_min` for sampler `kind` in dimension `dim`.
pub fn build(
    kind: SamplerKind,
    levels: &LevelFlags,
    sigma_max: f64,
    sigma_min: f64,
    dim: usize,
) -> Result<GeometricOrSingle, UsageError> {
    Ok(match (levels.levels, levels.technique2) {
        (Some(1), _) if kind.min_levels() == 1 => GeometricOrSingle::single(sigma_min)?,
        (Some(1), _) => {
            return Err(UsageError::flag(format!(
                "--levels = 1 is out of range for --sampler {}: must be ≥ {} (one level is for the \
                 single-level samplers)",
                kind.name(),
                kind.min_levels()
            )));
        }
        (_, true) => {
            let g = anneal_core::ncsnv2::technique2_growth(dim, levels.c)?;
            GeometricOrSingle::Geometric(Geometric::with_growth(sigma_max, sigma_min, g)?)
        }
        (n, false) => GeometricOrSingle::Geometric(Geometric::new(
            sigma_max,
            sigma_min,
            n.unwrap_or(super::DEFAULT_LEVELS),
        )?),
    })
}
