//! `anneal`: sample from score-based models, tune their samplers, inspect their schedules.
//!
//! `main` only maps the outcome of [`run`] to an exit status: 0 on success, 2 for bad input
//! (one line on stderr naming the flag, the value and the bound), 1 for anything else.

mod batch_score;
mod bench;
mod cli;
mod data;
mod error;
mod gemm;
mod metrics;
mod npy;
mod par_noise;
mod plot;
mod progress;
mod sample;
mod schedule;
mod simd;
mod tune;

use std::process::ExitCode;

use clap::Parser;

fn run() -> anyhow::Result<ExitCode> {
    let args = match cli::Cli::try_parse() {
        Ok(args) => args,
        Err(e) => return Ok(cli::report_parse_error(&e)),
    };
    match args.command {
        cli::Command::Schedule(a) => schedule::run(&a)?,
        cli::Command::Sample(a) => sample::run(&a)?,
        cli::Command::Bench(a) => bench::run(&a)?,
        cli::Command::Tune(a) => tune::run(&a)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            let status = error::exit_status(&e);
            // A usage error is one line of its own; a run failure with its chain of causes.
            if status == 2 {
                eprintln!("error: {e}")
            } else {
                eprintln!("error: {e:#}")
            }
            ExitCode::from(status)
        }
    }
}
