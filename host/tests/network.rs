//! Score networks from ONNX files, end to end, against known answers: `tests/onnx/` holds
//! networks that compute the *exact* mixture score (made by `tests/onnx/make_mixture_nets.py`),
//! so sampling through them must give the samples of anneal's closed-form score.
//!
//! Tolerance: both paths compute the same f32 score with a different order of operations
//! (PyTorch's graph run by tract vs anneal's GEMM/direct score), so the scores differ by a few
//! f32 roundings (≈ 1e-6 relative) per step; the keyed noise is the same bit for bit. Over a
//! 100-step run with the state at scale ≤ 10, that stays far below 1e-3 absolute (measured:
//! 2.5e-5 on toy2d, 1.1e-6 on digits50), which is the bound asserted, per coordinate of every
//! sample. A wrong convention or σ would move samples by O(1).

use std::path::Path;

use assert_cmd::Command;

mod common;
use common::{Scratch, fixture, max_diff, read_npy};
use serde_json::Value;

const TOL: f32 = 1e-3;

thread_local! {
    /// The runtime the current test body runs networks with (`ANNEAL_RUNTIME`).
    static RUNTIME: std::cell::Cell<&'static str> = const { std::cell::Cell::new("tract") };
}

fn anneal() -> Command {
    let mut c = Command::cargo_bin("anneal").unwrap();
    c.env("ANNEAL_RUNTIME", RUNTIME.get());
    c
}

/// Runs `body` once per runtime: tract always; onnxruntime when `ORT_DYLIB_PATH` names its
/// library (required when `ANNEAL_REQUIRE_ORT` is set, as in CI), else said and skipped.
fn each_runtime(body: impl Fn()) {
    let ort = std::env::var("ORT_DYLIB_PATH").is_ok_and(|p| Path::new(&p).is_file());
    if !ort {
        assert!(
            std::env::var_os("ANNEAL_REQUIRE_ORT").is_none(),
            "ANNEAL_REQUIRE_ORT is set but ORT_DYLIB_PATH does not name onnxruntime's library"
        );
        eprintln!("SKIPPED onnxruntime runs (ORT_DYLIB_PATH not set): tract only");
    }
    for rt in ["tract", "onnxruntime"].into_iter().filter(|&r| r == "tract" || ort) {
        RUNTIME.set(rt);
        body();
    }
    RUNTIME.set("tract");
}

fn tmp(name: &str) -> Scratch {
    Scratch::new(&format!("anneal-net-{}-{}-{name}", std::process::id(), RUNTIME.get()))
}

/// Runs `sample` and returns its samples.
fn sample(args: &[&str], out: &Path) -> Vec<f32> {
    let o = anneal().arg("sample").args(args).arg("--out").arg(out).output().unwrap();
    assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
    read_npy(&out.join("samples.npy"))
}

/// A failing command: its exit status and its stderr.
fn fails(args: &[&str]) -> (i32, String) {
    let o = anneal().args(args).output().unwrap();
    assert!(!o.status.success(), "{args:?} succeeded");
    (o.status.code().unwrap_or(-1), String::from_utf8_lossy(&o.stderr).into_owned())
}

/// CAS, ALS and PC through the exact-score ONNX network give the closed-form score's samples.
#[test]
fn onnx_mixture_score_samples_like_the_closed_form() {
    each_runtime(|| {
        for (sampler, extra) in [
            ("cas", vec![]),
            ("als", vec!["--steps-per-level", "5"]),
            ("pc", vec!["--snr", "0.16", "--snr-norms", "batch-mean"]),
        ] {
            let mut args = vec!["--sampler", sampler, "--n", "300", "--seed", "3"];
            args.extend(&extra);
            let exact = sample(&args, &tmp(&format!("exact-{sampler}")));
            let mut with_net = args.clone();
            with_net.extend(["--score", "X"]);
            let model = fixture("toy2d-score.onnx");
            *with_net.last_mut().unwrap() = &model;
            let net = sample(&with_net, &tmp(&format!("net-{sampler}")));
            let d = max_diff(&exact, &net);
            assert!(d < TOL, "{sampler}: max |Δ| = {d}");
        }
        // A 64-dimensional mixture of 50 digits (τ = 0.05), images of shape [1, 8, 8].
        let data = fixture("digits50.npy");
        let exact = sample(&["--data", &data, "--tau", "0.05", "--n", "100"], &tmp("exact-d50"));
        let net = sample(&["--score", &fixture("digits50.onnx"), "--n", "100"], &tmp("net-d50"));
        let d = max_diff(&exact, &net);
        assert!(d < TOL, "digits50: max |Δ| = {d}");
    });
}

/// The same exact score exported as score, σ·score, ε, denoiser, and with σ, ln σ and
/// level-index inputs: the same samples.
#[test]
fn every_convention_gives_the_same_samples() {
    each_runtime(|| {
        let base = ["--n", "300", "--seed", "5", "--sigma-max", "10"];
        let exact = sample(&base, &tmp("conv-exact"));
        for name in ["score", "sigma-score", "eps", "denoiser", "logsigma", "level"] {
            let model = fixture(&format!("toy2d-{name}.onnx"));
            let mut args = base.to_vec();
            args.extend(["--score", &model]);
            let net = sample(&args, &tmp(&format!("conv-{name}")));
            let d = max_diff(&exact, &net);
            assert!(d < TOL, "{name}: max |Δ| = {d}");
        }
        // The conventions declared by flags instead of the sidecar: the same.
        let dir = tmp("conv-flags");
        std::fs::create_dir_all(&dir).unwrap();
        let bare = dir.join("eps-net.onnx");
        std::fs::copy(fixture("toy2d-eps.onnx"), &bare).unwrap();
        let mut args = base.to_vec();
        let bare_s = bare.to_string_lossy().into_owned();
        args.extend(["--score", &bare_s, "--score-input", "sigma", "--score-output", "eps"]);
        let net = sample(&args, &dir.join("out"));
        assert!(max_diff(&exact, &net) < TOL);
    });
}

/// A level-index network at an untrained σ is refused (exit 2) naming the nearest trained
/// levels; --snap-levels runs on the trained σ's (here: the same schedule as --sigma-max 10).
#[test]
fn level_index_networks_refuse_untrained_sigmas_or_snap() {
    each_runtime(|| {
        let model = fixture("toy2d-level.onnx");
        let out = tmp("level-refused");
        let out_s = out.to_string_lossy().into_owned();
        let (code, err) = fails(&[
            "sample",
            "--score",
            &model,
            "--sigma-max",
            "10",
            "--sigma-min",
            "0.02",
            "--out",
            &out_s,
        ]);
        assert_eq!(code, 2, "{err}");
        assert!(
            err.contains("not trained at")
                && err.contains("nearest: level")
                && err.contains("--snap-levels"),
            "{err}"
        );
        assert!(!out.exists());
        let exact = sample(&["--sigma-max", "10", "--n", "200"], &tmp("level-exact"));
        // σ_1 = auto (14.1) snaps to trained level 0 (σ = 10); σ_N = 0.01 is trained level 99.
        let snapped =
            sample(&["--score", &model, "--snap-levels", "--n", "200"], &tmp("level-snap"));
        assert!(max_diff(&exact, &snapped) < TOL);
    });
}

/// The consistency trace of CAS on a one-point ONNX score (D = 200, 50 samples: σ_eff has a
/// relative standard error of 0.7%) stays within 3.5% of σ_i at every level, as with the exact
/// score — and equals the exact score's trace to 1e-4.
#[test]
fn cas_trace_on_a_onepoint_network_stays_consistent() {
    each_runtime(|| {
        let dir = tmp("trace");
        std::fs::create_dir_all(&dir).unwrap();
        let point = dir.join("one.csv");
        std::fs::write(&point, vec!["0"; 200].join(",")).unwrap();
        let point = point.to_string_lossy().into_owned();
        let read = |out: &Path| -> Vec<f64> {
            std::fs::read_to_string(out.join("trace.csv"))
                .unwrap()
                .lines()
                .skip(1)
                .map(|l| l.split(',').nth(3).unwrap().parse().unwrap())
                .collect()
        };
        let common = ["--data", &point, "--n", "50", "--sigma-max", "10", "--trace"];
        let mut args = common.to_vec();
        let model = fixture("onepoint.onnx");
        args.extend(["--score", &model]);
        sample(&args, &dir.join("net"));
        sample(&common, &dir.join("exact"));
        let (net, exact) = (read(&dir.join("net")), read(&dir.join("exact")));
        assert_eq!(net.len(), exact.len());
        for (i, (a, b)) in net.iter().zip(&exact).enumerate() {
            assert!((a - 1.0).abs() < 0.035, "level {i}: σ_eff/σ = {a}");
            assert!((a - b).abs() < 1e-4, "level {i}: {a} vs {b}");
        }
    });
}

/// `anneal score` of the network equals `anneal score` of the closed form, at the data's points
/// and at σ = 0.3 and 3 (f32 relative 1e-5 of the largest entry).
#[test]
fn score_command_matches_the_closed_form() {
    each_runtime(|| {
        let dir = tmp("score-cmd");
        std::fs::create_dir_all(&dir).unwrap();
        let pts = dir.join("p.csv");
        std::fs::write(&pts, "0 0\n1 -2\n-4.5 -5.5\n6 4\n0.1 0.2\n").unwrap();
        let pts = pts.to_string_lossy().into_owned();
        for sigma in ["0.3", "3"] {
            let run = |extra: &[&str], name: &str| -> Vec<f32> {
                let out = dir.join(format!("{name}-{sigma}.npy"));
                let o = anneal()
                    .args(["score", "--points", &pts, "--sigma", sigma, "--out"])
                    .arg(&out)
                    .args(extra)
                    .output()
                    .unwrap();
                assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
                read_npy(&out)
            };
            let exact = run(&["--data", "toy2d"], "exact");
            for name in ["score", "eps", "denoiser", "logsigma"] {
                let net = run(&["--score", &fixture(&format!("toy2d-{name}.onnx"))], name);
                let scale = exact.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                assert!(max_diff(&exact, &net) <= 1e-5 * scale, "{name} at σ = {sigma}");
            }
        }
        // digits50 at all 1,797 digits (mostly not its own points), σ = 0.1.
        let out = dir.join("d50.npy");
        let o = anneal()
            .args(["score", "--score", &fixture("digits50.onnx"), "--points", "digits"])
            .args(["--sigma", "0.1", "--out"])
            .arg(&out)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let out2 = dir.join("d50-exact.npy");
        let o = anneal()
            .args(["score", "--data", &fixture("digits50.npy"), "--tau", "0.05"])
            .args(["--points", "digits", "--sigma", "0.1", "--out"])
            .arg(&out2)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let (a, b) = (read_npy(&out), read_npy(&out2));
        let scale = b.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(max_diff(&a, &b) <= 1e-5 * scale, "{} of {scale}", max_diff(&a, &b));
    });
}

/// Bad models: one line naming the model, the tensor and what was expected; exit 2 before any
/// sampling, or 1 (with level, step and σ) for a NaN met while sampling.
#[test]
fn bad_models_are_refused_clearly() {
    each_runtime(|| {
        let scratch = tmp("bad");
        let out = scratch.to_string_lossy().into_owned();
        let decl = ["--score-input", "sigma", "--score-output", "score"];
        let cases: Vec<(Vec<String>, i32, Vec<&str>)> = vec![
            (vec![fixture("missing.onnx")], 2, vec!["missing.onnx", "no such file"]),
            (
                vec![fixture("bad-not-onnx.onnx")]
                    .into_iter()
                    .chain(decl.map(String::from))
                    .collect(),
                2,
                vec!["bad-not-onnx.onnx", "not a readable ONNX model"],
            ),
            // No sidecar and no flags: the conventions are never guessed.
            (
                vec![fixture("bad-nan.onnx")],
                2,
                vec!["not declared", "--score-input", "bad-nan.json"],
            ),
            (
                vec![fixture("bad-output-shape.onnx")]
                    .into_iter()
                    .chain(decl.map(String::from))
                    .collect(),
                2,
                vec!["output \"score\"", "shape [2, 1]", "[2, 2]"],
            ),
            (
                vec![fixture("bad-dim3.onnx")].into_iter().chain(decl.map(String::from)).collect(),
                2,
                vec!["shape [3] (D = 3)", "--data = toy2d has D = 2"],
            ),
            (
                vec![fixture("bad-rank1.onnx")].into_iter().chain(decl.map(String::from)).collect(),
                2,
                vec!["input \"x\" has rank 1", "[batch, …]"],
            ),
            (
                vec![fixture("toy2d-score.onnx"), "--score-input".into(), "none".into()],
                2,
                vec!["2 input(s)", "\"x\", \"sigma\"", "none"],
            ),
            (
                vec![fixture("toy2d-level.onnx"), "--score-input".into(), "log-sigma".into()],
                2,
                vec!["\"sigmas\" is given", "log-sigma"],
            ),
            (
                vec![fixture("bad-nan.onnx")].into_iter().chain(decl.map(String::from)).collect(),
                1,
                vec!["non-finite at level", "step", "bad-nan.onnx", "σ = 0.04"],
            ),
        ];
        for (model_args, code, needles) in cases {
            let mut args =
                vec!["sample".to_string(), "--n".into(), "20".into(), "--out".into(), out.clone()];
            args.push("--score".into());
            args.extend(model_args);
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            let (got, err) = fails(&refs);
            assert_eq!(got, code, "{args:?}: {err}");
            assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
            for n in needles {
                assert!(err.contains(n), "{args:?}: {n:?} not in {err}");
            }
            assert!(!Path::new(&out).join("samples.npy").exists(), "nothing written");
        }
        // A sidecar naming an input the model does not have.
        let dir = tmp("bad-names");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(fixture("toy2d-score.onnx"), dir.join("m.onnx")).unwrap();
        std::fs::write(
            dir.join("m.json"),
            r#"{"input": "sigma", "output": "score", "x_input": "image"}"#,
        )
        .unwrap();
        let m = dir.join("m.onnx").to_string_lossy().into_owned();
        let (code, err) = fails(&["sample", "--score", &m, "--out", &out]);
        assert_eq!(code, 2);
        assert!(err.contains("\"image\"") && err.contains("[\"x\", \"sigma\"]"), "{err}");
    });
}

/// Same seed, same samples for any --threads; and, measured, for any --batch on this dense
/// network (both runtimes; for convolutional networks tract's results change with the batch
/// size by rounding, onnxruntime's did not — README, "Runtimes").
#[test]
fn network_samples_do_not_depend_on_threads_or_batch() {
    each_runtime(|| {
        let model = fixture("digits50.onnx");
        let base = ["--score", &model, "--n", "96", "--seed", "9"];
        let run = |extra: &[&str], name: &str| {
            let mut a = base.to_vec();
            a.extend(extra);
            sample(&a, &tmp(name))
        };
        let one = run(&["--threads", "1"], "thr1");
        let two = run(&["--threads", "2", "--batch", "16"], "thr2");
        let odd = run(&["--threads", "2", "--batch", "40"], "thr2b");
        assert_eq!(one, two);
        assert_eq!(one, odd);
    });
}

/// config.json records the network and its conventions.
#[test]
fn config_records_the_network() {
    each_runtime(|| {
        let out = tmp("cfg");
        sample(&["--score", &fixture("toy2d-eps.onnx"), "--n", "10"], &out);
        let cfg: Value =
            serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap();
        assert!(cfg["score"]["model"].as_str().unwrap().ends_with("toy2d-eps.onnx"));
        assert_eq!(cfg["score"]["conventions"]["output"], "eps");
        assert_eq!(cfg["score"]["conventions"]["input"], "sigma");
        assert!(cfg["score"]["runtime"].as_str().unwrap().starts_with(RUNTIME.get()));
    });
}

/// NCSNv2's network (ermongroup/ncsnv2, level-index input, dynamo export) and score_sde's NCSN++
/// (σ input, legacy export), at small width with random weights, exported from their authors'
/// model code by `tests/onnx/make_real_nets.py` with PyTorch's float64 outputs on a fixed batch:
/// `anneal score` (tract, f32) matches them to 1e-5 of the largest entry. An f32 forward of
/// these ~40-layer networks differs from f64 by ~1e-6 relative (measured: 5e-7 NCSNv2,
/// 9.7e-7 NCSN++), so 1e-5 leaves a factor-10 margin and a wrong op or layout fails by O(1).
#[test]
fn real_architectures_match_pytorch() {
    each_runtime(|| {
        let dir = tmp("real");
        std::fs::create_dir_all(&dir).unwrap();
        for (name, sigma) in
            [("ncsnv2", "0.01"), ("ncsnv2", "5"), ("ncsnpp", "0.05"), ("ncsnpp", "5")]
        {
            let out = dir.join(format!("{name}-{sigma}.npy"));
            let o = anneal()
                .args(["score", "--score", &fixture(&format!("{name}.onnx"))])
                .args(["--points", &fixture(&format!("{name}-x.npy")), "--sigma", sigma, "--out"])
                .arg(&out)
                .output()
                .unwrap();
            assert!(o.status.success(), "{name}: {}", String::from_utf8_lossy(&o.stderr));
            let got = read_npy(&out);
            let want = read_npy(Path::new(&fixture(&format!("{name}-y-{sigma}.npy"))));
            let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let err = max_diff(&got, &want) / scale;
            assert!(err < 1e-5, "{name} at σ = {sigma}: relative error {err}");
        }
        // A level-index network asked for an untrained σ by `score`: refused, naming the levels.
        let (code, err) = fails(&[
            "score",
            "--score",
            &fixture("ncsnv2.onnx"),
            "--points",
            &fixture("ncsnv2-x.npy"),
            "--sigma",
            "0.02",
            "--out",
            &dir.join("no.npy").to_string_lossy(),
        ]);
        assert_eq!(code, 2);
        assert!(err.contains("σ = 0.02") && err.contains("level 8"), "{err}");
    });
}

/// The shipped digits network works out of the box: `--score digits` (embedded in the binary)
/// writes a grid of generated digits and metrics against the data. Its samples are new digits,
/// not noise and not copies: measured at n = 300, seed 0: mean distance to the nearest training
/// image 1.5 (two halves of the data: 1.12; a diverged or mis-declared network: > 10), Fréchet
/// distance in the digit classifier's features ≈ 5 (data halves 1.1; the untrained network:
/// 17 596). The bounds (2.5 and 20) separate those cases with wide margins; the run is
/// deterministic (fixed seed), so they test the pipeline, not luck.
#[test]
fn shipped_digits_network_samples_digits() {
    each_runtime(|| {
        let out = tmp("shipped");
        let o = anneal()
            .args(["sample", "--score", "digits", "--n", "300", "--out"])
            .arg(&out)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let stdout = String::from_utf8_lossy(&o.stdout);
        assert!(stdout.contains("score: digits (input sigma, output score"), "{stdout}");
        let m: Value =
            serde_json::from_slice(&std::fs::read(out.join("metrics.json")).unwrap()).unwrap();
        assert_eq!(m["non_finite"], 0);
        let nearest = m["mean_nearest_component_distance"].as_f64().unwrap();
        let c = &m["data_comparison"];
        let fd = c["frechet_features"].as_f64().unwrap();
        assert!(nearest < 2.5 && nearest > 0.5, "nearest {nearest}");
        assert!(fd < 20.0, "FD in features {fd}");
        assert!(c["distinct_nearest_fraction"].as_f64().unwrap() > 0.4);
        assert!(out.join("samples.png").exists());
    });
}

/// `tune --score` runs its cells through the network, records it (and the runtime) in each
/// cell's key, and ranks by `--metric fd`; `bench --score` times whole runs (a smoke run: one
/// repeat, no PyTorch).
#[test]
fn tune_and_bench_take_a_network() {
    each_runtime(|| {
        let out = tmp("tune");
        let model = fixture("toy2d-score.onnx");
        let o = anneal()
            .args(["tune", "--score", &model, "--levels", "4,8", "--eps-c", "1,2", "--seeds", "0"])
            .args(["--n", "64", "--metric", "fd", "--out"])
            .arg(&out)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let stdout = String::from_utf8_lossy(&o.stdout);
        assert!(stdout.contains("Fréchet distance"), "{stdout}");
        let sweep: Value =
            serde_json::from_slice(&std::fs::read(out.join("sweep.json")).unwrap()).unwrap();
        let rows = sweep["rows"].as_array().unwrap();
        assert_eq!(rows.len(), 4);
        for r in rows {
            assert_eq!(r["status"], "ok", "{r}");
            assert!(r["fd"].as_f64().unwrap() >= 0.0);
            assert!(r["config"]["score"].as_str().unwrap().ends_with("toy2d-score.onnx"));
            assert!(r["config"]["runtime"].as_str().unwrap().starts_with(RUNTIME.get()));
        }
        let o = anneal()
            .args(["bench", "--score", &model, "--n", "16", "--repeats", "1", "--no-numpy"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let stdout = String::from_utf8_lossy(&o.stdout);
        assert!(stdout.contains(&format!("runtime: {}", RUNTIME.get())), "{stdout}");
    });
}
