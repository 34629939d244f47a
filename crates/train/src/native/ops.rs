//! Row-wise pieces of the native layers, forward and backward: linear layers over
//! [`matmul`], layer and RMS norms, GELU (tanh form), SiLU gating and bias sums. Rows are
//! tokens; every buffer is row-major `[N, width]`. Row loops run on the rayon pool.

use super::gemm::{matmul, Precision};
use rayon::prelude::*;
use runtime::emulator::gemm::MatRef;

/// Rows per rayon task in the row-wise operators.
const ROWS: usize = 16;

/// True when the CPU has AVX-512F (checked once).
#[cfg(target_arch = "x86_64")]
fn wide_simd() -> bool {
    use std::sync::OnceLock;
    static WIDE: OnceLock<bool> = OnceLock::new();
    *WIDE.get_or_init(|| std::arch::is_x86_feature_detected!("avx512f"))
}

/// Defines an elementwise kernel compiled twice: for the baseline target and with AVX-512F
/// enabled, picked at run time. The body is plain Rust the compiler vectorizes; both builds
/// do the same IEEE operations in the same order (no FMA contraction), so results are
/// bit-identical whichever runs.
macro_rules! multiversion {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn imp($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                fn wide($($arg: $ty),*) $(-> $ret)? {
                    imp($($arg),*)
                }
                if wide_simd() {
                    // SAFETY: AVX-512F was detected on this CPU just above.
                    return unsafe { wide($($arg),*) };
                }
            }
            imp($($arg),*)
        }
    };
}

/// `y [N, out] = x [N, in] · Wᵀ (+ b)`, with `w` row-major `[out, in]`.
pub fn linear(y: &mut [f32], x: &[f32], w: &[f32], b: Option<&[f32]>, n_in: usize, p: Precision) {
    let (n, out) = (x.len() / n_in, w.len() / n_in);
    if let Some(b) = b {
        y.par_chunks_mut(out * ROWS).for_each(|rows| {
            for row in rows.chunks_mut(out) {
                row.copy_from_slice(b);
            }
        });
    }
    matmul(
        y,
        MatRef::row_major(x, n, n_in),
        MatRef::row_major(w, out, n_in).t(),
        b.is_some(),
        p,
    );
}

/// Backward of [`linear`]: `dW (+)= dyᵀ · x`, `db (+)= Σ dy` (added when `accumulate`,
/// overwritten otherwise), and `dx = dy · W` when wanted.
#[allow(clippy::too_many_arguments)]
pub fn linear_backward(
    dx: Option<&mut [f32]>,
    dw: &mut [f32],
    db: Option<&mut [f32]>,
    dy: &[f32],
    x: &[f32],
    w: &[f32],
    n_in: usize,
    p: Precision,
    accumulate: bool,
) {
    let (n, out) = (x.len() / n_in, w.len() / n_in);
    let dy_m = MatRef::row_major(dy, n, out);
    matmul(dw, dy_m.t(), MatRef::row_major(x, n, n_in), accumulate, p);
    if let Some(db) = db {
        column_sums(db, dy, accumulate);
    }
    if let Some(dx) = dx {
        matmul(dx, dy_m, MatRef::row_major(w, out, n_in), false, p);
    }
}

/// `acc[j] (+)= Σ_i m[i, j]` for row-major `m` with `acc.len()` columns: added when
/// `accumulate`, overwritten otherwise.
pub fn column_sums(acc: &mut [f32], m: &[f32], accumulate: bool) {
    let width = acc.len();
    let parts: Vec<Vec<f32>> = m
        .par_chunks(width * 64)
        .map(|rows| {
            let mut sum = vec![0.0f32; width];
            for row in rows.chunks(width) {
                sum.iter_mut().zip(row).for_each(|(s, v)| *s += v);
            }
            sum
        })
        .collect();
    if !accumulate {
        acc.fill(0.0);
    }
    for part in parts {
        acc.iter_mut().zip(part).for_each(|(a, v)| *a += v);
    }
}

/// A norm's saved state: normalized rows `x̂` `[N, C]` and each row's `1/σ` `[N]`.
pub struct NormSaved {
    /// `(x − μ)/σ` (layer norm) or `x/rms` (RMS norm).
    pub xhat: Vec<f32>,
    /// One over the row's standard deviation (or RMS).
    pub rstd: Vec<f32>,
}

impl NormSaved {
    /// Buffers for `n` rows of width `c`.
    pub fn new(n: usize, c: usize) -> Self {
        NormSaved {
            xhat: vec![0.0; n * c],
            rstd: vec![0.0; n],
        }
    }
}

/// `Σ f(x_i)` summed in [`LANES`] lanes (then across them), so it vectorizes.
#[inline(always)]
fn sum_lanes(x: &[f32], f: impl Fn(f32) -> f32) -> f32 {
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

/// `Σ a_i · b_i` summed in [`LANES`] lanes.
#[inline(always)]
pub fn dot_lanes(a: &[f32], b: &[f32]) -> f32 {
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

multiversion! {
/// One row of [`norm_forward`]; returns `1/σ`.
fn norm_row(
    y: &mut [f32],
    xhat: &mut [f32],
    x: &[f32],
    gamma: &[f32],
    beta: Option<&[f32]>,
    centered: bool,
    eps: f32,
) -> f32 {
    let c = x.len() as f32;
    let mean = if centered { sum_lanes(x, |v| v) / c } else { 0.0 };
    let var = sum_lanes(x, |v| (v - mean) * (v - mean)) / c;
    let rstd = 1.0 / (var + eps).sqrt();
    for (xh, &v) in xhat.iter_mut().zip(x) {
        *xh = (v - mean) * rstd;
    }
    match beta {
        Some(b) => {
            for (((y, &xh), &g), &b) in y.iter_mut().zip(xhat.iter()).zip(gamma).zip(b) {
                *y = xh * g + b;
            }
        }
        None => {
            for ((y, &xh), &g) in y.iter_mut().zip(xhat.iter()).zip(gamma) {
                *y = xh * g;
            }
        }
    }
    rstd
}
}

/// `y = x̂ · γ (+ β)` per row, saving `x̂` and `1/σ`: layer norm (mean removed) when
/// `centered`, RMS norm otherwise.
pub fn norm_forward(
    y: &mut [f32],
    saved: &mut NormSaved,
    x: &[f32],
    gamma: &[f32],
    beta: Option<&[f32]>,
    centered: bool,
    eps: f32,
) {
    let c = gamma.len();
    y.par_chunks_mut(c)
        .zip(saved.xhat.par_chunks_mut(c))
        .zip(saved.rstd.par_iter_mut())
        .zip(x.par_chunks(c))
        .with_min_len(ROWS)
        .for_each(|(((y, xhat), rstd), x)| {
            *rstd = norm_row(y, xhat, x, gamma, beta, centered, eps);
        });
}

multiversion! {
/// One row of [`norm_backward`]'s `dx`; `g` is a row-sized buffer.
fn norm_back_row(
    dx: &mut [f32],
    g: &mut [f32],
    dy: &[f32],
    xhat: &[f32],
    gamma: &[f32],
    rstd: f32,
    centered: bool,
) {
    let c = dy.len() as f32;
    for ((g, &d), &w) in g.iter_mut().zip(dy).zip(gamma) {
        *g = d * w;
    }
    let mean = if centered { sum_lanes(g, |v| v) / c } else { 0.0 };
    let mean_dot = dot_lanes(g, xhat) / c;
    for ((dx, &g), &xh) in dx.iter_mut().zip(g.iter()).zip(xhat) {
        *dx += rstd * (g - mean - xh * mean_dot);
    }
}
}

/// Backward of [`norm_forward`]: `dx += ∂/∂x` (`dx` already holds the residual stream's
/// gradient), `dγ (+)= Σ dy·x̂`, `dβ (+)= Σ dy` (added when `accumulate`).
#[allow(clippy::too_many_arguments)]
pub fn norm_backward(
    dx: &mut [f32],
    dgamma: &mut [f32],
    dbeta: Option<&mut [f32]>,
    dy: &[f32],
    saved: &NormSaved,
    gamma: &[f32],
    centered: bool,
    accumulate: bool,
) {
    let c = gamma.len();
    dx.par_chunks_mut(c * ROWS)
        .zip(dy.par_chunks(c * ROWS))
        .zip(saved.xhat.par_chunks(c * ROWS))
        .zip(saved.rstd.par_chunks(ROWS))
        .for_each(|(((dx, dy), xhat), rstd)| {
            let mut g = vec![0.0f32; c];
            for (((dx, dy), xhat), &r) in dx
                .chunks_mut(c)
                .zip(dy.chunks(c))
                .zip(xhat.chunks(c))
                .zip(rstd)
            {
                norm_back_row(dx, &mut g, dy, xhat, gamma, r, centered);
            }
        });
    let mut prod = vec![0.0f32; dy.len()];
    prod.par_chunks_mut(c * ROWS)
        .zip(dy.par_chunks(c * ROWS))
        .zip(saved.xhat.par_chunks(c * ROWS))
        .for_each(|((p, dy), xhat)| {
            for ((p, d), x) in p.iter_mut().zip(dy).zip(xhat) {
                *p = d * x;
            }
        });
    column_sums(dgamma, &prod, accumulate);
    if let Some(db) = dbeta {
        column_sums(db, dy, accumulate);
    }
}

/// `e^x`, written so the compiler vectorizes it: range reduction by `ln 2`, a degree-6
/// Taylor polynomial on `|r| ≤ ln2/2` (relative error below 2e-7) and the exponent put in by
/// bit arithmetic (no float-to-int conversion). Clamps below −86 (to e^−86 ≈ 4e−38) and is
/// +inf above 88.72.
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

/// Lanes of the vectorizable reductions below.
const LANES: usize = 16;

multiversion! {
/// The largest value of `x` (−inf when empty), reduced in [`LANES`] independent lanes so the
/// compiler vectorizes it.
pub fn max_lanes(x: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a = if v > *a { v } else { *a };
        }
    }
    tail.iter().chain(&acc).fold(f32::NEG_INFINITY, |m, &v| m.max(v))
}
}

multiversion! {
/// Replaces each `x` by `e^(x − shift)` and returns their sum (summed in [`LANES`] lanes).
pub fn exp_shifted_sum(x: &mut [f32], shift: f32) -> f32 {
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
}

multiversion! {
/// `x *= k`, elementwise.
pub fn scale_in_place(x: &mut [f32], k: f32) {
    x.iter_mut().for_each(|v| *v *= k);
}
}

/// `tanh(u) = 1 − 2 / (e^{2u} + 1)`, vectorizable (absolute error about 1e-7).
#[inline(always)]
fn tanh_fast(u: f32) -> f32 {
    1.0 - 2.0 / (exp_fast(2.0 * u) + 1.0)
}

const GELU_K: f32 = 0.797_884_6; // √(2/π)
const GELU_C: f32 = 0.044_715;

multiversion! {
/// One chunk of [`gelu_forward`].
fn gelu_chunk(g: &mut [f32], t: &mut [f32], h: &[f32]) {
    for ((g, t), &h) in g.iter_mut().zip(t.iter_mut()).zip(h) {
        *t = tanh_fast(GELU_K * (h + GELU_C * h * h * h));
        *g = 0.5 * h * (1.0 + *t);
    }
}
}

/// GELU (tanh form) of `h` into `g`, saving `t = tanh(√(2/π)(h + 0.044715 h³))` for backward.
pub fn gelu_forward(g: &mut [f32], t: &mut [f32], h: &[f32]) {
    g.par_chunks_mut(4096)
        .zip(t.par_chunks_mut(4096))
        .zip(h.par_chunks(4096))
        .for_each(|((g, t), h)| gelu_chunk(g, t, h));
}

multiversion! {
/// One chunk of [`gelu_backward`].
fn gelu_back_chunk(dg: &mut [f32], t: &[f32], h: &[f32]) {
    for ((d, &t), &h) in dg.iter_mut().zip(t).zip(h) {
        let du = GELU_K * (1.0 + 3.0 * GELU_C * h * h);
        *d *= 0.5 * (1.0 + t) + 0.5 * h * (1.0 - t * t) * du;
    }
}
}

/// Backward of [`gelu_forward`]: `dh = dg · gelu'(h)`, in place over `dg`.
pub fn gelu_backward(dg: &mut [f32], t: &[f32], h: &[f32]) {
    dg.par_chunks_mut(4096)
        .zip(t.par_chunks(4096))
        .zip(h.par_chunks(4096))
        .for_each(|((dg, t), h)| gelu_back_chunk(dg, t, h));
}

multiversion! {
/// One chunk of [`swiglu_forward`].
fn swiglu_chunk(s: &mut [f32], sig: &mut [f32], a: &[f32], b: &[f32]) {
    for (((s, sig), &a), &b) in s.iter_mut().zip(sig.iter_mut()).zip(a).zip(b) {
        *sig = 1.0 / (1.0 + exp_fast(-a));
        *s = a * *sig * b;
    }
}
}

/// SwiGLU gating: `s = silu(a) · b`, saving `σ(a)` for backward.
pub fn swiglu_forward(s: &mut [f32], sig: &mut [f32], a: &[f32], b: &[f32]) {
    s.par_chunks_mut(4096)
        .zip(sig.par_chunks_mut(4096))
        .zip(a.par_chunks(4096).zip(b.par_chunks(4096)))
        .for_each(|((s, sig), (a, b))| swiglu_chunk(s, sig, a, b));
}

multiversion! {
/// One chunk of [`swiglu_backward`].
fn swiglu_back_chunk(d: &mut [f32], db: &mut [f32], sig: &[f32], a: &[f32], b: &[f32]) {
    let n = d.len().min(db.len()).min(sig.len()).min(a.len()).min(b.len());
    for i in 0..n {
        let silu = a[i] * sig[i];
        db[i] = d[i] * silu;
        d[i] *= b[i] * sig[i] * (1.0 + a[i] * (1.0 - sig[i]));
    }
}
}

/// Backward of [`swiglu_forward`]: from `ds`, writes `da` over `ds` and `db` into `db`.
pub fn swiglu_backward(ds_da: &mut [f32], db: &mut [f32], sig: &[f32], a: &[f32], b: &[f32]) {
    ds_da
        .par_chunks_mut(4096)
        .zip(db.par_chunks_mut(4096))
        .zip(
            sig.par_chunks(4096)
                .zip(a.par_chunks(4096).zip(b.par_chunks(4096))),
        )
        .for_each(|((d, db), (sig, (a, b)))| swiglu_back_chunk(d, db, sig, a, b));
}

/// `acc += x`, elementwise.
pub fn add_into(acc: &mut [f32], x: &[f32]) {
    acc.par_chunks_mut(4096)
        .zip(x.par_chunks(4096))
        .for_each(|(a, x)| a.iter_mut().zip(x).for_each(|(a, x)| *a += x));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_fast_is_within_a_few_ulp_of_std() {
        let mut worst = 0.0f32;
        for i in -8600..8870 {
            let x = i as f32 / 100.0;
            let (got, want) = (exp_fast(x), x.exp());
            worst = worst.max(((got - want) / want).abs());
        }
        assert!(worst < 5e-7, "relative error {worst}");
        assert_eq!(exp_fast(100.0), f32::INFINITY);
        assert!(exp_fast(-100.0) < 1e-37);
    }

    #[test]
    fn lane_reductions_match_serial_ones() {
        let x: Vec<f32> = (0..1000)
            .map(|i| ((i * 7919) % 1013) as f32 / 100.0 - 5.0)
            .collect();
        assert_eq!(max_lanes(&x), x.iter().cloned().fold(f32::MIN, f32::max));
        assert_eq!(
            max_lanes(&x[..5]),
            x[..5].iter().cloned().fold(f32::MIN, f32::max)
        );
        let mut y = x.clone();
        let sum = exp_shifted_sum(&mut y, 5.0);
        let want: f64 = x.iter().map(|v| (f64::from(*v) - 5.0).exp()).sum();
        assert!(
            (f64::from(sum) - want).abs() < 1e-5 * want,
            "{sum} vs {want}"
        );
        assert!((y[3] - (x[3] - 5.0).exp()).abs() < 1e-6);
    }

    #[test]
    fn tanh_fast_tracks_std_tanh() {
        for i in -2000..2000 {
            let u = i as f32 / 100.0;
            assert!((tanh_fast(u) - u.tanh()).abs() < 3e-7, "tanh({u})");
        }
    }
}
