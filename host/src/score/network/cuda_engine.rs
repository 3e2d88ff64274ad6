//! A score network on a CUDA device: tract's CUDA runtime (`tract-cuda`, built on the same
//! cudarc as `anneal-gpu`) runs the forward passes on the stream the plan's kernels use, so the
//! score points and the network's outputs stay in device memory from the first step to the last
//! ([`anneal_gpu::Device::run_plan_network`]).
//!
//! The plan's kernels write the score points into a device tensor that tract takes as the
//! network's input; tract hands its output back as a device tensor (its lazily read host
//! storage), whose address the next kernel reads. The noise-level input of each σ is put on
//! the device once. tract waits for its stream at the end of each forward pass (the output's
//! hand-over), so the host waits once per step, but no sample crosses to the host.

use std::collections::HashMap;
use std::sync::Arc;

use tract_cuda::utils::ensure_cuda_runtime_dependencies;
use tract_gpu::tensor::{DeviceTensor, IntoDevice, LazyHostStorage};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::runtime::State;

use super::{BatchDim, Network, NoiseValues, OutputKind};

/// tract's CUDA runtime, as named in the output and config.json.
pub const TRACT_CUDA: &str = "tract-cuda 0.23 on the GPU";

/// Opens the first CUDA device for a network: tract-cuda's checks (driver, CUDA runtime, NVRTC,
/// cuBLAS, cuDNN), then `anneal-gpu`'s device on the stream tract uses on this thread (the
/// network must then run on this thread). Why not, otherwise.
pub fn open_device() -> Result<anneal_gpu::Device, String> {
    if !anneal_gpu::driver_present() {
        return Err("libcuda.so.1 was not found (it comes with the NVIDIA driver)".into());
    }
    ensure_cuda_runtime_dependencies("tract-cuda cannot run networks here")
        .map_err(|e| format!("{e:#}"))?;
    // tract-cuda compiles its kernels with NVRTC on a machine's first use (71 s on an H200):
    // said, so that the wait is not taken for a hang.
    let cache = tract_cuda::kernels::cubin_dir();
    if !cache.exists() {
        eprintln!(
            "note: tract-cuda compiles its CUDA kernels on this machine's first use (about a \
             minute, once; cached in {})",
            cache.display()
        );
    }
    // tract-cuda creates its context and this thread's stream on first use, and panics if it
    // cannot (after the checks above, a device that refuses a context): caught and said.
    let stream = std::panic::catch_unwind(|| tract_cuda::with_cuda_stream(|s| Ok(Arc::clone(s))))
        .map_err(|p| {
            let what = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "a panic".into());
            format!("tract-cuda could not open the device ({what})")
        })?
        .map_err(|e| format!("tract-cuda could not open the device ({e:#})"))?;
    anneal_gpu::Device::on_stream(stream).map_err(|e| e.to_string())
}

/// A [`Network`] prepared by tract-cuda for one batch size, as an
/// [`anneal_gpu::DeviceNetwork`].
pub struct CudaNetwork<'n> {
    net: &'n Network,
    /// tract's run state of the prepared plan (kept: one per network, reused every step).
    state: Box<dyn State>,
    rows: usize,
    /// The input tensor on the device (the kernels write the score points into it) and the
    /// value tract takes for it.
    input: Option<(DeviceTensor, TValue)>,
    /// The noise input of each σ (by its bits), on the device.
    noise: HashMap<u64, TValue>,
    /// The last forward pass's outputs, kept while the kernels read them.
    last: Option<TVec<TValue>>,
    /// Forward passes whose output came back as a host tensor and was put on the device again.
    uploads: u64,
}

fn err(e: impl std::fmt::Display) -> String {
    format!("{e:#}")
}

impl<'n> CudaNetwork<'n> {
    /// Prepares `net` for batches of `rows` samples on the device [`open_device`] opened
    /// (tract's CUDA transform, then its optimisations).
    pub fn new(net: &'n Network, rows: usize) -> Result<CudaNetwork<'n>, String> {
        if let BatchDim::Fixed(b) = net.batch
            && b != rows
        {
            return Err(format!(
                "the model's batch size is fixed at {b} and the GPU runs all {rows} samples in \
                 one batch: export it with a dynamic batch axis, or use --device cpu"
            ));
        }
        let model = net.model_for_batch(rows).map_err(err)?;
        let runtime = tract_onnx::tract_core::runtime::runtime_for_name("cuda")
            .map_err(err)?
            .ok_or_else(|| "tract's CUDA runtime is not linked in".to_string())?;
        let plan = runtime.prepare(model).map_err(|e| format!("tract-cuda: {e:#}"))?;
        let state = plan.spawn().map_err(|e| format!("tract-cuda: {e:#}"))?;
        Ok(CudaNetwork {
            net,
            state,
            rows,
            input: None,
            noise: HashMap::new(),
            last: None,
            uploads: 0,
        })
    }

    /// A device tensor wrapped as tract's lazily read host value (tract takes it back as it is).
    fn lazy(t: DeviceTensor) -> TractResult<TValue> {
        Ok(TValue::from_const(Arc::new(LazyHostStorage::new(t)?.into_tensor())))
    }

    fn noise_value(&mut self, sigma: f64) -> TractResult<Option<TValue>> {
        let Some(slot) = self.net.noise else { return Ok(None) };
        if let Some(v) = self.noise.get(&sigma.to_bits()) {
            return Ok(Some(v.clone()));
        }
        let n = self.net.noise_values(slot, self.rows, sigma)?;
        let t = match &n.values {
            NoiseValues::F32(v) => Tensor::from_shape(&n.shape, v)?,
            NoiseValues::F64(v) => Tensor::from_shape(&n.shape, v)?,
            NoiseValues::I64(v) => Tensor::from_shape(&n.shape, v)?,
            NoiseValues::I32(v) => Tensor::from_shape(&n.shape, v)?,
        };
        let v = Self::lazy(t.into_device()?)?;
        self.noise.insert(sigma.to_bits(), v.clone());
        Ok(Some(v))
    }

    fn run(&mut self, sigma: f64) -> TractResult<u64> {
        let Some((_, x)) = &self.input else { anyhow::bail!("no input tensor") };
        let mut inputs: TVec<TValue> = tvec![x.clone()];
        if let Some(n) = self.noise_value(sigma)? {
            if self.net.noise.is_some_and(|slot| slot.index < self.net.x_index) {
                inputs.insert(0, n)
            } else {
                inputs.push(n)
            }
        }
        // The previous output is no longer read: the kernels that read it were queued before.
        self.last = None;
        let out = self.state.run(inputs)?;
        let mut dims = vec![self.rows];
        dims.extend(&self.net.shape);
        let y = out.first().ok_or_else(|| anyhow::anyhow!("the model returned nothing"))?;
        if y.datum_type() != f32::datum_type() || y.shape() != dims.as_slice() {
            anyhow::bail!(
                "output \"{}\" is {} of shape {:?} where float32 of shape {dims:?} (the \
                 input's) was expected",
                self.net.output_name,
                super::dtype_name(y.datum_type()),
                y.shape()
            );
        }
        let on_device = y.storage_as::<LazyHostStorage>().and_then(|l| l.device()).cloned();
        let dev = match on_device {
            Some(d) => d,
            None => {
                // A host tensor (tract copies some outputs out at once): put it back.
                self.uploads += 1;
                let d = y.clone().into_tensor().into_device()?;
                self.last = Some(tvec![Self::lazy(d.clone())?]);
                d
            }
        };
        let natural: Vec<isize> = {
            let mut s = vec![1isize; dims.len()];
            for i in (0..dims.len().saturating_sub(1)).rev() {
                s[i] = s[i + 1] * dims[i + 1] as isize;
            }
            s
        };
        if dev.strides() != natural.as_slice() {
            anyhow::bail!("tract-cuda returned a strided output {:?}", dev.strides());
        }
        let ptr = dev.device_buffer_ptr() as u64 + 4 * dev.buffer_offset::<usize>() as u64;
        if self.last.is_none() {
            self.last = Some(out);
        }
        Ok(ptr)
    }
}

impl anneal_gpu::DeviceNetwork for CudaNetwork<'_> {
    fn output(&self) -> anneal_gpu::NetOutput {
        match self.net.conv.output {
            OutputKind::Score => anneal_gpu::NetOutput::Score,
            OutputKind::SigmaScore => anneal_gpu::NetOutput::SigmaScore,
            OutputKind::Eps => anneal_gpu::NetOutput::Eps,
            OutputKind::Denoiser => anneal_gpu::NetOutput::Denoiser,
        }
    }

    fn input(&mut self, rows: usize) -> Result<u64, String> {
        if rows != self.rows {
            return Err(format!("prepared for {} rows, asked for {rows}", self.rows));
        }
        let mut dims = vec![rows];
        dims.extend(&self.net.shape);
        let t = DeviceTensor::uninitialized::<f32>(&dims).map_err(err)?;
        let v = Self::lazy(t.clone()).map_err(err)?;
        let ptr = t.device_buffer_ptr() as u64;
        self.input = Some((t, v));
        Ok(ptr)
    }

    fn host_copies(&self) -> u64 {
        self.uploads
    }

    fn forward(&mut self, sigma: f64) -> Result<u64, String> {
        let start = std::time::Instant::now();
        let r = self.run(sigma).map_err(err);
        self.net.count_forward(start.elapsed());
        r
    }
}
