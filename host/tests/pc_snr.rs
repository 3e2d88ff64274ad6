//! PC's signal-to-noise corrector with its default norms (means over groups of 256 samples) is
//! right in every dimension; each sample's own norms are not in low dimension (README,
//! "The samplers"; `anneal_core::plan::SnrNorms`).
//!
//! Tolerances, from the sample size: a mode weight's standard error is √(w(1 − w)/n); a variance
//! estimated from m samples has relative standard error √(2/m) (Gaussian data). The covariance
//! bound is the 10% of τ²I, which also holds PC's own bias at snr 0.16 (measured 3–5%:
//! the corrector's step α ≈ 2 snr² v alone inflates a Gaussian's variance by snr²/(1 − snr²) =
//! 2.6%); at the sizes below 10% is ≥ 4 standard errors of the estimate.

use std::path::Path;

use assert_cmd::Command;
use serde_json::Value;

mod common;
use common::Scratch;

fn tmp(name: &str) -> Scratch {
    Scratch::new(&format!("anneal-pc-{}-{name}", std::process::id()))
}

/// Runs `sample` on the CPU; its samples (n × D) and metrics.
fn sample(args: &[&str], out: &Path) -> (Vec<Vec<f64>>, Value) {
    let o = Command::cargo_bin("anneal")
        .unwrap()
        .arg("sample")
        .args(args)
        .args(["--device", "cpu", "--out"])
        .arg(out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
    let m: Value =
        serde_json::from_slice(&std::fs::read(out.join("metrics.json")).unwrap()).unwrap();
    let b = std::fs::read(out.join("samples.npy")).unwrap();
    let hlen = u16::from_le_bytes([b[8], b[9]]) as usize;
    let header = String::from_utf8_lossy(&b[10..10 + hlen]).into_owned();
    let dim: usize = header
        .split("'shape': (")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .and_then(|s| s.split(',').nth(1))
        .and_then(|s| s.trim().parse().ok())
        .unwrap();
    let v: Vec<f64> = b[10 + hlen..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64)
        .collect();
    (v.chunks_exact(dim).map(<[f64]>::to_vec).collect(), m)
}

/// Mean and covariance of rows.
fn moments(rows: &[&Vec<f64>]) -> (Vec<f64>, Vec<Vec<f64>>) {
    let (n, d) = (rows.len() as f64, rows[0].len());
    let mean: Vec<f64> = (0..d).map(|j| rows.iter().map(|r| r[j]).sum::<f64>() / n).collect();
    let cov = (0..d)
        .map(|i| {
            (0..d)
                .map(|j| {
                    rows.iter().map(|r| (r[i] - mean[i]) * (r[j] - mean[j])).sum::<f64>()
                        / (n - 1.0)
                })
                .collect()
        })
        .collect();
    (mean, cov)
}

const TOY: [&str; 14] = [
    "--data",
    "toy2d",
    "--tau",
    "1",
    "--sampler",
    "pc",
    "--sigma-max",
    "10",
    "--sigma-min",
    "0.01",
    "--levels",
    "1000",
    "--snr",
    "0.16",
];

/// toy2d (modes at ±(5, 5), weights 0.2/0.8, τ = 1), PC with the default norms at N = 1000,
/// n = 20 000: the weights within 3 standard errors (0.0028 each), each mode's covariance within
/// 10% of I (its smaller mode holds ~4000 samples: a variance's standard error 2.2%). With each
/// sample's own norms the same run is far off — the test can tell.
#[test]
fn pc_default_recovers_toy2d_in_two_dimensions() {
    let n = 20_000usize;
    let mut args = TOY.to_vec();
    args.extend(["--n", "20000"]);
    let (x, m) = sample(&args, &tmp("toy-grouped"));
    let w: Vec<f64> =
        m["mode_weights"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    let se = (0.2f64 * 0.8 / n as f64).sqrt();
    assert!((w[0] - 0.2).abs() < 3.0 * se && (w[1] - 0.8).abs() < 3.0 * se, "weights {w:?}");
    for centre in [-5.0, 5.0] {
        let rows: Vec<&Vec<f64>> =
            x.iter().filter(|r| (r[0] + r[1] > 0.0) == (centre > 0.0)).collect();
        let (mean, cov) = moments(&rows);
        let m_se = 3.0 / (rows.len() as f64).sqrt();
        assert!(mean.iter().all(|&v| (v - centre).abs() < m_se), "mode {centre}: mean {mean:?}");
        for (i, row) in cov.iter().enumerate() {
            for (j, &c) in row.iter().enumerate() {
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((c - want).abs() < 0.1, "mode {centre}: covariance {cov:?}");
            }
        }
    }
    assert_eq!(m["non_finite"], 0);

    // Each sample's own norms: the state-dependent step pushes mass out of the modes.
    args.extend(["--snr-norms", "per-sample"]);
    let (x, m) = sample(&args, &tmp("toy-per-sample"));
    let w0 = m["mode_weights"][0].as_f64().unwrap();
    let spread = x.iter().map(|r| r[0].abs().max(r[1].abs())).fold(0.0, f64::max);
    assert!((w0 - 0.2).abs() > 10.0 * se && spread > 20.0, "per-sample: w0 {w0}, max |x| {spread}");
}

/// N(0.5·1, I) in D = 64 (one data point, τ = 1), PC with the default norms, n = 1024: the mean
/// within 3/√n per coordinate, the coordinates' variances on average within 10% of 1 (their
/// mean's standard error √(2/n)/√64 = 0.55%).
#[test]
fn pc_default_recovers_a_gaussian_in_64_dimensions() {
    let dir = tmp("g64");
    std::fs::create_dir_all(&dir).unwrap();
    let data = dir.join("point.csv");
    std::fs::write(&data, format!("{}\n", vec!["0.5"; 64].join(","))).unwrap();
    let data = data.to_string_lossy().into_owned();
    let mut args = TOY.to_vec();
    args[1] = &data;
    args.extend(["--n", "1024"]);
    let (x, _) = sample(&args, &dir.join("out"));
    let rows: Vec<&Vec<f64>> = x.iter().collect();
    let (mean, cov) = moments(&rows);
    let m_se = 3.0 / (x.len() as f64).sqrt();
    assert!(mean.iter().all(|&v| (v - 0.5).abs() < m_se + 1e-9), "mean {mean:?}");
    let var = cov.iter().enumerate().map(|(i, r)| r[i]).sum::<f64>() / 64.0;
    assert!((var - 1.0).abs() < 0.1, "mean variance {var}");
}

/// Grouped norms: the same samples for any --batch that holds whole groups, and any --threads;
/// a --batch that would split a group is refused (exit 2), naming the batch, the group and a fix.
#[test]
fn grouped_norms_do_not_depend_on_the_batch() {
    let mut args = TOY.to_vec();
    args[11] = "50";
    args.extend(["--n", "1000"]);
    let read = |extra: &[&str], name: &str| {
        let out = tmp(name);
        let mut a = args.clone();
        a.extend(extra);
        sample(&a, &out);
        std::fs::read(out.join("samples.npy")).unwrap()
    };
    let base = read(&[], "b256");
    assert_eq!(base, read(&["--batch", "512", "--threads", "1"], "b512"));
    assert_eq!(base, read(&["--batch", "1024", "--threads", "2"], "b1024"));
    let o = Command::cargo_bin("anneal")
        .unwrap()
        .arg("sample")
        .args(&args)
        .args(["--batch", "100", "--out"])
        .arg(tmp("b100"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("--batch = 100") && err.contains("--snr-group = 256"), "{err}");
    assert!(err.contains("--batch 256"), "{err}");
}
