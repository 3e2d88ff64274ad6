//! `anneal sample` end to end.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::Value;

fn anneal() -> Command {
    Command::cargo_bin("anneal").unwrap()
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("anneal-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn run_ok(args: &[&str], out: &Path) -> Value {
    let o = anneal().arg("sample").args(args).arg("--out").arg(out).output().unwrap();
    assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&std::fs::read(out.join("metrics.json")).unwrap()).unwrap()
}

/// toy2d with the default CAS and with ALS: the mode weights are within 3 standard errors
/// (√(0.2·0.8/n), n = 2000: 0.0089) of 0.2/0.8.
#[test]
fn toy2d_recovers_the_mode_weights() {
    for sampler in ["cas", "als"] {
        let out = tmp(&format!("toy-{sampler}"));
        let m = run_ok(&["--sampler", sampler, "--n", "2000"], &out);
        let w: Vec<f64> =
            m["mode_weights"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        let se = (0.2f64 * 0.8 / 2000.0).sqrt();
        assert!((w[0] - 0.2).abs() < 3.0 * se && (w[1] - 0.8).abs() < 3.0 * se, "{sampler}: {w:?}");
        assert_eq!(m["non_finite"], 0);
        for f in ["samples.npy", "samples.png", "config.json"] {
            assert!(out.join(f).exists(), "{f}");
        }
        let cfg: Value =
            serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap();
        assert_eq!(cfg["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(cfg["flags"]["sampler"], sampler);
        let _ = std::fs::remove_dir_all(&out);
    }
}

/// The same seed gives byte-identical samples.npy for --threads 1 and 2 and any --batch (3
/// batches of 100 on 2 threads are run as 4 of 75: `exec::cpu::balanced_batch`).
#[test]
fn samples_do_not_depend_on_threads_or_batch() {
    for data in ["toy2d", "digits"] {
        let mut files = Vec::new();
        for (threads, batch) in [("1", "7"), ("2", "256"), ("2", "33"), ("2", "100"), ("1", "1000")]
        {
            let out = tmp(&format!("det-{data}-{threads}-{batch}"));
            run_ok(
                &[
                    "--data",
                    data,
                    "--n",
                    "300",
                    "--levels",
                    "20",
                    "--seed",
                    "9",
                    "--threads",
                    threads,
                    "--batch",
                    batch,
                ],
                &out,
            );
            files.push(std::fs::read(out.join("samples.npy")).unwrap());
            let _ = std::fs::remove_dir_all(&out);
        }
        assert!(
            files.windows(2).all(|w| w[0] == w[1]),
            "{data}: samples differ across threads/batch"
        );
    }
}

#[test]
fn existing_output_is_refused_without_force() {
    let out = tmp("force");
    run_ok(&["--n", "10", "--levels", "5"], &out);
    let o = anneal()
        .args(["sample", "--n", "10", "--levels", "5", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8(o.stderr).unwrap();
    assert!(err.contains("exists") && err.contains("--force"), "{err}");
    let before = std::fs::read(out.join("samples.npy")).unwrap();
    run_ok(&["--n", "10", "--levels", "5", "--seed", "3", "--force"], &out);
    assert_ne!(std::fs::read(out.join("samples.npy")).unwrap(), before);
    // No temporary files are left behind.
    assert!(
        std::fs::read_dir(&out).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".tmp"))
    );
    let _ = std::fs::remove_dir_all(&out);
}

/// Each bad value: status 2, one line naming the flag and the bound; nothing written.
#[test]
fn bad_flags_exit_2_with_one_line() {
    let cases: &[(&[&str], &str)] = &[
        (&["--tau", "-1"], "--tau = -1 is out of range: must be finite, ≥ 0 and ≤ 3.403e37"),
        (&["--n", "0"], "--n = 0 is out of range: must be ≥ 1"),
        (&["--batch", "0"], "--batch = 0 is out of range: must be ≥ 1"),
        (&["--sigma-max", "big"], "--sigma-max = big is not a number or `auto`"),
        (&["--sigma-min", "0"], "--sigma-min = 0 is out of range: must be finite and > 0"),
        (&["--sigma-min", "50"], "--sigma-min = 50 must be below --sigma-max"),
        (&["--levels", "1"], "--levels = 1 is out of range for --sampler cas"),
        (&["--eps-c", "0.5"], "--eps-c = 0.5 is out of range: must be ≥ 1"),
        (&["--eps-b", "1"], "η = ε_b/σ_N² = 10000 is outside [1 − γ, 1]"),
        (&["--sampler", "als", "--eps", "1"], "--eps: under --step-convention ncsnv2"),
        (
            &["--sampler", "noise-denoise", "--lambda", "3"],
            "--lambda = 3 is out of range: must be in (0, 2]",
        ),
        (&["--sampler", "baoab", "--friction", "0"], "--friction = 0 is out of range"),
        (&["--sampler", "pc", "--snr", "1.5"], "--snr = 1.5 is out of range: must be in (0, 1)"),
        (&["--sampler", "als", "--steps-per-level", "0"], "--steps-per-level = 0 is out of range"),
        (&["--sampler", "langevin", "--levels", "1"], "--eps is required with --levels 1"),
        (&["--sampler", "als", "--eps-c", "2"], "--eps-c does not apply to --sampler als"),
        // The sampler's name as the flag spells it (it once read "noisedenoise").
        (
            &["--sampler", "noise-denoise", "--eps", "0.1"],
            "--eps does not apply to --sampler noise-denoise",
        ),
        (&["--sampler", "pc", "--snr", "0.1", "--eps", "1e-5"], "--sampler pc with --snr"),
        (&["--data", "/nonexistent.npy"], "--data = /nonexistent.npy:"),
        (&["--data", "Cargo.toml"], "unknown extension (use .npy or .csv)"),
        (&["--sampler", "magic"], "invalid value 'magic' for '--sampler <SAMPLER>'"),
        // NCSN's appendix toy setting (σ 10 → 0.1, ε = 0.1 in NCSN's convention, τ = 1): refused,
        // not run into overflow.
        (
            &[
                "--sampler",
                "als",
                "--sigma-max",
                "10",
                "--sigma-min",
                "0.1",
                "--levels",
                "10",
                "--eps",
                "0.1",
                "--step-convention",
                "ncsn",
                "--steps-per-level",
                "100",
            ],
            // In NCSN's own form: εσ_1²/σ_N² = 0.1 · 100/0.01, bound 4(1 + 100).
            "under --step-convention ncsn (x ← x + (α/2) s + √α z) the step α = εσ_i²/σ_N² = 1000 \
             at level 1 is not below its stability bound 4(τ² + σ_i²) = 404.0",
        ),
        // An ε_b outside its bounds names the interval this schedule accepts (default schedule:
        // γ = 0.01/14.14 per 99 steps → 1 − γ = 0.07066; ε_b ∈ [σ_N²(1 − γ), σ_N²]).
        (
            &["--eps-b", "0.0005"],
            "η = ε_b/σ_N² = 5.000 is outside [1 − γ, 1] = [0.07066, 1.000] at step 1 (σ_1 → σ_2); \
             this schedule accepts ε_b ∈ [7.066e-6, 1.000e-4]",
        ),
    ];
    for (args, want) in cases {
        let out = tmp("bad");
        let o = anneal().arg("sample").args(*args).arg("--out").arg(&out).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
        let err = String::from_utf8(o.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(!out.exists(), "{args:?}: output written");
    }
}

/// A truncated .npy, a bad .npy header and a ragged .csv: status 2 with the problem named; a
/// good .csv and .npy are accepted.
#[test]
fn data_files() {
    let dir = tmp("files");
    std::fs::create_dir_all(&dir).unwrap();
    let good: Vec<u8> = {
        let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }";
        let mut h = header.to_string();
        while !(10 + h.len() + 1).is_multiple_of(64) {
            h.push(' ');
        }
        h.push('\n');
        let mut b = b"\x93NUMPY\x01\x00".to_vec();
        b.extend((h.len() as u16).to_le_bytes());
        b.extend(h.as_bytes());
        for v in [0.0f32, 0.0, 3.0, 0.0, 0.0, 4.0] {
            b.extend(v.to_le_bytes());
        }
        b
    };
    std::fs::write(dir.join("good.npy"), &good).unwrap();
    std::fs::write(dir.join("trunc.npy"), &good[..good.len() - 5]).unwrap();
    let fortran: Vec<u8> = {
        let at = good.windows(5).position(|w| w == b"False").unwrap();
        let mut b = good.clone();
        b[at..at + 5].copy_from_slice(b"True ");
        b
    };
    std::fs::write(dir.join("fortran.npy"), fortran).unwrap();
    std::fs::write(dir.join("ragged.csv"), "x,y\n1,2\n3,4\n5,6,7\n").unwrap();
    std::fs::write(dir.join("text.csv"), "1,2\n3,oops\n").unwrap();
    std::fs::write(dir.join("good.csv"), "# points\nx,y\n0,0\n3,0\n0,4\n").unwrap();
    let cases = [
        ("trunc.npy", "npy data truncated: shape (3, 2) of '<f4' needs 24 bytes, the file has 19"),
        ("fortran.npy", "fortran_order is True"),
        ("ragged.csv", "line 4: 3 values where the first point has 2 (ragged rows)"),
        ("text.csv", "line 2, column 2: 'oops' is not a number"),
    ];
    for (f, want) in cases {
        let o = anneal()
            .args(["sample", "--data"])
            .arg(dir.join(f))
            .arg("--out")
            .arg(dir.join("o"))
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{f}");
        let err = String::from_utf8(o.stderr).unwrap();
        assert!(err.contains(want) && err.lines().count() == 1, "{f}: {err}");
    }
    for f in ["good.npy", "good.csv"] {
        let out = dir.join(format!("out-{f}"));
        let m =
            run_ok(&["--data", dir.join(f).to_str().unwrap(), "--n", "300", "--tau", "0.3"], &out);
        assert_eq!(m["true_weights"].as_array().unwrap().len(), 3, "{f}");
        // σ_1 = auto: Technique 1 on the points (max distance 5).
        let cfg: Value =
            serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap();
        assert_eq!(cfg["sigma_max"], 5.0, "{f}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every sampler runs on toy2d with its defaults (30 levels) and lands near the data: the mean
/// distance to the nearest component is √2·Γ(3/2)/Γ(1)·τ ≈ 1.25 for exact samples (τ = 1, D = 2);
/// allowed: below 1.5.
#[test]
fn every_sampler_runs_with_its_defaults() {
    for sampler in
        ["cas", "als", "pc", "langevin", "noise-denoise", "baoab-limit", "baoab", "obabo"]
    {
        let out = tmp(&format!("every-{sampler}"));
        let m = run_ok(&["--sampler", sampler, "--n", "500", "--levels", "30"], &out);
        let d = m["mean_nearest_component_distance"].as_f64().unwrap();
        assert!(d < 1.5, "{sampler}: mean nearest-component distance {d}");
        let _ = std::fs::remove_dir_all(&out);
    }
}

/// `--init`: the starts as the peers draw them. With a negligible step (ALS, ε = 1e-12, two
/// levels, one step each, no denoising) the samples are their starts: `normal` is centred on the
/// data mean (toy2d: (3, 3)), `prior` on 0 with spread σ_1 (score_sde's VE prior), and
/// `uniform:0:1` fills [0, 1]² (NCSN's and NCSNv2's image start) with mean 1/2 and variance 1/12.
/// Means within 4 standard errors (σ/√n, n = 4000); config.json records the start.
#[test]
fn starts_as_the_peers_draw_them() {
    let n = 4000.0f64;
    let base = ["--sampler", "als", "--levels", "2", "--sigma-max", "10", "--sigma-min", "5"];
    let tail = ["--steps-per-level", "1", "--eps", "1e-12", "--denoise", "false", "--n", "4000"];
    let moments = |init: &str| {
        let out = tmp(&format!("init-{init}"));
        let mut args = base.to_vec();
        args.extend(tail);
        args.extend(["--init", init]);
        run_ok(&args, &out);
        let cfg: Value =
            serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap();
        assert_eq!(cfg["flags"]["init"], init, "{cfg}");
        let b = std::fs::read(out.join("samples.npy")).unwrap();
        let hlen = u16::from_le_bytes([b[8], b[9]]) as usize;
        let v: Vec<f64> = b[10 + hlen..]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64)
            .collect();
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64;
        let (lo, hi) = v.iter().fold((f64::MAX, f64::MIN), |(l, h), &x| (l.min(x), h.max(x)));
        (mean, var, lo, hi)
    };
    let (m, v, _, _) = moments("normal");
    assert!((m - 3.0).abs() < 4.0 * 10.0 / n.sqrt() && (v.sqrt() - 10.0).abs() < 0.5, "{m} {v}");
    let (m, v, _, _) = moments("prior");
    assert!(m.abs() < 4.0 * 10.0 / n.sqrt() && (v.sqrt() - 10.0).abs() < 0.5, "{m} {v}");
    let (m, v, lo, hi) = moments("uniform:0:1");
    assert!((m - 0.5).abs() < 4.0 * (1.0f64 / 12.0).sqrt() / n.sqrt(), "{m}");
    assert!((v - 1.0 / 12.0).abs() < 0.005 && lo >= -1e-4 && hi <= 1.0 + 1e-4, "{v} {lo} {hi}");
    let o = anneal()
        .args(["sample", "--init", "uniform:1:0", "--out"])
        .arg(tmp("init-bad"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("uniform:1:0") && err.contains("LO must be below HI"), "{err}");
}

/// Proposition 3's foresight: one-point data in D = 3072, σ 50 → 0.01, N = 10, ALS with NCSNv2's
/// CIFAR-10 step (ε = 6.2e-6, T = 5) — every step inside its stability bound — is warned about on
/// stderr before sampling, naming the level and the ratio, and the predicted ratio is the one the
/// trace then measures within 5% (measured: 308.7 predicted, 309.3 traced; the bound is far
/// above the ~1% sampling error of an RMS over 100 × 3072 values). With Technique 4's step: no
/// warning. config.json and metrics.json record the prediction.
#[test]
fn stable_but_inconsistent_plans_are_foreseen() {
    let dir = tmp("foresight");
    std::fs::create_dir_all(&dir).unwrap();
    let data = dir.join("point.csv");
    std::fs::write(&data, format!("{}\n", vec!["0.5"; 3072].join(","))).unwrap();
    let data = data.to_string_lossy().into_owned();
    let base = ["--data", &data, "--sigma-max", "50", "--sigma-min", "0.01", "--levels", "10"];
    let run = |extra: &[&str], name: &str| {
        let out = dir.join(name);
        let o = anneal()
            .arg("sample")
            .args(base)
            .args(["--sampler", "als", "--steps-per-level", "5", "--n", "100", "--trace"])
            .args(extra)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let cfg: Value =
            serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap();
        let m: Value =
            serde_json::from_slice(&std::fs::read(out.join("metrics.json")).unwrap()).unwrap();
        let trace = std::fs::read_to_string(out.join("trace.csv")).unwrap();
        let last: f64 = trace.lines().last().unwrap().rsplit(',').next().unwrap().parse().unwrap();
        (String::from_utf8_lossy(&o.stderr).into_owned(), cfg, m, last)
    };
    let (err, cfg, m, traced) = run(&["--eps", "6.2e-6"], "cifar-step");
    assert!(err.contains("warning:") && err.contains("Proposition 3"), "{err}");
    assert!(err.contains("at level 10 of 10"), "{err}");
    let f = &cfg["foresight"];
    let predicted = f["final_ratio"].as_f64().unwrap();
    assert!((predicted / traced - 1.0).abs() < 0.05, "predicted {predicted}, traced {traced}");
    assert!(predicted > 100.0 && err.contains(&format!("{:.1}", predicted)), "{err}");
    assert_eq!(m["predicted_max_ratio"].as_f64(), f["max_ratio"].as_f64());
    assert_eq!(cfg["warnings"].as_array().unwrap().len(), 1);
    let (err, cfg, _, traced) = run(&[], "technique4");
    assert!(!err.contains("warning"), "{err}");
    let predicted = cfg["foresight"]["final_ratio"].as_f64().unwrap();
    assert!(predicted < 1.5 && (predicted / traced - 1.0).abs() < 0.05, "{predicted} {traced}");
}

/// `--device`: without a CUDA driver, `cuda` exits 2 naming the flag and what is missing, and
/// `auto` samples on the CPU and says why (stdout and config.json). CPU-only options are refused
/// with `cuda` on any machine.
#[test]
fn device_selection_says_what_it_used() {
    let out = tmp("dev-trace");
    let o = anneal()
        .args(["sample", "--device", "cuda", "--trace", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--device cuda") && err.contains("--trace"), "{err}");
    assert!(!out.exists(), "a refused run created its folder");
    if anneal_gpu::probe().driver {
        eprintln!("a CUDA driver is present: the no-GPU half of this test does not apply");
        return;
    }
    let out = tmp("dev-cuda");
    let o = anneal().args(["sample", "--device", "cuda", "--out"]).arg(&out).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--device cuda") && err.contains("libcuda.so.1"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let out = tmp("dev-auto");
    let o = anneal().args(["sample", "--n", "200", "--out"]).arg(&out).output().unwrap();
    assert!(o.status.success());
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("device: cpu (no CUDA device: libcuda.so.1 was not found"), "{text}");
    let cfg: Value =
        serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["device"], "cpu");
    assert_eq!(cfg["flags"]["device"], "auto");
    let _ = std::fs::remove_dir_all(&out);
}

/// `anneal bench`'s whole runs (issue 16's measure), without NumPy: digits as `sample` runs it,
/// at 1 and 2 threads — the nominal products are 4·n·K·D per step of the default plan, the
/// products done are fewer (sparse rows) and the same at both thread counts (the work does not
/// depend on the thread split), and every σ band has a finite, non-negative time.
#[test]
fn bench_times_whole_runs_per_sigma_band() {
    let o = anneal()
        .args(["bench", "--whole-only", "--case", "digits", "--runs", "1"])
        .args(["--thread-counts", "1,2", "--no-numpy"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    let number_after = |line: &str, key: &str| -> f64 {
        let rest = &line[line.find(key).unwrap_or_else(|| panic!("{key} in {line}")) + key.len()..];
        rest.split_whitespace().next().unwrap().parse().unwrap()
    };
    let runs: Vec<&str> = text.lines().filter(|l| l.starts_with("(a) digits n=1000")).collect();
    assert_eq!(runs.len(), 2, "{text}");
    let steps = 100.0; // 99 CAS steps and the final denoising step
    let nominal = 4.0 * 1000.0 * 1797.0 * 64.0 * steps / 1e9;
    let mut done = Vec::new();
    for line in &runs {
        assert!((number_after(line, "nominal ") - nominal).abs() < 0.05, "{line}");
        let d = number_after(line, "done ");
        assert!(d > 0.25 * nominal && d < nominal, "{line}");
        done.push(d);
    }
    assert_eq!(done[0], done[1], "{text}");
    let bands: Vec<&str> =
        text.lines().filter(|l| l.trim_start().starts_with("anneal s")).collect();
    assert_eq!(bands.len(), 2, "{text}");
    for b in bands {
        let v: Vec<f64> =
            b.split_whitespace().skip(3).map(|x| x.parse().unwrap()).collect::<Vec<_>>();
        assert!(v.len() == 6 && v.iter().all(|x| x.is_finite() && *x >= 0.0), "{b}");
    }
    // A thread count out of range is refused before any work (exit 2, naming it and the bound).
    for bad in ["0", "1,5000"] {
        let o = anneal().args(["bench", "--whole-only", "--thread-counts", bad]).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{bad}: {err}");
        assert!(err.contains("--thread-counts has") && err.contains("1 to 1024"), "{err}");
    }
}

/// Copies the files of folder `from` into a new folder `to`.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// metrics.json without its wall-clock fields.
fn metrics_without_clock(dir: &Path) -> Value {
    let mut m: Value =
        serde_json::from_slice(&std::fs::read(dir.join("metrics.json")).unwrap()).unwrap();
    let o = m.as_object_mut().unwrap();
    o.remove("seconds");
    o.remove("score_evals_per_second");
    m
}

/// Three shards of 301 digits samples (drawn with other --batch and --threads than the single
/// run), merged in shuffled order: samples.npy is the single run's byte for byte, metrics.json
/// equal but for the clock, samples.png byte for byte; two shards of the shipped network's
/// samples (the same --batch) too. Merge refuses a missing shard, a shard twice, shards of
/// different runs and shards drawn on different devices; --trace with --shard is refused.
#[test]
fn sample_shards_merge_into_the_single_run() {
    let root = tmp("sample-shards");
    let common = ["--data", "digits", "--n", "301", "--seed", "5", "--levels", "20"];
    let single = root.join("single");
    run_ok(&[&common[..], &["--batch", "256"]].concat(), &single);
    let shard = |i: usize| root.join(format!("s{i}"));
    for i in 1..=3 {
        let o = anneal()
            .arg("sample")
            .args(common)
            .args(["--batch", "37", "--threads", "1", "--device", "cpu", "--shard"])
            .arg(format!("{i}/3"))
            .arg("--out")
            .arg(shard(i))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let merge = |out: &Path, dirs: &[PathBuf]| {
        anneal().args(["sample", "merge", "--out"]).arg(out).args(dirs).output().unwrap()
    };
    let merged = root.join("merged");
    let o = merge(&merged, &[shard(3), shard(1), shard(2)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for f in ["samples.npy", "samples.png"] {
        assert_eq!(
            std::fs::read(merged.join(f)).unwrap(),
            std::fs::read(single.join(f)).unwrap(),
            "{f}"
        );
    }
    assert_eq!(metrics_without_clock(&merged), metrics_without_clock(&single));

    let o = merge(&root.join("m2"), &[shard(3), shard(1)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("shard(s) 2/3 missing"));
    let o = merge(&root.join("m3"), &[shard(1), shard(1)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("are both shard 1/3"));
    let other = root.join("other");
    let o = anneal()
        .arg("sample")
        .args(["--n", "301", "--shard", "2/3", "--device", "cpu", "--out"])
        .arg(&other)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = merge(&root.join("m4"), &[shard(1), other, shard(3)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("are shards of different runs"));
    // A shard drawn on another device (its shard.json says so): its rows would agree only
    // within float rounding, so merge refuses the mix and names both devices.
    let gpu = root.join("gpu2");
    copy_dir(&shard(2), &gpu);
    let f = gpu.join("shard.json");
    let text = std::fs::read_to_string(&f).unwrap();
    assert!(text.contains("\"device\": \"cpu\""), "{text}");
    let model = "NVIDIA H200 (compute 9.0)";
    std::fs::write(&f, text.replace("\"device\": \"cpu\"", &format!("\"device\": \"{model}\"")))
        .unwrap();
    let o = merge(&root.join("m5"), &[shard(1), gpu, shard(3)]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("were drawn on different devices (cpu and NVIDIA H200"), "{err}");
    assert!(!root.join("m5").exists());
    // A shard.json from before the device was recorded (CPU shards only): read as the CPU's.
    let old = root.join("old2");
    copy_dir(&shard(2), &old);
    let v: Value = serde_json::from_str(&text).unwrap();
    let mut o = v.as_object().unwrap().clone();
    o.remove("device").unwrap();
    std::fs::write(old.join("shard.json"), serde_json::to_string(&o).unwrap()).unwrap();
    let o = merge(&root.join("m6"), &[shard(1), old, shard(3)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        std::fs::read(root.join("m6/samples.npy")).unwrap(),
        std::fs::read(single.join("samples.npy")).unwrap()
    );
    // A score network: the runtime's results may depend on the rows of a call (onnxruntime's
    // do for the shipped MLP between 50 and 64 rows), so shards draw whole batches of the single
    // run, and with the same --batch their samples are its own.
    let net =
        ["--score", "digits", "--n", "100", "--batch", "32", "--seed", "2", "--device", "cpu"];
    let single = root.join("net");
    run_ok(&net, &single);
    for i in 1..=2 {
        let o = anneal()
            .arg("sample")
            .args(net)
            .args(["--shard", &format!("{i}/2"), "--out"])
            .arg(root.join(format!("net{i}")))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let o = merge(&root.join("net-merged"), &[root.join("net2"), root.join("net1")]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let merged = std::fs::read(root.join("net-merged/samples.npy")).unwrap();
    assert_eq!(merged, std::fs::read(single.join("samples.npy")).unwrap(), "network shards");

    let o = anneal()
        .args(["sample", "--trace", "--shard", "1/2", "--out"])
        .arg(root.join("t"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--trace with --shard"));
    let _ = std::fs::remove_dir_all(&root);
}
