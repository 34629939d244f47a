//! Reading and writing model weights: Hugging Face directories (`config.json` +
//! `model.safetensors`) and llama2.c `.bin` checkpoints.

mod hf;
pub mod hf_config;
pub mod llama2c;
pub mod rope;
mod tensors;

pub use hf_config::HfConfig;
pub use llama2c::load_llama2c;
pub use rope::{repair_rows, with_rope};
pub use tensors::SaveDtype;

use crate::error::{Error, Result};
use crate::{gpt2, llama, ModelConfig};
use std::io::Write;
use std::path::Path;
use tensors::TensorStore;

/// A model of either family with its weights.
#[derive(Clone, Debug, PartialEq)]
pub enum LoadedModel {
    Gpt2(gpt2::Weights),
    Llama(llama::Weights),
}

impl LoadedModel {
    /// A randomly initialized model of `config`, reproducible from `seed`.
    pub fn random(config: &ModelConfig, seed: u64) -> Self {
        match config {
            ModelConfig::Gpt2(c) => LoadedModel::Gpt2(gpt2::Weights::random(c, seed)),
            ModelConfig::Llama(c) => LoadedModel::Llama(llama::Weights::random(c, seed)),
        }
    }

    /// The model's configuration.
    pub fn config(&self) -> ModelConfig {
        match self {
            LoadedModel::Gpt2(w) => ModelConfig::Gpt2(w.config.clone()),
            LoadedModel::Llama(w) => ModelConfig::Llama(w.config.clone()),
        }
    }

    /// Number of stored parameters (a tied head counted once).
    pub fn parameter_count(&self) -> usize {
        match self {
            LoadedModel::Gpt2(w) => {
                let layer = |l: &gpt2::LayerWeights| {
                    [
                        &l.ln_1_weight,
                        &l.ln_1_bias,
                        &l.attn_weight,
                        &l.attn_bias,
                        &l.proj_weight,
                        &l.proj_bias,
                        &l.ln_2_weight,
                        &l.ln_2_bias,
                        &l.fc_weight,
                        &l.fc_bias,
                        &l.fc_proj_weight,
                        &l.fc_proj_bias,
                    ]
                    .iter()
                    .map(|t| t.len())
                    .sum::<usize>()
                };
                w.wte.len()
                    + w.wpe.len()
                    + w.layers.iter().map(layer).sum::<usize>()
                    + w.ln_f_weight.len()
                    + w.ln_f_bias.len()
            }
            LoadedModel::Llama(w) => {
                let layer = |l: &llama::LayerWeights| {
                    [
                        &l.attention_norm,
                        &l.wq,
                        &l.wk,
                        &l.wv,
                        &l.wo,
                        &l.ffn_norm,
                        &l.w1,
                        &l.w2,
                        &l.w3,
                    ]
                    .iter()
                    .map(|t| t.len())
                    .sum::<usize>()
                };
                w.tok_embeddings.len()
                    + w.layers.iter().map(layer).sum::<usize>()
                    + w.norm.len()
                    + w.output.as_ref().map_or(0, Vec::len)
            }
        }
    }
}

/// Loads a Hugging Face model directory (`config.json` with `model.safetensors` or a sharded
/// `model.safetensors.index.json`), or a llama2.c `.bin` checkpoint when `path` is a file.
pub fn load_model(path: &Path) -> Result<LoadedModel> {
    if path.is_file() {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or_default();
        if matches!(ext, "safetensors" | "json") {
            return Err(Error::format(
                path,
                format!(
                    "expected a model directory or a llama2.c .bin checkpoint; pass the \
                     directory {}",
                    path.parent().unwrap_or(Path::new(".")).display()
                ),
            ));
        }
        return Ok(LoadedModel::Llama(load_llama2c(path)?));
    }
    if !path.is_dir() {
        return Err(Error::io(
            path,
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no such model directory or file",
            ),
        ));
    }
    let config_path = path.join("config.json");
    if !config_path.is_file() {
        return Err(Error::MissingFile {
            file: "config.json".into(),
            dir: path.to_path_buf(),
        });
    }
    let text = std::fs::read_to_string(&config_path).map_err(|e| Error::io(&config_path, e))?;
    let config = hf_config::parse(&config_path, &text)?;
    let single = path.join("model.safetensors");
    let index = path.join("model.safetensors.index.json");
    let store = if single.is_file() {
        TensorStore::open(&single)?
    } else if index.is_file() {
        TensorStore::open_index(&index)?
    } else {
        return Err(Error::MissingFile {
            file: "model.safetensors".into(),
            dir: path.to_path_buf(),
        });
    };
    // Every parameter takes at least 2 bytes (f16/bf16): a configuration asking for more than
    // the weights hold is refused before anything is sized by it.
    let declared = config.model.parameters().unwrap_or(u64::MAX);
    let tied_head = match &config.model {
        ModelConfig::Llama(c) if config.tied => (c.vocab_size * c.dim) as u64,
        _ => 0,
    };
    let needed = declared.saturating_sub(tied_head).saturating_mul(2);
    if needed > store.data_bytes() {
        return Err(Error::format(
            &config_path,
            format!(
                "declares {} parameters ({needed} bytes at 2 bytes each) but the weights hold only {} bytes",
                declared - tied_head,
                store.data_bytes()
            ),
        ));
    }
    Ok(match &config.model {
        ModelConfig::Gpt2(c) => LoadedModel::Gpt2(hf::gpt2_from_store(&store, c)?),
        ModelConfig::Llama(c) => LoadedModel::Llama(hf::llama_from_store(&store, c, config.tied)?),
    })
}

/// Writes `model` to `dir` (created if needed) as transformers' `save_pretrained` would:
/// `config.json` and a single `model.safetensors` in `dtype`, each replaced atomically.
/// Llama q/k weights are stored with half-split rotary pairing whatever `model.rope` is.
pub fn save_model(dir: &Path, model: &LoadedModel, dtype: SaveDtype) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let (tensors, tied) = match model {
        LoadedModel::Gpt2(w) => (hf::gpt2_tensors(w, dtype), true),
        LoadedModel::Llama(w) => (hf::llama_tensors(w, dtype), w.output.is_none()),
    };
    tensors::write(&dir.join("model.safetensors"), tensors)?;
    let config = HfConfig {
        model: model.config(),
        tied,
    };
    let json = hf_config::to_json(&config, dtype);
    tensors::write_atomic(&dir.join("config.json"), |out| {
        out.write_all(json.as_bytes())
    })
}
