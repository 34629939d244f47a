//! One Llama block (RMSNorm, RoPE, grouped-query attention, SwiGLU), forward (saving what
//! backward reads) and backward, on the host.

use super::attention::{attention_backward, attention_forward, scatter, AttnShape, Heads, Part};
use super::gemm::Precision;
use super::ops::{
    add_into, linear, linear_backward, norm_backward, norm_forward, swiglu_backward,
    swiglu_forward, NormSaved,
};
use compiler::nn::{rope_tables, RopeStyle};
use models::llama::{Config, LayerWeights};
use rayon::prelude::*;

/// Rotary tables for one sequence length: `cos`/`sin` `[head_dim, seq]` and the pairing.
pub struct Rope {
    cos: Vec<f32>,
    sin: Vec<f32>,
    pairs: Vec<(usize, usize)>,
    seq: usize,
    head_dim: usize,
}

impl Rope {
    /// Tables for positions `0..seq` of heads `head_dim` wide.
    pub fn new(cfg: &Config, seq: usize, style: RopeStyle) -> Self {
        let head_dim = cfg.dim / cfg.n_heads;
        let (cos, sin) = rope_tables(head_dim, seq, 0, cfg.rope_theta, style);
        let half = head_dim / 2;
        let pairs = (0..half)
            .map(|i| match style {
                RopeStyle::HalfSplit => (i, i + half),
                RopeStyle::Interleaved => (2 * i, 2 * i + 1),
            })
            .collect();
        Rope {
            cos,
            sin,
            pairs,
            seq,
            head_dim,
        }
    }

    /// Rotates every head of rows `x [N, width]` by its position (`row % seq`); `inverse`
    /// applies the transpose (the backward of the rotation).
    fn apply(&self, x: &mut [f32], width: usize, inverse: bool) {
        let sign = if inverse { -1.0 } else { 1.0 };
        x.par_chunks_mut(width).enumerate().for_each(|(row, x)| {
            let pos = row % self.seq;
            for head in x.chunks_mut(self.head_dim) {
                for &(a, b) in &self.pairs {
                    let (c, s) = (
                        self.cos[a * self.seq + pos],
                        sign * self.sin[a * self.seq + pos],
                    );
                    let (xa, xb) = (head[a], head[b]);
                    head[a] = xa * c - xb * s;
                    head[b] = xb * c + xa * s;
                }
            }
        });
    }
}

/// What the forward of one block keeps for its backward.
pub struct Saved {
    rms1: NormSaved,
    n1: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    probs: Vec<f32>,
    atty: Vec<f32>,
    rms2: NormSaved,
    n2: Vec<f32>,
    a: Vec<f32>,
    b: Vec<f32>,
    sig: Vec<f32>,
    s: Vec<f32>,
}

/// Buffers reused by every block's passes (allocated once per trainer).
pub struct Scratch {
    x2: Vec<f32>,
    da: Vec<f32>,
    db: Vec<f32>,
    dn: Vec<f32>,
    tmp: Vec<f32>,
    datty: Vec<f32>,
    dq: Vec<f32>,
    dk: Vec<f32>,
    dv: Vec<f32>,
}

impl Scratch {
    /// Buffers for `n` tokens.
    pub fn new(cfg: &Config, n: usize) -> Self {
        let (d, h, kv) = (cfg.dim, cfg.hidden_dim, kv_width(cfg));
        Scratch {
            x2: vec![0.0; n * d],
            da: vec![0.0; n * h],
            db: vec![0.0; n * h],
            dn: vec![0.0; n * d],
            tmp: vec![0.0; n * d],
            datty: vec![0.0; n * d],
            dq: vec![0.0; n * d],
            dk: vec![0.0; n * kv],
            dv: vec![0.0; n * kv],
        }
    }
}

fn attn_shape(cfg: &Config, batch: usize, seq: usize) -> AttnShape {
    AttnShape {
        batch,
        seq,
        heads: cfg.n_heads,
        kv_heads: cfg.n_kv_heads,
        head_dim: cfg.dim / cfg.n_heads,
    }
}

fn kv_width(cfg: &Config) -> usize {
    cfg.n_kv_heads * (cfg.dim / cfg.n_heads)
}

impl Saved {
    /// Buffers for `batch × seq` tokens.
    pub fn new(cfg: &Config, batch: usize, seq: usize) -> Self {
        let (n, d, h, kv) = (batch * seq, cfg.dim, cfg.hidden_dim, kv_width(cfg));
        Saved {
            rms1: NormSaved::new(n, d),
            n1: vec![0.0; n * d],
            q: vec![0.0; n * d],
            k: vec![0.0; n * kv],
            v: vec![0.0; n * kv],
            probs: vec![0.0; attn_shape(cfg, batch, seq).probs_len()],
            atty: vec![0.0; n * d],
            rms2: NormSaved::new(n, d),
            n2: vec![0.0; n * d],
            a: vec![0.0; n * h],
            b: vec![0.0; n * h],
            sig: vec![0.0; n * h],
            s: vec![0.0; n * h],
        }
    }
}

/// `out = block(x)` for rows `x [batch·seq, D]`, filling `saved`.
#[allow(clippy::too_many_arguments)]
pub fn forward(
    cfg: &Config,
    w: &LayerWeights,
    rope: &Rope,
    x: &[f32],
    out: &mut [f32],
    s: &mut Saved,
    scratch: &mut Scratch,
    shape: (usize, usize),
    p: Precision,
) {
    let (d, kv, eps) = (cfg.dim, kv_width(cfg), cfg.norm_eps);
    norm_forward(
        &mut s.n1,
        &mut s.rms1,
        x,
        &w.attention_norm,
        None,
        false,
        eps,
    );
    linear(&mut s.q, &s.n1, &w.wq, None, d, p);
    linear(&mut s.k, &s.n1, &w.wk, None, d, p);
    linear(&mut s.v, &s.n1, &w.wv, None, d, p);
    rope.apply(&mut s.q, d, false);
    rope.apply(&mut s.k, kv, false);
    let heads = |data, stride| Heads {
        data,
        stride,
        offset: 0,
    };
    attention_forward(
        attn_shape(cfg, shape.0, shape.1),
        heads(&s.q, d),
        heads(&s.k, kv),
        heads(&s.v, kv),
        &mut s.probs,
        &mut s.atty,
    );
    let x2 = &mut scratch.x2;
    linear(x2, &s.atty, &w.wo, None, d, p);
    add_into(x2, x);
    norm_forward(&mut s.n2, &mut s.rms2, x2, &w.ffn_norm, None, false, eps);
    linear(&mut s.a, &s.n2, &w.w1, None, d, p);
    linear(&mut s.b, &s.n2, &w.w3, None, d, p);
    swiglu_forward(&mut s.s, &mut s.sig, &s.a, &s.b);
    linear(out, &s.s, &w.w2, None, cfg.hidden_dim, p);
    add_into(out, x2);
}

/// One projection's backward operands: `(dy, x, W, dW)`.
type Projection<'a> = (&'a [f32], &'a [f32], &'a [f32], &'a mut Vec<f32>);

/// `dx = Σ dy · W` and `dW (+)= dyᵀ · x` over `parts` (dy, x, W, dW): the gradients of
/// several projections reading the same input; `tmp` is a buffer like `dx`.
fn project_back(
    dx: &mut [f32],
    tmp: &mut [f32],
    parts: Vec<Projection<'_>>,
    d: usize,
    p: Precision,
    acc: bool,
) {
    for (i, (dy, x, w, dw)) in parts.into_iter().enumerate() {
        let target = if i == 0 { &mut *dx } else { &mut *tmp };
        linear_backward(Some(target), dw, None, dy, x, w, d, p, acc);
        if i > 0 {
            add_into(dx, tmp);
        }
    }
}

/// From `dout`, the gradient at the block's output, adds the weight gradients to `gw` (or
/// overwrites them unless `acc`) and writes the gradient at its input to `dx`.
#[allow(clippy::too_many_arguments)]
pub fn backward(
    cfg: &Config,
    w: &LayerWeights,
    gw: &mut LayerWeights,
    rope: &Rope,
    s: &Saved,
    scratch: &mut Scratch,
    dout: &[f32],
    dx: &mut [f32],
    shape: (usize, usize),
    p: Precision,
    acc: bool,
) {
    let (d, hid, kv) = (cfg.dim, cfg.hidden_dim, kv_width(cfg));
    let Scratch {
        da,
        db,
        dn,
        tmp,
        datty,
        dq,
        dk,
        dv,
        ..
    } = scratch;
    linear_backward(Some(da), &mut gw.w2, None, dout, &s.s, &w.w2, hid, p, acc);
    swiglu_backward(da, db, &s.sig, &s.a, &s.b);
    project_back(
        dn,
        tmp,
        vec![
            (da, &s.n2, &w.w1, &mut gw.w1),
            (db, &s.n2, &w.w3, &mut gw.w3),
        ],
        d,
        p,
        acc,
    );
    dx.copy_from_slice(dout);
    norm_backward(
        dx,
        &mut gw.ffn_norm,
        None,
        dn,
        &s.rms2,
        &w.ffn_norm,
        false,
        acc,
    );
    linear_backward(Some(datty), &mut gw.wo, None, dx, &s.atty, &w.wo, d, p, acc);
    let ashape = attn_shape(cfg, shape.0, shape.1);
    let heads = |data, stride| Heads {
        data,
        stride,
        offset: 0,
    };
    let grads = attention_backward(
        ashape,
        heads(&s.q, d),
        heads(&s.k, kv),
        heads(&s.v, kv),
        &s.probs,
        datty,
    );
    for (part, buf, width) in [
        (Part::Q, &mut *dq, d),
        (Part::K, &mut *dk, kv),
        (Part::V, &mut *dv, kv),
    ] {
        buf.fill(0.0);
        scatter(ashape, &grads, part, buf, width, 0);
    }
    rope.apply(dq, d, true);
    rope.apply(dk, kv, true);
    project_back(
        dn,
        tmp,
        vec![
            (dq, &s.n1, &w.wq, &mut gw.wq),
            (dk, &s.n1, &w.wk, &mut gw.wk),
            (dv, &s.n1, &w.wv, &mut gw.wv),
        ],
        d,
        p,
        acc,
    );
    norm_backward(
        dx,
        &mut gw.attention_norm,
        None,
        dn,
        &s.rms1,
        &w.attention_norm,
        false,
        acc,
    );
}
