//! Affine int8/uint8 quantization: `dequantize`, `constexpr_affine_dequantize`, `quantize`.

use mil::DType;

use super::error::{norm_axis, KernelError};
use super::numerics::Numerics;
use super::tensor::Tensor;

/// Per-element parameter lookup: a scalar, or a vector along one axis.
struct AxisParam<'a> {
    values: &'a [f32],
    /// Elements between successive indices of the axis; the axis length follows.
    inner: usize,
    len: usize,
}

impl<'a> AxisParam<'a> {
    /// Binds `param` (scalar, or a vector of `x.shape[axis]` values) to `x`.
    fn new(
        op: &'static str,
        param: &'a Tensor,
        x: &Tensor,
        axis: Option<i64>,
    ) -> Result<Self, KernelError> {
        if param.len() == 1 {
            return Ok(AxisParam {
                values: &param.data,
                inner: 1,
                len: 1,
            });
        }
        let a = norm_axis(op, axis.unwrap_or(0), x.rank())?;
        if param.len() != x.shape[a] {
            return Err(KernelError::shape(
                op,
                format!("{} parameters for axis {a} of {:?}", param.len(), x.shape),
            ));
        }
        let inner = x.shape[a + 1..].iter().product();
        Ok(AxisParam {
            values: &param.data,
            inner,
            len: param.len(),
        })
    }

    /// The parameter for flat element `i`.
    fn at(&self, i: usize) -> f32 {
        self.values[(i / self.inner) % self.len]
    }
}

/// `scale · (q − zero_point)`, per tensor or per `axis`; the result has `scale`'s dtype.
/// Serves both `dequantize` and `constexpr_affine_dequantize`.
/// `input`: int8/uint8 (…); `scale`, `zero_point`: scalar or (shape[axis]) → (…)
pub fn dequantize(
    input: &Tensor,
    zero_point: Option<&Tensor>,
    scale: &Tensor,
    axis: Option<i64>,
    nx: Numerics,
) -> Result<Tensor, KernelError> {
    let op = "dequantize";
    if !matches!(input.dtype, DType::Int8 | DType::UInt8) {
        return Err(KernelError::DType {
            op,
            dtype: input.dtype,
        });
    }
    if !scale.dtype.is_float() {
        return Err(KernelError::DType {
            op,
            dtype: scale.dtype,
        });
    }
    let s = AxisParam::new(op, scale, input, axis)?;
    let zero = Tensor::scalar(input.dtype, 0.0);
    let z = AxisParam::new(op, zero_point.unwrap_or(&zero), input, axis)?;
    let mut data: Vec<f32> = input
        .data
        .iter()
        .enumerate()
        .map(|(i, &q)| (q - z.at(i)) * s.at(i))
        .collect();
    nx.finish(scale.dtype, &mut data);
    Ok(Tensor {
        dtype: scale.dtype,
        shape: input.shape.clone(),
        data,
    })
}

/// `clamp(round_half_even(x / scale + zero_point))` into `output_dtype` (int8 or uint8);
/// NaN quantizes to 0.
/// `input`: float (…); `scale`, `zero_point`: scalar or (shape[axis]) → (…)
pub fn quantize(
    input: &Tensor,
    zero_point: Option<&Tensor>,
    scale: &Tensor,
    axis: Option<i64>,
    output_dtype: DType,
) -> Result<Tensor, KernelError> {
    let op = "quantize";
    let (lo, hi) = match output_dtype {
        DType::Int8 => (-128.0, 127.0),
        DType::UInt8 => (0.0, 255.0),
        dtype => return Err(KernelError::DType { op, dtype }),
    };
    let s = AxisParam::new(op, scale, input, axis)?;
    let zero = Tensor::scalar(output_dtype, 0.0);
    let z = AxisParam::new(op, zero_point.unwrap_or(&zero), input, axis)?;
    let data = input
        .data
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            let q = (x / s.at(i) + z.at(i)).round_ties_even();
            if q.is_nan() {
                0.0
            } else {
                q.clamp(lo, hi) + 0.0
            }
        })
        .collect();
    Ok(Tensor {
        dtype: output_dtype,
        shape: input.shape.clone(),
        data,
    })
}
