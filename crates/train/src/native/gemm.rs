//! The matrix products of the native host trainer, through the `cpu` crate at the process's
//! level: f32, or bf16 inputs with f32 sums (AVX-512 BF16 dot products where the CPU has them,
//! the same arithmetic with f32 FMA elsewhere).

use cpu::matmul::{Arith, MatRef};
use cpu::Cpu;
use serde::{Deserialize, Serialize};

/// The arithmetic of the host trainer's matrix products.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// f32 inputs, f32 accumulation.
    #[default]
    F32,
    /// Inputs rounded to bf16 (nearest-even), products accumulated in f32, on every CPU.
    Bf16,
}

impl Precision {
    /// The `cpu` crate's arithmetic.
    pub fn arith(self) -> Arith {
        match self {
            Precision::F32 => Arith::F32,
            Precision::Bf16 => Arith::Bf16,
        }
    }
}

/// `dst (m × n, row-major) = a (m × k) · b (k × n)`, or `+=` when `accumulate`, on the rayon
/// pool.
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
    cpu::matmul::matmul(
        Cpu::active(),
        dst,
        a,
        b,
        accumulate,
        precision.arith(),
        true,
    );
}
