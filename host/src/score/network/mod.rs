//! A trained score network: an ONNX file (exported by `torch.onnx.export`) run on the CPU by
//! tract or onnxruntime ([`ort_engine`]), or on a CUDA device by tract-cuda ([`cuda_engine`]),
//! with its declared [`Conventions`] turning the network's output into s(x, σ).
//!
//! The model is loaded and typed once ([`Network::load`]), checked by one forward pass (inputs,
//! output shape), and optimised once per batch size (the batch symbol bound to the size: the
//! plans are cached and shared by the threads). A model exported with a fixed batch size is run
//! in chunks of that size.

pub mod conventions;
pub mod cuda_engine;
pub mod ort_engine;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anneal_core::{BatchScore, Error};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::DimLike;

pub use conventions::{Conventions, NoiseInputKind, OutputKind};

use crate::error::UsageError;

/// The shipped networks, by the name `--score` takes: (name, ONNX bytes, sidecar).
const BUILT_IN: [(&str, &[u8], &str); 1] = [(
    "digits",
    include_bytes!("../../../data/digits-score.onnx"),
    include_str!("../../../data/digits-score.json"),
)];

/// The shipped network `--score = path` names (`digits`), unless a file of that name exists:
/// its ONNX bytes and its sidecar's text.
pub fn built_in(path: &Path) -> Option<(&'static [u8], &'static str)> {
    if path.exists() {
        return None;
    }
    BUILT_IN.iter().find(|(n, _, _)| Path::new(n) == path).map(|&(_, b, s)| (b, s))
}

/// Which runtime runs a network's forward passes (`--runtime`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Runtime {
    /// onnxruntime when its library loads (ORT_DYLIB_PATH), tract otherwise.
    #[default]
    Auto,
    /// tract (pure Rust, always built in).
    Tract,
    /// onnxruntime through `ort` (its shared library loaded at run time).
    Onnxruntime,
}

/// tract, as named in the output and config.json.
pub const TRACT: &str = "tract 0.23";

type Plan = Arc<TypedRunnableModel>;

/// How the network's batch dimension is given.
#[derive(Debug, Clone)]
enum BatchDim {
    /// A symbol (a dynamic axis): any batch size.
    Symbol(Symbol),
    /// A fixed size: batches are run in chunks of it.
    Fixed(usize),
}

/// The noise input: where, its type and rank.
#[derive(Debug, Clone, Copy)]
struct NoiseSlot {
    index: usize,
    datum: DatumType,
    rank: usize,
}

/// A noise input's values, in the input's type.
#[derive(Debug, Clone)]
pub enum NoiseValues {
    /// σ or ln σ.
    F32(Vec<f32>),
    /// σ or ln σ.
    F64(Vec<f64>),
    /// A level index.
    I64(Vec<i64>),
    /// A level index.
    I32(Vec<i32>),
}

/// A noise input's tensor: shape and values.
#[derive(Debug, Clone)]
pub struct NoiseData {
    /// The shape: `[]`, `[B]` or `[B, 1]`.
    pub shape: Vec<usize>,
    /// The values.
    pub values: NoiseValues,
}

/// What runs the forward passes: tract's optimised plans (one per batch size), or onnxruntime
/// sessions (one per thread, pooled).
enum Engine {
    Tract,
    Ort(ort_engine::OrtEngine),
}

/// A score network loaded for sampling.
pub struct Network {
    path: PathBuf,
    conv: Conventions,
    model: TypedModel,
    x_index: usize,
    noise: Option<NoiseSlot>,
    batch: BatchDim,
    shape: Vec<usize>,
    output_name: String,
    plans: Mutex<HashMap<usize, Plan>>,
    engine: Engine,
    failure: Mutex<Option<String>>,
    /// Nanoseconds spent in the runtime's forward passes (all threads; not the conversion of
    /// inputs and outputs), and the passes.
    forward_nanos: AtomicU64,
    forward_calls: AtomicU64,
}

impl std::fmt::Debug for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Network").field("path", &self.path).field("conv", &self.conv).finish()
    }
}

/// ONNX's name of a tensor type.
fn dtype_name(t: DatumType) -> String {
    let name = match t {
        DatumType::F16 => "float16",
        DatumType::F32 => "float32",
        DatumType::F64 => "float64",
        DatumType::I8 => "int8",
        DatumType::I16 => "int16",
        DatumType::I32 => "int32",
        DatumType::I64 => "int64",
        DatumType::U8 => "uint8",
        DatumType::Bool => "bool",
        other => return format!("{other:?}"),
    };
    name.to_string()
}

fn bad(model: &Path, what: impl std::fmt::Display) -> UsageError {
    UsageError::flag(format!("--score = {}: {what}", model.display()))
}

impl Network {
    /// Loads `path` with conventions `conv` for `runtime`, and checks it by one forward pass of
    /// two samples. tract reads and checks the graph for either runtime (the same refusals).
    pub fn load(path: &Path, conv: Conventions, runtime: Runtime) -> Result<Network, UsageError> {
        let bytes = match built_in(path) {
            Some((b, _)) => std::borrow::Cow::Borrowed(b),
            None => std::borrow::Cow::Owned(
                std::fs::read(path).map_err(|e| bad(path, format_args!("cannot read ({e})")))?,
            ),
        };
        let inference = tract_onnx::onnx()
            .model_for_read(&mut std::io::Cursor::new(&bytes[..]))
            .map_err(|e| bad(path, format_args!("not a readable ONNX model ({e:#})")))?;
        let model = inference
            .into_typed()
            .and_then(|m| m.into_decluttered())
            .map_err(|e| bad(path, format_args!("tract cannot type this model ({e:#})")))?;
        let names: Vec<String> = model
            .input_outlets()
            .map_err(|e| bad(path, e))?
            .iter()
            .map(|o| model.node(o.node).name.clone())
            .collect();
        let find = |name: &str, role: &str| {
            names.iter().position(|n| n == name).ok_or_else(|| {
                bad(
                    path,
                    format_args!(
                        "the {role} input \"{name}\" declared in the sidecar is not an input of \
                         the model (its inputs: {names:?})"
                    ),
                )
            })
        };
        let wants_noise = conv.input != NoiseInputKind::None;
        let (x_index, noise_index) = match (&conv.x_input, &conv.noise_input) {
            (Some(x), n) => (find(x, "x")?, n.as_deref().map(|n| find(n, "noise")).transpose()?),
            (None, Some(n)) => {
                let ni = find(n, "noise")?;
                (usize::from(ni == 0), Some(ni))
            }
            (None, None) => (0, (names.len() > 1).then_some(1)),
        };
        let expected_inputs = 1 + usize::from(wants_noise);
        if names.len() != expected_inputs || noise_index.is_some() != wants_noise {
            return Err(bad(
                path,
                format_args!(
                    "the model has {} input(s) {names:?} but the declared noise input \"{}\" needs \
                     {expected_inputs} (x{}): declare the right --score-input, or export the \
                     model with {}",
                    names.len(),
                    conv.input.name(),
                    if wants_noise { " and the noise level" } else { " only" },
                    if wants_noise { "forward(x, sigma)" } else { "forward(x)" }
                ),
            ));
        }
        let fact = |i: usize| model.input_fact(i).map_err(|e| bad(path, e)).cloned();
        let xf = fact(x_index)?;
        let xname = &names[x_index];
        if xf.datum_type != f32::datum_type() {
            return Err(bad(
                path,
                format_args!(
                    "input \"{xname}\" is {}; x must be float32",
                    dtype_name(xf.datum_type)
                ),
            ));
        }
        let dims: Vec<TDim> = xf.shape.iter().cloned().collect();
        if dims.len() < 2 {
            return Err(bad(
                path,
                format_args!(
                    "input \"{xname}\" has rank {}; x must be [batch, …] with rank ≥ 2",
                    dims.len()
                ),
            ));
        }
        let model_shape: Option<Vec<usize>> = dims[1..].iter().map(|d| d.to_usize().ok()).collect();
        let shape = match (&conv.shape, model_shape) {
            (Some(s), Some(m)) if *s != m => {
                return Err(bad(
                    path,
                    format_args!(
                        "input \"{xname}\" has per-sample shape {m:?} but the sidecar declares {s:?}"
                    ),
                ));
            }
            (Some(s), _) => s.clone(),
            (None, Some(m)) => m,
            (None, None) => {
                return Err(bad(
                    path,
                    format_args!(
                        "input \"{xname}\" has symbolic sizes {dims:?} beyond the batch axis: \
                         declare \"shape\" in {}",
                        conventions::sidecar_path(path).display()
                    ),
                ));
            }
        };
        if dims.len() != 1 + shape.len() {
            return Err(bad(
                path,
                format_args!(
                    "input \"{xname}\" has rank {} but [batch] + {shape:?} needs {}",
                    dims.len(),
                    1 + shape.len()
                ),
            ));
        }
        let batch = match dims[0].to_usize() {
            Ok(b) => BatchDim::Fixed(b.max(1)),
            Err(_) => match dims[0].symbols().into_iter().next() {
                Some(s) => BatchDim::Symbol(s),
                None => return Err(bad(path, format_args!("input \"{xname}\" has no batch axis"))),
            },
        };
        let noise = match noise_index {
            None => None,
            Some(index) => {
                let f = fact(index)?;
                let nname = &names[index];
                let integer = f.datum_type.is_integer();
                let level = conv.input == NoiseInputKind::Level;
                if level != integer
                    || !(integer
                        || f.datum_type == f32::datum_type()
                        || f.datum_type == f64::datum_type())
                {
                    return Err(bad(
                        path,
                        format_args!(
                            "noise input \"{nname}\" is {}, but a {} input must be {}",
                            dtype_name(f.datum_type),
                            conv.input.name(),
                            if level {
                                "an integer (int64) level index"
                            } else {
                                "float32 or float64"
                            }
                        ),
                    ));
                }
                let rank = f.shape.rank();
                let ok = match rank {
                    0 => true,
                    1 => true,
                    2 => f.shape[1].to_usize().ok() == Some(1),
                    _ => false,
                };
                if !ok {
                    return Err(bad(
                        path,
                        format_args!(
                            "noise input \"{nname}\" has shape {:?}; expected a scalar, [batch] or \
                             [batch, 1]",
                            f.shape
                        ),
                    ));
                }
                Some(NoiseSlot { index, datum: f.datum_type, rank })
            }
        };
        let output_name = model
            .output_outlets()
            .ok()
            .and_then(|o| {
                o.first().map(|&o| {
                    model
                        .outlet_label(o)
                        .map_or_else(|| model.node(o.node).name.clone(), str::to_string)
                })
            })
            .unwrap_or_else(|| "output 0".into());
        let use_ort = match runtime {
            Runtime::Tract => false,
            Runtime::Onnxruntime => true,
            Runtime::Auto => ort_engine::available(),
        };
        let engine = if use_ort {
            let noise_name = noise.map(|n| names[n.index].as_str());
            let made = ort_engine::environment()
                .map_err(|e| {
                    UsageError::flag(format!(
                        "--runtime onnxruntime: the onnxruntime library could not be loaded ({e}); \
                         pip install onnxruntime and set ORT_DYLIB_PATH to its \
                         onnxruntime/capi/libonnxruntime.so.*, or use --runtime tract"
                    ))
                })
                .and_then(|_| {
                    ort_engine::OrtEngine::new(bytes.to_vec(), &names[x_index], noise_name)
                        .map_err(|e| bad(path, e))
                });
            match (made, runtime) {
                (Ok(engine), _) => Engine::Ort(engine),
                // auto: a model onnxruntime refuses still runs on tract, which has checked it.
                (Err(e), Runtime::Auto) => {
                    eprintln!("warning: {e}; running the network on {TRACT}");
                    Engine::Tract
                }
                (Err(e), _) => return Err(e),
            }
        } else {
            Engine::Tract
        };
        let net = Network {
            path: path.to_path_buf(),
            conv,
            model,
            x_index,
            noise,
            batch,
            shape,
            output_name,
            plans: Mutex::new(HashMap::new()),
            engine,
            failure: Mutex::new(None),
            forward_nanos: AtomicU64::new(0),
            forward_calls: AtomicU64::new(0),
        };
        // One forward pass of two samples at a σ the network knows: the output's shape is checked.
        let sigma = match net.conv.sigmas.as_deref() {
            Some(s) => s[s.len() - 1],
            None => net.conv.trained_sigma.map_or(1.0, |[lo, hi]| (lo * hi).sqrt()),
        };
        let x = vec![0.0f32; 2 * net.dim()];
        let mut out = vec![0.0f32; 2 * net.dim()];
        net.forward(&x, 2, sigma, &mut out).map_err(|e| bad(path, e))?;
        // The check is not part of any run's forward time.
        net.reset_timing();
        Ok(net)
    }

    /// The model's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The conventions.
    pub fn conventions(&self) -> &Conventions {
        &self.conv
    }

    /// One sample's shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// D.
    pub fn dim(&self) -> usize {
        self.shape.iter().product()
    }

    /// The runtime that runs the forward passes, by name.
    pub fn runtime(&self) -> String {
        match &self.engine {
            Engine::Tract => TRACT.to_string(),
            Engine::Ort(_) => match ort_engine::environment() {
                Ok((path, _)) => format!("onnxruntime ({path})"),
                Err(_) => "onnxruntime".into(),
            },
        }
    }

    /// One line: the file, the conventions, the runtime.
    pub fn describe(&self) -> String {
        self.describe_on(&format!("{} on the CPU", self.runtime()))
    }

    /// [`Network::describe`] with the forward passes run by `runtime`.
    pub fn describe_on(&self, runtime: &str) -> String {
        format!(
            "{} (input {}, output {}, shape {:?}; {runtime})",
            self.path.display(),
            self.conv.input.name(),
            self.conv.output.name(),
            self.shape,
        )
    }

    /// Checks that the network can be evaluated at `sigma`: a level-index network only at its
    /// trained σ's (the refusal names the nearest levels and `--snap-levels`).
    pub fn check_sigma(&self, sigma: f64) -> Result<(), UsageError> {
        if self.conv.input != NoiseInputKind::Level {
            return Ok(());
        }
        self.conv.level_of(sigma).map(|_| ()).map_err(|near| {
            let near: Vec<String> = near
                .iter()
                .map(|(i, s)| format!("level {i} (σ = {})", crate::error::exact(*s)))
                .collect();
            bad(
                &self.path,
                format_args!(
                    "the schedule asks for σ = {sigma}, which this level-index network was not \
                     trained at (nearest: {}); choose --sigma-max/--sigma-min/--levels on its \
                     trained σ's, or add --snap-levels to run on the trained levels",
                    near.join(", ")
                ),
            )
        })
    }

    /// Seconds spent in the network's forward passes so far (summed over threads) and the
    /// number of passes; [`Network::reset_timing`] zeroes both.
    pub fn forward_time(&self) -> (f64, u64) {
        (
            self.forward_nanos.load(Ordering::Relaxed) as f64 * 1e-9,
            self.forward_calls.load(Ordering::Relaxed),
        )
    }

    /// The forward passes' share of a run of `seconds` on `busy` threads (their summed time ÷
    /// the threads' time).
    pub fn forward_share(&self, seconds: f64, busy: usize) -> f64 {
        self.forward_time().0 / (seconds * busy.max(1) as f64)
    }

    /// Zeroes [`Network::forward_time`].
    pub fn reset_timing(&self) {
        self.forward_nanos.store(0, Ordering::Relaxed);
        self.forward_calls.store(0, Ordering::Relaxed);
    }

    /// The failure message kept by the last [`Error::ScoreFailed`], if any.
    pub fn failure(&self) -> Option<String> {
        self.failure.lock().ok().and_then(|f| f.clone())
    }

    /// The typed model with its batch symbol bound to `batch`.
    fn model_for_batch(&self, batch: usize) -> TractResult<TypedModel> {
        match &self.batch {
            BatchDim::Symbol(s) => {
                let subs = HashMap::from([(s.clone(), TDim::Val(batch as i64))]);
                self.model.set_symbols(&subs)
            }
            BatchDim::Fixed(_) => Ok(self.model.clone()),
        }
    }

    /// Counts one forward pass, the runtime's call of `runtime`, in [`Network::forward_time`].
    fn count_forward(&self, runtime: Duration) {
        self.forward_nanos.fetch_add(runtime.as_nanos() as u64, Ordering::Relaxed);
        self.forward_calls.fetch_add(1, Ordering::Relaxed);
    }

    fn plan(&self, batch: usize) -> TractResult<Plan> {
        if let Some(p) = self.plans.lock().ok().and_then(|m| m.get(&batch).cloned()) {
            return Ok(p);
        }
        let plan = self.model_for_batch(batch)?.into_optimized()?.into_runnable()?;
        if let Ok(mut m) = self.plans.lock() {
            m.insert(batch, plan.clone());
        }
        Ok(plan)
    }

    /// The noise input's values and shape for `rows` samples at σ.
    fn noise_values(&self, slot: NoiseSlot, rows: usize, sigma: f64) -> TractResult<NoiseData> {
        let shape = match slot.rank {
            0 => vec![],
            1 => vec![rows],
            _ => vec![rows, 1],
        };
        let count = if slot.rank == 0 { 1 } else { rows };
        let values = match self.conv.input {
            NoiseInputKind::Level => {
                let level = self.conv.level_of(sigma).map_err(|_| {
                    anyhow::anyhow!("σ = {sigma} is not one of the network's trained levels")
                })?;
                if slot.datum == i32::datum_type() {
                    NoiseValues::I32(vec![level as i32; count])
                } else {
                    NoiseValues::I64(vec![level as i64; count])
                }
            }
            kind => {
                let v = if kind == NoiseInputKind::LogSigma { sigma.ln() } else { sigma };
                if slot.datum == f64::datum_type() {
                    NoiseValues::F64(vec![v; count])
                } else {
                    NoiseValues::F32(vec![v as f32; count])
                }
            }
        };
        Ok(NoiseData { shape, values })
    }

    /// The network's raw output for `rows` samples `x` at σ, handed to `take` (one run of the
    /// plan, or of a session, for `rows`). The runtime's own call is added to `runtime`.
    fn run_rows(
        &self,
        x: &[f32],
        rows: usize,
        sigma: f64,
        runtime: &mut Duration,
        take: &mut dyn FnMut(&[f32]),
    ) -> TractResult<()> {
        let mut dims = vec![rows];
        dims.extend(&self.shape);
        let noise = self.noise.map(|slot| self.noise_values(slot, rows, sigma)).transpose()?;
        let noise_first = self.noise.is_some_and(|slot| slot.index < self.x_index);
        let wrong = |dt: &str, shape: &[usize]| {
            anyhow::anyhow!(
                "output \"{}\" is {dt} of shape {shape:?} where float32 of shape {dims:?} (the \
                 input's) was expected",
                self.output_name
            )
        };
        if let Engine::Ort(engine) = &self.engine {
            return engine.run(x, &dims, noise.as_ref(), runtime, &mut |dt, shape, y| match y {
                Some(y) if shape == dims.as_slice() => {
                    take(y);
                    Ok(())
                }
                _ => Err(wrong(dt, shape)),
            });
        }
        let plan = self.plan(rows)?;
        let xt: TValue = Tensor::from_shape(&dims, x)?.into();
        let mut inputs: TVec<TValue> = tvec![xt];
        if let Some(n) = noise {
            let t: TValue = match &n.values {
                NoiseValues::F32(v) => Tensor::from_shape(&n.shape, v)?,
                NoiseValues::F64(v) => Tensor::from_shape(&n.shape, v)?,
                NoiseValues::I64(v) => Tensor::from_shape(&n.shape, v)?,
                NoiseValues::I32(v) => Tensor::from_shape(&n.shape, v)?,
            }
            .into();
            if noise_first { inputs.insert(0, t) } else { inputs.push(t) }
        }
        let start = Instant::now();
        let mut out = plan.run(inputs)?;
        *runtime += start.elapsed();
        let y = out.remove(0).into_tensor();
        if y.datum_type() != f32::datum_type() || y.shape() != dims.as_slice() {
            return Err(wrong(&dtype_name(y.datum_type()), y.shape()));
        }
        let view = y.try_as_plain_ram()?;
        take(view.as_slice::<f32>()?);
        Ok(())
    }

    /// s(x, σ) for `rows` samples into `out`.
    pub fn forward(&self, x: &[f32], rows: usize, sigma: f64, out: &mut [f32]) -> TractResult<()> {
        let d = self.dim();
        let chunk = match self.batch {
            BatchDim::Symbol(_) => rows,
            BatchDim::Fixed(b) => b,
        };
        let conv = self.conv.output;
        let mut padded = Vec::new();
        for first in (0..rows).step_by(chunk.max(1)) {
            let count = chunk.min(rows - first);
            let xs = &x[first * d..(first + count) * d];
            let input = if count < chunk {
                // A fixed-batch model: the last chunk is padded with copies of its last row.
                padded.clear();
                padded.extend_from_slice(xs);
                for _ in count..chunk {
                    padded.extend_from_slice(&xs[(count - 1) * d..]);
                }
                &padded[..]
            } else {
                xs
            };
            let dst = &mut out[first * d..(first + count) * d];
            let mut runtime = Duration::ZERO;
            self.run_rows(input, chunk, sigma, &mut runtime, &mut |y| {
                conv.scores(y, xs, sigma, dst)
            })?;
            self.count_forward(runtime);
        }
        Ok(())
    }
}

/// [`BatchScore`] through a [`Network`].
pub struct NetworkScore<'n>(pub &'n Network);

impl BatchScore<f32> for NetworkScore<'_> {
    fn dim(&self) -> usize {
        self.0.dim()
    }

    fn score_batch(&mut self, points: &[f32], sigma: f64, out: &mut [f32]) -> Result<(), Error> {
        let d = self.0.dim();
        if !points.len().is_multiple_of(d) || points.len() != out.len() {
            return Err(Error::DimensionMismatch { expected: points.len(), found: out.len() });
        }
        self.0.forward(points, points.len() / d, sigma, out).map_err(|e| {
            if let Ok(mut f) = self.0.failure.lock() {
                f.get_or_insert_with(|| format!("{e:#}"));
            }
            Error::ScoreFailed { level: 0, step: 0 }
        })
    }
}
