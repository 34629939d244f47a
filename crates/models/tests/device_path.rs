//! The device path on the emulator: decode programs continue a prefill exactly as a longer
//! prefill would (within fp16 tolerance), for GPT-2 and Llama (grouped-query, both RoPE styles).

use compiler::nn::RopeStyle;
use models::device::DeviceModel;
use models::load::LoadedModel;
use models::{gpt2, llama};
use runtime::{Device, Emulator};

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).fold(0.0, |m, (x, y)| m.max((x - y).abs()))
}

fn check(weights: LoadedModel, tokens: &[u32]) {
    let mut full = DeviceModel::new(weights.clone(), Emulator::new(), 64).unwrap();
    let want = full.prefill_all(tokens).unwrap();
    let mut stepped = DeviceModel::new(weights, Emulator::new(), 64).unwrap();
    let split = 5;
    let first = stepped.prefill(&tokens[..split]).unwrap();
    let scale = want.iter().flatten().fold(0.0f32, |m, v| m.max(v.abs()));
    // Prefill and decode programs round differently (different op orders, padded widths):
    // allow a few fp16 ulps of the logits' scale.
    let tol = 8.0 * scale / 2048.0;
    assert!(max_abs_diff(&first, &want[split - 1]) <= tol);
    for p in split..tokens.len() {
        let got = stepped.decode(tokens[p]).unwrap();
        let err = max_abs_diff(&got, &want[p]);
        assert!(err <= tol, "position {p}: max error {err} > {tol}");
    }
    assert_eq!(
        stepped.session().device().compiles_used(),
        2 * 2,
        "one prefill and one decode program per layer"
    );
}

#[test]
fn gpt2_decode_continues_prefill() {
    let w = gpt2::Weights::random(&gpt2::Config::tiny(), 3);
    check(
        LoadedModel::Gpt2(w),
        &[1, 7, 42, 200, 3, 9, 15, 77, 100, 5, 6, 8],
    );
}

#[test]
fn llama_decode_continues_prefill_in_both_rope_styles() {
    for style in [RopeStyle::HalfSplit, RopeStyle::Interleaved] {
        let mut w = llama::Weights::random(&llama::Config::tiny(), 4);
        w.config.vocab_size = 256;
        w.tok_embeddings.truncate(256 * w.config.dim);
        w.output = w.output.map(|mut o| {
            o.truncate(256 * w.config.dim);
            o
        });
        w.rope = style;
        check(
            LoadedModel::Llama(w),
            &[1, 7, 42, 200, 3, 9, 15, 77, 100, 5, 6, 8],
        );
    }
}
