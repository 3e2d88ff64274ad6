//! Peak memory of a run over many data points (issue 14, finding 5): what a large mixture costs
//! is the data itself and a fixed number of bytes per component, not batch × K per thread.
//!
//! Alone in its test binary: the peak is read with `getrusage(RUSAGE_CHILDREN)`, the largest
//! resident set of this process's finished children, so no other test's process may run here.

use std::process::Command;

/// A K × D float32 .npy of deterministic pseudo-random values in [−2, 2).
fn write_npy(path: &std::path::Path, k: usize, d: usize) {
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({k}, {d}), }}");
    while !(10 + header.len() + 1).is_multiple_of(64) {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    let mut s = 0x9E37_79B9_7F4A_7C15u64;
    for _ in 0..k * d {
        s = s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        let v = ((s >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0;
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::write(path, bytes).unwrap();
}

/// The largest resident set of the finished children, bytes.
fn children_peak() -> u64 {
    // SAFETY: getrusage writes into the zeroed struct we own.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut u) }, 0);
    u.ru_maxrss as u64 * 1024
}

/// K = 400 000 points in D = 8 (a 12.8 MB file), 256 samples on 2 threads, the default
/// --sigma-max (Technique 1 over all points) and the metrics (per-component lists to
/// components.csv). README's memory model, "What anneal promises about your files": the
/// loader's transient 16 bytes per value (the file, f64 values, f32 points), then the points
/// and their packed transpose (8 bytes per value), 24 bytes per component (weights, ln w, ‖μ‖²),
/// and the score's scratch — G and R for ⌊2²²/K⌋ = 10 rows in f32, c_k in f64 and one candidate
/// list (12 bytes per component) per thread — and the metrics' four per-component lists (32
/// bytes), counted as if all were held at once: 168 bytes per component here. The model's peak:
/// max(51, 12.8 + 12.8 + 67.2) MB = 92.8 MB. Asserted: ≤ the model + 48 MiB (the process
/// itself: 13 MB measured for a toy2d run, plus the allocator's slack). The
/// code before (0a28ff5) peaked at 410 MB on this input (G and R for 41 rows per thread,
/// the means padded to 32 columns, the Fréchet distance's n × D copies).
#[test]
fn many_components_cost_the_data_and_a_fixed_scratch_per_component() {
    let dir = std::env::temp_dir().join(format!("anneal-memory-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (k, d) = (400_000usize, 8usize);
    let data = dir.join("cloud.npy");
    write_npy(&data, k, d);
    let before = children_peak();
    let o = Command::new(env!("CARGO_BIN_EXE_anneal"))
        .args(["sample", "--data", data.to_str().unwrap(), "--n", "256", "--levels", "2"])
        .args(["--threads", "2", "--out"])
        .arg(dir.join("o"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let peak = children_peak();
    assert!(peak > before, "the run is the largest child so far");
    let values = (k * d) as f64;
    let per_component = 10.0 * 8.0 + 8.0 + 2.0 * 12.0 + 24.0 + 32.0;
    let model = (16.0 * values).max(8.0 * values + per_component * k as f64);
    let bound = model + 48.0 * 1024.0 * 1024.0;
    eprintln!(
        "peak RSS {:.1} MB; model {:.1} MB; bound {:.1} MB",
        peak as f64 / 1e6,
        model / 1e6,
        bound / 1e6
    );
    assert!(
        (peak as f64) <= bound,
        "peak RSS {:.1} MB above the bound {:.1} MB",
        peak as f64 / 1e6,
        bound / 1e6
    );
    // The same samples in 16 batches of 16, which run four at a time (each scorer's scratch is
    // ~45 MB: five fit the executor's 256 MiB), as in one batch.
    let o = Command::new(env!("CARGO_BIN_EXE_anneal"))
        .args(["sample", "--data", data.to_str().unwrap(), "--n", "256", "--levels", "2"])
        .args(["--threads", "2", "--batch", "16", "--out"])
        .arg(dir.join("o16"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let read = |f: &str| std::fs::read(dir.join(f).join("samples.npy")).unwrap();
    assert!(read("o") == read("o16"), "samples depend on the batch grouping");
    let _ = std::fs::remove_dir_all(&dir);
}
