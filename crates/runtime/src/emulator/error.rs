//! Errors raised by emulator kernels on operands they cannot compute with.

use mil::DType;

/// An op was given operands of shapes, axes or dtypes it cannot compute with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KernelError {
    /// Two operand shapes do not broadcast against each other.
    #[error("{op}: shapes {x:?} and {y:?} do not broadcast")]
    Broadcast {
        op: &'static str,
        x: Vec<usize>,
        y: Vec<usize>,
    },
    /// An operand's shape does not fit the op.
    #[error("{op}: {msg}")]
    Shape { op: &'static str, msg: String },
    /// An axis lies outside the operand's rank.
    #[error("{op}: axis {axis} out of range for rank {rank}")]
    Axis {
        op: &'static str,
        axis: i64,
        rank: usize,
    },
    /// The op does not compute with this dtype.
    #[error("{op}: unsupported dtype {dtype}")]
    DType { op: &'static str, dtype: DType },
}

impl KernelError {
    /// A shape error for `op` with a message.
    pub(crate) fn shape(op: &'static str, msg: impl Into<String>) -> Self {
        KernelError::Shape {
            op,
            msg: msg.into(),
        }
    }
}

/// Resolves a possibly negative axis against a rank.
pub(crate) fn norm_axis(op: &'static str, axis: i64, rank: usize) -> Result<usize, KernelError> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    if (0..r).contains(&a) {
        Ok(a as usize)
    } else {
        Err(KernelError::Axis { op, axis, rank })
    }
}
