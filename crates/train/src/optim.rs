//! AdamW over named f32 parameter tensors, step for step the algorithm of PyTorch's
//! `torch.optim.AdamW` (single-tensor path), with per-parameter weight decay.
//!
//! For each parameter `p` with gradient `g`, at step `t` (1-based), learning rate `lr`:
//! ```text
//! p ← p · (1 − lr·wd)                       (decoupled weight decay, decaying tensors only)
//! m ← m + (1 − β1)·(g − m)
//! v ← β2·v + (1 − β2)·g·g
//! p ← p − lr/(1 − β1ᵗ) · m / (√v / √(1 − β2ᵗ) + ε)
//! ```
//! Scalars (`1 − lr·wd`, the bias corrections, the step size) are computed in f64 and rounded
//! to f32 once, as PyTorch does; tensor arithmetic is f32. The update is elementwise, so it
//! runs on all cores in chunks with results independent of the thread count.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Whether a parameter takes weight decay: not 1-D tensors, and not tensors whose name
/// contains `norm`, `bias` or `ln_` (layer norms and biases); everything else (matrices,
/// embeddings) decays.
pub fn decays(name: &str, shape: &[usize]) -> bool {
    let name = name.to_ascii_lowercase();
    let exempt = ["norm", "bias", "ln_"].iter().any(|k| name.contains(k));
    shape.len() >= 2 && !exempt
}

/// A parameter the optimizer updates: its name, shape and whether it decays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParamSpec {
    /// The tensor name, as in the checkpoint.
    pub name: String,
    /// The tensor shape.
    pub shape: Vec<usize>,
    /// Whether weight decay applies.
    pub decay: bool,
}

impl ParamSpec {
    /// A parameter whose decay follows [`decays`].
    pub fn new(name: impl Into<String>, shape: Vec<usize>) -> Self {
        let name = name.into();
        let decay = decays(&name, &shape);
        ParamSpec { name, shape, decay }
    }

    /// The number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// AdamW hyperparameters (the learning rate comes per step from the schedule).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AdamWConfig {
    /// Decay rate of the first moment.
    pub beta1: f64,
    /// Decay rate of the second moment.
    pub beta2: f64,
    /// Added to the denominator for stability.
    pub eps: f64,
    /// Decoupled weight decay coefficient.
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    /// PyTorch's defaults: β = (0.9, 0.999), ε = 1e-8, weight decay 0.01.
    fn default() -> Self {
        AdamWConfig {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
        }
    }
}

/// The optimizer's state apart from the moment tensors: hyperparameters, step, parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdamWState {
    /// The hyperparameters.
    pub config: AdamWConfig,
    /// Steps taken so far.
    pub step: u64,
    /// The parameters, in update order.
    pub params: Vec<ParamSpec>,
}

/// The AdamW optimizer.
#[derive(Debug, Clone)]
pub struct AdamW {
    config: AdamWConfig,
    step: u64,
    params: Vec<ParamSpec>,
    /// First moments, one per parameter. (numel)
    m: Vec<Vec<f32>>,
    /// Second moments, one per parameter. (numel)
    v: Vec<Vec<f32>>,
}

impl AdamW {
    /// An optimizer at step 0 with zero moments.
    pub fn new(config: AdamWConfig, params: Vec<ParamSpec>) -> Self {
        let m: Vec<Vec<f32>> = params.iter().map(|p| vec![0.0; p.numel()]).collect();
        let v = m.clone();
        AdamW {
            config,
            step: 0,
            params,
            m,
            v,
        }
    }

    /// An optimizer continuing from saved state and moments (`m`, `v` in parameter order).
    pub fn from_state(state: AdamWState, m: Vec<Vec<f32>>, v: Vec<Vec<f32>>) -> Result<Self> {
        let n = state.params.len();
        if m.len() != n || v.len() != n {
            return Err(Error::Optimizer(format!(
                "{n} parameters but {} first and {} second moments",
                m.len(),
                v.len()
            )));
        }
        for ((p, m), v) in state.params.iter().zip(&m).zip(&v) {
            if m.len() != p.numel() || v.len() != p.numel() {
                return Err(Error::Optimizer(format!(
                    "moments of {} have {} and {} elements, expected {}",
                    p.name,
                    m.len(),
                    v.len(),
                    p.numel()
                )));
            }
        }
        Ok(AdamW {
            config: state.config,
            step: state.step,
            params: state.params,
            m,
            v,
        })
    }

    /// The state to save beside [`Self::moments`].
    pub fn state(&self) -> AdamWState {
        AdamWState {
            config: self.config,
            step: self.step,
            params: self.params.clone(),
        }
    }

    /// Each parameter with its first and second moments.
    pub fn moments(&self) -> impl Iterator<Item = (&ParamSpec, &[f32], &[f32])> {
        self.params
            .iter()
            .zip(&self.m)
            .zip(&self.v)
            .map(|((p, m), v)| (p, m.as_slice(), v.as_slice()))
    }

    /// The parameters, in update order.
    pub fn params(&self) -> &[ParamSpec] {
        &self.params
    }

    /// Steps taken so far.
    pub fn step_count(&self) -> u64 {
        self.step
    }

    /// Applies one update to `params` (in the order given at construction) from `grads`.
    pub fn step<P: AsMut<[f32]>, G: AsRef<[f32]>>(
        &mut self,
        params: &mut [P],
        grads: &[G],
        lr: f64,
    ) -> Result<()> {
        self.check(params, grads)?;
        self.step += 1;
        let c = self.config;
        let t = self.step as i32;
        let bias1 = 1.0 - c.beta1.powi(t);
        let bias2_sqrt = (1.0 - c.beta2.powi(t)).sqrt();
        let k = Scalars {
            decay: (1.0 - lr * c.weight_decay) as f32,
            one_minus_beta1: (1.0 - c.beta1) as f32,
            beta1: c.beta1 as f32,
            beta2: c.beta2 as f32,
            one_minus_beta2: (1.0 - c.beta2) as f32,
            bias2_sqrt: bias2_sqrt as f32,
            eps: c.eps as f32,
            neg_step_size: (-(lr / bias1)) as f32,
        };
        for (i, (p, g)) in params.iter_mut().zip(grads).enumerate() {
            let decay = self.params[i].decay && c.weight_decay != 0.0;
            p.as_mut()
                .par_chunks_mut(CHUNK)
                .zip(g.as_ref().par_chunks(CHUNK))
                .zip(self.m[i].par_chunks_mut(CHUNK))
                .zip(self.v[i].par_chunks_mut(CHUNK))
                .for_each(|(((p, g), m), v)| update(p, g, m, v, &k, decay));
        }
        Ok(())
    }

    /// Checks that `params` and `grads` match the parameter list in count and size.
    fn check<P: AsMut<[f32]>, G: AsRef<[f32]>>(&self, params: &mut [P], grads: &[G]) -> Result<()> {
        if params.len() != self.params.len() || grads.len() != self.params.len() {
            return Err(Error::Optimizer(format!(
                "expected {} parameters and gradients, got {} and {}",
                self.params.len(),
                params.len(),
                grads.len()
            )));
        }
        for ((spec, p), g) in self.params.iter().zip(params.iter_mut()).zip(grads) {
            let (np, ng) = (p.as_mut().len(), g.as_ref().len());
            if np != spec.numel() || ng != spec.numel() {
                return Err(Error::Optimizer(format!(
                    "{}: parameter has {np} and gradient {ng} elements, expected {}",
                    spec.name,
                    spec.numel()
                )));
            }
        }
        Ok(())
    }
}

/// Elements per parallel work item.
const CHUNK: usize = 1 << 15;

/// The per-step scalars, already rounded to f32.
struct Scalars {
    decay: f32,
    one_minus_beta1: f32,
    beta1: f32,
    beta2: f32,
    one_minus_beta2: f32,
    bias2_sqrt: f32,
    eps: f32,
    neg_step_size: f32,
}

/// Updates one tensor and its moments in place.
fn update(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], k: &Scalars, decay: bool) {
    for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
        if decay {
            *p *= k.decay;
        }
        // torch.lerp's two branches, chosen by whether the weight 1 − β1 is below 0.5.
        *m = if k.one_minus_beta1 < 0.5 {
            *m + k.one_minus_beta1 * (g - *m)
        } else {
            g - (g - *m) * k.beta1
        };
        *v = *v * k.beta2 + k.one_minus_beta2 * g * g;
        let denom = v.sqrt() / k.bias2_sqrt + k.eps;
        *p += k.neg_step_size * (*m / denom);
    }
}
