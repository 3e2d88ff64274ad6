//! `anneal schedule` end to end: the JSON fields, the text table, and bad flags (status 2, one
//! line naming the flag and the bound).

use assert_cmd::Command;
use serde_json::Value;

fn anneal() -> Command {
    Command::cargo_bin("anneal").unwrap()
}

fn json(args: &[&str]) -> Value {
    let out = anneal().arg("schedule").args(args).arg("--json").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn json_has_the_schedule_step_size_and_cas_coefficients() {
    let v = json(&[
        "--dim",
        "3072",
        "--sigma-max",
        "50",
        "--sigma-min",
        "0.01",
        "--levels",
        "232",
        "--steps-per-level",
        "5",
        "--eps-c",
        "2",
    ]);
    assert_eq!(v["levels"], 232);
    let sigmas = v["sigmas"].as_array().unwrap();
    assert_eq!(sigmas.len(), 232);
    assert_eq!(sigmas[0], 50.0);
    assert_eq!(sigmas[231], 0.01);
    let ratio = v["ratio"].as_f64().unwrap();
    assert!((ratio - (0.01f64 / 50.0).powf(1.0 / 231.0)).abs() < 1e-15);
    let eps = v["step_size"].as_f64().unwrap();
    assert!((eps - 6.2e-6).abs() < 0.05e-6, "ε = {eps}");
    assert_eq!(v["step_size_in_bound"], true);
    let eta = v["eta"].as_array().unwrap();
    let beta = v["beta"].as_array().unwrap();
    assert_eq!((eta.len(), beta.len()), (231, 231));
    for (e, b) in eta.iter().zip(beta) {
        let (e, b) = (e.as_f64().unwrap(), b.as_f64().unwrap());
        assert!((e - (1.0 - ratio * ratio)).abs() < 1e-14);
        assert!((b * b - e).abs() < 1e-14);
    }
}

#[test]
fn technique2_chooses_the_levels() {
    let v = json(&["--dim", "3072", "--sigma-max", "50", "--sigma-min", "0.01", "--technique2"]);
    assert_eq!(v["levels"], 220);
    assert_eq!(v["technique2_c"], 0.5);
    assert!(v.get("eta").is_none() && v.get("step_size").is_none());
    // N is rounded up, so the levels' C is at least the one asked for; it is printed.
    let c = v["levels_c"].as_f64().unwrap();
    assert!((0.5..0.51).contains(&c), "{c}");
    let o = anneal()
        .args(["schedule", "--dim", "3072", "--sigma-max", "50", "--technique2"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("with C = 0.5, rounded up: these N levels give C = 0.5042"), "{text}");
    // NCSNv2's released CIFAR-10 schedule (232 levels) is Technique 2 at C ≈ 0.567.
    let v = json(&["--dim", "3072", "--sigma-max", "50", "--sigma-min", "0.01", "--levels", "232"]);
    let c = v["levels_c"].as_f64().unwrap();
    assert!((c - 0.5670).abs() < 5e-5, "{c}");
}

#[test]
fn text_table_lists_every_level() {
    let out = anneal()
        .args([
            "schedule",
            "--dim",
            "2",
            "--sigma-max",
            "20",
            "--sigma-min",
            "1",
            "--levels",
            "10",
            "--eps-c",
            "inf",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("levels N = 10"));
    assert_eq!(text.lines().filter(|l| l.contains("1.000000000  ")).count(), 9, "{text}");
    assert!(text.lines().last().unwrap().contains("(denoise)"));
}

/// The flag groups are sample's: N defaults to 100, σ_N to 0.01; σ_1 = auto (Technique 1) needs
/// data, which schedule has none of.
#[test]
fn defaults_are_samples() {
    let v = json(&["--dim", "2", "--sigma-max", "20"]);
    assert_eq!(v["levels"], 100);
    assert_eq!(v["sigmas"][99], 0.01);
    let out = anneal().args(["schedule", "--dim", "2"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("--sigma-max = auto needs data points") && err.lines().count() == 1,
        "{err}"
    );
}

/// Each bad flag: status 2 and exactly one line on stderr naming the flag and the bound.
#[test]
fn bad_flags_exit_2_with_one_line() {
    let base = ["schedule", "--dim", "2", "--sigma-max", "20", "--sigma-min", "1"];
    let cases: &[(&[&str], &str)] = &[
        (&["--levels", "1"], "--levels = 1 is out of range: must be ≥ 2"),
        (&["--levels", "10", "--eps-c", "0.5"], "--eps-c = 0.5 is out of range: must be ≥ 1"),
        (&["--levels", "10", "--eps-c", "nan"], "--eps-c = NaN"),
        (
            &["--levels", "10", "--eps-b", "0"],
            "--eps-b = 0 is out of range: must be finite and > 0",
        ),
        (
            &["--levels", "10", "--eps-b", "0.1"],
            "η = ε_b/σ_N² = 0.1000 is outside [1 − γ, 1] = [0.2831, 1.000]",
        ),
        (&["--levels", "10", "--eps-b", "0.1"], "at step 1 (σ_1 → σ_2)"),
        (
            &["--levels", "10", "--steps-per-level", "0"],
            "--steps-per-level = 0 is out of range: must be ≥ 1",
        ),
        (&["--technique2", "--c", "1.5"], "--c = 1.5 is out of range: must be in (0, 1)"),
        (&["--levels", "x"], "'--levels <N>'"),
        (&["--levels", "3", "--eps-c", "2", "--eps-b", "1"], "--eps-c"),
    ];
    for (extra, want) in cases {
        let out = anneal().args(base).args(*extra).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{extra:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "{extra:?}: {err}");
        assert!(err.contains(want), "{extra:?}: {err}");
        assert!(out.stdout.is_empty());
    }
    // σ_N ≥ σ_1, a bad σ, a bad dimension.
    for (args, want) in [
        (
            vec!["--dim", "2", "--sigma-max", "1", "--sigma-min", "5", "--levels", "4"],
            "--sigma-min = 5 must be below --sigma-max = 1",
        ),
        (
            vec!["--dim", "2", "--sigma-max", "-1", "--sigma-min", "0.1", "--levels", "4"],
            "--sigma-max = -1 is out of range",
        ),
        (
            vec!["--dim", "0", "--sigma-max", "1", "--sigma-min", "0.1", "--levels", "4"],
            "--dim = 0",
        ),
    ] {
        let out = anneal().arg("schedule").args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
}
