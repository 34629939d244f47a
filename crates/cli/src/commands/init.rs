//! `orion init`: write a randomly initialized model as a Hugging Face model directory.

use anyhow::{Context, Result};
use models::load::{save_model, LoadedModel, SaveDtype};
use models::{ModelConfig, PRESETS};
use std::path::PathBuf;
use std::time::Instant;

/// Element type of the written weights.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Dtype {
    /// 32-bit floats.
    F32,
    /// 16-bit floats (half the size; what the device computes in).
    F16,
}

#[derive(clap::Args)]
#[command(after_help = after_help())]
pub struct Args {
    /// Model preset (see the list below).
    #[arg(long)]
    preset: String,
    /// Output directory (gets config.json and model.safetensors).
    #[arg(long, short)]
    out: PathBuf,
    /// Seed of the random weight initialization.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Element type of the written weights.
    #[arg(long, value_enum, default_value_t = Dtype::F32)]
    dtype: Dtype,
}

fn after_help() -> String {
    let presets: Vec<String> = PRESETS
        .iter()
        .map(|(name, _, about)| format!("  {name:<12} {about}"))
        .collect();
    format!(
        "Presets:\n{}\n\nWrites config.json and model.safetensors in the layout transformers' \
         save_pretrained uses, so the model loads in PyTorch too. No tokenizer files are \
         written: copy them into the directory (or point inference at a tokenizer) yourself.",
        presets.join("\n")
    )
}

/// Initializes the preset's weights from the seed and writes them to the output directory.
pub fn run(args: Args) -> Result<()> {
    let start = Instant::now();
    let config = ModelConfig::from_preset(&args.preset)?;
    let model = LoadedModel::random(&config, args.seed);
    let dtype = match args.dtype {
        Dtype::F32 => SaveDtype::F32,
        Dtype::F16 => SaveDtype::F16,
    };
    save_model(&args.out, &model, dtype)
        .with_context(|| format!("writing {}", args.out.display()))?;
    let weights = args.out.join("model.safetensors");
    let bytes = std::fs::metadata(&weights)
        .with_context(|| format!("reading {}", weights.display()))?
        .len();
    println!(
        "wrote {} ({} {}, {} parameters, {} bytes of {} weights, seed {}, {:.1} s)",
        args.out.display(),
        config.family(),
        args.preset,
        model.parameter_count(),
        bytes,
        dtype.torch_name(),
        args.seed,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
