//! One GPT-2 block, forward (saving what backward reads) and backward, on the host.

use super::attention::{attention_backward, attention_forward, scatter, AttnShape, Heads, Part};
use super::gemm::Precision;
use super::ops::{
    add_into, gelu_backward, gelu_forward, linear, linear_backward, norm_backward, norm_forward,
    NormSaved,
};
use models::gpt2::{Config, LayerWeights};

/// What the forward of one block keeps for its backward.
pub struct Saved {
    ln1: NormSaved,
    ln1_out: Vec<f32>,
    qkv: Vec<f32>,
    probs: Vec<f32>,
    atty: Vec<f32>,
    ln2: NormSaved,
    ln2_out: Vec<f32>,
    h: Vec<f32>,
    tanh: Vec<f32>,
    g: Vec<f32>,
}

/// Buffers reused by every block's passes (allocated once per trainer).
pub struct Scratch {
    x2: Vec<f32>,
    dh: Vec<f32>,
    dln2: Vec<f32>,
    datty: Vec<f32>,
    dqkv: Vec<f32>,
    dln1: Vec<f32>,
}

impl Scratch {
    /// Buffers for `n` tokens.
    pub fn new(cfg: &Config, n: usize) -> Self {
        let c = cfg.n_embd;
        Scratch {
            x2: vec![0.0; n * c],
            dh: vec![0.0; n * 4 * c],
            dln2: vec![0.0; n * c],
            datty: vec![0.0; n * c],
            dqkv: vec![0.0; n * 3 * c],
            dln1: vec![0.0; n * c],
        }
    }
}

fn attn_shape(cfg: &Config, batch: usize, seq: usize) -> AttnShape {
    AttnShape {
        batch,
        seq,
        heads: cfg.n_head,
        kv_heads: cfg.n_head,
        head_dim: cfg.n_embd / cfg.n_head,
    }
}

impl Saved {
    /// Buffers for `batch × seq` tokens.
    pub fn new(cfg: &Config, batch: usize, seq: usize) -> Self {
        let (n, c) = (batch * seq, cfg.n_embd);
        Saved {
            ln1: NormSaved::new(n, c),
            ln1_out: vec![0.0; n * c],
            qkv: vec![0.0; n * 3 * c],
            probs: vec![0.0; attn_shape(cfg, batch, seq).probs_len()],
            atty: vec![0.0; n * c],
            ln2: NormSaved::new(n, c),
            ln2_out: vec![0.0; n * c],
            h: vec![0.0; n * 4 * c],
            tanh: vec![0.0; n * 4 * c],
            g: vec![0.0; n * 4 * c],
        }
    }
}

/// `out = block(x)` for rows `x [batch·seq, C]`, filling `saved`.
#[allow(clippy::too_many_arguments)]
pub fn forward(
    cfg: &Config,
    w: &LayerWeights,
    x: &[f32],
    out: &mut [f32],
    saved: &mut Saved,
    scratch: &mut Scratch,
    shape: (usize, usize),
    p: Precision,
) {
    let (c, eps) = (cfg.n_embd, cfg.layer_norm_epsilon);
    let s = saved;
    norm_forward(
        &mut s.ln1_out,
        &mut s.ln1,
        x,
        &w.ln_1_weight,
        Some(&w.ln_1_bias),
        true,
        eps,
    );
    linear(
        &mut s.qkv,
        &s.ln1_out,
        &w.attn_weight,
        Some(&w.attn_bias),
        c,
        p,
    );
    let heads = |offset| Heads {
        data: &s.qkv,
        stride: 3 * c,
        offset,
    };
    let ashape = attn_shape(cfg, shape.0, shape.1);
    attention_forward(
        ashape,
        heads(0),
        heads(c),
        heads(2 * c),
        &mut s.probs,
        &mut s.atty,
    );
    let x2 = &mut scratch.x2;
    linear(x2, &s.atty, &w.proj_weight, Some(&w.proj_bias), c, p);
    add_into(x2, x);
    norm_forward(
        &mut s.ln2_out,
        &mut s.ln2,
        x2,
        &w.ln_2_weight,
        Some(&w.ln_2_bias),
        true,
        eps,
    );
    linear(&mut s.h, &s.ln2_out, &w.fc_weight, Some(&w.fc_bias), c, p);
    gelu_forward(&mut s.g, &mut s.tanh, &s.h);
    linear(
        out,
        &s.g,
        &w.fc_proj_weight,
        Some(&w.fc_proj_bias),
        4 * c,
        p,
    );
    add_into(out, x2);
}

/// From `dout`, the gradient at the block's output, adds the weight gradients to `gw` (or
/// overwrites them unless `acc`) and writes the gradient at its input to `dx`.
#[allow(clippy::too_many_arguments)]
pub fn backward(
    cfg: &Config,
    w: &LayerWeights,
    gw: &mut LayerWeights,
    s: &Saved,
    scratch: &mut Scratch,
    dout: &[f32],
    dx: &mut [f32],
    shape: (usize, usize),
    p: Precision,
    acc: bool,
) {
    let c = cfg.n_embd;
    let Scratch {
        dh,
        dln2,
        datty,
        dqkv,
        dln1,
        ..
    } = scratch;
    linear_backward(
        Some(dh),
        &mut gw.fc_proj_weight,
        Some(&mut gw.fc_proj_bias),
        dout,
        &s.g,
        &w.fc_proj_weight,
        4 * c,
        p,
        acc,
    );
    gelu_backward(dh, &s.tanh, &s.h);
    linear_backward(
        Some(dln2),
        &mut gw.fc_weight,
        Some(&mut gw.fc_bias),
        dh,
        &s.ln2_out,
        &w.fc_weight,
        c,
        p,
        acc,
    );
    dx.copy_from_slice(dout);
    norm_backward(
        dx,
        &mut gw.ln_2_weight,
        Some(&mut gw.ln_2_bias),
        dln2,
        &s.ln2,
        &w.ln_2_weight,
        true,
        acc,
    );
    linear_backward(
        Some(datty),
        &mut gw.proj_weight,
        Some(&mut gw.proj_bias),
        dx,
        &s.atty,
        &w.proj_weight,
        c,
        p,
        acc,
    );
    let heads = |offset| Heads {
        data: &s.qkv,
        stride: 3 * c,
        offset,
    };
    let ashape = attn_shape(cfg, shape.0, shape.1);
    let grads = attention_backward(ashape, heads(0), heads(c), heads(2 * c), &s.probs, datty);
    dqkv.fill(0.0);
    for (part, offset) in [(Part::Q, 0), (Part::K, c), (Part::V, 2 * c)] {
        scatter(ashape, &grads, part, dqkv, 3 * c, offset);
    }
    linear_backward(
        Some(dln1),
        &mut gw.attn_weight,
        Some(&mut gw.attn_bias),
        dqkv,
        &s.ln1_out,
        &w.attn_weight,
        c,
        p,
        acc,
    );
    norm_backward(
        dx,
        &mut gw.ln_1_weight,
        Some(&mut gw.ln_1_bias),
        dln1,
        &s.ln1,
        &w.ln_1_weight,
        true,
        acc,
    );
}
