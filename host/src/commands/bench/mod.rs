//! `anneal bench`: on the CPU, whole runs as `sample` runs them beside the NumPy loop of the
//! same run ([`whole`]), then one sampler step (GEMM score + noise + CAS update) at fixed sizes
//! beside this machine's SGEMM rate and the NumPy reference (`host/bench/numpy_step.py`)
//! ([`cpu`]); on a CUDA device, one step and whole runs over every σ beside PyTorch FP32
//! (`gpu/bench/torch_step.py`, `torch_run.py`) ([`cuda`]).

pub mod cpu;
pub mod cuda;
pub mod network;
pub mod whole;

use std::process::Command;
use std::time::Instant;

use anneal_core::noise::{Keyed, Noise, Stream};

use crate::cli::BenchArgs;

/// A benchmark size.
pub struct Case {
    /// What the tables call it.
    pub name: &'static str,
    /// Samples (rows) per step.
    pub b: usize,
    /// Components.
    pub k: usize,
    /// Dimension.
    pub d: usize,
}

impl Case {
    /// K standard normal means (keyed, the same on every run).
    pub fn means(&self) -> Vec<f32> {
        let mut means = vec![0.0f32; self.k * self.d];
        for (j, row) in means.chunks_exact_mut(self.d).enumerate() {
            Keyed::new(1).normals(j as u64, Stream::Init, row);
        }
        means
    }
}

/// The median (`v` not empty).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Seconds of each of `repeats` runs of `f`, after one warm-up run.
pub fn runs<F: FnMut()>(repeats: usize, mut f: F) -> Vec<f64> {
    f();
    (0..repeats)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .collect()
}

/// The median of [`runs`].
pub fn time<F: FnMut()>(repeats: usize, f: F) -> f64 {
    median(runs(repeats, f))
}

/// Runs an external reference script with the cases as JSON; its stdout as JSON, or None (said).
pub fn reference(
    python: &str,
    script: &str,
    cases: &[&Case],
    repeats: usize,
    what: &str,
) -> Option<serde_json::Value> {
    let list: Vec<serde_json::Value> = cases
        .iter()
        .map(|c| serde_json::json!({"name": c.name, "B": c.b, "K": c.k, "D": c.d}))
        .collect();
    let arg = serde_json::to_string(&list).ok()?;
    python_json(python, script, &[&arg, &repeats.to_string()], what)
}

/// Runs `python script args…`; its stdout as JSON, or None (said on stderr, with `what`).
pub fn python_json(
    python: &str,
    script: &str,
    args: &[&str],
    what: &str,
) -> Option<serde_json::Value> {
    python_json_env(python, script, args, &[], what)
}

/// [`python_json`] with environment variables set for the script (its BLAS threads, say).
pub fn python_json_env(
    python: &str,
    script: &str,
    args: &[&str],
    env: &[(&str, &str)],
    what: &str,
) -> Option<serde_json::Value> {
    let out = Command::new(python).arg(script).args(args).envs(env.iter().copied()).output();
    match out {
        Ok(o) if o.status.success() => serde_json::from_slice(&o.stdout).ok(),
        Ok(o) => {
            eprintln!(
                "{what} reference failed: {}",
                String::from_utf8_lossy(&o.stderr).lines().last().unwrap_or("")
            );
            None
        }
        Err(e) => {
            eprintln!("{what} reference not run ({python}: {e})");
            None
        }
    }
}

/// A plan's steps for a PyTorch loop: `[σ, c_x, c_s, c_n, noise]` per step (linear updates
/// only, as CAS's).
pub fn linear_steps(plan: &dyn anneal_core::Plan) -> anyhow::Result<Vec<serde_json::Value>> {
    let mut steps = Vec::new();
    for s in (0..plan.len()).filter_map(|j| plan.step(j)) {
        let anneal_core::plan::Update::Linear { x, .. } = s.update else {
            anyhow::bail!("the PyTorch loop runs linear updates only");
        };
        steps.push(serde_json::json!([s.sigma, x.x, x.score, x.noise, s.noise]));
    }
    Ok(steps)
}

/// Runs `anneal bench`.
pub fn run(a: &BenchArgs) -> anyhow::Result<()> {
    if let Some(model) = &a.score {
        return network::run(a, model);
    }
    if a.device == crate::cli::BenchDevice::Cuda {
        return cuda::run(a);
    }
    cpu::run(a)
}
