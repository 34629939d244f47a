//! Constant folding: evaluates ops whose operands are all constants, at the result's precision.

use crate::graph::{Binary, ConstData, Graph, Node, Op, Reduce, Unary};
use crate::infer::broadcast_shapes;
use half::f16;
use mil::DType;

/// Largest result (elements) or matmul work (multiply-adds) folded; bigger stays on the device.
const MAX_FOLD: usize = 1 << 22;

/// Replaces each op whose operands are all constants with its value, rounded to its dtype.
/// A result derived from a named weight keeps the weight's name (it stays a blob).
pub fn fold_constants(g: &Graph) -> Graph {
    let mut g = g.clone();
    for id in g.ids().collect::<Vec<_>>() {
        let n = g.node(id);
        if n.inputs.is_empty() || n.ty.numel() > MAX_FOLD {
            continue;
        }
        let Some(operands) = n
            .inputs
            .iter()
            .map(|i| g.const_data(*i))
            .collect::<Option<Vec<_>>>()
        else {
            continue;
        };
        let Some(values) = evaluate(n, &operands) else {
            continue;
        };
        let weight = n.inputs.iter().find_map(|i| match &g.node(*i).op {
            Op::Const { weight, .. } => weight.clone(),
            _ => None,
        });
        let data = ConstData {
            dtype: n.ty.dtype,
            shape: n.ty.shape.clone(),
            values: round_to(n.ty.dtype, values),
        };
        let node = &mut g.nodes[id.index()];
        node.op = Op::Const { data, weight };
        node.inputs.clear();
    }
    super::eliminate_dead_code(&g)
}

/// Rounds values to what `dtype` can hold.
fn round_to(dtype: DType, values: Vec<f32>) -> Vec<f32> {
    match dtype {
        DType::Fp16 => values
            .into_iter()
            .map(|v| f16::from_f32(v).to_f32())
            .collect(),
        DType::Int32 | DType::Int8 | DType::UInt8 => values.into_iter().map(f32::trunc).collect(),
        DType::Bool => values
            .into_iter()
            .map(|v| f32::from(u8::from(v != 0.0)))
            .collect(),
        _ => values,
    }
}

/// The value of `n` on constant operands, or `None` when the op is not folded.
fn evaluate(n: &Node, ops: &[&ConstData]) -> Option<Vec<f32>> {
    let x = ops[0];
    match &n.op {
        Op::Unary(u) => Some(x.values.iter().map(|&v| unary(*u, v)).collect()),
        Op::Binary(b) => Some(binary(*b, x, ops[1], &n.ty.shape)),
        Op::Reshape { .. } | Op::Cast { .. } => Some(x.values.clone()),
        Op::Transpose { perm } => Some(transpose(x, perm)),
        Op::Slice { begin, end } => Some(slice(x, begin, end)),
        Op::Reduce {
            kind,
            axes,
            keep_dims: _,
        } => Some(reduce(*kind, x, axes)),
        Op::Matmul {
            transpose_x,
            transpose_y,
        } => matmul(x, ops[1], *transpose_x, *transpose_y, &n.ty.shape),
        Op::Softmax { .. } | Op::Conv(_) | Op::Input { .. } | Op::Const { .. } => None,
    }
}

fn unary(u: Unary, v: f32) -> f32 {
    match u {
        Unary::Exp => v.exp(),
        Unary::Log => v.ln(),
        Unary::Sqrt => v.sqrt(),
        Unary::Rsqrt => 1.0 / v.sqrt(),
        Unary::Tanh => v.tanh(),
        Unary::Sigmoid => 1.0 / (1.0 + (-v).exp()),
        Unary::Relu => v.max(0.0),
        Unary::Identity => v,
    }
}

/// Row-major strides of `shape`.
fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// The flat index into `shape` (right-aligned, broadcast) of output coordinate `coord`.
fn broadcast_index(coord: &[usize], shape: &[usize]) -> usize {
    let offset = coord.len() - shape.len();
    let st = strides(shape);
    shape
        .iter()
        .enumerate()
        .map(|(i, &d)| if d == 1 { 0 } else { coord[offset + i] * st[i] })
        .sum()
}

/// Calls `f` with every coordinate of `shape`, in row-major order.
fn for_each_coord(shape: &[usize], mut f: impl FnMut(&[usize])) {
    let numel: usize = shape.iter().product();
    let mut coord = vec![0; shape.len()];
    for _ in 0..numel {
        f(&coord);
        for axis in (0..shape.len()).rev() {
            coord[axis] += 1;
            if coord[axis] < shape[axis] {
                break;
            }
            coord[axis] = 0;
        }
    }
}

fn binary(b: Binary, x: &ConstData, y: &ConstData, out_shape: &[usize]) -> Vec<f32> {
    let f = |a: f32, c: f32| match b {
        Binary::Add => a + c,
        Binary::Sub => a - c,
        Binary::Mul => a * c,
        Binary::Div => a / c,
        Binary::Pow => a.powf(c),
    };
    let mut out = Vec::with_capacity(out_shape.iter().product());
    for_each_coord(out_shape, |c| {
        out.push(f(
            x.values[broadcast_index(c, &x.shape)],
            y.values[broadcast_index(c, &y.shape)],
        ))
    });
    out
}

fn transpose(x: &ConstData, perm: &[usize]) -> Vec<f32> {
    let out_shape: Vec<usize> = perm.iter().map(|&p| x.shape[p]).collect();
    let st = strides(&x.shape);
    let mut out = Vec::with_capacity(x.values.len());
    for_each_coord(&out_shape, |c| {
        let src: usize = c.iter().zip(perm).map(|(&ci, &p)| ci * st[p]).sum();
        out.push(x.values[src]);
    });
    out
}

fn slice(x: &ConstData, begin: &[usize], end: &[usize]) -> Vec<f32> {
    let out_shape: Vec<usize> = begin.iter().zip(end).map(|(b, e)| e - b).collect();
    let st = strides(&x.shape);
    let mut out = Vec::new();
    for_each_coord(&out_shape, |c| {
        let src: usize = c
            .iter()
            .zip(begin)
            .zip(&st)
            .map(|((ci, b), s)| (ci + b) * s)
            .sum();
        out.push(x.values[src]);
    });
    out
}

fn reduce(kind: Reduce, x: &ConstData, axes: &[i64]) -> Vec<f32> {
    let rank = x.shape.len();
    let reduced: Vec<bool> = (0..rank)
        .map(|a| {
            axes.is_empty()
                || axes
                    .iter()
                    .any(|&r| (if r < 0 { r + rank as i64 } else { r }) as usize == a)
        })
        .collect();
    let kept: Vec<usize> = x
        .shape
        .iter()
        .zip(&reduced)
        .map(|(&d, &r)| if r { 1 } else { d })
        .collect();
    let count: usize = x
        .shape
        .iter()
        .zip(&reduced)
        .filter(|(_, &r)| r)
        .map(|(d, _)| d)
        .product();
    let init = if kind == Reduce::Max {
        f32::NEG_INFINITY
    } else {
        0.0
    };
    let mut acc = vec![init; kept.iter().product()];
    let kept_strides = strides(&kept);
    let mut i = 0;
    for_each_coord(&x.shape, |c| {
        let dst: usize = c
            .iter()
            .zip(&reduced)
            .zip(&kept_strides)
            .map(|((ci, r), s)| if *r { 0 } else { ci * s })
            .sum();
        let v = x.values[i];
        acc[dst] = if kind == Reduce::Max {
            acc[dst].max(v)
        } else {
            acc[dst] + v
        };
        i += 1;
    });
    if kind == Reduce::Mean {
        acc.iter_mut().for_each(|a| *a /= count as f32);
    }
    acc
}

fn matmul(
    x: &ConstData,
    y: &ConstData,
    tx: bool,
    ty: bool,
    out_shape: &[usize],
) -> Option<Vec<f32>> {
    let (xr, yr, or) = (x.shape.len(), y.shape.len(), out_shape.len());
    let (m, n) = (out_shape[or - 2], out_shape[or - 1]);
    let k = if tx { x.shape[xr - 2] } else { x.shape[xr - 1] };
    if out_shape.iter().product::<usize>().saturating_mul(k) > MAX_FOLD {
        return None;
    }
    let batch = &out_shape[..or - 2];
    broadcast_shapes("matmul", &x.shape[..xr - 2], &y.shape[..yr - 2]).ok()?;
    let (xs, ys) = (strides(&x.shape), strides(&y.shape));
    let mut out = Vec::with_capacity(out_shape.iter().product());
    for_each_coord(batch, |b| {
        let xb = batch_offset(b, &x.shape[..xr - 2], &xs);
        let yb = batch_offset(b, &y.shape[..yr - 2], &ys);
        for i in 0..m {
            for j in 0..n {
                let mut acc = 0.0f32;
                for p in 0..k {
                    let xv = if tx { (p, i) } else { (i, p) };
                    let yv = if ty { (j, p) } else { (p, j) };
                    acc += x.values[xb + xv.0 * xs[xr - 2] + xv.1]
                        * y.values[yb + yv.0 * ys[yr - 2] + yv.1];
                }
                out.push(acc);
            }
        }
    });
    Some(out)
}

/// Offset of a (broadcast) batch coordinate into an operand with batch dims `dims`.
fn batch_offset(coord: &[usize], dims: &[usize], st: &[usize]) -> usize {
    let offset = coord.len() - dims.len();
    dims.iter()
        .enumerate()
        .map(|(i, &d)| if d == 1 { 0 } else { coord[offset + i] * st[i] })
        .sum()
}
