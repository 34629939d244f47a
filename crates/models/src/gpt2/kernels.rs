//! GPT-2's device kernels: per-layer attention and FFN programs for a sequence bucket.
//!
//! Activations are `[1, C, 1, S]` fp16. Each kernel takes the residual stream `x` and returns
//! the updated residual stream `out`; the attention kernel also returns the layer's keys and
//! values (`k_cache`, `v_cache`, `[1, C, 1, S]`) for the KV cache.

use super::{Config, LayerWeights};
use compiler::graph::Graph;
use compiler::{GraphBuilder, NodeId, Result, WeightMode};
use mil::DType;

/// `[C]` norm parameters as a `[1, C, 1, 1]` weight.
fn channel_param(b: &mut GraphBuilder, name: &str, values: &[f32]) -> Result<NodeId> {
    b.weight(name, &[1, values.len(), 1, 1], values.to_vec())
}

/// Attention block of one layer over a bucket of `s` positions:
/// `out = x + proj(attn(ln_1(x)))`, plus the keys and values.
pub fn prefill_attn(cfg: &Config, w: &LayerWeights, s: usize, mode: WeightMode) -> Result<Graph> {
    let c = cfg.n_embd;
    let mut b = GraphBuilder::new(mode);
    let x = b.input("x", DType::Fp16, &[1, c, 1, s]);
    let g = channel_param(&mut b, "ln_1_weight", &w.ln_1_weight)?;
    let beta = channel_param(&mut b, "ln_1_bias", &w.ln_1_bias)?;
    let h = b.layer_norm(x, g, beta, cfg.layer_norm_epsilon)?;
    let qkv = b.linear(
        h,
        "attn",
        3 * c,
        w.attn_weight.clone(),
        Some(w.attn_bias.clone()),
    )?;
    let q = b.slice_axis(qkv, 1, 0, c)?;
    let k = b.slice_axis(qkv, 1, c, 2 * c)?;
    let v = b.slice_axis(qkv, 1, 2 * c, 3 * c)?;
    let mask = b.causal_mask(s, s)?;
    let a = b.attention(q, k, v, mask, cfg.n_head, cfg.n_head)?;
    let proj = b.linear(
        a,
        "proj",
        c,
        w.proj_weight.clone(),
        Some(w.proj_bias.clone()),
    )?;
    let out = b.add(x, proj)?;
    b.output("out", out);
    b.output("k_cache", k);
    b.output("v_cache", v);
    b.finish()
}

/// FFN block of one layer: `out = x + fc_proj(gelu_tanh(fc(ln_2(x))))`.
pub fn prefill_ffn(cfg: &Config, w: &LayerWeights, s: usize, mode: WeightMode) -> Result<Graph> {
    let c = cfg.n_embd;
    let mut b = GraphBuilder::new(mode);
    let x = b.input("x", DType::Fp16, &[1, c, 1, s]);
    let g = channel_param(&mut b, "ln_2_weight", &w.ln_2_weight)?;
    let beta = channel_param(&mut b, "ln_2_bias", &w.ln_2_bias)?;
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
    let out = b.add(x, down)?;
    b.output("out", out);
    b.finish()
}
