//! Every kernel compiles to a program that verifies, passes ANE validation, round-trips
//! through the parser, and matches its golden MIL file (re-bless with `ORION_BLESS=1`).

use compiler::nn::RopeStyle;
use compiler::WeightMode;
use models::kernels::{build, KernelRequest, KERNELS};
use std::path::PathBuf;

fn request(kernel: &str, preset: &str, bucket: usize, mode: WeightMode) -> KernelRequest {
    KernelRequest {
        kernel: kernel.to_string(),
        preset: Some(preset.to_string()),
        layer: 0,
        bucket,
        mode,
        seed: 7,
        rope: RopeStyle::HalfSplit,
    }
}

fn tiny_preset(kernel: &str) -> &'static str {
    if kernel.starts_with("gpt2") {
        "gpt2-tiny"
    } else {
        "llama-tiny"
    }
}

fn golden_path(kernel: &str, mode: WeightMode) -> PathBuf {
    let mode = match mode {
        WeightMode::Baked => "baked",
        WeightMode::Dynamic => "dynamic",
    };
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/golden/{kernel}.{mode}.mil"))
}

#[test]
fn tiny_kernels_match_their_golden_mil() {
    let bless = std::env::var_os("ORION_BLESS").is_some();
    let mut mismatches = Vec::new();
    for (kernel, _) in KERNELS {
        for mode in [WeightMode::Baked, WeightMode::Dynamic] {
            let graph = build(&request(kernel, tiny_preset(kernel), 32, mode)).unwrap();
            let compiled = compiler::compile(&graph).unwrap();
            let path = golden_path(kernel, mode);
            if bless {
                std::fs::write(&path, &compiled.bundle.mil).unwrap();
                continue;
            }
            let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
                panic!(
                    "{}: {e}; run with ORION_BLESS=1 to create it",
                    path.display()
                )
            });
            if expected != compiled.bundle.mil {
                mismatches.push(path.display().to_string());
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "MIL differs from golden files (ORION_BLESS=1 re-blesses): {mismatches:?}"
    );
}

#[test]
fn every_kernel_verifies_validates_and_round_trips() {
    for (kernel, _) in KERNELS {
        for mode in [WeightMode::Baked, WeightMode::Dynamic] {
            let graph = build(&request(kernel, tiny_preset(kernel), 32, mode)).unwrap();
            let compiled = compiler::compile(&graph).unwrap();
            let options = mil::verify::VerifyOptions::default();
            let diags = compiler::validate::validate(&compiled.program, &options);
            assert!(!diags.has_errors(), "{kernel} {mode:?}:\n{diags}");
            let parsed = mil::parse::parse_program(&compiled.bundle.mil).unwrap();
            assert_eq!(
                mil::print::print_program(&parsed),
                compiled.bundle.mil,
                "{kernel} {mode:?}"
            );
            assert!(!mil::verify::verify(&parsed, &options).has_errors());
            let blob_refs = parsed.blob_refs().len();
            match mode {
                WeightMode::Baked => {
                    assert!(blob_refs > 0, "{kernel}: baked weights live in blobs")
                }
                WeightMode::Dynamic => {
                    let main = parsed.main().unwrap();
                    assert!(
                        main.inputs.len() > 1,
                        "{kernel}: dynamic weights are inputs"
                    );
                }
            }
        }
    }
}

#[test]
fn full_size_kernels_compile_and_pass_validation() {
    for (kernel, preset) in [
        ("gpt2.prefill_attn", "gpt2-124m"),
        ("gpt2.prefill_ffn", "gpt2-124m"),
        ("llama.prefill_attn", "stories110m"),
        ("llama.prefill_ffn", "stories110m"),
    ] {
        let graph = build(&request(kernel, preset, 64, WeightMode::Baked)).unwrap();
        let compiled = compiler::compile(&graph).unwrap();
        assert!(!compiled.warnings.has_errors());
        let weights = compiled
            .bundle
            .weight_file("@model_path/weights/weight.bin")
            .unwrap();
        let file = mil::blobfile::BlobFile::parse(weights).unwrap();
        for (path, offset, ty) in compiled.program.blob_refs() {
            assert_eq!(path, "@model_path/weights/weight.bin");
            let blob = file.blob_at(offset).unwrap();
            assert_eq!(
                blob.data.len(),
                ty.size_bytes().unwrap(),
                "{kernel}: blob at {offset}"
            );
        }
    }
}

#[test]
fn bad_requests_are_clear_errors() {
    let mut r = request("gpt2.prefill_attn", "gpt2-tiny", 32, WeightMode::Baked);
    r.layer = 9;
    assert!(build(&r)
        .unwrap_err()
        .to_string()
        .contains("layer 9 is out of range"));
    let r = request("gpt2.prefill_attn", "gpt2-tiny", 4096, WeightMode::Baked);
    assert!(build(&r).unwrap_err().to_string().contains("bucket 4096"));
    let r = request("gpt2.nope", "gpt2-tiny", 32, WeightMode::Baked);
    assert!(build(&r)
        .unwrap_err()
        .to_string()
        .contains("unknown kernel"));
    let r = request("gpt2.prefill_attn", "stories15m", 32, WeightMode::Baked);
    assert!(build(&r)
        .unwrap_err()
        .to_string()
        .contains("not a gpt2 model"));
}
