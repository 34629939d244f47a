//! The f32 GEMM behind matmul and conv: the `gemm` crate, multi-threaded for large products.

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

/// `dst (m × n, row-major) = a (m × k) · b (k × n)`, accumulating in f32.
///
/// # Panics
/// If the views' shapes disagree or address memory outside their buffers (a caller bug).
pub fn gemm_f32(dst: &mut [f32], a: MatRef<'_>, b: MatRef<'_>, threaded: bool) {
    gemm_f32_with(dst, a, b, false, threaded);
}

/// `dst (m × n, row-major) += a (m × k) · b (k × n)`, accumulating in f32.
///
/// # Panics
/// As [`gemm_f32`].
pub fn gemm_f32_add(dst: &mut [f32], a: MatRef<'_>, b: MatRef<'_>, threaded: bool) {
    gemm_f32_with(dst, a, b, true, threaded);
}

fn gemm_f32_with(dst: &mut [f32], a: MatRef<'_>, b: MatRef<'_>, accumulate: bool, threaded: bool) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert!(
        b.rows == k && dst.len() == m * n,
        "gemm_f32: shape mismatch"
    );
    assert!(
        a.in_bounds() && b.in_bounds(),
        "gemm_f32: view out of bounds"
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst.fill(0.0);
        }
        return;
    }
    let parallelism = if threaded && m * n * k >= PAR_WORK {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the asserts above guarantee every element addressed through the strides of
    // `a`, `b` and the row-major `dst` lies inside its slice; `dst` is uniquely borrowed.
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
