//! `anneal score`: s(x, σ) of a score source at the points of a `.npy`, written as a float32
//! `.npy` — the check of an export against PyTorch, and the tests' known answers.

use crate::cli::ScoreArgs;
use crate::error::UsageError;
use crate::io::write::write_atomic;
use crate::score::batch_score::Mixture;
use crate::score::source::{MixtureSource, ScoreSource};

/// Runs `anneal score`.
pub fn run(a: &ScoreArgs) -> anyhow::Result<()> {
    if !(a.sigma.is_finite() && a.sigma > 0.0) {
        return Err(UsageError::flag(format!(
            "--sigma = {} is out of range: must be finite and > 0",
            a.sigma
        ))
        .into());
    }
    if a.batch == 0 {
        return Err(UsageError::flag("--batch = 0 is out of range: must be ≥ 1").into());
    }
    if a.out.exists() && !a.force {
        return Err(UsageError::flag(format!(
            "--out = {} exists: choose another file or add --force to overwrite it",
            a.out.display()
        ))
        .into());
    }
    // A network needs no data; the exact score is that of --data smoothed by τ.
    let network = crate::config::load_network(&a.score)?;
    let data;
    let source: Box<dyn ScoreSource + '_> = match &network {
        Some(n) => {
            n.check_sigma(a.sigma)?;
            Box::new(&**n)
        }
        None => {
            data = crate::config::load_data(&a.data)?;
            let tau = crate::config::resolve_tau(a.data.tau, &data)?;
            Box::new(MixtureSource(Mixture::new(data.mixture(tau))))
        }
    };
    let points = crate::io::data::load(&a.points)
        .map_err(|e| UsageError::flag(e.replacen("--data", "--points", 1)))?;
    let d = source.dim();
    if points.dim != d {
        return Err(UsageError::flag(format!(
            "--points = {}: {} values per point where the score takes D = {d}",
            a.points, points.dim
        ))
        .into());
    }
    let rows = points.components();
    let x = points.means;
    let mut out = vec![0.0f32; x.len()];
    let mut scorer = source.scorer();
    for (xs, os) in x.chunks(a.batch * d).zip(out.chunks_mut(a.batch * d)) {
        scorer.score_batch(xs, a.sigma, os).map_err(|e| {
            let detail = source.network().and_then(|n| n.failure()).unwrap_or_default();
            anyhow::anyhow!("scoring failed at σ = {}: {e} {detail}", a.sigma)
        })?;
    }
    if let Some(i) = out.iter().position(|v| !v.is_finite()) {
        anyhow::bail!(
            "{} returned a non-finite score (entry {i}, point {}) at σ = {}; nothing was written",
            source.describe(),
            i / d,
            a.sigma
        );
    }
    let dir = match a.out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let name =
        a.out.file_name().and_then(|n| n.to_str()).ok_or_else(|| {
            UsageError::flag(format!("--out = {}: not a file name", a.out.display()))
        })?;
    write_atomic(&dir, name, &crate::io::npy::write_f32(&out, rows, d))?;
    println!(
        "s(x, σ = {}) of {} points (D = {d}) by {}: wrote {}",
        a.sigma,
        rows,
        source.describe(),
        a.out.display()
    );
    Ok(())
}
