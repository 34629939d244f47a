//! `orion bench`: machine-readable benchmarks (JSON on stdout, progress on stderr).

use crate::commands::device::DeviceArg;
use anyhow::{Context, Result};
use models::device::DeviceModel;
use models::generate::{generate, GenerateOptions, LanguageModel, SamplerConfig};
use models::host::Precision;
use models::load::{load_model, LoadedModel};
use models::modes::{build, HostLm, Mode};
use models::rng::Rng;
use models::ModelConfig;
use serde_json::json;
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Subcommand)]
pub enum Bench {
    /// Generation speed: prefill and decode tokens/s, per-kernel time, memory.
    Inference(InferenceArgs),
    /// The emulator against the host path on the same prefill, and compile time per program.
    Emulator(EmulatorArgs),
    /// Training step time, broken down, with tokens/s and achieved FLOP/s.
    Training(TrainingArgs),
}

#[derive(clap::Args)]
pub struct TrainingArgs {
    #[command(flatten)]
    model: ModelArg,
    /// Where the passes run (cpu = the host path: native layers on the CPU).
    #[arg(long, value_enum, default_value_t = super::train::TrainDevice::Auto)]
    device: super::train::TrainDevice,
    /// Matrix-product precision of the host path (--device cpu) [default: f32].
    #[arg(long, value_enum)]
    precision: Option<super::train::HostPrecision>,
    /// Sequences per step.
    #[arg(long, default_value_t = 4, value_parser = crate::commands::positive)]
    batch: u64,
    /// Positions per sequence.
    #[arg(long, default_value_t = 64, value_parser = crate::commands::positive)]
    seq: u64,
    /// Timed steps (after one warm-up step; at least 1).
    #[arg(long, default_value_t = 3, value_parser = crate::commands::positive)]
    steps: u64,
}

/// The model to benchmark: a preset with random weights, or a model directory.
#[derive(clap::Args, Clone)]
pub struct ModelArg {
    /// Preset with randomly initialized weights (see `orion init --help`).
    #[arg(long, default_value = "gpt2-124m", conflicts_with = "model")]
    preset: String,
    /// A model directory or llama2.c .bin instead of a preset.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Seed of the random weights.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

impl ModelArg {
    fn load(&self) -> Result<(LoadedModel, String)> {
        match &self.model {
            Some(path) => Ok((load_model(path)?, path.display().to_string())),
            None => {
                let config = ModelConfig::from_preset(&self.preset)?;
                eprintln!(
                    "initializing {} with random weights (seed {})",
                    self.preset, self.seed
                );
                Ok((LoadedModel::random(&config, self.seed), self.preset.clone()))
            }
        }
    }
}

#[derive(clap::Args)]
pub struct InferenceArgs {
    #[command(flatten)]
    model: ModelArg,
    /// Where the model runs: cpu, ane-prefill or ane.
    #[arg(long, value_enum, default_value_t = super::infer::ModeArg::Cpu)]
    mode: super::infer::ModeArg,
    #[command(flatten)]
    device: DeviceArg,
    /// Prompt length in tokens (random ids).
    #[arg(long, default_value_t = 16)]
    prompt_tokens: usize,
    /// Tokens to decode.
    #[arg(long, default_value_t = 256)]
    tokens: usize,
    /// Host weight precision.
    #[arg(long, value_enum, default_value_t = super::infer::PrecisionArg::F16)]
    precision: super::infer::PrecisionArg,
    /// Host threads (1 to 256).
    #[arg(long, default_value_t = 2, value_parser = crate::commands::thread_count)]
    threads: usize,
}

#[derive(clap::Args)]
pub struct EmulatorArgs {
    #[command(flatten)]
    model: ModelArg,
    /// Prompt length (the prefill bucket is the next of 32…1024).
    #[arg(long, default_value_t = 64)]
    prompt_tokens: usize,
    /// Timed repetitions (the best is reported).
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Host threads (1 to 256).
    #[arg(long, default_value_t = 2, value_parser = crate::commands::thread_count)]
    threads: usize,
}

/// Runs a benchmark and prints its JSON.
pub fn run(bench: Bench) -> Result<()> {
    let report = match bench {
        Bench::Inference(args) => inference(args)?,
        Bench::Emulator(args) => emulator(args)?,
        Bench::Training(args) => training(args)?,
    };
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

fn random_prompt(n: usize, vocab: usize, seed: u64) -> Vec<u32> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|_| (rng.next_u64() % vocab as u64) as u32)
        .collect()
}

fn vocab_of(model: &LoadedModel) -> usize {
    match model {
        LoadedModel::Gpt2(w) => w.config.vocab_size,
        LoadedModel::Llama(w) => w.config.vocab_size,
    }
}

/// Peak resident memory of this process in MiB (Linux), if known.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn inference(args: InferenceArgs) -> Result<serde_json::Value> {
    let (model, name) = args.model.load()?;
    let prompt = random_prompt(args.prompt_tokens, vocab_of(&model), 1);
    let (mode, precision) = (
        super::infer::mode(args.mode),
        super::infer::precision(args.precision),
    );
    let device = match mode {
        Mode::Cpu => None,
        _ => Some(args.device.open()?),
    };
    let capacity = prompt.len() + args.tokens;
    let started = Instant::now();
    let mut lm = build(&model, mode, device, precision, args.threads, capacity)?;
    let setup_seconds = started.elapsed().as_secs_f64();
    let options = GenerateOptions {
        max_new_tokens: args.tokens,
        sampler: SamplerConfig::default(),
        stop_token: None,
    };
    // A first short run compiles the device programs; the timed run reuses them.
    if mode != Mode::Cpu {
        let warm = GenerateOptions {
            max_new_tokens: 2,
            ..options.clone()
        };
        generate(lm.as_mut(), &prompt, &warm, |_| {})?;
    }
    eprintln!(
        "decoding {} tokens after a {}-token prompt",
        args.tokens,
        prompt.len()
    );
    let g = generate(lm.as_mut(), &prompt, &options, |_| {})?;
    let decode_tps = g.decode_tokens_per_second();
    // The decode ceiling: weights and the cached keys and values stream from memory once per
    // token, at best as fast as a plain read of a large buffer goes on the same threads,
    // measured now. Bytes are counted at the middle position of the decode.
    let middle = prompt.len() + g.generated.len() / 2;
    let (probe, weight_gbps) = match lm.host_decode_bytes(middle) {
        Some(bytes) => {
            eprintln!("probing memory bandwidth on {} threads", args.threads);
            let pool = cpu::Pool::new(args.threads);
            (
                Some(cpu::probe::read_gbps(&pool, 5)),
                Some(bytes as f64 * decode_tps / 1e9),
            )
        }
        None => (None, None),
    };
    Ok(json!({
        "benchmark": "inference",
        "model": name,
        "mode": args.mode.name(),
        "cpu_level": cpu::Cpu::active().describe(),
        "precision": format!("{:?}", args.precision).to_lowercase(),
        "threads": args.threads,
        "prompt_tokens": prompt.len(),
        "decode_tokens": g.generated.len(),
        "prefill_tokens_per_s": g.prefill_tokens_per_second(prompt.len()),
        "decode_tokens_per_s": decode_tps,
        "ms_per_decoded_token": 1e3 * g.decode_seconds / g.generated.len().saturating_sub(1).max(1) as f64,
        "decode_read_gb_s": weight_gbps,
        "bandwidth_probe_gb_s": probe,
        "decode_fraction_of_bandwidth": weight_gbps.zip(probe).map(|(w, p)| w / p),
        "setup_seconds": setup_seconds,
        "peak_rss_mib": peak_rss_mib(),
    }))
}

fn emulator(args: EmulatorArgs) -> Result<serde_json::Value> {
    let (model, name) = args.model.load()?;
    let prompt = random_prompt(args.prompt_tokens, vocab_of(&model), 2);
    let mut device = DeviceModel::new(model.clone(), runtime::Emulator::new(), prompt.len())?;
    let started = Instant::now();
    device
        .prefill(&prompt)
        .context("first prefill (compiles)")?;
    let first = started.elapsed().as_secs_f64();
    let programs = runtime::Device::compiles_used(device.session().device());
    let mut host = HostLm::new(&model, Precision::F32, args.threads);
    let (mut emu_best, mut host_best) = (f64::INFINITY, f64::INFINITY);
    for _ in 0..args.repeats.max(1) {
        let t = Instant::now();
        device.prefill(&prompt)?;
        emu_best = emu_best.min(t.elapsed().as_secs_f64());
        let t = Instant::now();
        host.prefill(&prompt)?;
        host_best = host_best.min(t.elapsed().as_secs_f64());
    }
    let compile = device.session().compile_seconds();
    Ok(json!({
        "benchmark": "emulator",
        "model": name,
        "cpu_level": cpu::Cpu::active().describe(),
        "prompt_tokens": prompt.len(),
        "layers": device.layers(),
        "emulator_prefill_seconds": emu_best,
        "host_prefill_seconds": host_best,
        "emulator_over_host": emu_best / host_best,
        "programs_compiled": programs,
        "lower_and_compile_seconds_per_program": (first - emu_best) / programs.max(1) as f64,
        "device_compile_seconds_per_program": compile / programs.max(1) as f64,
        "kernel_times": device.session().kernel_times().into_iter()
            .map(|(k, t)| json!({"kernel": k, "evals": t.evals, "seconds": t.seconds}))
            .collect::<Vec<_>>(),
        "threads": args.threads,
        "note": "both sides include host embedding and the host LM head of the last position",
    }))
}

fn training(args: TrainingArgs) -> Result<serde_json::Value> {
    use train::run::{Run, RunConfig, Safety, StepTimes};
    let (model, name) = args.model.load()?;
    let vocab = vocab_of(&model);
    let params = model.parameter_count();
    let (device, fp16) = super::train::open(args.device)?;
    let native = super::train::native(args.device, args.precision)?;
    let (batch, seq) = (args.batch as usize, args.seq as usize);
    let n = batch * seq;
    let tokens = train::TokenFile::from_tokens(random_prompt(4 * n + 1, vocab, 3));
    let config = RunConfig {
        steps: args.steps + 1,
        batch,
        seq,
        accumulation: 1,
        lr: 1e-4,
        min_lr: 1e-5,
        warmup: 0,
        adamw: train::AdamWConfig::default(),
        clip: 1.0,
        seed: 0,
        random_order: true,
        safety: Safety::default(),
        loss_scale: 1024.0,
        fp16,
        native,
    };
    let started = Instant::now();
    let mut run = Run::new(model, device, tokens, config)?;
    let setup = started.elapsed().as_secs_f64();
    eprintln!("set up in {setup:.1} s; warm-up step");
    run.step()?;
    let mut total = StepTimes::default();
    let clock = Instant::now();
    for i in 0..args.steps {
        let r = run.step()?;
        eprintln!("step {}: loss {:.3}", i + 1, r.loss);
        total.data += r.times.data;
        total.forward += r.times.forward;
        total.backward += r.times.backward;
        total.host += r.times.host;
        total.optimizer += r.times.optimizer;
    }
    let steps = args.steps.max(1) as f64;
    let step_s = clock.elapsed().as_secs_f64() / steps;
    let flops = 6.0 * params as f64 * n as f64;
    Ok(json!({
        "benchmark": "training",
        "model": name,
        "cpu_level": cpu::Cpu::active().describe(),
        "parameters": params,
        "device": format!("{:?}", args.device).to_lowercase(),
        "precision": match native {
            Some(train::native::Precision::Bf16) => "bf16 products, f32 otherwise",
            Some(train::native::Precision::F32) => "f32",
            None if fp16 => "fp16 programs",
            None => "fp32 programs",
        },
        "batch": args.batch,
        "seq": args.seq,
        "step_seconds": step_s,
        "breakdown_seconds": {
            "layers_forward": total.forward / steps,
            "layers_backward_with_weight_gradients": total.backward / steps,
            "host_embed_head_loss": total.host / steps,
            "optimizer": total.optimizer / steps,
            "data": total.data / steps,
        },
        "tokens_per_s": n as f64 / step_s,
        "model_flop_per_s": flops / step_s,
        "flop_note": "6 x parameters x tokens per step; backward programs also recompute each layer's forward (+1/3 device work not counted); the native host path does not",
        "compile_seconds": setup,
        "threads": rayon::current_num_threads(),
        "peak_rss_mib": peak_rss_mib(),
    }))
}
