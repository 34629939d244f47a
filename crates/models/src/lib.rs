//! GPT-2 and Llama-family models: configs, weights and the device kernels built from them.

pub mod device;
pub mod error;
pub mod generate;
pub mod gpt2;
pub mod host;
pub mod kernels;
pub mod llama;
pub mod load;
pub mod modes;
pub mod preset;
pub mod rng;

pub use error::{Error, Result};
pub use preset::{ModelConfig, PRESETS};
