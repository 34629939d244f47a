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
//! runs on all cores in fixed-size chunks of all tensors, with results independent of the
//! thread count. [`AdamW::step_and_zero`] takes raw gradients and unscales, sanitizes and
//! clips each value in registers on the way in (the same f32 values separate passes would
//! have written), then zeroes the gradients: one pass over memory for the whole update.

use cpu::optim::{adamw, AdamWScalars, Prep};
use cpu::Cpu;
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

impl AdamWConfig {
    /// Checks that the hyperparameters describe AdamW: `0 ≤ β1 < 1`, `0 ≤ β2 < 1`, `ε > 0`
    /// and a weight decay `≥ 0`, all finite. Outside these ranges the update divides by zero
    /// or diverges, and a run would train to NaN.
    pub fn validate(&self) -> Result<()> {
        let beta = |b: f64| (0.0..1.0).contains(&b);
        let problems: Vec<String> = [
            (!beta(self.beta1)).then(|| format!("beta1 must be in [0, 1), got {}", self.beta1)),
            (!beta(self.beta2)).then(|| format!("beta2 must be in [0, 1), got {}", self.beta2)),
            (!(self.eps > 0.0 && self.eps.is_finite()))
                .then(|| format!("eps must be positive and finite, got {}", self.eps)),
            (!(self.weight_decay >= 0.0 && self.weight_decay.is_finite())).then(|| {
                format!(
                    "weight decay must be ≥ 0 and finite, got {}",
                    self.weight_decay
                )
            }),
        ]
        .into_iter()
        .flatten()
        .collect();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::Optimizer(format!(
                "AdamW hyperparameters: {}",
                problems.join("; ")
            )))
        }
    }
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
    /// An optimizer at step 0 with zero moments (the hyperparameters are checked by
    /// [`AdamWConfig::validate`] where they come in, e.g. `Run::new`).
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
        self.step_prepared(params, grads, lr, GradPrep::default())
    }

    /// Applies one update from raw gradients, each used as `prep` turns it (unscaled,
    /// sanitized, clipped) exactly as if those passes had been written out first; the
    /// gradients are only read.
    pub fn step_prepared<P: AsMut<[f32]>, G: AsRef<[f32]>>(
        &mut self,
        params: &mut [P],
        grads: &[G],
        lr: f64,
        prep: GradPrep,
    ) -> Result<()> {
        let grads = grads.iter().map(AsRef::as_ref).collect();
        self.apply(params, grads, lr, prep, |_| {})
    }

    /// Applies one update from raw gradients, each used as `prep` turns it (unscaled,
    /// sanitized, clipped) exactly as if those passes had been written out first, and leaves
    /// every gradient zero for the next accumulation.
    pub fn step_and_zero<P: AsMut<[f32]>, G: AsMut<[f32]>>(
        &mut self,
        params: &mut [P],
        grads: &mut [G],
        lr: f64,
        prep: GradPrep,
    ) -> Result<()> {
        let grads = grads.iter_mut().map(AsMut::as_mut).collect();
        self.apply(params, grads, lr, prep, |g: &mut [f32]| g.fill(0.0))
    }

    /// The update shared by [`AdamW::step_prepared`] and [`AdamW::step_and_zero`]: each
    /// piece of gradient is handed to `finish` once its parameters are updated.
    fn apply<P: AsMut<[f32]>, G: Chunked + AsRef<[f32]> + Send>(
        &mut self,
        params: &mut [P],
        grads: Vec<G>,
        lr: f64,
        prep: GradPrep,
        finish: impl Fn(G) + Sync,
    ) -> Result<()> {
        self.check(params, grads.iter().map(|g| g.as_ref().len()))?;
        let (k, decay) = self.advance(lr);
        let prep = prep.kernel();
        let cpu = Cpu::active();
        let items = work_items(params, grads.into_iter(), &mut self.m, &mut self.v);
        items.into_par_iter().for_each(|(i, p, g, m, v)| {
            adamw(cpu, p, g.as_ref(), m, v, &k, decay[i], prep);
            finish(g);
        });
        Ok(())
    }

    /// Counts the step and returns its scalars and which parameters decay.
    fn advance(&mut self, lr: f64) -> (AdamWScalars, Vec<bool>) {
        self.step += 1;
        let c = self.config;
        let t = self.step as i32;
        let bias1 = 1.0 - c.beta1.powi(t);
        let bias2_sqrt = (1.0 - c.beta2.powi(t)).sqrt();
        let k = AdamWScalars {
            decay: (1.0 - lr * c.weight_decay) as f32,
            one_minus_beta1: (1.0 - c.beta1) as f32,
            beta1: c.beta1 as f32,
            beta2: c.beta2 as f32,
            one_minus_beta2: (1.0 - c.beta2) as f32,
            bias2_sqrt: bias2_sqrt as f32,
            eps: c.eps as f32,
            neg_step_size: (-(lr / bias1)) as f32,
        };
        let decay = self
            .params
            .iter()
            .map(|p| p.decay && c.weight_decay != 0.0)
            .collect();
        (k, decay)
    }

    /// Checks that `params` and the gradient lengths match the parameter list.
    fn check<P: AsMut<[f32]>>(
        &self,
        params: &mut [P],
        grad_lens: impl ExactSizeIterator<Item = usize>,
    ) -> Result<()> {
        if params.len() != self.params.len() || grad_lens.len() != self.params.len() {
            return Err(Error::Optimizer(format!(
                "expected {} parameters and gradients, got {} and {}",
                self.params.len(),
                params.len(),
                grad_lens.len()
            )));
        }
        for ((spec, p), ng) in self.params.iter().zip(params.iter_mut()).zip(grad_lens) {
            let np = p.as_mut().len();
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

/// How raw gradients become the ones AdamW applies: `g · unscale`, then NaN/±Inf → 0 when
/// sanitizing, then `· clip` when clipping — the f32 values those passes would have written.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GradPrep {
    /// The multiplier undoing loss scaling and accumulation (1 for none).
    pub unscale: f32,
    /// Whether non-finite values become 0.
    pub sanitize: bool,
    /// The clipping coefficient, when clipping.
    pub clip: Option<f32>,
}

impl Default for GradPrep {
    /// Gradients used as they are.
    fn default() -> Self {
        GradPrep {
            unscale: 1.0,
            sanitize: false,
            clip: None,
        }
    }
}

impl GradPrep {
    /// The per-element form. Multiplying by 1 leaves every f32 (quiet NaNs included) as it is,
    /// so an absent clip can be a factor of 1.
    fn kernel(self) -> Prep {
        Prep {
            unscale: self.unscale,
            sanitize: self.sanitize,
            clip: self.clip.unwrap_or(1.0),
        }
    }
}

/// Elements per parallel work item.
const CHUNK: usize = 1 << 15;

/// One parallel work item: a parameter's index and matching chunks of its values, gradient,
/// first and second moments.
type Item<'a, G> = (usize, &'a mut [f32], G, &'a mut [f32], &'a mut [f32]);

/// A gradient slice, shared or exclusive, that splits into [`CHUNK`]-sized pieces.
trait Chunked: Sized {
    /// The pieces in order.
    fn pieces(self) -> impl Iterator<Item = Self>;
}

impl Chunked for &[f32] {
    fn pieces(self) -> impl Iterator<Item = Self> {
        self.chunks(CHUNK)
    }
}

impl Chunked for &mut [f32] {
    fn pieces(self) -> impl Iterator<Item = Self> {
        self.chunks_mut(CHUNK)
    }
}

/// Every parameter cut into work items, so small tensors do not each cost a parallel split.
fn work_items<'a, P: AsMut<[f32]>, G: Chunked + 'a>(
    params: &'a mut [P],
    grads: impl Iterator<Item = G>,
    m: &'a mut [Vec<f32>],
    v: &'a mut [Vec<f32>],
) -> Vec<Item<'a, G>> {
    let mut items = Vec::new();
    let tensors = params
        .iter_mut()
        .zip(grads)
        .zip(m.iter_mut().zip(v.iter_mut()));
    for (i, ((p, g), (m, v))) in tensors.enumerate() {
        let chunks = p.as_mut().chunks_mut(CHUNK).zip(g.pieces());
        let moments = m.chunks_mut(CHUNK).zip(v.chunks_mut(CHUNK));
        items.extend(chunks.zip(moments).map(|((p, g), (m, v))| (i, p, g, m, v)));
    }
    items
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clip::{clip_coefficient, clip_grad_norm, sanitize};
    use crate::rng::Rng;

    /// A decaying matrix spanning three chunks and an exempt bias.
    fn specs() -> Vec<ParamSpec> {
        vec![
            ParamSpec::new("w", vec![2, CHUNK + 2]),
            ParamSpec::new("bias", vec![5]),
        ]
    }

    /// Values in [-scale, scale), with a NaN and both infinities planted in the first tensor.
    fn values(rng: &mut Rng, scale: f32, poison: bool) -> Vec<Vec<f32>> {
        let mut t: Vec<Vec<f32>> = specs()
            .iter()
            .map(|s| {
                (0..s.numel())
                    .map(|_| (rng.next_f32() * 2.0 - 1.0) * scale)
                    .collect()
            })
            .collect();
        if poison {
            t[0][3] = f32::NAN;
            t[0][CHUNK + 1] = f32::INFINITY;
            t[0][2 * CHUNK] = f32::NEG_INFINITY;
        }
        t
    }

    /// Equal bit for bit, any NaN matching any NaN.
    fn same(a: &[f32], b: &[f32]) -> bool {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()))
    }

    /// Three steps written out pass by pass against the fused step, for one setting.
    fn compare(config: AdamWConfig, sanitize_grads: bool, max_norm: f32, poison: bool) {
        let mut rng = Rng::new(3);
        let init = values(&mut rng, 1.0, false);
        let (mut a, mut b) = (AdamW::new(config, specs()), AdamW::new(config, specs()));
        let (mut pa, mut pb) = (init.clone(), init);
        let unscale = 1.0 / (1024.0 * 3.0);
        for step in 0..3 {
            let raw = values(&mut rng, 300.0, poison && step == 1);
            let mut written = raw.clone();
            written.iter_mut().flatten().for_each(|x| *x *= unscale);
            if sanitize_grads {
                sanitize(&mut written);
            }
            let norm = clip_grad_norm(&mut written, max_norm);
            a.step(&mut pa, &written, 1e-2).expect("step");
            let mut grads = raw;
            let prep = GradPrep {
                unscale,
                sanitize: sanitize_grads,
                clip: clip_coefficient(norm, max_norm),
            };
            b.step_and_zero(&mut pb, &mut grads, 1e-2, prep)
                .expect("fused step");
            assert!(grads.iter().flatten().all(|&x| x.to_bits() == 0));
            for (((x, y), (_, ma, va)), (_, mb, vb)) in
                pa.iter().zip(&pb).zip(a.moments()).zip(b.moments())
            {
                assert!(same(x, y) && same(ma, mb) && same(va, vb), "step {step}");
            }
        }
    }

    #[test]
    fn fused_step_equals_separate_unscale_sanitize_clip_passes() {
        let config = AdamWConfig::default();
        compare(config, true, 1.0, true);
        compare(config, true, 1e9, true);
        compare(config, false, 1.0, true);
        compare(config, false, 1.0, false);
        let low_beta1 = AdamWConfig {
            beta1: 0.3,
            weight_decay: 0.1,
            ..config
        };
        compare(low_beta1, true, 1.0, false);
    }

    #[test]
    fn update_does_not_depend_on_the_thread_count() {
        let run = || {
            let mut rng = Rng::new(4);
            let mut params = values(&mut rng, 1.0, false);
            let mut opt = AdamW::new(AdamWConfig::default(), specs());
            for _ in 0..2 {
                let grads = values(&mut rng, 1.0, false);
                opt.step(&mut params, &grads, 1e-3).expect("step");
            }
            params
        };
        let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build();
        assert_eq!(pool.expect("pool").install(run), run());
    }
}
