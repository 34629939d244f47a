//! The emulator's op kernels and numerics: pure functions on fp16-precision tensors.
//!
//! Every kernel takes its operands as [`Tensor`]s and a [`Numerics`] profile, computes in f32
//! and hands its result to the profile, which rounds it to the dtype's precision (fp16 by
//! default, `spec/ane.md` C22). The MIL interpreter maps ops to these functions.

pub mod elementwise;
pub mod error;
pub mod gemm;
pub mod linalg;
pub mod numerics;
pub mod quant;
pub mod reduce;
pub mod shape_ops;
pub mod tensor;

pub use elementwise::{binary, unary, BinaryOp, UnaryOp, LOG_EPSILON, RSQRT_EPSILON};
pub use error::KernelError;
pub use linalg::{conv, matmul, scaled_dot_product_attention, ConvParams, PackedWeight, Padding};
pub use numerics::{round_to_fp16, Numerics};
pub use quant::{dequantize, quantize};
pub use reduce::{reduce, softmax, ReduceOp};
pub use shape_ops::{cast, identity, reshape, slice_by_index, slice_by_size, transpose, SliceSpec};
pub use tensor::Tensor;
