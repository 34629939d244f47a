//! Benchmarks the host forward path on a randomly initialized preset: a short prefill, then
//! decode steps; prints one JSON object. Throughputs are of the fastest run; the per-step
//! quantiles pool all runs (the machine may be shared, so low quantiles show the kernels'
//! speed when nothing else runs). Runs at the process's CPU level (ORION_CPU forces one).
//!
//! `cargo run -p models --release --example host_bench -- --preset gpt2-124m --tokens 256
//! --threads 2 --precision f16 [--prompt 16] [--runs 1] [--profile]`

use models::host::{HostModel, Precision};
use models::load::LoadedModel;
use models::ModelConfig;
use std::time::Instant;

/// Command-line options.
struct Options {
    preset: String,
    tokens: usize,
    threads: usize,
    precision: Precision,
    prompt: usize,
    runs: usize,
}

fn parse() -> Result<Options, String> {
    let mut o = Options {
        preset: "gpt2-124m".into(),
        tokens: 256,
        threads: 2,
        precision: Precision::F16,
        prompt: 16,
        runs: 1,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let value = pair.get(1).ok_or(format!("{} needs a value", pair[0]))?;
        let num = || {
            value
                .parse::<usize>()
                .map_err(|e| format!("{}: {e}", pair[0]))
        };
        match pair[0].as_str() {
            "--preset" => o.preset = value.clone(),
            "--tokens" => o.tokens = num()?,
            "--threads" => o.threads = num()?,
            "--prompt" => o.prompt = num()?,
            "--runs" => o.runs = num()?,
            "--precision" => o.precision = value.parse().map_err(|e| format!("{e}"))?,
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(o)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let o = parse()?;
    let config = ModelConfig::from_preset(&o.preset)?;
    let mut model = HostModel::new(&LoadedModel::random(&config, 1), o.precision, o.threads);
    let vocab = model.vocab_size() as u32;
    let prompt: Vec<u32> = (0..o.prompt as u32)
        .map(|i| (i * 7919 + 13) % vocab)
        .collect();
    if o.prompt + o.tokens > model.context_len() {
        return Err(format!("prompt + tokens exceed the context {}", model.context_len()).into());
    }
    let (mut prefill_best, mut decode_best) = (f64::MAX, f64::MAX);
    let mut steps = Vec::with_capacity(o.tokens * o.runs.max(1));
    for _ in 0..o.runs.max(1) {
        model.reset();
        let t0 = Instant::now();
        let logits = model.prefill(&prompt, 0)?;
        let mut next = argmax(logits);
        prefill_best = prefill_best.min(t0.elapsed().as_secs_f64());
        let t1 = Instant::now();
        for step in 0..o.tokens {
            let t = Instant::now();
            next = argmax(model.decode(next, o.prompt + step)?);
            steps.push(t.elapsed().as_secs_f64() * 1e3);
        }
        decode_best = decode_best.min(t1.elapsed().as_secs_f64());
    }
    steps.sort_by(f64::total_cmp);
    let quantile = |q: f64| steps[((steps.len() - 1) as f64 * q) as usize];
    let bytes = model.weight_bytes();
    let probe = cpu::probe::read_gbps(model.pool(), 5);
    let decode_tok_s = o.tokens as f64 / decode_best;
    let report = serde_json::json!({
        "preset": o.preset,
        "prefill_tokens": o.prompt,
        "decode_tokens": o.tokens,
        "runs": o.runs,
        "prefill_tok_s": o.prompt as f64 / prefill_best,
        "decode_tok_s": decode_tok_s,
        "ms_per_token": 1e3 / decode_tok_s,
        "step_ms_p10": quantile(0.1),
        "step_ms_median": quantile(0.5),
        "threads": model.threads(),
        "cpu_level": model.pool().cpu().describe(),
        "precision": o.precision.name(),
        "bytes_of_weights": bytes,
        "achieved_GBps": bytes as f64 * decode_tok_s / 1e9,
        "probe_GBps": probe,
    });
    println!("{report}");
    Ok(())
}

fn argmax(v: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best as u32
}
