//! The device path of inference: each layer is one compiled program (baked weights) run
//! through the runtime session on any [`Device`]; embeddings, the final norm and the LM head
//! stay on the host.
//!
//! Prefill runs the prompt through per-layer programs for the smallest sequence bucket that
//! holds it (32…1024, padded). Decode runs per-layer programs with [`DECODE_WIDTH`] query
//! slots (the new token in slot 0; the width keeps surfaces a multiple of 16, C21) attending
//! over a KV cache of `capacity` positions held on the host in device layout and passed in
//! as surfaces, with an additive mask hiding unused positions — so one program per layer
//! serves every position, and a generation compiles 2 × layers programs in all.

use crate::error::{Error, Result};
use crate::load::LoadedModel;
use crate::{gpt2, llama};
use compiler::nn::rope_tables;
use compiler::WeightMode;
use cpu::linear::{gemv, Out};
use cpu::{Matrix, Pool, Precision};
use mil::bundle::ProgramBundle;
use runtime::{Device, HostTensor, ProgramKey, Session};

/// Prefill sequence buckets.
pub const BUCKETS: [usize; 6] = [32, 64, 128, 256, 512, 1024];

/// Query slots of a decode program.
pub const DECODE_WIDTH: usize = 16;

/// The smallest bucket holding `n` positions, capped at the context length.
pub fn bucket_for(n: usize, context: usize) -> Result<usize> {
    if n > context {
        return Err(Error::Invalid(format!(
            "{n} positions exceed the context length {context}"
        )));
    }
    Ok(BUCKETS
        .iter()
        .copied()
        .find(|&b| b >= n)
        .unwrap_or(context)
        .min(context.max(n)))
}

/// Shape facts and host-side steps (embedding, final norm, LM head) of a loaded model.
impl LoadedModel {
    fn layers(&self) -> usize {
        match self {
            LoadedModel::Gpt2(w) => w.config.n_layer,
            LoadedModel::Llama(w) => w.config.n_layers,
        }
    }

    /// Model width C.
    fn width(&self) -> usize {
        match self {
            LoadedModel::Gpt2(w) => w.config.n_embd,
            LoadedModel::Llama(w) => w.config.dim,
        }
    }

    /// Key/value width per position.
    fn kv_width(&self) -> usize {
        match self {
            LoadedModel::Gpt2(w) => w.config.n_embd,
            LoadedModel::Llama(w) => w.config.kv_dim(),
        }
    }

    /// Context length.
    pub fn context(&self) -> usize {
        match self {
            LoadedModel::Gpt2(w) => w.config.n_positions,
            LoadedModel::Llama(w) => w.config.seq_len,
        }
    }

    /// Vocabulary size.
    pub fn vocab(&self) -> usize {
        match self {
            LoadedModel::Gpt2(w) => w.config.vocab_size,
            LoadedModel::Llama(w) => w.config.vocab_size,
        }
    }

    fn family(&self) -> &'static str {
        match self {
            LoadedModel::Gpt2(_) => "gpt2",
            LoadedModel::Llama(_) => "llama",
        }
    }

    /// The embedding row of `token` at `pos` (GPT-2 adds the position's row).
    pub fn embed(&self, token: u32, pos: usize) -> Result<Vec<f32>> {
        let c = self.width();
        let t = token as usize;
        if t >= self.vocab() {
            return Err(Error::Invalid(format!(
                "token id {token} is outside the vocabulary of {}",
                self.vocab()
            )));
        }
        Ok(match self {
            LoadedModel::Gpt2(w) => w.wte[t * c..(t + 1) * c]
                .iter()
                .zip(&w.wpe[pos * c..(pos + 1) * c])
                .map(|(a, b)| a + b)
                .collect(),
            LoadedModel::Llama(w) => w.tok_embeddings[t * c..(t + 1) * c].to_vec(),
        })
    }

    /// The final norm of one hidden state, and the LM head `[V, C]` to apply to it.
    fn final_norm(&self, h: &[f32]) -> Vec<f32> {
        let c = h.len() as f32;
        match self {
            LoadedModel::Gpt2(w) => {
                let mean = h.iter().sum::<f32>() / c;
                let var = h.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / c;
                let r = 1.0 / (var + w.config.layer_norm_epsilon).sqrt();
                h.iter()
                    .enumerate()
                    .map(|(i, v)| (v - mean) * r * w.ln_f_weight[i] + w.ln_f_bias[i])
                    .collect()
            }
            LoadedModel::Llama(w) => {
                let ms = h.iter().map(|v| v * v).sum::<f32>() / c;
                let r = 1.0 / (ms + w.config.norm_eps).sqrt();
                h.iter()
                    .enumerate()
                    .map(|(i, v)| v * r * w.norm[i])
                    .collect()
            }
        }
    }

    /// The LM head `[V, C]`.
    fn head(&self) -> &[f32] {
        match self {
            LoadedModel::Gpt2(w) => &w.wte,
            LoadedModel::Llama(w) => w.lm_head(),
        }
    }

    /// The program of `kernel` ("prefill" or "decode") for `layer` at size `size`.
    fn program(
        &self,
        kernel: &str,
        layer: usize,
        size: usize,
        capacity: usize,
    ) -> Result<ProgramBundle> {
        let graph = match (self, kernel) {
            (LoadedModel::Gpt2(w), "prefill") => {
                gpt2::kernels::prefill_layer(&w.config, &w.layers[layer], size, WeightMode::Baked)?
            }
            (LoadedModel::Gpt2(w), _) => gpt2::kernels::decode_layer(
                &w.config,
                &w.layers[layer],
                size,
                capacity,
                WeightMode::Baked,
            )?,
            (LoadedModel::Llama(w), "prefill") => llama::kernels::prefill_layer(
                &w.config,
                &w.layers[layer],
                size,
                w.rope,
                WeightMode::Baked,
            )?,
            (LoadedModel::Llama(w), _) => llama::kernels::decode_layer(
                &w.config,
                &w.layers[layer],
                size,
                capacity,
                w.rope,
                WeightMode::Baked,
            )?,
        };
        Ok(compiler::compile(&graph)?.bundle)
    }
}

/// Runs a model's layers on a device, keeping the KV cache on the host.
pub struct DeviceModel<D: Device> {
    weights: LoadedModel,
    /// The LM head in f32 for the host's threaded GEMV, and its thread pool.
    head: Matrix,
    pool: Pool,
    session: Session<D>,
    /// Per layer: keys and values, each `[KV, capacity]` channel-major (device layout).
    cache: Vec<(Vec<f32>, Vec<f32>)>,
    capacity: usize,
    /// Positions filled so far.
    pos: usize,
}

fn runtime_err(e: runtime::Error) -> Error {
    Error::Invalid(e.to_string())
}

impl<D: Device> DeviceModel<D> {
    /// A model on `device` whose KV cache holds `capacity` positions (rounded up to a bucket).
    pub fn new(weights: LoadedModel, device: D, capacity: usize) -> Result<Self> {
        let capacity = bucket_for(capacity.max(1), weights.context())?;
        let kv = weights.kv_width();
        let cache = (0..weights.layers())
            .map(|_| (vec![0.0; kv * capacity], vec![0.0; kv * capacity]))
            .collect();
        let head = Matrix::new(
            weights.head(),
            weights.vocab(),
            weights.width(),
            Precision::F32,
        );
        Ok(DeviceModel {
            weights,
            head,
            pool: Pool::new(std::thread::available_parallelism().map_or(1, |n| n.get())),
            session: Session::new(device),
            cache,
            capacity,
            pos: 0,
        })
    }

    /// The session (for compile counts).
    pub fn session(&self) -> &Session<D> {
        &self.session
    }

    /// Final norm and LM head of one hidden state (on the host): logits `[V]`.
    fn logits(&self, h: &[f32]) -> Vec<f32> {
        let normed = self.weights.final_norm(h);
        let mut out = vec![0.0; self.weights.vocab()];
        gemv(&self.pool, &self.head, &normed, None, &mut out, Out::Store);
        out
    }

    /// Positions the KV cache holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Number of layers.
    pub fn layers(&self) -> usize {
        self.weights.layers()
    }

    /// Layer `layer`'s cached key and value at position `pos`, each `[KV]`.
    pub fn cached(&self, layer: usize, pos: usize) -> (Vec<f32>, Vec<f32>) {
        let (kv, t) = (self.weights.kv_width(), self.capacity);
        let (kc, vc) = &self.cache[layer];
        (
            (0..kv).map(|ch| kc[ch * t + pos]).collect(),
            (0..kv).map(|ch| vc[ch * t + pos]).collect(),
        )
    }

    fn key(&self, kernel: &str, layer: usize, size: usize) -> ProgramKey {
        ProgramKey {
            kernel: format!("{}.{kernel}", self.weights.family()),
            layer,
            weights_id: 1,
            bucket: size,
        }
    }

    fn ensure(&mut self, kernel: &str, layer: usize, size: usize) -> Result<ProgramKey> {
        let key = self.key(kernel, layer, size);
        if !self.session.is_loaded(&key) {
            let bundle = self.weights.program(kernel, layer, size, self.capacity)?;
            self.session.load(&key, &bundle).map_err(runtime_err)?;
        }
        Ok(key)
    }

    /// Runs the prompt from position 0; returns the logits of every prompt position `[n, V]`.
    pub fn prefill_all(&mut self, tokens: &[u32]) -> Result<Vec<Vec<f32>>> {
        let (c, n) = (self.weights.width(), tokens.len());
        let hidden = self.prefill_hidden(tokens)?;
        Ok((0..n)
            .map(|p| self.logits(&hidden[p * c..(p + 1) * c]))
            .collect())
    }

    /// Runs the prompt from position 0; returns the logits of its last position.
    pub fn prefill(&mut self, tokens: &[u32]) -> Result<Vec<f32>> {
        let c = self.weights.width();
        let hidden = self.prefill_hidden(tokens)?;
        Ok(self.logits(&hidden[(tokens.len() - 1) * c..tokens.len() * c]))
    }

    /// Runs the prompt through every layer, filling the KV cache; returns the last layer's
    /// output rows `[S, C]` (the first `tokens.len()` are the prompt's).
    fn prefill_hidden(&mut self, tokens: &[u32]) -> Result<Vec<f32>> {
        let n = tokens.len();
        if n == 0 || n > self.capacity {
            return Err(Error::Invalid(format!(
                "a prompt of {n} tokens does not fit the cache of {} positions",
                self.capacity
            )));
        }
        let (c, kv) = (self.weights.width(), self.weights.kv_width());
        let s = bucket_for(n, self.weights.context())?;
        let mut rows = vec![0.0; s * c];
        for (p, &t) in tokens.iter().enumerate() {
            rows[p * c..(p + 1) * c].copy_from_slice(&self.weights.embed(t, p)?);
        }
        let mut x = HostTensor::from_seq(s, c, &rows);
        for layer in 0..self.weights.layers() {
            let key = self.ensure("prefill", layer, s)?;
            let mut out = self.session.run(&key, &[("x", &x)]).map_err(runtime_err)?;
            let (k, v) = (&out["k_cache"], &out["v_cache"]);
            let (kc, vc) = &mut self.cache[layer];
            for ch in 0..kv {
                kc[ch * self.capacity..ch * self.capacity + n]
                    .copy_from_slice(&k.data[ch * s..ch * s + n]);
                vc[ch * self.capacity..ch * self.capacity + n]
                    .copy_from_slice(&v.data[ch * s..ch * s + n]);
            }
            x = out.remove("out").expect("prefill programs return out");
        }
        self.pos = n;
        x.to_seq().map_err(runtime_err)
    }

    /// Appends one token at the next position; returns its logits.
    pub fn decode(&mut self, token: u32) -> Result<Vec<f32>> {
        let pos = self.pos;
        if pos >= self.capacity {
            return Err(Error::Invalid(format!(
                "the KV cache of {} positions is full",
                self.capacity
            )));
        }
        let (c, kv, w, t) = (
            self.weights.width(),
            self.weights.kv_width(),
            DECODE_WIDTH,
            self.capacity,
        );
        let mut rows = vec![0.0; w * c];
        rows[..c].copy_from_slice(&self.weights.embed(token, pos)?);
        let mut x = HostTensor::from_seq(w, c, &rows);
        let mut mask = vec![compiler::nn::MASK_NEG; w * t];
        mask[..pos].iter_mut().for_each(|m| *m = 0.0);
        let mask = HostTensor::new(vec![1, 1, w, t], mask);
        let rope = match &self.weights {
            LoadedModel::Llama(lw) => {
                let hd = lw.config.head_dim();
                let (cos, sin) = rope_tables(hd, 1, pos, lw.config.rope_theta, lw.rope);
                let widen = |col: Vec<f32>| {
                    HostTensor::new(
                        vec![1, 1, hd, w],
                        col.iter()
                            .flat_map(|&v| std::iter::repeat_n(v, w))
                            .collect(),
                    )
                };
                Some((widen(cos), widen(sin)))
            }
            LoadedModel::Gpt2(_) => None,
        };
        for layer in 0..self.weights.layers() {
            let key = self.ensure("decode", layer, w)?;
            let (kc, vc) = &self.cache[layer];
            let k_cache = HostTensor::new(vec![1, kv, 1, t], kc.clone());
            let v_cache = HostTensor::new(vec![1, kv, 1, t], vc.clone());
            let mut inputs = vec![
                ("x", &x),
                ("k_cache", &k_cache),
                ("v_cache", &v_cache),
                ("mask", &mask),
            ];
            if let Some((cos, sin)) = &rope {
                inputs.push(("cos", cos));
                inputs.push(("sin", sin));
            }
            let mut out = self.session.run(&key, &inputs).map_err(runtime_err)?;
            let (kn, vn) = (&out["k_new"], &out["v_new"]);
            let (kc, vc) = &mut self.cache[layer];
            for ch in 0..kv {
                kc[ch * t + pos] = kn.data[ch * w];
                vc[ch * t + pos] = vn.data[ch * w];
            }
            x = out.remove("out").expect("decode programs return out");
        }
        self.pos += 1;
        let hidden: Vec<f32> = (0..c).map(|ch| x.data[ch * w]).collect();
        Ok(self.logits(&hidden))
    }
}
