//! Causal attention of new queries over a key/value cache held in f32 or fp16 (widened in
//! registers): one head's scores against every cached position, softmax, and the weighted sum
//! of values, heads spread over a [`Pool`].

use crate::activation::softmax;
use crate::kernel;
use crate::simd::{Element, Simd};
use crate::threads::{Disjoint, Pool};
use crate::vector::{axpy_in, dot_in};

/// How many cached positions ahead the kernels prefetch: a head's rows are a strided stream
/// the hardware prefetchers follow poorly, so this reaches far ahead.
const PREFETCH_POSITIONS: usize = 24;

/// Prefetches the `bytes` bytes at `p` into L2, a cache line at a time.
#[inline(always)]
fn prefetch_span<S: Simd>(s: S, p: *const u8, bytes: usize) {
    for off in (0..bytes).step_by(64) {
        s.prefetch(p.wrapping_add(off));
    }
}

/// `scores[i] = scale · q · keys[i·stride..][..q.len()]` with `q` held in `N` registers.
#[inline(always)]
fn scores_n<S: Simd, T: Element, const N: usize>(
    s: S,
    q: &[f32],
    keys: &[T],
    stride: usize,
    scale: f32,
    scores: &mut [f32],
) {
    let l = S::LANES;
    // SAFETY: q holds N·LANES values (checked by the caller).
    let qv: [S::F; N] = std::array::from_fn(|c| unsafe { s.load(q.as_ptr().add(c * l)) });
    let kp = keys.as_ptr();
    let bytes = N * l * std::mem::size_of::<T>();
    for (i, sc) in scores.iter_mut().enumerate() {
        prefetch_span(
            s,
            kp.wrapping_add((i + PREFETCH_POSITIONS) * stride).cast(),
            bytes,
        );
        let mut acc = [s.zero(); 2];
        for (c, &qc) in qv.iter().enumerate() {
            // SAFETY: row i is inside `keys` (checked by the caller), N·LANES values long.
            let k = unsafe { T::load(s, kp.add(i * stride + c * l)) };
            acc[c % 2] = s.fma(qc, k, acc[c % 2]);
        }
        *sc = s.sum(s.add(acc[0], acc[1])) * scale;
    }
}

/// `out = Σ_i p[i] · values[i·stride..][..out.len()]` with the sums held in `N` registers.
#[inline(always)]
fn weighted_sum_n<S: Simd, T: Element, const N: usize>(
    s: S,
    p: &[f32],
    values: &[T],
    stride: usize,
    out: &mut [f32],
) {
    let l = S::LANES;
    let vp = values.as_ptr();
    let bytes = N * l * std::mem::size_of::<T>();
    let mut acc = [s.zero(); N];
    for (i, &w) in p.iter().enumerate() {
        prefetch_span(
            s,
            vp.wrapping_add((i + PREFETCH_POSITIONS) * stride).cast(),
            bytes,
        );
        let ws = s.splat(w);
        for (c, a) in acc.iter_mut().enumerate() {
            // SAFETY: row i is inside `values` (checked by the caller), N·LANES values long.
            *a = s.fma(ws, unsafe { T::load(s, vp.add(i * stride + c * l)) }, *a);
        }
    }
    for (c, a) in acc.iter().enumerate() {
        // SAFETY: out holds N·LANES values (checked by the caller).
        unsafe { s.store(out.as_mut_ptr().add(c * l), *a) };
    }
}

/// Calls `$f::<S, T, N>` for the head width `$hd` in vectors, or runs `$fallback`.
macro_rules! by_width {
    ($s:ident, $hd:expr, $f:ident ($($arg:expr),*), $fallback:block) => {{
        let lanes = $hd / S::LANES;
        if $hd % S::LANES != 0 {
            $fallback
        } else {
            match lanes {
                1 => $f::<S, T, 1>($s, $($arg),*),
                2 => $f::<S, T, 2>($s, $($arg),*),
                3 => $f::<S, T, 3>($s, $($arg),*),
                4 => $f::<S, T, 4>($s, $($arg),*),
                6 => $f::<S, T, 6>($s, $($arg),*),
                8 => $f::<S, T, 8>($s, $($arg),*),
                12 => $f::<S, T, 12>($s, $($arg),*),
                16 => $f::<S, T, 16>($s, $($arg),*),
                _ => $fallback,
            }
        }
    }};
}

kernel! {
    /// `scores[i] = scale · q · keys[i·stride..][..q.len()]`: one query head against cached
    /// keys (f32, or fp16 bit patterns) that start every `stride` elements.
    pub fn scores<T: Element>(
        s,
        q: &[f32],
        keys: &[T],
        stride: usize,
        scale: f32,
        scores: &mut [f32],
    ) {
        let hd = q.len();
        assert!(
            scores.is_empty() || keys.len() >= (scores.len() - 1) * stride + hd,
            "attention: keys too short"
        );
        by_width!(s, hd, scores_n(q, keys, stride, scale, scores), {
            for (i, sc) in scores.iter_mut().enumerate() {
                *sc = dot_in(s, q, &keys[i * stride..i * stride + hd]) * scale;
            }
        })
    }
}

kernel! {
    /// `out = Σ_i p[i] · values[i·stride..][..out.len()]` over cached values (f32, or fp16
    /// bit patterns).
    pub fn weighted_sum<T: Element>(s, p: &[f32], values: &[T], stride: usize, out: &mut [f32]) {
        let hd = out.len();
        assert!(
            p.is_empty() || values.len() >= (p.len() - 1) * stride + hd,
            "attention: values too short"
        );
        by_width!(s, hd, weighted_sum_n(p, values, stride, out), {
            out.fill(0.0);
            for (i, &w) in p.iter().enumerate() {
                axpy_in(s, w, &values[i * stride..i * stride + hd], out);
            }
        })
    }
}

/// Shapes of one attention call.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    /// Query heads.
    pub n_heads: usize,
    /// Key/value heads (divides `n_heads`).
    pub n_kv_heads: usize,
    /// Values per head.
    pub head_dim: usize,
}

/// Causal attention of `q` (`[t, n_heads·head_dim]`, token `j` at position `start + j`) over a
/// layer's key/value caches (`[positions, n_kv_heads·head_dim]`, filled through the last
/// query) into `out` (`[t, n_heads·head_dim]`); heads are spread over the pool.
pub fn causal<T: Element>(
    pool: &Pool,
    shape: Shape,
    q: &[f32],
    k_cache: &[T],
    v_cache: &[T],
    start: usize,
    out: &mut [f32],
) {
    let Shape {
        n_heads,
        n_kv_heads,
        head_dim: hd,
    } = shape;
    let dim = n_heads * hd;
    let t = q.len() / dim;
    let kv_dim = n_kv_heads * hd;
    let group = n_heads / n_kv_heads;
    let scale = 1.0 / (hd as f32).sqrt();
    let cpu = pool.cpu();
    let outs = Disjoint::new(out);
    // Single items: causal rows differ in length, so claiming one at a time balances them.
    pool.chunks(t * n_heads, 1, &|range| {
        let mut p = vec![0.0f32; start + t];
        for item in range {
            let (j, h) = (item / n_heads, item % n_heads);
            let len = start + j + 1;
            // This head's rows start at its offset and are `kv_dim` apart.
            let base = (h / group) * hd;
            let span = base..base + (len - 1) * kv_dim + hd;
            let (keys, values) = (&k_cache[span.clone()], &v_cache[span]);
            let qh = &q[j * dim + h * hd..][..hd];
            scores(cpu, qh, keys, kv_dim, scale, &mut p[..len]);
            softmax(cpu, &mut p[..len]);
            // SAFETY: each item writes its own head of its own token.
            let o = unsafe { outs.range(item * hd..(item + 1) * hd) };
            weighted_sum(cpu, &p[..len], values, kv_dim, o);
        }
    });
}
