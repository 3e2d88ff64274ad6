//! Score networks on a CUDA device (`--device cuda`: tract-cuda runs the network, anneal-gpu's
//! fused step updates the states on the same stream): the samples of the CPU path, for every
//! sampler kind, every output convention, the shipped network and the real architectures; a
//! NaN output stops the run naming its level and step. Skipped, and said, without a device;
//! failed instead when `ANNEAL_REQUIRE_GPU` is set.
//!
//! Tolerance: the GPU and the CPU compute the same f32 network with different kernels (cuBLAS
//! and tract-cuda's vs tract's or onnxruntime's CPU kernels: ≈ 1e-6 relative per forward pass;
//! tract-cuda's products are float32, no TF32), the same coefficients, and the same keyed noise
//! within float rounding (the device's `logf`/`sqrtf`). As for the CPU-vs-closed-form tests
//! (host/tests/network.rs), 1e-3 absolute per coordinate bounds that over a whole run at state
//! scale ≤ 10, while a wrong convention, σ or step moves samples by O(1). The deeper real
//! architectures get 1e-2 of the samples' scale (their outputs differ by ~1e-5 relative
//! between runtimes, over 10 steps).

use std::path::PathBuf;

use assert_cmd::Command;

mod common;
use common::{fixture, max_diff, read_npy};

const TOL: f32 = 1e-3;

/// GPU shards against the single GPU run: the same kernels and the same keyed noise, summed in
/// another order where a product's row count differs (≈ 1e-7 relative per step, over 100 steps
/// at sample scale ≤ 2; measured on an H200: 5.6e-6 for digits, 8.3e-7 for the shipped
/// network), far below the O(1) a wrong sample offset makes.
const SHARD_TOL: f32 = 1e-4;

fn anneal() -> Command {
    Command::cargo_bin("anneal").unwrap()
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("anneal-netgpu-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Runs `sample` with `args` on `device`; its samples and stdout.
fn sample(device: &str, args: &[&str], name: &str) -> (Vec<f32>, String) {
    let out = tmp(&format!("{name}-{device}"));
    let o = anneal()
        .arg("sample")
        .args(args)
        .args(["--device", device, "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{args:?} on {device}: {}", String::from_utf8_lossy(&o.stderr));
    (read_npy(&out.join("samples.npy")), String::from_utf8_lossy(&o.stdout).into_owned())
}

/// Whether a CUDA device runs networks here; without one the test is skipped (said), unless
/// `ANNEAL_REQUIRE_GPU` asks for a failure.
fn gpu_or_skip(test: &str) -> bool {
    let o = anneal()
        .args(["sample", "--score", &fixture("toy2d-score.onnx"), "--n", "4", "--levels", "3"])
        .args(["--device", "cuda", "--out"])
        .arg(tmp("probe"))
        .output()
        .unwrap();
    if o.status.success() {
        return true;
    }
    let why = String::from_utf8_lossy(&o.stderr).trim().to_string();
    assert!(std::env::var_os("ANNEAL_REQUIRE_GPU").is_none(), "ANNEAL_REQUIRE_GPU: {why}");
    eprintln!("SKIPPED {test}: no CUDA device runs networks here ({why})");
    false
}

/// CAS, ALS and PC (per-sample snr) through the exact-score networks: the CPU's samples.
#[test]
fn gpu_network_samples_equal_the_cpu() {
    if !gpu_or_skip("gpu_network_samples_equal_the_cpu") {
        return;
    }
    let toy = fixture("toy2d-score.onnx");
    let d50 = fixture("digits50.onnx");
    let cases: Vec<(&str, Vec<&str>)> = vec![
        ("toy-cas", vec!["--score", &toy, "--n", "300", "--seed", "3"]),
        (
            "toy-als",
            vec!["--score", &toy, "--n", "300", "--sampler", "als", "--steps-per-level", "5"],
        ),
        ("d50-cas", vec!["--score", &d50, "--n", "200"]),
        (
            "d50-pc",
            vec![
                "--score",
                &d50,
                "--n",
                "200",
                "--sampler",
                "pc",
                "--snr",
                "0.16",
                "--snr-norms",
                "per-sample",
            ],
        ),
    ];
    for (name, args) in cases {
        let (gpu, stdout) = sample("cuda", &args, name);
        let (cpu, _) = sample("cpu", &args, name);
        let d = max_diff(&gpu, &cpu);
        eprintln!("{name}: max |GPU − CPU| = {d:.3e}");
        assert!(d < TOL, "{name}: max |Δ| = {d}");
        assert!(stdout.contains("states and network outputs on the device"), "{stdout}");
        assert!(stdout.contains("tract-cuda"), "{stdout}");
    }
}

/// Every output convention and noise input on the device: the CPU's samples.
#[test]
fn gpu_every_convention() {
    if !gpu_or_skip("gpu_every_convention") {
        return;
    }
    let base = ["--n", "300", "--seed", "5", "--sigma-max", "10"];
    let (cpu, _) =
        sample("cpu", &[&base[..], &["--score", &fixture("toy2d-score.onnx")]].concat(), "conv");
    for name in ["score", "sigma-score", "eps", "denoiser", "logsigma", "level"] {
        let model = fixture(&format!("toy2d-{name}.onnx"));
        let (gpu, _) = sample("cuda", &[&base[..], &["--score", &model]].concat(), name);
        let d = max_diff(&gpu, &cpu);
        eprintln!("convention {name}: max |GPU − CPU| = {d:.3e}");
        assert!(d < TOL, "{name}: max |Δ| = {d}");
    }
}

/// The shipped digits network and the real architectures (NCSNv2, NCSN++) run on the device.
#[test]
fn gpu_shipped_and_real_networks() {
    if !gpu_or_skip("gpu_shipped_and_real_networks") {
        return;
    }
    let (gpu, stdout) = sample("cuda", &["--score", "digits", "--n", "300"], "digits");
    let (cpu, _) = sample("cpu", &["--score", "digits", "--n", "300"], "digits");
    let d = max_diff(&gpu, &cpu);
    eprintln!("shipped digits: max |GPU − CPU| = {d:.3e}\n{stdout}");
    assert!(d < TOL, "digits: max |Δ| = {d}");
    // 16 × 16 images; the fixtures' input points serve as --data (D = 256). NCSNv2 takes a
    // level index: its schedule is snapped onto the trained σ's.
    for (net, snap) in [("ncsnv2", Some("--snap-levels")), ("ncsnpp", None)] {
        let (model, data) = (fixture(&format!("{net}.onnx")), fixture(&format!("{net}-x.npy")));
        let mut args = vec!["--score", &model, "--data", &data, "--n", "8", "--levels", "10"];
        args.extend(["--sigma-max", "5", "--sigma-min", "0.05"]);
        args.extend(snap);
        let (gpu, stdout) = sample("cuda", &args, net);
        let (cpu, _) = sample("cpu", &args, net);
        let scale = cpu.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let d = max_diff(&gpu, &cpu);
        eprintln!("{net}: max |GPU − CPU| = {d:.3e} (samples' scale {scale:.2})\n{stdout}");
        assert!(d < 1e-2 * scale.max(1.0), "{net}: max |Δ| = {d}");
    }
}

/// A NaN output on the device stops the run with exit 1, naming the level and step.
#[test]
fn gpu_nan_network_stops_naming_level_and_step() {
    if !gpu_or_skip("gpu_nan_network_stops_naming_level_and_step") {
        return;
    }
    let out = tmp("nan");
    let o = anneal()
        .args(["sample", "--score", &fixture("bad-nan.onnx"), "--score-input", "sigma"])
        .args(["--score-output", "score", "--n", "20", "--device", "cuda", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    eprintln!("{err}");
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("non-finite") && err.contains("level") && err.contains("step"), "{err}");
    assert!(!out.join("samples.npy").exists());
}

/// Sample shards drawn on the device: each shard starts at its own sample offset (its start
/// and noise keyed by the sample index, as on the CPU), and the merged set is the single GPU
/// run's — byte for byte where the device's rows do not depend on the rows of a call (the
/// direct path: one thread per sample), else within float rounding (cuBLAS and tract-cuda may
/// sum in another order for another number of rows: `SHARD_TOL`). Every
/// case is reported before any assertion. Merge refuses a GPU shard beside a CPU one drawn with
/// the same flags (`--device auto` on a node without a GPU).
#[test]
fn gpu_shards_merge_into_the_single_gpu_run() {
    if !gpu_or_skip("gpu_shards_merge_into_the_single_gpu_run") {
        return;
    }
    let cases: [(&str, &[&str], bool); 3] = [
        ("toy2d (direct path)", &["--data", "toy2d", "--n", "3000", "--seed", "4"], true),
        ("digits (GEMM path)", &["--data", "digits", "--n", "1000", "--seed", "5"], false),
        ("shipped network", &["--score", "digits", "--n", "1000", "--seed", "6"], false),
    ];
    let mut failures = Vec::new();
    for (i, (name, args, exact)) in cases.iter().enumerate() {
        let single = tmp(&format!("shard-single-{i}"));
        let run = |extra: &[&str], out: &PathBuf| {
            let o = anneal()
                .arg("sample")
                .args(*args)
                .args(["--device", "cuda"])
                .args(extra)
                .arg("--out")
                .arg(out)
                .output()
                .unwrap();
            assert!(o.status.success(), "{name} {extra:?}: {}", String::from_utf8_lossy(&o.stderr));
            String::from_utf8_lossy(&o.stdout).into_owned()
        };
        run(&[], &single);
        let shards: Vec<PathBuf> = (1..=3).map(|s| tmp(&format!("shard-{i}-{s}"))).collect();
        for (s, dir) in shards.iter().enumerate() {
            let out = run(&["--shard", &format!("{}/3", s + 1)], dir);
            assert!(out.contains("on NVIDIA") || out.contains("(compute"), "{out}");
        }
        let merged = tmp(&format!("shard-merged-{i}"));
        let o = anneal()
            .args(["sample", "merge", "--out"])
            .arg(&merged)
            .args(shards.iter().rev())
            .output()
            .unwrap();
        assert!(o.status.success(), "{name} merge: {}", String::from_utf8_lossy(&o.stderr));
        let (a, b) = (
            std::fs::read(single.join("samples.npy")).unwrap(),
            std::fs::read(merged.join("samples.npy")).unwrap(),
        );
        let d = max_diff(
            &read_npy(&single.join("samples.npy")),
            &read_npy(&merged.join("samples.npy")),
        );
        let device = |dir: &PathBuf| {
            let c: serde_json::Value =
                serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
            c["device"].clone()
        };
        eprintln!(
            "{name}: merged GPU shards {} the single GPU run (max |Δ| = {d:.3e}); device {}",
            if a == b { "are byte for byte" } else { "differ from" },
            device(&merged)
        );
        if (*exact && a != b) || d >= SHARD_TOL || device(&merged) != device(&single) {
            failures.push(format!("{name}: identical {}, max |Δ| {d:.3e}", a == b));
        }
        if i == 1 {
            // The same flags (`--device auto`), shard 2 on a node without a GPU: merge refuses
            // the mix, naming both devices.
            let auto = |shard: &str, hide_gpu: bool| {
                let out = tmp(&format!("shard-auto-{}", &shard[..1]));
                let mut c = anneal();
                if hide_gpu {
                    c.env("CUDA_VISIBLE_DEVICES", "");
                }
                let o = c
                    .arg("sample")
                    .args(*args)
                    .args(["--device", "auto", "--shard", shard, "--out"])
                    .arg(&out)
                    .output()
                    .unwrap();
                assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
                eprintln!("--device auto, shard {shard}: {}", String::from_utf8_lossy(&o.stdout));
                out
            };
            let (gpu1, cpu2) = (auto("1/3", false), auto("2/3", true));
            let o = anneal()
                .args(["sample", "merge", "--out"])
                .arg(tmp("shard-mixed"))
                .args([&gpu1, &cpu2])
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&o.stderr);
            eprintln!("a GPU shard and a CPU shard: {err}");
            if o.status.code() != Some(2)
                || !err.contains("were drawn on different devices (NVIDIA")
                || !err.contains("and cpu)")
            {
                failures.push(format!("mixed devices not refused: {err}"));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
