//! Llama's device kernels: per-layer programs for a sequence bucket.
//!
//! Activations are `[1, D, 1, S]` fp16. Prefill kernels apply RoPE for positions `0..S`
//! (tables baked as constants); decode kernels take the tables of their positions as inputs
//! `cos`, `sin` `[1, 1, head_dim, W]`. Keys are cached after rotation.

use super::{Config, LayerWeights};
use crate::kernels::TrainInput;
use compiler::graph::Graph;
use compiler::nn::{rope_tables, RopeStyle};
use compiler::{GraphBuilder, NodeId, Result, WeightMode};
use mil::DType;

/// RMSNorm and the q/k/v projections, split into heads: (q `[1, H, hd, S]`, k, v `[1, Hkv, hd, S]`).
fn qkv_heads(
    b: &mut GraphBuilder,
    cfg: &Config,
    w: &LayerWeights,
    x: NodeId,
) -> Result<(NodeId, NodeId, NodeId)> {
    let (d, kv) = (cfg.dim, cfg.kv_dim());
    let g = b.weight("attention_norm", &[1, d, 1, 1], w.attention_norm.clone())?;
    let h = b.rms_norm(x, g, cfg.norm_eps)?;
    let q = b.linear(h, "wq", d, w.wq.clone(), None)?;
    let k = b.linear(h, "wk", kv, w.wk.clone(), None)?;
    let v = b.linear(h, "wv", kv, w.wv.clone(), None)?;
    Ok((
        b.split_heads(q, cfg.n_heads)?,
        b.split_heads(k, cfg.n_kv_heads)?,
        b.split_heads(v, cfg.n_kv_heads)?,
    ))
}

/// `x + wo(a)`.
fn project(
    b: &mut GraphBuilder,
    cfg: &Config,
    w: &LayerWeights,
    x: NodeId,
    a: NodeId,
) -> Result<NodeId> {
    let o = b.linear(a, "wo", cfg.dim, w.wo.clone(), None)?;
    b.add(x, o)
}

/// `x + w2(silu(w1 h) * w3 h)` with `h = rmsnorm(x)`.
fn ffn(b: &mut GraphBuilder, cfg: &Config, w: &LayerWeights, x: NodeId) -> Result<NodeId> {
    let (d, hidden) = (cfg.dim, cfg.hidden_dim);
    let g = b.weight("ffn_norm", &[1, d, 1, 1], w.ffn_norm.clone())?;
    let h = b.rms_norm(x, g, cfg.norm_eps)?;
    let gate = b.linear(h, "w1", hidden, w.w1.clone(), None)?;
    let up = b.linear(h, "w3", hidden, w.w3.clone(), None)?;
    let act = b.silu(gate)?;
    let prod = b.mul(act, up)?;
    let down = b.linear(prod, "w2", d, w.w2.clone(), None)?;
    b.add(x, down)
}

/// Causal attention over `s` positions from 0: `(out, k_cache, v_cache)` with rotated keys.
fn causal_attention(
    b: &mut GraphBuilder,
    cfg: &Config,
    w: &LayerWeights,
    x: NodeId,
    s: usize,
    style: RopeStyle,
) -> Result<[NodeId; 3]> {
    let hd = cfg.head_dim();
    let (q, k, v) = qkv_heads(b, cfg, w, x)?;
    let (cos, sin) = rope_tables(hd, s, 0, cfg.rope_theta, style);
    let cos = b.constant(DType::Fp16, &[1, 1, hd, s], cos)?;
    let sin = b.constant(DType::Fp16, &[1, 1, hd, s], sin)?;
    let qr = b.rope(q, cos, sin, style)?;
    let kr = b.rope(k, cos, sin, style)?;
    let mask = b.causal_mask(s, s)?;
    let a = b.attention_heads(qr, kr, v, mask)?;
    let out = project(b, cfg, w, x, a)?;
    Ok([out, b.merge_heads(kr)?, b.merge_heads(v)?])
}

/// Attention block of one layer over a bucket of `s` positions:
/// `out = x + wo(attn(rope(wq h), rope(wk h), wv h))` with `h = rmsnorm(x)`.
pub fn prefill_attn(
    cfg: &Config,
    w: &LayerWeights,
    s: usize,
    style: RopeStyle,
    mode: WeightMode,
) -> Result<Graph> {
    let mut b = GraphBuilder::new(mode);
    let x = b.input("x", DType::Fp16, &[1, cfg.dim, 1, s]);
    let [out, k, v] = causal_attention(&mut b, cfg, w, x, s, style)?;
    b.output("out", out);
    b.output("k_cache", k);
    b.output("v_cache", v);
    b.finish()
}

/// FFN block of one layer: `out = x + w2(silu(w1 h) * w3 h)` with `h = rmsnorm(x)`.
pub fn prefill_ffn(cfg: &Config, w: &LayerWeights, s: usize, mode: WeightMode) -> Result<Graph> {
    let mut b = GraphBuilder::new(mode);
    let x = b.input("x", DType::Fp16, &[1, cfg.dim, 1, s]);
    let out = ffn(&mut b, cfg, w, x)?;
    b.output("out", out);
    b.finish()
}

/// A whole layer (attention then FFN) over a prefill bucket of `s` positions, in one program.
pub fn prefill_layer(
    cfg: &Config,
    w: &LayerWeights,
    s: usize,
    style: RopeStyle,
    mode: WeightMode,
) -> Result<Graph> {
    let mut b = GraphBuilder::new(mode);
    let x = b.input("x", DType::Fp16, &[1, cfg.dim, 1, s]);
    let [mid, k, v] = causal_attention(&mut b, cfg, w, x, s, style)?;
    let out = ffn(&mut b, cfg, w, mid)?;
    b.output("out", out);
    b.output("k_cache", k);
    b.output("v_cache", v);
    b.finish()
}

/// A whole layer for training, weights as inputs: `batch` sequences of `t` positions side by
/// side in `x` `[1, D, 1, B·T]`, each rotated for positions `0..t` and kept apart by a
/// block-diagonal causal mask. Weight inputs are named as in [`train_inputs`], each
/// `[1, out, 1, in]` (row-major `[out, in]`) or `[1, D, 1, 1]` for norms. Returns `out`.
pub fn train_layer(
    cfg: &Config,
    batch: usize,
    t: usize,
    style: RopeStyle,
    dtype: DType,
) -> Result<Graph> {
    let (hd, n) = (cfg.head_dim(), batch * t);
    let w = LayerWeights::placeholder();
    let mut b = GraphBuilder::with_dtype(WeightMode::Dynamic, dtype);
    let x = b.input("x", dtype, &[1, cfg.dim, 1, n]);
    let (q, k, v) = qkv_heads(&mut b, cfg, &w, x)?;
    let (cos, sin) = rope_tables(hd, t, 0, cfg.rope_theta, style);
    let tile = |table: Vec<f32>| -> Vec<f32> {
        table.chunks(t).flat_map(|row| row.repeat(batch)).collect()
    };
    let cos = b.constant(dtype, &[1, 1, hd, n], tile(cos))?;
    let sin = b.constant(dtype, &[1, 1, hd, n], tile(sin))?;
    let qr = b.rope(q, cos, sin, style)?;
    let kr = b.rope(k, cos, sin, style)?;
    let mask = b.batched_causal_mask(batch, t)?;
    let a = b.attention_heads(qr, kr, v, mask)?;
    let mid = project(&mut b, cfg, &w, x, a)?;
    let out = ffn(&mut b, cfg, &w, mid)?;
    b.output("out", out);
    b.finish()
}

/// The weight inputs of [`train_layer`] and the layer tensors (field order) they carry.
pub fn train_inputs(cfg: &Config) -> Vec<TrainInput> {
    LayerWeights::NAMES
        .iter()
        .zip(LayerWeights::shapes(cfg))
        .enumerate()
        .map(|(tensor, (&name, shape))| TrainInput {
            name,
            tensor,
            range: 0..shape.iter().product(),
        })
        .collect()
}

/// A whole layer for decode: `width` query slots (the new token in slot 0) at the positions
/// whose RoPE tables are the inputs `cos`, `sin` `[1, 1, hd, W]`, attending over a cache of `t`
/// rotated keys and values (`k_cache`, `v_cache` `[1, KV, 1, T]`, additive `mask` `[1, 1, W, T]`)
/// and over their own keys. Returns `out` and the new rotated keys and values `k_new`, `v_new`.
pub fn decode_layer(
    cfg: &Config,
    w: &LayerWeights,
    width: usize,
    t: usize,
    style: RopeStyle,
    mode: WeightMode,
) -> Result<Graph> {
    let (d, kv, hd) = (cfg.dim, cfg.kv_dim(), cfg.head_dim());
    let mut b = GraphBuilder::new(mode);
    let x = b.input("x", DType::Fp16, &[1, d, 1, width]);
    let k_cache = b.input("k_cache", DType::Fp16, &[1, kv, 1, t]);
    let v_cache = b.input("v_cache", DType::Fp16, &[1, kv, 1, t]);
    let mask = b.input("mask", DType::Fp16, &[1, 1, width, t]);
    let cos = b.input("cos", DType::Fp16, &[1, 1, hd, width]);
    let sin = b.input("sin", DType::Fp16, &[1, 1, hd, width]);
    let (q, k, v) = qkv_heads(&mut b, cfg, w, x)?;
    let qr = b.rope(q, cos, sin, style)?;
    let kr = b.rope(k, cos, sin, style)?;
    let self_mask = b.constant(
        DType::Fp16,
        &[1, 1, width, width],
        compiler::nn::diagonal_mask_values(width),
    )?;
    let parts = [
        (
            b.split_heads(k_cache, cfg.n_kv_heads)?,
            b.split_heads(v_cache, cfg.n_kv_heads)?,
            mask,
        ),
        (kr, v, self_mask),
    ];
    let a = b.attention_over(qr, &parts)?;
    let mid = project(&mut b, cfg, w, x, a)?;
    let out = ffn(&mut b, cfg, w, mid)?;
    let (k_new, v_new) = (b.merge_heads(kr)?, b.merge_heads(v)?);
    b.output("out", out);
    b.output("k_new", k_new);
    b.output("v_new", v_new);
    b.finish()
}
