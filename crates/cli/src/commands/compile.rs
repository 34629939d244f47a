//! `orion compile`: build a named kernel and write it as a program directory.

use anyhow::{Context, Result};
use compiler::nn::RopeStyle;
use compiler::WeightMode;
use models::kernels::{KernelRequest, KERNELS};
use models::PRESETS;
use std::path::PathBuf;

/// How weights reach the device.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Weights {
    /// Weights compiled into the program as BLOBFILE constants (inference).
    Baked,
    /// Weights as program inputs, compiled once (training, LoRA).
    Dynamic,
}

/// RoPE channel pairing for Llama kernels.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Rope {
    /// Pairs (i, i + d/2): Hugging Face Llama weights.
    Half,
    /// Pairs (2i, 2i + 1): llama2.c weights.
    Interleaved,
}

#[derive(clap::Args)]
#[command(after_help = after_help())]
pub struct Args {
    /// Kernel name, e.g. gpt2.prefill_attn (see the list below).
    kernel: String,
    /// Output directory (gets model.mil and weights/weight.bin).
    #[arg(long, short)]
    out: PathBuf,
    /// Layer index.
    #[arg(long, default_value_t = 0)]
    layer: usize,
    /// Sequence bucket S (activations are [1, C, 1, S]).
    #[arg(long, default_value_t = 64)]
    bucket: usize,
    /// Model preset; defaults to gpt2-124m for gpt2.* kernels and stories110m for llama.*.
    #[arg(long)]
    preset: Option<String>,
    /// Weight mode.
    #[arg(long, value_enum, default_value_t = Weights::Baked)]
    weights: Weights,
    /// Seed of the random weight initialization.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// RoPE pairing (Llama kernels).
    #[arg(long, value_enum, default_value_t = Rope::Half)]
    rope: Rope,
}

fn after_help() -> String {
    let kernels: Vec<String> = KERNELS
        .iter()
        .map(|(n, d)| format!("  {n:<22} {d}"))
        .collect();
    let presets: Vec<&str> = PRESETS.iter().map(|p| p.0).collect();
    format!(
        "Kernels:\n{}\n\nPresets: {}\n\nWeights are randomly initialized from --seed. Set ORION_DUMP_PASSES=1 (or a directory) to see the graph after each compiler pass.",
        kernels.join("\n"),
        presets.join(", ")
    )
}

/// Builds, compiles and writes the kernel.
pub fn run(args: Args) -> Result<()> {
    let request = KernelRequest {
        kernel: args.kernel.clone(),
        preset: args.preset,
        layer: args.layer,
        bucket: args.bucket,
        mode: match args.weights {
            Weights::Baked => WeightMode::Baked,
            Weights::Dynamic => WeightMode::Dynamic,
        },
        seed: args.seed,
        rope: match args.rope {
            Rope::Half => RopeStyle::HalfSplit,
            Rope::Interleaved => RopeStyle::Interleaved,
        },
    };
    let graph = models::kernels::build(&request)?;
    let compiled =
        compiler::compile(&graph).with_context(|| format!("compiling {}", args.kernel))?;
    compiled
        .bundle
        .write_dir(&args.out)
        .with_context(|| format!("writing {}", args.out.display()))?;
    for w in &compiled.warnings.0 {
        eprintln!("{w}");
    }
    let main = compiled
        .program
        .main()
        .context("compiled program has no main")?;
    let describe =
        |name: &str, ty: &mil::ValueType| format!("{name} {}{:?}", ty.dtype(), ty.shape());
    let types: std::collections::HashMap<&str, &mil::ValueType> = main
        .body
        .iter()
        .map(|op| (op.result.as_str(), &op.ty))
        .collect();
    println!(
        "wrote {} ({} ops, {} weight bytes)",
        args.out.display(),
        main.body.len(),
        compiled
            .bundle
            .weights
            .iter()
            .map(|(_, b)| b.len())
            .sum::<usize>()
    );
    for p in &main.inputs {
        println!("  input  {}", describe(&p.name, &p.ty));
    }
    for o in &main.outputs {
        if let Some(ty) = types.get(o.as_str()) {
            println!("  output {}", describe(o, ty));
        }
    }
    Ok(())
}
