//! The CUDA executor (`anneal-gpu`): which device `--device` picks, and a whole run on it.

use anneal_core::{Error, Schedule};

use super::start::Start;
use crate::cli::{DeviceKind, InitKind, SampleArgs, SnrNormsKind};
use crate::config::RunConfig;
use crate::error::UsageError;
use crate::score::network::{Runtime, cuda_engine};

/// Samples `p`'s `first..first + n` on a CUDA device, all rows at once (the device splits them only when its
/// scratch memory asks for it; a network takes them in one batch); the default start is drawn on
/// the device, the others on the host.
pub fn sample_cuda(
    p: &RunConfig,
    dev: &anneal_gpu::Device,
    progress: &indicatif::ProgressBar,
) -> anyhow::Result<(Vec<f32>, anneal_gpu::RunStats)> {
    let (n, seed, init) = (p.n, p.seed, p.init);
    let start = Start::new(p);
    // The default start is drawn on the device (the same keyed stream); others on the host.
    let zero = vec![0.0f32; p.data.dim];
    let center = match init {
        InitKind::Normal => Some(&start.mean),
        InitKind::Prior => Some(&zero),
        _ => None,
    };
    let (mut x, from) = if let Some(center) = center {
        let from = anneal_gpu::Start::Normal { center, sigma: p.schedule.sigma_max() };
        (vec![0.0f32; n * p.data.dim], from)
    } else {
        let x = start
            .rows(p, p.first, n, seed)
            .map_err(|e| anyhow::anyhow!("initialisation failed: {e}"))?;
        (x, anneal_gpu::Start::Given)
    };
    let mut report = |row_steps: u64| progress.inc(row_steps);
    let ran = match &p.network {
        Some(net) => {
            let mut on_device = prepare_network(net, n)?;
            let d = p.data.dim;
            let first = p.first as u64;
            dev.run_plan_network(&p.plan, &mut on_device, d, seed, first, from, &mut x, &mut report)
        }
        None => {
            let mix = p.data.mixture(p.tau);
            dev.run_plan_from(&p.plan, &mix, seed, p.first as u64, from, &mut x, &mut report)
        }
    };
    match ran {
        Ok(stats) => Ok((x, stats)),
        Err(anneal_gpu::Error::Core(e @ Error::NonFinite { .. })) => {
            anyhow::bail!("sampling stopped on {}: {e}; nothing was written", dev.describe())
        }
        Err(e) => anyhow::bail!("sampling on {} failed: {e}", dev.describe()),
    }
}

/// `net` prepared by tract-cuda for batches of `rows` on the device [`cuda_engine::open_device`]
/// opened on this thread.
pub fn prepare_network(
    net: &crate::score::network::Network,
    rows: usize,
) -> anyhow::Result<cuda_engine::CudaNetwork<'_>> {
    cuda_engine::CudaNetwork::new(net, rows)
        .map_err(|e| anyhow::anyhow!("--score = {}: {e}", net.path().display()))
}

/// The CUDA device `--device` asks for, or None for the CPU, and the line that says which. A
/// network runs on the device through tract-cuda ([`cuda_engine::open_device`]: the device is
/// then opened on tract's stream of this thread).
pub fn resolve_device(a: &SampleArgs) -> Result<(Option<anneal_gpu::Device>, String), UsageError> {
    let network = a.score.score.is_some();
    // What runs on the CPU only, and the way onto the device.
    let cpu_only = if network && a.score.runtime == Runtime::Tract {
        Some(("--runtime tract", "drop --runtime tract"))
    } else if network && a.score.runtime == Runtime::Onnxruntime {
        Some(("--runtime onnxruntime", "drop --runtime onnxruntime"))
    } else if a.trace {
        Some(("--trace", "drop --trace"))
    } else if a.options.snr.is_some() && a.options.snr_norms() == SnrNormsKind::BatchMean {
        Some(("--snr-norms batch-mean", "use --snr-norms per-sample"))
    } else if a.options.snr.is_some() && a.options.snr_norms() == SnrNormsKind::Grouped {
        Some((
            "--snr-norms grouped (the snr corrector's default)",
            "add --snr-norms per-sample (it runs on the device, and is biased in low dimension)",
        ))
    } else {
        None
    };
    let open = || {
        if network {
            cuda_engine::open_device()
        } else {
            anneal_gpu::Device::open(0).map_err(|e| e.to_string())
        }
    };
    match (a.device, cpu_only) {
        (DeviceKind::Cpu, _) => Ok((None, "cpu".into())),
        (DeviceKind::Cuda, Some((what, fix))) => Err(UsageError::flag(format!(
            "--device cuda: {what} runs on the CPU only; use --device cpu or {fix}"
        ))),
        (DeviceKind::Auto, Some((what, _))) => {
            Ok((None, format!("cpu ({what} runs on the CPU only)")))
        }
        (DeviceKind::Cuda, None) => match open() {
            Ok(d) => {
                let line = d.describe();
                Ok((Some(d), line))
            }
            Err(e) => {
                Err(UsageError::flag(format!("--device cuda: {e}; use --device cpu or auto")))
            }
        },
        (DeviceKind::Auto, None) => match open() {
            Ok(d) => {
                let line = d.describe();
                Ok((Some(d), line))
            }
            Err(e) => Ok((None, format!("cpu (no CUDA device: {e})"))),
        },
    }
}
