//! Matrix products `Y = X Wᵀ` with both operands contiguous along k (activations `[t, k]`,
//! weights `[n, k]` in f32 or fp16): register tiles of a few weight rows × a few tokens, each
//! a block of dot products summed in vector lanes and reduced once at the end.
//!
//! Weights are widened to f32 a few rows at a time into a buffer that stays in L1 and is
//! reused for a block of tokens; the token block is sized to stay in L2. Nothing is packed, so
//! the same code serves prefill (many tokens) and any k-contiguous product.

use std::ops::Range;

use crate::simd::{Element, Simd};

/// Tokens per block: `TOKENS × k` f32 activations stay in L2 while every weight row of the
/// caller's range passes over them.
const TOKENS: usize = 64;

/// Where a block of products goes: `out[token · ld + row]` for the row-major output.
#[derive(Clone, Copy)]
pub(crate) struct Out {
    /// Element (token 0, row 0) of the block.
    pub ptr: *mut f32,
    /// Elements between tokens.
    pub ld: usize,
}

/// `out[tt][i] (+)= bias[i] + x[tt] · w[rows.start + i]` for `x` `[t, k]` (rows `ldx` apart)
/// and the weight rows `rows` of `w` (`k` values each, rows `ldw` apart), writing only columns
/// `0..rows.len()` of each output token row.
///
/// # Safety
/// `out` must be valid for writes at `tt · ld + i` for every token `tt < t` and `i <
/// rows.len()`, and no other thread may access those elements during the call.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(crate) unsafe fn gemm_rows_in<S: Simd, T: Element>(
    s: S,
    w: &[T],
    ldw: usize,
    k: usize,
    rows: Range<usize>,
    x: &[f32],
    ldx: usize,
    bias: Option<&[f32]>,
    out: Out,
    accumulate: bool,
) {
    let t = if k == 0 || x.len() < k {
        0
    } else {
        (x.len() - k) / ldx + 1
    };
    assert!(
        (rows.is_empty() || (rows.end - 1) * ldw + k <= w.len())
            && bias.is_none_or(|b| b.len() == rows.len())
            && ldx >= k
            && ldw >= k,
        "gemm: operands do not match"
    );
    let a = Operands {
        w,
        ldw,
        k,
        x,
        ldx,
        t,
    };
    // SAFETY: the caller's contract, passed on.
    unsafe {
        match (S::TILE_ROWS, S::TILE_COLS) {
            (4, 4) => tiles::<S, T, 4, 4>(s, a, rows, bias, out, accumulate),
            (4, 3) => tiles::<S, T, 4, 3>(s, a, rows, bias, out, accumulate),
            _ => tiles::<S, T, 3, 3>(s, a, rows, bias, out, accumulate),
        }
    }
}

/// The two operands of a product: weight rows and `t` activation rows, `k` values each.
#[derive(Clone, Copy)]
struct Operands<'a, T> {
    w: &'a [T],
    ldw: usize,
    k: usize,
    x: &'a [f32],
    ldx: usize,
    t: usize,
}

/// [`gemm_rows_in`] with an `R × C` register tile.
///
/// # Safety
/// As [`gemm_rows_in`].
#[inline(always)]
unsafe fn tiles<S: Simd, T: Element, const R: usize, const C: usize>(
    s: S,
    a: Operands<'_, T>,
    rows: Range<usize>,
    bias: Option<&[f32]>,
    out: Out,
    accumulate: bool,
) {
    let Operands {
        w,
        ldw,
        k,
        x,
        ldx,
        t,
    } = a;
    if rows.is_empty() || t == 0 {
        return;
    }
    // Widened weight rows when the storage is not f32.
    let mut wide = if T::F32 {
        Vec::new()
    } else {
        vec![0.0f32; R * k]
    };
    for t0 in (0..t).step_by(TOKENS) {
        let tokens = t0..(t0 + TOKENS).min(t);
        for r in rows.clone().step_by(R) {
            let nr = (rows.end - r).min(R);
            if !T::F32 {
                for i in 0..nr {
                    widen_row(s, &w[(r + i) * ldw..][..k], &mut wide[i * k..(i + 1) * k]);
                }
            }
            // Rows past the range repeat the last one; their sums are discarded.
            let wr: [*const f32; R] = std::array::from_fn(|i| {
                let i = i.min(nr - 1);
                match T::as_f32(&w[(r + i) * ldw..][..k]) {
                    Some(f) => f.as_ptr(),
                    None => wide[i * k..].as_ptr(),
                }
            });
            for tt in tokens.clone().step_by(C) {
                let nc = (tokens.end - tt).min(C);
                let xr: [*const f32; C] =
                    std::array::from_fn(|c| x[(tt + c.min(nc - 1)) * ldx..][..k].as_ptr());
                // SAFETY: every pointer addresses k readable values.
                let tile = unsafe { tile::<S, R, C>(s, wr, xr, k) };
                for (c, token) in (tt..tt + nc).enumerate() {
                    for (i, sums) in tile.iter().enumerate().take(nr) {
                        let col = r - rows.start + i;
                        let v = sums[c] + bias.map_or(0.0, |b| b[col]);
                        // SAFETY: token < t and col < rows.len(): the caller's contract.
                        unsafe {
                            let o = out.ptr.add(token * out.ld + col);
                            *o = if accumulate { *o + v } else { v };
                        }
                    }
                }
            }
        }
    }
}

/// Widens one row into `dst` (the same length).
#[inline(always)]
fn widen_row<S: Simd, T: Element>(s: S, src: &[T], dst: &mut [f32]) {
    let n = src.len().min(dst.len());
    let body = n / S::LANES * S::LANES;
    for j in (0..body).step_by(S::LANES) {
        // SAFETY: j + LANES ≤ n, inside both slices.
        unsafe { s.store(dst.as_mut_ptr().add(j), T::load(s, src.as_ptr().add(j))) };
    }
    for j in body..n {
        dst[j] = src[j].widen();
    }
}

/// The `R × C` dot products `w[i] · x[c]` over `k` values.
///
/// # Safety
/// Every pointer must be valid for `k` reads.
#[inline(always)]
unsafe fn tile<S: Simd, const R: usize, const C: usize>(
    s: S,
    w: [*const f32; R],
    x: [*const f32; C],
    k: usize,
) -> [[f32; C]; R] {
    let l = S::LANES;
    let k_vec = k / l * l;
    let mut acc = [[s.zero(); C]; R];
    let mut j = 0;
    while j < k_vec {
        let mut xv = [s.zero(); C];
        for (v, &p) in xv.iter_mut().zip(&x) {
            // SAFETY: j + LANES ≤ k.
            *v = unsafe { s.load(p.add(j)) };
        }
        for (row, &p) in acc.iter_mut().zip(&w) {
            // SAFETY: as above.
            let wv = unsafe { s.load(p.add(j)) };
            for (a, &xc) in row.iter_mut().zip(&xv) {
                *a = s.fma(wv, xc, *a);
            }
        }
        j += l;
    }
    // Plain loops, not closures: the accumulators must not escape, or they live in memory.
    let mut out = [[0.0f32; C]; R];
    for i in 0..R {
        for c in 0..C {
            let mut sum = s.sum(acc[i][c]);
            for jj in k_vec..k {
                // SAFETY: jj < k.
                sum += unsafe { *w[i].add(jj) * *x[c].add(jj) };
            }
            out[i][c] = sum;
        }
    }
    out
}

crate::kernel! {
    /// Columns `rows` of `Y (+)= X Wᵀ + bias` for `x` `[t, k]` (rows `ldx` apart) and weight
    /// rows of `k` values `ldw` apart, into the row-major output at `y` with `ld` elements
    /// between tokens.
    ///
    /// # Safety
    /// `y` must be valid for writes at `tt · ld + rows.start + i` for every token `tt` and
    /// `i < rows.len()`, and no other thread may touch those elements meanwhile.
    pub(crate) unsafe fn gemm_cols<T: Element>(
        s,
        w: &[T],
        ldw: usize,
        k: usize,
        rows: Range<usize>,
        x: &[f32],
        ldx: usize,
        bias: Option<&[f32]>,
        y: *mut f32,
        ld: usize,
        accumulate: bool,
    ) {
        let out = Out { ptr: y.wrapping_add(rows.start), ld };
        // SAFETY: the caller's contract.
        unsafe { gemm_rows_in(s, w, ldw, k, rows, x, ldx, bias, out, accumulate) }
    }
}
