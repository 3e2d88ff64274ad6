//! Peak memory of a run over many data points (issue 14, finding 5): what a large mixture costs
//! is the data itself and a fixed number of bytes per component, not batch × K per thread.
//!
//! Each run's peak is its own largest resident set, read by `wait4` when it ends.

use std::path::Path;
use std::process::{Command, Stdio};

mod common;
use common::Scratch;

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

/// Runs `anneal sample --data DATA --out DIR/OUT ARGS…`; returns the run's peak resident set
/// (bytes), after checking that it succeeded.
#[expect(clippy::zombie_processes, reason = "the child is reaped by wait4, which gives its peak")]
fn sample_peak(data: &Path, dir: &Path, out: &str, args: &[&str]) -> u64 {
    let log = dir.join(format!("{out}.log"));
    let child = Command::new(env!("CARGO_BIN_EXE_anneal"))
        .args(["sample", "--data", data.to_str().unwrap(), "--out"])
        .arg(dir.join(out))
        .args(args)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    // SAFETY: the child is ours and not yet waited for; status and usage are ours to write.
    let (mut status, mut usage): (libc::c_int, libc::rusage) = (0, unsafe { std::mem::zeroed() });
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as libc::pid_t, "wait4");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    usage.ru_maxrss as u64 * 1024
}

/// 256 samples of `data` on 2 threads: their run's peak within `model` + `slack_mib`, and the
/// same samples in batches of 16.
fn peak_within_and_batch_free(data: &Path, dir: &Path, model: f64, slack_mib: f64) {
    let args = ["--n", "256", "--levels", "2", "--threads", "2"];
    let peak = sample_peak(data, dir, "o", &args) as f64;
    let bound = model + slack_mib * 1024.0 * 1024.0;
    eprintln!(
        "peak RSS {:.1} MB; model {:.1} MB; bound {:.1} MB",
        peak / 1e6,
        model / 1e6,
        bound / 1e6
    );
    assert!(peak <= bound, "peak RSS {:.1} MB above the bound {:.1} MB", peak / 1e6, bound / 1e6);
    sample_peak(data, dir, "o16", &[&args[..], &["--batch", "16"]].concat());
    let read = |f: &str| std::fs::read(dir.join(f).join("samples.npy")).unwrap();
    assert!(read("o") == read("o16"), "samples depend on the batch grouping");
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
    let dir = Scratch::new(&format!("anneal-memory-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (k, d) = (400_000usize, 8usize);
    let data = dir.join("cloud.npy");
    write_npy(&data, k, d);
    let values = (k * d) as f64;
    let per_component = 10.0 * 8.0 + 8.0 + 2.0 * 12.0 + 24.0 + 32.0;
    let model = (16.0 * values).max(8.0 * values + per_component * k as f64);
    // The same samples in 16 batches of 16, which run four at a time (each scorer's scratch is
    // ~45 MB: five fit the executor's 256 MiB), as in one batch.
    peak_within_and_batch_free(&data, &dir, model, 48.0);
}

/// K = 600 000 points in D = 2 (above 2¹⁹: the score streams over blocks of 2¹⁵ components),
/// 256 samples on 2 threads. The model as above, with the streamed score's scratch in place of
/// the per-component one: 24 + 32 bytes per component, and per thread the products and weights
/// of 32 rows for a block (f32), its c_k (f64) and a row's candidates in it (12 bytes each),
/// 9.0 MB: max(19.2, 9.6 + 33.6 + 18.1) MB = 61.3 MB. Asserted: ≤ the model + 32 MiB (the
/// process, 13 MB, and the allocator's slack; measured: 68 MB). The whole-row score (G and R for 8 rows of K and a candidate list per
/// thread, 57 MB of scratch) peaked at 116 MB on this input. The samples are the same in
/// batches of 16 (run more of them at once).
#[test]
fn beyond_half_a_million_components_the_scratch_does_not_grow_with_them() {
    let dir = Scratch::new(&format!("anneal-memory-streamed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (k, d) = (600_000usize, 2usize);
    let data = dir.join("cloud.npy");
    write_npy(&data, k, d);
    let values = (k * d) as f64;
    let streamed = 2.0 * (32.0 * 32768.0 * 8.0 + 32768.0 * 20.0);
    let model = (16.0 * values).max(8.0 * values + 56.0 * k as f64 + streamed);
    peak_within_and_batch_free(&data, &dir, model, 32.0);
}
