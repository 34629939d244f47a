//! `orion export`: a training checkpoint's weights as a Hugging Face model directory.

use anyhow::Result;
use models::load::{save_model, SaveDtype};
use std::path::PathBuf;
use train::run::model_from_checkpoint;
use train::Checkpoint;

/// Weight precision of the written safetensors.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum DtypeArg {
    F32,
    F16,
}

#[derive(clap::Args)]
#[command(
    after_help = "The directory holds config.json and model.safetensors, loadable by `orion infer --model DIR` and by transformers' from_pretrained. No tokenizer is written."
)]
pub struct Args {
    /// Checkpoint written by `orion train`.
    checkpoint: PathBuf,
    /// Output directory.
    #[arg(long, short)]
    out: PathBuf,
    /// Storage type of the written weights (training keeps f32; f16 halves the file).
    #[arg(long, value_enum, default_value_t = DtypeArg::F32)]
    dtype: DtypeArg,
}

/// Writes the model.
pub fn run(args: Args) -> Result<()> {
    let ck = Checkpoint::load(&args.checkpoint)?;
    let model = model_from_checkpoint(&ck)?;
    let dtype = match args.dtype {
        DtypeArg::F32 => SaveDtype::F32,
        DtypeArg::F16 => SaveDtype::F16,
    };
    save_model(&args.out, &model, dtype)?;
    println!(
        "wrote {} (step {}, {} parameters)",
        args.out.display(),
        ck.header.step,
        model.parameter_count()
    );
    Ok(())
}
