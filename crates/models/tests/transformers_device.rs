//! The device path (on the emulator) against transformers: logits of every prompt position
//! and the 32-token greedy continuation, for GPT-2, HF Llama and the llama2.c export.
//!
//! Tolerance: the emulator rounds every op to fp16 (u = 2⁻¹¹). Logits come from the host LM
//! head applied to a hidden state that passed ~25 roundings per layer, most of which average
//! out; the budget is 0.004 · max|logit| + 0.01 absolute (about 8u of the logit scale). The
//! greedy continuations must be identical (the acceptance); the smallest top-2 margin
//! along transformers' greedy path is printed to show how much room the fp16 path had.

#[path = "fixtures/reference.rs"]
#[allow(dead_code)]
mod reference;

use models::device::DeviceModel;
use models::generate::{generate, GenerateOptions, SamplerConfig};
use models::load::load_model;
use reference::Reference;
use runtime::Emulator;

fn check(name: &str) {
    let r = Reference::load(name);
    let weights = load_model(&r.model_path).unwrap();
    let mut model =
        DeviceModel::new(weights.clone(), Emulator::new(), r.seq + r.greedy.len()).unwrap();
    let logits = model.prefill_all(&r.prompt).unwrap();
    let scale = r.logits.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let tol = 0.004 * scale + 0.01;
    let mut worst = 0.0f32;
    for (t, row) in logits.iter().enumerate() {
        for (got, want) in row.iter().zip(r.logits_at(t)) {
            worst = worst.max((got - want).abs());
        }
    }
    println!("{name}: worst logit error {worst:.4} (tolerance {tol:.4}, scale {scale:.2})");
    assert!(worst <= tol, "{name}: worst logit error {worst} > {tol}");

    let mut model = DeviceModel::new(weights, Emulator::new(), r.seq + r.greedy.len()).unwrap();
    let options = GenerateOptions {
        max_new_tokens: r.greedy.len(),
        sampler: SamplerConfig::default(),
        stop_token: None,
    };
    let out = generate(&mut model, &r.prompt, &options, |_| {}).unwrap();
    println!(
        "{name}: smallest greedy top-2 margin {}",
        r.min_greedy_margin
    );
    assert_eq!(out.generated, r.greedy, "{name}: greedy continuation");
}

#[test]
fn gpt2_device_path_matches_transformers() {
    check("gpt2-tiny");
}

#[test]
fn llama_device_path_matches_transformers() {
    check("llama-tiny");
}

#[test]
fn llama2c_export_on_the_device_path_matches_transformers() {
    check("llama-tiny.bin");
}
