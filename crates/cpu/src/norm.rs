//! Layer norm and RMS norm over rows, for inference and (saving `x̂` and `1/σ`) for training,
//! with the training backward. Sums run in fixed lanes: every level gives the same bits.

use crate::kernel;
use crate::vector::{dot_lanes_in, sum_lanes};

kernel! {
    /// LayerNorm of each `c`-wide row of `x` into `out` (`c = w.len()`):
    /// `(x − mean) / √(var + eps) · w + b`.
    pub fn layer_norm(s, x: &[f32], w: &[f32], b: &[f32], eps: f32, out: &mut [f32]) {
        let c = w.len();
        for (xr, or) in x.chunks_exact(c).zip(out.chunks_exact_mut(c)) {
            let mean = sum_lanes(xr, |v| v) / c as f32;
            let var = sum_lanes(xr, |v| (v - mean) * (v - mean)) / c as f32;
            let inv = 1.0 / (var + eps).sqrt();
            for (((o, &v), &w), &b) in or.iter_mut().zip(xr).zip(w).zip(b) {
                *o = (v - mean) * inv * w + b;
            }
        }
    }
}

kernel! {
    /// RMSNorm of each `c`-wide row of `x` into `out` (`c = w.len()`): `x / √(mean(x²) + eps) · w`.
    pub fn rms_norm(s, x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
        let c = w.len();
        for (xr, or) in x.chunks_exact(c).zip(out.chunks_exact_mut(c)) {
            let ms = sum_lanes(xr, |v| v * v) / c as f32;
            let inv = 1.0 / (ms + eps).sqrt();
            for ((o, &v), &w) in or.iter_mut().zip(xr).zip(w) {
                *o = v * inv * w;
            }
        }
    }
}

kernel! {
    /// One row of a training norm: `y = x̂ · γ (+ β)` with `x̂ = (x − μ)/σ` (layer norm, when
    /// `centered`) or `x/rms`; saves `x̂` and returns `1/σ`.
    pub fn norm_row(
        s,
        y: &mut [f32],
        xhat: &mut [f32],
        x: &[f32],
        gamma: &[f32],
        beta: Option<&[f32]>,
        centered: bool,
        eps: f32,
    ) -> f32 {
        let c = x.len() as f32;
        let mean = if centered { sum_lanes(x, |v| v) / c } else { 0.0 };
        let var = sum_lanes(x, |v| (v - mean) * (v - mean)) / c;
        let rstd = 1.0 / (var + eps).sqrt();
        for (xh, &v) in xhat.iter_mut().zip(x) {
            *xh = (v - mean) * rstd;
        }
        match beta {
            Some(b) => {
                for (((y, &xh), &g), &b) in y.iter_mut().zip(xhat.iter()).zip(gamma).zip(b) {
                    *y = xh * g + b;
                }
            }
            None => {
                for ((y, &xh), &g) in y.iter_mut().zip(xhat.iter()).zip(gamma) {
                    *y = xh * g;
                }
            }
        }
        rstd
    }
}

kernel! {
    /// One row of a training norm's backward: `dx += rstd · (g − mean(g) − x̂ · mean(g·x̂))`
    /// with `g = dy · γ` (the mean of `g` only when `centered`); `g` is a row-sized buffer.
    pub fn norm_back_row(
        s,
        dx: &mut [f32],
        g: &mut [f32],
        dy: &[f32],
        xhat: &[f32],
        gamma: &[f32],
        rstd: f32,
        centered: bool,
    ) {
        let c = dy.len() as f32;
        for ((g, &d), &w) in g.iter_mut().zip(dy).zip(gamma) {
            *g = d * w;
        }
        let mean = if centered { sum_lanes(g, |v| v) / c } else { 0.0 };
        let mean_dot = dot_lanes_in(g, xhat) / c;
        for ((dx, &g), &xh) in dx.iter_mut().zip(g.iter()).zip(xhat) {
            *dx += rstd * (g - mean - xh * mean_dot);
        }
    }
}
