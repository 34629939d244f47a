//! One training pass's loss and every parameter gradient against PyTorch autograd
//! (`tests/fixtures/grads/make_grads.py`): on the host path (the native trainer, in f32 and
//! with bf16 matrix products), as fp32 programs, and on the emulator (fp16 programs).
//!
//! Tolerances, per tensor, relative to the tensor's largest reference magnitude:
//! - host path and fp32 programs: 1e-5 (f32 arithmetic in a different order than PyTorch's;
//!   seen: 1.6e-6);
//! - host path with bf16 products: 3e-2, about 8 u for bf16's u = 2⁻⁸ ≈ 3.9e-3 (inputs of
//!   every product rounded to bf16, sums kept in f32);
//! - emulator: 1e-2, about 20 u for fp16's u = 2⁻¹¹ ≈ 4.9e-4 — every device op rounds to fp16
//!   and errors from independent roundings mostly average out over the long sums of a
//!   gradient (seen: 3.9e-3); the loss scale (1024) keeps small gradients representable.
//!
//! The loss itself within 1e-5 (host) and 1e-3 relative (emulator).

use mil::DType;
use models::load::load_model;
use runtime::Emulator;
use std::path::PathBuf;
use train::native::{NativeTrainer, Precision};
use train::params::{named_shapes, tensors, zeros_like};
use train::trainer::{TrainShape, Trainer};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/grads")
}

/// What runs the pass.
#[derive(Clone, Copy, Debug)]
enum Engine {
    Programs(DType),
    Native(Precision),
}

fn check(name: &str, engine: Engine, tol: f32, loss_tol: f32) {
    let model = load_model(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../models/tests/fixtures")
            .join(name),
    )
    .unwrap();
    let batch: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join(format!("{name}.batch.json"))).unwrap(),
    )
    .unwrap();
    let ids = |k: &str| -> Vec<u32> {
        batch[k]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect()
    };
    let (b, t) = (
        batch["batch"].as_u64().unwrap() as usize,
        batch["seq"].as_u64().unwrap() as usize,
    );
    let mut grads = zeros_like(&model);
    let (inputs, targets) = (ids("inputs"), ids("targets"));
    let (scale, stats) = match engine {
        Engine::Programs(dtype) => {
            let shape = TrainShape {
                batch: b,
                seq: t,
                dtype,
                clamp: true,
            };
            let mut trainer = Trainer::new(&model, Emulator::new(), shape).unwrap();
            let scale = if dtype == DType::Fp16 { 1024.0 } else { 1.0 };
            let stats = trainer.forward_backward(&model, &mut grads, &inputs, &targets, scale);
            (scale, stats.unwrap())
        }
        Engine::Native(precision) => {
            // The first pass overwrites every gradient (the buffers start as NaN), the second
            // adds to them: the result is twice the gradient.
            for g in train::params::tensors_mut(&mut grads) {
                g.fill(f32::NAN);
            }
            let mut trainer = NativeTrainer::new(&model, b, t, precision);
            let mut pass = |accumulate| {
                trainer
                    .forward_backward(&model, &mut grads, &inputs, &targets, 1.0, accumulate)
                    .unwrap()
            };
            let first = pass(false);
            let second = pass(true);
            assert_eq!(
                first.loss, second.loss,
                "the same batch gives the same loss"
            );
            (2.0, second)
        }
    };
    let want_loss = batch["loss"].as_f64().unwrap() as f32;
    println!(
        "{name} {engine:?}: loss {} (PyTorch {want_loss})",
        stats.loss
    );
    assert!(
        (stats.loss - want_loss).abs() <= loss_tol * want_loss.abs(),
        "{name}: loss {} vs {want_loss}",
        stats.loss
    );
    assert_eq!(stats.non_finite, 0);

    let bytes = std::fs::read(fixtures().join(format!("{name}.grads.safetensors"))).unwrap();
    let reference = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let names = named_shapes(&model);
    assert_eq!(
        names.len(),
        reference.len(),
        "every parameter has a reference gradient"
    );
    let mut worst = (0.0f32, String::new());
    for ((pname, pshape), got) in names.iter().zip(tensors(&grads)) {
        let view = reference
            .tensor(pname)
            .unwrap_or_else(|_| panic!("no reference for {pname}"));
        assert_eq!(view.shape(), pshape.as_slice(), "{pname}");
        let want: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let scale_ref = want.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-12);
        let err = got
            .iter()
            .zip(&want)
            .fold(0.0f32, |m, (g, w)| m.max((g / scale - w).abs()))
            / scale_ref;
        if err > worst.0 {
            worst = (err, pname.clone());
        }
        assert!(err <= tol, "{name} {engine:?}: gradient of {pname} off by {err:.2e} of its scale (tolerance {tol:.0e})");
    }
    println!(
        "{name} {engine:?}: worst relative gradient error {:.2e} in {}",
        worst.0, worst.1
    );
}

#[test]
fn gpt2_gradients_match_pytorch_on_the_host_path() {
    check("gpt2-tiny", Engine::Native(Precision::F32), 1e-5, 1e-5);
}

#[test]
fn llama_gradients_match_pytorch_on_the_host_path() {
    check("llama-tiny", Engine::Native(Precision::F32), 1e-5, 1e-5);
}

#[test]
fn gpt2_gradients_match_pytorch_on_the_host_path_with_bf16_products() {
    check("gpt2-tiny", Engine::Native(Precision::Bf16), 3e-2, 1e-2);
}

#[test]
fn llama_gradients_match_pytorch_on_the_host_path_with_bf16_products() {
    check("llama-tiny", Engine::Native(Precision::Bf16), 3e-2, 1e-2);
}

#[test]
fn gpt2_gradients_match_pytorch_as_fp32_programs() {
    check("gpt2-tiny", Engine::Programs(DType::Fp32), 1e-5, 1e-5);
}

#[test]
fn llama_gradients_match_pytorch_as_fp32_programs() {
    check("llama-tiny", Engine::Programs(DType::Fp32), 1e-5, 1e-5);
}

#[test]
fn gpt2_gradients_match_pytorch_on_the_emulator() {
    check("gpt2-tiny", Engine::Programs(DType::Fp16), 1e-2, 1e-3);
}

#[test]
fn llama_gradients_match_pytorch_on_the_emulator() {
    check("llama-tiny", Engine::Programs(DType::Fp16), 1e-2, 1e-3);
}
