//! AVX-512 kernels (x86-64 only): fp16/f32 matrix-vector rows, the 4×4 GEMM tile, dot,
//! axpy, fp16 widening and narrowing, and attention over f32 or fp16 key/value caches.
//! Callers check [`available`] first.

use std::arch::x86_64::*;

/// Whether the CPU has what these kernels use (AVX-512F; fp16 widening is part of it).
pub fn available() -> bool {
    is_x86_feature_detected!("avx512f")
}

/// Adds the 16 lanes.
#[inline]
#[target_feature(enable = "avx512f")]
fn hsum(v: __m512) -> f32 {
    _mm512_reduce_add_ps(v)
}

/// How many rows ahead the matrix-vector kernels prefetch (into L2).
const PREFETCH_ROWS: usize = 8;

/// How many cached positions ahead the attention kernels prefetch: a head's rows are a
/// strided stream the hardware prefetchers follow poorly, so this reaches far ahead.
const PREFETCH_POSITIONS: usize = 24;

/// Prefetches `bytes` bytes from `p` into L2.
#[inline]
#[target_feature(enable = "avx512f")]
fn prefetch_l2(p: *const i8, bytes: usize) {
    for off in (0..bytes).step_by(64) {
        // Prefetching never faults, whatever the address.
        _mm_prefetch::<_MM_HINT_T1>(p.wrapping_add(off));
    }
}

/// Loads 16 fp16 values at `p` widened to f32.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn load_h(p: *const u16) -> __m512 {
    _mm512_cvtph_ps(_mm256_loadu_si256(p as *const __m256i))
}

macro_rules! gemv_rows {
    ($name:ident, $t:ty, $load:ident, $widen:expr) => {
        /// `y[i] (+)= bias[i] + W[rows.start + i] · x` for a block of rows of the row-major
        /// matrix `w` with `x.len()` columns.
        ///
        /// # Safety
        /// AVX-512F must be available.
        #[target_feature(enable = "avx512f")]
        pub unsafe fn $name(
            w: &[$t],
            x: &[f32],
            rows: std::ops::Range<usize>,
            bias: Option<&[f32]>,
            y: &mut [f32],
            accumulate: bool,
        ) {
            let k = x.len();
            assert!(rows.end * k <= w.len() && y.len() == rows.len());
            let k32 = k / 32 * 32;
            let k16 = k / 16 * 16;
            let xp = x.as_ptr();
            prefetch_l2(
                w.as_ptr().wrapping_add(rows.start * k) as *const i8,
                PREFETCH_ROWS.min(rows.len()) * k * std::mem::size_of::<$t>(),
            );
            let mut r = rows.start;
            while r < rows.end {
                let n = (rows.end - r).min(4);
                // Rows past the block repeat the last one; their sums are discarded.
                let p: [*const $t; 4] =
                    std::array::from_fn(|i| w.as_ptr().add((r + i.min(n - 1)) * k));
                let mut a = [_mm512_setzero_ps(); 8];
                let mut j = 0;
                while j < k32 {
                    for &pi in &p {
                        // The same columns PREFETCH_ROWS rows on: the matrix is one sequential
                        // stream, fetched into L2 that far ahead.
                        let ahead = pi.wrapping_add(j + PREFETCH_ROWS * k) as *const i8;
                        _mm_prefetch::<_MM_HINT_T1>(ahead);
                        if std::mem::size_of::<$t>() == 4 {
                            _mm_prefetch::<_MM_HINT_T1>(ahead.wrapping_add(64));
                        }
                    }
                    let x0 = _mm512_loadu_ps(xp.add(j));
                    let x1 = _mm512_loadu_ps(xp.add(j + 16));
                    for i in 0..4 {
                        a[2 * i] = _mm512_fmadd_ps($load(p[i].add(j)), x0, a[2 * i]);
                        a[2 * i + 1] = _mm512_fmadd_ps($load(p[i].add(j + 16)), x1, a[2 * i + 1]);
                    }
                    j += 32;
                }
                if j < k16 {
                    let x0 = _mm512_loadu_ps(xp.add(j));
                    for i in 0..4 {
                        a[2 * i] = _mm512_fmadd_ps($load(p[i].add(j)), x0, a[2 * i]);
                    }
                }
                for i in 0..n {
                    let mut s = hsum(_mm512_add_ps(a[2 * i], a[2 * i + 1]));
                    for jj in k16..k {
                        s += $widen(*p[i].add(jj)) * x[jj];
                    }
                    let o = r + i - rows.start;
                    s += bias.map_or(0.0, |b| b[o]);
                    y[o] = if accumulate { y[o] + s } else { s };
                }
                r += n;
            }
        }
    };
}

#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn load_s(p: *const f32) -> __m512 {
    _mm512_loadu_ps(p)
}

gemv_rows!(gemv_f16, u16, load_h, |v: u16| half::f16::from_bits(v)
    .to_f32());
gemv_rows!(gemv_f32, f32, load_s, |v: f32| v);

/// The 4×4 block of dot products `out[i][t] = w[i] · x[t]` over `k` elements.
///
/// # Safety
/// AVX-512F must be available and every pointer valid for `k` reads.
#[target_feature(enable = "avx512f")]
pub unsafe fn tile4x4(w: [*const f32; 4], x: [*const f32; 4], k: usize) -> [[f32; 4]; 4] {
    let mut a = [[_mm512_setzero_ps(); 4]; 4];
    let k16 = k / 16 * 16;
    let mut j = 0;
    while j < k16 {
        let xv = [
            _mm512_loadu_ps(x[0].add(j)),
            _mm512_loadu_ps(x[1].add(j)),
            _mm512_loadu_ps(x[2].add(j)),
            _mm512_loadu_ps(x[3].add(j)),
        ];
        for i in 0..4 {
            let wv = _mm512_loadu_ps(w[i].add(j));
            for t in 0..4 {
                a[i][t] = _mm512_fmadd_ps(wv, xv[t], a[i][t]);
            }
        }
        j += 16;
    }
    let mut out = [[0.0; 4]; 4];
    for i in 0..4 {
        for t in 0..4 {
            let mut s = hsum(a[i][t]);
            for jj in k16..k {
                s += *w[i].add(jj) * *x[t].add(jj);
            }
            out[i][t] = s;
        }
    }
    out
}

/// `a · b`.
///
/// # Safety
/// AVX-512F must be available.
#[target_feature(enable = "avx512f")]
pub unsafe fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let n16 = n / 16 * 16;
    let mut acc = _mm512_setzero_ps();
    let mut j = 0;
    while j < n16 {
        let va = _mm512_loadu_ps(a.as_ptr().add(j));
        acc = _mm512_fmadd_ps(va, _mm512_loadu_ps(b.as_ptr().add(j)), acc);
        j += 16;
    }
    let mut s = hsum(acc);
    for jj in n16..n {
        s += a[jj] * b[jj];
    }
    s
}

/// `y += alpha · x`.
///
/// # Safety
/// AVX-512F must be available.
#[target_feature(enable = "avx512f")]
pub unsafe fn axpy(alpha: f32, x: &[f32], y: &mut [f32]) {
    let n = x.len().min(y.len());
    let n16 = n / 16 * 16;
    let va = _mm512_set1_ps(alpha);
    let mut j = 0;
    while j < n16 {
        let py = y.as_mut_ptr().add(j);
        _mm512_storeu_ps(
            py,
            _mm512_fmadd_ps(va, _mm512_loadu_ps(x.as_ptr().add(j)), _mm512_loadu_ps(py)),
        );
        j += 16;
    }
    for jj in n16..n {
        y[jj] += alpha * x[jj];
    }
}

/// Widens fp16 bit patterns to f32.
///
/// # Safety
/// AVX-512F must be available.
#[target_feature(enable = "avx512f")]
pub unsafe fn f16_to_f32(src: &[u16], dst: &mut [f32]) {
    let n = src.len().min(dst.len());
    let n16 = n / 16 * 16;
    let mut j = 0;
    while j < n16 {
        _mm512_storeu_ps(dst.as_mut_ptr().add(j), load_h(src.as_ptr().add(j)));
        j += 16;
    }
    for jj in n16..n {
        dst[jj] = half::f16::from_bits(src[jj]).to_f32();
    }
}

/// Narrows f32 values to fp16 bit patterns, rounding to nearest even.
///
/// # Safety
/// AVX-512F must be available.
#[target_feature(enable = "avx512f")]
pub unsafe fn f32_to_f16(src: &[f32], dst: &mut [u16]) {
    let n = src.len().min(dst.len());
    let n16 = n / 16 * 16;
    let mut j = 0;
    while j < n16 {
        let h = _mm512_cvtps_ph::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
            _mm512_loadu_ps(src.as_ptr().add(j)),
        );
        _mm256_storeu_si256(dst.as_mut_ptr().add(j) as *mut __m256i, h);
        j += 16;
    }
    for jj in n16..n {
        dst[jj] = half::f16::from_f32(src[jj]).to_bits();
    }
}

/// `a · b` for fp16 `b`.
///
/// # Safety
/// AVX-512F must be available.
#[target_feature(enable = "avx512f")]
unsafe fn dot_h(a: &[f32], b: &[u16]) -> f32 {
    let n = a.len().min(b.len());
    let n16 = n / 16 * 16;
    let mut acc = _mm512_setzero_ps();
    let mut j = 0;
    while j < n16 {
        let va = _mm512_loadu_ps(a.as_ptr().add(j));
        acc = _mm512_fmadd_ps(va, load_h(b.as_ptr().add(j)), acc);
        j += 16;
    }
    let mut s = hsum(acc);
    for jj in n16..n {
        s += a[jj] * half::f16::from_bits(b[jj]).to_f32();
    }
    s
}

/// `y += alpha · x` for fp16 `x`.
///
/// # Safety
/// AVX-512F must be available.
#[target_feature(enable = "avx512f")]
unsafe fn axpy_h(alpha: f32, x: &[u16], y: &mut [f32]) {
    let n = x.len().min(y.len());
    let n16 = n / 16 * 16;
    let va = _mm512_set1_ps(alpha);
    let mut j = 0;
    while j < n16 {
        let py = y.as_mut_ptr().add(j);
        _mm512_storeu_ps(
            py,
            _mm512_fmadd_ps(va, load_h(x.as_ptr().add(j)), _mm512_loadu_ps(py)),
        );
        j += 16;
    }
    for jj in n16..n {
        y[jj] += alpha * half::f16::from_bits(x[jj]).to_f32();
    }
}

macro_rules! attention_kernels {
    ($scores:ident, $sum:ident, $t:ty, $load:ident, $dot:ident, $axpy:ident) => {
        /// `scores[s] = scale · q · keys[s·stride..][..q.len()]`.
        ///
        /// # Safety
        /// AVX-512F must be available and `keys` must hold every row.
        #[target_feature(enable = "avx512f")]
        pub unsafe fn $scores(
            q: &[f32],
            keys: &[$t],
            stride: usize,
            scale: f32,
            scores: &mut [f32],
        ) {
            let hd = q.len();
            let kp = keys.as_ptr();
            if !hd.is_multiple_of(16) || hd > 256 {
                for (s, sc) in scores.iter_mut().enumerate() {
                    *sc = $dot(q, std::slice::from_raw_parts(kp.add(s * stride), hd)) * scale;
                }
                return;
            }
            let lanes = hd / 16;
            let mut qv = [_mm512_setzero_ps(); 16];
            for (c, v) in qv.iter_mut().enumerate().take(lanes) {
                *v = _mm512_loadu_ps(q.as_ptr().add(16 * c));
            }
            for (s, sc) in scores.iter_mut().enumerate() {
                prefetch_l2(
                    kp.wrapping_add((s + PREFETCH_POSITIONS) * stride) as *const i8,
                    hd * std::mem::size_of::<$t>(),
                );
                let row = kp.add(s * stride);
                let mut acc = _mm512_setzero_ps();
                for (c, v) in qv.iter().enumerate().take(lanes) {
                    acc = _mm512_fmadd_ps(*v, $load(row.add(16 * c)), acc);
                }
                *sc = hsum(acc) * scale;
            }
        }

        /// `out = Σ_s p[s] · values[s·stride..][..out.len()]`, the sums held in registers
        /// when `out` is at most 256 wide and a multiple of 16.
        ///
        /// # Safety
        /// AVX-512F must be available and `values` must hold every row.
        #[target_feature(enable = "avx512f")]
        pub unsafe fn $sum(p: &[f32], values: &[$t], stride: usize, out: &mut [f32]) {
            let hd = out.len();
            let vp = values.as_ptr();
            if !hd.is_multiple_of(16) || hd > 256 {
                out.fill(0.0);
                for (s, &w) in p.iter().enumerate() {
                    $axpy(w, std::slice::from_raw_parts(vp.add(s * stride), hd), out);
                }
                return;
            }
            let lanes = hd / 16;
            let mut acc = [_mm512_setzero_ps(); 16];
            for (s, &w) in p.iter().enumerate() {
                prefetch_l2(
                    vp.wrapping_add((s + PREFETCH_POSITIONS) * stride) as *const i8,
                    hd * std::mem::size_of::<$t>(),
                );
                let ws = _mm512_set1_ps(w);
                let row = vp.add(s * stride);
                for (c, a) in acc.iter_mut().enumerate().take(lanes) {
                    *a = _mm512_fmadd_ps(ws, $load(row.add(16 * c)), *a);
                }
            }
            for (c, a) in acc.iter().enumerate().take(lanes) {
                _mm512_storeu_ps(out.as_mut_ptr().add(16 * c), *a);
            }
        }
    };
}

attention_kernels!(attention_scores, weighted_sum, f32, load_s, dot, axpy);
attention_kernels!(
    attention_scores_f16,
    weighted_sum_f16,
    u16,
    load_h,
    dot_h,
    axpy_h
);
