//! `anneal`: sample from score-based models, tune their samplers, inspect their schedules.
//!
//! `main` only maps the outcome of [`run`] to an exit status: 0 on success, 2 for bad input
//! (one line on stderr naming the flag, the value and the bound), 1 for anything else.

mod cli;
mod commands;
mod config;
mod error;
mod exec;
mod io;
mod report;
mod score;

use std::process::ExitCode;

use clap::Parser;

fn run() -> anyhow::Result<ExitCode> {
    let args = match cli::Cli::try_parse() {
        Ok(args) => args,
        Err(e) => return Ok(cli::report_parse_error(&e)),
    };
    match args.command {
        cli::Command::Schedule(a) => commands::schedule::run(&a)?,
        cli::Command::Sample(a) => commands::sample::run(&a)?,
        cli::Command::Bench(a) => commands::bench::run(&a)?,
        cli::Command::Tune(a) => commands::tune::run(&a)?,
        cli::Command::Score(a) => commands::score::run(&a)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Unix signals as a command-line tool wants them: a closed pipe (`anneal schedule | head`)
/// ends the process quietly, as it does `ls`, instead of a panic at the next print; a write past
/// the file-size limit (`ulimit -f`) is an error that names the file, not a kill.
fn set_signals() {
    #[cfg(unix)]
    // SAFETY: setting two signals' dispositions to constants, before any thread is started.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}

fn main() -> ExitCode {
    set_signals();
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
