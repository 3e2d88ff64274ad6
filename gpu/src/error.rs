//! The one error type of the GPU backend: every CUDA, NVRTC and cuBLAS failure ends here, typed,
//! never as a panic.

/// What went wrong on the way to (or on) the device.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A CUDA library could not be loaded (probed before any call, so cudarc never panics).
    #[error("{lib} was not found ({hint})")]
    MissingLibrary {
        /// The library (e.g. `libcuda.so.1`).
        lib: &'static str,
        /// What provides it.
        hint: &'static str,
    },
    /// The driver loaded but no device with this ordinal answered.
    #[error("no CUDA device {ordinal}: {detail}")]
    NoDevice {
        /// The ordinal asked for.
        ordinal: usize,
        /// The driver's answer.
        detail: String,
    },
    /// A driver call failed.
    #[error("CUDA driver: {what} failed: {detail}")]
    Driver {
        /// The call.
        what: &'static str,
        /// The driver's error.
        detail: String,
    },
    /// NVRTC refused a kernel; the log is kept.
    #[error("NVRTC could not compile the kernels for {arch}: {log}")]
    Compile {
        /// The virtual architecture (e.g. `compute_90`).
        arch: String,
        /// NVRTC's log, or its error.
        log: String,
    },
    /// A cuBLAS call failed.
    #[error("cuBLAS: {what} failed: {detail}")]
    Cublas {
        /// The call.
        what: &'static str,
        /// cuBLAS's status.
        detail: String,
    },
    /// A request this backend does not serve (the message says what to use instead).
    #[error("{0}")]
    Unsupported(&'static str),
    /// A size beyond what the kernels index.
    #[error("{what} = {value} is beyond the device path's limit {max}")]
    TooLarge {
        /// The quantity.
        what: &'static str,
        /// Its value.
        value: usize,
        /// The largest allowed.
        max: usize,
    },
    /// A score network's forward pass failed ([`crate::DeviceNetwork::forward`]).
    #[error("the network's forward pass failed at level {level}, step {step}: {detail}")]
    Network {
        /// Level (1-based) of the step.
        level: usize,
        /// Step (1-based) within the whole plan.
        step: usize,
        /// What the network's runtime said.
        detail: String,
    },
    /// An error of the core (bad parameters, buffers, or a non-finite value at a level and step).
    #[error(transparent)]
    Core(#[from] anneal_core::Error),
}

impl Error {
    pub(crate) fn driver(what: &'static str) -> impl FnOnce(cudarc::driver::DriverError) -> Error {
        move |e| {
            let detail = e
                .error_string()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|_| format!("{e:?}"));
            Error::Driver { what, detail }
        }
    }

    pub(crate) fn cublas(
        what: &'static str,
    ) -> impl FnOnce(cudarc::cublas::result::CublasError) -> Error {
        move |e| Error::Cublas { what, detail: format!("{:?}", e.0) }
    }
}
