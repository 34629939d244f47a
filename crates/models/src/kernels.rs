//! The kernel registry: builds a named kernel (`gpt2.prefill_attn`, …) for a preset, layer and
//! sequence bucket, with randomly initialized weights when no model is given.

use crate::error::{Error, Result};
use crate::preset::ModelConfig;
use crate::{gpt2, llama};
use compiler::graph::Graph;
use compiler::nn::RopeStyle;
use compiler::WeightMode;

/// Every kernel name with a one-line description.
pub const KERNELS: &[(&str, &str)] = &[
    (
        "gpt2.prefill_attn",
        "GPT-2 layer: LayerNorm, causal attention, projection, residual",
    ),
    (
        "gpt2.prefill_ffn",
        "GPT-2 layer: LayerNorm, FFN with GELU (tanh), residual",
    ),
    (
        "llama.prefill_attn",
        "Llama layer: RMSNorm, RoPE attention (GQA), projection, residual",
    ),
    (
        "llama.prefill_ffn",
        "Llama layer: RMSNorm, SwiGLU FFN, residual",
    ),
];

/// A weight input of a training program: its name and the elements of a layer tensor (by
/// index in the layer's field order) that it carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrainInput {
    pub name: &'static str,
    pub tensor: usize,
    pub range: std::ops::Range<usize>,
}

/// What to build.
#[derive(Clone, Debug)]
pub struct KernelRequest {
    /// A name from [`KERNELS`].
    pub kernel: String,
    /// A name from [`crate::PRESETS`]; `None` picks the family's full-size default.
    pub preset: Option<String>,
    pub layer: usize,
    /// Sequence bucket S.
    pub bucket: usize,
    pub mode: WeightMode,
    /// Seed of the random initialization.
    pub seed: u64,
    /// RoPE pairing for Llama kernels.
    pub rope: RopeStyle,
}

fn names(table: &[(&str, &str)]) -> String {
    table.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
}

/// Builds the graph of a kernel.
pub fn build(req: &KernelRequest) -> Result<Graph> {
    let (family, kind) = req
        .kernel
        .split_once('.')
        .filter(|_| KERNELS.iter().any(|(n, _)| *n == req.kernel))
        .ok_or_else(|| {
            Error::Invalid(format!(
                "unknown kernel {:?}; known: {}",
                req.kernel,
                names(KERNELS)
            ))
        })?;
    let preset_name = req.preset.clone().unwrap_or_else(|| {
        if family == "gpt2" {
            "gpt2-124m"
        } else {
            "stories110m"
        }
        .to_string()
    });
    let model = ModelConfig::from_preset(&preset_name)?;
    let check = |layers: usize, context: usize| -> Result<()> {
        if req.layer >= layers {
            return Err(Error::Invalid(format!(
                "layer {} is out of range: {preset_name} has {layers} layers",
                req.layer
            )));
        }
        if req.bucket == 0 || req.bucket > context {
            return Err(Error::Invalid(format!(
                "bucket {} must be in 1..={context} for {preset_name}",
                req.bucket
            )));
        }
        Ok(())
    };
    let graph = match (family, model) {
        ("gpt2", ModelConfig::Gpt2(cfg)) => {
            check(cfg.n_layer, cfg.n_positions)?;
            let w = gpt2::LayerWeights::random(&cfg, req.layer, req.seed);
            match kind {
                "prefill_attn" => gpt2::kernels::prefill_attn(&cfg, &w, req.bucket, req.mode)?,
                _ => gpt2::kernels::prefill_ffn(&cfg, &w, req.bucket, req.mode)?,
            }
        }
        ("llama", ModelConfig::Llama(cfg)) => {
            check(cfg.n_layers, cfg.seq_len)?;
            let w = llama::LayerWeights::random(&cfg, req.layer, req.seed);
            match kind {
                "prefill_attn" => {
                    llama::kernels::prefill_attn(&cfg, &w, req.bucket, req.rope, req.mode)?
                }
                _ => llama::kernels::prefill_ffn(&cfg, &w, req.bucket, req.mode)?,
            }
        }
        _ => {
            return Err(Error::Invalid(format!(
                "preset {preset_name} is not a {family} model; {family} presets: {}",
                crate::PRESETS
                    .iter()
                    .filter(|p| p.1 == family)
                    .map(|p| p.0)
                    .collect::<Vec<_>>()
                    .join(", ")
            )))
        }
    };
    Ok(graph)
}
