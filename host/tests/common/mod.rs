//! Helpers shared by the network tests (`network.rs`, `network_gpu.rs`).
#![allow(dead_code)]

use std::path::Path;

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
