//! Datasets: every point becomes one component N(μ_k, τ² I) of the ground-truth mixture.
//!
//! - `toy2d`: NCSN's toy, 1/5 N((−5, −5), I) + 4/5 N((5, 5), I) (τ = 1 unless `--tau` is given);
//! - `digits`: the 1,797 scikit-learn digit images (8 × 8, scaled to [0, 1]), equal weights;
//! - a `.npy` (1-D or 2-D, float or integer) or `.csv` file (one point per line, comma- or
//!   whitespace-separated numbers; lines starting with `#` and a non-numeric first line are
//!   skipped), equal weights.

use std::path::Path;

/// A ground-truth mixture.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// What it is called in outputs.
    pub name: String,
    /// D.
    pub dim: usize,
    /// Component means, K × D, row-major.
    pub means: Vec<f32>,
    /// Weights (sum 1).
    pub weights: Vec<f64>,
    /// The default τ for this dataset.
    pub default_tau: f64,
    /// For image data, (height, width) of one point.
    pub image: Option<(usize, usize)>,
}

impl Dataset {
    /// K.
    pub fn components(&self) -> usize {
        self.means.len() / self.dim
    }
}

const DIGITS: &[u8] = include_bytes!("../../data/digits.u8");

/// Loads `--data`.
pub fn load(spec: &str) -> Result<Dataset, String> {
    match spec {
        "toy2d" => Ok(Dataset {
            name: "toy2d".into(),
            dim: 2,
            means: vec![-5.0, -5.0, 5.0, 5.0],
            weights: vec![0.2, 0.8],
            default_tau: 1.0,
            image: None,
        }),
        "digits" => {
            let means: Vec<f32> = DIGITS
                .chunks_exact(65)
                .flat_map(|r| r[..64].iter().map(|&v| v as f32 / 16.0))
                .collect();
            let k = means.len() / 64;
            Ok(Dataset {
                name: "digits".into(),
                dim: 64,
                means,
                weights: vec![1.0 / k as f64; k],
                default_tau: 0.05,
                image: Some((8, 8)),
            })
        }
        path => load_file(Path::new(path)),
    }
}

fn load_file(path: &Path) -> Result<Dataset, String> {
    let shown = path.display();
    let bytes = std::fs::read(path).map_err(|e| {
        format!("--data = {shown}: {e} (use toy2d, digits, or a .npy/.csv file of points)")
    })?;
    let (data, rows, cols) = match path.extension().and_then(|e| e.to_str()) {
        Some("npy") => {
            let a = crate::io::npy::read(&bytes).map_err(|e| format!("--data = {shown}: {e}"))?;
            (a.data, a.rows, a.cols)
        }
        Some("csv") | Some("txt") => {
            parse_csv(&bytes).map_err(|e| format!("--data = {shown}: {e}"))?
        }
        _ => return Err(format!("--data = {shown}: unknown extension (use .npy or .csv)")),
    };
    if rows == 0 || cols == 0 {
        return Err(format!("--data = {shown}: no points"));
    }
    if let Some(i) = data.iter().position(|v| !v.is_finite()) {
        return Err(format!(
            "--data = {shown}: point {}, coordinate {} is not finite",
            i / cols + 1,
            i % cols + 1
        ));
    }
    let name = path.file_stem().map_or("data".into(), |s| s.to_string_lossy().into_owned());
    Ok(Dataset {
        name,
        dim: cols,
        means: data.iter().map(|&v| v as f32).collect(),
        weights: vec![1.0 / rows as f64; rows],
        default_tau: 0.0,
        image: None,
    })
}

/// Parses CSV text: (values, rows, columns). Errors name the line and column.
pub fn parse_csv(bytes: &[u8]) -> Result<(Vec<f64>, usize, usize), String> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| format!("not UTF-8 text (byte {})", e.valid_up_to()))?;
    let mut data = Vec::new();
    let mut cols: Option<usize> = None;
    let mut rows = 0;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = if line.contains(',') {
            line.split(',').map(str::trim).collect()
        } else {
            line.split_whitespace().collect()
        };
        let mut values = Vec::with_capacity(fields.len());
        for (c, f) in fields.iter().enumerate() {
            match f.parse::<f64>() {
                Ok(v) => values.push(v),
                Err(_) if rows == 0 && cols.is_none() && c == 0 => break, // a header line
                Err(_) => {
                    return Err(format!("line {}, column {}: '{f}' is not a number", n + 1, c + 1));
                }
            }
        }
        if values.is_empty() {
            continue;
        }
        match cols {
            None => cols = Some(values.len()),
            Some(k) if k != values.len() => {
                return Err(format!(
                    "line {}: {} values where the first point has {k} (ragged rows)",
                    n + 1,
                    values.len()
                ));
            }
            _ => {}
        }
        data.extend(values);
        rows += 1;
    }
    Ok((data, rows, cols.unwrap_or(0)))
}
