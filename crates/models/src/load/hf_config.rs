//! Hugging Face `config.json`: the GPT-2 and Llama fields read into a [`ModelConfig`], and
//! written back in the form transformers' `GPT2Config` / `LlamaConfig` read.

use crate::error::{Error, Result};
use crate::load::tensors::SaveDtype;
use crate::{gpt2, llama, ModelConfig};
use serde_json::{json, Map, Value};
use std::path::Path;

/// A parsed config.json: the model's blueprint and whether its LM head is tied.
#[derive(Clone, Debug, PartialEq)]
pub struct HfConfig {
    pub model: ModelConfig,
    /// `tie_word_embeddings`: the LM head is the token embedding matrix.
    pub tied: bool,
}

/// Field access on a config object with errors that name the file and field.
struct Fields<'a> {
    path: &'a Path,
    obj: &'a Map<String, Value>,
}

impl Fields<'_> {
    fn present(&self, key: &str) -> Option<&Value> {
        self.obj.get(key).filter(|v| !v.is_null())
    }

    fn usize(&self, key: &str) -> Result<usize> {
        let v = self
            .present(key)
            .ok_or_else(|| Error::format(self.path, format!("missing field \"{key}\"")))?;
        v.as_u64().map(|n| n as usize).ok_or_else(|| {
            Error::format(
                self.path,
                format!("field \"{key}\" must be a non-negative integer, found {v}"),
            )
        })
    }

    fn usize_or(&self, key: &str, default: usize) -> Result<usize> {
        match self.present(key) {
            None => Ok(default),
            Some(_) => self.usize(key),
        }
    }

    fn f32_or(&self, key: &str, default: f32) -> Result<f32> {
        match self.present(key) {
            None => Ok(default),
            Some(v) => v.as_f64().map(|x| x as f32).ok_or_else(|| {
                Error::format(
                    self.path,
                    format!("field \"{key}\" must be a number, found {v}"),
                )
            }),
        }
    }

    fn bool_or(&self, key: &str, default: bool) -> Result<bool> {
        match self.present(key) {
            None => Ok(default),
            Some(v) => v.as_bool().ok_or_else(|| {
                Error::format(
                    self.path,
                    format!("field \"{key}\" must be a boolean, found {v}"),
                )
            }),
        }
    }

    /// Fails unless `key` is absent, null or one of `accepted`, naming what is supported.
    fn require(&self, key: &str, accepted: &[Value]) -> Result<()> {
        match self.present(key) {
            Some(v) if !accepted.contains(v) => Err(Error::format(
                self.path,
                match accepted {
                    [] => format!("unsupported {key} {v}; only null is supported"),
                    _ => format!(
                        "unsupported {key} {v}; supported: {}",
                        Value::from(accepted)
                    ),
                },
            )),
            _ => Ok(()),
        }
    }
}

/// Parses a config.json's text (read from `path`, which errors name).
pub fn parse(path: &Path, text: &str) -> Result<HfConfig> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| Error::format(path, format!("invalid JSON: {e}")))?;
    let obj = value
        .as_object()
        .ok_or_else(|| Error::format(path, "expected a JSON object"))?;
    let f = Fields { path, obj };
    let architectures = f.present("architectures").cloned().unwrap_or(Value::Null);
    let first_arch = architectures
        .get(0)
        .and_then(Value::as_str)
        .unwrap_or_default();
    match (f.present("model_type").and_then(Value::as_str), first_arch) {
        (Some("gpt2"), _) | (None, "GPT2LMHeadModel" | "GPT2Model") => parse_gpt2(&f),
        (Some("llama"), _) | (None, "LlamaForCausalLM" | "LlamaModel") => parse_llama(&f),
        (model_type, _) => Err(Error::format(
            path,
            format!(
                "unsupported architecture: model_type {}, architectures {architectures}; \
                 supported: gpt2 (GPT2LMHeadModel), llama (LlamaForCausalLM)",
                model_type.map_or("missing".to_string(), |m| format!("{m:?}"))
            ),
        )),
    }
}

fn parse_gpt2(f: &Fields) -> Result<HfConfig> {
    let cfg = gpt2::Config {
        n_layer: f.usize("n_layer")?,
        n_head: f.usize("n_head")?,
        n_embd: f.usize("n_embd")?,
        vocab_size: f.usize("vocab_size")?,
        n_positions: f.usize("n_positions")?,
        layer_norm_epsilon: f.f32_or("layer_norm_epsilon", 1e-5)?,
    };
    f.require(
        "activation_function",
        &[json!("gelu_new"), json!("gelu_pytorch_tanh")],
    )?;
    f.require("n_inner", &[json!(4 * cfg.n_embd)])?;
    f.require("scale_attn_by_inverse_layer_idx", &[json!(false)])?;
    f.require("scale_attn_weights", &[json!(true)])?;
    f.require("tie_word_embeddings", &[json!(true)])?;
    ModelConfig::Gpt2(cfg.clone())
        .validate()
        .map_err(|e| Error::format(f.path, e))?;
    if cfg.n_head == 0 || !cfg.n_embd.is_multiple_of(cfg.n_head) {
        return Err(Error::format(
            f.path,
            format!(
                "n_embd {} is not a multiple of n_head {}",
                cfg.n_embd, cfg.n_head
            ),
        ));
    }
    Ok(HfConfig {
        model: ModelConfig::Gpt2(cfg),
        tied: true,
    })
}

fn parse_llama(f: &Fields) -> Result<HfConfig> {
    let n_heads = f.usize("num_attention_heads")?;
    let dim = f.usize("hidden_size")?;
    let rope_theta = match f.present("rope_parameters").and_then(Value::as_object) {
        Some(params) => {
            let p = Fields {
                path: f.path,
                obj: params,
            };
            p.require("rope_type", &[json!("default")])?;
            p.f32_or("rope_theta", 10000.0)?
        }
        None => f.f32_or("rope_theta", 10000.0)?,
    };
    let cfg = llama::Config {
        dim,
        hidden_dim: f.usize("intermediate_size")?,
        n_layers: f.usize("num_hidden_layers")?,
        n_heads,
        n_kv_heads: f.usize_or("num_key_value_heads", n_heads)?,
        vocab_size: f.usize("vocab_size")?,
        seq_len: f.usize("max_position_embeddings")?,
        norm_eps: f.f32_or("rms_norm_eps", 1e-6)?,
        rope_theta,
    };
    f.require("hidden_act", &[json!("silu")])?;
    f.require("attention_bias", &[json!(false)])?;
    f.require("mlp_bias", &[json!(false)])?;
    f.require("rope_scaling", &[])?;
    ModelConfig::Llama(cfg.clone())
        .validate()
        .map_err(|e| Error::format(f.path, e))?;
    if n_heads == 0
        || !dim.is_multiple_of(n_heads)
        || cfg.n_kv_heads == 0
        || !n_heads.is_multiple_of(cfg.n_kv_heads)
    {
        return Err(Error::format(
            f.path,
            format!(
                "hidden_size {dim}, num_attention_heads {n_heads} and num_key_value_heads {} \
                 do not divide evenly",
                cfg.n_kv_heads
            ),
        ));
    }
    f.require("head_dim", &[json!(cfg.head_dim())])?;
    Ok(HfConfig {
        tied: f.bool_or("tie_word_embeddings", false)?,
        model: ModelConfig::Llama(cfg),
    })
}

/// The config.json transformers reads for `config`, as pretty-printed JSON.
pub fn to_json(config: &HfConfig, dtype: SaveDtype) -> String {
    let dtype = dtype.torch_name();
    let value = match &config.model {
        ModelConfig::Gpt2(c) => json!({
            "architectures": ["GPT2LMHeadModel"],
            "model_type": "gpt2",
            "activation_function": "gelu_new",
            "n_layer": c.n_layer,
            "n_head": c.n_head,
            "n_embd": c.n_embd,
            "n_inner": null,
            "vocab_size": c.vocab_size,
            "n_positions": c.n_positions,
            "n_ctx": c.n_positions,
            "layer_norm_epsilon": shortest(c.layer_norm_epsilon),
            "tie_word_embeddings": true,
            "torch_dtype": dtype,
        }),
        ModelConfig::Llama(c) => json!({
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            "hidden_act": "silu",
            "hidden_size": c.dim,
            "intermediate_size": c.hidden_dim,
            "num_hidden_layers": c.n_layers,
            "num_attention_heads": c.n_heads,
            "num_key_value_heads": c.n_kv_heads,
            "head_dim": c.head_dim(),
            "vocab_size": c.vocab_size,
            "max_position_embeddings": c.seq_len,
            "rms_norm_eps": shortest(c.norm_eps),
            "rope_theta": shortest(c.rope_theta),
            "attention_bias": false,
            "mlp_bias": false,
            "tie_word_embeddings": config.tied,
            "torch_dtype": dtype,
        }),
    };
    let mut text = serde_json::to_string_pretty(&value).unwrap_or_default();
    text.push('\n');
    text
}

/// `x` as the f64 with the same shortest decimal form, so 1e-5 is written as 1e-5.
fn shortest(x: f32) -> f64 {
    x.to_string().parse().unwrap_or(f64::from(x))
}
