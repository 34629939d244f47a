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

/// A model configuration of either family.
#[derive(Clone, Debug, PartialEq)]
pub enum ModelConfig {
    Gpt2(gpt2::Config),
    Llama(llama::Config),
}

impl ModelConfig {
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
}
