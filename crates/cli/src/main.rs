//! The `orion` command line: compile kernels, run programs, infer, train and benchmark.

mod commands;
mod npy;

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
    /// Generate text with a model (host CPU, device, or both).
    Infer(commands::infer::Args),
    /// Benchmarks, reported as JSON.
    #[command(subcommand)]
    Bench(commands::bench::Bench),
    /// Train a model (with no arguments: the tiny preset on the built-in corpus).
    Train(Box<commands::train::Args>),
    /// Prepare training data.
    #[command(subcommand)]
    Data(commands::data::Data),
    /// Write a training checkpoint as a Hugging Face model directory.
    Export(commands::export::Args),
    /// Write a randomly initialized model of a preset in Hugging Face layout.
    Init(commands::init::Args),
    /// Run a program directory on a device with .npy inputs; write .npy outputs.
    Eval(commands::eval::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The kernel level is decided once, before any work: an ORION_CPU this CPU cannot honour
    // is refused here rather than deep inside a command.
    if let Err(e) = cpu::Cpu::init() {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    let result = match cli.command {
        Command::Compile(args) => commands::compile::run(args),
        Command::Eval(args) => commands::eval::run(args),
        Command::Init(args) => commands::init::run(args),
        Command::Infer(args) => commands::infer::run(args),
        Command::Bench(bench) => commands::bench::run(bench),
        Command::Train(args) => commands::train::run(*args),
        Command::Data(data) => commands::data::run(data),
        Command::Export(args) => commands::export::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is::<commands::Interrupted>() => ExitCode::from(130),
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, skipping a cause whose text the line already holds
/// (many library errors include their source in their own message).
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !line.contains(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
    }
    line.replace('\n', " ")
}
