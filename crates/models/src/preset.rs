//! Named model presets and the family-tagged configuration they produce.

use crate::error::{Error, Result};
use crate::{gpt2, llama};

/// Every preset name with its family and a one-line description.
pub const PRESETS: &[(&str, &str, &str)] = &[
    (
        "gpt2-124m",
        "gpt2",
        "GPT-2 small: 12 layers, width 768, 12 heads, 50,257 tokens",
    ),
    (
        "gpt2-tiny",
        "gpt2",
        "a tiny GPT-2 for tests: 2 layers, width 64",
    ),
    (
        "stories15m",
        "llama",
        "llama2.c Stories15M: 6 layers, width 288, 32,000 tokens",
    ),
    (
        "stories42m",
        "llama",
        "llama2.c Stories42M: 8 layers, width 512",
    ),
    (
        "stories110m",
        "llama",
        "llama2.c Stories110M: 12 layers, width 768",
    ),
    (
        "llama-tiny",
        "llama",
        "a tiny Llama for tests: 2 layers, width 64, grouped-query attention",
    ),
    (
        "tiny",
        "llama",
        "byte-level Llama trained from scratch by `orion train`: 4 layers, width 128, 264 tokens",
    ),
];

/// The longest context a model may declare: far past every model Orion runs, small enough
/// that per-position tables (RoPE, position embeddings, KV caches) stay allocatable.
pub const MAX_POSITIONS: usize = 1 << 20;

/// The most parameters a model may declare (about 69 billion).
pub const MAX_PARAMETERS: u64 = 1 << 36;

/// A model configuration of either family.
#[derive(Clone, Debug, PartialEq)]
pub enum ModelConfig {
    Gpt2(gpt2::Config),
    Llama(llama::Config),
}

impl ModelConfig {
    /// The number of parameters the configuration implies (`None` past `u64`).
    pub fn parameters(&self) -> Option<u64> {
        let n = |x: usize| x as u64;
        match self {
            ModelConfig::Gpt2(c) => {
                let (e, v, p) = (n(c.n_embd), n(c.vocab_size), n(c.n_positions));
                // qkv + proj + fc + fc_proj weights and biases, two layer norms.
                let layer = e
                    .checked_mul(e)?
                    .checked_mul(12)?
                    .checked_add(e.checked_mul(13)?)?;
                let layers = layer.checked_mul(n(c.n_layer))?;
                let embed = v.checked_add(p)?.checked_mul(e)?;
                layers.checked_add(embed)?.checked_add(2 * e)
            }
            ModelConfig::Llama(c) => {
                let (d, h, v) = (n(c.dim), n(c.hidden_dim), n(c.vocab_size));
                let kv = n(c.n_kv_heads).checked_mul(d / n(c.n_heads.max(1)))?;
                let attention = d
                    .checked_mul(d)?
                    .checked_mul(2)?
                    .checked_add(d.checked_mul(kv)?.checked_mul(2)?)?;
                let ffn = d.checked_mul(h)?.checked_mul(3)?;
                let layer = attention.checked_add(ffn)?.checked_add(2 * d)?;
                let layers = layer.checked_mul(n(c.n_layers))?;
                // Embeddings and an untied head (the larger case).
                layers
                    .checked_add(v.checked_mul(d)?.checked_mul(2)?)?
                    .checked_add(d)
            }
        }
    }

    /// Checks that the configuration describes a model Orion can run, before anything is
    /// sized by it: positive sizes, heads that divide the width, an even head width (RoPE),
    /// norm epsilons and RoPE bases positive and finite, a context of at most
    /// [`MAX_POSITIONS`] and at most [`MAX_PARAMETERS`] parameters.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let (layers, width, heads, vocab, positions, eps) = match self {
            ModelConfig::Gpt2(c) => (
                c.n_layer,
                c.n_embd,
                c.n_head,
                c.vocab_size,
                c.n_positions,
                c.layer_norm_epsilon,
            ),
            ModelConfig::Llama(c) => (
                c.n_layers,
                c.dim,
                c.n_heads,
                c.vocab_size,
                c.seq_len,
                c.norm_eps,
            ),
        };
        if [layers, width, heads, vocab, positions].contains(&0) {
            return Err(format!(
                "layers {layers}, width {width}, heads {heads}, vocabulary {vocab} and context {positions} must all be positive"
            ));
        }
        if !width.is_multiple_of(heads) {
            return Err(format!(
                "width {width} is not a multiple of the {heads} heads"
            ));
        }
        if !(eps > 0.0 && eps.is_finite()) {
            return Err(format!(
                "the norm epsilon must be positive and finite, got {eps}"
            ));
        }
        if let ModelConfig::Llama(c) = self {
            if c.n_kv_heads == 0 || !heads.is_multiple_of(c.n_kv_heads) {
                return Err(format!(
                    "{} key/value heads do not divide the {heads} heads",
                    c.n_kv_heads
                ));
            }
            if !(width / heads).is_multiple_of(2) {
                return Err(format!(
                    "head width {} is odd; RoPE rotates pairs",
                    width / heads
                ));
            }
            if c.hidden_dim == 0 {
                return Err("the FFN width must be positive".into());
            }
            if !(c.rope_theta > 0.0 && c.rope_theta.is_finite()) {
                return Err(format!(
                    "the RoPE base must be positive and finite, got {}",
                    c.rope_theta
                ));
            }
        }
        if positions > MAX_POSITIONS {
            return Err(format!(
                "a context of {positions} positions is past the limit of {MAX_POSITIONS}"
            ));
        }
        match self.parameters() {
            Some(p) if p <= MAX_PARAMETERS => Ok(()),
            p => Err(format!(
                "the configuration implies {} parameters, past the limit of {MAX_PARAMETERS}",
                p.map_or("more than 2^64".to_string(), |p| p.to_string())
            )),
        }
    }

    /// The configuration of a named preset.
    pub fn from_preset(name: &str) -> Result<ModelConfig> {
        // Every name here is listed in PRESETS (a test checks both ways).
        Ok(match name {
            "gpt2-124m" => ModelConfig::Gpt2(gpt2::Config::gpt2_124m()),
            "gpt2-tiny" => ModelConfig::Gpt2(gpt2::Config::tiny()),
            "stories15m" => ModelConfig::Llama(llama::Config::stories15m()),
            "stories42m" => ModelConfig::Llama(llama::Config::stories42m()),
            "stories110m" => ModelConfig::Llama(llama::Config::stories110m()),
            "llama-tiny" => ModelConfig::Llama(llama::Config::tiny()),
            "tiny" => ModelConfig::Llama(llama::Config::byte_tiny()),
            _ => {
                let known: Vec<&str> = PRESETS.iter().map(|p| p.0).collect();
                return Err(Error::Invalid(format!(
                    "unknown preset {name:?}; known: {}",
                    known.join(", ")
                )));
            }
        })
    }

    /// "gpt2" or "llama".
    pub fn family(&self) -> &'static str {
        match self {
            ModelConfig::Gpt2(_) => "gpt2",
            ModelConfig::Llama(_) => "llama",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_preset_loads_and_unknown_names_list_them_all_including_tiny() {
        for (name, family, _) in PRESETS {
            let config = ModelConfig::from_preset(name).expect(name);
            assert_eq!(config.family(), *family, "{name}");
        }
        let err = ModelConfig::from_preset("nope").unwrap_err().to_string();
        for (name, ..) in PRESETS {
            assert!(err.contains(name), "{err} lacks {name}");
        }
        assert!(PRESETS.iter().any(|p| p.0 == "tiny"));
    }

    #[test]
    fn presets_validate_and_implied_parameters_match_the_weights() {
        for (name, ..) in PRESETS {
            let config = ModelConfig::from_preset(name).unwrap();
            config.validate().expect(name);
            let weights = crate::load::LoadedModel::random(&config, 0);
            let tied_saving = match &weights {
                crate::load::LoadedModel::Llama(w) if w.output.is_none() => {
                    (w.config.vocab_size * w.config.dim) as u64
                }
                _ => 0,
            };
            assert_eq!(
                config.parameters().unwrap(),
                weights.parameter_count() as u64 + tied_saving,
                "{name}"
            );
        }
    }

    #[test]
    fn configurations_that_would_allocate_absurdly_or_compute_garbage_are_refused() {
        let base = || match ModelConfig::from_preset("llama-tiny").unwrap() {
            ModelConfig::Llama(c) => c,
            _ => unreachable!(),
        };
        let bad: Vec<(crate::llama::Config, &str)> = vec![
            (
                crate::llama::Config {
                    n_layers: 1_000_000_000,
                    ..base()
                },
                "past the limit",
            ),
            (
                crate::llama::Config {
                    seq_len: 1_000_000_000_000,
                    ..base()
                },
                "past the limit",
            ),
            (
                crate::llama::Config {
                    dim: 1_000_000_000,
                    n_heads: 4,
                    ..base()
                },
                "past the limit",
            ),
            (
                crate::llama::Config {
                    norm_eps: -1e-5,
                    ..base()
                },
                "epsilon",
            ),
            (
                crate::llama::Config {
                    rope_theta: -1.0,
                    ..base()
                },
                "RoPE base",
            ),
            (
                crate::llama::Config {
                    n_layers: 0,
                    ..base()
                },
                "positive",
            ),
        ];
        for (config, want) in bad {
            let err = ModelConfig::Llama(config).validate().unwrap_err();
            assert!(err.contains(want), "{err}");
        }
    }
}
