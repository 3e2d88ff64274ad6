//! A sharded sweep on a real Slurm cluster: `host/slurm/submit.sh` submits a job array of four
//! `tune --shard` tasks and the merge job that waits for them; the merged folder equals the same
//! sweep run in one process. A first submission whose shards are all killed after their first
//! cell (`ANNEAL_CRASH_AT`) fails and leaves the merge waiting; `submit.sh --only` resubmits the
//! shards, they resume and complete, and the merge is still the single run.
//!
//! It needs a running cluster (`sudo host/slurm/local-cluster.sh start` makes a one-node one).
//! Without one the test says why and passes, unless `ANNEAL_REQUIRE_SLURM=1` (CI), where it
//! fails.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::sweep_without_clock;

mod common;

const FLAGS: [&str; 8] = ["--levels", "4,16", "--eps-c", "1,2", "--seeds", "0,1", "--n", "100"];

/// Why there is no cluster to submit to, if there is none.
fn no_cluster() -> Option<String> {
    match Command::new("sinfo").args(["-h", "-o", "%T"]).output() {
        Err(e) => Some(format!("sinfo cannot be run ({e}): Slurm is not installed")),
        Ok(o) if !o.status.success() => Some(format!(
            "sinfo failed ({}): no cluster answers",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Ok(o) => {
            let states = String::from_utf8_lossy(&o.stdout).to_string();
            let up = states.lines().any(|s| ["idle", "mixed", "allocated"].contains(&s.trim()));
            (!up).then(|| format!("no node is up (sinfo: {})", states.trim()))
        }
    }
}

fn submit(sweep: &Path, more_env: &[(&str, &str)], only: Option<&str>) -> (String, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("slurm/submit.sh");
    let mut c = Command::new(script);
    c.env("ANNEAL", env!("CARGO_BIN_EXE_anneal")).envs(more_env.iter().copied());
    if let Some(o) = only {
        c.args(["--only", o]);
    }
    let o = c.args(["tune", "4"]).arg(sweep).args(FLAGS).output().unwrap();
    assert!(o.status.success(), "submit.sh: {}", String::from_utf8_lossy(&o.stderr));
    let jobs = std::fs::read_to_string(sweep.join("logs/jobs")).unwrap();
    let (a, m) = jobs.trim().split_once(' ').unwrap();
    (a.to_string(), m.to_string())
}

/// Whether a job (an array: any of its tasks) is still pending or running.
fn active(job: &str) -> bool {
    let o = Command::new("squeue").args(["-h", "-j", job, "-o", "%T"]).output().unwrap();
    !String::from_utf8_lossy(&o.stdout).trim().is_empty()
}

fn job_field(job: &str, field: &str) -> String {
    let o = Command::new("scontrol").args(["show", "job", job]).output().unwrap();
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    text.split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{field}=")).map(str::to_string))
        .unwrap_or_default()
}

/// Polls until `done` holds (every 0.2 s, at most 120 s; `sbatch --wait` polls only every ~10 s).
fn wait_for(what: &str, done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < Duration::from_secs(120), "waited 120 s for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_sharded_sweep_on_slurm_merges_into_the_single_run() {
    if let Some(why) = no_cluster() {
        assert!(
            std::env::var("ANNEAL_REQUIRE_SLURM").as_deref() != Ok("1"),
            "ANNEAL_REQUIRE_SLURM=1 but {why}"
        );
        eprintln!("skipped: {why} (sudo host/slurm/local-cluster.sh start makes a cluster)");
        return;
    }
    let root: PathBuf = std::env::temp_dir().join(format!("anneal-slurm-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let single = root.join("single");
    let o = Command::new(env!("CARGO_BIN_EXE_anneal"))
        .arg("tune")
        .args(FLAGS)
        .arg("--out")
        .arg(&single)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let sweep = root.join("sweep");

    // Every shard killed after its first cell: the array fails, the merge can never start.
    let (array, merge) = submit(&sweep, &[("ANNEAL_CRASH_AT", "cell-appended")], None);
    wait_for("the killed shards", || !active(&array));
    wait_for("the merge to be marked as never starting", || {
        job_field(&merge, "Reason") == "DependencyNeverSatisfied"
    });
    assert_eq!(job_field(&merge, "JobState"), "PENDING");
    assert!(!sweep.join("merged").exists());

    // Resubmitted, the shards resume and finish; the new merge runs.
    let (array, merge) = submit(&sweep, &[], Some("1-4"));
    wait_for("the resubmitted shards and the merge", || !active(&array) && !active(&merge));
    assert_eq!(job_field(&merge, "JobState"), "COMPLETED", "{}", {
        std::fs::read_to_string(sweep.join("logs/merge.out")).unwrap_or_default()
    });
    let merged = sweep.join("merged");
    assert_eq!(sweep_without_clock(&merged), sweep_without_clock(&single));
    for f in ["summary.json", "fig_eps_c.png", "trace.png", "tune.json"] {
        let (a, b) =
            (std::fs::read(merged.join(f)).unwrap(), std::fs::read(single.join(f)).unwrap());
        assert!(a == b, "{f} differs");
    }
    let _ = std::fs::remove_dir_all(&root);
}

/// `submit.sh --gpu`, through a stand-in `sbatch` that records its arguments (no cluster
/// needed): the shards' array asks for one GPU per task and passes `--device cuda` to anneal,
/// the merge job asks for none; `--gpu` with `tune` is refused (exit 2, saying why).
#[test]
fn gpu_submission_asks_for_one_gpu_per_shard() {
    let root = std::env::temp_dir().join(format!("anneal-slurm-gpu-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let bin = root.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let calls = root.join("calls");
    let fake = bin.join("sbatch");
    std::fs::write(&fake, format!("#!/bin/sh\necho \"$*\" >> '{}'\necho 42\n", calls.display()))
        .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("slurm/submit.sh");
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let run = |args: &[&str]| {
        Command::new(&script)
            .env("PATH", &path)
            .env("ANNEAL", env!("CARGO_BIN_EXE_anneal"))
            .args(args)
            .arg(root.join("run"))
            .args(["--data", "digits", "--n", "1000"])
            .output()
            .unwrap()
    };
    let o = run(&["--gpu", "sample", "2"]);
    assert!(o.status.success(), "submit.sh: {}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(&calls).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].contains("--gres=gpu:1") && lines[0].contains("--array=1-2"), "{text}");
    assert!(lines[0].ends_with("--n 1000 --device cuda"), "{text}");
    assert!(!lines[1].contains("--gres") && lines[1].contains("--dependency=afterok:42"), "{text}");
    let o = run(&["--gpu", "tune", "2"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("tune runs on the CPU only"));
    let _ = std::fs::remove_dir_all(&root);
}
