//! Helpers shared by the integration tests (the network, tune, Slurm and PC tests).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// A folder under the system's temporary folder for one test's outputs: emptied when made, and
/// removed with what the test wrote there when dropped (a failing test's panic drops it too).
pub struct Scratch(PathBuf);

impl Scratch {
    /// `$TMPDIR/NAME`, not there yet.
    pub fn new(name: &str) -> Self {
        let d = std::env::temp_dir().join(name);
        let _ = std::fs::remove_dir_all(&d);
        Scratch(d)
    }
}

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<std::ffi::OsStr> for Scratch {
    fn as_ref(&self) -> &std::ffi::OsStr {
        self.0.as_os_str()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The path of `tests/onnx/<name>` (the ONNX fixtures and their data).
pub fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/onnx")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

/// The f32 payload of a `.npy` written by anneal (format 1.0, `<f4`).
pub fn read_npy(path: &Path) -> Vec<f32> {
    let b = std::fs::read(path).unwrap();
    let hlen = u16::from_le_bytes([b[8], b[9]]) as usize;
    b[10 + hlen..].chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
}

/// max |a − b| over equal-length vectors.
pub fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// A folder's sweep with the wall-clock fields taken out: the rows of sweep.json, and sweep.csv
/// without its seconds column.
pub fn sweep_without_clock(dir: &Path) -> (serde_json::Value, Vec<String>) {
    let mut sweep: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("sweep.json")).unwrap()).unwrap();
    for r in sweep["rows"].as_array_mut().unwrap() {
        let r = r.as_object_mut().unwrap();
        r.remove("seconds");
        if let Some(m) = r.get_mut("metrics").and_then(serde_json::Value::as_object_mut) {
            m.remove("seconds");
            m.remove("score_evals_per_second");
        }
    }
    let csv = std::fs::read_to_string(dir.join("sweep.csv")).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let col = header.iter().position(|h| *h == "seconds").unwrap();
    let lines = csv
        .lines()
        .map(|l| {
            let mut f: Vec<&str> = l.split(',').collect();
            f.remove(col);
            f.join(",")
        })
        .collect();
    (sweep["rows"].clone(), lines)
}
