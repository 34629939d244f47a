//! Activations and softmax, forward and backward: GELU (tanh form), SiLU gating (SwiGLU),
//! softmax in place, and softmax cross-entropy of one row of logits.
//!
//! Bodies are plain f32 arithmetic in a fixed order over the vectorizable [`exp_fast`]; each
//! level compiles them with its own vector width and no fused multiply-add, so every level
//! gives the same bits.

use crate::kernel;
use crate::vector::{exp_fast, exp_shifted_sum_in, max_lanes_in, tanh_fast};

/// √(2/π), GELU's tanh-form constant.
const GELU_K: f32 = 0.797_884_6;
/// GELU's cubic coefficient.
const GELU_C: f32 = 0.044_715;

kernel! {
    /// GELU, tanh approximation (GPT-2's `gelu_new`), in place, as `u / (1 + e^(−2z))`, which
    /// equals `0.5 u (1 + tanh z)` for `z = √(2/π) (u + 0.044715 u³)`.
    pub fn gelu_tanh(s, x: &mut [f32]) {
        for v in x.iter_mut() {
            let u = *v;
            *v = u / (1.0 + exp_fast(-2.0 * GELU_K * (u + GELU_C * u * u * u)));
        }
    }
}

kernel! {
    /// SwiGLU gate in place: `gate[i] = silu(gate[i]) · up[i]`.
    pub fn silu_mul(s, gate: &mut [f32], up: &[f32]) {
        for (g, &u) in gate.iter_mut().zip(up) {
            *g = *g / (1.0 + exp_fast(-*g)) * u;
        }
    }
}

kernel! {
    /// Softmax in place (max-subtracted; a row of −inf gives NaN).
    pub fn softmax(s, x: &mut [f32]) {
        let max = max_lanes_in(x);
        let sum = exp_shifted_sum_in(x, max);
        let inv = 1.0 / sum;
        x.iter_mut().for_each(|v| *v *= inv);
    }
}

kernel! {
    /// GELU of `h` into `g`, saving `t = tanh(√(2/π)(h + 0.044715 h³))` for backward.
    pub fn gelu_forward(s, g: &mut [f32], t: &mut [f32], h: &[f32]) {
        for ((g, t), &h) in g.iter_mut().zip(t.iter_mut()).zip(h) {
            *t = tanh_fast(GELU_K * (h + GELU_C * h * h * h));
            *g = 0.5 * h * (1.0 + *t);
        }
    }
}

kernel! {
    /// Backward of [`gelu_forward`]: `dg *= gelu'(h)` in place, from the saved `t`.
    pub fn gelu_backward(s, dg: &mut [f32], t: &[f32], h: &[f32]) {
        for ((d, &t), &h) in dg.iter_mut().zip(t).zip(h) {
            let du = GELU_K * (1.0 + 3.0 * GELU_C * h * h);
            *d *= 0.5 * (1.0 + t) + 0.5 * h * (1.0 - t * t) * du;
        }
    }
}

kernel! {
    /// SwiGLU gating: `out = silu(a) · b`, saving `σ(a)` for backward.
    pub fn swiglu_forward(s, out: &mut [f32], sig: &mut [f32], a: &[f32], b: &[f32]) {
        for (((o, sig), &a), &b) in out.iter_mut().zip(sig.iter_mut()).zip(a).zip(b) {
            *sig = 1.0 / (1.0 + exp_fast(-a));
            *o = a * *sig * b;
        }
    }
}

kernel! {
    /// Backward of [`swiglu_forward`]: from `ds` (in `d`), writes `da` over it and `db` into
    /// `db`.
    pub fn swiglu_backward(s, d: &mut [f32], db: &mut [f32], sig: &[f32], a: &[f32], b: &[f32]) {
        let n = d.len().min(db.len()).min(sig.len()).min(a.len()).min(b.len());
        for i in 0..n {
            let silu = a[i] * sig[i];
            db[i] = d[i] * silu;
            d[i] *= b[i] * sig[i] * (1.0 + a[i] * (1.0 - sig[i]));
        }
    }
}

kernel! {
    /// The cross-entropy of the logits `row` against class `target`; `row` becomes its
    /// gradient `(softmax − onehot) · scale`.
    pub fn softmax_cross_entropy(s, row: &mut [f32], target: usize, scale: f32) -> f32 {
        let max = max_lanes_in(row);
        let target_logit = row[target];
        let z = exp_shifted_sum_in(row, max);
        let k = scale / z;
        row.iter_mut().for_each(|v| *v *= k);
        row[target] -= scale;
        z.ln() + max - target_logit
    }
}
