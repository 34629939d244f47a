//! Host-side training pieces for Orion: the built-in story corpus and byte tokenizer, token
//! files, the data loader, AdamW with its schedule, gradient clipping and sanitization, dynamic
//! loss scaling, checkpoints and the metrics log with its loss plot.

mod atomic;
pub mod checkpoint;
pub mod clip;
pub mod corpus;
pub mod error;
pub mod head;
pub mod loader;
pub mod loss_scale;
pub mod metrics;
pub mod native;
pub mod optim;
pub mod params;
pub mod rng;
pub mod run;
pub mod schedule;
pub mod tokens;
pub mod trainer;

pub use checkpoint::{Checkpoint, CheckpointHeader, Tensor};
pub use clip::{clip_grad_norm, grad_norm, sanitize, sanitize_slice};
pub use corpus::{builtin_corpus, ByteTokenizer, STORY_SEPARATOR};
pub use error::{Error, Result};
pub use loader::{Batch, Batcher, DataOrder, LoaderState};
pub use loss_scale::{LossScaleConfig, LossScaleState, LossScaler, StepDecision};
pub use metrics::{loss_svg, plot_loss_svg, read_metrics, MetricsLog, StepMetrics};
pub use optim::{decays, AdamW, AdamWConfig, AdamWState, ParamSpec};
pub use rng::{Rng, RngState};
pub use schedule::LrSchedule;
pub use tokens::{write_tokens, TokenFile, TokenFormat};
