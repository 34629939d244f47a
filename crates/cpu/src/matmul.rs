//! General matrix products `C (+)= A · B` over strided f32 views, in f32 or with inputs
//! rounded to bf16, for training and the emulator.
//!
//! Two engines, chosen per level by measurement (`cargo run -p cpu --release --example
//! matmul_bench`): the `gemm` crate (its own AVX2/FMA or NEON kernels) for f32 at the AVX2
//! and NEON levels, where it was measured fastest, and this crate's packed micro-kernel
//! everywhere else — f32 at the AVX-512 level (the `gemm` crate has no AVX-512 kernels on
//! stable Rust) and the portable one (so that `ORION_CPU=portable` means portable code), and
//! bf16 on every CPU without AVX-512 BF16, rounding the inputs while it packs them. Where the
//! CPU has AVX-512 BF16 dot products, bf16 products use them. bf16 is thus the same arithmetic
//! (bf16 inputs, f32 sums) on every CPU.

use rayon::prelude::*;

use crate::{Cpu, Level};

/// Multiply-adds (m·n·k) above which one product runs on the rayon pool.
const PAR_WORK: usize = 1 << 18;

/// A read-only strided view of an f32 matrix.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a> {
    /// Backing values.
    pub data: &'a [f32],
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
    /// Element step between rows.
    pub row_stride: usize,
    /// Element step between columns.
    pub col_stride: usize,
}

impl<'a> MatRef<'a> {
    /// A row-major `rows × cols` view.
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Self {
        MatRef {
            data,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// The same values read as the transposed matrix.
    pub fn t(self) -> Self {
        MatRef {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
        }
    }

    /// True when every addressed element lies inside `data`.
    pub fn in_bounds(&self) -> bool {
        self.rows == 0
            || self.cols == 0
            || (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride
                < self.data.len()
    }
}

/// The arithmetic of a product.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arith {
    /// f32 inputs, f32 sums.
    F32,
    /// Inputs rounded to bf16 (nearest even, as `vcvtne2ps2bf16` does), f32 sums.
    Bf16,
}

/// `dst (m × n, row-major) = a (m × k) · b (k × n)`, or `+=` when `accumulate`, in `arith`;
/// on the rayon pool when `parallel` and the product is large.
///
/// # Panics
/// If the views' shapes disagree or address memory outside their buffers (a caller bug).
pub fn matmul(
    cpu: Cpu,
    dst: &mut [f32],
    a: MatRef<'_>,
    b: MatRef<'_>,
    accumulate: bool,
    arith: Arith,
    parallel: bool,
) {
    let Some(parallel) = prepare(dst, a, b, accumulate, parallel) else {
        return;
    };
    match arith {
        Arith::F32 if matches!(cpu.level(), Level::Avx2 | Level::Neon) => {
            gemm_crate(dst, a, b, accumulate, parallel)
        }
        Arith::Bf16 if bf16_native(cpu, dst, a, b, accumulate) => {}
        _ => packed(cpu, dst, a, b, accumulate, arith == Arith::Bf16, parallel),
    }
}

/// [`matmul`] in f32 always through the `gemm` crate (for comparing the engines).
pub fn matmul_gemm_crate(
    dst: &mut [f32],
    a: MatRef<'_>,
    b: MatRef<'_>,
    accumulate: bool,
    parallel: bool,
) {
    if let Some(parallel) = prepare(dst, a, b, accumulate, parallel) {
        gemm_crate(dst, a, b, accumulate, parallel);
    }
}

/// Checks the shapes (panicking on a mismatch, a caller bug) and does the products with no
/// work (an empty output; k = 0 leaves zeros, or `dst` itself when accumulating). Returns
/// `None` then, else whether to run on the rayon pool.
fn prepare(
    dst: &mut [f32],
    a: MatRef<'_>,
    b: MatRef<'_>,
    accumulate: bool,
    parallel: bool,
) -> Option<bool> {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert!(b.rows == k && dst.len() == m * n, "matmul: shape mismatch");
    assert!(a.in_bounds() && b.in_bounds(), "matmul: view out of bounds");
    if k == 0 && !accumulate {
        dst.fill(0.0);
    }
    (m > 0 && n > 0 && k > 0).then_some(parallel && m * n * k >= PAR_WORK)
}

/// The AVX-512 BF16 kernel, where the CPU and level have it.
fn bf16_native(cpu: Cpu, dst: &mut [f32], a: MatRef<'_>, b: MatRef<'_>, accumulate: bool) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        crate::bf16::gemm(cpu, dst, a, b, accumulate)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (cpu, dst, a, b, accumulate);
        false
    }
}

/// The product through the `gemm` crate.
fn gemm_crate(dst: &mut [f32], a: MatRef<'_>, b: MatRef<'_>, accumulate: bool, parallel: bool) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    let parallelism = if parallel {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: `matmul` checked that every element addressed through the strides of `a`, `b`
    // and the row-major `dst` lies inside its slice; `dst` is uniquely borrowed.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a.col_stride as isize,
            a.row_stride as isize,
            b.data.as_ptr(),
            b.col_stride as isize,
            b.row_stride as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// The output matrix as a pointer tasks write disjoint blocks through.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);

impl OutPtr {
    /// The pointer (a method, so that closures capture the whole `Send` wrapper).
    fn get(self) -> *mut f32 {
        self.0
    }
}

// SAFETY: tasks write disjoint blocks of the output, which outlives every task.
unsafe impl Send for OutPtr {}
// SAFETY: as above.
unsafe impl Sync for OutPtr {}

/// [`matmul`] always through this crate's packed micro-kernel (for comparing the engines).
pub fn matmul_packed(
    cpu: Cpu,
    dst: &mut [f32],
    a: MatRef<'_>,
    b: MatRef<'_>,
    accumulate: bool,
    arith: Arith,
    parallel: bool,
) {
    if let Some(parallel) = prepare(dst, a, b, accumulate, parallel) {
        packed(cpu, dst, a, b, accumulate, arith == Arith::Bf16, parallel);
    }
}

/// Rows of C per packed task (a multiple of every level's micro-kernel height).
const TASK_ROWS: usize = 192;
/// Columns of C per packed task (a multiple of every level's micro-kernel width).
const TASK_COLS: usize = 256;

/// The product by this crate's packed micro-kernel, C cut into blocks run as rayon tasks,
/// inputs rounded to bf16 when `round`. Each element of C is summed by one task in a fixed
/// order, so the result does not depend on the number of threads.
fn packed(
    cpu: Cpu,
    dst: &mut [f32],
    a: MatRef<'_>,
    b: MatRef<'_>,
    accumulate: bool,
    round: bool,
    parallel: bool,
) {
    let (m, n) = (a.rows, b.cols);
    let out = OutPtr(dst.as_mut_ptr());
    let (row_blocks, col_blocks) = (m.div_ceil(TASK_ROWS), n.div_ceil(TASK_COLS));
    let run = |t: usize| {
        let (ib, jb) = (t / col_blocks, t % col_blocks);
        let rows = ib * TASK_ROWS..m.min((ib + 1) * TASK_ROWS);
        let cols = jb * TASK_COLS..n.min((jb + 1) * TASK_COLS);
        // SAFETY: each task owns its block of the row-major `dst` (m × n); `matmul` checked
        // the views.
        unsafe { crate::packed::block(cpu, out.get(), n, a, b, rows, cols, accumulate, round) };
    };
    for_each_index(row_blocks * col_blocks, parallel, run);
}

/// Calls `f(i)` for `i` in `0..count`, on the rayon pool when `parallel`.
pub(crate) fn for_each_index(count: usize, parallel: bool, f: impl Fn(usize) + Sync + Send) {
    if parallel {
        (0..count).into_par_iter().for_each(f);
    } else {
        (0..count).for_each(f);
    }
}
