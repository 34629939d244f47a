//! `orion infer`: generate text from a model on the host, the device, or both.

use crate::commands::device::DeviceArg;
use anyhow::{bail, Context, Result};
use models::generate::{generate, GenerateOptions, SamplerConfig};
use models::host::Precision;
use models::load::{load_model, LoadedModel};
use models::modes::{build, Mode};
use std::io::Write;
use std::path::{Path, PathBuf};
use tokenizer::{Gpt2Tokenizer, SentencePieceTokenizer, StreamDecoder, Tokenizer};

/// Where the model runs.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum ModeArg {
    /// Everything on the host CPU (the fast baseline).
    Cpu,
    /// Prefill on the device, decode on the host.
    AnePrefill,
    /// Prefill and decode on the device; embeddings, final norm and LM head on the host.
    Ane,
}

impl ModeArg {
    /// The flag's spelling (`cpu`, `ane-prefill`, `ane`).
    pub fn name(self) -> String {
        clap::ValueEnum::to_possible_value(&self)
            .map_or_else(String::new, |v| v.get_name().to_string())
    }
}

/// Host weight precision.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum PrecisionArg {
    F16,
    F32,
}

#[derive(clap::Args)]
#[command(
    after_help = "The tokenizer comes from the model directory (tokenizer.json, vocab.json + merges.txt, tokenizer.model or tokenizer.bin) unless --tokenizer names one. Llama prompts start with the BOS token, as llama2.c and transformers do.\n\nExamples:\n  orion init --preset gpt2-tiny --out m && orion infer --model m --prompt-ids 1,2,3\n  orion infer --model stories15M.bin --tokenizer tokenizer.bin --prompt \"Once upon a time\""
)]
pub struct Args {
    /// Model: a Hugging Face directory (config.json + model.safetensors) or a llama2.c .bin file.
    #[arg(long)]
    model: PathBuf,
    /// Prompt text.
    #[arg(
        long,
        conflicts_with = "prompt_ids",
        required_unless_present = "prompt_ids"
    )]
    prompt: Option<String>,
    /// Prompt as token ids, comma-separated (no tokenizer needed).
    #[arg(long, value_delimiter = ',')]
    prompt_ids: Option<Vec<u32>>,
    /// Tokenizer file or directory, overriding the one found beside the model.
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// Tokens to generate.
    #[arg(long, default_value_t = 64)]
    max_tokens: usize,
    /// Sampling temperature; 0 picks the most likely token (greedy).
    #[arg(long, default_value_t = 0.8)]
    temperature: f32,
    /// Sample only among the k most likely tokens (0 = no limit).
    #[arg(long, default_value_t = 0)]
    top_k: usize,
    /// Sample from the smallest set of tokens whose probability reaches p.
    #[arg(long, default_value_t = 0.95)]
    top_p: f32,
    /// Random seed of the sampler.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Where the model runs.
    #[arg(long, value_enum, default_value_t = ModeArg::Cpu)]
    mode: ModeArg,
    #[command(flatten)]
    device: DeviceArg,
    /// Host weight precision.
    #[arg(long, value_enum, default_value_t = PrecisionArg::F16)]
    precision: PrecisionArg,
    /// Host threads (1 to 256; default: one per core).
    #[arg(long, default_value_t = default_threads(), value_parser = crate::commands::thread_count)]
    threads: usize,
    /// Print one JSON object (prompt ids, generated ids, text, timings) instead of streaming.
    #[arg(long)]
    json: bool,
    /// Say on stderr where the work runs: the CPU kernel level (set ORION_CPU=portable|avx2|
    /// avx512|neon to force one), threads, weight precision and device.
    #[arg(short, long)]
    verbose: bool,
}

fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The tokenizer at `path` (file or directory) for a model of `family`.
fn open_tokenizer(path: &Path, family: &str) -> Result<Box<dyn Tokenizer>> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    Ok(match (path.is_dir(), ext) {
        (false, "json") => Box::new(Gpt2Tokenizer::from_tokenizer_json(path)?),
        (false, "model") => Box::new(SentencePieceTokenizer::from_model(path)?),
        (false, "bin") => Box::new(SentencePieceTokenizer::from_llama2c_bin(path)?),
        (false, _) => bail!(
            "{}: not a tokenizer file (.json, .model or .bin)",
            path.display()
        ),
        (true, _) => {
            let candidates: &[&str] = if family == "gpt2" {
                &["tokenizer.json", "vocab.json"]
            } else {
                &["tokenizer.model", "tokenizer.bin", "tokenizer.json"]
            };
            let found = candidates.iter().map(|c| path.join(c)).find(|p| p.exists());
            match found {
                Some(p) if p.ends_with("vocab.json") => {
                    Box::new(Gpt2Tokenizer::from_files(&p, path.join("merges.txt"))?)
                }
                Some(p) => open_tokenizer(&p, family)?,
                None => bail!(
                    "no tokenizer in {} (looked for {}); pass --tokenizer or --prompt-ids",
                    path.display(),
                    candidates.join(", ")
                ),
            }
        }
    })
}

/// Runs generation and prints the result.
pub fn run(args: Args) -> Result<()> {
    let model = load_model(&args.model)?;
    let family = match &model {
        LoadedModel::Gpt2(_) => "gpt2",
        LoadedModel::Llama(_) => "llama",
    };
    let tok_path = args.tokenizer.clone().unwrap_or_else(|| {
        if args.model.is_dir() {
            args.model.clone()
        } else {
            args.model
                .parent()
                .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
        }
    });
    // With --prompt-ids the tokenizer is optional: it only renders the output as text.
    let tokenizer = match &args.prompt_ids {
        Some(_) => open_tokenizer(&tok_path, family).ok(),
        None => Some(open_tokenizer(&tok_path, family)?),
    };
    let prompt: Vec<u32> = match (&args.prompt_ids, &args.prompt, &tokenizer) {
        (Some(ids), _, _) => ids.clone(),
        (None, Some(text), Some(tok)) => {
            let mut ids: Vec<u32> = if family == "llama" {
                tok.bos().into_iter().collect()
            } else {
                Vec::new()
            };
            ids.extend(tok.encode(text));
            ids
        }
        _ => bail!("give --prompt or --prompt-ids"),
    };
    let stop_token = match family {
        "gpt2" => Some(50256).filter(|&t| t < model_vocab(&model)),
        _ => tokenizer.as_ref().and_then(|t| t.eos()),
    };
    let (mode, precision) = (mode(args.mode), precision(args.precision));
    let device = match mode {
        Mode::Cpu => None,
        _ => Some(args.device.open()?),
    };
    let level = cpu::Cpu::active().describe();
    if args.verbose {
        eprintln!(
            "mode {}, CPU kernels {level}, {} host threads, {} weights, {} prompt tokens",
            args.mode.name(),
            args.threads,
            precision.name(),
            prompt.len()
        );
    }
    let capacity = prompt.len() + args.max_tokens;
    let mut lm = build(&model, mode, device, precision, args.threads, capacity)?;
    let options = GenerateOptions {
        max_new_tokens: args.max_tokens,
        sampler: SamplerConfig {
            temperature: args.temperature,
            top_k: args.top_k,
            top_p: args.top_p,
            seed: args.seed,
        },
        stop_token,
    };
    let mut stream = tokenizer.as_deref().map(StreamDecoder::new);
    let mut stdout = std::io::stdout();
    if let (false, Some(text)) = (args.json, &args.prompt) {
        print!("{text}");
    }
    let generation = generate(lm.as_mut(), &prompt, &options, |id| {
        if args.json {
            return;
        }
        match stream.as_mut() {
            Some(s) => print!("{}", s.push(id).unwrap_or_default()),
            None => print!("{id} "),
        }
        let _ = stdout.flush();
    })?;
    let text = match &tokenizer {
        Some(tok) => Some(
            tok.decode(&generation.generated)
                .context("decoding the output")?,
        ),
        None => None,
    };
    let prefill_tps = generation.prefill_tokens_per_second(prompt.len());
    let decode_tps = generation.decode_tokens_per_second();
    if args.json {
        let out = serde_json::json!({
            "prompt_ids": prompt,
            "generated_ids": generation.generated,
            "text": text,
            "mode": args.mode.name(),
            "cpu_level": level,
            "prefill_tokens_per_s": prefill_tps,
            "decode_tokens_per_s": decode_tps,
            "prefill_seconds": generation.prefill_seconds,
            "decode_seconds": generation.decode_seconds,
            "hit_context": generation.hit_context,
        });
        println!("{out}");
    } else {
        if let Some(s) = stream {
            print!("{}", s.finish());
        }
        println!();
        if generation.hit_context {
            eprintln!("(stopped at the context length)");
        }
        eprintln!(
            "prefill: {} tokens at {prefill_tps:.1} tok/s; decode: {} tokens at {decode_tps:.1} tok/s",
            prompt.len(),
            generation.generated.len()
        );
    }
    Ok(())
}

/// The library's mode for a `--mode` value.
pub fn mode(m: ModeArg) -> Mode {
    match m {
        ModeArg::Cpu => Mode::Cpu,
        ModeArg::AnePrefill => Mode::AnePrefill,
        ModeArg::Ane => Mode::Ane,
    }
}

/// The library's precision for a `--precision` value.
pub fn precision(p: PrecisionArg) -> Precision {
    match p {
        PrecisionArg::F16 => Precision::F16,
        PrecisionArg::F32 => Precision::F32,
    }
}

fn model_vocab(model: &LoadedModel) -> u32 {
    match model {
        LoadedModel::Gpt2(w) => w.config.vocab_size as u32,
        LoadedModel::Llama(w) => w.config.vocab_size as u32,
    }
}
