//! The native host trainer: each layer's forward and backward written directly in Rust over
//! fast matrix products, keeping the activations backward needs (no recomputation). This is
//! the host path of `orion train --device cpu`; the device path runs the same arithmetic as
//! programs (`crate::trainer`).

pub mod attention;
pub mod gemm;
pub mod gpt2;
pub mod llama;
pub mod ops;

pub use gemm::{matmul, Precision};

use crate::error::Result;
use crate::head::{embed, embed_backward, head_forward_backward};
use crate::trainer::{check_batch, PassStats};
use models::load::LoadedModel;
use std::time::Instant;

/// Per-family saved activations (one entry per layer) and shared buffers.
enum Family {
    Gpt2(Vec<gpt2::Saved>, gpt2::Scratch),
    Llama(Vec<llama::Saved>, llama::Scratch, llama::Rope),
}

impl Family {
    fn layers(&self) -> usize {
        match self {
            Family::Gpt2(saved, _) => saved.len(),
            Family::Llama(saved, ..) => saved.len(),
        }
    }
}

/// Runs forward and backward passes of one model natively on the host.
pub struct NativeTrainer {
    batch: usize,
    seq: usize,
    precision: Precision,
    family: Family,
    /// Activations into and out of the layer being run, swapped after each layer: `[N · C]`.
    x: Vec<f32>,
    out: Vec<f32>,
    /// Gradients at a layer's output and input, swapped after each layer.
    dy: Vec<f32>,
    dx: Vec<f32>,
    /// The LM head's logits and their gradient, `[N, vocab]`.
    logits: Vec<f32>,
}

impl NativeTrainer {
    /// A trainer for micro-batches of `batch × seq` tokens.
    pub fn new(model: &LoadedModel, batch: usize, seq: usize, precision: Precision) -> Self {
        let n = batch * seq;
        let (family, width) = match model {
            LoadedModel::Gpt2(w) => (
                Family::Gpt2(
                    (0..w.config.n_layer)
                        .map(|_| gpt2::Saved::new(&w.config, batch, seq))
                        .collect(),
                    gpt2::Scratch::new(&w.config, n),
                ),
                w.config.n_embd,
            ),
            LoadedModel::Llama(w) => (
                Family::Llama(
                    (0..w.config.n_layers)
                        .map(|_| llama::Saved::new(&w.config, batch, seq))
                        .collect(),
                    llama::Scratch::new(&w.config, n),
                    llama::Rope::new(&w.config, seq, w.rope),
                ),
                w.config.dim,
            ),
        };
        NativeTrainer {
            batch,
            seq,
            precision,
            family,
            x: vec![0.0; n * width],
            out: vec![0.0; n * width],
            dy: vec![0.0; n * width],
            dx: vec![0.0; n * width],
            logits: Vec::new(),
        }
    }

    /// Tokens per micro-batch.
    pub fn tokens(&self) -> usize {
        self.batch * self.seq
    }

    /// Forward and backward of one micro-batch: returns the loss, and adds the gradients
    /// (multiplied by `scale`) to `grads` — or, unless `accumulate`, overwrites every one of
    /// them, whatever `grads` held (the first micro-batch of a step need not zero them
    /// first). `inputs`, `targets`: `[batch · seq]`.
    pub fn forward_backward(
        &mut self,
        model: &LoadedModel,
        grads: &mut LoadedModel,
        inputs: &[u32],
        targets: &[u32],
        scale: f32,
        accumulate: bool,
    ) -> Result<PassStats> {
        check_batch(self.tokens(), inputs, targets)?;
        let mut stats = PassStats::default();
        let clock = Instant::now();
        self.x = embed(model, inputs, self.seq)?;
        self.forward(model);
        let last = &self.x;
        stats.non_finite += count_non_finite(last);
        stats.forward_s = clock.elapsed().as_secs_f64();
        let clock = Instant::now();
        let p = self.precision;
        let logits = &mut self.logits;
        let head = head_forward_backward(model, grads, last, targets, scale, p, logits, accumulate);
        stats.loss = head.loss;
        self.dy = head.dx;
        stats.host_s = clock.elapsed().as_secs_f64();
        let clock = Instant::now();
        self.backward(model, grads, accumulate);
        stats.non_finite += count_non_finite(&self.dy);
        stats.backward_s = clock.elapsed().as_secs_f64();
        let clock = Instant::now();
        if !accumulate {
            zero_embedding_grads(grads);
        }
        embed_backward(grads, inputs, self.seq, &self.dy);
        stats.host_s += clock.elapsed().as_secs_f64();
        Ok(stats)
    }

    /// Runs every layer over `x`, leaving the last layer's output in `x`.
    fn forward(&mut self, model: &LoadedModel) {
        let shape = (self.batch, self.seq);
        let p = self.precision;
        for layer in 0..self.family.layers() {
            let (x, out) = (&self.x, &mut self.out);
            match (&mut self.family, model) {
                (Family::Gpt2(saved, scratch), LoadedModel::Gpt2(w)) => {
                    let (lw, s) = (&w.layers[layer], &mut saved[layer]);
                    gpt2::forward(&w.config, lw, x, out, s, scratch, shape, p);
                }
                (Family::Llama(saved, scratch, rope), LoadedModel::Llama(w)) => {
                    let (lw, s) = (&w.layers[layer], &mut saved[layer]);
                    llama::forward(&w.config, lw, rope, x, out, s, scratch, shape, p);
                }
                _ => unreachable!("the trainer was built for this model's family"),
            }
            std::mem::swap(&mut self.x, &mut self.out);
        }
    }

    /// Backward through every layer, from the gradient at the last layer's output in `dy`
    /// to the gradient at the first layer's input, left in `dy`.
    fn backward(&mut self, model: &LoadedModel, grads: &mut LoadedModel, acc: bool) {
        let shape = (self.batch, self.seq);
        let p = self.precision;
        for layer in (0..self.family.layers()).rev() {
            let (dy, dx) = (&self.dy, &mut self.dx);
            match (&mut self.family, model, &mut *grads) {
                (Family::Gpt2(saved, scratch), LoadedModel::Gpt2(w), LoadedModel::Gpt2(g)) => {
                    let (lw, gw, s) = (&w.layers[layer], &mut g.layers[layer], &saved[layer]);
                    gpt2::backward(&w.config, lw, gw, s, scratch, dy, dx, shape, p, acc);
                }
                (
                    Family::Llama(saved, scratch, rope),
                    LoadedModel::Llama(w),
                    LoadedModel::Llama(g),
                ) => {
                    let (lw, gw, s) = (&w.layers[layer], &mut g.layers[layer], &saved[layer]);
                    llama::backward(&w.config, lw, gw, rope, s, scratch, dy, dx, shape, p, acc);
                }
                _ => unreachable!("the trainer was built for this model's family"),
            }
            std::mem::swap(&mut self.dy, &mut self.dx);
        }
    }
}

/// Zeroes the embedding gradients the LM head did not write (a tied head writes the token
/// table): GPT-2's positions, an untied Llama's token table.
fn zero_embedding_grads(grads: &mut LoadedModel) {
    match grads {
        LoadedModel::Gpt2(g) => g.wpe.fill(0.0),
        LoadedModel::Llama(g) if g.output.is_some() => g.tok_embeddings.fill(0.0),
        LoadedModel::Llama(_) => {}
    }
}

fn count_non_finite(v: &[f32]) -> usize {
    v.iter().filter(|x| !x.is_finite()).count()
}
