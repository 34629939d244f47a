//! Linear layers on a [`Pool`]: `Y (+)= X Wᵀ + bias` over a [`Matrix`] of f32 or fp16
//! weights, a matrix-vector product for one token (decode) and register-tiled products for
//! several (prefill), with the output stored, added (residual) or passed through GELU.

use crate::activation::gelu_tanh;
use crate::gemm::gemm_cols;
use crate::gemv::gemv as gemv_kernel;
use crate::matrix::{Matrix, Storage};
use crate::threads::{Disjoint, Pool};
use std::ops::Range;

/// What a linear layer does with `W x + bias`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Out {
    /// Stores it.
    Store,
    /// Adds it to the output (a residual connection).
    Add,
    /// Stores its GELU (tanh form).
    Gelu,
}

/// One thread's share of a matrix-vector product: `y[i] (+)= bias[i] + W[rows.start + i] · x`.
fn gemv_rows(
    pool: &Pool,
    m: &Matrix,
    x: &[f32],
    rows: Range<usize>,
    bias: Option<&[f32]>,
    y: &mut [f32],
    accumulate: bool,
) {
    assert_eq!(x.len(), m.cols, "gemv input width");
    match &m.data {
        Storage::F16(w) => gemv_kernel(pool.cpu(), w, x, rows, bias, y, accumulate),
        Storage::F32(w) => gemv_kernel(pool.cpu(), w, x, rows, bias, y, accumulate),
    }
}

/// `y (+)= W x + bias` with the rows split across the pool; `y` is `[rows]`.
pub fn gemv(pool: &Pool, m: &Matrix, x: &[f32], bias: Option<&[f32]>, y: &mut [f32], out: Out) {
    assert_eq!(y.len(), m.rows, "gemv output height");
    let ys = Disjoint::new(y);
    // Two chunks per thread of whole 16-row blocks: long prefetched streams, yet a thread
    // held up by other load on the machine delays the product by one chunk only.
    let chunk = (m.rows / (2 * pool.threads())).next_multiple_of(16).max(16);
    pool.chunks(m.rows, chunk, &|r| {
        // SAFETY: the pool's chunks are disjoint.
        let y = unsafe { ys.range(r.clone()) };
        gemv_rows(
            pool,
            m,
            x,
            r.clone(),
            bias.map(|b| &b[r]),
            y,
            out == Out::Add,
        );
        if out == Out::Gelu {
            gelu_tanh(pool.cpu(), y);
        }
    });
}

/// `Y (+)= X Wᵀ + bias` for `X` `[t, cols]` and `Y` `[t, rows]`, the weight rows split across
/// the pool.
pub fn gemm(pool: &Pool, m: &Matrix, x: &[f32], bias: Option<&[f32]>, y: &mut [f32], out: Out) {
    let (k, n) = (m.cols, m.rows);
    assert!(k > 0 && x.len().is_multiple_of(k), "gemm input width");
    let t = x.len() / k;
    assert_eq!(y.len(), t * n, "gemm output shape");
    if t == 0 {
        return;
    }
    let ys = Disjoint::new(y);
    let chunk = (n / (2 * pool.threads())).next_multiple_of(12).max(12);
    let accumulate = out == Out::Add;
    pool.chunks(n, chunk, &|rows| {
        let bias = bias.map(|b| &b[rows.clone()]);
        let (cpu, ptr) = (pool.cpu(), ys.as_ptr());
        // SAFETY: this thread owns columns `rows` of every output row.
        unsafe {
            match &m.data {
                Storage::F16(w) => {
                    gemm_cols(cpu, w, k, k, rows.clone(), x, k, bias, ptr, n, accumulate)
                }
                Storage::F32(w) => {
                    gemm_cols(cpu, w, k, k, rows.clone(), x, k, bias, ptr, n, accumulate)
                }
            }
        }
        if out == Out::Gelu {
            for tt in 0..t {
                // SAFETY: as above.
                gelu_tanh(pool.cpu(), unsafe {
                    ys.range(tt * n + rows.start..tt * n + rows.end)
                });
            }
        }
    });
}

/// `Y (+)= X Wᵀ + bias` for `X` `[t, cols]`: a matrix-vector product for one token, tiles
/// for several.
pub fn linear(pool: &Pool, m: &Matrix, x: &[f32], bias: Option<&[f32]>, y: &mut [f32], out: Out) {
    if x.len() == m.cols {
        gemv(pool, m, x, bias, y, out);
    } else {
        gemm(pool, m, x, bias, y, out);
    }
}
