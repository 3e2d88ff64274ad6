//! The flag groups shared by the commands (`#[command(flatten)]`), the flags' value types and
//! the run's defaults. Each default is written once: the samplers' come from the core
//! ([`SamplerParams::DEFAULT`]), the run's are the constants below (the configuration reads
//! them from here).

use std::path::PathBuf;

use clap::{ArgAction, Args, ValueEnum};
use serde::Serialize;

use anneal_core::samplers::any::{SamplerKind, SamplerParams};

pub use crate::score::network::{NoiseInputKind, OutputKind, Runtime};

/// σ_N when --sigma-min is not given.
pub const DEFAULT_SIGMA_MIN: f64 = 0.01;
/// Levels when neither --levels nor --technique2 is given (README, "Defaults").
pub const DEFAULT_LEVELS: usize = 100;
/// εc when CAS is run without --eps-c/--eps-b.
pub const DEFAULT_EPS_C: f64 = 2.0;
/// Technique 2's C when --c is not given.
pub const DEFAULT_TECHNIQUE2_C: f64 = 0.5;
/// Samples per batch when --batch is not given.
pub const DEFAULT_BATCH: usize = 256;

/// The ground truth: which data, and the width of its components.
#[derive(Debug, Clone, Args, Serialize)]
pub struct DataFlags {
    /// toy2d, digits, or a .npy/.csv file of points (each point a mixture component). With
    /// --score: the reference set of the metrics (default: the model's sidecar "data").
    /// Default: toy2d.
    #[arg(long)]
    pub data: Option<String>,
    /// Standard deviation τ of every component (default: 1 for toy2d, 0.05 for digits, 0 for files).
    #[arg(long, allow_negative_numbers = true)]
    pub tau: Option<f64>,
}

impl DataFlags {
    /// --data as given, else the network's declared data, else toy2d.
    pub fn name(&self, declared: Option<&str>) -> String {
        self.data.clone().or_else(|| declared.map(str::to_string)).unwrap_or_else(|| "toy2d".into())
    }
}

/// A trained score network instead of the exact mixture score (README, "Your own score
/// network").
#[derive(Debug, Clone, Default, Args, Serialize)]
pub struct ScoreFlags {
    /// An ONNX score network (torch.onnx.export), or `digits` (the shipped digits network). Its
    /// conventions come from MODEL.json beside it and/or --score-input/--score-output. Without
    /// it: the exact score of --data smoothed by τ.
    #[arg(long)]
    pub score: Option<PathBuf>,
    /// The network's noise input (overrides the sidecar's "input").
    #[arg(long, value_enum)]
    pub score_input: Option<NoiseInputKind>,
    /// What the network returns (overrides the sidecar's "output").
    #[arg(long, value_enum)]
    pub score_output: Option<OutputKind>,
    /// Level-index networks: run on the trained σ's between --sigma-max and --sigma-min (their
    /// count replaces --levels) instead of refusing a schedule that asks for other σ's.
    #[arg(long)]
    pub snap_levels: bool,
    /// Which runtime runs the network: onnxruntime when its library loads (ORT_DYLIB_PATH),
    /// tract otherwise (auto); or either by name.
    #[arg(long, value_enum, env = "ANNEAL_RUNTIME", default_value_t = Runtime::Auto)]
    pub runtime: Runtime,
}

/// The ends of the noise schedule.
#[derive(Debug, Clone, Args, Serialize)]
pub struct SigmaFlags {
    /// σ_1: a number, or `auto` (NCSNv2 Technique 1: the largest distance between two data points).
    #[arg(long, default_value = "auto", allow_negative_numbers = true)]
    pub sigma_max: String,
    /// σ_N.
    #[arg(long, default_value_t = DEFAULT_SIGMA_MIN, allow_negative_numbers = true)]
    pub sigma_min: f64,
}

/// Everything a sampler takes besides its step size (εc, ε_b, ε: `sample` takes one value,
/// `tune` a list).
#[derive(Debug, Clone, Args, Serialize)]
pub struct SamplerOptions {
    /// The convention --eps is given in.
    #[arg(long, value_enum, default_value_t = ConventionKind::Ncsnv2)]
    pub step_convention: ConventionKind,
    /// Steps per level T (als, langevin, noise-denoise, baoab*, obabo; default 100).
    #[arg(long)]
    pub steps_per_level: Option<u32>,
    /// PC: corrector steps M per level (default 1).
    #[arg(long)]
    pub corrector_steps: Option<u32>,
    /// PC: the signal-to-noise corrector with this snr ∈ (0, 1) (otherwise the Langevin corrector).
    #[arg(long, allow_negative_numbers = true)]
    pub snr: Option<f64>,
    /// PC with --snr: how the snr corrector takes its norms: means over fixed groups of samples
    /// (grouped, the default: right in every dimension, and a sample does not depend on the
    /// batch), each sample's own (per-sample; biased in low dimension), or batch means
    /// (batch-mean, score_sde's; depend on the batch).
    #[arg(long, value_enum)]
    pub snr_norms: Option<SnrNormsKind>,
    /// PC with --snr and grouped norms: samples per group (default 256; --batch must be a
    /// multiple of it).
    #[arg(long)]
    pub snr_group: Option<u32>,
    /// PC: order of predictor and correctors (default predictor-first).
    #[arg(long, value_enum)]
    pub order: Option<OrderKind>,
    /// noise-denoise: λ ∈ (0, 2] (default 1).
    #[arg(long, allow_negative_numbers = true)]
    pub lambda: Option<f64>,
    /// baoab, obabo: friction κ > 0 (default 1).
    #[arg(long, allow_negative_numbers = true)]
    pub friction: Option<f64>,
    /// als, cas, pc: the final denoising step x ← x + σ_N² s(x, σ_N) (default true).
    #[arg(long, action = ArgAction::Set)]
    pub denoise: Option<bool>,
}

impl SamplerOptions {
    /// PC's corrector steps M.
    pub fn corrector_steps(&self) -> u32 {
        self.corrector_steps.unwrap_or(SamplerParams::DEFAULT.corrector_steps)
    }
    /// The snr corrector's norms.
    pub fn snr_norms(&self) -> SnrNormsKind {
        self.snr_norms.unwrap_or(SnrNormsKind::Grouped)
    }
    /// Samples per group of grouped snr norms.
    pub fn snr_group(&self) -> u32 {
        self.snr_group.unwrap_or(anneal_core::plan::SnrNorms::DEFAULT_GROUP)
    }
    /// PC's order.
    pub fn order(&self) -> OrderKind {
        self.order.unwrap_or(OrderKind::PredictorFirst)
    }
    /// noise-denoise's λ.
    pub fn lambda(&self) -> f64 {
        self.lambda.unwrap_or(SamplerParams::DEFAULT.lambda)
    }
    /// The friction of baoab and obabo.
    pub fn friction(&self) -> f64 {
        self.friction.unwrap_or(SamplerParams::DEFAULT.friction)
    }
    /// The final denoising step.
    pub fn denoise(&self) -> bool {
        self.denoise.unwrap_or(SamplerParams::DEFAULT.denoise)
    }

    /// Every option with the samplers that use it: the one table from which options are
    /// refused ([`Self::check_applicable`]), recorded ([`Self::fill_defaults`]) and keyed
    /// (`tune`'s cells).
    pub fn uses(&self) -> [OptionUse; 9] {
        use serde_json::{Value, json};
        let d = SamplerParams::DEFAULT;
        let pc = |k: SamplerKind, _: bool| k == SamplerKind::Pc;
        let pc_snr = |k: SamplerKind, snr: bool| k == SamplerKind::Pc && snr;
        [
            OptionUse {
                flag: "--snr",
                key: "snr",
                given: self.snr.is_some(),
                value: self.snr.map_or(Value::Null, |v| json!(v)),
                is_default: self.snr.is_none(),
                applies: pc,
                to: "pc",
            },
            OptionUse {
                flag: "--corrector-steps",
                key: "corrector_steps",
                given: self.corrector_steps.is_some(),
                value: json!(self.corrector_steps()),
                is_default: self.corrector_steps() == d.corrector_steps,
                applies: pc,
                to: "pc",
            },
            OptionUse {
                flag: "--order",
                key: "order",
                given: self.order.is_some(),
                value: serde_json::to_value(self.order()).unwrap_or_default(),
                is_default: self.order() == OrderKind::PredictorFirst,
                applies: pc,
                to: "pc",
            },
            OptionUse {
                flag: "--snr-norms",
                key: "snr_norms",
                given: self.snr_norms.is_some(),
                value: serde_json::to_value(self.snr_norms()).unwrap_or_default(),
                is_default: self.snr_norms() == SnrNormsKind::Grouped,
                applies: pc_snr,
                to: "pc with --snr",
            },
            OptionUse {
                flag: "--snr-group",
                key: "snr_group",
                given: self.snr_group.is_some(),
                value: json!(self.snr_group()),
                is_default: self.snr_group() == anneal_core::plan::SnrNorms::DEFAULT_GROUP,
                applies: pc_snr,
                to: "pc with --snr",
            },
            OptionUse {
                flag: "--lambda",
                key: "lambda",
                given: self.lambda.is_some(),
                value: json!(self.lambda()),
                is_default: self.lambda() == d.lambda,
                applies: |k, _| k == SamplerKind::NoiseDenoise,
                to: "noise-denoise",
            },
            OptionUse {
                flag: "--friction",
                key: "friction",
                given: self.friction.is_some(),
                value: json!(self.friction()),
                is_default: self.friction() == d.friction,
                applies: |k, _| matches!(k, SamplerKind::Baoab | SamplerKind::Obabo),
                to: "baoab and obabo",
            },
            OptionUse {
                flag: "--denoise",
                key: "denoise",
                given: self.denoise.is_some(),
                value: json!(self.denoise()),
                is_default: self.denoise() == d.denoise,
                applies: |k, _| k.has_final_denoise(),
                to: "als, cas and pc",
            },
            OptionUse {
                flag: "--steps-per-level",
                key: "steps_per_level",
                given: self.steps_per_level.is_some(),
                value: self.steps_per_level.map_or(Value::Null, |t| json!(t)),
                is_default: self.steps_per_level.is_none(),
                applies: |k, _| k.uses_steps_per_level(),
                to: "als, langevin, noise-denoise, baoab-limit, baoab and obabo",
            },
        ]
    }

    /// Writes the values of the options not given into `flags` (the JSON of the flags, for
    /// config.json: a run records every value it used).
    pub fn fill_defaults(&self, flags: &mut serde_json::Value) {
        let Some(map) = flags.as_object_mut() else { return };
        for u in self.uses() {
            if map.get(u.key).is_none_or(serde_json::Value::is_null) {
                map.insert(u.key.into(), u.value);
            }
        }
    }

    /// Refuses an option given to a run none of whose samplers (`kinds`: one for `sample`, the
    /// sweep's for `tune`) uses it, the way `--eps` is refused with CAS: naming the flag and the
    /// samplers it applies to.
    pub fn check_applicable(&self, kinds: &[SamplerKind]) -> Result<(), String> {
        let snr = self.snr.is_some();
        for u in self.uses() {
            if u.given && !kinds.iter().any(|&k| (u.applies)(k, snr)) {
                let names: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
                return Err(format!(
                    "{} applies to {}; --sampler {} does not use it: remove {}",
                    u.flag,
                    u.to,
                    names.join(","),
                    u.flag
                ));
            }
        }
        Ok(())
    }
}

/// One sampler option as [`SamplerOptions::uses`] lists it.
pub struct OptionUse {
    /// The flag (`--lambda`).
    pub flag: &'static str,
    /// Its name in config.json and in a tune cell's options (`lambda`).
    pub key: &'static str,
    /// Whether it was given.
    pub given: bool,
    /// The value used (the default where not given; null where there is none).
    pub value: serde_json::Value,
    /// Whether that value is the default.
    pub is_default: bool,
    /// Whether sampler `kind` uses it (`snr`: whether --snr is given).
    pub applies: fn(SamplerKind, bool) -> bool,
    /// The samplers it applies to, for the refusal.
    pub to: &'static str,
}

/// How the samples start and how the work is split.
#[derive(Debug, Clone, Args, Serialize)]
pub struct RunFlags {
    /// Initialisation: normal (N(data mean, σ_1² I)), prior (N(0, σ_1² I), score_sde and the
    /// CAS note), uniform (the data's widened bounding box), uniform:LO:HI (NCSN/NCSNv2: 0:1 for
    /// images) or data (exact samples of p_σ1).
    #[arg(long, default_value = "normal")]
    pub init: InitKind,
    /// Samples per batch (one GEMM score call per batch and step).
    #[arg(long, default_value_t = DEFAULT_BATCH)]
    pub batch: usize,
    /// Worker threads (0 = one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

/// The number of levels of `sample`: given, the default, or by Technique 2.
#[derive(Debug, Clone, Args, Serialize)]
pub struct LevelFlags {
    /// Number of levels N (geometric; default 100).
    #[arg(long, value_name = "N", conflicts_with = "technique2")]
    pub levels: Option<usize>,
    /// N by NCSNv2's Technique 2.
    #[arg(long)]
    pub technique2: bool,
    /// Technique 2's C.
    #[arg(
        long,
        default_value_t = DEFAULT_TECHNIQUE2_C,
        requires = "technique2",
        allow_negative_numbers = true
    )]
    pub c: f64,
}

/// The step size of one `sample` run.
#[derive(Debug, Clone, Args, Serialize)]
pub struct StepFlags {
    /// CAS: η_i = 1 − γ_i^εc (εc ≥ 1, `inf` allowed; default 2).
    #[arg(long, conflicts_with = "eps_b", allow_negative_numbers = true)]
    pub eps_c: Option<f64>,
    /// CAS: η = ε_b/σ_N².
    #[arg(long, allow_negative_numbers = true)]
    pub eps_b: Option<f64>,
    /// Langevin step ε (α_i = ε σ_i²/σ_N²) for als, pc's corrector, langevin, baoab*, obabo;
    /// default: Technique 4 for the schedule and --steps-per-level.
    #[arg(long, allow_negative_numbers = true)]
    pub eps: Option<f64>,
}

/// `--sampler`: the samplers of anneal-core ([`SamplerKind`], which holds their rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SamplerArg {
    /// Consistent annealed sampling (η from --eps-c or --eps-b).
    Cas,
    /// Annealed Langevin sampling (--eps, --steps-per-level).
    Als,
    /// Predictor–corrector (--corrector-steps; --snr or --eps for the corrector).
    Pc,
    /// Overdamped Langevin, level by level (--eps, --steps-per-level; --levels 1 = one level).
    Langevin,
    /// Generalized noise-denoise (--lambda, --steps-per-level).
    NoiseDenoise,
    /// BAOAB-limit (--eps, --steps-per-level).
    BaoabLimit,
    /// BAOAB with friction (--eps, --friction, --steps-per-level).
    Baoab,
    /// OBABO with friction (--eps, --friction, --steps-per-level).
    Obabo,
}

/// Initialisation (`--init`), as the papers' code draws it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum InitKind {
    /// `normal`: N(data mean, σ_1² I).
    Normal,
    /// `prior`: N(0, σ_1² I), the VE SDE's prior (score_sde's `prior_sampling`; the CAS note's
    /// start).
    Prior,
    /// `uniform`: uniform on the data's bounding box widened by 3·max(τ, σ_N) (on toy2d the
    /// [−8, 8]² of NCSN's toy by coincidence).
    Uniform,
    /// `uniform:LO:HI`: uniform on [LO, HI]^D (NCSN's and NCSNv2's images: `uniform:0:1`;
    /// NCSN's toy: `uniform:-8:8`).
    UniformBox {
        /// The box's lower side.
        lo: f64,
        /// The box's upper side (> lo).
        hi: f64,
    },
    /// `data`: exact samples of p_σ1 (a data point + τ and σ_1 noise): isolates the sampler's
    /// error from the start's. Uses the data, so it is for studying samplers, not for generation.
    Data,
}

impl std::str::FromStr for InitKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "normal" => return Ok(InitKind::Normal),
            "prior" => return Ok(InitKind::Prior),
            "uniform" => return Ok(InitKind::Uniform),
            "data" => return Ok(InitKind::Data),
            _ => {}
        }
        let fix = "expected normal, prior, uniform, uniform:LO:HI (e.g. uniform:0:1) or data";
        let Some(rest) = s.strip_prefix("uniform:") else {
            return Err(format!("\"{s}\": {fix}"));
        };
        let bound = |v: Option<&str>, which: &str| -> Result<f64, String> {
            v.and_then(|v| v.trim().parse::<f64>().ok()).filter(|v| v.is_finite()).ok_or_else(
                || format!("\"{s}\": the box's {which} side is not a finite number; {fix}"),
            )
        };
        let mut parts = rest.splitn(2, ':');
        let lo = bound(parts.next(), "lower")?;
        let hi = bound(parts.next(), "upper")?;
        if lo >= hi {
            let (lo, hi) = (crate::error::exact(lo), crate::error::exact(hi));
            return Err(format!(
                "\"{s}\": the box [{lo}, {hi}] is empty: LO must be below HI (e.g. uniform:0:1)"
            ));
        }
        Ok(InitKind::UniformBox { lo, hi })
    }
}

impl Serialize for InitKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.name())
    }
}

/// Step-size convention of --eps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConventionKind {
    /// x ← x + α s + √(2α) z (NCSNv2).
    Ncsnv2,
    /// x ← x + (α/2) s + √α z (NCSN).
    Ncsn,
}

/// PC order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OrderKind {
    /// Predictor, then correctors (the paper).
    PredictorFirst,
    /// Correctors, then predictor (score_sde's code).
    CorrectorFirst,
}

/// snr corrector norms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SnrNormsKind {
    /// Means over groups of --snr-group samples (reproducible across batches).
    Grouped,
    /// Per sample (reproducible across batches; biased in low dimension).
    PerSample,
    /// Batch means (score_sde; depends on the batch).
    BatchMean,
}

/// Where sampling runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeviceKind {
    /// CUDA device 0 when a driver, a device, NVRTC and cuBLAS answer; the CPU otherwise (the
    /// run says which it used and why).
    Auto,
    /// The CPU (rayon threads).
    Cpu,
    /// CUDA device 0; exits with status 2 when there is none.
    Cuda,
}

impl From<SamplerArg> for SamplerKind {
    /// The core's sampler at the same position (a test checks that the names and the order
    /// agree).
    fn from(a: SamplerArg) -> SamplerKind {
        SamplerKind::ALL[a as usize]
    }
}

impl InitKind {
    /// The name the CLI and the outputs use (`uniform:LO:HI` with the box).
    pub fn name(self) -> String {
        match self {
            InitKind::Normal => "normal".into(),
            InitKind::Prior => "prior".into(),
            InitKind::Uniform => "uniform".into(),
            InitKind::UniformBox { lo, hi } => format!("uniform:{lo}:{hi}"),
            InitKind::Data => "data".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The flag's spelling of each sampler is the core's name, in the core's order.
    #[test]
    fn sampler_flags_are_the_cores_names() {
        let args = SamplerArg::value_variants();
        assert_eq!(args.len(), SamplerKind::ALL.len());
        for (a, k) in args.iter().zip(SamplerKind::ALL) {
            assert_eq!(SamplerKind::from(*a), k);
            assert_eq!(a.to_possible_value().unwrap().get_name(), k.name());
        }
    }

    /// `--init`: every form parses and prints back as written; a bad box names the fix.
    #[test]
    fn init_forms() {
        for s in ["normal", "prior", "uniform", "uniform:0:1", "uniform:-8:8", "data"] {
            assert_eq!(s.parse::<InitKind>().unwrap().name(), s);
        }
        assert_eq!(
            "uniform:-8:8.5".parse::<InitKind>(),
            Ok(InitKind::UniformBox { lo: -8.0, hi: 8.5 })
        );
        for (bad, needle) in [
            ("uniform:1:0", "LO must be below HI"),
            ("uniform:0", "upper side"),
            ("uniform:a:1", "lower side"),
            ("uniform:0:inf", "upper side"),
            ("gauss", "expected normal, prior"),
        ] {
            let e = bad.parse::<InitKind>().unwrap_err();
            assert!(e.contains(needle) && e.contains(bad), "{bad}: {e}");
        }
    }
}
