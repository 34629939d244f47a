//! Elementwise kernels: numpy-broadcasting binary ops and unary ops; the loops over whole
//! buffers are the `cpu` crate's, compiled for the process's level.

use cpu::vector::{map, zip_with};
use cpu::Cpu;
use mil::DType;
use rayon::prelude::*;

use super::error::KernelError;
use super::numerics::{Numerics, PAR_THRESHOLD};
use super::tensor::{strides_of, Tensor};

/// Values per rayon task in elementwise loops.
const PAR_CHUNK: usize = 1 << 14;

/// A broadcasting binary op.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    /// `x + y`
    Add,
    /// `x - y`
    Sub,
    /// `x * y`
    Mul,
    /// `x / y`
    RealDiv,
    /// `x ^ y` (f32 `powf`)
    Pow,
}

impl BinaryOp {
    /// The MIL op name.
    pub fn name(self) -> &'static str {
        match self {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "sub",
            BinaryOp::Mul => "mul",
            BinaryOp::RealDiv => "real_div",
            BinaryOp::Pow => "pow",
        }
    }
}

/// MIL's default `epsilon` of `log`.
pub const LOG_EPSILON: f32 = 1e-45;
/// MIL's default `epsilon` of `rsqrt`.
pub const RSQRT_EPSILON: f32 = 1e-12;

/// A unary op; `Log` and `Rsqrt` carry their MIL `epsilon`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UnaryOp {
    /// `e^x`
    Exp,
    /// `ln(x + epsilon)` (MIL default epsilon 1e-45)
    Log { epsilon: f32 },
    /// `√x`
    Sqrt,
    /// `1 / √(x + epsilon)` (MIL default epsilon 1e-12)
    Rsqrt { epsilon: f32 },
    /// `tanh x`
    Tanh,
    /// `1 / (1 + e^−x)`
    Sigmoid,
    /// `max(x, 0)`, NaN propagating
    Relu,
}

/// Applies a binary op with numpy broadcasting; the result has `x`'s dtype.
/// `x`: (…) , `y`: (…) broadcastable → (broadcast shape)
pub fn binary(op: BinaryOp, x: &Tensor, y: &Tensor, nx: Numerics) -> Result<Tensor, KernelError> {
    match op {
        BinaryOp::Add => binary_with(op, x, y, nx, |a, b| a + b),
        BinaryOp::Sub => binary_with(op, x, y, nx, |a, b| a - b),
        BinaryOp::Mul => binary_with(op, x, y, nx, |a, b| a * b),
        BinaryOp::RealDiv => binary_with(op, x, y, nx, |a, b| a / b),
        BinaryOp::Pow => binary_with(op, x, y, nx, f32::powf),
    }
}

/// Applies a unary op elementwise; the result has `x`'s dtype.
pub fn unary(op: UnaryOp, x: &Tensor, nx: Numerics) -> Tensor {
    match op {
        UnaryOp::Exp => unary_with(x, nx, f32::exp),
        UnaryOp::Log { epsilon } => unary_with(x, nx, move |v| (v + epsilon).ln()),
        UnaryOp::Sqrt => unary_with(x, nx, f32::sqrt),
        UnaryOp::Rsqrt { epsilon } => unary_with(x, nx, move |v| 1.0 / (v + epsilon).sqrt()),
        UnaryOp::Tanh => unary_with(x, nx, f32::tanh),
        UnaryOp::Sigmoid => unary_with(x, nx, |v| 1.0 / (1.0 + (-v).exp())),
        UnaryOp::Relu => unary_with(x, nx, |v| if v < 0.0 { 0.0 } else { v }),
    }
}

/// The numpy broadcast of two shapes, or `None` when they do not broadcast.
pub(crate) fn broadcast_shapes(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let rank = a.len().max(b.len());
    let mut out = vec![0; rank];
    for (i, o) in out.iter_mut().enumerate() {
        let da = dim_from_right(a, rank - 1 - i);
        let db = dim_from_right(b, rank - 1 - i);
        *o = match (da, db) {
            (p, q) if p == q => p,
            (1, q) => q,
            (p, 1) => p,
            _ => return None,
        };
    }
    Some(out)
}

/// The `k`-th dimension counted from the right, 1 when the shape is shorter.
fn dim_from_right(shape: &[usize], k: usize) -> usize {
    if k < shape.len() {
        shape[shape.len() - 1 - k]
    } else {
        1
    }
}

/// Strides of `shape` read as broadcast to `out` (0 along broadcast dimensions).
pub(crate) fn broadcast_strides(shape: &[usize], out: &[usize]) -> Vec<usize> {
    let own = strides_of(shape);
    let lead = out.len() - shape.len();
    (0..out.len())
        .map(|i| {
            if i < lead || shape[i - lead] == 1 {
                0
            } else {
                own[i - lead]
            }
        })
        .collect()
}

/// Broadcasting binary kernel: fast paths for equal shapes and scalar operands.
fn binary_with<F>(
    op: BinaryOp,
    x: &Tensor,
    y: &Tensor,
    nx: Numerics,
    f: F,
) -> Result<Tensor, KernelError>
where
    F: Fn(f32, f32) -> f32 + Sync + Send + Copy,
{
    let shape = broadcast_shapes(&x.shape, &y.shape).ok_or_else(|| KernelError::Broadcast {
        op: op.name(),
        x: x.shape.clone(),
        y: y.shape.clone(),
    })?;
    let n: usize = shape.iter().product();
    let mut data = vec![0.0f32; n];
    let cpu = Cpu::active();
    if x.len() == n && y.len() == n {
        map_chunks(&mut data, nx, x.dtype, |start, out| {
            zip_with(cpu, out, &x.data[start..], &y.data[start..], f);
        });
    } else if y.len() == 1 && x.len() == n {
        let b = y.data[0];
        map_chunks(&mut data, nx, x.dtype, |start, out| {
            map(cpu, out, &x.data[start..], |a| f(a, b));
        });
    } else if x.len() == 1 && y.len() == n {
        let a = x.data[0];
        map_chunks(&mut data, nx, x.dtype, |start, out| {
            map(cpu, out, &y.data[start..], |b| f(a, b));
        });
    } else {
        broadcast_general(x, y, &shape, &mut data, f);
        nx.finish(x.dtype, &mut data);
    }
    Ok(Tensor {
        dtype: x.dtype,
        shape,
        data,
    })
}

/// General broadcasting: walks output rows (the last dimension) with per-operand strides.
fn broadcast_general<F>(x: &Tensor, y: &Tensor, shape: &[usize], out: &mut [f32], f: F)
where
    F: Fn(f32, f32) -> f32 + Sync + Send + Copy,
{
    if out.is_empty() {
        return;
    }
    let rank = shape.len();
    let sx = broadcast_strides(&x.shape, shape);
    let sy = broadcast_strides(&y.shape, shape);
    let row = shape[rank - 1];
    let (ix, iy) = (sx[rank - 1], sy[rank - 1]);
    let outer_shape = &shape[..rank - 1];
    let row_fn = |r: usize, out_row: &mut [f32]| {
        let (mut ox, mut oy, mut rem) = (0, 0, r);
        for d in (0..rank - 1).rev() {
            let i = rem % outer_shape[d];
            rem /= outer_shape[d];
            ox += i * sx[d];
            oy += i * sy[d];
        }
        let (xr, yr) = (&x.data[ox..], &y.data[oy..]);
        match (ix, iy) {
            (1, 1) => out_row
                .iter_mut()
                .zip(xr)
                .zip(yr)
                .for_each(|((o, &a), &b)| *o = f(a, b)),
            (1, 0) => out_row
                .iter_mut()
                .zip(xr)
                .for_each(|(o, &a)| *o = f(a, yr[0])),
            (0, 1) => out_row
                .iter_mut()
                .zip(yr)
                .for_each(|(o, &b)| *o = f(xr[0], b)),
            _ => {
                for (j, o) in out_row.iter_mut().enumerate() {
                    *o = f(xr[j * ix], yr[j * iy]);
                }
            }
        }
    };
    if out.len() >= PAR_THRESHOLD {
        out.par_chunks_mut(row)
            .enumerate()
            .for_each(|(r, o)| row_fn(r, o));
    } else {
        out.chunks_mut(row)
            .enumerate()
            .for_each(|(r, o)| row_fn(r, o));
    }
}

/// Unary kernel over a contiguous buffer.
fn unary_with<F>(x: &Tensor, nx: Numerics, f: F) -> Tensor
where
    F: Fn(f32) -> f32 + Sync + Send + Copy,
{
    let mut data = vec![0.0f32; x.len()];
    let cpu = Cpu::active();
    map_chunks(&mut data, nx, x.dtype, |start, out| {
        map(cpu, out, &x.data[start..], f);
    });
    Tensor {
        dtype: x.dtype,
        shape: x.shape.clone(),
        data,
    }
}

/// Fills `out` chunk by chunk with `fill(start_index, chunk)` and finishes each chunk with
/// the profile while it is still in cache; in parallel for large buffers.
fn map_chunks(
    out: &mut [f32],
    nx: Numerics,
    dtype: DType,
    fill: impl Fn(usize, &mut [f32]) + Sync + Send,
) {
    let run = |(i, c): (usize, &mut [f32])| {
        fill(i * PAR_CHUNK, c);
        nx.finish(dtype, c);
    };
    if out.len() >= PAR_THRESHOLD {
        out.par_chunks_mut(PAR_CHUNK).enumerate().for_each(run);
    } else {
        out.chunks_mut(PAR_CHUNK).enumerate().for_each(run);
    }
}
