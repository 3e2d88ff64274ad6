//! Command-line flags (clap derive). Values are parsed here and validated into core types by each
//! command; every bad value ends in a [`crate::error::UsageError`] naming the flag.

use std::process::ExitCode;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Serialize;

pub mod flags;
pub use flags::*;

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
    /// Sample from a built-in or file dataset's exact score, or from a score network
    /// (--score MODEL.onnx); write samples, metrics, a picture and the configuration into a folder.
    Sample(Box<SampleArgs>),
    /// Time whole runs as `sample` runs them (every σ, per σ band) and one sampler step at fixed
    /// sizes, beside NumPy and the machine's SGEMM rate.
    Bench(BenchArgs),
    /// Sweep levels × εc / ε_b / ε × seeds (the CAS note's Figure 1); resumable.
    Tune(Box<TuneArgs>),
    /// Evaluate a score (a network, or the exact mixture score) at given points and σ: how an
    /// export is checked against PyTorch.
    Score(ScoreArgs),
}

/// Flags of `anneal score`.
#[derive(Debug, Args)]
pub struct ScoreArgs {
    /// The data (with --tau: the exact mixture score), or the network's reference data.
    #[command(flatten)]
    pub data: DataFlags,
    /// A trained score network.
    #[command(flatten)]
    pub score: ScoreFlags,
    /// The points: a .npy (n × D, or n × shape) or .csv file, or a built-in dataset's name.
    #[arg(long)]
    pub points: String,
    /// σ of the evaluation.
    #[arg(long, allow_negative_numbers = true)]
    pub sigma: f64,
    /// Where to write s(x, σ): a float32 .npy of n × D (refused if it exists, unless --force).
    #[arg(long)]
    pub out: PathBuf,
    /// Overwrite --out.
    #[arg(long)]
    pub force: bool,
    /// Rows per network call.
    #[arg(long, default_value_t = DEFAULT_BATCH)]
    pub batch: usize,
}

/// Flags of `anneal tune`. Lists are `a,b,c` or `logspace:LO:HI:COUNT`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct TuneArgs {
    /// Merge shard folders, or show their progress (instead of running a sweep).
    #[command(subcommand)]
    pub action: Option<TuneAction>,
    /// The ground truth.
    #[command(flatten)]
    pub data: DataFlags,
    /// A trained score network.
    #[command(flatten)]
    pub score: ScoreFlags,
    /// The samplers, e.g. `cas,als` (cas: --eps-c/--eps-b lists; others: --eps list, default
    /// Technique 4).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "cas")]
    pub sampler: Vec<SamplerArg>,
    /// The schedule's ends.
    #[command(flatten)]
    pub sigma: SigmaFlags,
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
    /// The samplers' other parameters, the same in every cell.
    #[command(flatten)]
    pub options: SamplerOptions,
    /// Samples per cell.
    #[arg(long, default_value_t = 500)]
    pub n: usize,
    /// Seeds.
    #[arg(long, default_value = "0,1,2")]
    pub seeds: String,
    /// Start and work split.
    #[command(flatten)]
    pub run: RunFlags,
    /// Output folder; its finished cells (cells.jsonl) are kept and reused, and a new grid adds
    /// to them.
    #[arg(long, default_value = "anneal-tune")]
    pub out: PathBuf,
    /// The quality plotted and ranked (lower is better).
    #[arg(long, value_enum, default_value_t = MetricKind::SlicedW2)]
    pub metric: MetricKind,
    /// Run only shard I of N (1 ≤ I ≤ N) of the grid's cells, e.g. a Slurm array task's
    /// `$SLURM_ARRAY_TASK_ID/N`; each shard in its own --out folder, then `anneal tune merge`.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<String>,
}

/// `anneal tune merge` and `anneal tune status`.
#[derive(Debug, Subcommand)]
pub enum TuneAction {
    /// Build from shard folders (`tune --shard I/N`) the folder one process would have written:
    /// sweep.json, sweep.csv, summary.json and the figures.
    Merge(TuneMergeArgs),
    /// Cells done of each shard folder's share, and overall.
    Status(TuneStatusArgs),
}

/// Flags of `anneal tune merge`.
#[derive(Debug, Args)]
pub struct TuneMergeArgs {
    /// The merged folder (new, or without a sweep in it).
    #[arg(long)]
    pub out: PathBuf,
    /// Write the merged folder even when cells are missing (they are listed, never invented).
    #[arg(long)]
    pub partial: bool,
    /// The shard folders, in any order.
    #[arg(required = true, value_name = "SHARD_DIR")]
    pub dirs: Vec<PathBuf>,
}

/// Flags of `anneal tune status`.
#[derive(Debug, Args)]
pub struct TuneStatusArgs {
    /// Tune folders (shards of one sweep, or any tune folder).
    #[arg(required = true, value_name = "DIR")]
    pub dirs: Vec<PathBuf>,
}

/// A quality measure of `tune`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MetricKind {
    /// Sliced W2 to exact samples.
    SlicedW2,
    /// Total variation between mode weights and true weights (for few, separated modes).
    ModeTv,
    /// Fréchet distance to the data: in the shipped digit classifier's features for digits,
    /// in pixel (coordinate) space otherwise — the metric of a learned score.
    Fd,
}

/// Flags of `anneal bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Runs per figure of the one-step table (the median is reported).
    #[arg(long, default_value_t = 30)]
    pub repeats: usize,
    /// Whole runs per case and thread count, after a warm-up (median, min and max reported).
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Thread counts of the whole runs (default: 1 and one per core).
    #[arg(long, value_delimiter = ',')]
    pub thread_counts: Vec<usize>,
    /// Only the whole runs (not the one-step table).
    #[arg(long)]
    pub whole_only: bool,
    /// The Python that runs host/bench/numpy_step.py.
    #[arg(long, default_value = "python3")]
    pub python: String,
    /// Skip the NumPy reference (with --score: the PyTorch and onnxruntime reference).
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
    /// Time a score network's whole runs (as `sample --score MODEL` runs them) at 1 and 2
    /// threads beside the same model in a PyTorch loop (host/bench/torch_network.py).
    #[arg(long)]
    pub score: Option<String>,
    /// With --score: samples per whole run.
    #[arg(long, default_value_t = 256)]
    pub n: usize,
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

/// Flags of `anneal sample`.
#[derive(Debug, Args, Serialize)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SampleArgs {
    /// Merge shard folders (instead of sampling).
    #[command(subcommand)]
    #[serde(skip)]
    pub action: Option<SampleAction>,
    /// The ground truth.
    #[command(flatten)]
    #[serde(flatten)]
    pub data: DataFlags,
    /// A trained score network.
    #[command(flatten)]
    #[serde(flatten)]
    pub score: ScoreFlags,
    /// The sampler.
    #[arg(long, value_enum, default_value_t = SamplerArg::Cas)]
    pub sampler: SamplerArg,
    /// The schedule's ends.
    #[command(flatten)]
    #[serde(flatten)]
    pub sigma: SigmaFlags,
    /// The number of levels.
    #[command(flatten)]
    #[serde(flatten)]
    pub levels: LevelFlags,
    /// The step size.
    #[command(flatten)]
    #[serde(flatten)]
    pub step: StepFlags,
    /// The sampler's other parameters.
    #[command(flatten)]
    #[serde(flatten)]
    pub options: SamplerOptions,
    /// Start and work split.
    #[command(flatten)]
    #[serde(flatten)]
    pub run: RunFlags,
    /// Number of samples.
    #[arg(long, default_value_t = 2000)]
    pub n: usize,
    /// Seed of every random draw.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output folder (refused if it exists, unless --force).
    #[arg(long, default_value = "anneal-out")]
    pub out: PathBuf,
    /// Replace an existing --out folder of anneal's outputs with this run's (whole, at the end).
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
    /// Draw only shard I of N (1 ≤ I ≤ N) of the n samples — whole batches of the run, each
    /// sample's noise keyed by its index — into its own --out; then `anneal sample merge`. CPU
    /// only.
    #[arg(long, value_name = "I/N")]
    #[serde(skip)]
    pub shard: Option<String>,
}

/// `anneal sample merge`.
#[derive(Debug, Subcommand)]
pub enum SampleAction {
    /// Build from shard folders (`sample --shard I/N`) the output set one process would have
    /// written: samples.npy byte for byte, the metrics over the whole set, the pictures.
    Merge(SampleMergeArgs),
}

/// Flags of `anneal sample merge`.
#[derive(Debug, Args)]
pub struct SampleMergeArgs {
    /// The merged output folder (refused if it exists, unless --force).
    #[arg(long)]
    pub out: PathBuf,
    /// Replace an existing --out folder of anneal's outputs.
    #[arg(long)]
    pub force: bool,
    /// The shard folders, in any order.
    #[arg(required = true, value_name = "SHARD_DIR")]
    pub dirs: Vec<PathBuf>,
}

/// Flags of `anneal schedule`.
#[derive(Debug, Args)]
pub struct ScheduleArgs {
    /// Data dimension D (used by Technique 2).
    #[arg(long, value_name = "D")]
    pub dim: usize,
    /// The schedule's ends (σ_1 must be a number here: Technique 1 needs data).
    #[command(flatten)]
    pub sigma: SigmaFlags,
    /// The number of levels.
    #[command(flatten)]
    pub levels: LevelFlags,
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
