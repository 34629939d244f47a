//! The optimizer's elementwise passes: the AdamW update of one chunk of a tensor (taking raw
//! gradients through unscaling, sanitizing and clipping in registers), and the sum of squares
//! behind the global gradient norm.
//!
//! Both are plain f32/f64 arithmetic in a fixed order (no fused multiply-add), so every level
//! gives the same bits, and so do any number of threads.

use crate::kernel;

/// The per-step scalars of AdamW, already rounded to f32 (as PyTorch rounds them).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamWScalars {
    /// `1 − lr·weight_decay`.
    pub decay: f32,
    /// `1 − β1`.
    pub one_minus_beta1: f32,
    /// `β1`.
    pub beta1: f32,
    /// `β2`.
    pub beta2: f32,
    /// `1 − β2`.
    pub one_minus_beta2: f32,
    /// `√(1 − β2ᵗ)`.
    pub bias2_sqrt: f32,
    /// `ε`.
    pub eps: f32,
    /// `−lr / (1 − β1ᵗ)`.
    pub neg_step_size: f32,
}

/// How a raw gradient becomes the one AdamW applies: `g · unscale`, then NaN/±Inf → 0 when
/// `sanitize`, then `· clip` (1 for none; multiplying by 1 changes no f32, NaN included).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Prep {
    /// The multiplier undoing loss scaling and accumulation.
    pub unscale: f32,
    /// Whether non-finite values become 0.
    pub sanitize: bool,
    /// The clipping coefficient (1 when not clipping).
    pub clip: f32,
}

impl Prep {
    /// The gradient AdamW applies for a raw gradient `g`.
    #[inline(always)]
    pub fn apply(self, g: f32) -> f32 {
        let x = g * self.unscale;
        let x = if self.sanitize && !x.is_finite() {
            0.0
        } else {
            x
        };
        x * self.clip
    }
}

kernel! {
    /// One AdamW step over a chunk of a tensor `p` and its moments `m`, `v`, from raw
    /// gradients `g` (used as `prep` turns them); decoupled weight decay when `decay`.
    pub fn adamw(
        s,
        p: &mut [f32],
        g: &[f32],
        m: &mut [f32],
        v: &mut [f32],
        k: &AdamWScalars,
        decay: bool,
        prep: Prep,
    ) {
        for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
            let g = prep.apply(g);
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
}

/// Lanes of the sum of squares.
const LANES: usize = 16;

/// The sum of `f(x)²` over `block` in f64: element `i` into lane `i mod 16`, lanes added
/// pairwise. Each term is exact (an f32 squared fits an f64).
#[inline(always)]
fn lanes_sum(block: &[f32], f: impl Fn(f32) -> f32) -> f64 {
    let mut acc = [0.0f64; LANES];
    let mut chunks = block.chunks_exact(LANES);
    for c in &mut chunks {
        for (a, &g) in acc.iter_mut().zip(c) {
            let x = f64::from(f(g));
            *a += x * x;
        }
    }
    for (a, &g) in acc.iter_mut().zip(chunks.remainder()) {
        let x = f64::from(f(g));
        *a += x * x;
    }
    pairwise(&acc)
}

/// The sum of `x`, halves first: `((x0 + x1) + (x2 + x3)) + …` for a power-of-two length.
fn pairwise(x: &[f64]) -> f64 {
    match x {
        [] => 0.0,
        [a] => *a,
        _ => {
            let (lo, hi) = x.split_at(x.len() / 2);
            pairwise(lo) + pairwise(hi)
        }
    }
}

kernel! {
    /// `Σ (x · unscale)²` over `block` in f64, in the fixed lane order of the module doc;
    /// non-finite terms count as 0 when `finite_only`.
    pub fn sum_squares(s, block: &[f32], unscale: f32, finite_only: bool) -> f64 {
        if finite_only {
            lanes_sum(block, |g| {
                let x = g * unscale;
                if x.is_finite() {
                    x
                } else {
                    0.0
                }
            })
        } else {
            lanes_sum(block, |g| g * unscale)
        }
    }
}
