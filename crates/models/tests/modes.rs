//! All three inference modes (cpu, ane-prefill, ane on the emulator) give transformers'
//! greedy continuation of 32 tokens on every fixture, with host weights in f32 and f16.

#[path = "fixtures/reference.rs"]
#[allow(dead_code)]
mod reference;

use models::generate::{generate, GenerateOptions, SamplerConfig};
use models::host::Precision;
use models::load::load_model;
use models::modes::{build, Mode};
use reference::Reference;
use runtime::{Device, Emulator};

fn greedy(name: &str, mode: Mode, precision: Precision) -> Vec<u32> {
    let r = Reference::load(name);
    let weights = load_model(&r.model_path).unwrap();
    let device: Option<Box<dyn Device>> = match mode {
        Mode::Cpu => None,
        _ => Some(Box::new(Emulator::new())),
    };
    let mut lm = build(&weights, mode, device, precision, 2, r.seq + r.greedy.len()).unwrap();
    let options = GenerateOptions {
        max_new_tokens: r.greedy.len(),
        sampler: SamplerConfig::default(),
        stop_token: None,
    };
    generate(lm.as_mut(), &r.prompt, &options, |_| {})
        .unwrap()
        .generated
}

#[test]
fn greedy_continuations_are_identical_across_modes() {
    for name in ["gpt2-tiny", "llama-tiny", "llama-tiny.bin"] {
        let want = Reference::load(name).greedy;
        for (mode, precision) in [
            (Mode::Cpu, Precision::F32),
            (Mode::Cpu, Precision::F16),
            (Mode::AnePrefill, Precision::F32),
            (Mode::Ane, Precision::F32),
        ] {
            assert_eq!(
                greedy(name, mode, precision),
                want,
                "{name} {mode:?} {precision:?}"
            );
        }
    }
}
