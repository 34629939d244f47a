//! Shape and dtype inference for the graph IR's primitive ops.

use crate::error::{shape_err, Result};
use crate::graph::{Binary, Op, Reduce};
use mil::TensorType;

/// The result type of `op` applied to operands of types `inputs`.
pub fn infer(op: &Op, inputs: &[&TensorType]) -> Result<TensorType> {
    let name = op.name();
    let arity = match op {
        Op::Input { .. } | Op::Const { .. } => 0,
        Op::Binary(_) | Op::Matmul { .. } => 2,
        Op::Conv(_) => {
            if inputs.len() == 3 {
                3
            } else {
                2
            }
        }
        _ => 1,
    };
    if inputs.len() != arity {
        return shape_err(
            name,
            format!("expected {arity} operands, got {}", inputs.len()),
        );
    }
    match op {
        Op::Input { .. } | Op::Const { .. } => shape_err(name, "sources are typed when created"),
        Op::Unary(_) => {
            float_only(name, inputs[0])?;
            Ok(inputs[0].clone())
        }
        Op::Binary(b) => binary(*b, inputs[0], inputs[1]),
        Op::Softmax { axis } => {
            float_only(name, inputs[0])?;
            normalize_axis(name, *axis, inputs[0].shape.len())?;
            Ok(inputs[0].clone())
        }
        Op::Reduce {
            kind,
            axes,
            keep_dims,
        } => reduce(*kind, inputs[0], axes, *keep_dims),
        Op::Matmul {
            transpose_x,
            transpose_y,
        } => matmul(inputs[0], inputs[1], *transpose_x, *transpose_y),
        Op::Conv(p) => conv(p, inputs),
        Op::Reshape { shape } => {
            if shape.iter().product::<usize>() != inputs[0].numel() {
                return shape_err(
                    name,
                    format!(
                        "cannot reshape {:?} to {:?}: element counts differ",
                        inputs[0].shape, shape
                    ),
                );
            }
            Ok(TensorType::new(inputs[0].dtype, shape.clone()))
        }
        Op::Transpose { perm } => {
            let rank = inputs[0].shape.len();
            let mut seen = vec![false; rank];
            for &p in perm {
                if p >= rank || std::mem::replace(&mut seen[p], true) {
                    return shape_err(
                        name,
                        format!("{perm:?} is not a permutation of {rank} axes"),
                    );
                }
            }
            if perm.len() != rank {
                return shape_err(
                    name,
                    format!("{perm:?} is not a permutation of {rank} axes"),
                );
            }
            let shape = perm.iter().map(|&p| inputs[0].shape[p]).collect::<Vec<_>>();
            Ok(TensorType::new(inputs[0].dtype, shape))
        }
        Op::Cast { dtype } => Ok(TensorType::new(*dtype, inputs[0].shape.clone())),
        Op::Slice { begin, end } => {
            let shape = &inputs[0].shape;
            if begin.len() != shape.len() || end.len() != shape.len() {
                return shape_err(name, format!("begin/end need {} entries", shape.len()));
            }
            let mut out = Vec::with_capacity(shape.len());
            for ((&b, &e), &d) in begin.iter().zip(end).zip(shape) {
                if b >= e || e > d {
                    return shape_err(name, format!("range {b}..{e} is empty or outside 0..{d}"));
                }
                out.push(e - b);
            }
            Ok(TensorType::new(inputs[0].dtype, out))
        }
    }
}

fn float_only(op: &str, t: &TensorType) -> Result<()> {
    if t.dtype.is_float() {
        Ok(())
    } else {
        shape_err(op, format!("expected a float tensor, found {}", t.dtype))
    }
}

/// Resolves a possibly negative axis against `rank`.
pub fn normalize_axis(op: &str, axis: i64, rank: usize) -> Result<usize> {
    let r = rank as i64;
    if axis < -r || axis >= r {
        return shape_err(op, format!("axis {axis} is out of range for rank {rank}"));
    }
    Ok(if axis < 0 { axis + r } else { axis } as usize)
}

/// The numpy broadcast of two shapes.
pub fn broadcast_shapes(op: &str, a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let rank = a.len().max(b.len());
    let mut out = vec![0; rank];
    for i in 0..rank {
        let da = if i < rank - a.len() {
            1
        } else {
            a[i - (rank - a.len())]
        };
        let db = if i < rank - b.len() {
            1
        } else {
            b[i - (rank - b.len())]
        };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return shape_err(op, format!("shapes {a:?} and {b:?} do not broadcast")),
        };
    }
    Ok(out)
}

fn binary(b: Binary, x: &TensorType, y: &TensorType) -> Result<TensorType> {
    let name = b.mil_name();
    if x.dtype != y.dtype {
        return shape_err(
            name,
            format!("operand dtypes differ: {} and {}", x.dtype, y.dtype),
        );
    }
    Ok(TensorType::new(
        x.dtype,
        broadcast_shapes(name, &x.shape, &y.shape)?,
    ))
}

fn reduce(kind: Reduce, x: &TensorType, axes: &[i64], keep_dims: bool) -> Result<TensorType> {
    let name = kind.mil_name();
    float_only(name, x)?;
    let rank = x.shape.len();
    let mut reduced = vec![axes.is_empty(); rank];
    for &a in axes {
        let a = normalize_axis(name, a, rank)?;
        if std::mem::replace(&mut reduced[a], true) {
            return shape_err(name, format!("axis {a} is listed twice"));
        }
    }
    let shape: Vec<usize> = x
        .shape
        .iter()
        .zip(&reduced)
        .filter_map(|(&d, &r)| match (r, keep_dims) {
            (false, _) => Some(d),
            (true, true) => Some(1),
            (true, false) => None,
        })
        .collect();
    Ok(TensorType::new(x.dtype, shape))
}

fn matmul(x: &TensorType, y: &TensorType, tx: bool, ty: bool) -> Result<TensorType> {
    if x.dtype != y.dtype {
        return shape_err(
            "matmul",
            format!("operand dtypes differ: {} and {}", x.dtype, y.dtype),
        );
    }
    float_only("matmul", x)?;
    if x.shape.len() < 2 || y.shape.len() < 2 {
        return shape_err("matmul", "operands need rank 2 or more");
    }
    let (xr, yr) = (x.shape.len(), y.shape.len());
    let (m, kx) = if tx {
        (x.shape[xr - 1], x.shape[xr - 2])
    } else {
        (x.shape[xr - 2], x.shape[xr - 1])
    };
    let (ky, n) = if ty {
        (y.shape[yr - 1], y.shape[yr - 2])
    } else {
        (y.shape[yr - 2], y.shape[yr - 1])
    };
    if kx != ky {
        return shape_err(
            "matmul",
            format!(
                "inner dimensions differ: {:?} × {:?} (transpose {tx}, {ty})",
                x.shape, y.shape
            ),
        );
    }
    let mut shape = broadcast_shapes("matmul", &x.shape[..xr - 2], &y.shape[..yr - 2])?;
    shape.extend([m, n]);
    Ok(TensorType::new(x.dtype, shape))
}

fn conv(p: &crate::graph::ConvParams, inputs: &[&TensorType]) -> Result<TensorType> {
    let (x, w) = (inputs[0], inputs[1]);
    if x.shape.len() != 4 || w.shape.len() != 4 {
        return shape_err(
            "conv",
            format!("x {:?} and weight {:?} must be rank 4", x.shape, w.shape),
        );
    }
    if x.dtype != w.dtype {
        return shape_err(
            "conv",
            format!("x is {} but weight is {}", x.dtype, w.dtype),
        );
    }
    let (n, cin, h, wd) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3]);
    let (cout, cin_g, kh, kw) = (w.shape[0], w.shape[1], w.shape[2], w.shape[3]);
    if p.groups == 0 || cin % p.groups != 0 || cout % p.groups != 0 || cin / p.groups != cin_g {
        return shape_err(
            "conv",
            format!(
                "weight {:?} does not fit {cin} input channels in {} groups",
                w.shape, p.groups
            ),
        );
    }
    if let Some(b) = inputs.get(2) {
        if b.shape != [cout] || b.dtype != x.dtype {
            return shape_err(
                "conv",
                format!("bias must be [{cout}] {}, found {:?}", x.dtype, b.shape),
            );
        }
    }
    let out = |size: usize, k: usize, s: usize, d: usize, pads: usize| -> Result<usize> {
        let span = d * (k - 1) + 1;
        if size + pads < span || s == 0 {
            return shape_err(
                "conv",
                format!("kernel span {span} exceeds padded input {}", size + pads),
            );
        }
        Ok((size + pads - span) / s + 1)
    };
    let oh = out(h, kh, p.strides[0], p.dilations[0], p.pads[0] + p.pads[1])?;
    let ow = out(wd, kw, p.strides[1], p.dilations[1], p.pads[2] + p.pads[3])?;
    Ok(TensorType::new(x.dtype, vec![n, cout, oh, ow]))
}
