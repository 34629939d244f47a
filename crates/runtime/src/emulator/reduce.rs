//! Reductions over axes and softmax along one axis, accumulating in f32.

use half::f16;
use rayon::prelude::*;

use super::error::{norm_axis, KernelError};
use super::numerics::{Numerics, PAR_THRESHOLD};
use super::tensor::{strides_of, Tensor};

/// A reduction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReduceOp {
    /// Sum of the elements.
    Sum,
    /// Arithmetic mean of the elements.
    Mean,
    /// Largest element; NaN if any element is NaN.
    Max,
}

impl ReduceOp {
    /// The MIL op name.
    pub fn name(self) -> &'static str {
        match self {
            ReduceOp::Sum => "reduce_sum",
            ReduceOp::Mean => "reduce_mean",
            ReduceOp::Max => "reduce_max",
        }
    }
}

/// NaN-propagating maximum.
fn max_nan(a: f32, b: f32) -> f32 {
    if a.is_nan() || b.is_nan() {
        f32::NAN
    } else if b > a {
        b
    } else {
        a
    }
}

/// Reduces `x` over `axes` (all axes when `None`; negative axes count from the end),
/// keeping reduced dimensions as size 1 when `keep_dims`.
/// `x`: (d0, …, dr) → the shape without (or with size-1) reduced axes
pub fn reduce(
    op: ReduceOp,
    x: &Tensor,
    axes: Option<&[i64]>,
    keep_dims: bool,
    nx: Numerics,
) -> Result<Tensor, KernelError> {
    let rank = x.rank();
    let mut reduced = vec![axes.is_none(); rank];
    for &a in axes.unwrap_or(&[]) {
        reduced[norm_axis(op.name(), a, rank)?] = true;
    }
    let kept: Vec<usize> = (0..rank)
        .map(|d| if reduced[d] { 1 } else { x.shape[d] })
        .collect();
    let kept_strides = strides_of(&kept);
    let out_strides: Vec<usize> = (0..rank)
        .map(|d| if reduced[d] { 0 } else { kept_strides[d] })
        .collect();
    let out_len: usize = kept.iter().product();
    let count = x.len().checked_div(out_len).unwrap_or(0);
    let init = if op == ReduceOp::Max {
        f32::NEG_INFINITY
    } else {
        0.0
    };
    let mut data = vec![init; out_len];
    if rank == 0 {
        data[0] = x.data[0];
    } else if !x.is_empty() {
        let row = x.shape[rank - 1];
        let step = out_strides[rank - 1];
        for (r, xrow) in x.data.chunks(row).enumerate() {
            let (mut base, mut rem) = (0, r);
            for d in (0..rank - 1).rev() {
                base += (rem % x.shape[d]) * out_strides[d];
                rem /= x.shape[d];
            }
            for (j, &v) in xrow.iter().enumerate() {
                let o = &mut data[base + j * step];
                *o = if op == ReduceOp::Max {
                    max_nan(*o, v)
                } else {
                    *o + v
                };
            }
        }
    }
    if op == ReduceOp::Mean {
        data.iter_mut().for_each(|v| *v /= count as f32);
    }
    let shape = if keep_dims {
        kept
    } else {
        (0..rank)
            .filter(|&d| !reduced[d])
            .map(|d| x.shape[d])
            .collect()
    };
    nx.finish(x.dtype, &mut data);
    Ok(Tensor {
        dtype: x.dtype,
        shape,
        data,
    })
}

/// Softmax along `axis`: `exp(x − max) / Σ exp(x − max)`, computed in f32 and rounded once.
/// `x`: (…) → same shape
pub fn softmax(x: &Tensor, axis: i64, nx: Numerics) -> Result<Tensor, KernelError> {
    let a = norm_axis("softmax", axis, x.rank())?;
    let n = x.shape[a];
    let inner: usize = x.shape[a + 1..].iter().product();
    let mut data = x.data.clone();
    let round_exp = nx.softmax_rounds_exponentials();
    if n > 0 && inner == 1 {
        let par = data.len() >= PAR_THRESHOLD;
        if par {
            data.par_chunks_mut(n)
                .for_each(|r| softmax_row(r, round_exp));
        } else {
            data.chunks_mut(n).for_each(|r| softmax_row(r, round_exp));
        }
    } else if n > 0 && inner > 0 {
        for block in data.chunks_mut(n * inner) {
            softmax_columns(block, inner, round_exp);
        }
    }
    nx.finish(x.dtype, &mut data);
    Ok(Tensor {
        dtype: x.dtype,
        shape: x.shape.clone(),
        data,
    })
}

/// The exponential of `v − max`, rounded to fp16 when the profile asks for it.
fn shifted_exp(v: f32, max: f32, round_exp: bool) -> f32 {
    let e = (v - max).exp();
    if round_exp {
        f16::from_f32(e).to_f32()
    } else {
        e
    }
}

/// Softmax in place over one contiguous row.
fn softmax_row(row: &mut [f32], round_exp: bool) {
    let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| max_nan(m, v));
    let mut sum = 0.0f32;
    for v in row.iter_mut() {
        *v = shifted_exp(*v, max, round_exp);
        sum += *v;
    }
    row.iter_mut().for_each(|v| *v /= sum);
}

/// Softmax in place down the columns of a row-major block `(n, inner)`, row by row so that
/// every pass reads memory contiguously.
fn softmax_columns(block: &mut [f32], inner: usize, round_exp: bool) {
    let mut max = vec![f32::NEG_INFINITY; inner];
    for row in block.chunks(inner) {
        for (m, &v) in max.iter_mut().zip(row) {
            *m = max_nan(*m, v);
        }
    }
    let exp_row = |row: &mut [f32]| {
        for (v, &m) in row.iter_mut().zip(&max) {
            *v = shifted_exp(*v, m, round_exp);
        }
    };
    if block.len() >= PAR_THRESHOLD {
        block.par_chunks_mut(inner).for_each(exp_row);
    } else {
        block.chunks_mut(inner).for_each(exp_row);
    }
    let mut sum = vec![0.0f32; inner];
    for row in block.chunks(inner) {
        for (s, &v) in sum.iter_mut().zip(row) {
            *s += v;
        }
    }
    let div_row = |row: &mut [f32]| {
        for (v, &s) in row.iter_mut().zip(&sum) {
            *v /= s;
        }
    };
    if block.len() >= PAR_THRESHOLD {
        block.par_chunks_mut(inner).for_each(div_row);
    } else {
        block.chunks_mut(inner).for_each(div_row);
    }
}
