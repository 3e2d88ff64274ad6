//! What anneal promises about your files (README): nothing finished is lost and nothing a reader
//! sees mixes two runs — under a killed process (at each write step, through the
//! `ANNEAL_CRASH_AT` crash points), a full disk (a file-size limit) and a second process.

use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;
use serde_json::Value;

fn anneal() -> Command {
    Command::cargo_bin("anneal").unwrap()
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("anneal-files-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// `sample` into `out` with `seed` (small and quick), extra flags and environment.
fn sample(out: &Path, seed: u64, extra: &[&str], crash: Option<&str>) -> Output {
    let mut c = anneal();
    c.args(["sample", "--n", "300", "--levels", "20", "--seed", &seed.to_string(), "--out"])
        .arg(out)
        .args(extra);
    if let Some(at) = crash {
        c.env("ANNEAL_CRASH_AT", at);
    }
    c.output().unwrap()
}

/// The visible entries of a folder, sorted.
fn visible(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|f| !f.starts_with('.'))
        .collect();
    v.sort();
    v
}

/// The run an output folder holds: `Some(seed)` if it is exactly one of the reference sets (the
/// same samples.npy bytes, config.json's seed and metrics as the reference run of that seed),
/// `None` if there is no folder; panics on a mix.
fn which_set(out: &Path, refs: &[(u64, PathBuf)]) -> Option<u64> {
    if !out.exists() {
        return None;
    }
    let files = visible(out);
    assert_eq!(files, ["config.json", "metrics.json", "samples.npy", "samples.png"], "{out:?}");
    let config: Value = serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap())
        .unwrap_or_else(|e| panic!("{out:?}: config.json unreadable: {e}"));
    let seed = config["flags"]["seed"].as_u64().unwrap();
    let (_, r) = refs.iter().find(|(s, _)| *s == seed).expect("a reference seed");
    assert_eq!(
        std::fs::read(out.join("samples.npy")).unwrap(),
        std::fs::read(r.join("samples.npy")).unwrap(),
        "{out:?}: samples.npy is not the run of config.json's seed {seed} (a mixed set)"
    );
    let metric = |d: &Path| -> Value {
        let m: Value = serde_json::from_slice(&std::fs::read(d.join("metrics.json")).unwrap())
            .unwrap_or_else(|e| panic!("{d:?}: metrics.json unreadable: {e}"));
        m["sliced_wasserstein"].clone()
    };
    assert_eq!(metric(out), metric(r), "{out:?}: metrics.json of another run (a mixed set)");
    Some(seed)
}

fn references(dir: &Path, seeds: &[u64]) -> Vec<(u64, PathBuf)> {
    seeds
        .iter()
        .map(|&s| {
            let r = dir.join(format!("ref{s}"));
            let o = sample(&r, s, &[], None);
            assert!(o.status.success(), "{}", text(&o));
            (s, r)
        })
        .collect()
}

/// `sample --force` killed after each file of the new set, before the move into place, and
/// between the exchange and the deletion of the old set: the folder holds the previous set or
/// the new one, whole, and no visible partial output is left beside it; the next run removes
/// the killed run's hidden partial folder.
#[test]
fn a_killed_sample_leaves_the_old_set_or_the_new_one() {
    let dir = tmp("kill");
    let refs = references(&dir, &[1, 2]);
    let out = dir.join("out");
    for at in [
        "wrote:config.json",
        "wrote:metrics.json",
        "wrote:samples.png",
        "wrote:samples.npy",
        "commit",
        "exchanged",
    ] {
        let _ = std::fs::remove_dir_all(&out);
        assert!(sample(&out, 1, &[], None).status.success());
        let o = sample(&out, 2, &["--force"], Some(at));
        assert!(!o.status.success(), "{at}: the crash point was not reached");
        let got = which_set(&out, &refs);
        let want = if at == "exchanged" { 2 } else { 1 };
        assert_eq!(got, Some(want), "{at}");
        assert_eq!(visible(&dir), ["out", "ref1", "ref2"], "{at}: visible leftovers");
    }
    // A killed run without a previous set leaves no --out at all.
    let fresh = dir.join("fresh");
    assert!(!sample(&fresh, 1, &[], Some("wrote:samples.npy")).status.success());
    assert!(!fresh.exists());
    let hidden = |d: &Path| {
        std::fs::read_dir(d)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().contains("partial"))
            .count()
    };
    assert!(hidden(&dir) > 0, "the killed runs' partial folders");
    assert!(sample(&out, 2, &["--force"], None).status.success());
    assert!(sample(&fresh, 2, &[], None).status.success());
    assert_eq!(hidden(&dir), 0, "partial folders of dead processes are removed");
    assert_eq!(which_set(&fresh, &refs), Some(2));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A full disk (a 20 KiB file-size limit: samples.png does not fit): exit 1 naming the file,
/// the previous set untouched, nothing partial left.
#[test]
fn a_full_disk_keeps_the_previous_set() {
    let dir = tmp("full");
    let refs = references(&dir, &[1]);
    let out = dir.join("out");
    assert!(sample(&out, 1, &[], None).status.success());
    let bin = assert_cmd::cargo::cargo_bin("anneal");
    let o = std::process::Command::new("bash")
        .arg("-c")
        .arg("ulimit -f 20; exec \"$0\" \"$@\"")
        .arg(&bin)
        .args(["sample", "--n", "300", "--levels", "20", "--seed", "2", "--force", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("samples.png") && t.contains("nothing was replaced"), "{t}");
    assert_eq!(which_set(&out, &refs), Some(1));
    assert_eq!(visible(&dir), ["out", "ref1"]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Two processes writing one --out: with --force both finish and the folder holds one of the
/// two sets whole (20 trials); without --force onto a new folder, one set lands and the other
/// run either is refused at start or, finishing second, keeps its set under a name it reports.
#[test]
fn two_processes_on_one_folder_never_mix() {
    let dir = tmp("race");
    let refs = references(&dir, &[1, 2]);
    let bin = assert_cmd::cargo::cargo_bin("anneal");
    let spawn = |out: &Path, seed: u64, force: bool| {
        let mut c = std::process::Command::new(&bin);
        c.args(["sample", "--n", "300", "--levels", "20", "--seed", &seed.to_string(), "--out"])
            .arg(out)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        if force {
            c.arg("--force");
        }
        c.spawn().unwrap()
    };
    let out = dir.join("out");
    assert!(sample(&out, 1, &[], None).status.success());
    for trial in 0..20 {
        let (a, b) = (spawn(&out, 1, true), spawn(&out, 2, true));
        let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
        assert!(a.status.success() && b.status.success(), "{trial}: {}{}", text(&a), text(&b));
        assert!(which_set(&out, &refs).is_some(), "{trial}");
    }
    for trial in 0..10 {
        let fresh = dir.join(format!("fresh{trial}"));
        let (a, b) = (spawn(&fresh, 1, false), spawn(&fresh, 2, false));
        let outs = [a.wait_with_output().unwrap(), b.wait_with_output().unwrap()];
        let ok: Vec<&Output> = outs.iter().filter(|o| o.status.success()).collect();
        let landed = which_set(&fresh, &refs).expect("one set landed");
        if ok.len() == 1 {
            let other = outs.iter().find(|o| !o.status.success()).unwrap();
            let t = text(other);
            if other.status.code() == Some(1) {
                assert!(t.contains("appeared while this run was sampling"), "{t}");
                let kept = t.trim_end().rsplit(" kept in ").next().unwrap();
                let other_seed = which_set(Path::new(kept), &refs).unwrap();
                assert_ne!(other_seed, landed, "the kept set is the other run's");
                std::fs::remove_dir_all(kept).unwrap();
            } else {
                assert_eq!(other.status.code(), Some(2), "{t}");
                assert!(t.contains("exists"), "{t}");
            }
        } else {
            assert_eq!(ok.len(), 2, "at least one run lands its set");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// An --out that cannot be written is refused before sampling (exit 2, naming it).
#[test]
fn an_unwritable_out_is_refused_before_sampling() {
    for out in ["/proc/anneal-x", "/proc/anneal-x/y", "/dev/null/x"] {
        // 10⁷ samples would take minutes: a refusal after sampling could not pass quickly.
        let o = anneal().args(["sample", "--n", "10000000", "--out", out]).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{out}: {}", text(&o));
        assert!(text(&o).contains(&format!("--out = {out}")), "{}", text(&o));
    }
}

/// `tune` into `out` over a small grid (8 cells).
fn tune(out: &Path, grid: &[&str], crash: Option<&str>) -> Output {
    let mut c = anneal();
    c.args(["tune", "--n", "100", "--seeds", "0,1"]).args(grid).arg("--out").arg(out);
    if let Some(at) = crash {
        c.env("ANNEAL_CRASH_AT", at);
    }
    c.output().unwrap()
}

const GRID: [&str; 4] = ["--levels", "4,8", "--eps-c", "1,2"];

/// The finished cells of a tune folder: their configurations → sliced W2.
fn cells(out: &Path) -> Vec<(String, Value)> {
    let mut v: Vec<(String, Value)> = std::fs::read_to_string(out.join("cells.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let r: Value = serde_json::from_str(l).unwrap();
            (r["config"].to_string(), r["sliced_w2"].clone())
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn rows_in_sweep_json(out: &Path) -> usize {
    let s: Value = serde_json::from_slice(&std::fs::read(out.join("sweep.json")).unwrap()).unwrap();
    s["rows"].as_array().unwrap().len()
}

/// A damaged sweep.json (cut by 3 bytes, emptied, `[]`, `{"rows":"x"}`) costs nothing: it is
/// rebuilt from the record and no cell runs again. A record whose last line was cut short costs
/// that cell, reported; a damaged line before the last is refused (exit 2) and nothing is
/// touched. A sweep.json from before records existed is imported, or refused if unreadable.
#[test]
fn finished_cells_survive_damaged_files() {
    let dir = tmp("damage");
    let out = dir.join("t");
    assert!(tune(&out, &GRID, None).status.success());
    let before = cells(&out);
    assert_eq!(before.len(), 8);
    let sweep = std::fs::read(out.join("sweep.json")).unwrap();
    for damage in [&sweep[..sweep.len() - 3], b"", b"[]", br#"{"rows":"x"}"#] {
        std::fs::write(out.join("sweep.json"), damage).unwrap();
        let o = tune(&out, &GRID, None);
        assert!(text(&o).contains("8 already in"), "{}", text(&o));
        assert_eq!(rows_in_sweep_json(&out), 8);
    }
    // The record cut by 3 bytes: that one cell runs again, and says so.
    let record = std::fs::read(out.join("cells.jsonl")).unwrap();
    std::fs::write(out.join("cells.jsonl"), &record[..record.len() - 3]).unwrap();
    let o = tune(&out, &GRID, None);
    let t = text(&o);
    assert!(t.contains("line 8 is damaged") && t.contains("7 already in"), "{t}");
    assert!(out.join("cells.damaged").exists());
    assert_eq!(cells(&out), before, "the rerun cell has the same result");
    // A damaged line in the middle: refused, the record untouched.
    let record = std::fs::read_to_string(out.join("cells.jsonl")).unwrap();
    let mut lines: Vec<&str> = record.lines().collect();
    lines[2] = "{\"config\": garbage";
    let damaged = lines.join("\n") + "\n";
    std::fs::write(out.join("cells.jsonl"), &damaged).unwrap();
    let o = tune(&out, &GRID, None);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("line 3 cannot be read"), "{}", text(&o));
    assert_eq!(std::fs::read_to_string(out.join("cells.jsonl")).unwrap(), damaged);
    // A folder of an older anneal: sweep.json and no record.
    std::fs::write(out.join("cells.jsonl"), record).unwrap();
    assert!(tune(&out, &GRID, None).status.success());
    std::fs::remove_file(out.join("cells.jsonl")).unwrap();
    let o = tune(&out, &GRID, None);
    assert!(text(&o).contains("8 cells imported") && text(&o).contains("8 already in"));
    assert_eq!(cells(&out), before);
    std::fs::remove_file(out.join("cells.jsonl")).unwrap();
    let good = std::fs::read(out.join("sweep.json")).unwrap();
    std::fs::write(out.join("sweep.json"), &good[..good.len() - 3]).unwrap();
    let o = tune(&out, &GRID, None);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("sweep.json cannot be read"), "{}", text(&o));
    assert_eq!(std::fs::read(out.join("sweep.json")).unwrap(), &good[..good.len() - 3]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `tune` killed in the middle of a cell's append, right after it, and after sweep.json: the
/// rerun keeps every cell that finished and runs at most the one that was being written.
#[test]
fn a_killed_tune_loses_at_most_the_cell_being_written() {
    let dir = tmp("tunekill");
    let reference = dir.join("ref");
    assert!(tune(&reference, &GRID, None).status.success());
    for (at, lost) in [("cell-torn", 1), ("cell-appended", 0), ("wrote:sweep.json", 0)] {
        let out = dir.join(at.replace(':', "-"));
        let o = tune(&out, &GRID, Some(at));
        assert!(!o.status.success(), "{at}: the crash point was not reached");
        let o = tune(&out, &GRID, None);
        let t = text(&o);
        assert!(t.contains(&format!("{} already in", 1 - lost)), "{at}: {t}");
        assert_eq!(cells(&out), cells(&reference), "{at}");
        assert_eq!(rows_in_sweep_json(&out), 8, "{at}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A different grid in the same folder adds to it (every earlier row stays in sweep.json; the
/// summary covers the new grid); a second process on the folder is refused at start, naming it.
#[test]
fn grids_add_up_and_a_second_process_is_refused() {
    let dir = tmp("grids");
    let out = dir.join("t");
    assert!(tune(&out, &GRID, None).status.success());
    let o = tune(&out, &["--levels", "16", "--eps-c", "2"], None);
    assert!(text(&o).contains("8 cells of other grids are kept"), "{}", text(&o));
    assert_eq!(rows_in_sweep_json(&out), 10);
    assert_eq!(std::fs::read_to_string(out.join("sweep.csv")).unwrap().lines().count(), 11);
    let summary: Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert!(summary.as_array().unwrap().iter().all(|b| b["levels"] == 16), "{summary}");
    // Another process holds the folder's lock.
    let lock = std::fs::File::options().write(true).open(out.join(".anneal.lock")).unwrap();
    lock.lock().unwrap();
    let o = tune(&out, &GRID, None);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("another anneal process is working in this folder"));
    assert!(text(&o).contains(&out.display().to_string()));
    drop(lock);
    assert!(tune(&out, &GRID, None).status.success());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Identical tune runs give identical cells, on 1 thread or 2, but for the timings.
#[test]
fn tune_metrics_are_identical_between_runs() {
    let dir = tmp("same");
    let strip = |out: &Path| -> Vec<Value> {
        std::fs::read_to_string(out.join("cells.jsonl"))
            .unwrap()
            .lines()
            .map(|l| {
                let mut r: Value = serde_json::from_str(l).unwrap();
                r["seconds"] = Value::Null;
                r["metrics"]["seconds"] = Value::Null;
                r["metrics"]["score_evals_per_second"] = Value::Null;
                r
            })
            .collect()
    };
    let mut runs = Vec::new();
    for threads in ["1", "2", "2"] {
        let out = dir.join(format!("t{}", runs.len()));
        let o = anneal()
            .args(["tune", "--data", "digits", "--n", "200", "--levels", "4,8", "--eps-c", "1,2"])
            .args(["--seeds", "0", "--threads", threads, "--out"])
            .arg(&out)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o));
        runs.push(strip(&out));
    }
    assert_eq!(runs[0], runs[1]);
    assert_eq!(runs[1], runs[2]);
    let _ = std::fs::remove_dir_all(&dir);
}
