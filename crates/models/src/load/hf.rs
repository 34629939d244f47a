//! Hugging Face tensor names and orientations for GPT-2 and Llama, in both directions.
//!
//! GPT-2 checkpoints store their linear layers as Conv1D `[in, out]` (transposed here to our
//! `[out, in]`), named with or without the `transformer.` prefix. Llama checkpoints store
//! `[out, in]` with half-split rotary pairing.

use crate::error::{Error, Result};
use crate::load::rope::repair_rows;
use crate::load::tensors::{OutTensor, SaveDtype, TensorStore};
use crate::{gpt2, llama};
use compiler::nn::RopeStyle;
use std::borrow::Cow;

/// `src` `(rows, cols)` transposed to `(cols, rows)`.
fn transpose(src: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; src.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = src[r * cols + c];
        }
    }
    out
}

/// GPT-2 weights from a checkpoint whose config is `cfg`.
pub fn gpt2_from_store(store: &TensorStore, cfg: &gpt2::Config) -> Result<gpt2::Weights> {
    let prefix = if store.contains("transformer.wte.weight") {
        "transformer."
    } else {
        ""
    };
    let get = |name: &str, shape: &[usize]| store.f32(&format!("{prefix}{name}"), shape);
    // Conv1D `[in, out]` → `[out, in]`.
    let conv = |name: &str, n_in: usize, n_out: usize| -> Result<Vec<f32>> {
        Ok(transpose(&get(name, &[n_in, n_out])?, n_in, n_out))
    };
    let c = cfg.n_embd;
    let mut layers = Vec::with_capacity(cfg.n_layer);
    for l in 0..cfg.n_layer {
        let p = format!("h.{l}.");
        layers.push(gpt2::LayerWeights {
            ln_1_weight: get(&format!("{p}ln_1.weight"), &[c])?,
            ln_1_bias: get(&format!("{p}ln_1.bias"), &[c])?,
            attn_weight: conv(&format!("{p}attn.c_attn.weight"), c, 3 * c)?,
            attn_bias: get(&format!("{p}attn.c_attn.bias"), &[3 * c])?,
            proj_weight: conv(&format!("{p}attn.c_proj.weight"), c, c)?,
            proj_bias: get(&format!("{p}attn.c_proj.bias"), &[c])?,
            ln_2_weight: get(&format!("{p}ln_2.weight"), &[c])?,
            ln_2_bias: get(&format!("{p}ln_2.bias"), &[c])?,
            fc_weight: conv(&format!("{p}mlp.c_fc.weight"), c, 4 * c)?,
            fc_bias: get(&format!("{p}mlp.c_fc.bias"), &[4 * c])?,
            fc_proj_weight: conv(&format!("{p}mlp.c_proj.weight"), 4 * c, c)?,
            fc_proj_bias: get(&format!("{p}mlp.c_proj.bias"), &[c])?,
        });
    }
    let wte = get("wte.weight", &[cfg.vocab_size, c])?;
    if store.contains("lm_head.weight") && store.f32("lm_head.weight", &[cfg.vocab_size, c])? != wte
    {
        return Err(Error::format(
            store.path_of("lm_head.weight"),
            "lm_head.weight differs from wte.weight; GPT-2 models with an untied head are not \
             supported",
        ));
    }
    Ok(gpt2::Weights {
        wpe: get("wpe.weight", &[cfg.n_positions, c])?,
        layers,
        ln_f_weight: get("ln_f.weight", &[c])?,
        ln_f_bias: get("ln_f.bias", &[c])?,
        wte,
        config: cfg.clone(),
    })
}

/// Llama weights from a checkpoint whose config is `cfg`; `tied` drops `lm_head.weight`.
pub fn llama_from_store(
    store: &TensorStore,
    cfg: &llama::Config,
    tied: bool,
) -> Result<llama::Weights> {
    let (d, h, kv, v) = (cfg.dim, cfg.hidden_dim, cfg.kv_dim(), cfg.vocab_size);
    let mut layers = Vec::with_capacity(cfg.n_layers);
    for l in 0..cfg.n_layers {
        let get =
            |name: &str, shape: &[usize]| store.f32(&format!("model.layers.{l}.{name}"), shape);
        layers.push(llama::LayerWeights {
            attention_norm: get("input_layernorm.weight", &[d])?,
            wq: get("self_attn.q_proj.weight", &[d, d])?,
            wk: get("self_attn.k_proj.weight", &[kv, d])?,
            wv: get("self_attn.v_proj.weight", &[kv, d])?,
            wo: get("self_attn.o_proj.weight", &[d, d])?,
            ffn_norm: get("post_attention_layernorm.weight", &[d])?,
            w1: get("mlp.gate_proj.weight", &[h, d])?,
            w2: get("mlp.down_proj.weight", &[d, h])?,
            w3: get("mlp.up_proj.weight", &[h, d])?,
        });
    }
    Ok(llama::Weights {
        tok_embeddings: store.f32("model.embed_tokens.weight", &[v, d])?,
        layers,
        norm: store.f32("model.norm.weight", &[d])?,
        output: match tied {
            true => None,
            false => Some(store.f32("lm_head.weight", &[v, d])?),
        },
        rope: RopeStyle::HalfSplit,
        config: cfg.clone(),
    })
}

/// Collects named output tensors in one dtype.
struct Out<'a> {
    dtype: SaveDtype,
    tensors: Vec<(String, OutTensor<'a>)>,
}

impl<'a> Out<'a> {
    fn push(&mut self, name: String, shape: &[usize], values: impl Into<Cow<'a, [f32]>>) {
        let tensor = OutTensor {
            shape: shape.to_vec(),
            values: values.into(),
            dtype: self.dtype,
        };
        self.tensors.push((name, tensor));
    }
}

/// GPT-2 weights under the names and Conv1D orientation `save_pretrained` writes.
pub fn gpt2_tensors(w: &gpt2::Weights, dtype: SaveDtype) -> Vec<(String, OutTensor<'_>)> {
    let cfg = &w.config;
    let c = cfg.n_embd;
    let mut out = Out {
        dtype,
        tensors: Vec::new(),
    };
    out.push(
        "transformer.wte.weight".into(),
        &[cfg.vocab_size, c],
        &w.wte[..],
    );
    out.push(
        "transformer.wpe.weight".into(),
        &[cfg.n_positions, c],
        &w.wpe[..],
    );
    for (l, layer) in w.layers.iter().enumerate() {
        let p = format!("transformer.h.{l}.");
        out.push(format!("{p}ln_1.weight"), &[c], &layer.ln_1_weight[..]);
        out.push(format!("{p}ln_1.bias"), &[c], &layer.ln_1_bias[..]);
        let attn = transpose(&layer.attn_weight, 3 * c, c);
        out.push(format!("{p}attn.c_attn.weight"), &[c, 3 * c], attn);
        out.push(
            format!("{p}attn.c_attn.bias"),
            &[3 * c],
            &layer.attn_bias[..],
        );
        let proj = transpose(&layer.proj_weight, c, c);
        out.push(format!("{p}attn.c_proj.weight"), &[c, c], proj);
        out.push(format!("{p}attn.c_proj.bias"), &[c], &layer.proj_bias[..]);
        out.push(format!("{p}ln_2.weight"), &[c], &layer.ln_2_weight[..]);
        out.push(format!("{p}ln_2.bias"), &[c], &layer.ln_2_bias[..]);
        let fc = transpose(&layer.fc_weight, 4 * c, c);
        out.push(format!("{p}mlp.c_fc.weight"), &[c, 4 * c], fc);
        out.push(format!("{p}mlp.c_fc.bias"), &[4 * c], &layer.fc_bias[..]);
        let fc_proj = transpose(&layer.fc_proj_weight, c, 4 * c);
        out.push(format!("{p}mlp.c_proj.weight"), &[4 * c, c], fc_proj);
        out.push(format!("{p}mlp.c_proj.bias"), &[c], &layer.fc_proj_bias[..]);
    }
    out.push("transformer.ln_f.weight".into(), &[c], &w.ln_f_weight[..]);
    out.push("transformer.ln_f.bias".into(), &[c], &w.ln_f_bias[..]);
    out.tensors
}

/// Llama weights under Hugging Face names, q/k re-paired to half-split if needed.
pub fn llama_tensors(w: &llama::Weights, dtype: SaveDtype) -> Vec<(String, OutTensor<'_>)> {
    let cfg = &w.config;
    let (d, h, kv, v) = (cfg.dim, cfg.hidden_dim, cfg.kv_dim(), cfg.vocab_size);
    let half_split = |m: &'_ [f32], heads: usize| -> Vec<f32> {
        repair_rows(m, heads, d, w.rope, RopeStyle::HalfSplit)
    };
    let mut out = Out {
        dtype,
        tensors: Vec::new(),
    };
    out.push(
        "model.embed_tokens.weight".into(),
        &[v, d],
        &w.tok_embeddings[..],
    );
    for (l, layer) in w.layers.iter().enumerate() {
        let p = format!("model.layers.{l}.");
        out.push(
            format!("{p}input_layernorm.weight"),
            &[d],
            &layer.attention_norm[..],
        );
        let wq = half_split(&layer.wq, cfg.n_heads);
        out.push(format!("{p}self_attn.q_proj.weight"), &[d, d], wq);
        let wk = half_split(&layer.wk, cfg.n_kv_heads);
        out.push(format!("{p}self_attn.k_proj.weight"), &[kv, d], wk);
        out.push(
            format!("{p}self_attn.v_proj.weight"),
            &[kv, d],
            &layer.wv[..],
        );
        out.push(
            format!("{p}self_attn.o_proj.weight"),
            &[d, d],
            &layer.wo[..],
        );
        out.push(
            format!("{p}post_attention_layernorm.weight"),
            &[d],
            &layer.ffn_norm[..],
        );
        out.push(format!("{p}mlp.gate_proj.weight"), &[h, d], &layer.w1[..]);
        out.push(format!("{p}mlp.up_proj.weight"), &[h, d], &layer.w3[..]);
        out.push(format!("{p}mlp.down_proj.weight"), &[d, h], &layer.w2[..]);
    }
    out.push("model.norm.weight".into(), &[d], &w.norm[..]);
    if let Some(head) = &w.output {
        out.push("lm_head.weight".into(), &[v, d], &head[..]);
    }
    out.tensors
}
