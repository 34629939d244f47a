//! The matrix products of the native host trainer: f32 through the `gemm` crate, or bf16
//! inputs with f32 accumulation through AVX-512 BF16 dot products where the CPU has them.

use runtime::emulator::gemm::{gemm_f32, gemm_f32_add, MatRef};
use serde::{Deserialize, Serialize};

/// The arithmetic of the host trainer's matrix products.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// f32 inputs, f32 accumulation.
    #[default]
    F32,
    /// Inputs rounded to bf16 (nearest-even), products accumulated in f32; falls back to
    /// f32 on CPUs without AVX-512 BF16.
    Bf16,
}

/// `dst (m × n, row-major) = a (m × k) · b (k × n)`, or `+=` when `accumulate`.
///
/// # Panics
/// If the views' shapes disagree or address memory outside their buffers (a caller bug).
pub fn matmul(
    dst: &mut [f32],
    a: MatRef<'_>,
    b: MatRef<'_>,
    accumulate: bool,
    precision: Precision,
) {
    if precision == Precision::Bf16 && super::bf16::gemm_bf16(dst, a, b, accumulate) {
        return;
    }
    if accumulate {
        gemm_f32_add(dst, a, b, true);
    } else {
        gemm_f32(dst, a, b, true);
    }
}
