//! Host operators: threaded GEMV (decode) and GEMM (prefill) over fp16/f32 weights, norms,
//! activations, softmax, RoPE and causal attention over an f32 or fp16 key/value cache. SIMD
//! on x86-64 with AVX-512, portable scalar loops elsewhere.

use super::matrix::{Matrix, Storage};
use super::threads::{Disjoint, Pool};
use super::KvLayer;
use compiler::nn::RopeStyle;
use half::f16;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set to run the portable loops even where SIMD kernels are available.
static PORTABLE: AtomicBool = AtomicBool::new(false);

/// Makes every operator use (`true`) or stop forcing (`false`) the portable scalar loops, so
/// they can be tested on machines that have the SIMD kernels.
pub fn force_portable(on: bool) {
    PORTABLE.store(on, Ordering::Relaxed);
}

#[cfg(target_arch = "x86_64")]
fn simd() -> bool {
    super::simd::available() && !PORTABLE.load(Ordering::Relaxed)
}

/// Widens fp16 bit patterns to f32 (`dst.len()` values).
pub fn f16_to_f32(src: &[u16], dst: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if simd() {
        // SAFETY: AVX-512F checked above.
        return unsafe { super::simd::f16_to_f32(src, dst) };
    }
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = f16::from_bits(s).to_f32();
    }
}

/// Narrows f32 values to fp16 bit patterns, rounding to nearest even (`dst.len()` values).
pub fn f32_to_f16(src: &[f32], dst: &mut [u16]) {
    #[cfg(target_arch = "x86_64")]
    if simd() {
        // SAFETY: AVX-512F checked above.
        return unsafe { super::simd::f32_to_f16(src, dst) };
    }
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = f16::from_f32(s).to_bits();
    }
}

/// `a · b`.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if simd() {
        // SAFETY: AVX-512F checked above.
        return unsafe { super::simd::dot(a, b) };
    }
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// `y += alpha · x`.
pub fn axpy(alpha: f32, x: &[f32], y: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if simd() {
        // SAFETY: AVX-512F checked above.
        return unsafe { super::simd::axpy(alpha, x, y) };
    }
    for (d, &s) in y.iter_mut().zip(x) {
        *d += alpha * s;
    }
}

/// One thread's share of a GEMV: `y[i] (+)= bias[i] + W[rows.start + i] · x`.
pub fn gemv_rows(
    m: &Matrix,
    x: &[f32],
    rows: Range<usize>,
    bias: Option<&[f32]>,
    y: &mut [f32],
    accumulate: bool,
) {
    assert_eq!(x.len(), m.cols, "gemv input width");
    #[cfg(target_arch = "x86_64")]
    if simd() {
        // SAFETY: AVX-512F checked above.
        unsafe {
            match &m.data {
                Storage::F16(w) => super::simd::gemv_f16(w, x, rows, bias, y, accumulate),
                Storage::F32(w) => super::simd::gemv_f32(w, x, rows, bias, y, accumulate),
            }
        }
        return;
    }
    let mut row = vec![0.0; m.cols];
    for (o, r) in rows.enumerate() {
        m.row_into(r, &mut row);
        let s = dot(&row, x) + bias.map_or(0.0, |b| b[o]);
        y[o] = if accumulate { y[o] + s } else { s };
    }
}

/// What a linear layer does with `W x + bias`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Out {
    /// Stores it.
    Store,
    /// Adds it to the output (a residual connection).
    Add,
    /// Stores its GELU (tanh form).
    Gelu,
}

/// `y (+)= W x + bias` with the rows split across the pool; `y` is `[rows]`.
pub fn gemv(pool: &Pool, m: &Matrix, x: &[f32], bias: Option<&[f32]>, y: &mut [f32], out: Out) {
    assert_eq!(y.len(), m.rows, "gemv output height");
    let ys = Disjoint::new(y);
    // Two chunks per thread of whole 16-row blocks: long prefetched streams, yet a thread
    // held up by other load on the machine delays the product by one chunk only.
    let chunk = (m.rows / (2 * pool.threads())).next_multiple_of(16).max(16);
    pool.chunks(m.rows, chunk, &|r| {
        // SAFETY: the pool's chunks are disjoint.
        let y = unsafe { ys.range(r.clone()) };
        gemv_rows(m, x, r.clone(), bias.map(|b| &b[r]), y, out == Out::Add);
        if out == Out::Gelu {
            gelu_tanh(y);
        }
    });
}

/// `Y (+)= X Wᵀ + bias` for `X` `[t, cols]` and `Y` `[t, rows]`, the weight rows split across
/// the pool; each 4-row block of `W` is widened once and reused for every token.
pub fn gemm(pool: &Pool, m: &Matrix, x: &[f32], bias: Option<&[f32]>, y: &mut [f32], out: Out) {
    let (k, n) = (m.cols, m.rows);
    assert_eq!(x.len() % k, 0, "gemm input width");
    let t = x.len() / k;
    assert_eq!(y.len(), t * n, "gemm output shape");
    if t == 0 {
        return;
    }
    let ys = Disjoint::new(y);
    let chunk = (n / (2 * pool.threads())).next_multiple_of(4).max(4);
    pool.chunks(n, chunk, &|rows| {
        let mut block = vec![0.0f32; 4 * k];
        for r in rows.clone().step_by(4) {
            let nr = (rows.end - r).min(4);
            for i in 0..nr {
                m.row_into(r + i, &mut block[i * k..(i + 1) * k]);
            }
            let wp: [&[f32]; 4] = std::array::from_fn(|i| &block[i.min(nr - 1) * k..][..k]);
            for t0 in (0..t).step_by(4) {
                let nt = (t - t0).min(4);
                let xp: [&[f32]; 4] = std::array::from_fn(|j| &x[(t0 + j.min(nt - 1)) * k..][..k]);
                let tile = tile4x4(wp, xp);
                for (j, tt) in (t0..t0 + nt).enumerate() {
                    // SAFETY: this thread owns columns `rows` of every output row.
                    let yr = unsafe { ys.range(tt * n + r..tt * n + r + nr) };
                    for (i, v) in yr.iter_mut().enumerate() {
                        let s = tile[i][j] + bias.map_or(0.0, |b| b[r + i]);
                        *v = if out == Out::Add { *v + s } else { s };
                    }
                }
            }
        }
        if out == Out::Gelu {
            for tt in 0..t {
                // SAFETY: as above.
                gelu_tanh(unsafe { ys.range(tt * n + rows.start..tt * n + rows.end) });
            }
        }
    });
}

/// The 4×4 block of dot products `out[i][j] = w[i] · x[j]`.
fn tile4x4(w: [&[f32]; 4], x: [&[f32]; 4]) -> [[f32; 4]; 4] {
    #[cfg(target_arch = "x86_64")]
    if simd() {
        let k = w[0].len();
        assert!(w.iter().chain(x.iter()).all(|s| s.len() == k));
        // SAFETY: AVX-512F checked above; all eight rows hold `k` values.
        return unsafe { super::simd::tile4x4(w.map(<[f32]>::as_ptr), x.map(<[f32]>::as_ptr), k) };
    }
    std::array::from_fn(|i| std::array::from_fn(|j| dot(w[i], x[j])))
}

/// LayerNorm of each `c`-wide row of `x` into `out`: `(x - mean) / sqrt(var + eps) * w + b`.
pub fn layer_norm(x: &[f32], w: &[f32], b: &[f32], eps: f32, out: &mut [f32]) {
    let c = w.len();
    for (xr, or) in x.chunks_exact(c).zip(out.chunks_exact_mut(c)) {
        let mean = xr.iter().sum::<f32>() / c as f32;
        let var = xr.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / c as f32;
        let inv = 1.0 / (var + eps).sqrt();
        for i in 0..c {
            or[i] = (xr[i] - mean) * inv * w[i] + b[i];
        }
    }
}

/// RMSNorm of each `c`-wide row of `x` into `out`: `x / sqrt(mean(x²) + eps) * w`.
pub fn rms_norm(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let c = w.len();
    for (xr, or) in x.chunks_exact(c).zip(out.chunks_exact_mut(c)) {
        let ms = dot(xr, xr) / c as f32;
        let inv = 1.0 / (ms + eps).sqrt();
        for i in 0..c {
            or[i] = xr[i] * inv * w[i];
        }
    }
}

/// GELU, tanh approximation (GPT-2's `gelu_new`), in place, as `u / (1 + exp(-2z))`, which
/// equals `0.5 u (1 + tanh z)` for `z = sqrt(2/pi) (u + 0.044715 u³)`.
pub fn gelu_tanh(x: &mut [f32]) {
    const S2: f32 = 2.0 * 0.797_884_6; // 2 sqrt(2/pi)
    for v in x {
        let u = *v;
        *v = u / (1.0 + (-S2 * (u + 0.044715 * u * u * u)).exp());
    }
}

/// SwiGLU gate: `gate[i] = silu(gate[i]) * up[i]`.
pub fn silu_mul(gate: &mut [f32], up: &[f32]) {
    for (g, &u) in gate.iter_mut().zip(up) {
        *g = *g / (1.0 + (-*g).exp()) * u;
    }
}

/// Softmax in place (max-subtracted).
pub fn softmax(x: &mut [f32]) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for v in x.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    let inv = 1.0 / sum;
    for v in x.iter_mut() {
        *v *= inv;
    }
}

/// Per-position rotation tables for RoPE: `cos`/`sin` `[positions, head_dim / 2]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Rope {
    pub head_dim: usize,
    pub style: RopeStyle,
    cos: Vec<f32>,
    sin: Vec<f32>,
}

impl Rope {
    /// Tables for `positions` positions; frequency `i` is `theta^(-2i / head_dim)`.
    pub fn new(head_dim: usize, positions: usize, theta: f32, style: RopeStyle) -> Rope {
        let half = head_dim / 2;
        let mut cos = Vec::with_capacity(positions * half);
        let mut sin = Vec::with_capacity(positions * half);
        for p in 0..positions {
            for i in 0..half {
                let freq = 1.0 / f64::from(theta).powf(2.0 * i as f64 / head_dim as f64);
                let angle = p as f64 * freq;
                cos.push(angle.cos() as f32);
                sin.push(angle.sin() as f32);
            }
        }
        Rope {
            head_dim,
            style,
            cos,
            sin,
        }
    }

    /// Rotates every head of `x` (heads of `head_dim` values back to back) for position `pos`.
    pub fn apply(&self, x: &mut [f32], pos: usize) {
        let half = self.head_dim / 2;
        let (cos, sin) = (
            &self.cos[pos * half..(pos + 1) * half],
            &self.sin[pos * half..(pos + 1) * half],
        );
        for head in x.chunks_exact_mut(self.head_dim) {
            for i in 0..half {
                let (a, b) = match self.style {
                    RopeStyle::HalfSplit => (i, i + half),
                    RopeStyle::Interleaved => (2 * i, 2 * i + 1),
                };
                let (x0, x1) = (head[a], head[b]);
                head[a] = x0 * cos[i] - x1 * sin[i];
                head[b] = x0 * sin[i] + x1 * cos[i];
            }
        }
    }
}

/// Shapes of one attention call.
#[derive(Clone, Copy, Debug)]
pub struct AttentionShape {
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
}

/// [`attention`] over one layer of a [`KvCache`](super::KvCache), at its precision.
pub fn attention_cached(
    pool: &Pool,
    shape: AttentionShape,
    q: &[f32],
    kv: KvLayer<'_>,
    start: usize,
    out: &mut [f32],
) {
    match kv {
        KvLayer::F32 { keys, values } => attention(pool, shape, q, keys, values, start, out),
        KvLayer::F16 { keys, values } => attention(pool, shape, q, keys, values, start, out),
    }
}

/// Causal attention of `q` (`[t, n_heads·head_dim]`, token `j` at position `start + j`) over a
/// layer's key/value caches (`[positions, n_kv_heads·head_dim]`, filled through the last
/// query) into `out` (`[t, n_heads·head_dim]`); heads are spread over the pool.
pub fn attention<T: KvElement>(
    pool: &Pool,
    shape: AttentionShape,
    q: &[f32],
    k_cache: &[T],
    v_cache: &[T],
    start: usize,
    out: &mut [f32],
) {
    let AttentionShape {
        n_heads,
        n_kv_heads,
        head_dim: hd,
    } = shape;
    let dim = n_heads * hd;
    let t = q.len() / dim;
    let kv_dim = n_kv_heads * hd;
    let group = n_heads / n_kv_heads;
    let scale = 1.0 / (hd as f32).sqrt();
    let items = t * n_heads;
    let outs = Disjoint::new(out);
    // Single items: causal rows differ in length, so claiming one at a time balances them.
    pool.chunks(items, 1, &|range| {
        let mut scores = vec![0.0f32; start + t];
        for item in range {
            let (j, h) = (item / n_heads, item % n_heads);
            let len = start + j + 1;
            // This head's rows start at its offset and are `kv_dim` apart.
            let base = (h / group) * hd;
            let span = base..base + (len - 1) * kv_dim + hd;
            let (keys, values) = (&k_cache[span.clone()], &v_cache[span]);
            let qh = &q[j * dim + h * hd..][..hd];
            T::scores(qh, keys, kv_dim, scale, &mut scores[..len]);
            softmax(&mut scores[..len]);
            // SAFETY: each item writes its own head of its own token.
            let o = unsafe { outs.range(item * hd..(item + 1) * hd) };
            T::weighted_sum(&scores[..len], values, kv_dim, o);
        }
    });
}

/// `scores[s] = scale · q · keys[s·stride..][..q.len()]`.
pub fn attention_scores(q: &[f32], keys: &[f32], stride: usize, scale: f32, scores: &mut [f32]) {
    let hd = q.len();
    assert!(scores.is_empty() || keys.len() >= (scores.len() - 1) * stride + hd);
    #[cfg(target_arch = "x86_64")]
    if simd() {
        // SAFETY: AVX-512F checked above; the assert bounds every row.
        return unsafe { super::simd::attention_scores(q, keys, stride, scale, scores) };
    }
    for (s, sc) in scores.iter_mut().enumerate() {
        *sc = dot(q, &keys[s * stride..s * stride + hd]) * scale;
    }
}

/// `out = Σ_s p[s] · values[s·stride..][..out.len()]`.
pub fn weighted_sum(p: &[f32], values: &[f32], stride: usize, out: &mut [f32]) {
    let hd = out.len();
    assert!(p.is_empty() || values.len() >= (p.len() - 1) * stride + hd);
    #[cfg(target_arch = "x86_64")]
    if simd() {
        // SAFETY: AVX-512F checked above; the assert bounds every row.
        return unsafe { super::simd::weighted_sum(p, values, stride, out) };
    }
    out.fill(0.0);
    for (s, &w) in p.iter().enumerate() {
        axpy(w, &values[s * stride..s * stride + hd], out);
    }
}

/// [`attention_scores`] over fp16 keys (bit patterns), widened on load.
pub fn attention_scores_f16(
    q: &[f32],
    keys: &[u16],
    stride: usize,
    scale: f32,
    scores: &mut [f32],
) {
    let hd = q.len();
    assert!(scores.is_empty() || keys.len() >= (scores.len() - 1) * stride + hd);
    #[cfg(target_arch = "x86_64")]
    if simd() {
        // SAFETY: AVX-512F checked above; the assert bounds every row.
        return unsafe { super::simd::attention_scores_f16(q, keys, stride, scale, scores) };
    }
    for (s, sc) in scores.iter_mut().enumerate() {
        let row = &keys[s * stride..s * stride + hd];
        let d: f32 = q
            .iter()
            .zip(row)
            .map(|(x, &k)| x * f16::from_bits(k).to_f32())
            .sum();
        *sc = d * scale;
    }
}

/// [`weighted_sum`] over fp16 values (bit patterns), widened on load.
pub fn weighted_sum_f16(p: &[f32], values: &[u16], stride: usize, out: &mut [f32]) {
    let hd = out.len();
    assert!(p.is_empty() || values.len() >= (p.len() - 1) * stride + hd);
    #[cfg(target_arch = "x86_64")]
    if simd() {
        // SAFETY: AVX-512F checked above; the assert bounds every row.
        return unsafe { super::simd::weighted_sum_f16(p, values, stride, out) };
    }
    out.fill(0.0);
    for (s, &w) in p.iter().enumerate() {
        for (o, &v) in out.iter_mut().zip(&values[s * stride..s * stride + hd]) {
            *o += w * f16::from_bits(v).to_f32();
        }
    }
}

/// Element types of a key/value cache that [`attention`] reads: f32, or fp16 bit patterns
/// (`u16`) widened on load.
pub trait KvElement: Copy + Send + Sync {
    /// `scores[s] = scale · q · keys[s·stride..][..q.len()]`.
    fn scores(q: &[f32], keys: &[Self], stride: usize, scale: f32, scores: &mut [f32]);
    /// `out = Σ_s p[s] · values[s·stride..][..out.len()]`.
    fn weighted_sum(p: &[f32], values: &[Self], stride: usize, out: &mut [f32]);
}

impl KvElement for f32 {
    fn scores(q: &[f32], keys: &[f32], stride: usize, scale: f32, scores: &mut [f32]) {
        attention_scores(q, keys, stride, scale, scores);
    }

    fn weighted_sum(p: &[f32], values: &[f32], stride: usize, out: &mut [f32]) {
        weighted_sum(p, values, stride, out);
    }
}

impl KvElement for u16 {
    fn scores(q: &[f32], keys: &[u16], stride: usize, scale: f32, scores: &mut [f32]) {
        attention_scores_f16(q, keys, stride, scale, scores);
    }

    fn weighted_sum(p: &[f32], values: &[u16], stride: usize, out: &mut [f32]) {
        weighted_sum_f16(p, values, stride, out);
    }
}

/// `Y (+)= X Wᵀ + bias` for `X` `[t, cols]`: a GEMV for one token, a GEMM for several.
pub fn linear(pool: &Pool, m: &Matrix, x: &[f32], bias: Option<&[f32]>, y: &mut [f32], out: Out) {
    if x.len() == m.cols {
        gemv(pool, m, x, bias, y, out);
    } else {
        gemm(pool, m, x, bias, y, out);
    }
}
