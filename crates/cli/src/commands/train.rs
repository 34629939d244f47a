//! `orion train`: train a model with its layers running as device programs (or on the host
//! path), with checkpoints, resume, a metrics log and a loss plot.

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use models::generate::{LanguageModel, Sampler, SamplerConfig};
use models::host::Precision;
use models::load::{load_model, LoadedModel};
use models::modes::HostLm;
use models::ModelConfig;
use runtime::select::{open_device, DeviceChoice};
use runtime::{Device, Emulator};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;
use train::corpus::{builtin_corpus, ByteTokenizer};
use train::metrics::{plot_loss_svg, MetricsLog, StepMetrics};
use train::run::{Run, RunConfig, Safety};
use train::{AdamWConfig, Checkpoint, TokenFile};

/// Where the training passes run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TrainDevice {
    /// The Neural Engine where available, otherwise the emulator (fp16 programs).
    Auto,
    /// The Apple Neural Engine (fp16 programs).
    Ane,
    /// The emulator (fp16 programs, device numerics).
    Emulator,
    /// The host path: every layer's forward and backward natively on the CPU, in f32 (or
    /// with bf16 matrix products, --precision bf16).
    Cpu,
}

/// Arithmetic of the host path's matrix products.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum HostPrecision {
    /// f32 throughout.
    F32,
    /// Inputs of every matrix product rounded to bf16, sums in f32, on every CPU (about 2×
    /// faster than f32 where the CPU has AVX-512 BF16 dot products; elsewhere the same
    /// arithmetic with f32 FMA, a little slower than f32). Master weights, optimizer state and
    /// everything else stay f32.
    Bf16,
}

/// The native trainer's precision for `device`, or `None` for device programs.
pub fn native(
    device: TrainDevice,
    precision: Option<HostPrecision>,
) -> Result<Option<train::native::Precision>> {
    use train::native::Precision as P;
    match (device, precision) {
        (TrainDevice::Cpu, Some(HostPrecision::Bf16)) => Ok(Some(P::Bf16)),
        (TrainDevice::Cpu, _) => Ok(Some(P::F32)),
        (_, Some(_)) => bail!("--precision applies to the host path only (--device cpu)"),
        (_, None) => Ok(None),
    }
}

#[derive(clap::Args)]
#[command(
    after_help = "With no arguments, trains the `tiny` preset from scratch on the built-in corpus of simple stories (a few minutes on 2 cores) and prints a sample.\n\nWritten to --out: checkpoint.ckpt (every --checkpoint-every steps and at exit, also on Ctrl-C or SIGTERM, which then exit with status 130), metrics.jsonl (one JSON object per step) and loss.svg. Resume with --resume OUT/checkpoint.ckpt (same --data). An --out that already holds a run needs --resume or --force."
)]
pub struct Args {
    /// Initialize from a model directory (Hugging Face layout) or llama2.c .bin.
    #[arg(long, conflicts_with_all = ["preset", "resume"])]
    model: Option<PathBuf>,
    /// Initialize a preset randomly (see `orion init --help`).
    #[arg(long, default_value = "tiny")]
    preset: String,
    /// Continue the run saved in this checkpoint: the model, optimizer state, data position and
    /// run settings (steps, batch, learning rates, …) come from it; --data, --out and --device
    /// apply as given.
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Token file (`orion data prepare`); default: the built-in corpus, byte tokens (tiny preset).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Output directory for checkpoints, metrics and the loss plot. A directory that already
    /// holds a run is refused unless --resume continues it or --force replaces it.
    #[arg(long, default_value = "out/train")]
    out: PathBuf,
    /// Start a new run in an --out that already holds one, replacing its checkpoint, metrics
    /// and plot.
    #[arg(long)]
    force: bool,
    /// Optimizer steps.
    #[arg(long, default_value_t = 600)]
    steps: u64,
    /// Sequences per micro-batch.
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Positions per sequence.
    #[arg(long, default_value_t = 64)]
    seq: usize,
    /// Micro-batches per optimizer step (gradient accumulation).
    #[arg(long, default_value_t = 1)]
    accumulation: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = 3e-3)]
    lr: f64,
    /// Final learning rate of the cosine decay (default: lr / 10).
    #[arg(long)]
    min_lr: Option<f64>,
    /// Linear warm-up steps (default: steps / 20).
    #[arg(long)]
    warmup: Option<u64>,
    /// Decoupled weight decay (not applied to norms and biases).
    #[arg(long, default_value_t = 0.1)]
    weight_decay: f64,
    /// AdamW's first-moment decay, in [0, 1).
    #[arg(long, default_value_t = 0.9)]
    beta1: f64,
    /// AdamW's second-moment decay, in [0, 1).
    #[arg(long, default_value_t = 0.95)]
    beta2: f64,
    /// AdamW's denominator term, > 0.
    #[arg(long, default_value_t = 1e-8)]
    eps: f64,
    /// Global gradient-norm clipping (0 = off).
    #[arg(long, default_value_t = 1.0)]
    clip: f32,
    /// Seed of the data order.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Window order: random (seeded) or sequential (window i = tokens [i·T, i·T+T+1)).
    #[arg(long, value_enum, default_value_t = DataOrderArg::Random)]
    data_order: DataOrderArg,
    /// Where each layer's forward and backward run (see the values below).
    #[arg(long, value_enum, default_value_t = TrainDevice::Auto)]
    device: TrainDevice,
    /// Matrix-product precision of the host path (--device cpu) [default: f32].
    #[arg(long, value_enum)]
    precision: Option<HostPrecision>,
    /// Write a checkpoint every N steps (N ≥ 1; and always at the end).
    #[arg(long, default_value_t = 100, value_parser = crate::commands::positive)]
    checkpoint_every: u64,
    /// Starting (dynamic) or fixed loss scale of the fp16 backward.
    #[arg(long, default_value_t = 1024.0)]
    loss_scale: f32,
    /// Turn off clamping of fp16 surface values.
    #[arg(long)]
    no_clamp: bool,
    /// Turn off zeroing of NaN/Inf gradients.
    #[arg(long)]
    no_sanitize: bool,
    /// Turn off dynamic loss scaling (the scale stays at --loss-scale).
    #[arg(long)]
    no_loss_scaling: bool,
    /// Tokens of text to sample after training (built-in corpus only; 0 = none).
    #[arg(long, default_value_t = 300)]
    sample: usize,
}

/// Window order.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum DataOrderArg {
    Random,
    Sequential,
}

/// Opens the training device; the flag is true for fp16 programs (device), false for the host path.
pub fn open(device: TrainDevice) -> Result<(Box<dyn Device>, bool)> {
    let choice = match device {
        TrainDevice::Cpu => {
            eprintln!("device: host path (native layers on the CPU)");
            return Ok((Box::new(Emulator::new()), false));
        }
        TrainDevice::Auto => DeviceChoice::Auto,
        TrainDevice::Ane => DeviceChoice::Ane,
        TrainDevice::Emulator => DeviceChoice::Emulator,
    };
    let (device, why) = open_device(choice)?;
    eprintln!("{why}");
    Ok((device, true))
}

fn tokens(args: &Args) -> Result<TokenFile> {
    match &args.data {
        Some(path) => Ok(TokenFile::open(path)?),
        None => {
            let text = builtin_corpus(4 << 20, args.seed);
            Ok(TokenFile::from_tokens(ByteTokenizer.encode_corpus(&text)))
        }
    }
}

fn vocab(model: &LoadedModel) -> usize {
    match model.config() {
        ModelConfig::Gpt2(c) => c.vocab_size,
        ModelConfig::Llama(c) => c.vocab_size,
    }
}

fn run_config(args: &Args, fp16: bool) -> Result<RunConfig> {
    let native = native(args.device, args.precision)?;
    Ok(RunConfig {
        steps: args.steps,
        batch: args.batch,
        seq: args.seq,
        accumulation: args.accumulation,
        lr: args.lr,
        min_lr: args.min_lr.unwrap_or(args.lr / 10.0),
        warmup: args.warmup.unwrap_or(args.steps / 20),
        adamw: AdamWConfig {
            beta1: args.beta1,
            beta2: args.beta2,
            eps: args.eps,
            weight_decay: args.weight_decay,
        },
        clip: args.clip,
        seed: args.seed,
        random_order: matches!(args.data_order, DataOrderArg::Random),
        safety: Safety {
            clamp: !args.no_clamp,
            sanitize: !args.no_sanitize,
            loss_scaling: !args.no_loss_scaling,
        },
        loss_scale: args.loss_scale,
        fp16,
        native,
    })
}

/// A new run, or the one a checkpoint continues.
fn start(args: &Args) -> Result<Run<Box<dyn Device>>> {
    let (device, fp16) = open(args.device)?;
    let data = tokens(args)?;
    if let Some(path) = &args.resume {
        let ck = Checkpoint::load(path)?;
        eprintln!("resuming {} at step {}", path.display(), ck.header.step);
        return Ok(Run::resume(&ck, device, data)?);
    }
    let model = match &args.model {
        Some(path) => load_model(path)?,
        None => LoadedModel::random(&ModelConfig::from_preset(&args.preset)?, args.seed),
    };
    if args.data.is_none() && vocab(&model) != ByteTokenizer::VOCAB_SIZE {
        bail!(
            "the built-in corpus uses byte tokens (vocabulary {}); this model has {} tokens: give --data (see `orion data prepare`)",
            ByteTokenizer::VOCAB_SIZE,
            vocab(&model)
        );
    }
    Ok(Run::new(model, device, data, run_config(args, fp16)?)?)
}

/// Trains, checkpointing on the way and at exit.
pub fn run(args: Args) -> Result<()> {
    // Everything is checked (flags first, then model, data, checkpoint) before --out is
    // touched.
    if args.resume.is_none() {
        run_config(&args, false)?.validate()?;
        let previous = args.out.join("checkpoint.ckpt");
        if previous.exists() && !args.force {
            bail!(
                "{} already holds a run; continue it with --resume {}, or pass --force to replace it",
                args.out.display(),
                previous.display()
            );
        }
    }
    let mut run = start(&args)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let steps = run.config().steps;
    let checkpoint_path = args.out.join("checkpoint.ckpt");
    let metrics_path = args.out.join("metrics.jsonl");
    let mut metrics = match args.resume {
        Some(_) => MetricsLog::resume(&metrics_path, run.step_count())?,
        None => MetricsLog::create(&metrics_path)?,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    // Ctrl-C and SIGTERM both stop after the current step, checkpoint, and exit with 130.
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
        .context("installing the Ctrl-C/SIGTERM handler")?;
    let bar = ProgressBar::new(steps);
    bar.set_position(run.step_count());
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:30} {pos}/{len} steps  {msg}  [{elapsed_precise} < {eta_precise}]",
        )
        .expect("a valid template"),
    );
    let interactive = std::io::stderr().is_terminal();
    let log_every = (steps / 20).max(1);
    let started = Instant::now();
    let mut total_nan = 0;
    while run.step_count() < steps && !stop.load(Ordering::SeqCst) {
        let t = Instant::now();
        let r = match run.step() {
            Ok(r) => r,
            Err(e) => {
                // The failed step changed nothing: keep every finished one.
                bar.finish_and_clear();
                run.checkpoint()?.save(&checkpoint_path)?;
                return Err(anyhow::Error::new(e).context(format!(
                    "step {} failed; the run up to step {} is saved in {}",
                    run.step_count() + 1,
                    run.step_count(),
                    checkpoint_path.display()
                )));
            }
        };
        let tok_s = r.tokens as f64 / t.elapsed().as_secs_f64();
        total_nan += r.nan_count;
        metrics.log(&StepMetrics {
            step: r.step,
            loss: f64::from(r.loss),
            lr: r.lr,
            grad_norm: f64::from(r.grad_norm),
            tokens_per_s: tok_s,
            nan_count: r.nan_count as u64,
            loss_scale: r.loss_scale.map(f64::from),
            elapsed_s: started.elapsed().as_secs_f64(),
        })?;
        let note = if r.skipped {
            "  (step skipped: non-finite gradients)"
        } else {
            ""
        };
        bar.set_message(format!("loss {:.3}  {tok_s:.0} tok/s{note}", r.loss));
        bar.set_position(run.step_count());
        // Without a terminal the bar is hidden: a line every 5% of the run instead, so that a
        // log shows progress too.
        if !interactive && (run.step_count() % log_every == 0 || run.step_count() == 1) {
            eprintln!(
                "step {}/{steps}: loss {:.3}, {tok_s:.0} tok/s{note}",
                run.step_count(),
                r.loss
            );
        }
        if r.nan_count > 0 {
            bar.println(format!(
                "step {}: {} non-finite gradient values{}",
                r.step,
                r.nan_count,
                if run.config().safety.sanitize {
                    " zeroed"
                } else {
                    ""
                }
            ));
        }
        if run.step_count() % args.checkpoint_every == 0 {
            run.checkpoint()?.save(&checkpoint_path)?;
        }
    }
    bar.finish_and_clear();
    run.checkpoint()?.save(&checkpoint_path)?;
    let all: Vec<(u64, f32)> = train::metrics::read_metrics(&metrics_path)?
        .into_iter()
        .map(|m| (m.step, m.loss as f32))
        .collect();
    plot_loss_svg(&args.out.join("loss.svg"), &all)?;
    let stopped = run.step_count() < steps;
    eprintln!(
        "{} at step {}/{steps}: loss {:.3}, {total_nan} non-finite gradient values this session, {:.0} s; wrote {}, {}, {}",
        if stopped { "stopped" } else { "finished" },
        run.step_count(),
        all.last().map_or(f32::NAN, |p| p.1),
        started.elapsed().as_secs_f64(),
        checkpoint_path.display(),
        metrics_path.display(),
        args.out.join("loss.svg").display()
    );
    if stopped {
        return Err(super::Interrupted.into());
    }
    if args.data.is_none() && args.sample > 0 && !stopped {
        print_sample(run.model(), args.sample, run.config().seq, args.seed)?;
    }
    Ok(())
}

/// Prints text sampled from the trained byte-level model, keeping the context within the
/// window length it was trained on (the last half window is re-read when it fills).
fn print_sample(model: &LoadedModel, tokens: usize, window: usize, seed: u64) -> Result<()> {
    let mut lm = HostLm::new(model, Precision::F32, 2);
    let mut text = ByteTokenizer.encode("Once upon a time");
    let mut sampler = Sampler::new(SamplerConfig {
        temperature: 0.8,
        top_k: 0,
        top_p: 0.95,
        seed,
    })?;
    let mut context = text.clone();
    let mut logits = lm.prefill(&context)?;
    for _ in 0..tokens {
        let next = sampler.sample(&logits);
        if next == ByteTokenizer::END_OF_TEXT {
            break;
        }
        text.push(next);
        context.push(next);
        logits = if context.len() >= window {
            context.drain(..context.len() - window / 2);
            lm.prefill(&context)?
        } else {
            lm.decode(next)?
        };
    }
    println!("{}", ByteTokenizer.decode(&text));
    Ok(())
}
