//! The learning-rate schedule: linear warm-up, then cosine decay to a floor (llm.c's
//! convention).
//!
//! For 0-based step `s`, warm-up `W`, total `S`:
//! ```text
//! s < W:       lr = max_lr · (s + 1) / W
//! W ≤ s < S:   r = (s − W) / (S − W);  lr = min_lr + ½·(1 + cos(π·r))·(max_lr − min_lr)
//! s ≥ S:       lr = min_lr
//! ```
//! computed in f64. With `W = 0` the first step already uses `max_lr`.

use serde::{Deserialize, Serialize};

/// Linear warm-up followed by cosine decay.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LrSchedule {
    /// The peak learning rate, reached at the end of warm-up.
    pub max_lr: f64,
    /// The floor the cosine decays to.
    pub min_lr: f64,
    /// Steps of linear warm-up.
    pub warmup_steps: u64,
    /// Total steps; the decay ends here.
    pub total_steps: u64,
}

impl LrSchedule {
    /// The learning rate of 0-based step `step`.
    pub fn lr(&self, step: u64) -> f64 {
        if step < self.warmup_steps {
            return self.max_lr * (step + 1) as f64 / self.warmup_steps as f64;
        }
        if step >= self.total_steps {
            return self.min_lr;
        }
        let ratio =
            (step - self.warmup_steps) as f64 / (self.total_steps - self.warmup_steps) as f64;
        let coeff = 0.5 * (1.0 + (std::f64::consts::PI * ratio).cos());
        self.min_lr + coeff * (self.max_lr - self.min_lr)
    }
}
