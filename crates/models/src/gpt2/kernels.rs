//! GPT-2's device kernels: per-layer programs for a sequence bucket.
//!
//! Activations are `[1, C, 1, S]` fp16. Every kernel takes the residual stream `x` and returns
//! the updated stream `out`; kernels with attention also return the layer's keys and values
//! (`k_cache`/`v_cache` for prefill, `k_new`/`v_new` for decode), `[1, C, 1, S]`.

use super::{Config, LayerWeights};
use crate::kernels::TrainInput;
use compiler::graph::Graph;
use compiler::{GraphBuilder, NodeId, Result, WeightMode};
use mil::DType;

/// `[C]` norm parameters as a `[1, C, 1, 1]` weight.
fn channel_param(b: &mut GraphBuilder, cfg: &Config, name: &str, values: &[f32]) -> Result<NodeId> {
    b.weight(name, &[1, cfg.n_embd, 1, 1], values.to_vec())
}

/// `ln_1` and the fused q/k/v projection: returns (q, k, v), each `[1, C, 1, S]`.
fn qkv(
    b: &mut GraphBuilder,
    cfg: &Config,
    w: &LayerWeights,
    x: NodeId,
) -> Result<(NodeId, NodeId, NodeId)> {
    let c = cfg.n_embd;
    let g = channel_param(b, cfg, "ln_1_weight", &w.ln_1_weight)?;
    let beta = channel_param(b, cfg, "ln_1_bias", &w.ln_1_bias)?;
    let h = b.layer_norm(x, g, beta, cfg.layer_norm_epsilon)?;
    let qkv = b.linear(
        h,
        "attn",
        3 * c,
        w.attn_weight.clone(),
        Some(w.attn_bias.clone()),
    )?;
    Ok((
        b.slice_axis(qkv, 1, 0, c)?,
        b.slice_axis(qkv, 1, c, 2 * c)?,
        b.slice_axis(qkv, 1, 2 * c, 3 * c)?,
    ))
}

/// `x + proj(a)`.
fn project(
    b: &mut GraphBuilder,
    cfg: &Config,
    w: &LayerWeights,
    x: NodeId,
    a: NodeId,
) -> Result<NodeId> {
    let proj = b.linear(
        a,
        "proj",
        cfg.n_embd,
        w.proj_weight.clone(),
        Some(w.proj_bias.clone()),
    )?;
    b.add(x, proj)
}

/// `x + fc_proj(gelu_tanh(fc(ln_2(x))))`.
fn ffn(b: &mut GraphBuilder, cfg: &Config, w: &LayerWeights, x: NodeId) -> Result<NodeId> {
    let c = cfg.n_embd;
    let g = channel_param(b, cfg, "ln_2_weight", &w.ln_2_weight)?;
    let beta = channel_param(b, cfg, "ln_2_bias", &w.ln_2_bias)?;
    let h = b.layer_norm(x, g, beta, cfg.layer_norm_epsilon)?;
    let up = b.linear(h, "fc", 4 * c, w.fc_weight.clone(), Some(w.fc_bias.clone()))?;
    let act = b.gelu_tanh(up)?;
    let down = b.linear(
        act,
        "fc_proj",
        c,
        w.fc_proj_weight.clone(),
        Some(w.fc_proj_bias.clone()),
    )?;
    b.add(x, down)
}

/// `ln_1` and separate q, k, v projections (weights `attn_q`, `attn_k`, `attn_v` and their
/// biases): the training form, whose backward needs no slice gradients.
fn qkv_split(b: &mut GraphBuilder, cfg: &Config, x: NodeId) -> Result<(NodeId, NodeId, NodeId)> {
    let c = cfg.n_embd;
    let g = channel_param(b, cfg, "ln_1_weight", &[])?;
    let beta = channel_param(b, cfg, "ln_1_bias", &[])?;
    let h = b.layer_norm(x, g, beta, cfg.layer_norm_epsilon)?;
    Ok((
        b.linear(h, "attn_q", c, vec![], Some(vec![]))?,
        b.linear(h, "attn_k", c, vec![], Some(vec![]))?,
        b.linear(h, "attn_v", c, vec![], Some(vec![]))?,
    ))
}

/// Causal self-attention over a bucket of `s` positions: `(out, k, v)`.
fn causal_attention(
    b: &mut GraphBuilder,
    cfg: &Config,
    w: &LayerWeights,
    x: NodeId,
    s: usize,
) -> Result<[NodeId; 3]> {
    let (q, k, v) = qkv(b, cfg, w, x)?;
    let mask = b.causal_mask(s, s)?;
    let a = b.attention(q, k, v, mask, cfg.n_head, cfg.n_head)?;
    Ok([project(b, cfg, w, x, a)?, k, v])
}

/// Attention block of one layer over a bucket of `s` positions:
/// `out = x + proj(attn(ln_1(x)))`, plus the keys and values.
pub fn prefill_attn(cfg: &Config, w: &LayerWeights, s: usize, mode: WeightMode) -> Result<Graph> {
    let mut b = GraphBuilder::new(mode);
    let x = b.input("x", DType::Fp16, &[1, cfg.n_embd, 1, s]);
    let [out, k, v] = causal_attention(&mut b, cfg, w, x, s)?;
    b.output("out", out);
    b.output("k_cache", k);
    b.output("v_cache", v);
    b.finish()
}

/// FFN block of one layer: `out = x + fc_proj(gelu_tanh(fc(ln_2(x))))`.
pub fn prefill_ffn(cfg: &Config, w: &LayerWeights, s: usize, mode: WeightMode) -> Result<Graph> {
    let mut b = GraphBuilder::new(mode);
    let x = b.input("x", DType::Fp16, &[1, cfg.n_embd, 1, s]);
    let out = ffn(&mut b, cfg, w, x)?;
    b.output("out", out);
    b.finish()
}

/// A whole layer (attention then FFN) over a prefill bucket of `s` positions, in one program.
pub fn prefill_layer(cfg: &Config, w: &LayerWeights, s: usize, mode: WeightMode) -> Result<Graph> {
    let mut b = GraphBuilder::new(mode);
    let x = b.input("x", DType::Fp16, &[1, cfg.n_embd, 1, s]);
    let [mid, k, v] = causal_attention(&mut b, cfg, w, x, s)?;
    let out = ffn(&mut b, cfg, w, mid)?;
    b.output("out", out);
    b.output("k_cache", k);
    b.output("v_cache", v);
    b.finish()
}

/// A whole layer for training, weights as inputs: `batch` sequences of `t` positions side by
/// side in `x` `[1, C, 1, B·T]`, kept apart by a block-diagonal causal mask. Weight inputs are
/// named as in [`train_inputs`], each `[1, out, 1, in]` (row-major `[out, in]`) or
/// `[1, C, 1, 1]` for norms and biases. Returns `out`.
pub fn train_layer(cfg: &Config, batch: usize, t: usize, dtype: DType) -> Result<Graph> {
    let w = LayerWeights::placeholder();
    let mut b = GraphBuilder::with_dtype(WeightMode::Dynamic, dtype);
    let x = b.input("x", dtype, &[1, cfg.n_embd, 1, batch * t]);
    let (q, k, v) = qkv_split(&mut b, cfg, x)?;
    let mask = b.batched_causal_mask(batch, t)?;
    let a = b.attention(q, k, v, mask, cfg.n_head, cfg.n_head)?;
    let mid = project(&mut b, cfg, &w, x, a)?;
    let out = ffn(&mut b, cfg, &w, mid)?;
    b.output("out", out);
    b.finish()
}

/// The weight inputs of [`train_layer`] and the layer tensors they carry: q, k and v are
/// row ranges of the fused `attn` weight and bias.
pub fn train_inputs(cfg: &Config) -> Vec<TrainInput> {
    let (c, cc) = (cfg.n_embd, cfg.n_embd * cfg.n_embd);
    let whole = |name, tensor, len| TrainInput {
        name,
        tensor,
        range: 0..len,
    };
    let part = |name, tensor, i: usize, len: usize| TrainInput {
        name,
        tensor,
        range: i * len..(i + 1) * len,
    };
    vec![
        whole("ln_1_weight", 0, c),
        whole("ln_1_bias", 1, c),
        part("attn_q", 2, 0, cc),
        part("attn_k", 2, 1, cc),
        part("attn_v", 2, 2, cc),
        part("attn_q_bias", 3, 0, c),
        part("attn_k_bias", 3, 1, c),
        part("attn_v_bias", 3, 2, c),
        whole("proj", 4, cc),
        whole("proj_bias", 5, c),
        whole("ln_2_weight", 6, c),
        whole("ln_2_bias", 7, c),
        whole("fc", 8, 4 * cc),
        whole("fc_bias", 9, 4 * c),
        whole("fc_proj", 10, 4 * cc),
        whole("fc_proj_bias", 11, c),
    ]
}

/// A whole layer for decode: `width` query slots (the new token in slot 0) attend over a KV
/// cache of `t` positions (inputs `k_cache`, `v_cache` `[1, C, 1, T]`, additive `mask`
/// `[1, 1, W, T]` hiding unused positions) and over their own keys. Returns `out` and the new
/// keys and values `k_new`, `v_new` `[1, C, 1, W]` for the host to append to the cache.
pub fn decode_layer(
    cfg: &Config,
    w: &LayerWeights,
    width: usize,
    t: usize,
    mode: WeightMode,
) -> Result<Graph> {
    let (c, heads) = (cfg.n_embd, cfg.n_head);
    let mut b = GraphBuilder::new(mode);
    let x = b.input("x", DType::Fp16, &[1, c, 1, width]);
    let k_cache = b.input("k_cache", DType::Fp16, &[1, c, 1, t]);
    let v_cache = b.input("v_cache", DType::Fp16, &[1, c, 1, t]);
    let mask = b.input("mask", DType::Fp16, &[1, 1, width, t]);
    let (q, k, v) = qkv(&mut b, cfg, w, x)?;
    let self_mask = b.constant(
        DType::Fp16,
        &[1, 1, width, width],
        compiler::nn::diagonal_mask_values(width),
    )?;
    let qh = b.split_heads(q, heads)?;
    let parts = [
        (
            b.split_heads(k_cache, heads)?,
            b.split_heads(v_cache, heads)?,
            mask,
        ),
        (
            b.split_heads(k, heads)?,
            b.split_heads(v, heads)?,
            self_mask,
        ),
    ];
    let a = b.attention_over(qh, &parts)?;
    let mid = project(&mut b, cfg, w, x, a)?;
    let out = ffn(&mut b, cfg, w, mid)?;
    b.output("out", out);
    b.output("k_new", k);
    b.output("v_new", v);
    b.finish()
}
