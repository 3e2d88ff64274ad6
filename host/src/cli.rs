//! Command-line flags (clap derive). Values are parsed here and validated into core types by each
//! command; every bad value ends in a [`crate::UsageError`] naming the flag.

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

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
