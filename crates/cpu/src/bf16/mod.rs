//! bf16 GEMM with f32 accumulation on AVX-512 BF16: inputs rounded to bf16 while packing into
//! k-pair-interleaved panels, a register-blocked `vdpbf16ps` micro-kernel, rayon threads.
//! Written with intrinsics because `vdpbf16ps` has no portable equivalent; other levels get
//! the same arithmetic (bf16-rounded inputs, f32 sums) from [`crate::matmul`]'s tiles.

mod driver;
mod kernel;
mod pack;

use crate::matmul::MatRef;
use crate::Cpu;

/// Proof that this CPU has the AVX-512 features the kernels use.
#[derive(Clone, Copy)]
struct Isa(());

/// `dst (m × n) = a · b` (`+=` when `accumulate`) with bf16-rounded inputs, on a `cpu` whose
/// [`Cpu::bf16_dot`] holds; false (nothing done) otherwise.
///
/// `dst` is row-major; `a` (m × k) and `b` (k × n) may have any strides, and the shapes are
/// non-empty (the caller checked them). Products are summed in f32 in a fixed order, so the
/// result is the same for any number of threads.
pub(crate) fn gemm(
    cpu: Cpu,
    dst: &mut [f32],
    a: MatRef<'_>,
    b: MatRef<'_>,
    accumulate: bool,
) -> bool {
    if !cpu.bf16_dot() {
        return false;
    }
    driver::gemm(Isa(()), dst, a, b, accumulate);
    true
}
