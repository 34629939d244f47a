//! A model's parameters as one ordered list of named tensors, for the optimizer, gradients
//! and checkpoints. Names follow the weight structs (`wte`, `layers.3.attn`, `norm`, …).

use models::load::LoadedModel;
use models::{gpt2, llama};

/// Names and shapes of every trainable tensor, in a fixed order.
pub fn named_shapes(model: &LoadedModel) -> Vec<(String, Vec<usize>)> {
    match model {
        LoadedModel::Gpt2(w) => {
            let c = &w.config;
            let (e, v, p) = (c.n_embd, c.vocab_size, c.n_positions);
            let mut out = vec![("wte".into(), vec![v, e]), ("wpe".into(), vec![p, e])];
            let layer_shapes = gpt2::LayerWeights::shapes(c);
            for l in 0..c.n_layer {
                for (name, shape) in gpt2::LayerWeights::NAMES.iter().zip(&layer_shapes) {
                    out.push((format!("layers.{l}.{name}"), shape.clone()));
                }
            }
            out.push(("ln_f_weight".into(), vec![e]));
            out.push(("ln_f_bias".into(), vec![e]));
            out
        }
        LoadedModel::Llama(w) => {
            let c = &w.config;
            let (d, v) = (c.dim, c.vocab_size);
            let mut out = vec![("tok_embeddings".into(), vec![v, d])];
            let layer_shapes = llama::LayerWeights::shapes(c);
            for l in 0..c.n_layers {
                for (name, shape) in llama::LayerWeights::NAMES.iter().zip(&layer_shapes) {
                    out.push((format!("layers.{l}.{name}"), shape.clone()));
                }
            }
            out.push(("norm".into(), vec![d]));
            if w.output.is_some() {
                out.push(("output".into(), vec![v, d]));
            }
            out
        }
    }
}

/// Every trainable tensor, in the order of [`named_shapes`].
pub fn tensors(model: &LoadedModel) -> Vec<&Vec<f32>> {
    match model {
        LoadedModel::Gpt2(w) => {
            let mut out = vec![&w.wte, &w.wpe];
            out.extend(w.layers.iter().flat_map(|l| l.tensors()));
            out.extend([&w.ln_f_weight, &w.ln_f_bias]);
            out
        }
        LoadedModel::Llama(w) => {
            let mut out = vec![&w.tok_embeddings];
            out.extend(w.layers.iter().flat_map(|l| l.tensors()));
            out.push(&w.norm);
            out.extend(w.output.as_ref());
            out
        }
    }
}

/// Every trainable tensor, writable, in the order of [`named_shapes`].
pub fn tensors_mut(model: &mut LoadedModel) -> Vec<&mut Vec<f32>> {
    match model {
        LoadedModel::Gpt2(w) => {
            let mut out = vec![&mut w.wte, &mut w.wpe];
            out.extend(w.layers.iter_mut().flat_map(|l| l.tensors_mut()));
            out.extend([&mut w.ln_f_weight, &mut w.ln_f_bias]);
            out
        }
        LoadedModel::Llama(w) => {
            let mut out = vec![&mut w.tok_embeddings];
            out.extend(w.layers.iter_mut().flat_map(|l| l.tensors_mut()));
            out.push(&mut w.norm);
            out.extend(w.output.as_mut());
            out
        }
    }
}

/// A model of the same shape with every parameter zero (a gradient buffer).
pub fn zeros_like(model: &LoadedModel) -> LoadedModel {
    let mut z = model.clone();
    for t in tensors_mut(&mut z) {
        t.fill(0.0);
    }
    z
}
