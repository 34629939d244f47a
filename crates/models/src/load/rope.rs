//! Re-pairing q/k projection rows between the two rotary conventions.
//!
//! Half-split pairing rotates channels `(i, i + d/2)` of a head together (Hugging Face);
//! interleaved pairing rotates `(2i, 2i + 1)` (llama2.c, Meta). Both give pair `i` the same
//! frequency `theta^(-2i/d)`, so moving each head's rows from one position to the other turns a
//! model of one convention into the same function under the other.

use crate::llama;
use compiler::nn::RopeStyle;

/// Row of pair `i`, member `j` (0 or 1) within a head of `head_dim` channels.
fn row(style: RopeStyle, head_dim: usize, i: usize, j: usize) -> usize {
    match style {
        RopeStyle::HalfSplit => j * (head_dim / 2) + i,
        RopeStyle::Interleaved => 2 * i + j,
    }
}

/// A q or k projection `(n_heads·head_dim, cols)` with its rows moved from `from` to `to`.
pub fn repair_rows(
    w: &[f32],
    n_heads: usize,
    cols: usize,
    from: RopeStyle,
    to: RopeStyle,
) -> Vec<f32> {
    let head_dim = w.len() / cols / n_heads;
    let mut out = vec![0.0; w.len()];
    for h in 0..n_heads {
        for i in 0..head_dim / 2 {
            for j in 0..2 {
                let src = (h * head_dim + row(from, head_dim, i, j)) * cols;
                let dst = (h * head_dim + row(to, head_dim, i, j)) * cols;
                out[dst..dst + cols].copy_from_slice(&w[src..src + cols]);
            }
        }
    }
    out
}

/// The same model with its q/k weights stored for rotary convention `to`.
pub fn with_rope(weights: &llama::Weights, to: RopeStyle) -> llama::Weights {
    let mut out = weights.clone();
    if weights.rope != to {
        let c = &weights.config;
        for layer in &mut out.layers {
            layer.wq = repair_rows(&layer.wq, c.n_heads, c.dim, weights.rope, to);
            layer.wk = repair_rows(&layer.wk, c.n_kv_heads, c.dim, weights.rope, to);
        }
        out.rope = to;
    }
    out
}
