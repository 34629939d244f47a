//! Data-movement kernels: reshape, transpose, slices, cast and identity.

use mil::DType;

use super::error::{norm_axis, KernelError};
use super::numerics::Numerics;
use super::tensor::Tensor;

/// The same values under a new shape; one dimension may be −1 (inferred).
pub fn reshape(x: &Tensor, shape: &[i64]) -> Result<Tensor, KernelError> {
    let bad = || KernelError::shape("reshape", format!("{:?} to {shape:?}", x.shape));
    let known: i64 = shape.iter().filter(|&&d| d != -1).product();
    let inferred = shape.iter().filter(|&&d| d == -1).count();
    if inferred > 1 || shape.iter().any(|&d| d < -1) {
        return Err(bad());
    }
    let len = x.len() as i64;
    let fill = match (inferred, known) {
        (0, k) if k == len => 0,
        (1, k) if k > 0 && len % k == 0 => len / k,
        _ => return Err(bad()),
    };
    let dims = shape
        .iter()
        .map(|&d| if d == -1 { fill as usize } else { d as usize })
        .collect();
    Ok(Tensor {
        dtype: x.dtype,
        shape: dims,
        data: x.data.clone(),
    })
}

/// Permutes dimensions: output dimension `i` is input dimension `perm[i]`.
pub fn transpose(x: &Tensor, perm: &[i64]) -> Result<Tensor, KernelError> {
    let rank = x.rank();
    if perm.len() != rank {
        return Err(KernelError::shape(
            "transpose",
            format!("perm {perm:?} for rank {rank}"),
        ));
    }
    let mut seen = vec![false; rank];
    let mut axes = Vec::with_capacity(rank);
    for &p in perm {
        let a = norm_axis("transpose", p, rank)?;
        if std::mem::replace(&mut seen[a], true) {
            return Err(KernelError::shape(
                "transpose",
                format!("perm {perm:?} repeats {p}"),
            ));
        }
        axes.push(a);
    }
    let strides = x.strides();
    let dims: Vec<Dim> = axes
        .iter()
        .map(|&a| Dim {
            start: 0,
            step: strides[a] as isize,
            count: x.shape[a],
        })
        .collect();
    Ok(gather(x, &dims, dims.iter().map(|d| d.count).collect()))
}

/// The operands of `slice_by_index` (coremltools semantics, Python slicing per axis).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SliceSpec {
    /// First index per axis (negative counts from the end).
    pub begin: Vec<i64>,
    /// One-past-last index per axis (negative counts from the end).
    pub end: Vec<i64>,
    /// Step per axis (default 1; negative walks backwards).
    pub stride: Option<Vec<i64>>,
    /// Axes whose `begin` is ignored (slice from the start).
    pub begin_mask: Option<Vec<bool>>,
    /// Axes whose `end` is ignored (slice to the end).
    pub end_mask: Option<Vec<bool>>,
    /// Axes taken at `begin` and removed from the result.
    pub squeeze_mask: Option<Vec<bool>>,
}

/// Python `slice(start, stop, step).indices(len)`, returning (start, count).
fn py_slice(start: Option<i64>, stop: Option<i64>, step: i64, len: i64) -> (i64, usize) {
    let clamp = |v: i64, lo: i64, hi: i64| {
        let v = if v < 0 { v + len } else { v };
        v.clamp(lo, hi)
    };
    let (s, e) = if step > 0 {
        (
            start.map_or(0, |v| clamp(v, 0, len)),
            stop.map_or(len, |v| clamp(v, 0, len)),
        )
    } else {
        (
            start.map_or(len - 1, |v| clamp(v, -1, len - 1)),
            stop.map_or(-1, |v| clamp(v, -1, len - 1)),
        )
    };
    let count = if step > 0 {
        (e - s + step - 1) / step
    } else {
        (s - e - step - 1) / -step
    };
    (s, count.max(0) as usize)
}

/// Strided slice with begin/end/squeeze masks.
pub fn slice_by_index(x: &Tensor, spec: &SliceSpec) -> Result<Tensor, KernelError> {
    let rank = x.rank();
    let mask =
        |m: &Option<Vec<bool>>, i: usize| m.as_ref().is_some_and(|v| v.get(i) == Some(&true));
    if spec.begin.len() != rank || spec.end.len() != rank {
        return Err(KernelError::shape(
            "slice_by_index",
            format!("begin/end for rank {rank}"),
        ));
    }
    let strides = x.strides();
    let (mut dims, mut shape) = (Vec::with_capacity(rank), Vec::with_capacity(rank));
    for i in 0..rank {
        let step = spec
            .stride
            .as_ref()
            .and_then(|s| s.get(i).copied())
            .unwrap_or(1);
        if step == 0 {
            return Err(KernelError::shape("slice_by_index", "stride 0"));
        }
        let len = x.shape[i] as i64;
        if mask(&spec.squeeze_mask, i) {
            let b = if spec.begin[i] < 0 {
                spec.begin[i] + len
            } else {
                spec.begin[i]
            };
            if !(0..len).contains(&b) {
                return Err(KernelError::shape(
                    "slice_by_index",
                    format!("squeezed index {} on axis {i}", spec.begin[i]),
                ));
            }
            dims.push(Dim {
                start: b as usize,
                step: 0,
                count: 1,
            });
            continue;
        }
        let b = (!mask(&spec.begin_mask, i)).then_some(spec.begin[i]);
        let e = (!mask(&spec.end_mask, i)).then_some(spec.end[i]);
        let (s, count) = py_slice(b, e, step, len);
        dims.push(Dim {
            start: s.max(0) as usize,
            step: step as isize,
            count,
        });
        shape.push(count);
    }
    let dims: Vec<Dim> = dims
        .into_iter()
        .enumerate()
        .map(|(i, d)| Dim {
            start: d.start * strides[i],
            step: d.step * strides[i] as isize,
            count: d.count,
        })
        .collect();
    Ok(gather(x, &dims, shape))
}

/// A contiguous block of `size` (−1: to the end) starting at `begin` on every axis.
pub fn slice_by_size(x: &Tensor, begin: &[i64], size: &[i64]) -> Result<Tensor, KernelError> {
    let rank = x.rank();
    if begin.len() != rank || size.len() != rank {
        return Err(KernelError::shape(
            "slice_by_size",
            format!("begin/size for rank {rank}"),
        ));
    }
    let strides = x.strides();
    let mut dims = Vec::with_capacity(rank);
    for i in 0..rank {
        let len = x.shape[i] as i64;
        let b = if begin[i] < 0 {
            begin[i] + len
        } else {
            begin[i]
        };
        let n = if size[i] == -1 { len - b } else { size[i] };
        if b < 0 || n < 0 || b + n > len {
            return Err(KernelError::shape(
                "slice_by_size",
                format!("begin {begin:?} size {size:?} outside {:?}", x.shape),
            ));
        }
        dims.push(Dim {
            start: b as usize * strides[i],
            step: strides[i] as isize,
            count: n as usize,
        });
    }
    let shape = dims.iter().map(|d| d.count).collect();
    Ok(gather(x, &dims, shape))
}

/// Converts to `dtype`: fp16 rounds (RNE), integers truncate toward zero like numpy's
/// `astype` and saturate at the type's range (NaN becomes 0), bool is `x != 0`.
pub fn cast(x: &Tensor, dtype: DType, nx: Numerics) -> Result<Tensor, KernelError> {
    let int_range = match dtype {
        DType::Int32 => Some((i32::MIN as f32, i32::MAX as f32)),
        DType::Int8 => Some((-128.0, 127.0)),
        DType::UInt8 => Some((0.0, 255.0)),
        DType::Fp16 | DType::Fp32 | DType::Bool => None,
        DType::String | DType::UInt64 => return Err(KernelError::DType { op: "cast", dtype }),
    };
    let mut data: Vec<f32> = match (dtype, int_range) {
        (DType::Bool, _) => x
            .data
            .iter()
            .map(|&v| f32::from(u8::from(v != 0.0)))
            .collect(),
        (_, Some((lo, hi))) => x
            .data
            .iter()
            .map(|&v| {
                if v.is_nan() {
                    0.0
                } else {
                    v.trunc().clamp(lo, hi) + 0.0
                }
            })
            .collect(),
        _ => x.data.clone(),
    };
    nx.finish(dtype, &mut data);
    Ok(Tensor {
        dtype,
        shape: x.shape.clone(),
        data,
    })
}

/// The input, unchanged.
pub fn identity(x: &Tensor) -> Tensor {
    x.clone()
}

/// One output axis of a gather: element offsets `start + i·step`, `i < count`.
#[derive(Clone, Copy, Debug)]
struct Dim {
    start: usize,
    step: isize,
    count: usize,
}

/// Copies the elements addressed by `dims` (one per input axis, offsets in elements) into a
/// new tensor of `shape` (the dims' counts, minus squeezed axes).
fn gather(x: &Tensor, dims: &[Dim], shape: Vec<usize>) -> Tensor {
    let n: usize = dims.iter().map(|d| d.count).product();
    let mut data = Vec::with_capacity(n);
    let base: usize = dims.iter().map(|d| d.start).sum();
    if n > 0 {
        let mut idx = vec![0usize; dims.len()];
        let mut off = base as isize;
        for _ in 0..n {
            data.push(x.data[off as usize]);
            for d in (0..dims.len()).rev() {
                idx[d] += 1;
                off += dims[d].step;
                if idx[d] < dims[d].count {
                    break;
                }
                off -= dims[d].step * dims[d].count as isize;
                idx[d] = 0;
            }
        }
    }
    Tensor {
        dtype: x.dtype,
        shape,
        data,
    }
}
