//! Dynamic loss scaling for the fp16 backward pass, with the rule of PyTorch's `GradScaler`:
//! the loss is multiplied by `scale` before backward; after backward the gradients are divided
//! by it; a step whose gradients overflowed (any NaN/Inf) is skipped and the scale is
//! multiplied by `backoff_factor`; after `growth_interval` clean steps in a row the scale is
//! multiplied by `growth_factor`. The scale stays within `[min_scale, max_scale]`.

use serde::{Deserialize, Serialize};

/// Loss-scaling parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LossScaleConfig {
    /// The scale of the first step.
    pub init_scale: f32,
    /// Clean steps in a row before the scale grows.
    pub growth_interval: u32,
    /// Multiplier on growth.
    pub growth_factor: f32,
    /// Multiplier on overflow.
    pub backoff_factor: f32,
    /// The smallest scale.
    pub min_scale: f32,
    /// The largest scale.
    pub max_scale: f32,
}

impl Default for LossScaleConfig {
    /// 2^16 to start, ×2 after 2000 clean steps, ÷2 on overflow, within [1, 2^24].
    fn default() -> Self {
        LossScaleConfig {
            init_scale: 65536.0,
            growth_interval: 2000,
            growth_factor: 2.0,
            backoff_factor: 0.5,
            min_scale: 1.0,
            max_scale: 16_777_216.0,
        }
    }
}

/// Everything a checkpoint needs to continue the scaler exactly.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LossScaleState {
    /// The parameters.
    pub config: LossScaleConfig,
    /// The current scale.
    pub scale: f32,
    /// Clean steps since the last growth or overflow.
    pub clean_steps: u32,
    /// Steps skipped for overflow so far.
    pub skipped_steps: u64,
}

/// What to do with the optimizer step after [`LossScaler::update`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepDecision {
    /// The gradients are finite: take the step.
    Apply,
    /// The gradients overflowed: skip the step (the scale has been lowered).
    Skip,
}

/// A dynamic loss scaler.
#[derive(Debug, Clone, PartialEq)]
pub struct LossScaler {
    state: LossScaleState,
}

impl LossScaler {
    /// A scaler at its initial scale.
    pub fn new(config: LossScaleConfig) -> Self {
        LossScaler {
            state: LossScaleState {
                config,
                scale: config.init_scale.clamp(config.min_scale, config.max_scale),
                clean_steps: 0,
                skipped_steps: 0,
            },
        }
    }

    /// A scaler continuing from a saved state.
    pub fn from_state(state: LossScaleState) -> Self {
        LossScaler { state }
    }

    /// The state to save.
    pub fn state(&self) -> LossScaleState {
        self.state
    }

    /// The factor to multiply the loss by.
    pub fn scale(&self) -> f32 {
        self.state.scale
    }

    /// Divides every gradient by the scale and returns how many values are NaN or ±Inf
    /// (any means overflow; they are left in place).
    pub fn unscale<G: AsMut<[f32]>>(&self, grads: &mut [G]) -> usize {
        let inv = 1.0 / self.state.scale;
        let mut bad = 0;
        for g in grads.iter_mut() {
            for x in g.as_mut() {
                *x *= inv;
                bad += usize::from(!x.is_finite());
            }
        }
        bad
    }

    /// Records whether this step's gradients overflowed, adjusts the scale, and says whether
    /// to apply or skip the optimizer step.
    pub fn update(&mut self, overflow: bool) -> StepDecision {
        let s = &mut self.state;
        let c = s.config;
        if overflow {
            s.scale = (s.scale * c.backoff_factor).max(c.min_scale);
            s.clean_steps = 0;
            s.skipped_steps += 1;
            return StepDecision::Skip;
        }
        s.clean_steps += 1;
        if s.clean_steps >= c.growth_interval {
            s.scale = (s.scale * c.growth_factor).min(c.max_scale);
            s.clean_steps = 0;
        }
        StepDecision::Apply
    }
}
