//! Hostile input, as a new user would try it: every value that cannot work is refused up front
//! (exit 2, one line naming the flag or the file, the value, the bound and the fix), without a
//! panic, without unbounded memory or time, and without a silently ignored flag.

use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use assert_cmd::Command;

fn anneal() -> Command {
    let mut c = Command::cargo_bin("anneal").unwrap();
    // Each refusal comes before any work: a run that started instead would hit this.
    c.timeout(Duration::from_secs(60));
    c
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("anneal-hostile-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs `args`, expects exit 2 with one line on stderr containing every needle and no panic.
fn refused(args: &[&str], needles: &[&str]) -> Output {
    let o = anneal().args(args).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: one line: {err}");
    assert!(!err.contains("panicked"), "{args:?}: {err}");
    for n in needles {
        assert!(err.contains(n), "{args:?}: '{n}' not in: {err}");
    }
    o
}

/// Flags a sampler does not use are refused, naming the samplers they apply to (finding 14).
#[test]
fn flags_a_sampler_does_not_use_are_refused() {
    for (sampler, flag, value, to) in [
        ("cas", "--snr", "0.16", "applies to pc"),
        ("als", "--lambda", "0.5", "applies to noise-denoise"),
        ("cas", "--friction", "2", "applies to baoab and obabo"),
        ("langevin", "--denoise", "false", "applies to als, cas and pc"),
        ("cas", "--corrector-steps", "2", "applies to pc"),
        ("cas", "--steps-per-level", "5", "applies to als, langevin"),
        ("pc", "--snr-norms", "per-sample", "applies to pc with --snr"),
    ] {
        refused(
            &["sample", "--sampler", sampler, flag, value, "--out", "/nonexistent/x"],
            &[flag, to, &format!("--sampler {sampler}")],
        );
    }
    // A sweep takes a flag that one of its samplers uses.
    refused(&["tune", "--sampler", "cas,als", "--lambda", "0.5"], &["--lambda"]);
    let dir = tmp("applies");
    let o = anneal()
        .args(["tune", "--sampler", "cas,noise-denoise", "--lambda", "0.5", "--levels", "4"])
        .args(["--seeds", "0", "--n", "10", "--out"])
        .arg(dir.join("t"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Widths beyond float32 and a σ_N whose square is not a normal float64 are refused with true
/// messages and numbers in scientific form (findings 11 and 13).
#[test]
fn widths_beyond_the_float_ranges_are_refused() {
    refused(&["sample", "--tau", "1e160"], &["--tau = 1e160", "≤ 3.403e37"]);
    refused(&["sample", "--tau", "1e308"], &["--tau = 1e308"]);
    refused(
        &["sample", "--sigma-max", "1e308", "--sigma-min", "1e-320"],
        &["--sigma-max = 1e308", "≤ 3.403e37"],
    );
    refused(&["sample", "--sigma-min", "1e-320"], &["--sigma-min = 1e-320", "≥ 1.492e-154"]);
    refused(
        &["sample", "--sigma-max", "1e30", "--sigma-min", "2e30"],
        &["--sigma-min = 2e30 must be below --sigma-max = 1e30"],
    );
    refused(&["sample", "--init", "uniform:1e300:1e200"], &["the box [1e300, 1e200] is empty"]);
    // schedule takes any finite positive ends, and prints growths beyond float64 in their powers.
    let o = anneal()
        .args(["schedule", "--dim", "2", "--sigma-max", "1e300", "--sigma-min", "1e-300"])
        .args(["--levels", "2"])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.contains("ratio γ = σ_(i+1)/σ_i = 1.000000000e-600"), "{out}");
    assert!(out.contains("growth σ_(i-1)/σ_i = 1.000000000e600"), "{out}");
    let o = anneal()
        .args(["schedule", "--dim", "2", "--sigma-max", "1e300", "--sigma-min", "1e-300"])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("growth σ_(i-1)/σ_i = 1.149756995e6"), "{out}");
}

/// Data values beyond float32 are refused by the loader, naming the file, row, column and
/// value; a device or folder is refused unread; a 200 MB file that is not .npy is refused on
/// its first bytes (findings 10 and 12).
#[test]
fn the_loader_refuses_early_and_precisely() {
    let dir = tmp("loader");
    let csv = dir.join("big.csv");
    std::fs::write(&csv, "x,y\n1,2\n3,1e39\n").unwrap();
    refused(
        &["sample", "--data", csv.to_str().unwrap()],
        &["big.csv", "row 2", "column 2", "1e39"],
    );
    let npy = dir.join("big.npy");
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    let header = "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2), }";
    let header = format!("{header:<117}\n");
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    for v in [1.0f64, 2.0, 1e300, 4.0] {
        bytes.extend(v.to_le_bytes());
    }
    std::fs::write(&npy, &bytes).unwrap();
    refused(&["sample", "--data", npy.to_str().unwrap()], &["row 2", "column 1", "1e300"]);
    let link = dir.join("zero.csv");
    std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
    refused(&["sample", "--data", link.to_str().unwrap()], &["not a regular file"]);
    refused(&["sample", "--data", dir.to_str().unwrap()], &["not a regular file"]);
    // A sparse 200 MB file (no disk used) with a bad magic: refused on its first 12 bytes.
    let fake = dir.join("fake.npy");
    std::fs::File::create(&fake).unwrap().set_len(200 << 20).unwrap();
    refused(&["sample", "--data", fake.to_str().unwrap()], &["missing the \\x93NUMPY magic"]);
    // A header that promises more data than the file holds: refused before reading it.
    bytes.truncate(bytes.len() - 8);
    std::fs::write(&npy, &bytes).unwrap();
    refused(
        &["sample", "--data", npy.to_str().unwrap()],
        &["truncated", "needs 32 bytes, the file has 24"],
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Sizes that would take unbounded memory or time are refused or streamed (findings 7, 8, 9).
#[test]
fn sizes_are_bounded() {
    refused(
        &["tune", "--eps-b", "logspace:1e-6:1e-4:18446744073709551615"],
        &["COUNT = 18446744073709551615", "limit of 10000"],
    );
    let seeds: Vec<String> = (0..10_000).map(|s| s.to_string()).collect();
    refused(
        &["tune", "--eps-c", "logspace:1:10:20", "--seeds", &seeds.join(",")],
        &["200000 cells", "above the limit of 100000", "split it"],
    );
    refused(&["sample", "--threads", "10000"], &["--threads = 10000", "≤ 1024"]);
    refused(
        &["schedule", "--dim", "2", "--sigma-max", "10", "--levels", "1000000000", "--json"],
        &["--json with N = 1000000000", "leave out --json"],
    );
    // The table streams: 10⁹ levels start printing at once, in little memory (`head` closes
    // the pipe after 6 lines, which ends the process quietly, as it does `ls`: finding 15).
    let bin = assert_cmd::cargo::cargo_bin("anneal");
    let o = std::process::Command::new("bash")
        .arg("-c")
        .arg(
            "ulimit -v 400000; \"$0\" schedule --dim 2 --sigma-max 10 --levels 1000000000 \
             | head -6; echo \"status ${PIPESTATUS[0]}\"",
        )
        .arg(&bin)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(out.contains("     3      1.000000e1"), "{out}");
    assert!(out.contains("status 141"), "killed by SIGPIPE, as ls is: {out}{err}");
    assert!(err.is_empty(), "no panic, no message: {err}");
}

/// `schedule`, `tune` and `sample` piped into `head` end quietly (finding 15).
#[test]
fn a_closed_pipe_ends_quietly() {
    let dir = tmp("pipe");
    let bin = assert_cmd::cargo::cargo_bin("anneal");
    for cmd in [
        "schedule --dim 2 --sigma-max 10 --levels 100000".to_string(),
        format!("sample --n 100 --out {}/s", dir.display()),
        format!("tune --levels 4,8 --seeds 0 --n 50 --out {}/t", dir.display()),
    ] {
        let o = std::process::Command::new("bash")
            .arg("-c")
            .arg(format!("\"$0\" {cmd} | head -c 1 >/dev/null"))
            .arg(&bin)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!err.contains("panicked") && !err.contains("Broken pipe"), "{cmd}: {err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Many data points (findings 5 and 6, in part): Technique 1 is exact (the largest pairwise
/// distance, checked here by the plain double loop) without comparing every pair, and
/// metrics.json stays small — the per-component lists go to components.csv.
#[test]
fn many_points_keep_technique1_exact_and_metrics_small() {
    let dir = tmp("many");
    let (k, d) = (20_000usize, 3usize);
    // A deterministic cloud: a spiral with a few far points.
    let points: Vec<[f32; 3]> = (0..k)
        .map(|i| {
            let t = i as f32 * 0.013;
            let r = 1.0 + (i % 97) as f32 / 50.0 + if i % 4999 == 0 { 6.0 } else { 0.0 };
            [r * t.cos(), r * t.sin(), ((i * 7919) % 1000) as f32 / 400.0]
        })
        .collect();
    let text: String = points.iter().map(|p| format!("{},{},{}\n", p[0], p[1], p[2])).collect();
    let csv = dir.join("cloud.csv");
    std::fs::write(&csv, text).unwrap();
    // The file's values as anneal reads them (f32), and the double loop in f64.
    let mut best = 0.0f64;
    for i in 0..k {
        for j in i + 1..k {
            let s: f64 = (0..d)
                .map(|c| {
                    let v = points[i][c] as f64 - points[j][c] as f64;
                    v * v
                })
                .sum();
            best = best.max(s);
        }
    }
    let out = dir.join("o");
    let o = anneal()
        .args(["sample", "--data", csv.to_str().unwrap(), "--n", "50", "--levels", "2"])
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["sigma_max"].as_f64().unwrap().to_bits(), best.sqrt().to_bits());
    let metrics = std::fs::read(out.join("metrics.json")).unwrap();
    assert!(metrics.len() < 20_000, "metrics.json is {} bytes", metrics.len());
    let m: serde_json::Value = serde_json::from_slice(&metrics).unwrap();
    assert_eq!(m["per_component"], "components.csv (20000 components)");
    assert!(m["mode_tv"].as_f64().unwrap() > 0.0);
    let rows = std::fs::read_to_string(out.join("components.csv")).unwrap();
    assert_eq!(rows.lines().count(), k + 1);
    assert!(rows.starts_with("component,mode_weight,true_weight,standard_error\n0,"));
    // Every row whole: its index, and the two weight columns each summing to 1 (50 samples:
    // mode weights are multiples of 1/50; the true weights 1/K each, summed in f64).
    let (mut modes, mut truth) = (0.0f64, 0.0f64);
    for (j, line) in rows.lines().skip(1).enumerate() {
        let f: Vec<&str> = line.split(',').collect();
        assert_eq!((f.len(), f[0].parse::<usize>().unwrap()), (4, j), "{line}");
        modes += f[1].parse::<f64>().unwrap();
        truth += f[2].parse::<f64>().unwrap();
    }
    assert!((modes - 1.0).abs() < 1e-9 && (truth - 1.0).abs() < 1e-9, "{modes} {truth}");
    let _ = std::fs::remove_dir_all(&dir);
}
