//! GPT-2 on the host: learned positions, pre-LayerNorm blocks, GELU (tanh form), tied LM
//! head, with a key/value cache.

use super::{check_tokens, KvCache};
use crate::gpt2::{Config, Weights};
use crate::Result;
use cpu::attention::Shape;
use cpu::linear::{linear, Out};
use cpu::norm::layer_norm;
use cpu::{Matrix, Pool, Precision};

/// One block's weights in host form.
struct Layer {
    ln_1_weight: Vec<f32>,
    ln_1_bias: Vec<f32>,
    attn: Matrix,
    attn_bias: Vec<f32>,
    proj: Matrix,
    proj_bias: Vec<f32>,
    ln_2_weight: Vec<f32>,
    ln_2_bias: Vec<f32>,
    fc: Matrix,
    fc_bias: Vec<f32>,
    fc_proj: Matrix,
    fc_proj_bias: Vec<f32>,
}

/// GPT-2 weights in host form: matrices at the chosen precision, vectors in f32.
struct HostWeights {
    /// `(V, C)` token embeddings and the tied LM head.
    wte: Matrix,
    wpe: Vec<f32>,
    layers: Vec<Layer>,
    ln_f_weight: Vec<f32>,
    ln_f_bias: Vec<f32>,
}

/// Activation buffers, resized to the number of tokens of each call.
#[derive(Default)]
struct RunState {
    x: Vec<f32>,
    xb: Vec<f32>,
    qkv: Vec<f32>,
    q: Vec<f32>,
    att: Vec<f32>,
    fc: Vec<f32>,
    logits: Vec<f32>,
}

/// A GPT-2 ready to run on the host.
pub struct Gpt2 {
    config: Config,
    weights: HostWeights,
    state: RunState,
    cache: KvCache,
    pool: Pool,
}

impl Gpt2 {
    /// Converts `w` to `precision`, to run on `pool`.
    pub fn new(w: &Weights, precision: Precision, pool: Pool) -> Gpt2 {
        let cfg = &w.config;
        let c = cfg.n_embd;
        let layers = w
            .layers
            .iter()
            .map(|l| Layer {
                ln_1_weight: l.ln_1_weight.clone(),
                ln_1_bias: l.ln_1_bias.clone(),
                attn: Matrix::new(&l.attn_weight, 3 * c, c, precision),
                attn_bias: l.attn_bias.clone(),
                proj: Matrix::new(&l.proj_weight, c, c, precision),
                proj_bias: l.proj_bias.clone(),
                ln_2_weight: l.ln_2_weight.clone(),
                ln_2_bias: l.ln_2_bias.clone(),
                fc: Matrix::new(&l.fc_weight, 4 * c, c, precision),
                fc_bias: l.fc_bias.clone(),
                fc_proj: Matrix::new(&l.fc_proj_weight, c, 4 * c, precision),
                fc_proj_bias: l.fc_proj_bias.clone(),
            })
            .collect();
        Gpt2 {
            weights: HostWeights {
                wte: Matrix::new(&w.wte, cfg.vocab_size, c, precision),
                wpe: w.wpe.clone(),
                layers,
                ln_f_weight: w.ln_f_weight.clone(),
                ln_f_bias: w.ln_f_bias.clone(),
            },
            state: RunState::default(),
            cache: KvCache::new(cfg.n_layer, cfg.n_positions, c, precision),
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
        let layer = |l: &Layer| l.attn.bytes() + l.proj.bytes() + l.fc.bytes() + l.fc_proj.bytes();
        w.wte.bytes() + w.layers.iter().map(layer).sum::<usize>()
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
        let Gpt2 {
            config: cfg,
            weights: w,
            state: s,
            cache,
            pool,
        } = self;
        check_tokens(tokens, start, cfg.vocab_size, cfg.n_positions)?;
        let (c, t) = (cfg.n_embd, tokens.len());
        s.x.resize(t * c, 0.0);
        for (j, (&tok, xr)) in tokens.iter().zip(s.x.chunks_exact_mut(c)).enumerate() {
            w.wte.row_into(pool.cpu(), tok as usize, xr);
            let pe = &w.wpe[(start + j) * c..][..c];
            xr.iter_mut().zip(pe).for_each(|(a, b)| *a += b);
        }
        for (l, layer) in w.layers.iter().enumerate() {
            block(cfg, layer, pool, s, cache, l, start);
        }
        let eps = cfg.layer_norm_epsilon;
        let rows = if all { 0..t * c } else { (t - 1) * c..t * c };
        s.xb.resize(rows.len(), 0.0);
        layer_norm(
            pool.cpu(),
            &s.x[rows.clone()],
            &w.ln_f_weight,
            &w.ln_f_bias,
            eps,
            &mut s.xb,
        );
        s.logits.resize(rows.len() / c * cfg.vocab_size, 0.0);
        linear(pool, &w.wte, &s.xb, None, &mut s.logits, Out::Store);
        Ok(&s.logits)
    }
}

/// Block `l` over the tokens in `s.x`, the first at position `start`, appending their keys
/// and values to the cache.
fn block(
    cfg: &Config,
    layer: &Layer,
    pool: &Pool,
    s: &mut RunState,
    cache: &mut KvCache,
    l: usize,
    start: usize,
) {
    let (c, eps) = (cfg.n_embd, cfg.layer_norm_epsilon);
    let t = s.x.len() / c;
    s.xb.resize(t * c, 0.0);
    s.qkv.resize(t * 3 * c, 0.0);
    s.q.resize(t * c, 0.0);
    s.att.resize(t * c, 0.0);
    s.fc.resize(t * 4 * c, 0.0);
    layer_norm(
        pool.cpu(),
        &s.x,
        &layer.ln_1_weight,
        &layer.ln_1_bias,
        eps,
        &mut s.xb,
    );
    linear(
        pool,
        &layer.attn,
        &s.xb,
        Some(&layer.attn_bias),
        &mut s.qkv,
        Out::Store,
    );
    for (j, row) in s.qkv.chunks_exact(3 * c).enumerate() {
        s.q[j * c..(j + 1) * c].copy_from_slice(&row[..c]);
        cache.write(pool.cpu(), l, start + j, &row[c..2 * c], &row[2 * c..]);
    }
    let shape = Shape {
        n_heads: cfg.n_head,
        n_kv_heads: cfg.n_head,
        head_dim: c / cfg.n_head,
    };
    cache.attend(pool, shape, l, &s.q, start, &mut s.att);
    linear(
        pool,
        &layer.proj,
        &s.att,
        Some(&layer.proj_bias),
        &mut s.x,
        Out::Add,
    );
    layer_norm(
        pool.cpu(),
        &s.x,
        &layer.ln_2_weight,
        &layer.ln_2_bias,
        eps,
        &mut s.xb,
    );
    linear(
        pool,
        &layer.fc,
        &s.xb,
        Some(&layer.fc_bias),
        &mut s.fc,
        Out::Gelu,
    );
    linear(
        pool,
        &layer.fc_proj,
        &s.fc,
        Some(&layer.fc_proj_bias),
        &mut s.x,
        Out::Add,
    );
}
