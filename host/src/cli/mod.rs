//! Command-line flags (clap derive). Values are parsed here and validated into core types by each
//! command; every bad value ends in a [`crate::error::UsageError`] naming the flag.

use std::process::ExitCode;

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

/// Sampling from score-based generative models: schedules, samplers, tuning.
#[derive(Debug, Parser)]
#[command(name = "anneal", version, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print a noise schedule: σ_1…σ_N, the ratio γ, and on request the Technique 4 step size and
    /// the CAS η_i, β_i per step.
    Schedule(ScheduleArgs),
    /// Sample from a built-in or file dataset's exact score; write samples, metrics, a picture
    /// and the configuration into a folder.
    Sample(Box<SampleArgs>),
    /// Time one sampler step (GEMM score + noise + update) at fixed sizes beside NumPy.
    Bench(BenchArgs),
    /// Sweep levels × εc / ε_b / ε × seeds (the CAS note's Figure 1); resumable.
    Tune(TuneArgs),
}

/// Flags of `anneal tune`. Lists are `a,b,c` or `logspace:LO:HI:COUNT`.
#[derive(Debug, Args)]
pub struct TuneArgs {
    /// toy2d, digits, or a .npy/.csv file.
    #[arg(long, default_value = "toy2d")]
    pub data: String,
    /// τ (default: the dataset's).
    #[arg(long, allow_negative_numbers = true)]
    pub tau: Option<f64>,
    /// The samplers, e.g. `cas,als` (cas: --eps-c/--eps-b lists; others: --eps list, default
    /// Technique 4).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "cas")]
    pub sampler: Vec<SamplerKind>,
    /// σ_1, or `auto`.
    #[arg(long, default_value = "auto", allow_negative_numbers = true)]
    pub sigma_max: String,
    /// σ_N.
    #[arg(long, default_value_t = 0.01, allow_negative_numbers = true)]
    pub sigma_min: f64,
    /// The numbers of levels.
    #[arg(long, default_value = "8,16,32,64,128,256")]
    pub levels: String,
    /// εc values (`inf` allowed); default 1,1.25,1.5,2,3,5,10,inf when neither list is given.
    #[arg(long)]
    pub eps_c: Option<String>,
    /// ε_b values.
    #[arg(long)]
    pub eps_b: Option<String>,
    /// ε values (NCSNv2 convention) for the Langevin-type samplers.
    #[arg(long)]
    pub eps: Option<String>,
    /// T for the Langevin-type samplers.
    #[arg(long)]
    pub steps_per_level: Option<u32>,
    /// Samples per cell.
    #[arg(long, default_value_t = 500)]
    pub n: usize,
    /// Seeds.
    #[arg(long, default_value = "0,1,2")]
    pub seeds: String,
    /// Initialisation.
    #[arg(long, value_enum, default_value_t = InitKind::Normal)]
    pub init: InitKind,
    /// Samples per batch.
    #[arg(long, default_value_t = 256)]
    pub batch: usize,
    /// Worker threads (0 = one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Output folder; a folder with a sweep.json is resumed.
    #[arg(long, default_value = "anneal-tune")]
    pub out: PathBuf,
    /// The quality plotted and ranked (lower is better).
    #[arg(long, value_enum, default_value_t = MetricKind::SlicedW2)]
    pub metric: MetricKind,
}

/// A quality measure of `tune`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MetricKind {
    /// Sliced W2 to exact samples.
    SlicedW2,
    /// Total variation between mode weights and true weights (for few, separated modes).
    ModeTv,
}

/// Flags of `anneal bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Runs per figure (the median is reported).
    #[arg(long, default_value_t = 30)]
    pub repeats: usize,
    /// The Python that runs host/bench/numpy_step.py.
    #[arg(long, default_value = "python3")]
    pub python: String,
    /// Skip the NumPy reference.
    #[arg(long)]
    pub no_numpy: bool,
    /// Also time the score and the noise of one batch alone (stderr).
    #[arg(long)]
    pub breakdown: bool,
    /// Only the cases whose name contains this (e.g. toy2d).
    #[arg(long)]
    pub case: Option<String>,
    /// Samples per batch, as in `anneal sample` (batches run in parallel).
    #[arg(long, default_value_t = 256)]
    pub batch: usize,
    /// cpu: the CPU cases beside NumPy; cuda: one step of the GPU cases (B=1024 K=10000 D=3072,
    /// B=256 K=1797 D=64, toy2d B=65536) beside cuBLAS's two SGEMMs, then whole runs over every
    /// σ (digits n=1000 as `sample` runs it, K=50000 D=3072 n=1024 CAS 100 levels, toy2d
    /// n=10⁶), each beside the PyTorch FP32 references `gpu/bench/torch_step.py` and
    /// `torch_run.py` unless --no-torch.
    #[arg(long, value_enum, default_value_t = BenchDevice::Cpu)]
    pub device: BenchDevice,
    /// With --device cuda: skip the PyTorch reference.
    #[arg(long)]
    pub no_torch: bool,
    /// With --device cuda: also time every whole run in each variant of the GEMM path (graphs,
    /// DGEMM logits, sparse products on and off).
    #[arg(long)]
    pub variants: bool,
}

/// Where `anneal bench` times.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchDevice {
    /// The CPU.
    Cpu,
    /// CUDA device 0.
    Cuda,
}

/// The samplers of anneal-core.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SamplerKind {
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

/// Initialisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum InitKind {
    /// N(data mean, σ_1² I).
    Normal,
    /// Uniform on the data's bounding box widened by 3·max(τ, σ_N) (NCSN's [−8, 8]² on toy2d).
    Uniform,
    /// Exact samples of p_σ1 (a data point + τ and σ_1 noise): isolates the sampler's error from
    /// the start's. Uses the data, so it is for studying samplers, not for generation.
    Data,
}

/// Step-size convention of --eps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConventionKind {
    /// x ← x + α s + √(2α) z (NCSNv2).
    Ncsnv2,
    /// x ← x + (α/2) s + √α z (NCSN).
    Ncsn,
}

/// PC order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OrderKind {
    /// Predictor, then correctors (the paper).
    PredictorFirst,
    /// Correctors, then predictor (score_sde's code).
    CorrectorFirst,
}

/// snr corrector norms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SnrNormsKind {
    /// Per sample (reproducible across batches).
    PerSample,
    /// Batch means (score_sde; depends on the batch).
    BatchMean,
}

/// Where sampling runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
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

/// Flags of `anneal sample`.
#[derive(Debug, Args, serde::Serialize)]
pub struct SampleArgs {
    /// toy2d, digits, or a .npy/.csv file of points (each point a mixture component).
    #[arg(long, default_value = "toy2d")]
    pub data: String,
    /// Standard deviation τ of every component (default: 1 for toy2d, 0.05 for digits, 0 for files).
    #[arg(long, allow_negative_numbers = true)]
    pub tau: Option<f64>,
    /// The sampler.
    #[arg(long, value_enum, default_value_t = SamplerKind::Cas)]
    pub sampler: SamplerKind,
    /// σ_1: a number, or `auto` (NCSNv2 Technique 1: the largest distance between two data points).
    #[arg(long, default_value = "auto", allow_negative_numbers = true)]
    pub sigma_max: String,
    /// σ_N.
    #[arg(long, default_value_t = 0.01, allow_negative_numbers = true)]
    pub sigma_min: f64,
    /// Number of levels N (geometric).
    #[arg(long, conflicts_with = "technique2")]
    pub levels: Option<usize>,
    /// N by NCSNv2's Technique 2.
    #[arg(long)]
    pub technique2: bool,
    /// Technique 2's C.
    #[arg(long, default_value_t = 0.5, requires = "technique2", allow_negative_numbers = true)]
    pub c: f64,
    /// CAS: η_i = 1 − γ_i^εc (εc ≥ 1, `inf` allowed).
    #[arg(long, conflicts_with = "eps_b", allow_negative_numbers = true)]
    pub eps_c: Option<f64>,
    /// CAS: η = ε_b/σ_N².
    #[arg(long, allow_negative_numbers = true)]
    pub eps_b: Option<f64>,
    /// Langevin step ε (α_i = ε σ_i²/σ_N²) for als, pc's corrector, langevin, baoab*, obabo;
    /// default: Technique 4 for the schedule and --steps-per-level.
    #[arg(long, allow_negative_numbers = true)]
    pub eps: Option<f64>,
    /// The convention --eps is given in.
    #[arg(long, value_enum, default_value_t = ConventionKind::Ncsnv2)]
    pub step_convention: ConventionKind,
    /// Steps per level T (als, langevin, noise-denoise, baoab*, obabo).
    #[arg(long)]
    pub steps_per_level: Option<u32>,
    /// PC: corrector steps M per level.
    #[arg(long, default_value_t = 1)]
    pub corrector_steps: u32,
    /// PC: the signal-to-noise corrector with this snr ∈ (0, 1) (otherwise the Langevin corrector).
    #[arg(long, allow_negative_numbers = true)]
    pub snr: Option<f64>,
    /// PC: how the snr corrector takes its norms.
    #[arg(long, value_enum, default_value_t = SnrNormsKind::PerSample)]
    pub snr_norms: SnrNormsKind,
    /// PC: order of predictor and correctors.
    #[arg(long, value_enum, default_value_t = OrderKind::PredictorFirst)]
    pub order: OrderKind,
    /// noise-denoise: λ ∈ (0, 2].
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    pub lambda: f64,
    /// baoab, obabo: friction κ > 0.
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    pub friction: f64,
    /// Final denoising step x ← x + σ_N² s(x, σ_N) (als, cas, pc).
    #[arg(long, default_value_t = true, action = ArgAction::Set)]
    pub denoise: bool,
    /// Initialisation.
    #[arg(long, value_enum, default_value_t = InitKind::Normal)]
    pub init: InitKind,
    /// Number of samples.
    #[arg(long, default_value_t = 2000)]
    pub n: usize,
    /// Seed of every random draw.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Samples per batch (one GEMM score call per batch and step).
    #[arg(long, default_value_t = 256)]
    pub batch: usize,
    /// Worker threads (0 = one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Output folder (refused if it exists, unless --force).
    #[arg(long, default_value = "anneal-out")]
    pub out: PathBuf,
    /// Overwrite the files in an existing --out folder.
    #[arg(long)]
    pub force: bool,
    /// Also write trace.csv and trace.png: per level, σ_eff = RMS ‖σ_i² s(x_i, σ_i)‖/√D against σ_i.
    #[arg(long)]
    pub trace: bool,
    /// Where to sample: auto (CUDA when a device answers), cpu, or cuda. On CUDA all n samples
    /// run as one batch (--batch and --threads do not apply); samples equal the CPU's within
    /// float rounding.
    #[arg(long, value_enum, default_value_t = DeviceKind::Auto)]
    pub device: DeviceKind,
}

/// Flags of `anneal schedule`.
#[derive(Debug, Args)]
pub struct ScheduleArgs {
    /// Data dimension D (used by Technique 2).
    #[arg(long, value_name = "D")]
    pub dim: usize,
    /// σ_1, the largest noise level.
    #[arg(long, value_name = "S1", allow_negative_numbers = true)]
    pub sigma_max: f64,
    /// σ_N, the smallest noise level.
    #[arg(long, value_name = "SN", allow_negative_numbers = true)]
    pub sigma_min: f64,
    /// Number of levels N (geometric schedule).
    #[arg(
        long,
        value_name = "N",
        conflicts_with = "technique2",
        required_unless_present = "technique2"
    )]
    pub levels: Option<usize>,
    /// Choose N by NCSNv2's Technique 2.
    #[arg(long)]
    pub technique2: bool,
    /// Technique 2's target probability C.
    #[arg(
        long,
        value_name = "C",
        default_value_t = 0.5,
        requires = "technique2",
        allow_negative_numbers = true
    )]
    pub c: f64,
    /// Langevin steps per level T: prints Technique 4's step size (NCSNv2 convention).
    #[arg(long, value_name = "T")]
    pub steps_per_level: Option<u32>,
    /// CAS with η_i = 1 − γ_i^εc (εc ≥ 1; `inf` allowed).
    #[arg(long, value_name = "E", conflicts_with = "eps_b", allow_negative_numbers = true)]
    pub eps_c: Option<f64>,
    /// CAS with η = ε_b/σ_N² (ε_b > 0; must keep η in [1 − γ_i, 1] at every step).
    #[arg(long, value_name = "E", allow_negative_numbers = true)]
    pub eps_b: Option<f64>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Prints a clap error as one line (help and version as they are) and gives the exit status.
pub fn report_parse_error(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            }
        }
        _ => {
            // clap's message without its usage block and tips, folded onto one line.
            let text = e.render().to_string();
            let message: Vec<&str> = text
                .lines()
                .take_while(|l| !l.trim().is_empty() && !l.starts_with("Usage:"))
                .map(str::trim)
                .collect();
            eprintln!("{}", message.join(" "));
            ExitCode::from(2)
        }
    }
}
