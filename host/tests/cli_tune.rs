//! `anneal tune` and the consistency trace, end to end.

use std::path::PathBuf;

use assert_cmd::Command;
use common::sweep_without_clock;
use serde_json::Value;

mod common;

fn anneal() -> Command {
    Command::cargo_bin("anneal").unwrap()
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("anneal-tune-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn tune(out: &PathBuf) -> String {
    let o = anneal()
        .args([
            "tune", "--levels", "4,16", "--eps-c", "1,2", "--eps-b", "0.00005", "--seeds", "0,1",
            "--n", "100", "--out",
        ])
        .arg(out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

/// Every cell is in sweep.csv; ε_b out of bounds at N = 4 (η = 0.5 < 1 − γ) is flagged with its
/// step, never NaN; removing cells from the record recomputes exactly those.
#[test]
fn sweep_covers_the_grid_flags_bounds_and_resumes() {
    let out = tmp("grid");
    let first = tune(&out);
    assert!(first.contains("computed 12 cells, reused 0"), "{first}");
    let csv = std::fs::read_to_string(out.join("sweep.csv")).unwrap();
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    assert_eq!(rows.len(), 2 * 3 * 2, "{csv}");
    for n in ["4", "16"] {
        for (p, v) in [("eps_c", "1"), ("eps_c", "2"), ("eps_b", "0.00005")] {
            for seed in ["0", "1"] {
                let prefix = format!("toy2d,cas,{n},{p},{v},{seed},");
                assert!(rows.iter().any(|r| r.starts_with(&prefix)), "missing {prefix}");
            }
        }
    }
    let oob: Vec<&&str> = rows.iter().filter(|r| r.contains(",out_of_bounds,")).collect();
    assert!(!oob.is_empty());
    for r in &oob {
        assert!(
            r.contains("η = ε_b/σ_N² = 0.5000 is outside [1 − γ, 1]") && r.contains("at step 1"),
            "{r}"
        );
        assert!(!r.contains("NaN"), "{r}");
    }
    assert!(rows.iter().filter(|r| r.contains(",ok,")).all(|r| !r.contains("NaN")));
    assert!(out.join("fig_eps_c.png").exists() && out.join("fig_eps_b.png").exists());
    assert!(out.join("trace.png").exists());
    // Each run cell carries all of sample's metrics and its trace.
    let sweep0: Value =
        serde_json::from_slice(&std::fs::read(out.join("sweep.json")).unwrap()).unwrap();
    for r in sweep0["rows"].as_array().unwrap().iter().filter(|r| r["status"] == "ok") {
        let m = &r["metrics"];
        assert_eq!(m["mode_weights"].as_array().unwrap().len(), 2);
        assert!(m["mean_pairwise_distance"]["samples"].as_f64().unwrap() > 0.0);
        assert!(m["score_evals_per_second"].as_f64().unwrap() > 0.0);
        assert_eq!(
            r["trace"].as_array().unwrap().len(),
            r["trace_levels"].as_array().unwrap().len()
        );
    }
    let summary: Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert!(summary.as_array().unwrap().iter().any(|b| b["levels"] == 16 && b["param"] == "eps_c"));

    // Remove three cells from the record, run again: exactly those are recomputed, with the
    // same results (sweep.json is rebuilt from the record).
    let record = std::fs::read_to_string(out.join("cells.jsonl")).unwrap();
    let mut lines: Vec<&str> = record.lines().collect();
    let removed: Vec<Value> = lines.drain(2..5).map(|l| serde_json::from_str(l).unwrap()).collect();
    std::fs::write(out.join("cells.jsonl"), lines.join("\n") + "\n").unwrap();
    let second = tune(&out);
    assert!(second.contains("computed 3 cells, reused 9"), "{second}");
    let again: Value =
        serde_json::from_slice(&std::fs::read(out.join("sweep.json")).unwrap()).unwrap();
    for r in removed {
        let same =
            again["rows"].as_array().unwrap().iter().find(|x| x["config"] == r["config"]).unwrap();
        assert_eq!(same["sliced_w2"], r["sliced_w2"]);
        assert_eq!(same["status"], r["status"]);
    }
    let third = tune(&out);
    assert!(third.contains("computed 0 cells, reused 12"), "{third}");
    let _ = std::fs::remove_dir_all(&out);
}

/// The trace on one-point data in D = 200 (50 samples: 10 000 values, so σ_eff has a relative
/// standard error of 1/√20 000 = 0.7%): CAS stays within 5 of them (3.5%) of σ_i at every level;
/// ALS with one step of ε = 1.5σ_N² per level (inside the bound, far from consistent) departs by
/// more than 50% somewhere.
#[test]
fn trace_shows_cas_consistent_and_als_not() {
    let dir = tmp("trace");
    std::fs::create_dir_all(&dir).unwrap();
    let point = dir.join("one.csv");
    std::fs::write(&point, vec!["0"; 200].join(",")).unwrap();
    let read = |out: &PathBuf| -> Vec<f64> {
        std::fs::read_to_string(out.join("trace.csv"))
            .unwrap()
            .lines()
            .skip(1)
            .map(|l| l.split(',').nth(3).unwrap().parse().unwrap())
            .collect()
    };
    let base = ["sample", "--sigma-max", "10", "--levels", "10", "--n", "50", "--trace", "--data"];
    let cas = dir.join("cas");
    anneal().args(base).arg(&point).arg("--out").arg(&cas).assert().success();
    let r = read(&cas);
    assert_eq!(r.len(), 9, "levels 2..10");
    assert!(r.iter().all(|x| (x - 1.0).abs() < 0.035), "CAS: {r:?}");
    let als = dir.join("als");
    anneal()
        .args(base)
        .arg(&point)
        .args(["--sampler", "als", "--steps-per-level", "1", "--eps", "1.5e-4", "--out"])
        .arg(&als)
        .assert()
        .success();
    let r = read(&als);
    assert!(r.iter().any(|x| (x - 1.0).abs() > 0.5), "ALS: {r:?}");
    assert!(als.join("trace.png").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_lists_exit_2() {
    for (flag, value, want) in [
        ("--levels", "4,x", "--levels = 4,x: 'x' is not a number"),
        ("--levels", "1", "--levels: 1 is not a whole number ≥ 2"),
        ("--eps-b", "logspace:1:0.1:3", "needs 0 < LO < HI and COUNT ≥ 2"),
    ] {
        let out = tmp("bad");
        let o = anneal().args(["tune", flag, value, "--out"]).arg(&out).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{flag} {value}");
        let err = String::from_utf8(o.stderr).unwrap();
        assert!(err.contains(want) && err.lines().count() == 1, "{err}");
    }
}

/// CAS and ALS in one sweep on one-point data: rows for both, their traces side by side in
/// trace.png, and CAS's trace consistent (within 5% at 30 samples × 200 values) while ALS's is not.
#[test]
fn cas_and_als_in_one_sweep() {
    let dir = tmp("both");
    std::fs::create_dir_all(&dir).unwrap();
    let point = dir.join("one.csv");
    std::fs::write(&point, vec!["0"; 200].join(",")).unwrap();
    let out = dir.join("out");
    anneal()
        .args([
            "tune",
            "--sampler",
            "cas,als",
            "--sigma-max",
            "10",
            "--levels",
            "8",
            "--seeds",
            "0",
            "--n",
            "30",
        ])
        .args(["--eps-c", "2", "--eps", "1.5e-4", "--steps-per-level", "1", "--data"])
        .arg(&point)
        .arg("--out")
        .arg(&out)
        .assert()
        .success();
    let sweep: Value =
        serde_json::from_slice(&std::fs::read(out.join("sweep.json")).unwrap()).unwrap();
    let rows = sweep["rows"].as_array().unwrap();
    let trace = |s: &str| -> Vec<f64> {
        let r = rows.iter().find(|r| r["config"]["sampler"] == s).unwrap();
        r["trace"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect()
    };
    assert!(trace("cas").iter().all(|x| (x - 1.0).abs() < 0.05), "{:?}", trace("cas"));
    assert!(trace("als").iter().any(|x| (x - 1.0).abs() > 0.5), "{:?}", trace("als"));
    assert!(
        out.join("trace.png").exists()
            && out.join("fig_eps_c.png").exists()
            && out.join("fig_eps.png").exists()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

const SHARDED: [&str; 10] =
    ["tune", "--levels", "4,16", "--eps-c", "1,2", "--seeds", "0,1", "--n", "100", "--out"];

/// `tune` of the sharded tests' grid (8 cells) into `out`, with more flags after `--out`.
fn tune_sharded(out: &std::path::Path, more: &[&str]) -> std::process::Output {
    anneal().args(SHARDED).arg(out).args(more).output().unwrap()
}

/// Three shards, one of them killed after its first cell and run again, merged in shuffled
/// order: the merged folder is the single run's — every field of sweep.json and sweep.csv but
/// the wall-clock ones, and summary.json and the figures byte for byte. `tune status` counts
/// each shard's cells.
#[test]
fn shards_merge_into_the_single_run() {
    let root = tmp("shards");
    let single = root.join("single");
    assert!(tune_sharded(&single, &[]).status.success());
    let shard = |i: usize| root.join(format!("shard{i}"));
    for i in [1, 3] {
        let o = tune_sharded(&shard(i), &["--shard", &format!("{i}/3")]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    // Shard 2 is killed right after its first cell reaches the record.
    let o = anneal()
        .args(SHARDED)
        .arg(shard(2))
        .args(["--shard", "2/3"])
        .env("ANNEAL_CRASH_AT", "cell-appended")
        .output()
        .unwrap();
    assert!(!o.status.success());
    let status = |dirs: &[PathBuf]| {
        let o = anneal().args(["tune", "status"]).args(dirs).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    };
    let s = status(&[shard(1), shard(2), shard(3)]);
    // Shard 2's share (2 or 3 of the 8 cells: the partition's sizes differ by at most one).
    let line = s.lines().find(|l| l.contains("shard2")).unwrap();
    let share: usize = line.rsplit_once("1/").unwrap().1.trim().parse().unwrap();
    assert!(share == 2 || share == 3, "{s}");
    assert!(s.contains(&format!("overall: {}/8 cells done", 8 - share + 1)), "{s}");
    let left = share - 1;
    // Merging now lists what is missing and writes nothing.
    let merged = root.join("merged");
    let o = anneal()
        .args(["tune", "merge", "--out"])
        .arg(&merged)
        .args([shard(2), shard(1), shard(3)])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&format!("{left} of 8 cells are missing (shard 2/3: {left})")), "{err}");
    assert!(!merged.join("sweep.json").exists());
    // The killed shard resumes and finishes.
    let o = tune_sharded(&shard(2), &["--shard", "2/3"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let done = format!("computed {left} cells, reused 1");
    assert!(String::from_utf8_lossy(&o.stdout).contains(&done));
    assert!(status(&[shard(3), shard(2), shard(1)]).contains("overall: 8/8 cells done"));
    let o = anneal()
        .args(["tune", "merge", "--out"])
        .arg(&merged)
        .args([shard(3), shard(1), shard(2)])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(sweep_without_clock(&merged), sweep_without_clock(&single));
    for f in ["summary.json", "fig_eps_c.png", "trace.png", "tune.json"] {
        assert_eq!(
            std::fs::read(merged.join(f)).unwrap(),
            std::fs::read(single.join(f)).unwrap(),
            "{f}"
        );
    }
    // Running the sweep in the merged folder finds every cell done.
    let o = tune_sharded(&merged, &[]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("computed 0 cells, reused 8"));
    let _ = std::fs::remove_dir_all(&root);
}

/// Merge refuses shards of different sweeps, a shard given twice, a merged folder that holds a
/// sweep; with --partial it writes what there is and says what is missing.
#[test]
fn merge_refuses_what_is_not_one_sweep() {
    let root = tmp("mixed");
    let (a, b, c) = (root.join("a"), root.join("b"), root.join("c"));
    assert!(tune_sharded(&a, &["--shard", "1/2"]).status.success());
    let o = anneal()
        .args(["tune", "--levels", "4", "--eps-c", "1,2", "--seeds", "0,1", "--n", "100"])
        .args(["--shard", "2/2", "--out"])
        .arg(&b)
        .output()
        .unwrap();
    assert!(o.status.success());
    let merge = |out: &PathBuf, dirs: &[&PathBuf], more: &[&str]| {
        anneal().args(["tune", "merge", "--out"]).arg(out).args(more).args(dirs).output().unwrap()
    };
    let o = merge(&root.join("m1"), &[&a, &b], &[]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("are shards of different runs") && err.contains("--levels 4"), "{err}");
    let o = merge(&root.join("m2"), &[&a, &a], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("are both shard 1/2"));
    let o = merge(&root.join("m3"), &[&a], &[]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("4 of 8 cells are missing (shard 2/2: 4, no folder given)"), "{err}");
    let o = merge(&root.join("m3"), &[&a], &["--partial"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rows: Value =
        serde_json::from_slice(&std::fs::read(root.join("m3/sweep.json")).unwrap()).unwrap();
    assert_eq!(rows["rows"].as_array().unwrap().len(), 4);
    let o = merge(&root.join("m3"), &[&a], &["--partial"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("already holds a sweep"));
    let o = anneal().args(SHARDED).arg(&c).args(["--shard", "3/2"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--shard = 3/2: I = 3 is outside 1..=2"));
    let o = anneal().args(["tune", "status"]).arg(&root).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a folder written by `anneal tune`"));
    let _ = std::fs::remove_dir_all(&root);
}
