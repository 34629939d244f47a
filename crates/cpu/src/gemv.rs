//! Matrix-vector products over f32 or fp16 weights (widened in registers): four rows at a
//! time against one input vector, with the rows ahead prefetched into L2.

use std::ops::Range;

use crate::kernel;
use crate::simd::{Element, Simd};

/// How many rows ahead the kernel prefetches (the same columns): the matrix is one
/// sequential stream, fetched into L2 that far ahead.
const PREFETCH_ROWS: usize = 8;

/// A cache line.
const LINE: usize = 64;

/// `y[i] (+)= bias[i] + W[rows.start + i] · x` for a block of rows of the row-major `w` with
/// `x.len()` columns; `y` and `bias` (when given) hold `rows.len()` values.
///
/// # Panics
/// If `w` is shorter than `rows.end` rows, or `y`/`bias` are not `rows.len()` long.
#[inline(always)]
pub(crate) fn gemv_rows_in<S: Simd, T: Element>(
    s: S,
    w: &[T],
    x: &[f32],
    rows: Range<usize>,
    bias: Option<&[f32]>,
    y: &mut [f32],
    accumulate: bool,
) {
    let k = x.len();
    assert!(
        rows.end * k <= w.len()
            && y.len() == rows.len()
            && bias.is_none_or(|b| b.len() == rows.len()),
        "gemv: {} rows of {k} from {} weights into {} outputs",
        rows.len(),
        w.len(),
        y.len()
    );
    if rows.is_empty() {
        return;
    }
    let l = S::LANES;
    let size = std::mem::size_of::<T>();
    // Columns per step of the main loop: two vectors, or a whole cache line of weights.
    let step = (2 * l).max(LINE / size);
    let lines = (step * size).div_ceil(LINE);
    let (k_step, k_vec) = (k / step * step, k / l * l);
    let xp = x.as_ptr();
    for r in rows.start..(rows.start + PREFETCH_ROWS).min(rows.end) {
        let row = w.as_ptr().wrapping_add(r * k).cast::<u8>();
        for off in (0..k * size).step_by(LINE) {
            s.prefetch(row.wrapping_add(off));
        }
    }
    let mut r = rows.start;
    while r < rows.end {
        let n = (rows.end - r).min(4);
        // Rows past the block repeat the last one; their sums are discarded.
        let p: [*const T; 4] =
            std::array::from_fn(|i| w.as_ptr().wrapping_add((r + i.min(n - 1)) * k));
        let mut a = [s.zero(); 8];
        let mut j = 0;
        while j < k_step {
            for &pi in &p {
                let ahead = pi.wrapping_add(j + PREFETCH_ROWS * k).cast::<u8>();
                for line in 0..lines {
                    s.prefetch(ahead.wrapping_add(line * LINE));
                }
            }
            let mut jj = j;
            while jj < j + step {
                // SAFETY: jj + 2·LANES ≤ j + step ≤ k_step ≤ k: inside `x` and each row
                // (rows < rows.end, checked against `w.len()` above).
                unsafe {
                    let x0 = s.load(xp.add(jj));
                    let x1 = s.load(xp.add(jj + l));
                    for i in 0..4 {
                        a[2 * i] = s.fma(T::load(s, p[i].add(jj)), x0, a[2 * i]);
                        a[2 * i + 1] = s.fma(T::load(s, p[i].add(jj + l)), x1, a[2 * i + 1]);
                    }
                }
                jj += 2 * l;
            }
            j += step;
        }
        while j < k_vec {
            // SAFETY: j + LANES ≤ k.
            unsafe {
                let x0 = s.load(xp.add(j));
                for i in 0..4 {
                    a[2 * i] = s.fma(T::load(s, p[i].add(j)), x0, a[2 * i]);
                }
            }
            j += l;
        }
        for i in 0..n {
            let mut sum = s.sum(s.add(a[2 * i], a[2 * i + 1]));
            for (jj, &xj) in x.iter().enumerate().skip(k_vec) {
                // SAFETY: jj < k, inside the row.
                sum += unsafe { *p[i].add(jj) }.widen() * xj;
            }
            let o = r + i - rows.start;
            sum += bias.map_or(0.0, |b| b[o]);
            y[o] = if accumulate { y[o] + sum } else { sum };
        }
        r += n;
    }
}

kernel! {
    /// `y[i] (+)= bias[i] + W[rows.start + i] · x` over row-major weights `w` (`x.len()`
    /// columns) of f32, or fp16 bit patterns widened in registers; adds to `y` when
    /// `accumulate`.
    pub fn gemv<T: Element>(
        s,
        w: &[T],
        x: &[f32],
        rows: Range<usize>,
        bias: Option<&[f32]>,
        y: &mut [f32],
        accumulate: bool,
    ) {
        gemv_rows_in(s, w, x, rows, bias, y, accumulate)
    }
}
