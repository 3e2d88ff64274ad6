//! Datasets: every point becomes one component N(μ_k, τ² I) of the ground-truth mixture.
//!
//! - `toy2d`: NCSN's toy, 1/5 N((−5, −5), I) + 4/5 N((5, 5), I) (τ = 1 unless `--tau` is given);
//! - `digits`: the 1,797 scikit-learn digit images (8 × 8, scaled to [0, 1]), equal weights;
//! - a `.npy` (n × D, float or integer; n-D arrays flattened per point) or `.csv` file (one point per line; fields separated
//!   by semicolons, tabs, commas or spaces, quoted or not; a byte-order mark, `#` comments and a
//!   non-numeric first line are skipped; read with the `csv` crate), equal weights.

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

    /// The mixture of its points with component width τ (the CPU's and the GPU's description).
    pub fn mixture(&self, tau: f64) -> anneal_core::score::MixtureData<'_> {
        anneal_core::score::MixtureData {
            means: &self.means,
            dim: self.dim,
            weights: &self.weights,
            tau,
        }
    }
}

const DIGITS: &[u8] = include_bytes!("../../data/digits.u8");

/// The built-in datasets' names.
pub const BUILT_IN: [&str; 2] = ["toy2d", "digits"];

/// Whether `--data = spec` names a file (not a built-in dataset).
pub fn is_file_spec(spec: &str) -> bool {
    !BUILT_IN.contains(&spec)
}

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

/// The first `n` bytes of a file (fewer if it is shorter).
fn read_prefix(path: &Path, n: usize) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut buf = Vec::with_capacity(n);
    std::fs::File::open(path)?.take(n as u64).read_to_end(&mut buf)?;
    Ok(buf)
}

fn load_file(path: &Path) -> Result<Dataset, String> {
    let shown = path.display();
    let io = |e: std::io::Error| {
        format!("--data = {shown}: {e} (use toy2d, digits, or a .npy/.csv file of points)")
    };
    // A device, a FIFO or a folder (through a link or not) would be read without end.
    let meta = std::fs::metadata(path).map_err(io)?;
    if !meta.is_file() {
        return Err(format!(
            "--data = {shown} is not a regular file (a folder, device or pipe): give a .npy or \
             .csv file of points"
        ));
    }
    let ext = path.extension().and_then(|e| e.to_str());
    if ext == Some("npy") {
        // The header first: a file that is not .npy, or shorter than its shape, is refused
        // before its data are read.
        let bad = |e: String| format!("--data = {shown}: {e}");
        let size = crate::io::npy::header_size(&read_prefix(path, 12).map_err(io)?).map_err(bad)?;
        let h = crate::io::npy::header(&read_prefix(path, size).map_err(io)?).map_err(bad)?;
        let has = meta.len().saturating_sub(h.offset as u64);
        if has < h.data_bytes as u64 {
            return Err(bad(format!(
                "npy data truncated: shape ({}, {}) of '{}' needs {} bytes, the file has {has}",
                h.rows, h.cols, h.descr, h.data_bytes
            )));
        }
    }
    let bytes = std::fs::read(path).map_err(io)?;
    let (data, rows, cols) = match ext {
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
    // Points are held as float32: a value beyond its range would become infinite.
    if let Some(i) = data.iter().position(|v| !(v.is_finite() && v.abs() <= f32::MAX as f64)) {
        return Err(format!(
            "--data = {shown}: row {} (point {0}), column {} = {} is {}",
            i / cols + 1,
            i % cols + 1,
            anneal_core::Num(data[i]),
            if data[i].is_finite() {
                "beyond float32's range (|x| ≤ 3.403e38), in which anneal holds points: rescale the data"
            } else {
                "not finite"
            }
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

/// Parses delimited text of points (the `csv` crate): (values, rows, columns). Fields are
/// separated by semicolons, tabs or commas (the first data line decides, in that order) or by
/// runs of spaces; fields may be quoted; a UTF-8 byte-order mark, blank lines and lines starting
/// with `#` are skipped, and so is a first line that is not numeric (a header). Errors name the
/// line and the column.
pub fn parse_csv(bytes: &[u8]) -> Result<(Vec<f64>, usize, usize), String> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| format!("not UTF-8 text (byte {})", e.valid_up_to()))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let first = text.lines().map(str::trim).find(|l| !l.is_empty() && !l.starts_with('#'));
    let delimiter =
        [b';', b'\t', b','].into_iter().find(|d| first.is_some_and(|l| l.as_bytes().contains(d)));
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .comment(Some(b'#'))
        .trim(csv::Trim::All)
        .delimiter(delimiter.unwrap_or(b' '))
        .from_reader(text.as_bytes());
    let mut data = Vec::new();
    let mut cols: Option<usize> = None;
    let mut rows = 0;
    let mut first_record = true;
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            format!("line {line}: {e}")
        })?;
        let line = record.position().map_or(0, |p| p.line());
        // Space-separated: a run of spaces is one separator.
        let fields: Vec<&str> =
            record.iter().filter(|f| delimiter.is_some() || !f.is_empty()).collect();
        let mut values = Vec::with_capacity(fields.len());
        for (c, f) in fields.iter().enumerate() {
            match f.parse::<f64>() {
                Ok(v) => values.push(v),
                Err(_) if first_record && c == 0 => break, // a header line
                Err(_) => {
                    let hint = if delimiter == Some(b';') && f.contains(',') {
                        " (decimal commas are not read: use points)"
                    } else {
                        ""
                    };
                    return Err(format!(
                        "line {line}, column {}: '{f}' is not a number{hint}",
                        c + 1
                    ));
                }
            }
        }
        first_record = false;
        if values.is_empty() {
            continue;
        }
        match cols {
            None => cols = Some(values.len()),
            Some(k) if k != values.len() => {
                return Err(format!(
                    "line {line}: {} values where the first point has {k} (ragged rows)",
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

#[cfg(test)]
mod tests {
    use super::parse_csv;

    fn ok(text: &str) -> (Vec<f64>, usize, usize) {
        parse_csv(text.as_bytes()).unwrap_or_else(|e| panic!("{text:?}: {e}"))
    }

    /// The same two points, written every way the loader reads.
    #[test]
    fn reads_every_common_spelling() {
        let want = (vec![1.0, 2.0, 3.5, -4.0], 2, 2);
        for text in [
            "1,2\n3.5,-4\n",
            "\u{feff}1,2\n3.5,-4\n",              // a byte-order mark
            "x,y\n1,2\n3.5,-4\n",                 // a header
            "# points\n\n1 , 2\n3.5,-4", // a comment, a blank line, spaces, no final newline
            "\"x\";\"y\"\n\"1\";\"2\"\n3.5;-4\n", // semicolons and quotes
            "1\t2\n3.5\t-4\n",           // tabs
            "  1   2\n3.5 -4\r\n",       // runs of spaces, CRLF
        ] {
            assert_eq!(ok(text), want, "{text:?}");
        }
    }

    /// Errors name the line (counted in the file, comments and header included) and the column.
    #[test]
    fn errors_name_line_and_column() {
        let e = |t: &str| parse_csv(t.as_bytes()).unwrap_err();
        assert_eq!(e("# c\nx,y\n1,2\n3,oops\n"), "line 4, column 2: 'oops' is not a number");
        assert_eq!(e("1,2\n3,4,5\n"), "line 2: 3 values where the first point has 2 (ragged rows)");
        assert!(e("x;y\n1,5;2,5\n").contains("decimal commas are not read"));
        // Only the first line may be a header.
        assert_eq!(e("x,y\nunits,m\n1,2\n"), "line 2, column 1: 'units' is not a number");
        assert!(e("1,2\n\"3,4\n").starts_with("line 2"), "{}", e("1,2\n\"3,4\n"));
        assert_eq!(ok(""), (vec![], 0, 0));
    }
}
