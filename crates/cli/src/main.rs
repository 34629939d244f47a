//! The `orion` command line: compile kernels, run programs, infer, train and benchmark.

mod commands;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Orion trains and runs small transformer language models on the Apple Neural Engine,
/// programming it directly (no CoreML). Without the hardware, a faithful emulator runs
/// the same programs.
#[derive(Parser)]
#[command(name = "orion", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write a named kernel as `model.mil` plus weight blobs into a directory.
    Compile(commands::compile::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Compile(args) => commands::compile::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
