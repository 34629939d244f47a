//! Llama on the host: RMSNorm, RoPE (interleaved or half-split pairs), SwiGLU, grouped-query
//! attention with a key/value cache, tied or untied head.

use super::rope::Rope;
use super::{check_tokens, KvCache};
use crate::llama::{Config, Weights};
use crate::Result;
use cpu::activation::silu_mul;
use cpu::attention::Shape;
use cpu::linear::{linear, Out};
use cpu::norm::rms_norm;
use cpu::{Matrix, Pool, Precision};

/// One block's weights in host form; q/k/v and gate/up are stacked into one matrix each so a
/// decode step runs four matrix-vector products per block.
struct Layer {
    attention_norm: Vec<f32>,
    /// `(D + 2·KV, D)`: wq, wk, wv.
    wqkv: Matrix,
    wo: Matrix,
    ffn_norm: Vec<f32>,
    /// `(2·H, D)`: w1 (gate), w3 (up).
    w13: Matrix,
    w2: Matrix,
}

/// Llama weights in host form: matrices at the chosen precision, vectors in f32.
struct HostWeights {
    /// `(V, D)` token embeddings.
    embeddings: Matrix,
    layers: Vec<Layer>,
    norm: Vec<f32>,
    /// `(V, D)` LM head; `None` when tied to the embeddings.
    output: Option<Matrix>,
    rope: Rope,
}

/// Activation buffers, resized to the number of tokens of each call.
#[derive(Default)]
struct RunState {
    x: Vec<f32>,
    xb: Vec<f32>,
    qkv: Vec<f32>,
    q: Vec<f32>,
    att: Vec<f32>,
    h13: Vec<f32>,
    h: Vec<f32>,
    logits: Vec<f32>,
}

/// A Llama ready to run on the host.
pub struct Llama {
    config: Config,
    weights: HostWeights,
    state: RunState,
    cache: KvCache,
    pool: Pool,
}

impl Llama {
    /// Converts `w` to `precision`, to run on `pool`.
    pub fn new(w: &Weights, precision: Precision, pool: Pool) -> Llama {
        let cfg = &w.config;
        let (d, h, kv) = (cfg.dim, cfg.hidden_dim, cfg.kv_dim());
        let layers = w
            .layers
            .iter()
            .map(|l| Layer {
                attention_norm: l.attention_norm.clone(),
                wqkv: Matrix::stack(&[&l.wq, &l.wk, &l.wv], d + 2 * kv, d, precision),
                wo: Matrix::new(&l.wo, d, d, precision),
                ffn_norm: l.ffn_norm.clone(),
                w13: Matrix::stack(&[&l.w1, &l.w3], 2 * h, d, precision),
                w2: Matrix::new(&l.w2, d, h, precision),
            })
            .collect();
        let v = cfg.vocab_size;
        Llama {
            weights: HostWeights {
                embeddings: Matrix::new(&w.tok_embeddings, v, d, precision),
                layers,
                norm: w.norm.clone(),
                output: w.output.as_ref().map(|o| Matrix::new(o, v, d, precision)),
                rope: Rope::new(cfg.head_dim(), cfg.seq_len, cfg.rope_theta, w.rope),
            },
            state: RunState::default(),
            cache: KvCache::new(cfg.n_layers, cfg.seq_len, kv, precision),
            pool,
            config: cfg.clone(),
        }
    }

    /// The model's configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Bytes of weights read per decoded token (matrices at their storage precision).
    pub fn weight_bytes(&self) -> usize {
        let w = &self.weights;
        let layer = |l: &Layer| l.wqkv.bytes() + l.wo.bytes() + l.w13.bytes() + l.w2.bytes();
        w.output.as_ref().unwrap_or(&w.embeddings).bytes()
            + w.layers.iter().map(layer).sum::<usize>()
    }

    /// The key/value cache.
    pub fn cache_mut(&mut self) -> &mut KvCache {
        &mut self.cache
    }

    /// The pool the kernels run on.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Runs `tokens` at positions `start..`, filling the cache; returns the logits of every
    /// position (`[t, vocab]`) if `all`, else of the last one.
    pub fn forward(&mut self, tokens: &[u32], start: usize, all: bool) -> Result<&[f32]> {
        let Llama {
            config: cfg,
            weights: w,
            state: s,
            cache,
            pool,
        } = self;
        check_tokens(tokens, start, cfg.vocab_size, cfg.seq_len)?;
        let (d, t) = (cfg.dim, tokens.len());
        s.x.resize(t * d, 0.0);
        for (&tok, xr) in tokens.iter().zip(s.x.chunks_exact_mut(d)) {
            w.embeddings.row_into(pool.cpu(), tok as usize, xr);
        }
        for l in 0..w.layers.len() {
            block(cfg, w, pool, s, cache, l, start);
        }
        let rows = if all { 0..t * d } else { (t - 1) * d..t * d };
        s.xb.resize(rows.len(), 0.0);
        rms_norm(
            pool.cpu(),
            &s.x[rows.clone()],
            &w.norm,
            cfg.norm_eps,
            &mut s.xb,
        );
        s.logits.resize(rows.len() / d * cfg.vocab_size, 0.0);
        let head = w.output.as_ref().unwrap_or(&w.embeddings);
        linear(pool, head, &s.xb, None, &mut s.logits, Out::Store);
        Ok(&s.logits)
    }
}

/// Block `l` over the tokens in `s.x`, the first at position `start`, appending their rotated
/// keys and values to the cache.
fn block(
    cfg: &Config,
    w: &HostWeights,
    pool: &Pool,
    s: &mut RunState,
    cache: &mut KvCache,
    l: usize,
    start: usize,
) {
    let (d, hd, kv, h) = (cfg.dim, cfg.head_dim(), cfg.kv_dim(), cfg.hidden_dim);
    let (layer, rope) = (&w.layers[l], &w.rope);
    let t = s.x.len() / d;
    let width = d + 2 * kv;
    s.xb.resize(t * d, 0.0);
    s.qkv.resize(t * width, 0.0);
    s.q.resize(t * d, 0.0);
    s.att.resize(t * d, 0.0);
    s.h13.resize(t * 2 * h, 0.0);
    s.h.resize(t * h, 0.0);
    rms_norm(
        pool.cpu(),
        &s.x,
        &layer.attention_norm,
        cfg.norm_eps,
        &mut s.xb,
    );
    linear(pool, &layer.wqkv, &s.xb, None, &mut s.qkv, Out::Store);
    for (j, row) in s.qkv.chunks_exact_mut(width).enumerate() {
        let pos = start + j;
        let (q, kvs) = row.split_at_mut(d);
        rope.apply(pool.cpu(), q, pos);
        rope.apply(pool.cpu(), &mut kvs[..kv], pos);
        s.q[j * d..(j + 1) * d].copy_from_slice(q);
        cache.write(pool.cpu(), l, pos, &kvs[..kv], &kvs[kv..]);
    }
    let shape = Shape {
        n_heads: cfg.n_heads,
        n_kv_heads: cfg.n_kv_heads,
        head_dim: hd,
    };
    cache.attend(pool, shape, l, &s.q, start, &mut s.att);
    linear(pool, &layer.wo, &s.att, None, &mut s.x, Out::Add);
    rms_norm(pool.cpu(), &s.x, &layer.ffn_norm, cfg.norm_eps, &mut s.xb);
    linear(pool, &layer.w13, &s.xb, None, &mut s.h13, Out::Store);
    for (row, out) in s.h13.chunks_exact_mut(2 * h).zip(s.h.chunks_exact_mut(h)) {
        let (gate, up) = row.split_at_mut(h);
        silu_mul(pool.cpu(), gate, up);
        out.copy_from_slice(gate);
    }
    linear(pool, &layer.w2, &s.h, None, &mut s.x, Out::Add);
}
