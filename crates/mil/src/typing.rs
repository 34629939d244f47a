//! Type rules of the op table: result types from operand types and constant values.
//!
//! Each rule follows the coremltools MIL op definition of the iOS18 opset, restricted to static
//! shapes; where Orion is stricter or chooses among coremltools' behaviours, the rule's doc
//! comment says so, and the emulator implements the same choice. Error messages name the
//! operand and say what was expected and what was found.

use crate::ast::{DType, Literal, Scalar, TensorData, ValueType};
use crate::ops::Operands;

/// A tensor type, or a scalar type when `shape` is empty (coremltools returns scalars then).
fn tensor_or_scalar(dtype: DType, shape: Vec<usize>) -> ValueType {
    if shape.is_empty() {
        ValueType::Scalar(dtype)
    } else {
        ValueType::tensor(dtype, shape)
    }
}

/// The type of a required operand.
fn ty<'o>(ops: &'o Operands<'_>, name: &str) -> Result<&'o ValueType, String> {
    ops.ty(name)
        .ok_or_else(|| format!("{name}: required operand is missing"))
}

/// The type of a required operand that must be a tensor (rank ≥ 1).
fn tensor<'o>(ops: &'o Operands<'_>, name: &str) -> Result<&'o ValueType, String> {
    let t = ty(ops, name)?;
    match t {
        ValueType::Tensor(tt) if !tt.shape.is_empty() => Ok(t),
        _ => Err(format!("{name}: expected a tensor, found {t}")),
    }
}

/// Fails unless `t` has a dtype among `allowed`.
fn expect_dtype(name: &str, t: &ValueType, allowed: &[DType]) -> Result<DType, String> {
    let d = t.dtype();
    if allowed.contains(&d) {
        Ok(d)
    } else {
        let names: Vec<&str> = allowed.iter().map(|d| d.name()).collect();
        Err(format!(
            "{name}: expected {}, found {d}",
            names.join(" or ")
        ))
    }
}

/// The constant value of an optional operand; an error if present but not a known constant.
fn const_lit<'a>(ops: &Operands<'a>, name: &str) -> Result<Option<&'a Literal>, String> {
    match ops.get(name) {
        None => Ok(None),
        Some(info) => info
            .value
            .map(Some)
            .ok_or_else(|| format!("{name}: expected a constant, found a runtime value")),
    }
}

/// The integers of an optional int32 constant (scalar or inline tensor).
fn const_ints(ops: &Operands<'_>, name: &str) -> Result<Option<Vec<i64>>, String> {
    let Some(lit) = const_lit(ops, name)? else {
        return Ok(None);
    };
    expect_dtype(name, &lit.value_type(), &[DType::Int32])?;
    lit.as_i64s()
        .map(Some)
        .ok_or_else(|| format!("{name}: expected inline int32 values, found a blob reference"))
}

/// An optional int32 constant that must be rank 1.
fn const_int_list(ops: &Operands<'_>, name: &str) -> Result<Option<Vec<i64>>, String> {
    if let Some(lit) = const_lit(ops, name)? {
        if lit.value_type().shape().len() != 1 {
            return Err(format!(
                "{name}: expected a rank-1 int32 tensor, found {}",
                lit.value_type()
            ));
        }
    }
    const_ints(ops, name)
}

/// An optional int32 list constant that must hold exactly `len` values.
fn const_int_list_of(
    ops: &Operands<'_>,
    name: &str,
    len: usize,
) -> Result<Option<Vec<i64>>, String> {
    match const_int_list(ops, name)? {
        Some(v) if v.len() != len => {
            Err(format!("{name}: expected {len} values, found {}", v.len()))
        }
        other => Ok(other),
    }
}

/// An optional int32 scalar constant (a rank-0 tensor is accepted too).
fn const_int_scalar(ops: &Operands<'_>, name: &str) -> Result<Option<i64>, String> {
    if let Some(lit) = const_lit(ops, name)? {
        if !lit.value_type().shape().is_empty() {
            return Err(format!(
                "{name}: expected an int32 scalar, found {}",
                lit.value_type()
            ));
        }
    }
    Ok(const_ints(ops, name)?.and_then(|v| v.first().copied()))
}

/// The values of an optional bool constant: a scalar or an inline bool tensor.
fn const_bools(ops: &Operands<'_>, name: &str) -> Result<Option<Vec<bool>>, String> {
    let Some(lit) = const_lit(ops, name)? else {
        return Ok(None);
    };
    match lit {
        Literal::Scalar(Scalar::Bool(b)) => Ok(Some(vec![*b])),
        Literal::Tensor {
            data: TensorData::Bool(v),
            ..
        } => Ok(Some(v.clone())),
        _ => Err(format!("{name}: expected bool, found {}", lit.value_type())),
    }
}

/// An optional bool scalar constant, `default` when absent.
fn const_bool(ops: &Operands<'_>, name: &str, default: bool) -> Result<bool, String> {
    match const_bools(ops, name)? {
        None => Ok(default),
        Some(v) if v.len() == 1 => Ok(v[0]),
        Some(v) => Err(format!(
            "{name}: expected one bool, found {} values",
            v.len()
        )),
    }
}

/// An optional string constant (`string("…")` or the older `tensor<string, []>("…")`).
fn const_str<'a>(ops: &Operands<'a>, name: &str) -> Result<Option<&'a str>, String> {
    let Some(lit) = const_lit(ops, name)? else {
        return Ok(None);
    };
    match lit {
        Literal::Scalar(Scalar::String(s)) => Ok(Some(s)),
        Literal::Tensor {
            data: TensorData::String(v),
            ..
        } if v.len() == 1 => Ok(Some(&v[0])),
        _ => Err(format!(
            "{name}: expected string, found {}",
            lit.value_type()
        )),
    }
}

/// Normalizes a possibly negative axis into `0..rank`.
fn axis_index(name: &str, axis: i64, rank: usize) -> Result<usize, String> {
    let r = rank as i64;
    if (-r..r).contains(&axis) {
        Ok(if axis < 0 { axis + r } else { axis } as usize)
    } else {
        Err(format!(
            "{name}: axis {axis} is out of range for rank {rank}"
        ))
    }
}

/// The product of `dims`, `None` on overflow.
fn checked_numel(dims: impl IntoIterator<Item = usize>) -> Option<usize> {
    dims.into_iter().try_fold(1usize, |n, d| n.checked_mul(d))
}

/// Numpy broadcasting of two shapes (right-aligned; equal dims or one of them 1).
pub fn broadcast_shapes(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let rank = a.len().max(b.len());
    let dim = |s: &[usize], i: usize| {
        if i < rank - s.len() {
            1
        } else {
            s[i - (rank - s.len())]
        }
    };
    (0..rank)
        .map(|i| match (dim(a, i), dim(b, i)) {
            (x, y) if x == y => Some(x),
            (1, y) => Some(y),
            (x, 1) => Some(x),
            _ => None,
        })
        .collect()
}

/// Rejected ops (`concat`, `gelu`, `silu`): the verifier reports their catalog rule instead.
pub fn unsupported(_ops: &Operands<'_>) -> Result<ValueType, String> {
    Err("the device does not support this op".to_string())
}

/// `const` has no operands: the verifier takes its type from the `val` attribute.
pub fn constant(_ops: &Operands<'_>) -> Result<ValueType, String> {
    Err("const has no type rule: its type is the type of its `val` attribute".to_string())
}

/// `add sub mul real_div pow`: numpy broadcasting of `x` and `y`, which must share a dtype.
///
/// Two scalars give a scalar; otherwise the result is a tensor of the broadcast shape.
pub fn broadcast_binary(ops: &Operands<'_>) -> Result<ValueType, String> {
    let (x, y) = (ty(ops, "x")?, ty(ops, "y")?);
    let d = expect_dtype("y", y, &[x.dtype()])?;
    match (x, y) {
        (ValueType::Scalar(_), ValueType::Scalar(_)) => Ok(ValueType::Scalar(d)),
        _ => broadcast_shapes(x.shape(), y.shape())
            .map(|s| ValueType::tensor(d, s))
            .ok_or_else(|| {
                format!(
                    "y: shape {:?} does not broadcast with x's shape {:?}",
                    y.shape(),
                    x.shape()
                )
            }),
    }
}

/// `exp log sqrt rsqrt tanh sigmoid relu`: an fp16/fp32 `x` (tensor or scalar), same type out.
///
/// `epsilon` (log, rsqrt), when given, must be a scalar of `x`'s dtype.
pub fn float_unary(ops: &Operands<'_>) -> Result<ValueType, String> {
    let x = ty(ops, "x")?;
    let d = expect_dtype("x", x, &[DType::Fp16, DType::Fp32])?;
    if let Some(eps) = const_lit(ops, "epsilon")? {
        let t = eps.value_type();
        if t != ValueType::Scalar(d) {
            return Err(format!("epsilon: expected {d}, found {t}"));
        }
    }
    Ok(x.clone())
}

/// `softmax`: a float tensor `x` and an int32 scalar `axis` (negative counts from the end).
pub fn softmax(ops: &Operands<'_>) -> Result<ValueType, String> {
    let x = tensor(ops, "x")?;
    expect_dtype("x", x, &[DType::Fp16, DType::Fp32])?;
    let axis = const_int_scalar(ops, "axis")?.ok_or("axis: required operand is missing")?;
    axis_index("axis", axis, x.shape().len())?;
    Ok(x.clone())
}

/// `reduce_sum reduce_mean reduce_max`: reduce `x` (fp16/fp32/int32 tensor) over `axes`.
///
/// `axes` defaults to every axis; negative axes count from the end; repeated or out-of-range
/// axes are errors. Reducing every axis without `keep_dims` gives a scalar, as in coremltools.
pub fn reduce(ops: &Operands<'_>) -> Result<ValueType, String> {
    let x = tensor(ops, "x")?;
    let d = expect_dtype("x", x, &[DType::Fp16, DType::Fp32, DType::Int32])?;
    let rank = x.shape().len();
    let keep = const_bool(ops, "keep_dims", false)?;
    let axes = match const_int_list(ops, "axes")? {
        None => (0..rank).collect(),
        Some(list) => {
            let mut axes = Vec::new();
            for a in list {
                let i = axis_index("axes", a, rank)?;
                if axes.contains(&i) {
                    return Err(format!("axes: axis {a} is repeated"));
                }
                axes.push(i);
            }
            axes
        }
    };
    let shape: Vec<usize> = x
        .shape()
        .iter()
        .enumerate()
        .filter_map(|(i, &n)| match (axes.contains(&i), keep) {
            (false, _) => Some(n),
            (true, true) => Some(1),
            (true, false) => None,
        })
        .collect();
    Ok(tensor_or_scalar(d, shape))
}

/// `matmul`: numpy matmul of `x` and `y` after the optional last-two-axes transposes.
///
/// Batch axes broadcast. A rank-1 `x` is promoted to `[1, K]` and a rank-1 `y` to `[K, 1]`, the
/// inserted axis being removed from the result; `transpose_x` on a rank-1 `x` is an error (as in
/// coremltools), `transpose_y` on a rank-1 `y` has no effect. Two rank-1 operands are an error.
pub fn matmul(ops: &Operands<'_>) -> Result<ValueType, String> {
    let (x, y) = (tensor(ops, "x")?, tensor(ops, "y")?);
    let d = expect_dtype("x", x, &[DType::Fp16, DType::Fp32])?;
    expect_dtype("y", y, &[d])?;
    let (tx, ty_) = (
        const_bool(ops, "transpose_x", false)?,
        const_bool(ops, "transpose_y", false)?,
    );
    let (mut xs, mut ys) = (x.shape().to_vec(), y.shape().to_vec());
    let (x1, y1) = (xs.len() == 1, ys.len() == 1);
    if x1 && y1 {
        return Err(
            "x, y: at least one operand must have rank 2 or more, found two rank-1 tensors"
                .to_string(),
        );
    }
    if x1 && tx {
        return Err("transpose_x: x has rank 1, transpose_x must be false".to_string());
    }
    if x1 {
        xs.insert(0, 1);
    } else if tx {
        let n = xs.len();
        xs.swap(n - 1, n - 2);
    }
    if y1 {
        ys.push(1);
    } else if ty_ {
        let n = ys.len();
        ys.swap(n - 1, n - 2);
    }
    let (m, k) = (xs[xs.len() - 2], xs[xs.len() - 1]);
    let (k2, n) = (ys[ys.len() - 2], ys[ys.len() - 1]);
    if k != k2 {
        return Err(format!(
            "y: inner dimension {k2} does not match x's {k} (x {:?}, y {:?})",
            x.shape(),
            y.shape()
        ));
    }
    let mut shape =
        broadcast_shapes(&xs[..xs.len() - 2], &ys[..ys.len() - 2]).ok_or_else(|| {
            format!(
                "y: batch axes of {:?} do not broadcast with x's {:?}",
                y.shape(),
                x.shape()
            )
        })?;
    if !x1 {
        shape.push(m);
    }
    if !y1 {
        shape.push(n);
    }
    Ok(ValueType::tensor(d, shape))
}

/// `conv`: x `[N, Cin, H, W]` (or `[N, Cin, W]`), weight `[Cout, Cin/groups, kH, kW]`.
///
/// `strides`/`dilations` hold one value per spatial axis (default 1); `pad` holds two per axis
/// (`[top, bottom, left, right]`), is only read when `pad_type` is `custom` (as in coremltools)
/// and defaults to zeros; `pad_type` defaults to `valid`; `same` gives `ceil(in / stride)`.
/// Otherwise `out = (in + pad_before + pad_after - ((k - 1) * dilation + 1)) / stride + 1`.
/// A `bias` of shape `[Cout]` is typed here; the verifier rejects it (C16).
pub fn conv(ops: &Operands<'_>) -> Result<ValueType, String> {
    let (x, w) = (tensor(ops, "x")?, tensor(ops, "weight")?);
    let d = expect_dtype("x", x, &[DType::Fp16, DType::Fp32])?;
    expect_dtype("weight", w, &[d])?;
    let (xs, ws) = (x.shape(), w.shape());
    if xs.len() != 3 && xs.len() != 4 {
        return Err(format!("x: expected rank 3 or 4, found rank {}", xs.len()));
    }
    if ws.len() != xs.len() {
        return Err(format!(
            "weight: expected rank {} like x, found rank {}",
            xs.len(),
            ws.len()
        ));
    }
    let groups = const_int_scalar(ops, "groups")?.unwrap_or(1);
    let (cin, cout) = (xs[1], ws[0]);
    let g = usize::try_from(groups)
        .ok()
        .filter(|&g| g >= 1 && cin.is_multiple_of(g) && cout.is_multiple_of(g))
        .ok_or_else(|| {
            format!(
                "groups: {groups} must be positive and divide input channels {cin} and output channels {cout}"
            )
        })?;
    if ws[1] != cin / g {
        return Err(format!(
            "weight: expected {} input channels per group (x has {cin}, groups {g}), found {}",
            cin / g,
            ws[1]
        ));
    }
    if let Some(b) = ops.ty("bias") {
        if *b != ValueType::tensor(d, vec![cout]) {
            return Err(format!("bias: expected tensor<{d}, [{cout}]>, found {b}"));
        }
    }
    let mut shape = vec![xs[0], cout];
    shape.extend(conv_spatial(ops, &xs[2..], &ws[2..])?);
    Ok(ValueType::tensor(d, shape))
}

/// The spatial output sizes of a conv from its spatial input sizes and kernel sizes.
fn conv_spatial(
    ops: &Operands<'_>,
    input: &[usize],
    kernel: &[usize],
) -> Result<Vec<usize>, String> {
    let spatial = input.len();
    let positive = |name: &str, v: Option<Vec<i64>>| -> Result<Vec<usize>, String> {
        let v = v.unwrap_or_else(|| vec![1; spatial]);
        if v.iter().any(|&s| s < 1) {
            return Err(format!("{name}: expected positive values, found {v:?}"));
        }
        Ok(v.into_iter().map(|s| s as usize).collect())
    };
    let strides = positive("strides", const_int_list_of(ops, "strides", spatial)?)?;
    let dilations = positive("dilations", const_int_list_of(ops, "dilations", spatial)?)?;
    let pad_type = const_str(ops, "pad_type")?.unwrap_or("valid");
    if !["valid", "same", "custom"].contains(&pad_type) {
        return Err(format!(
            "pad_type: expected \"valid\", \"same\" or \"custom\", found \"{pad_type}\""
        ));
    }
    let pad = const_int_list_of(ops, "pad", 2 * spatial)?.unwrap_or_else(|| vec![0; 2 * spatial]);
    if pad.iter().any(|&p| p < 0) {
        return Err(format!("pad: expected non-negative values, found {pad:?}"));
    }
    if kernel.contains(&0) {
        return Err(format!(
            "weight: kernel sizes must be positive, found {kernel:?}"
        ));
    }
    let mut out = Vec::with_capacity(spatial);
    for i in 0..spatial {
        let k = (kernel[i] - 1) * dilations[i] + 1;
        let total = match pad_type {
            "same" => {
                out.push(input[i].div_ceil(strides[i]));
                continue;
            }
            "custom" => (pad[2 * i] + pad[2 * i + 1]) as usize,
            _ => 0,
        };
        if input[i] + total < k {
            return Err(format!(
                "weight: kernel extent {k} exceeds padded input size {} on spatial axis {i}",
                input[i] + total
            ));
        }
        out.push((input[i] + total - k) / strides[i] + 1);
    }
    Ok(out)
}

/// `reshape`: `shape` is an int32 rank-1 const; one `-1` is inferred from the element count and
/// `0` copies the corresponding dim of `x` (only when `shape` has `x`'s rank, as in coremltools).
pub fn reshape(ops: &Operands<'_>) -> Result<ValueType, String> {
    let x = tensor(ops, "x")?;
    let target = const_int_list(ops, "shape")?.ok_or("shape: required operand is missing")?;
    let xs = x.shape();
    if target.contains(&0) && target.len() != xs.len() {
        return Err(format!(
            "shape: 0 copies a dim of x, so shape must have x's rank {}, found {}",
            xs.len(),
            target.len()
        ));
    }
    if target.iter().filter(|&&d| d == -1).count() > 1 || target.iter().any(|&d| d < -1) {
        return Err(format!(
            "shape: expected positive dims, 0 and at most one -1, found {target:?}"
        ));
    }
    let dims: Vec<i64> = target
        .iter()
        .enumerate()
        .map(|(i, &d)| if d == 0 { xs[i] as i64 } else { d })
        .collect();
    let too_big = || format!("shape: {target:?} has more elements than fit in memory");
    let numel = checked_numel(xs.iter().copied()).ok_or_else(too_big)?;
    let known = dims.iter().filter(|&&d| d != -1).map(|&d| d as usize);
    let known = checked_numel(known).ok_or_else(too_big)?;
    let shape: Vec<usize> = dims
        .iter()
        .map(|&d| {
            if d == -1 {
                numel / known.max(1)
            } else {
                d as usize
            }
        })
        .collect();
    if checked_numel(shape.iter().copied()) != Some(numel) || shape.is_empty() {
        return Err(format!(
            "shape: {target:?} does not hold the {numel} elements of x {xs:?}"
        ));
    }
    Ok(ValueType::tensor(x.dtype(), shape))
}

/// `transpose`: `perm` must be a permutation of x's axes (negative entries count from the end).
pub fn transpose(ops: &Operands<'_>) -> Result<ValueType, String> {
    let x = tensor(ops, "x")?;
    let rank = x.shape().len();
    let perm = const_int_list_of(ops, "perm", rank)?.ok_or("perm: required operand is missing")?;
    let mut seen = vec![false; rank];
    let mut shape = Vec::with_capacity(rank);
    for &p in &perm {
        let i = axis_index("perm", p, rank)?;
        if std::mem::replace(&mut seen[i], true) {
            return Err(format!(
                "perm: {perm:?} is not a permutation (axis {p} repeats)"
            ));
        }
        shape.push(x.shape()[i]);
    }
    Ok(ValueType::tensor(x.dtype(), shape))
}

/// `cast`: `dtype` is a string const among fp16, fp32, int32, bool, int8, uint8.
pub fn cast(ops: &Operands<'_>) -> Result<ValueType, String> {
    let x = ty(ops, "x")?;
    let name = const_str(ops, "dtype")?.ok_or("dtype: required operand is missing")?;
    let allowed = [
        DType::Fp16,
        DType::Fp32,
        DType::Int32,
        DType::Bool,
        DType::Int8,
        DType::UInt8,
    ];
    let d = DType::from_name(name)
        .filter(|d| allowed.contains(d))
        .ok_or_else(|| {
            format!("dtype: expected fp16, fp32, int32, bool, int8 or uint8, found \"{name}\"")
        })?;
    expect_dtype("x", x, &allowed)?;
    Ok(match x {
        ValueType::Scalar(_) => ValueType::Scalar(d),
        ValueType::Tensor(t) => ValueType::tensor(d, t.shape.clone()),
    })
}

/// `slice_by_index`: python slicing of each axis by `begin`/`end`/`stride` (one value per axis).
///
/// Negative `begin`/`end` count from the end and are then clamped to `[0, dim]`; `begin_mask`/
/// `end_mask` mean "from the start"/"to the end"; `squeeze_mask` drops the axis, keeping the
/// element at `begin` (which must be in range). Strides must be positive (Orion does not support
/// negative strides); an empty result axis is an error. A fully squeezed result is a scalar.
pub fn slice_by_index(ops: &Operands<'_>) -> Result<ValueType, String> {
    let x = tensor(ops, "x")?;
    let xs = x.shape();
    let rank = xs.len();
    let begin =
        const_int_list_of(ops, "begin", rank)?.ok_or("begin: required operand is missing")?;
    let end = const_int_list_of(ops, "end", rank)?.ok_or("end: required operand is missing")?;
    let stride = const_int_list_of(ops, "stride", rank)?.unwrap_or_else(|| vec![1; rank]);
    let mask = |name: &str| -> Result<Vec<bool>, String> {
        match const_bools(ops, name)? {
            None => Ok(vec![false; rank]),
            Some(m) if m.len() == rank => Ok(m),
            Some(m) => Err(format!("{name}: expected {rank} values, found {}", m.len())),
        }
    };
    let (bm, em, sm) = (
        mask("begin_mask")?,
        mask("end_mask")?,
        mask("squeeze_mask")?,
    );
    let mut shape = Vec::new();
    for i in 0..rank {
        let dim = xs[i] as i64;
        if stride[i] < 1 {
            return Err(format!(
                "stride: expected positive strides, found {} on axis {i}",
                stride[i]
            ));
        }
        let clamp = |v: i64| if v < 0 { (v + dim).max(0) } else { v.min(dim) };
        let b = if bm[i] { 0 } else { clamp(begin[i]) };
        if sm[i] {
            if !bm[i] && !(-dim..dim).contains(&begin[i]) {
                return Err(format!(
                    "begin: squeezed axis {i} needs an index in range, found {} for size {dim}",
                    begin[i]
                ));
            }
            continue;
        }
        let e = if em[i] { dim } else { clamp(end[i]) };
        let n = if e > b {
            (e - b + stride[i] - 1) / stride[i]
        } else {
            0
        };
        if n == 0 {
            return Err(format!(
                "end: axis {i} slices nothing (begin {}, end {}, size {dim})",
                begin[i], end[i]
            ));
        }
        shape.push(n as usize);
    }
    Ok(tensor_or_scalar(x.dtype(), shape))
}

/// `slice_by_size`: `begin` (in `[0, dim)`) and `size` (positive, or -1 for "to the end") per axis.
pub fn slice_by_size(ops: &Operands<'_>) -> Result<ValueType, String> {
    let x = tensor(ops, "x")?;
    let xs = x.shape();
    let begin =
        const_int_list_of(ops, "begin", xs.len())?.ok_or("begin: required operand is missing")?;
    let size =
        const_int_list_of(ops, "size", xs.len())?.ok_or("size: required operand is missing")?;
    let mut shape = Vec::with_capacity(xs.len());
    for i in 0..xs.len() {
        let dim = xs[i] as i64;
        if !(0..dim).contains(&begin[i]) {
            return Err(format!(
                "begin: expected 0..{dim} on axis {i}, found {}",
                begin[i]
            ));
        }
        let n = if size[i] == -1 {
            dim - begin[i]
        } else {
            size[i]
        };
        if n < 1 || begin[i] + n > dim {
            return Err(format!(
                "size: {} from {} does not fit axis {i} of size {dim}",
                size[i], begin[i]
            ));
        }
        shape.push(n as usize);
    }
    Ok(ValueType::tensor(x.dtype(), shape))
}

/// `identity`: the type of `x`.
pub fn same_as_x(ops: &Operands<'_>) -> Result<ValueType, String> {
    ty(ops, "x").cloned()
}

/// `scaled_dot_product_attention`: query `[B…, L, E]`, key `[B…, S, E]`, value `[B…, S, Ev]`
/// → `[B…, L, Ev]`, rank ≥ 3 and equal batch axes (as in coremltools iOS18).
///
/// `attn_mask` (bool, or the query's dtype) has last dim `S` and its other dims broadcast with
/// the query's `[B…, L]`. The device ignores the mask (C6); the verifier warns.
pub fn attention(ops: &Operands<'_>) -> Result<ValueType, String> {
    let (q, k, v) = (
        tensor(ops, "query")?,
        tensor(ops, "key")?,
        tensor(ops, "value")?,
    );
    let d = expect_dtype("query", q, &[DType::Fp16, DType::Fp32])?;
    expect_dtype("key", k, &[d])?;
    expect_dtype("value", v, &[d])?;
    let (qs, ks, vs) = (q.shape(), k.shape(), v.shape());
    if qs.len() < 3 || ks.len() != qs.len() || vs.len() != qs.len() {
        return Err(format!(
            "query, key, value: expected one rank ≥ 3, found {qs:?}, {ks:?}, {vs:?}"
        ));
    }
    let r = qs.len();
    if qs[..r - 2] != ks[..r - 2] || qs[..r - 2] != vs[..r - 2] {
        return Err(format!(
            "key, value: batch axes must equal the query's, found {qs:?}, {ks:?}, {vs:?}"
        ));
    }
    if ks[r - 1] != qs[r - 1] {
        return Err(format!(
            "key: embedding {} does not match the query's {}",
            ks[r - 1],
            qs[r - 1]
        ));
    }
    if vs[r - 2] != ks[r - 2] {
        return Err(format!(
            "value: sequence {} does not match the key's {}",
            vs[r - 2],
            ks[r - 2]
        ));
    }
    if let Some(m) = ops.ty("attn_mask") {
        expect_dtype("attn_mask", m, &[DType::Bool, d])?;
        let ms = m.shape();
        if ms.last() != Some(&ks[r - 2])
            || broadcast_shapes(&qs[..r - 1], &ms[..ms.len() - 1]).is_none()
        {
            return Err(format!(
                "attn_mask: expected a shape broadcastable to {:?}, found {ms:?}",
                [&qs[..r - 1], &[ks[r - 2]]].concat()
            ));
        }
    }
    let mut shape = qs[..r - 1].to_vec();
    shape.push(vs[r - 1]);
    Ok(ValueType::tensor(d, shape))
}

/// Checks a quantization parameter: a scalar, or a rank-1 tensor as long as `data`'s `axis`.
fn quant_param(
    name: &str,
    t: &ValueType,
    allowed: &[DType],
    data: &[usize],
    axis: Option<i64>,
) -> Result<(), String> {
    expect_dtype(name, t, allowed)?;
    match t.shape() {
        [] => Ok(()),
        [n] => {
            let a = axis.ok_or(format!("axis: required when {name} is a vector"))?;
            let a = axis_index("axis", a, data.len())?;
            if *n == data[a] {
                Ok(())
            } else {
                Err(format!(
                    "{name}: expected {} values (axis {a} of {data:?}), found {n}",
                    data[a]
                ))
            }
        }
        s => Err(format!(
            "{name}: expected a scalar or rank-1 tensor, found shape {s:?}"
        )),
    }
}

/// `constexpr_affine_dequantize`: int8/uint8 `quantized_data` → `(data - zero_point) * scale`.
///
/// `zero_point` has the data's dtype, `scale` is fp16/fp32 and gives the result dtype; both are
/// scalars or rank-1 along `axis` (an int32 scalar, negative counts from the end).
pub fn affine_dequantize(ops: &Operands<'_>) -> Result<ValueType, String> {
    let data = tensor(ops, "quantized_data")?;
    let qd = expect_dtype("quantized_data", data, &[DType::Int8, DType::UInt8])?;
    let axis = const_int_scalar(ops, "axis")?.ok_or("axis: required operand is missing")?;
    axis_index("axis", axis, data.shape().len())?;
    let scale = ty(ops, "scale")?;
    let sd = scale.dtype();
    quant_param(
        "scale",
        scale,
        &[DType::Fp16, DType::Fp32],
        data.shape(),
        Some(axis),
    )?;
    quant_param(
        "zero_point",
        ty(ops, "zero_point")?,
        &[qd],
        data.shape(),
        Some(axis),
    )?;
    Ok(ValueType::tensor(sd, data.shape().to_vec()))
}

/// `quantize`: a float `input` → `round(input / scale + zero_point)` as `output_dtype`.
///
/// `scale` has the input's dtype; `zero_point` has `output_dtype` (int8/uint8); a rank-1 scale or
/// zero point needs `axis`.
pub fn quantize(ops: &Operands<'_>) -> Result<ValueType, String> {
    let input = tensor(ops, "input")?;
    let d = expect_dtype("input", input, &[DType::Fp16, DType::Fp32])?;
    let name =
        const_str(ops, "output_dtype")?.ok_or("output_dtype: required operand is missing")?;
    let out = match name {
        "int8" => DType::Int8,
        "uint8" => DType::UInt8,
        other => {
            return Err(format!(
                "output_dtype: expected \"int8\" or \"uint8\", found \"{other}\""
            ))
        }
    };
    let axis = const_int_scalar(ops, "axis")?;
    quant_param("scale", ty(ops, "scale")?, &[d], input.shape(), axis)?;
    if let Some(zp) = ops.ty("zero_point") {
        quant_param("zero_point", zp, &[out], input.shape(), axis)?;
    }
    Ok(ValueType::tensor(out, input.shape().to_vec()))
}

/// `dequantize`: an int8/uint8 `input` → `(input - zero_point) * scale` in the scale's dtype.
pub fn dequantize(ops: &Operands<'_>) -> Result<ValueType, String> {
    let input = tensor(ops, "input")?;
    let qd = expect_dtype("input", input, &[DType::Int8, DType::UInt8])?;
    let axis = const_int_scalar(ops, "axis")?;
    let scale = ty(ops, "scale")?;
    quant_param(
        "scale",
        scale,
        &[DType::Fp16, DType::Fp32],
        input.shape(),
        axis,
    )?;
    if let Some(zp) = ops.ty("zero_point") {
        quant_param("zero_point", zp, &[qd], input.shape(), axis)?;
    }
    Ok(ValueType::tensor(scale.dtype(), input.shape().to_vec()))
}
