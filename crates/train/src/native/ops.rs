//! Row-wise pieces of the native layers, forward and backward: linear layers over
//! [`matmul`], layer and RMS norms, GELU (tanh form), SiLU gating and bias sums. Rows are
//! tokens; every buffer is row-major `[N, width]`. The row loops run on the rayon pool; the
//! arithmetic of each row or chunk is a `cpu` crate kernel at the process's level.

use super::gemm::{matmul, Precision};
use cpu::activation;
use cpu::matmul::MatRef;
use cpu::norm::{norm_back_row, norm_row};
use cpu::Cpu;
use rayon::prelude::*;

/// Rows per rayon task in the row-wise operators.
const ROWS: usize = 16;

/// `y [N, out] = x [N, in] · Wᵀ (+ b)`, with `w` row-major `[out, in]`.
pub fn linear(y: &mut [f32], x: &[f32], w: &[f32], b: Option<&[f32]>, n_in: usize, p: Precision) {
    let (n, out) = (x.len() / n_in, w.len() / n_in);
    if let Some(b) = b {
        y.par_chunks_mut(out * ROWS).for_each(|rows| {
            for row in rows.chunks_mut(out) {
                row.copy_from_slice(b);
            }
        });
    }
    matmul(
        y,
        MatRef::row_major(x, n, n_in),
        MatRef::row_major(w, out, n_in).t(),
        b.is_some(),
        p,
    );
}

/// Backward of [`linear`]: `dW (+)= dyᵀ · x`, `db (+)= Σ dy` (added when `accumulate`,
/// overwritten otherwise), and `dx = dy · W` when wanted.
#[allow(clippy::too_many_arguments)]
pub fn linear_backward(
    dx: Option<&mut [f32]>,
    dw: &mut [f32],
    db: Option<&mut [f32]>,
    dy: &[f32],
    x: &[f32],
    w: &[f32],
    n_in: usize,
    p: Precision,
    accumulate: bool,
) {
    let (n, out) = (x.len() / n_in, w.len() / n_in);
    let dy_m = MatRef::row_major(dy, n, out);
    matmul(dw, dy_m.t(), MatRef::row_major(x, n, n_in), accumulate, p);
    if let Some(db) = db {
        column_sums(db, dy, accumulate);
    }
    if let Some(dx) = dx {
        matmul(dx, dy_m, MatRef::row_major(w, out, n_in), false, p);
    }
}

/// `acc[j] (+)= Σ_i m[i, j]` for row-major `m` with `acc.len()` columns: added when
/// `accumulate`, overwritten otherwise.
pub fn column_sums(acc: &mut [f32], m: &[f32], accumulate: bool) {
    let width = acc.len();
    let parts: Vec<Vec<f32>> = m
        .par_chunks(width * 64)
        .map(|rows| {
            let mut sum = vec![0.0f32; width];
            for row in rows.chunks(width) {
                cpu::vector::add(Cpu::active(), &mut sum, row);
            }
            sum
        })
        .collect();
    if !accumulate {
        acc.fill(0.0);
    }
    for part in parts {
        cpu::vector::add(Cpu::active(), acc, &part);
    }
}

/// A norm's saved state: normalized rows `x̂` `[N, C]` and each row's `1/σ` `[N]`.
pub struct NormSaved {
    /// `(x − μ)/σ` (layer norm) or `x/rms` (RMS norm).
    pub xhat: Vec<f32>,
    /// One over the row's standard deviation (or RMS).
    pub rstd: Vec<f32>,
}

impl NormSaved {
    /// Buffers for `n` rows of width `c`.
    pub fn new(n: usize, c: usize) -> Self {
        NormSaved {
            xhat: vec![0.0; n * c],
            rstd: vec![0.0; n],
        }
    }
}

/// `y = x̂ · γ (+ β)` per row, saving `x̂` and `1/σ`: layer norm (mean removed) when
/// `centered`, RMS norm otherwise.
pub fn norm_forward(
    y: &mut [f32],
    saved: &mut NormSaved,
    x: &[f32],
    gamma: &[f32],
    beta: Option<&[f32]>,
    centered: bool,
    eps: f32,
) {
    let c = gamma.len();
    y.par_chunks_mut(c)
        .zip(saved.xhat.par_chunks_mut(c))
        .zip(saved.rstd.par_iter_mut())
        .zip(x.par_chunks(c))
        .with_min_len(ROWS)
        .for_each(|(((y, xhat), rstd), x)| {
            *rstd = norm_row(Cpu::active(), y, xhat, x, gamma, beta, centered, eps);
        });
}

/// Backward of [`norm_forward`]: `dx += ∂/∂x` (`dx` already holds the residual stream's
/// gradient), `dγ (+)= Σ dy·x̂`, `dβ (+)= Σ dy` (added when `accumulate`).
#[allow(clippy::too_many_arguments)]
pub fn norm_backward(
    dx: &mut [f32],
    dgamma: &mut [f32],
    dbeta: Option<&mut [f32]>,
    dy: &[f32],
    saved: &NormSaved,
    gamma: &[f32],
    centered: bool,
    accumulate: bool,
) {
    let c = gamma.len();
    dx.par_chunks_mut(c * ROWS)
        .zip(dy.par_chunks(c * ROWS))
        .zip(saved.xhat.par_chunks(c * ROWS))
        .zip(saved.rstd.par_chunks(ROWS))
        .for_each(|(((dx, dy), xhat), rstd)| {
            let mut g = vec![0.0f32; c];
            for (((dx, dy), xhat), &r) in dx
                .chunks_mut(c)
                .zip(dy.chunks(c))
                .zip(xhat.chunks(c))
                .zip(rstd)
            {
                norm_back_row(Cpu::active(), dx, &mut g, dy, xhat, gamma, r, centered);
            }
        });
    let mut prod = vec![0.0f32; dy.len()];
    prod.par_chunks_mut(c * ROWS)
        .zip(dy.par_chunks(c * ROWS))
        .zip(saved.xhat.par_chunks(c * ROWS))
        .for_each(|((p, dy), xhat)| cpu::vector::mul(Cpu::active(), p, dy, xhat));
    column_sums(dgamma, &prod, accumulate);
    if let Some(db) = dbeta {
        column_sums(db, dy, accumulate);
    }
}

/// GELU (tanh form) of `h` into `g`, saving `t = tanh(√(2/π)(h + 0.044715 h³))` for backward.
pub fn gelu_forward(g: &mut [f32], t: &mut [f32], h: &[f32]) {
    g.par_chunks_mut(4096)
        .zip(t.par_chunks_mut(4096))
        .zip(h.par_chunks(4096))
        .for_each(|((g, t), h)| activation::gelu_forward(Cpu::active(), g, t, h));
}

/// Backward of [`gelu_forward`]: `dh = dg · gelu'(h)`, in place over `dg`.
pub fn gelu_backward(dg: &mut [f32], t: &[f32], h: &[f32]) {
    dg.par_chunks_mut(4096)
        .zip(t.par_chunks(4096))
        .zip(h.par_chunks(4096))
        .for_each(|((dg, t), h)| activation::gelu_backward(Cpu::active(), dg, t, h));
}

/// SwiGLU gating: `s = silu(a) · b`, saving `σ(a)` for backward.
pub fn swiglu_forward(s: &mut [f32], sig: &mut [f32], a: &[f32], b: &[f32]) {
    s.par_chunks_mut(4096)
        .zip(sig.par_chunks_mut(4096))
        .zip(a.par_chunks(4096).zip(b.par_chunks(4096)))
        .for_each(|((s, sig), (a, b))| activation::swiglu_forward(Cpu::active(), s, sig, a, b));
}

/// Backward of [`swiglu_forward`]: from `ds`, writes `da` over `ds` and `db` into `db`.
pub fn swiglu_backward(ds_da: &mut [f32], db: &mut [f32], sig: &[f32], a: &[f32], b: &[f32]) {
    ds_da
        .par_chunks_mut(4096)
        .zip(db.par_chunks_mut(4096))
        .zip(
            sig.par_chunks(4096)
                .zip(a.par_chunks(4096).zip(b.par_chunks(4096))),
        )
        .for_each(|((d, db), (sig, (a, b)))| {
            activation::swiglu_backward(Cpu::active(), d, db, sig, a, b)
        });
}

/// `acc += x`, elementwise.
pub fn add_into(acc: &mut [f32], x: &[f32]) {
    acc.par_chunks_mut(4096)
        .zip(x.par_chunks(4096))
        .for_each(|(a, x)| cpu::vector::add(Cpu::active(), a, x));
}
