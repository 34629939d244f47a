//! Type rules of the op table: result types from operand types and constant values.

use crate::ast::ValueType;
use crate::ops::Operands;

macro_rules! pending {
    ($($name:ident),*) => {$(
        /// Type rule (being written).
        pub fn $name(_ops: &Operands<'_>) -> Result<ValueType, String> {
            Err(concat!("type rule ", stringify!($name), " is not written yet").to_string())
        }
    )*};
}

pending!(
    unsupported,
    constant,
    broadcast_binary,
    float_unary,
    softmax,
    reduce,
    matmul,
    conv,
    reshape,
    transpose,
    cast,
    slice_by_index,
    slice_by_size,
    same_as_x,
    attention,
    affine_dequantize,
    quantize,
    dequantize
);
