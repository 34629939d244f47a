//! A training run: the step loop (micro-batches, loss scaling, sanitization, clipping, AdamW
//! with its schedule) and everything a checkpoint needs to continue it bit-exactly.

use crate::checkpoint::Checkpoint;
use crate::clip::{clip_coefficient, grad_stats, zero_grads, GradStats};
use crate::error::{Error, Result};
use crate::loader::{Batch, Batcher, DataOrder};
use crate::loss_scale::{LossScaleConfig, LossScaler, StepDecision};
use crate::native::{NativeTrainer, Precision};
use crate::optim::{AdamW, AdamWConfig, GradPrep, ParamSpec};
use crate::params::{named_shapes, tensors, tensors_mut, zeros_like};
use crate::schedule::LrSchedule;
use crate::tokens::TokenFile;
use crate::trainer::{PassStats, TrainShape, Trainer};
use compiler::nn::RopeStyle;
use mil::DType;
use models::load::{hf_config, LoadedModel, SaveDtype};
use runtime::Device;
use serde::{Deserialize, Serialize};

/// The numerical-safety switches, each on by default.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Safety {
    /// Clamp activations and gradients written to fp16 surfaces.
    pub clamp: bool,
    /// Zero NaN/±Inf gradients (counted per step).
    pub sanitize: bool,
    /// Dynamic loss scaling of the fp16 backward.
    pub loss_scaling: bool,
}

impl Default for Safety {
    fn default() -> Self {
        Safety {
            clamp: true,
            sanitize: true,
            loss_scaling: true,
        }
    }
}

/// Every hyperparameter of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    pub steps: u64,
    /// Sequences per micro-batch.
    pub batch: usize,
    /// Positions per sequence.
    pub seq: usize,
    /// Micro-batches per optimizer step.
    pub accumulation: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Final learning rate of the cosine decay.
    pub min_lr: f64,
    pub warmup: u64,
    pub adamw: AdamWConfig,
    /// Global gradient-norm limit; 0 disables clipping.
    pub clip: f32,
    pub seed: u64,
    /// Sample windows at random (seeded) instead of in file order.
    pub random_order: bool,
    pub safety: Safety,
    /// The loss scale of fp16 backward passes: the starting scale with dynamic loss scaling,
    /// the fixed scale without it.
    pub loss_scale: f32,
    /// Program precision: fp16 on the device, fp32 for the host path.
    pub fp16: bool,
    /// Run the layers natively on the host with matrix products in this precision, instead
    /// of as programs (requires `fp16` off). `None` in checkpoints written before it existed.
    #[serde(default)]
    pub native: Option<Precision>,
}

/// What runs a micro-batch's forward and backward passes.
enum Passes<D: Device> {
    /// Layer programs on a device (or fp32 programs on the emulator).
    Programs(Trainer<D>),
    /// The native host trainer.
    Native(NativeTrainer),
}

impl<D: Device> Passes<D> {
    /// One micro-batch's passes; `first` of the step. The programs add to `grads`, which must
    /// be zero before a step's first micro-batch; the native trainer overwrites them then.
    fn forward_backward(
        &mut self,
        model: &LoadedModel,
        grads: &mut LoadedModel,
        batch: &Batch,
        scale: f32,
        first: bool,
    ) -> Result<PassStats> {
        let (inputs, targets) = (&batch.inputs, &batch.targets);
        match self {
            Passes::Programs(t) => t.forward_backward(model, grads, inputs, targets, scale),
            Passes::Native(t) => t.forward_backward(model, grads, inputs, targets, scale, !first),
        }
    }

    /// True when the gradients must be zero between steps (the programs add to them).
    fn needs_zeroed_grads(&self) -> bool {
        matches!(self, Passes::Programs(_))
    }

    fn tokens(&self) -> usize {
        match self {
            Passes::Programs(t) => t.tokens(),
            Passes::Native(t) => t.tokens(),
        }
    }
}

/// What one optimizer step did.
#[derive(Clone, Debug, PartialEq)]
pub struct StepReport {
    pub step: u64,
    /// Mean loss over the step's micro-batches.
    pub loss: f32,
    pub lr: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f32,
    /// Non-finite gradient values (zeroed when sanitizing).
    pub nan_count: usize,
    /// True when the update was not applied (loss-scale overflow).
    pub skipped: bool,
    pub loss_scale: Option<f32>,
    /// Tokens processed.
    pub tokens: usize,
    /// Where the step's time went.
    pub times: StepTimes,
}

/// Seconds per part of one optimizer step.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct StepTimes {
    /// Drawing batches.
    pub data: f64,
    /// Device layer forward programs.
    pub forward: f64,
    /// Device layer backward programs (weight gradients included).
    pub backward: f64,
    /// Host embeddings, final norm, LM head and loss, both directions.
    pub host: f64,
    /// Unscaling, sanitizing, clipping and the AdamW update.
    pub optimizer: f64,
}

/// A training run in progress.
pub struct Run<D: Device> {
    config: RunConfig,
    model: LoadedModel,
    grads: LoadedModel,
    trainer: Passes<D>,
    optimizer: AdamW,
    batcher: Batcher,
    scaler: Option<LossScaler>,
    schedule: LrSchedule,
    step: u64,
}

impl RunConfig {
    /// Checks every hyperparameter at the door, so that a bad value is an error before any
    /// file is touched rather than a panic, a NaN or a silently useless run later.
    pub fn validate(&self) -> Result<()> {
        if self.batch == 0 || self.seq == 0 || self.accumulation == 0 || self.steps == 0 {
            return Err(Error::Invalid(
                "steps, batch, seq and accumulation must all be positive".into(),
            ));
        }
        let rates_ok =
            self.lr > 0.0 && self.lr.is_finite() && (0.0..=self.lr).contains(&self.min_lr);
        if !rates_ok {
            return Err(Error::Invalid(format!(
                "learning rates must satisfy 0 < lr and 0 <= min_lr <= lr (got lr {}, min_lr {})",
                self.lr, self.min_lr
            )));
        }
        if !(self.loss_scale >= 1.0 && self.loss_scale.is_finite()) {
            return Err(Error::Invalid(format!(
                "the loss scale must be ≥ 1, got {}",
                self.loss_scale
            )));
        }
        if !(self.clip >= 0.0 && self.clip.is_finite()) {
            return Err(Error::Invalid(format!(
                "the clipping norm must be ≥ 0 (0 = off) and finite, got {}",
                self.clip
            )));
        }
        self.adamw.validate()
    }
}

fn data_order(config: &RunConfig) -> DataOrder {
    if config.random_order {
        DataOrder::Random { seed: config.seed }
    } else {
        DataOrder::Sequential
    }
}

fn vocab(model: &LoadedModel) -> usize {
    match model {
        LoadedModel::Gpt2(w) => w.config.vocab_size,
        LoadedModel::Llama(w) => w.config.vocab_size,
    }
}

impl<D: Device> Run<D> {
    /// A new run from `model` (its initialization) on `tokens`.
    pub fn new(
        model: LoadedModel,
        device: D,
        tokens: TokenFile,
        config: RunConfig,
    ) -> Result<Self> {
        config.validate()?;
        let context = match &model {
            LoadedModel::Gpt2(w) => w.config.n_positions,
            LoadedModel::Llama(w) => w.config.seq_len,
        };
        if config.seq > context {
            return Err(Error::Invalid(format!(
                "sequence length {} exceeds the model's context of {context} positions",
                config.seq
            )));
        }
        tokens.check_vocab(vocab(&model))?;
        let shape = TrainShape {
            batch: config.batch,
            seq: config.seq,
            dtype: if config.fp16 {
                DType::Fp16
            } else {
                DType::Fp32
            },
            clamp: config.safety.clamp,
        };
        let trainer = match config.native {
            Some(_) if config.fp16 => {
                return Err(Error::Invalid(
                    "the native host trainer computes in f32 or bf16, not fp16".into(),
                ))
            }
            Some(precision) => Passes::Native(NativeTrainer::new(
                &model,
                config.batch,
                config.seq,
                precision,
            )),
            None => Passes::Programs(Trainer::new(&model, device, shape)?),
        };
        let specs = named_shapes(&model)
            .into_iter()
            .map(|(n, s)| ParamSpec::new(n, s))
            .collect();
        let scaler = (config.fp16 && config.safety.loss_scaling).then(|| {
            LossScaler::new(LossScaleConfig {
                init_scale: config.loss_scale,
                ..LossScaleConfig::default()
            })
        });
        Ok(Run {
            schedule: LrSchedule {
                max_lr: config.lr,
                min_lr: config.min_lr,
                warmup_steps: config.warmup,
                total_steps: config.steps,
            },
            optimizer: AdamW::new(config.adamw, specs),
            batcher: Batcher::new(tokens, config.batch, config.seq, data_order(&config))?,
            grads: zeros_like(&model),
            scaler,
            trainer,
            model,
            config,
            step: 0,
        })
    }

    /// Continues the run saved in `checkpoint` (same data) bit-exactly.
    pub fn resume(checkpoint: &Checkpoint, device: D, tokens: TokenFile) -> Result<Self> {
        let header = &checkpoint.header;
        let config: RunConfig = serde_json::from_value(header.config["run"].clone())
            .map_err(|e| Error::Invalid(format!("checkpoint run configuration: {e}")))?;
        let model = model_from_checkpoint(checkpoint)?;
        let mut run = Run::new(model, device, tokens, config)?;
        run.step = header.step;
        if let Some(opt) = checkpoint.optimizer()? {
            run.optimizer = opt;
        }
        if let Some(data) = &header.data {
            run.batcher.restore(data)?;
        }
        if let (Some(state), Some(_)) = (header.loss_scale, &run.scaler) {
            run.scaler = Some(LossScaler::from_state(state));
        }
        Ok(run)
    }

    /// The model being trained.
    pub fn model(&self) -> &LoadedModel {
        &self.model
    }

    /// Optimizer steps done.
    pub fn step_count(&self) -> u64 {
        self.step
    }

    /// The configuration.
    pub fn config(&self) -> &RunConfig {
        &self.config
    }

    /// The program trainer (device session, kernel times); `None` on the native host path.
    pub fn trainer(&self) -> Option<&Trainer<D>> {
        match &self.trainer {
            Passes::Programs(t) => Some(t),
            Passes::Native(_) => None,
        }
    }

    /// One optimizer step over `accumulation` micro-batches.
    pub fn step(&mut self) -> Result<StepReport> {
        // For the programs the gradients are zero here: Run::new makes them so and every step
        // leaves them so. The native trainer overwrites them in the first micro-batch.
        let fixed = if self.config.fp16 {
            self.config.loss_scale
        } else {
            1.0
        };
        let scale = self.scaler.as_ref().map_or(fixed, LossScaler::scale);
        let mut loss = 0.0;
        let mut times = StepTimes::default();
        // A step that cannot read its data leaves the position where the step began, so the
        // checkpoint saved after the error resumes exactly.
        let data_at_start = self.batcher.state();
        for micro in 0..self.config.accumulation {
            let clock = std::time::Instant::now();
            let batch = match self.batcher.next_batch() {
                Ok(batch) => batch,
                Err(e) => {
                    self.batcher.restore(&data_at_start)?;
                    return Err(e);
                }
            };
            times.data += clock.elapsed().as_secs_f64();
            let pass = self.trainer.forward_backward(
                &self.model,
                &mut self.grads,
                &batch,
                scale,
                micro == 0,
            );
            let stats = match pass {
                Ok(stats) => stats,
                Err(e) => {
                    zero_grads(&mut tensors_mut(&mut self.grads));
                    return Err(e);
                }
            };
            loss += stats.loss / self.config.accumulation as f32;
            times.forward += stats.forward_s;
            times.backward += stats.backward_s;
            times.host += stats.host_s;
        }
        let clock = std::time::Instant::now();
        let mut grads = tensors_mut(&mut self.grads);
        let unscale = 1.0 / (scale * self.config.accumulation as f32);
        let sanitize = self.config.safety.sanitize;
        // One read-only pass for the overflow check and the norm; unscaling, sanitizing and
        // clipping happen in registers inside the AdamW pass, which also zeroes the gradients.
        let GradStats { non_finite, norm } = grad_stats(&grads, unscale, sanitize);
        let decision = match &mut self.scaler {
            Some(s) => s.update(non_finite > 0 || !loss.is_finite()),
            None => StepDecision::Apply,
        };
        let clip = if self.config.clip > 0.0 {
            clip_coefficient(norm, self.config.clip)
        } else {
            None
        };
        let lr = self.schedule.lr(self.step);
        let skipped = decision == StepDecision::Skip;
        if skipped {
            zero_grads(&mut grads);
        } else {
            let mut params = tensors_mut(&mut self.model);
            let prep = GradPrep {
                unscale,
                sanitize,
                clip,
            };
            let applied = if self.trainer.needs_zeroed_grads() {
                self.optimizer
                    .step_and_zero(&mut params, &mut grads, lr, prep)
            } else {
                self.optimizer.step_prepared(&mut params, &grads, lr, prep)
            };
            if applied.is_err() {
                zero_grads(&mut grads);
            }
            applied?;
        }
        times.optimizer = clock.elapsed().as_secs_f64();
        let report = StepReport {
            step: self.step,
            loss,
            lr,
            grad_norm: norm,
            nan_count: non_finite,
            skipped,
            loss_scale: self.scaler.as_ref().map(LossScaler::scale),
            tokens: self.config.accumulation * self.trainer.tokens(),
            times,
        };
        self.step += 1;
        Ok(report)
    }

    /// Everything needed to continue this run: weights, optimizer, data position, scaler, config.
    pub fn checkpoint(&self) -> Result<Checkpoint> {
        let mut config =
            serde_json::json!({ "run": self.config, "model": model_config_json(&self.model)? });
        if let LoadedModel::Llama(w) = &self.model {
            config["rope"] = serde_json::json!(matches!(w.rope, RopeStyle::Interleaved));
        }
        let mut ck = Checkpoint::new(self.step, config);
        for ((name, shape), t) in named_shapes(&self.model)
            .into_iter()
            .zip(tensors(&self.model))
        {
            ck.push(name, shape, t.clone());
        }
        ck.set_optimizer(&self.optimizer);
        ck.header.data = Some(self.batcher.state());
        ck.header.loss_scale = self.scaler.as_ref().map(LossScaler::state);
        Ok(ck)
    }
}

/// The Hugging Face `config.json` of a model, as JSON.
fn model_config_json(model: &LoadedModel) -> Result<serde_json::Value> {
    let tied = matches!(model, LoadedModel::Gpt2(_))
        || matches!(model, LoadedModel::Llama(w) if w.output.is_none());
    let text = hf_config::to_json(
        &hf_config::HfConfig {
            model: model.config(),
            tied,
        },
        SaveDtype::F32,
    );
    serde_json::from_str(&text).map_err(|e| Error::Invalid(format!("model configuration: {e}")))
}

/// Rebuilds the model saved in a checkpoint.
pub fn model_from_checkpoint(checkpoint: &Checkpoint) -> Result<LoadedModel> {
    let config = &checkpoint.header.config;
    let text = config["model"].to_string();
    let hf = hf_config::parse(std::path::Path::new("checkpoint"), &text)
        .map_err(|e| Error::Invalid(e.to_string()))?;
    let mut model = LoadedModel::random(&hf.model, 0);
    if let LoadedModel::Llama(w) = &mut model {
        if hf.tied {
            w.output = None;
        }
        if config["rope"].as_bool() == Some(true) {
            w.rope = RopeStyle::Interleaved;
        }
    }
    let names = named_shapes(&model);
    for ((name, shape), t) in names.iter().zip(tensors_mut(&mut model)) {
        let saved = checkpoint
            .tensor(name)
            .ok_or_else(|| Error::Invalid(format!("checkpoint has no tensor {name}")))?;
        if &saved.shape != shape {
            return Err(Error::Invalid(format!(
                "checkpoint tensor {name} is {:?}, the model needs {shape:?}",
                saved.shape
            )));
        }
        t.copy_from_slice(&saved.data);
    }
    Ok(model)
}
