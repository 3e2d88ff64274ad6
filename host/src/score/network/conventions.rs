//! What a score network takes and returns, declared — never guessed — by a sidecar file next to
//! the model (`MODEL.json` beside `MODEL.onnx`) and/or by flags (a flag wins over the file).
//!
//! ```json
//! {
//!   "input": "sigma",          // sigma | log-sigma | level | none: the network's noise input
//!   "output": "score",         // score | sigma-score | eps | denoiser: what it returns
//!   "sigmas": [50.0, 25.0],    // level only: the trained σ's, index 0 first (decreasing)
//!   "shape": [1, 8, 8],        // one sample's shape (default: read from the model)
//!   "data": "digits",          // the --data it was trained on (default for --data)
//!   "range": [0.0, 16.0],      // the data's value range, for pictures
//!   "trained_sigma": [0.01, 4.8], // the σ range of training (outside it: a warning)
//!   "x_input": "x",            // input names (default: the first input is x, the second
//!   "noise_input": "sigma"     //   the noise level)
//! }
//! ```
//!
//! The score s(x, σ) from the output y: `score` s = y; `sigma-score` s = y/σ; `eps`
//! s = −y/σ (y predicts the noise ε of x = x₀ + σε); `denoiser` s = (y − x)/σ² (Tweedie).

use std::path::{Path, PathBuf};

use clap::ValueEnum;
use serde::{Deserialize, Serialize};

use crate::error::UsageError;

/// What the network takes as its noise input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NoiseInputKind {
    /// σ itself (score_sde's NCSN++, EDM-style nets take σ or a function of it).
    Sigma,
    /// ln σ.
    LogSigma,
    /// The index of σ in the network's trained list (NCSN, NCSNv2): only those σ's exist.
    Level,
    /// No noise input (an unconditional score).
    None,
}

/// What the network returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutputKind {
    /// The score s(x, σ).
    Score,
    /// σ·s(x, σ).
    SigmaScore,
    /// The noise ε: s = −ε/σ.
    Eps,
    /// The denoised D(x, σ): s = (D − x)/σ².
    Denoiser,
}

impl NoiseInputKind {
    /// The flag's spelling.
    pub fn name(self) -> &'static str {
        match self {
            NoiseInputKind::Sigma => "sigma",
            NoiseInputKind::LogSigma => "log-sigma",
            NoiseInputKind::Level => "level",
            NoiseInputKind::None => "none",
        }
    }
}

impl OutputKind {
    /// The flag's spelling.
    pub fn name(self) -> &'static str {
        match self {
            OutputKind::Score => "score",
            OutputKind::SigmaScore => "sigma-score",
            OutputKind::Eps => "eps",
            OutputKind::Denoiser => "denoiser",
        }
    }

    /// s(x, σ) of the outputs `y` at the points `x` into `out`: [`OutputKind::score`] of each,
    /// one loop per convention (a network's score output is copied as it is: f32 → f64 → f32
    /// gives back every finite value, and a NaN stays a NaN).
    pub fn scores(self, y: &[f32], x: &[f32], sigma: f64, out: &mut [f32]) {
        fn each(y: &[f32], x: &[f32], out: &mut [f32], f: impl Fn(f32, f32) -> f32) {
            for ((o, &yv), &xv) in out.iter_mut().zip(y).zip(x) {
                *o = f(yv, xv);
            }
        }
        match self {
            OutputKind::Score => {
                let n = out.len().min(y.len());
                out[..n].copy_from_slice(&y[..n]);
            }
            kind => each(y, x, out, |y, x| kind.score(y, x, sigma)),
        }
    }

    /// s(x, σ) from the network's output `y` at the point `x` (f64, then rounded once).
    #[inline]
    pub fn score(self, y: f32, x: f32, sigma: f64) -> f32 {
        let (y, x) = (y as f64, x as f64);
        (match self {
            OutputKind::Score => y,
            OutputKind::SigmaScore => y / sigma,
            OutputKind::Eps => -y / sigma,
            OutputKind::Denoiser => (y - x) / (sigma * sigma),
        }) as f32
    }
}

/// The sidecar file, as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Sidecar {
    input: Option<NoiseInputKind>,
    output: Option<OutputKind>,
    sigmas: Option<Vec<f64>>,
    shape: Option<Vec<usize>>,
    data: Option<String>,
    range: Option<[f64; 2]>,
    trained_sigma: Option<[f64; 2]>,
    x_input: Option<String>,
    noise_input: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    description: Option<String>,
}

/// A network's declared conventions.
#[derive(Debug, Clone, Serialize)]
pub struct Conventions {
    /// The noise input.
    pub input: NoiseInputKind,
    /// The output.
    pub output: OutputKind,
    /// The trained σ's of a level-index network, index 0 first.
    pub sigmas: Option<Vec<f64>>,
    /// One sample's shape, if declared.
    pub shape: Option<Vec<usize>>,
    /// The data it was trained on: a built-in name or a path (relative paths resolved against
    /// the sidecar's folder).
    pub data: Option<String>,
    /// The data's value range.
    pub range: Option<[f64; 2]>,
    /// The σ range of training.
    pub trained_sigma: Option<[f64; 2]>,
    /// The x input's name.
    pub x_input: Option<String>,
    /// The noise input's name.
    pub noise_input: Option<String>,
    /// The sidecar read, if any.
    pub sidecar: Option<PathBuf>,
}

/// The sidecar of `model`: the same path with the extension `.json`.
pub fn sidecar_path(model: &Path) -> PathBuf {
    model.with_extension("json")
}

impl Conventions {
    /// Reads `model`'s sidecar if there is one and applies the flags over it. Refuses a
    /// convention declared nowhere, naming both ways to declare it.
    pub fn resolve(
        model: &Path,
        input: Option<NoiseInputKind>,
        output: Option<OutputKind>,
    ) -> Result<Conventions, UsageError> {
        let path = sidecar_path(model);
        let shipped = super::built_in(model).map(|(_, text)| text);
        let (side, sidecar) = if shipped.is_some() || path.is_file() {
            let text = match shipped {
                Some(t) => t.to_string(),
                None => std::fs::read_to_string(&path).map_err(|e| {
                    UsageError::flag(format!("{}: cannot read ({e})", path.display()))
                })?,
            };
            let side: Sidecar = serde_json::from_str(&text).map_err(|e| {
                UsageError::flag(format!(
                    "{}: not a valid anneal model sidecar ({e}); see README, \"Your own score network\"",
                    path.display()
                ))
            })?;
            (side, Some(path.clone()))
        } else {
            (Sidecar::default(), None)
        };
        let undeclared = |what: &str, flag: &str, values: &str| {
            UsageError::flag(format!(
                "--score = {}: {what} is not declared: add --{flag} {values}, or \"{}\" to {}",
                model.display(),
                flag.trim_start_matches("score-"),
                path.display()
            ))
        };
        let input = input.or(side.input).ok_or_else(|| {
            undeclared(
                "what the network takes as its noise input",
                "score-input",
                "sigma|log-sigma|level|none",
            )
        })?;
        let output = output.or(side.output).ok_or_else(|| {
            undeclared("what the network returns", "score-output", "score|sigma-score|eps|denoiser")
        })?;
        let data = side.data.map(|d| match &sidecar {
            Some(p)
                if shipped.is_none()
                    && crate::io::data::is_file_spec(&d)
                    && Path::new(&d).is_relative() =>
            {
                p.parent().unwrap_or(Path::new(".")).join(d).to_string_lossy().into_owned()
            }
            _ => d,
        });
        let conv = Conventions {
            input,
            output,
            sigmas: side.sigmas,
            shape: side.shape,
            data,
            range: side.range,
            trained_sigma: side.trained_sigma,
            x_input: side.x_input,
            noise_input: side.noise_input,
            sidecar,
        };
        conv.check(model)?;
        Ok(conv)
    }

    fn check(&self, model: &Path) -> Result<(), UsageError> {
        let at = || match &self.sidecar {
            Some(p) => p.display().to_string(),
            None => format!("--score = {}", model.display()),
        };
        match (&self.sigmas, self.input) {
            (None, NoiseInputKind::Level) => {
                return Err(UsageError::flag(format!(
                    "{}: a level-index network needs its trained σ's: add \"sigmas\": [σ_0, σ_1, …] \
                     to {}",
                    at(),
                    sidecar_path(model).display()
                )));
            }
            (Some(s), NoiseInputKind::Level) => {
                if s.is_empty() {
                    return Err(UsageError::flag(format!("{}: \"sigmas\" is empty", at())));
                }
                if let Some(bad) = s.iter().find(|v| !(v.is_finite() && **v > 0.0)) {
                    return Err(UsageError::flag(format!(
                        "{}: \"sigmas\" holds {bad}: every σ must be finite and > 0",
                        at()
                    )));
                }
                for (i, w) in s.windows(2).enumerate() {
                    if w[1] >= w[0] {
                        return Err(UsageError::flag(format!(
                            "{}: \"sigmas\" must be strictly decreasing: σ[{i}] = {} is followed by {}",
                            at(),
                            w[0],
                            w[1]
                        )));
                    }
                }
            }
            (Some(_), _) => {
                return Err(UsageError::flag(format!(
                    "{}: \"sigmas\" is given but the noise input is {}: only a level-index network \
                     (input \"level\") has a trained σ list",
                    at(),
                    self.input.name()
                )));
            }
            (None, _) => {}
        }
        if let Some(shape) = &self.shape
            && (shape.is_empty() || shape.contains(&0))
        {
            return Err(UsageError::flag(format!(
                "{}: \"shape\" = {shape:?} must be non-empty with every size ≥ 1",
                at()
            )));
        }
        if let Some([lo, hi]) = self.trained_sigma
            && !(lo > 0.0 && lo < hi && hi.is_finite())
        {
            return Err(UsageError::flag(format!(
                "{}: \"trained_sigma\" = [{lo}, {hi}] must satisfy 0 < low < high < ∞",
                at()
            )));
        }
        Ok(())
    }

    /// The trained level whose σ is `sigma` (relative difference ≤ 1e-6), or the two nearest
    /// trained levels (index, σ) for the refusal.
    pub fn level_of(&self, sigma: f64) -> Result<usize, Vec<(usize, f64)>> {
        let s = self.sigmas.as_deref().unwrap_or(&[]);
        if let Some(i) = s.iter().position(|&t| (t - sigma).abs() <= 1e-6 * t) {
            return Ok(i);
        }
        let mut near: Vec<(usize, f64)> =
            self.levels_by_distance(sigma).into_iter().take(2).map(|i| (i, s[i])).collect();
        near.sort_by_key(|a| a.0);
        Err(near)
    }

    /// The trained levels, nearest `sigma` first (distance |ln σ_i − ln σ|).
    pub fn levels_by_distance(&self, sigma: f64) -> Vec<usize> {
        let s = self.sigmas.as_deref().unwrap_or(&[]);
        let mut order: Vec<usize> = (0..s.len()).collect();
        order.sort_by(|&a, &b| {
            (s[a].ln() - sigma.ln()).abs().total_cmp(&(s[b].ln() - sigma.ln()).abs())
        });
        order
    }
}

#[cfg(test)]
mod tests {
    use super::OutputKind;

    /// The batched conversion is the per-value one, bit for bit, for every convention (a score
    /// output is copied; NaN stays NaN).
    #[test]
    fn scores_are_score_of_each_value() {
        let y: Vec<f32> = (0..97).map(|i| ((i as f32) * 0.37 - 17.0).sin() * 40.0).collect();
        let x: Vec<f32> = (0..97).map(|i| (i as f32) * 0.011 - 0.5).collect();
        for kind in
            [OutputKind::Score, OutputKind::SigmaScore, OutputKind::Eps, OutputKind::Denoiser]
        {
            for sigma in [0.01, 0.3, 7.5] {
                let mut out = vec![0.0f32; y.len()];
                kind.scores(&y, &x, sigma, &mut out);
                for ((&o, &yv), &xv) in out.iter().zip(&y).zip(&x) {
                    assert_eq!(
                        o.to_bits(),
                        kind.score(yv, xv, sigma).to_bits(),
                        "{kind:?} σ {sigma}"
                    );
                }
            }
            let mut out = [0.0f32; 1];
            kind.scores(&[f32::NAN], &[0.5], 0.1, &mut out);
            assert!(out[0].is_nan(), "{kind:?}");
        }
    }
}
