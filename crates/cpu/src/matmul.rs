//! General matrix products `C (+)= A · B` over strided f32 views, in f32 or with inputs
//! rounded to bf16, for training and the emulator.
//!
//! f32 products go through the `gemm` crate (its own AVX2/FMA or NEON kernels, which pack any
//! strides; measured faster than this crate's tiles on the transposed operands of training)
//! except at the portable level, where this crate's tiles run so that `ORION_CPU=portable`
//! means portable code. bf16 products use the AVX-512 BF16 kernel where [`Cpu::bf16_dot`]
//! holds, and everywhere else the same route as f32 over bf16-rounded copies of the inputs:
//! the same arithmetic (bf16 inputs, f32 sums) on every CPU.

use rayon::prelude::*;

use crate::convert::bf16_round;
use crate::gemm::gemm_cols;
use crate::Cpu;

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

    /// Element `(i, j)`.
    fn at(&self, i: usize, j: usize) -> f32 {
        self.data[i * self.row_stride + j * self.col_stride]
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
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert!(b.rows == k && dst.len() == m * n, "matmul: shape mismatch");
    assert!(a.in_bounds() && b.in_bounds(), "matmul: view out of bounds");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst.fill(0.0);
        }
        return;
    }
    let parallel = parallel && m * n * k >= PAR_WORK;
    let portable = cpu.level() == crate::Level::Portable;
    match arith {
        Arith::F32 if portable => tiles(cpu, dst, a, b, accumulate, false, parallel),
        Arith::F32 => gemm_crate(dst, a, b, accumulate, parallel),
        Arith::Bf16 if bf16_native(cpu, dst, a, b, accumulate) => {}
        Arith::Bf16 if portable => tiles(cpu, dst, a, b, accumulate, true, parallel),
        Arith::Bf16 => {
            let (ra, rb) = (rounded(cpu, a), rounded(cpu, b));
            gemm_crate(dst, ra.view(a), rb.view(b), accumulate, parallel)
        }
    }
}

/// A bf16-rounded copy of the values a view addresses.
enum Rounded {
    /// The view's whole span, rounded in place of the same layout.
    Span(Vec<f32>),
    /// The view's values, row-major.
    RowMajor(Vec<f32>),
}

impl Rounded {
    /// The copy seen as the original view `v` was.
    fn view<'a>(&'a self, v: MatRef<'_>) -> MatRef<'a> {
        match self {
            Rounded::Span(data) => MatRef { data, ..v },
            Rounded::RowMajor(data) => MatRef::row_major(data, v.rows, v.cols),
        }
    }
}

/// `v`'s values rounded to bf16: its span copied in the same layout (a plain vectorized pass,
/// whatever the strides) when the span is not much larger than the view, else row-major.
fn rounded(cpu: Cpu, v: MatRef<'_>) -> Rounded {
    let span = (v.rows - 1) * v.row_stride + (v.cols - 1) * v.col_stride + 1;
    if span > 2 * v.rows * v.cols {
        return Rounded::RowMajor(row_major(v, true));
    }
    let mut data = v.data[..span].to_vec();
    data.par_chunks_mut(1 << 16)
        .for_each(|c| crate::convert::round_bf16(cpu, c));
    Rounded::Span(data)
}

/// [`matmul`] always through this crate's own register tiles (never the `gemm` crate or the
/// AVX-512 BF16 kernel), for comparing them.
pub fn matmul_tiled(
    cpu: Cpu,
    dst: &mut [f32],
    a: MatRef<'_>,
    b: MatRef<'_>,
    accumulate: bool,
    arith: Arith,
    parallel: bool,
) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert!(b.rows == k && dst.len() == m * n, "matmul: shape mismatch");
    assert!(a.in_bounds() && b.in_bounds(), "matmul: view out of bounds");
    if m == 0 || n == 0 || k == 0 {
        return matmul(cpu, dst, a, b, accumulate, arith, parallel);
    }
    let parallel = parallel && m * n * k >= PAR_WORK;
    tiles(cpu, dst, a, b, accumulate, arith == Arith::Bf16, parallel);
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

/// The values of `v` copied row-major (`rows × cols`), rounded to bf16 when `round`; read in
/// square blocks, so that a transposed view is copied at memory speed.
fn row_major(v: MatRef<'_>, round: bool) -> Vec<f32> {
    const B: usize = 32;
    let (rows, cols) = (v.rows, v.cols);
    let mut out = vec![0.0f32; rows * cols];
    let get = |i: usize, j: usize| {
        let x = v.at(i, j);
        if round {
            bf16_round(x)
        } else {
            x
        }
    };
    if v.col_stride == 1 {
        for (i, row) in out.chunks_exact_mut(cols.max(1)).enumerate() {
            for (j, o) in row.iter_mut().enumerate() {
                *o = get(i, j);
            }
        }
        return out;
    }
    for i0 in (0..rows).step_by(B) {
        for j0 in (0..cols).step_by(B) {
            for j in j0..cols.min(j0 + B) {
                for i in i0..rows.min(i0 + B) {
                    out[i * cols + j] = get(i, j);
                }
            }
        }
    }
    out
}

/// `lines × k` values of a view laid out line after line with k contiguous (rounded to bf16
/// when `round`): borrowed when already so, copied otherwise. Returns the values and the
/// step between lines.
fn k_contiguous<'a>(
    v: MatRef<'a>,
    lines_are_rows: bool,
    round: bool,
    buf: &'a mut Vec<f32>,
) -> (&'a [f32], usize) {
    let v = if lines_are_rows { v } else { v.t() };
    let (lines, k) = (v.rows, v.cols);
    if v.col_stride == 1 && !round && v.row_stride >= k {
        return (&v.data[..(lines - 1) * v.row_stride + k], v.row_stride);
    }
    *buf = row_major(v, round);
    (&buf[..], k)
}

/// The output matrix as a pointer tasks write disjoint columns through.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);

impl OutPtr {
    /// The pointer (a method, so that closures capture the whole `Send` wrapper).
    fn get(self) -> *mut f32 {
        self.0
    }
}

// SAFETY: tasks write disjoint column ranges of the output, which outlives every task.
unsafe impl Send for OutPtr {}
// SAFETY: as above.
unsafe impl Sync for OutPtr {}

/// The product by this crate's register tiles: rows of `a` and columns of `b` made
/// k-contiguous (and bf16-rounded when `round`), the columns of `dst` split across tasks.
fn tiles(
    cpu: Cpu,
    dst: &mut [f32],
    a: MatRef<'_>,
    b: MatRef<'_>,
    accumulate: bool,
    round: bool,
    parallel: bool,
) {
    let (k, n) = (a.cols, b.cols);
    let (mut abuf, mut bbuf) = (Vec::new(), Vec::new());
    let (x, ldx) = k_contiguous(a, true, round, &mut abuf);
    let (w, ldw) = k_contiguous(b, false, round, &mut bbuf);
    let out = OutPtr(dst.as_mut_ptr());
    let run = |cols: std::ops::Range<usize>| {
        // SAFETY: each task writes its own columns of the row-major `dst` (m × n).
        unsafe { gemm_cols(cpu, w, ldw, k, cols, x, ldx, None, out.get(), n, accumulate) };
    };
    const COLS: usize = 48;
    if parallel {
        (0..n.div_ceil(COLS))
            .into_par_iter()
            .for_each(|c| run(c * COLS..n.min((c + 1) * COLS)));
    } else {
        run(0..n);
    }
}
