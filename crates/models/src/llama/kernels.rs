//! Llama's device kernels: per-layer attention and FFN programs for a sequence bucket.
//!
//! Activations are `[1, D, 1, S]` fp16. The attention kernel applies RoPE for positions
//! `0..S` (tables baked as constants) and returns the residual stream `out` and the layer's
//! rotated keys and values (`k_cache`, `v_cache`, `[1, KV, 1, S]`).

use super::Config;
use super::LayerWeights;
use compiler::graph::Graph;
use compiler::nn::{rope_tables, RopeStyle};
use compiler::{GraphBuilder, Result, WeightMode};
use mil::DType;

/// Attention block of one layer over a bucket of `s` positions:
/// `out = x + wo(attn(rope(wq h), rope(wk h), wv h))` with `h = rmsnorm(x)`.
pub fn prefill_attn(
    cfg: &Config,
    w: &LayerWeights,
    s: usize,
    style: RopeStyle,
    mode: WeightMode,
) -> Result<Graph> {
    let (d, kv, hd) = (cfg.dim, cfg.kv_dim(), cfg.head_dim());
    let mut b = GraphBuilder::new(mode);
    let x = b.input("x", DType::Fp16, &[1, d, 1, s]);
    let g = b.weight("attention_norm", &[1, d, 1, 1], w.attention_norm.clone())?;
    let h = b.rms_norm(x, g, cfg.norm_eps)?;
    let q = b.linear(h, "wq", d, w.wq.clone(), None)?;
    let k = b.linear(h, "wk", kv, w.wk.clone(), None)?;
    let v = b.linear(h, "wv", kv, w.wv.clone(), None)?;
    let (cos, sin) = rope_tables(hd, s, 0, cfg.rope_theta, style);
    let cos = b.constant(DType::Fp16, &[1, 1, hd, s], cos)?;
    let sin = b.constant(DType::Fp16, &[1, 1, hd, s], sin)?;
    let qh = b.split_heads(q, cfg.n_heads)?;
    let kh = b.split_heads(k, cfg.n_kv_heads)?;
    let vh = b.split_heads(v, cfg.n_kv_heads)?;
    let qr = b.rope(qh, cos, sin, style)?;
    let kr = b.rope(kh, cos, sin, style)?;
    let mask = b.causal_mask(s, s)?;
    let a = b.attention_heads(qr, kr, vh, mask)?;
    let o = b.linear(a, "wo", d, w.wo.clone(), None)?;
    let out = b.add(x, o)?;
    let k_cache = b.merge_heads(kr)?;
    b.output("out", out);
    b.output("k_cache", k_cache);
    b.output("v_cache", v);
    b.finish()
}

/// FFN block of one layer: `out = x + w2(silu(w1 h) * w3 h)` with `h = rmsnorm(x)`.
pub fn prefill_ffn(cfg: &Config, w: &LayerWeights, s: usize, mode: WeightMode) -> Result<Graph> {
    let (d, hidden) = (cfg.dim, cfg.hidden_dim);
    let mut b = GraphBuilder::new(mode);
    let x = b.input("x", DType::Fp16, &[1, d, 1, s]);
    let g = b.weight("ffn_norm", &[1, d, 1, 1], w.ffn_norm.clone())?;
    let h = b.rms_norm(x, g, cfg.norm_eps)?;
    let gate = b.linear(h, "w1", hidden, w.w1.clone(), None)?;
    let up = b.linear(h, "w3", hidden, w.w3.clone(), None)?;
    let act = b.silu(gate)?;
    let prod = b.mul(act, up)?;
    let down = b.linear(prod, "w2", d, w.w2.clone(), None)?;
    let out = b.add(x, down)?;
    b.output("out", out);
    b.finish()
}
