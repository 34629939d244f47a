//! The f32 GEMM behind matmul and conv: the `cpu` crate's product at the process's level,
//! multi-threaded for large products; and the device's accumulator overflow (C24).

pub use cpu::matmul::MatRef;
use cpu::matmul::{matmul, Arith};
use cpu::Cpu;

/// `dst (m × n, row-major) = a (m × k) · b (k × n)`, accumulating in f32.
///
/// # Panics
/// If the views' shapes disagree or address memory outside their buffers (a caller bug).
pub fn gemm_f32(dst: &mut [f32], a: MatRef<'_>, b: MatRef<'_>, threaded: bool) {
    matmul(Cpu::active(), dst, a, b, false, Arith::F32, threaded);
}

/// Sets to ±inf every entry of `dst = a · b` whose running sum over `k`, taken in index order,
/// reaches `limit` in magnitude (the device's accumulator overflow, `spec/ane.md` C24).
///
/// Entries whose Σ|a·b| stays below `limit` cannot overflow and are left untouched; only the
/// others are re-summed term by term.
pub fn overflow_partial_sums(dst: &mut [f32], a: MatRef<'_>, b: MatRef<'_>, limit: f32) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    let abs_a = abs_row_major(a);
    let abs_b = abs_row_major(b);
    let mut bound = vec![0.0f32; m * n];
    gemm_f32(
        &mut bound,
        MatRef::row_major(&abs_a, m, k),
        MatRef::row_major(&abs_b, k, n),
        true,
    );
    for (idx, (d, &bnd)) in dst.iter_mut().zip(&bound).enumerate() {
        if bnd < limit {
            continue;
        }
        let (i, j) = (idx / n, idx % n);
        let mut sum = 0.0f32;
        for p in 0..k {
            sum += a.data[i * a.row_stride + p * a.col_stride]
                * b.data[p * b.row_stride + j * b.col_stride];
            if sum.abs() >= limit {
                *d = f32::INFINITY.copysign(sum);
                break;
            }
        }
    }
}

/// The absolute values of a strided matrix, copied row-major.
fn abs_row_major(a: MatRef<'_>) -> Vec<f32> {
    let mut out = Vec::with_capacity(a.rows * a.cols);
    for i in 0..a.rows {
        for j in 0..a.cols {
            out.push(a.data[i * a.row_stride + j * a.col_stride].abs());
        }
    }
    out
}
