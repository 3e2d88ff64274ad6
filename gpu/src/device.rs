//! Finding and opening a CUDA device without ever letting cudarc panic: every library is probed
//! (`is_culib_present`, a dlopen) before the first call into it.

use std::sync::Arc;

use cudarc::cublas::CudaBlas;
use cudarc::driver::{CudaContext, CudaFunction, CudaModule, CudaStream};

use crate::Error;

/// Which CUDA libraries this process can load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    /// The driver, `libcuda.so.1`.
    pub driver: bool,
    /// NVRTC, `libnvrtc.so.13`.
    pub nvrtc: bool,
    /// cuBLAS, `libcublas.so.13`.
    pub cublas: bool,
}

/// Probes the three libraries (dlopen only; nothing is called).
pub fn probe() -> Probe {
    // SAFETY: each function only tries to dlopen the library's candidate names.
    unsafe {
        Probe {
            driver: driver_present(),
            nvrtc: cudarc::nvrtc::sys::is_culib_present(),
            cublas: cudarc::cublas::sys::is_culib_present(),
        }
    }
}

/// Whether the driver can be loaded: the first of [`probe`]'s three, alone. Without a driver
/// nothing else matters. On Linux the driver's own name, `libcuda.so.1`, is tried first: where
/// it is missing, cudarc's 34 candidate names (each a failed search of the library path) would
/// cost ~1 ms, which a short CPU run notices.
pub fn driver_present() -> bool {
    // SAFETY: only tries to dlopen the driver's names; nothing in them is called.
    unsafe {
        if cfg!(target_os = "linux") && libloading::Library::new("libcuda.so.1").is_err() {
            return false;
        }
        cudarc::driver::sys::is_culib_present()
    }
}

/// The loaded kernels of one device.
pub(crate) struct Kernels {
    pub(crate) direct_run: CudaFunction,
    pub(crate) mixture_softmax: CudaFunction,
    pub(crate) plan_step: CudaFunction,
    pub(crate) snr_norms: CudaFunction,
    pub(crate) sparse_rm: CudaFunction,
    pub(crate) means_prep: CudaFunction,
    pub(crate) init_normal_rows: CudaFunction,
    pub(crate) noise_rows: CudaFunction,
    _module: Arc<CudaModule>,
}

/// An open CUDA device: its context, one stream, a cuBLAS handle and the compiled kernels.
pub struct Device {
    pub(crate) ctx: Arc<CudaContext>,
    pub(crate) stream: Arc<CudaStream>,
    pub(crate) blas: CudaBlas,
    pub(crate) kernels: Kernels,
    pub(crate) options: crate::Options,
    name: String,
    capability: (i32, i32),
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Device({})", self.describe())
    }
}

impl Device {
    /// Opens device `ordinal`: the driver, a context, NVRTC (the kernels are compiled for the
    /// device's architecture, once per process), cuBLAS. Every missing piece is a typed error.
    pub fn open(ordinal: usize) -> Result<Device, Error> {
        Device::open_with(ordinal, None)
    }

    /// [`Device::open`] on a stream another library owns (its context must be the device's
    /// primary context, as cudarc's `CudaContext::new` makes it): every kernel and copy of this
    /// device is then ordered with that library's work on the stream, with no synchronisation
    /// between them (how a score network's forward pass and the plan's steps share device
    /// memory, [`Device::run_plan_network`]). The stream's context must have its event tracking
    /// off, as this device's own has.
    pub fn on_stream(stream: Arc<CudaStream>) -> Result<Device, Error> {
        let ordinal = stream.context().ordinal();
        Device::open_with(ordinal, Some(stream))
    }

    fn open_with(ordinal: usize, stream: Option<Arc<CudaStream>>) -> Result<Device, Error> {
        if !driver_present() {
            return Err(Error::MissingLibrary {
                lib: "libcuda.so.1",
                hint: "it comes with the NVIDIA driver",
            });
        }
        let found = probe();
        let count = CudaContext::device_count().map_err(Error::driver("cuDeviceGetCount"))?;
        if ordinal >= count.max(0) as usize {
            return Err(Error::NoDevice {
                ordinal,
                detail: format!("the driver sees {count} device(s)"),
            });
        }
        let ctx = match &stream {
            Some(s) => s.context().clone(),
            None => CudaContext::new(ordinal).map_err(Error::driver("creating a context"))?,
        };
        // SAFETY: every buffer of this context is used on its one stream, in stream order; no
        // cross-stream event is needed (and none may be waited on inside a stream capture).
        unsafe { ctx.disable_event_tracking() };
        let name = ctx.name().map_err(Error::driver("cuDeviceGetName"))?;
        let capability =
            ctx.compute_capability().map_err(Error::driver("reading the compute capability"))?;
        if !found.nvrtc {
            return Err(Error::MissingLibrary {
                lib: "libnvrtc.so.13",
                hint: "the CUDA 13.0 toolkit (or the nvidia-cuda-nvrtc 13.0 wheel) on LD_LIBRARY_PATH",
            });
        }
        if !found.cublas {
            return Err(Error::MissingLibrary {
                lib: "libcublas.so.13",
                hint: "the CUDA 13.0 toolkit (or the nvidia-cublas 13.0 wheel) on LD_LIBRARY_PATH",
            });
        }
        let arch = format!("compute_{}{}", capability.0, capability.1);
        let ptx = crate::kernels::ptx(&arch)?;
        let module = ctx
            .load_module(cudarc::nvrtc::Ptx::from_src(ptx))
            .map_err(Error::driver("loading the kernels' PTX"))?;
        let f = |n: &str| module.load_function(n).map_err(Error::driver("finding a kernel"));
        let kernels = Kernels {
            direct_run: f("direct_run")?,
            mixture_softmax: f("mixture_softmax")?,
            plan_step: f("plan_step")?,
            snr_norms: f("snr_norms")?,
            sparse_rm: f("sparse_rm")?,
            means_prep: f("means_prep")?,
            init_normal_rows: f("init_normal_rows")?,
            noise_rows: f("noise_rows")?,
            _module: module.clone(),
        };
        let stream = match stream {
            Some(s) => s,
            None => ctx.new_stream().map_err(Error::driver("creating a stream"))?,
        };
        let blas = CudaBlas::new(stream.clone()).map_err(Error::cublas("creating a handle"))?;
        let options = crate::Options::for_capability(capability);
        Ok(Device { ctx, stream, blas, kernels, options, name, capability })
    }

    /// The first device, if the driver, a device, NVRTC and cuBLAS are all there; otherwise why
    /// not (for `--device auto`).
    pub fn auto() -> Result<Device, Error> {
        Device::open(0)
    }

    /// "NVIDIA H100 80GB HBM3 (cuda:0, compute 9.0)".
    pub fn describe(&self) -> String {
        format!(
            "{} (cuda:{}, compute {}.{})",
            self.name,
            self.ctx.ordinal(),
            self.capability.0,
            self.capability.1
        )
    }

    /// The device's model and compute capability, without its ordinal: "NVIDIA H100 80GB HBM3
    /// (compute 9.0)". Two devices of one model run the same kernels (sample shards compare it).
    pub fn model(&self) -> String {
        format!("{} (compute {}.{})", self.name, self.capability.0, self.capability.1)
    }

    /// How the GEMM path runs (defaults from [`crate::Options::for_capability`]).
    pub fn options(&self) -> crate::Options {
        self.options
    }

    /// Sets how the GEMM path runs (benchmarks compare the variants; results agree within
    /// float rounding whatever the options).
    pub fn set_options(&mut self, options: crate::Options) {
        self.options = options;
    }

    /// The compute capability (major, minor).
    pub fn capability(&self) -> (i32, i32) {
        self.capability
    }

    /// Blocks until the device has finished all work queued so far.
    pub fn synchronize(&self) -> Result<(), Error> {
        self.stream.synchronize().map_err(Error::driver("synchronising the stream"))
    }
}
