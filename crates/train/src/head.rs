//! The host ends of a training step, in f32: token (and position) embeddings in, and the
//! final norm, LM head and mean cross-entropy out — forward and backward.

use crate::native::{matmul, Precision};
use cpu::activation::softmax_cross_entropy;
use cpu::matmul::MatRef;
use cpu::Cpu;
use models::load::LoadedModel;
use rayon::prelude::*;

/// Embeddings of `tokens` laid out as rows `[N, C]`; position `i % seq` for GPT-2.
pub fn embed(model: &LoadedModel, tokens: &[u32], seq: usize) -> crate::Result<Vec<f32>> {
    let mut rows = Vec::new();
    for (i, &t) in tokens.iter().enumerate() {
        let row = model
            .embed(t, i % seq)
            .map_err(|e| crate::Error::Invalid(e.to_string()))?;
        rows.extend(row);
    }
    Ok(rows)
}

/// Accumulates the embedding gradients of `dx` rows `[N, C]` into `grads`.
pub fn embed_backward(grads: &mut LoadedModel, tokens: &[u32], seq: usize, dx: &[f32]) {
    let (table, positions, c) = match grads {
        LoadedModel::Gpt2(g) => (&mut g.wte, Some(&mut g.wpe), g.config.n_embd),
        LoadedModel::Llama(g) => (&mut g.tok_embeddings, None, g.config.dim),
    };
    for (i, &t) in tokens.iter().enumerate() {
        let row = &dx[i * c..(i + 1) * c];
        table[t as usize * c..(t as usize + 1) * c]
            .iter_mut()
            .zip(row)
            .for_each(|(a, b)| *a += b);
    }
    if let Some(wpe) = positions {
        for (i, row) in dx.chunks_exact(c).enumerate() {
            let p = (i % seq) * c;
            wpe[p..p + c].iter_mut().zip(row).for_each(|(a, b)| *a += b);
        }
    }
}

/// The final norm of one row: normalized values and what backward needs (mean, 1/std).
struct NormRow {
    xhat: Vec<f32>,
    rstd: f32,
}

fn layer_norm_row(x: &[f32], eps: f32) -> NormRow {
    let c = x.len() as f32;
    let mean = x.iter().sum::<f32>() / c;
    let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / c;
    let rstd = 1.0 / (var + eps).sqrt();
    NormRow {
        xhat: x.iter().map(|v| (v - mean) * rstd).collect(),
        rstd,
    }
}

fn rms_norm_row(x: &[f32], eps: f32) -> NormRow {
    let ms = x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32;
    let rstd = 1.0 / (ms + eps).sqrt();
    NormRow {
        xhat: x.iter().map(|v| v * rstd).collect(),
        rstd,
    }
}

/// Loss and the gradient flowing back into the last layer's output.
pub struct HeadResult {
    /// Mean cross-entropy over the positions (unscaled).
    pub loss: f32,
    /// `d loss / d x` rows `[N, C]`, multiplied by the loss scale.
    pub dx: Vec<f32>,
}

/// Final norm, LM head and mean cross-entropy of rows `x` `[N, C]` against `targets`, and
/// their backward: norm and head gradients (× `scale`) are added to `grads` (or overwrite
/// them unless `accumulate`). `logits` is a buffer reused between calls.
#[allow(clippy::too_many_arguments)]
pub fn head_forward_backward(
    model: &LoadedModel,
    grads: &mut LoadedModel,
    x: &[f32],
    targets: &[u32],
    scale: f32,
    precision: Precision,
    logits: &mut Vec<f32>,
    accumulate: bool,
) -> HeadResult {
    let (c, eps, gamma, beta, head, vocab, rms) = match model {
        LoadedModel::Gpt2(w) => (
            w.config.n_embd,
            w.config.layer_norm_epsilon,
            &w.ln_f_weight,
            Some(&w.ln_f_bias),
            &w.wte[..],
            w.config.vocab_size,
            false,
        ),
        LoadedModel::Llama(w) => (
            w.config.dim,
            w.config.norm_eps,
            &w.norm,
            None,
            w.lm_head(),
            w.config.vocab_size,
            true,
        ),
    };
    let n = targets.len();
    let rows: Vec<NormRow> = x
        .par_chunks(c)
        .map(|r| {
            if rms {
                rms_norm_row(r, eps)
            } else {
                layer_norm_row(r, eps)
            }
        })
        .collect();
    let hn: Vec<f32> = rows
        .iter()
        .flat_map(|r| {
            r.xhat
                .iter()
                .enumerate()
                .map(|(j, v)| v * gamma[j] + beta.map_or(0.0, |b| b[j]))
        })
        .collect();
    let w = MatRef::row_major(head, vocab, c);
    logits.resize(n * vocab, 0.0);
    matmul(
        logits,
        MatRef::row_major(&hn, n, c),
        w.t(),
        false,
        precision,
    );
    // Softmax cross-entropy; logits become d loss / d logits × scale.
    let losses: Vec<f32> = logits
        .par_chunks_mut(vocab)
        .zip(targets.par_iter())
        .map(|(row, &t)| softmax_cross_entropy(Cpu::active(), row, t as usize, scale / n as f32))
        .collect();
    let loss = losses.iter().sum::<f32>() / n as f32;
    let mut dhn = vec![0.0; n * c];
    matmul(
        &mut dhn,
        MatRef::row_major(logits, n, vocab),
        w,
        false,
        precision,
    );
    let (g_gamma, mut g_beta, g_head) = match grads {
        LoadedModel::Gpt2(g) => (&mut g.ln_f_weight, Some(&mut g.ln_f_bias), &mut g.wte),
        LoadedModel::Llama(g) => (
            &mut g.norm,
            None,
            g.output.as_mut().unwrap_or(&mut g.tok_embeddings),
        ),
    };
    matmul(
        g_head,
        MatRef::row_major(logits, n, vocab).t(),
        MatRef::row_major(&hn, n, c),
        accumulate,
        precision,
    );
    if !accumulate {
        g_gamma.fill(0.0);
        if let Some(gb) = g_beta.as_deref_mut() {
            gb.fill(0.0);
        }
    }
    let mut dx = vec![0.0; n * c];
    for (i, r) in rows.iter().enumerate() {
        let dy = &dhn[i * c..(i + 1) * c];
        for j in 0..c {
            g_gamma[j] += dy[j] * r.xhat[j];
        }
        if let Some(gb) = g_beta.as_deref_mut() {
            gb.iter_mut().zip(dy).for_each(|(a, b)| *a += b);
        }
        let dxhat: Vec<f32> = (0..c).map(|j| dy[j] * gamma[j]).collect();
        let mean_dxhat_xhat = dxhat.iter().zip(&r.xhat).map(|(a, b)| a * b).sum::<f32>() / c as f32;
        let mean_dxhat = if rms {
            0.0
        } else {
            dxhat.iter().sum::<f32>() / c as f32
        };
        for j in 0..c {
            dx[i * c + j] = r.rstd * (dxhat[j] - mean_dxhat - r.xhat[j] * mean_dxhat_xhat);
        }
    }
    HeadResult { loss, dx }
}
