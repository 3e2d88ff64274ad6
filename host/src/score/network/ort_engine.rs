//! The second runtime: onnxruntime through the `ort` crate, its shared library loaded at run time
//! (`load-dynamic`: nothing is downloaded or linked at build time). The library is the one the
//! `onnxruntime` PyPI wheel ships (`onnxruntime/capi/libonnxruntime.so.*`), found through
//! `ORT_DYLIB_PATH`, or `libonnxruntime.so` on the loader's path.
//!
//! One session per worker thread (a session runs one call at a time), each single-threaded: the
//! threads of `--threads` run batches in parallel, as with tract, so samples do not depend on
//! the thread count.

use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use ort::environment::Environment;
use ort::session::Session;
use ort::session::SessionInputValue;
use ort::value::TensorRef;

use super::{NoiseData, NoiseValues};

/// The loaded library: its path and the process's one environment, or why it is not there.
static ENV: OnceLock<Result<(String, Environment), String>> = OnceLock::new();

/// The onnxruntime environment, loading the library on first use.
pub fn environment() -> Result<&'static (String, Environment), String> {
    ENV.get_or_init(|| {
        let mut tried = Vec::new();
        let candidates: Vec<String> = std::env::var("ORT_DYLIB_PATH")
            .ok()
            .into_iter()
            .chain(["libonnxruntime.so".to_string(), "libonnxruntime.so.1".to_string()])
            .collect();
        for path in candidates {
            // ort panics on some failures inside the loader; keep them from ending the process.
            let loaded = std::panic::catch_unwind(|| ort::init_from(&path).map(|b| b.build()));
            match loaded {
                Ok(Ok(Ok(env))) => return Ok((path, env)),
                Ok(Ok(Err(e))) => tried.push(format!("{path}: {e}")),
                Ok(Err(e)) => tried.push(format!("{path}: {e}")),
                Err(_) => tried.push(format!("{path}: the loader failed")),
            }
        }
        Err(tried.join("; "))
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// Whether onnxruntime can be loaded (the first call tries).
pub fn available() -> bool {
    environment().is_ok()
}

/// Receives a run's first output: its type's name, its shape, and its values when float32.
pub type TakeOutput<'a> = dyn FnMut(&str, &[usize], Option<&[f32]>) -> anyhow::Result<()> + 'a;

/// Sessions of one model.
pub struct OrtEngine {
    bytes: Vec<u8>,
    x_name: String,
    noise_name: Option<String>,
    sessions: Mutex<Vec<Session>>,
}

impl OrtEngine {
    /// A pool of sessions of the ONNX `bytes`; one is made now to check that onnxruntime takes
    /// the model.
    pub fn new(bytes: Vec<u8>, x_name: &str, noise_name: Option<&str>) -> Result<Self, String> {
        let engine = OrtEngine {
            bytes,
            x_name: x_name.to_string(),
            noise_name: noise_name.map(str::to_string),
            sessions: Mutex::new(Vec::new()),
        };
        let s = engine.session()?;
        engine.give_back(s);
        Ok(engine)
    }

    fn session(&self) -> Result<Session, String> {
        if let Some(s) = self.sessions.lock().ok().and_then(|mut v| v.pop()) {
            return Ok(s);
        }
        let (_, env) = environment()?;
        Session::builder(env)
            .and_then(|b| b.with_intra_threads(1).map_err(Into::into))
            .and_then(|b| b.with_inter_threads(1).map_err(Into::into))
            .and_then(|mut b| b.commit_from_memory(&self.bytes))
            .map_err(|e| format!("onnxruntime: {e}"))
    }

    fn give_back(&self, s: Session) {
        if let Ok(mut v) = self.sessions.lock() {
            v.push(s);
        }
    }

    /// Runs the model on `x` (shape `dims`) and the noise input; `take` gets the first output's
    /// type name, shape and (for float32) values. The session's run alone is added to `runtime`.
    pub fn run(
        &self,
        x: &[f32],
        dims: &[usize],
        noise: Option<&NoiseData>,
        runtime: &mut Duration,
        take: &mut TakeOutput<'_>,
    ) -> anyhow::Result<()> {
        let mut session = self.session().map_err(|e| anyhow::anyhow!(e))?;
        let result = (|| -> anyhow::Result<()> {
            // The points are read in place (a view), not copied.
            let xt: SessionInputValue = TensorRef::from_array_view((dims, x))?.into();
            let mut inputs = vec![(self.x_name.as_str(), xt)];
            if let (Some(n), Some(name)) = (noise, &self.noise_name) {
                let shape = n.shape.as_slice();
                let t: SessionInputValue = match &n.values {
                    NoiseValues::F32(v) => {
                        TensorRef::from_array_view((shape, v.as_slice()))?.into()
                    }
                    NoiseValues::F64(v) => {
                        TensorRef::from_array_view((shape, v.as_slice()))?.into()
                    }
                    NoiseValues::I64(v) => {
                        TensorRef::from_array_view((shape, v.as_slice()))?.into()
                    }
                    NoiseValues::I32(v) => {
                        TensorRef::from_array_view((shape, v.as_slice()))?.into()
                    }
                };
                inputs.push((name.as_str(), t));
            }
            let start = Instant::now();
            let outputs = session.run(inputs)?;
            *runtime += start.elapsed();
            let y = &outputs[0];
            match y.try_extract_tensor::<f32>() {
                Ok((shape, values)) => {
                    let shape: Vec<usize> = shape.iter().map(|&d| d.max(0) as usize).collect();
                    take("float32", &shape, Some(values))
                }
                Err(_) => {
                    let (dt, shape) = match y.dtype() {
                        ort::value::ValueType::Tensor { ty, shape, .. } => (
                            format!("{ty}"),
                            shape.iter().map(|&d| d.max(0) as usize).collect::<Vec<_>>(),
                        ),
                        other => (format!("{other}"), Vec::new()),
                    };
                    take(&dt, &shape, None)
                }
            }
        })();
        self.give_back(session);
        result
    }
}
