//! The emulator's tensor: a MIL dtype, a static shape and values held in f32.

use half::{f16, slice::HalfFloatSliceExt};
use mil::DType;

use super::error::KernelError;
use super::numerics::round_to_fp16;

/// A dense row-major tensor whose values are held in f32.
///
/// Every dtype is carried in the same f32 buffer: fp16 values are already rounded to fp16
/// (so each is exactly representable), fp32 values are plain f32, and int8/uint8/bool
/// (0.0 or 1.0) are exact. int32 values are exact up to ±2^24, which covers every shape,
/// index and axis a program uses; larger int32 magnitudes lose their low bits.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    /// The MIL dtype the values belong to.
    pub dtype: DType,
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// Row-major values, `shape.iter().product()` of them.
    pub data: Vec<f32>,
}

impl Tensor {
    /// A tensor from f32 values, rounded to fp16 when `dtype` is fp16.
    pub fn new(
        dtype: DType,
        shape: impl Into<Vec<usize>>,
        mut data: Vec<f32>,
    ) -> Result<Tensor, KernelError> {
        let shape = shape.into();
        let n: usize = shape.iter().product();
        if n != data.len() {
            return Err(KernelError::shape(
                "tensor",
                format!("shape {shape:?} needs {n} values, got {}", data.len()),
            ));
        }
        if dtype == DType::String {
            return Err(KernelError::DType {
                op: "tensor",
                dtype,
            });
        }
        if dtype == DType::Fp16 {
            round_to_fp16(&mut data);
        }
        Ok(Tensor { dtype, shape, data })
    }

    /// A rank-0 tensor holding one value (rounded to fp16 when `dtype` is fp16).
    pub fn scalar(dtype: DType, value: f32) -> Tensor {
        let mut data = vec![value];
        if dtype == DType::Fp16 {
            round_to_fp16(&mut data);
        }
        Tensor {
            dtype,
            shape: Vec::new(),
            data,
        }
    }

    /// An fp16 tensor from raw fp16 values (e.g. a surface or a BLOBFILE weight).
    pub fn from_f16(shape: impl Into<Vec<usize>>, values: &[f16]) -> Result<Tensor, KernelError> {
        let mut data = vec![0.0; values.len()];
        values.convert_to_f32_slice(&mut data);
        Tensor::new(DType::Fp16, shape, data)
    }

    /// The values as fp16 (rounding fp32 values to nearest even).
    pub fn to_f16(&self) -> Vec<f16> {
        let mut out = vec![f16::ZERO; self.data.len()];
        out.convert_from_f32_slice(&self.data);
        out
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// True when the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    /// Row-major element strides of the shape.
    pub fn strides(&self) -> Vec<usize> {
        strides_of(&self.shape)
    }
}

/// Row-major element strides of a shape.
pub(crate) fn strides_of(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * shape[i + 1];
    }
    strides
}
