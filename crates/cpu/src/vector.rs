//! Vector primitives: dot products and `y += αx` over f32 or fp16 data, lane-parallel sums
//! and maxima, scaling, and the vectorizable `exp`/`tanh` the activations use.
//!
//! The `*_in` functions are the generic bodies, for other kernels to call inside their own
//! instantiation; the public functions dispatch on a [`Cpu`](crate::Cpu).

use crate::kernel;
use crate::simd::{Element, Simd};

/// `Σ a[j]·b[j]` over the common length, in four vector accumulators.
#[inline(always)]
pub(crate) fn dot_in<S: Simd, T: Element>(s: S, a: &[f32], b: &[T]) -> f32 {
    let n = a.len().min(b.len());
    let l = S::LANES;
    let (ap, bp) = (a.as_ptr(), b.as_ptr());
    let mut acc = [s.zero(); 4];
    let mut j = 0;
    while j + 4 * l <= n {
        for (u, acc) in acc.iter_mut().enumerate() {
            // SAFETY: j + 4·LANES ≤ n, inside both slices.
            *acc = unsafe {
                s.fma(
                    s.load(ap.add(j + u * l)),
                    T::load(s, bp.add(j + u * l)),
                    *acc,
                )
            };
        }
        j += 4 * l;
    }
    while j + l <= n {
        // SAFETY: j + LANES ≤ n.
        acc[0] = unsafe { s.fma(s.load(ap.add(j)), T::load(s, bp.add(j)), acc[0]) };
        j += l;
    }
    let mut total = s.sum(s.add(s.add(acc[0], acc[1]), s.add(acc[2], acc[3])));
    for jj in j..n {
        total += a[jj] * b[jj].widen();
    }
    total
}

/// `y[j] += α·x[j]` over the common length.
#[inline(always)]
pub(crate) fn axpy_in<S: Simd, T: Element>(s: S, alpha: f32, x: &[T], y: &mut [f32]) {
    let n = x.len().min(y.len());
    let l = S::LANES;
    let va = s.splat(alpha);
    let (xp, yp) = (x.as_ptr(), y.as_mut_ptr());
    let mut j = 0;
    while j + l <= n {
        // SAFETY: j + LANES ≤ n, inside both slices.
        unsafe {
            s.store(
                yp.add(j),
                s.fma(va, T::load(s, xp.add(j)), s.load(yp.add(j))),
            )
        };
        j += l;
    }
    for jj in j..n {
        y[jj] += alpha * x[jj].widen();
    }
}

kernel! {
    /// `a · b` over the common length.
    pub fn dot(s, a: &[f32], b: &[f32]) -> f32 {
        dot_in(s, a, b)
    }
}

kernel! {
    /// `a · b` for fp16 `b` (bit patterns) over the common length.
    pub fn dot_f16(s, a: &[f32], b: &[u16]) -> f32 {
        dot_in(s, a, b)
    }
}

kernel! {
    /// `y += α·x` over the common length.
    pub fn axpy(s, alpha: f32, x: &[f32], y: &mut [f32]) {
        axpy_in(s, alpha, x, y)
    }
}

/// Lanes of the order-fixed reductions below: results are the same at every level.
pub(crate) const LANES: usize = 16;

/// `Σ f(x_i)`, element `i` into lane `i mod 16`, lanes added in order, then the tail: the
/// same value at every level (plain operations the compiler vectorizes).
#[inline(always)]
pub(crate) fn sum_lanes(x: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0.0f32; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail: f32 = chunks.remainder().iter().map(|&v| f(v)).sum();
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += f(v);
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// `Σ a_i · b_i` summed as [`sum_lanes`] sums (no fused multiply-add).
#[inline(always)]
pub(crate) fn dot_lanes_in(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for ((s, &x), &y) in acc.iter_mut().zip(x).zip(y) {
            *s += x * y;
        }
    }
    acc.iter().sum::<f32>() + tail
}

kernel! {
    /// `Σ a_i · b_i` in a fixed order of separate multiplies and adds: the same value at
    /// every level.
    pub fn dot_lanes(s, a: &[f32], b: &[f32]) -> f32 {
        dot_lanes_in(a, b)
    }
}

kernel! {
    /// The sum of `x` in the fixed order of `dot_lanes`.
    pub fn sum(s, x: &[f32]) -> f32 {
        sum_lanes(x, |v| v)
    }
}

/// The largest value (−inf when empty; NaNs ignored), in [`LANES`] lanes.
#[inline(always)]
pub(crate) fn max_lanes_in(x: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a = if v > *a { v } else { *a };
        }
    }
    tail.iter()
        .chain(&acc)
        .fold(f32::NEG_INFINITY, |m, &v| m.max(v))
}

kernel! {
    /// The largest value of `x` (−inf when empty; NaNs ignored).
    pub fn max(s, x: &[f32]) -> f32 {
        max_lanes_in(x)
    }
}

/// Replaces each `x` by `e^(x − shift)` ([`exp_fast`]) and returns their sum in lanes.
#[inline(always)]
pub(crate) fn exp_shifted_sum_in(x: &mut [f32], shift: f32) -> f32 {
    let mut acc = [0.0f32; LANES];
    let mut chunks = x.chunks_exact_mut(LANES);
    for c in &mut chunks {
        for (a, v) in acc.iter_mut().zip(c.iter_mut()) {
            *v = exp_fast(*v - shift);
            *a += *v;
        }
    }
    let mut tail = 0.0;
    for v in chunks.into_remainder() {
        *v = exp_fast(*v - shift);
        tail += *v;
    }
    acc.iter().sum::<f32>() + tail
}

kernel! {
    /// Replaces each `x` by `e^(x − shift)` and returns their sum: the same at every level.
    pub fn exp_shifted_sum(s, x: &mut [f32], shift: f32) -> f32 {
        exp_shifted_sum_in(x, shift)
    }
}

kernel! {
    /// `x *= k`, elementwise.
    pub fn scale(s, x: &mut [f32], k: f32) {
        x.iter_mut().for_each(|v| *v *= k);
    }
}

kernel! {
    /// `acc += x`, elementwise over the common length.
    pub fn add(s, acc: &mut [f32], x: &[f32]) {
        acc.iter_mut().zip(x).for_each(|(a, x)| *a += x);
    }
}

kernel! {
    /// `out = a · b`, elementwise over the common length.
    pub fn mul(s, out: &mut [f32], a: &[f32], b: &[f32]) {
        for ((o, &a), &b) in out.iter_mut().zip(a).zip(b) {
            *o = a * b;
        }
    }
}

/// `e^x`, written so the compiler vectorizes it: range reduction by `ln 2`, a degree-6
/// Taylor polynomial on `|r| ≤ ln2/2` (relative error below 2e-7) and the exponent put in by
/// bit arithmetic (no float-to-int conversion). Clamps below −86 (to e^−86 ≈ 4e−38) and is
/// +inf above 88.72; NaN stays NaN (`clamp` keeps it).
#[inline(always)]
pub fn exp_fast(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    const ROUND: f32 = 12_582_912.0; // 1.5 · 2^23: adding and subtracting rounds to integer
    let big = x > 88.72;
    let x = x.clamp(-86.0, 88.72);
    let n = (x * LOG2E + ROUND) - ROUND;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    // The low bits of `n − 1 + 127 + 1.5·2^23` are the biased exponent of 2^(n−1); shifted
    // into place they make that power of two (normal for n in [−124, 128]).
    let half_scale = f32::from_bits((n + (ROUND + 126.0)).to_bits() << 23);
    let y = p * half_scale * 2.0;
    if big {
        f32::INFINITY
    } else {
        y
    }
}

/// `tanh(u) = 1 − 2 / (e^{2u} + 1)`, vectorizable (absolute error about 1e-7).
#[inline(always)]
pub fn tanh_fast(u: f32) -> f32 {
    1.0 - 2.0 / (exp_fast(2.0 * u) + 1.0)
}

kernel! {
    /// `out[i] = f(a[i], b[i])` over the common length, `f` compiled for the level.
    pub fn zip_with<F: Fn(f32, f32) -> f32>(s, out: &mut [f32], a: &[f32], b: &[f32], f: F) {
        for ((o, &a), &b) in out.iter_mut().zip(a).zip(b) {
            *o = f(a, b);
        }
    }
}

kernel! {
    /// `out[i] = f(a[i])` over the common length, `f` compiled for the level.
    pub fn map<F: Fn(f32) -> f32>(s, out: &mut [f32], a: &[f32], f: F) {
        for (o, &a) in out.iter_mut().zip(a) {
            *o = f(a);
        }
    }
}
