//! The host forward path at every kernel level this CPU has: prefill against step-by-step
//! decode, fp16 against f32 weights, and logits against the transformers / run.c fixtures.
//! (The operators themselves are tested in the `cpu` crate.)

#[allow(dead_code)] // the shared fixture reader has fields this test does not need
#[path = "fixtures/reference.rs"]
mod reference;

use compiler::nn::RopeStyle;
use cpu::Cpu;
use models::host::rope::Rope;
use models::host::{HostModel, Pool, Precision};
use models::load::{load_llama2c, load_model, LoadedModel};
use models::{gpt2, llama};
use reference::Reference;

/// The host model of `w` at level `cpu` on `threads` threads.
fn host(w: &LoadedModel, precision: Precision, cpu: Cpu, threads: usize) -> HostModel {
    HostModel::with_pool(w, precision, Pool::with_cpu(cpu, threads))
}

/// Largest `|a - b|` over the largest `|b|`.
fn rel_err(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    let scale = b.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-12);
    let diff = a
        .iter()
        .zip(b)
        .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
    diff / scale
}

#[test]
fn rope_rotates_the_pairs_each_convention_names() {
    let (hd, pos, theta) = (8, 3, 10000.0f32);
    let x: Vec<f32> = (0..2 * hd).map(|i| i as f32 + 1.0).collect();
    for style in [RopeStyle::HalfSplit, RopeStyle::Interleaved] {
        let mut y = x.clone();
        Rope::new(hd, 4, theta, style).apply(Cpu::active(), &mut y, pos);
        for head in 0..2 {
            for i in 0..hd / 2 {
                let (a, b) = match style {
                    RopeStyle::HalfSplit => (i, i + hd / 2),
                    RopeStyle::Interleaved => (2 * i, 2 * i + 1),
                };
                let (a, b) = (head * hd + a, head * hd + b);
                let angle = pos as f64 * f64::from(theta).powf(-2.0 * i as f64 / hd as f64);
                let (c, s) = (angle.cos(), angle.sin());
                let (x0, x1) = (f64::from(x[a]), f64::from(x[b]));
                assert!(
                    (f64::from(y[a]) - (x0 * c - x1 * s)).abs() < 1e-4,
                    "{style:?}"
                );
                assert!(
                    (f64::from(y[b]) - (x0 * s + x1 * c)).abs() < 1e-4,
                    "{style:?}"
                );
            }
        }
    }
}

fn tiny_models() -> Vec<(&'static str, LoadedModel)> {
    let mut interleaved = llama::Weights::random(&llama::Config::tiny(), 3);
    interleaved.rope = RopeStyle::Interleaved;
    let mut tied = llama::Weights::random(&llama::Config::tiny(), 4);
    tied.output = None;
    vec![
        (
            "gpt2",
            LoadedModel::Gpt2(gpt2::Weights::random(&gpt2::Config::tiny(), 2)),
        ),
        (
            "llama",
            LoadedModel::Llama(llama::Weights::random(&llama::Config::tiny(), 3)),
        ),
        ("llama interleaved", LoadedModel::Llama(interleaved)),
        ("llama tied", LoadedModel::Llama(tied)),
    ]
}

#[test]
fn prefill_of_a_prompt_gives_the_logits_of_decoding_it_token_by_token() {
    let tokens: Vec<u32> = (0..11).map(|i| (i * 37 + 5) % 256).collect();
    for (name, w) in tiny_models() {
        for precision in [Precision::F32, Precision::F16] {
            for cpu in Cpu::available() {
                let mut m = host(&w, precision, cpu, 2);
                let all = m.prefill_all(&tokens, 0).expect("prefill").to_vec();
                let last = m.prefill(&tokens, 0).expect("prefill").to_vec();
                let v = m.vocab_size();
                let err = rel_err(&last, &all[(tokens.len() - 1) * v..]);
                assert!(
                    err < 1e-5,
                    "{name} {precision:?} {cpu} last position: {err}"
                );
                m.reset();
                for (p, &tok) in tokens.iter().enumerate() {
                    let step = m.decode(tok, p).expect("decode");
                    let err = rel_err(step, &all[p * v..(p + 1) * v]);
                    // Decode sums each row's products in two vector accumulators, prefill in
                    // one per tile: f32 reassociation only, largest (observed 1.9e-5) on the
                    // portable level, which rounds products and sums separately.
                    assert!(err < 5e-5, "{name} {precision:?} {cpu} position {p}: {err}");
                }
            }
        }
    }
}

#[test]
fn prefill_continues_from_a_cached_prefix() {
    let tokens: Vec<u32> = (0..9).map(|i| (i * 11 + 1) % 256).collect();
    for (name, w) in tiny_models() {
        let mut m = HostModel::new(&w, Precision::F32, 2);
        let whole = m.prefill_all(&tokens, 0).expect("prefill").to_vec();
        m.reset();
        m.prefill(&tokens[..4], 0).expect("prefix");
        let rest = m.prefill_all(&tokens[4..], 4).expect("rest").to_vec();
        let err = rel_err(&rest, &whole[4 * m.vocab_size()..]);
        assert!(err < 1e-5, "{name}: {err}");
    }
}

#[test]
fn fp16_weights_agree_with_f32_weights_within_fp16_rounding() {
    let tokens: Vec<u32> = (0..12).map(|i| (i * 53 + 2) % 256).collect();
    for (name, w) in tiny_models() {
        let f32_logits = HostModel::new(&w, Precision::F32, 1)
            .prefill_all(&tokens, 0)
            .expect("f32")
            .to_vec();
        let f16_logits = HostModel::new(&w, Precision::F16, 2)
            .prefill_all(&tokens, 0)
            .expect("f16")
            .to_vec();
        let err = rel_err(&f16_logits, &f32_logits);
        // Each weight moves by at most 2^-11 (4.9e-4) of itself; the logits move by a few
        // times that relative to their range (observed 2e-4 to 4e-4), far above f32 noise.
        assert!(err < 3e-3, "{name}: {err}");
        assert!(err > 0.0, "{name}: fp16 rounding should change something");
    }
}

#[test]
fn out_of_range_tokens_and_positions_are_errors() {
    let (_, w) = tiny_models().swap_remove(0);
    let mut m = HostModel::new(&w, Precision::F32, 1);
    assert!(m.decode(256, 0).is_err());
    assert!(m.decode(1, m.context_len()).is_err());
    assert!(m.prefill(&[], 0).is_err());
    assert!(m.prefill(&[1, 2], m.context_len() - 1).is_err());
    assert!(m.decode(1, m.context_len() - 1).is_ok());
}

/// f32 logits within 1e-5 of the reference's range at every prompt position (observed 3e-7 to
/// 5e-7); fp16 weights within 3e-3, six fp16 half-ulps (2^-11) of the largest logit (observed
/// 2e-4 to 6e-4); the greedy continuation from step-by-step decode matches.
fn check_fixture(name: &str, model: &LoadedModel) {
    let r = Reference::load(name);
    for cpu in Cpu::available() {
        for (precision, tol) in [(Precision::F32, 1e-5), (Precision::F16, 3e-3)] {
            let mut m = host(model, precision, cpu, 2);
            let logits = m.prefill_all(&r.prompt, 0).expect("prefill").to_vec();
            let err = rel_err(&logits, &r.logits);
            assert!(err < tol, "{name} {precision:?} {cpu}: {err}");
        }
        let mut m = host(model, Precision::F32, cpu, 2);
        let mut next = argmax(m.prefill(&r.prompt, 0).expect("prefill"));
        let mut greedy = vec![];
        for step in 0..r.greedy.len() {
            greedy.push(next);
            next = argmax(m.decode(next, r.prompt.len() + step).expect("decode"));
        }
        assert_eq!(greedy, r.greedy, "{name} {cpu} greedy continuation");
    }
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

#[test]
fn gpt2_logits_match_transformers() {
    let r = Reference::load("gpt2-tiny");
    let model = load_model(&r.model_path).expect("load gpt2-tiny");
    check_fixture("gpt2-tiny", &model);
}

#[test]
fn hugging_face_llama_logits_match_transformers() {
    let r = Reference::load("llama-tiny");
    let model = load_model(&r.model_path).expect("load llama-tiny");
    check_fixture("llama-tiny", &model);
}

#[test]
fn llama2c_export_logits_match_the_run_c_reference() {
    let r = Reference::load("llama-tiny.bin");
    let w = load_llama2c(&r.model_path).expect("load llama-tiny.bin");
    assert_eq!(w.rope, RopeStyle::Interleaved);
    check_fixture("llama-tiny.bin", &LoadedModel::Llama(w));
}
