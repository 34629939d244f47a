//! One training step's forward and backward passes: every transformer layer runs as a device
//! program with **dynamic weights** (weights are inputs), so two programs — one layer
//! forward, one layer backward, shared by all layers — compile once at start-up and never again.
//!
//! What runs where, and why:
//! - device: each layer's forward (`train_layer`) and its backward (derived by autodiff, which
//!   recomputes the layer's forward inside: activation checkpointing per layer), including the
//!   weight gradients — the whole layer is a few large matmuls the device does well;
//! - host, in f32: embeddings, the final norm, the LM head (a vocabulary-sized matmul, which
//!   the device rejects as a conv input, C19, and which would overflow its SRAM) and the loss.
//!
//! The host path runs the same programs built in fp32 on the emulator, where fp32 values are
//! never rounded: same graphs, f32 arithmetic.

use crate::error::{Error, Result};
use crate::head::{embed, embed_backward, head_forward_backward};
use compiler::autodiff;
use compiler::graph::Graph;
use mil::DType;
use models::kernels::TrainInput;
use models::load::LoadedModel;
use models::{gpt2, llama};
use runtime::{Device, HostTensor, ProgramKey, Session, TensorView};
use std::collections::HashMap;

/// The largest magnitude written to an fp16 surface when clamping is on. The device's
/// matmul partial sums overflow at 2^15 (C24), so activations stay well inside that.
pub const FP16_CLAMP: f32 = 16384.0;

/// Shapes of one training step.
#[derive(Clone, Debug)]
pub struct TrainShape {
    /// Sequences per micro-batch.
    pub batch: usize,
    /// Positions per sequence.
    pub seq: usize,
    /// fp16 for the device (and the emulator), fp32 for the host path.
    pub dtype: DType,
    /// Clamp every fp16 value written to a surface to ±[`FP16_CLAMP`].
    pub clamp: bool,
}

/// What one forward/backward pass reports.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PassStats {
    /// Mean cross-entropy.
    pub loss: f32,
    /// Non-finite values that came back from the device (activations or gradients).
    pub non_finite: usize,
    /// Seconds in the layer forward programs (surfaces included).
    pub forward_s: f64,
    /// Seconds on the host ends: embeddings, final norm, LM head and loss, both directions.
    pub host_s: f64,
    /// Seconds in the layer backward programs, gradient accumulation included.
    pub backward_s: f64,
}

/// Runs training passes for one model on one device.
pub struct Trainer<D: Device> {
    session: Session<D>,
    forward: ProgramKey,
    backward: ProgramKey,
    shape: TrainShape,
    /// The layer programs' weight inputs and the layer tensors they carry.
    weight_inputs: Vec<TrainInput>,
    /// MIL shapes of every program input, by name.
    input_shapes: HashMap<String, Vec<usize>>,
    /// Input names of each program (autodiff drops weights a backward does not read).
    program_inputs: HashMap<String, Vec<String>>,
}

/// An error unless `inputs` and `targets` both hold the `n` tokens of a micro-batch.
pub(crate) fn check_batch(n: usize, inputs: &[u32], targets: &[u32]) -> Result<()> {
    if inputs.len() != n || targets.len() != n {
        return Err(Error::Invalid(format!(
            "a micro-batch has {n} tokens, got {} inputs and {} targets",
            inputs.len(),
            targets.len()
        )));
    }
    Ok(())
}

fn rt(e: runtime::Error) -> Error {
    Error::Invalid(e.to_string())
}

fn cx(e: compiler::Error) -> Error {
    Error::Invalid(e.to_string())
}

fn layer_graph(model: &LoadedModel, shape: &TrainShape) -> Result<(Graph, Vec<TrainInput>)> {
    Ok(match model {
        LoadedModel::Gpt2(w) => (
            gpt2::kernels::train_layer(&w.config, shape.batch, shape.seq, shape.dtype)
                .map_err(cx)?,
            gpt2::kernels::train_inputs(&w.config),
        ),
        LoadedModel::Llama(w) => (
            llama::kernels::train_layer(&w.config, shape.batch, shape.seq, w.rope, shape.dtype)
                .map_err(cx)?,
            llama::kernels::train_inputs(&w.config),
        ),
    })
}

fn layer_tensors(model: &LoadedModel, layer: usize) -> Vec<&Vec<f32>> {
    match model {
        LoadedModel::Gpt2(w) => w.layers[layer].tensors().to_vec(),
        LoadedModel::Llama(w) => w.layers[layer].tensors().to_vec(),
    }
}

fn layer_tensors_mut(model: &mut LoadedModel, layer: usize) -> Vec<&mut Vec<f32>> {
    match model {
        LoadedModel::Gpt2(w) => w.layers[layer].tensors_mut().into_iter().collect(),
        LoadedModel::Llama(w) => w.layers[layer].tensors_mut().into_iter().collect(),
    }
}

fn layers(model: &LoadedModel) -> usize {
    match model {
        LoadedModel::Gpt2(w) => w.config.n_layer,
        LoadedModel::Llama(w) => w.config.n_layers,
    }
}

fn width(model: &LoadedModel) -> usize {
    match model {
        LoadedModel::Gpt2(w) => w.config.n_embd,
        LoadedModel::Llama(w) => w.config.dim,
    }
}

impl<D: Device> Trainer<D> {
    /// Builds and compiles the layer forward and backward programs.
    pub fn new(model: &LoadedModel, device: D, shape: TrainShape) -> Result<Self> {
        let (graph, weight_inputs) = layer_graph(model, &shape)?;
        let inputs = graph.inputs();
        let wrt: Vec<_> = inputs.iter().map(|(_, id)| *id).collect();
        let back = autodiff::backward(&graph, &wrt, &[("out", "d_out")]).map_err(cx)?;
        let mut session = Session::new(device);
        let key = |kernel: &str| ProgramKey {
            kernel: kernel.to_string(),
            layer: 0,
            weights_id: 0,
            bucket: shape.batch * shape.seq,
        };
        let (forward, backward) = (key("train.layer_forward"), key("train.layer_backward"));
        let mut input_shapes = HashMap::new();
        let mut program_inputs = HashMap::new();
        for (k, g) in [(&forward, &graph), (&backward, &back)] {
            let bundle = compiler::compile(g).map_err(cx)?.bundle;
            let interface = session.load(k, &bundle).map_err(rt)?;
            for spec in &interface.inputs {
                input_shapes.insert(spec.name.clone(), spec.shape.clone());
            }
            program_inputs.insert(
                k.kernel.clone(),
                interface.inputs.iter().map(|s| s.name.clone()).collect(),
            );
        }
        Ok(Trainer {
            session,
            forward,
            backward,
            shape,
            weight_inputs,
            input_shapes,
            program_inputs,
        })
    }

    /// The session (compile counts, kernel times).
    pub fn session(&self) -> &Session<D> {
        &self.session
    }

    /// Tokens per micro-batch.
    pub fn tokens(&self) -> usize {
        self.shape.batch * self.shape.seq
    }

    /// Clamps values bound for an fp16 surface, when clamping is on.
    fn clamp(&self, data: &mut [f32]) {
        if self.shape.clamp && self.shape.dtype == DType::Fp16 {
            data.iter_mut()
                .for_each(|v| *v = v.clamp(-FP16_CLAMP, FP16_CLAMP));
        }
    }

    /// Rows `[N, C]` to device layout `[1, C, 1, N]`, clamped.
    fn to_device(&self, rows: &[f32], c: usize) -> Vec<f32> {
        let mut out = HostTensor::from_seq(rows.len() / c, c, rows).data;
        self.clamp(&mut out);
        out
    }

    /// Device layout `[1, C, 1, N]` back to rows `[N, C]`.
    fn from_device(data: &[f32], c: usize) -> Result<Vec<f32>> {
        HostTensor::new(vec![1, c, 1, data.len() / c], data.to_vec())
            .to_seq()
            .map_err(rt)
    }

    /// Runs one layer program with `x` (device layout) and the layer's weights, plus extras.
    fn run_layer(
        &mut self,
        key: &ProgramKey,
        model: &LoadedModel,
        layer: usize,
        x: &[f32],
        extra: &[(&str, &[f32])],
    ) -> Result<HashMap<String, runtime::HostTensor>> {
        let tensors = layer_tensors(model, layer);
        let mut views: Vec<(&str, TensorView)> = Vec::new();
        let shape_of = |name: &str| {
            self.input_shapes
                .get(name)
                .map(Vec::as_slice)
                .unwrap_or(&[])
        };
        views.push((
            "x",
            TensorView {
                shape: shape_of("x"),
                data: x,
            },
        ));
        for input in &self.weight_inputs {
            views.push((
                input.name,
                TensorView {
                    shape: shape_of(input.name),
                    data: &tensors[input.tensor][input.range.clone()],
                },
            ));
        }
        for (name, data) in extra {
            views.push((
                name,
                TensorView {
                    shape: shape_of(name),
                    data,
                },
            ));
        }
        let wanted = &self.program_inputs[&key.kernel];
        views.retain(|(name, _)| wanted.iter().any(|w| w == name));
        self.session.run_views(key, &views).map_err(rt)
    }

    /// Forward and backward of one micro-batch: returns the loss, and accumulates the
    /// gradients (multiplied by `scale`) into `grads`. `inputs`, `targets`: `[batch · seq]`.
    pub fn forward_backward(
        &mut self,
        model: &LoadedModel,
        grads: &mut LoadedModel,
        inputs: &[u32],
        targets: &[u32],
        scale: f32,
    ) -> Result<PassStats> {
        let (c, n) = (width(model), self.tokens());
        check_batch(n, inputs, targets)?;
        let mut stats = PassStats::default();
        let clock = std::time::Instant::now();
        let mut xs: Vec<Vec<f32>> = Vec::with_capacity(layers(model) + 1);
        xs.push(self.to_device(&embed(model, inputs, self.shape.seq)?, c));
        let forward = self.forward.clone();
        for layer in 0..layers(model) {
            let out = self.run_layer(&forward, model, layer, &xs[layer], &[])?;
            let mut y = out["out"].data.clone();
            stats.non_finite += y.iter().filter(|v| !v.is_finite()).count();
            self.clamp(&mut y);
            xs.push(y);
        }
        stats.forward_s = clock.elapsed().as_secs_f64();
        let clock = std::time::Instant::now();
        let last = Self::from_device(&xs[layers(model)], c)?;
        let head = head_forward_backward(
            model,
            grads,
            &last,
            targets,
            scale,
            crate::native::Precision::F32,
            &mut Vec::new(),
            true,
        );
        stats.loss = head.loss;
        let mut dy = self.to_device(&head.dx, c);
        stats.host_s = clock.elapsed().as_secs_f64();
        let clock = std::time::Instant::now();
        let backward = self.backward.clone();
        for layer in (0..layers(model)).rev() {
            let out = self.run_layer(&backward, model, layer, &xs[layer], &[("d_out", &dy)])?;
            let mut layer_grads = layer_tensors_mut(grads, layer);
            for input in &self.weight_inputs {
                let Some(d) = out.get(&format!("d_{}", input.name)).map(|t| &t.data) else {
                    return Err(Error::Invalid(format!(
                        "the backward program returns no gradient for {}",
                        input.name
                    )));
                };
                stats.non_finite += d.iter().filter(|v| !v.is_finite()).count();
                let g = &mut layer_grads[input.tensor][input.range.clone()];
                g.iter_mut().zip(d).for_each(|(a, b)| *a += b);
            }
            dy = out["d_x"].data.clone();
            stats.non_finite += dy.iter().filter(|v| !v.is_finite()).count();
            self.clamp(&mut dy);
        }
        stats.backward_s = clock.elapsed().as_secs_f64();
        let clock = std::time::Instant::now();
        embed_backward(grads, inputs, self.shape.seq, &Self::from_device(&dy, c)?);
        stats.host_s += clock.elapsed().as_secs_f64();
        Ok(stats)
    }
}
