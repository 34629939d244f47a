//! Loading and saving model weights: the transformers-written fixtures, llama2.c checkpoints,
//! save/load round trips and one clear error per kind of bad input.

#[path = "fixtures/reference.rs"]
#[allow(dead_code)]
mod reference;

use compiler::nn::RopeStyle;
use models::load::{load_llama2c, load_model, save_model, with_rope, LoadedModel, SaveDtype};
use models::{gpt2, llama, ModelConfig};
use reference::{fixtures_dir, Reference, TensorSummary};
use safetensors::SafeTensors;
use std::path::{Path, PathBuf};

/// A fresh empty scratch directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("orion-load-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn gpt2_of(m: LoadedModel) -> gpt2::Weights {
    match m {
        LoadedModel::Gpt2(w) => w,
        LoadedModel::Llama(_) => panic!("expected GPT-2"),
    }
}

fn llama_of(m: LoadedModel) -> llama::Weights {
    match m {
        LoadedModel::Llama(w) => w,
        LoadedModel::Gpt2(_) => panic!("expected Llama"),
    }
}

/// `(rows, cols)` → `(cols, rows)`.
fn transpose(src: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; src.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = src[r * cols + c];
        }
    }
    out
}

/// Checks `values` (in the checkpoint's orientation) against the script's summary.
fn check_summary(name: &str, values: &[f32], s: &TensorSummary) {
    assert_eq!(
        values.len(),
        s.shape.iter().product::<usize>(),
        "{name} size"
    );
    for &(i, v) in &s.samples {
        assert_eq!(values[i], v, "{name}[{i}]");
    }
    let sum: f64 = values.iter().map(|&v| f64::from(v)).sum();
    assert!(
        (sum - s.sum).abs() <= 1e-9 * values.len() as f64,
        "{name} sum {sum} vs {}",
        s.sum
    );
}

/// A GPT-2 tensor in the checkpoint's orientation (Conv1D weights as `[in, out]`).
fn gpt2_tensor(w: &gpt2::Weights, name: &str) -> Vec<f32> {
    let c = w.config.n_embd;
    let name = name.strip_prefix("transformer.").unwrap_or(name);
    let layer = |rest: &str| -> (usize, String) {
        let (l, field) = rest.split_once('.').unwrap();
        (l.parse().unwrap(), field.to_string())
    };
    match name {
        "wte.weight" => w.wte.clone(),
        "wpe.weight" => w.wpe.clone(),
        "ln_f.weight" => w.ln_f_weight.clone(),
        "ln_f.bias" => w.ln_f_bias.clone(),
        _ => {
            let (l, field) = layer(name.strip_prefix("h.").unwrap());
            let lw = &w.layers[l];
            match field.as_str() {
                "attn.c_attn.weight" => transpose(&lw.attn_weight, 3 * c, c),
                "mlp.c_fc.weight" => transpose(&lw.fc_weight, 4 * c, c),
                "mlp.c_proj.bias" => lw.fc_proj_bias.clone(),
                "ln_2.weight" => lw.ln_2_weight.clone(),
                other => panic!("no mapping for {other}"),
            }
        }
    }
}

/// A Hugging Face Llama tensor from our weights.
fn llama_tensor(w: &llama::Weights, name: &str) -> Vec<f32> {
    match name {
        "model.embed_tokens.weight" => w.tok_embeddings.clone(),
        "lm_head.weight" => w.output.clone().unwrap(),
        "model.norm.weight" => w.norm.clone(),
        _ => {
            let rest = name.strip_prefix("model.layers.").unwrap();
            let (l, field) = rest.split_once('.').unwrap();
            let lw = &w.layers[l.parse::<usize>().unwrap()];
            match field {
                "self_attn.q_proj.weight" => lw.wq.clone(),
                "self_attn.k_proj.weight" => lw.wk.clone(),
                "self_attn.v_proj.weight" => lw.wv.clone(),
                "mlp.gate_proj.weight" => lw.w1.clone(),
                "mlp.down_proj.weight" => lw.w2.clone(),
                "post_attention_layernorm.weight" => lw.ffn_norm.clone(),
                other => panic!("no mapping for {other}"),
            }
        }
    }
}

/// A llama2.c tensor (all layers stacked) from our weights.
fn llama2c_tensor(w: &llama::Weights, name: &str) -> Vec<f32> {
    let stack = |f: fn(&llama::LayerWeights) -> &Vec<f32>| -> Vec<f32> {
        w.layers.iter().flat_map(|l| f(l).iter().copied()).collect()
    };
    match name {
        "token_embedding_table" => w.tok_embeddings.clone(),
        "wq" => stack(|l| &l.wq),
        "wk" => stack(|l| &l.wk),
        "w2" => stack(|l| &l.w2),
        "rms_ffn_weight" => stack(|l| &l.ffn_norm),
        "wcls" => w.output.clone().unwrap(),
        other => panic!("no mapping for {other}"),
    }
}

#[test]
fn gpt2_fixture_loads_with_its_config_and_the_tensors_transformers_saved() {
    let reference = Reference::load("gpt2-tiny");
    let w = gpt2_of(load_model(&reference.model_path).unwrap());
    assert_eq!(w.config, gpt2::Config::tiny());
    for (name, s) in &reference.tensors {
        check_summary(name, &gpt2_tensor(&w, name), s);
    }
}

#[test]
fn gpt2_bf16_fixture_is_the_f32_fixture_rounded_to_bf16() {
    let full = gpt2_of(load_model(&fixtures_dir().join("gpt2-tiny")).unwrap());
    let bf = gpt2_of(load_model(&fixtures_dir().join("gpt2-tiny-bf16")).unwrap());
    let round = |v: &[f32]| -> Vec<f32> {
        v.iter()
            .map(|&x| half::bf16::from_f32(x).to_f32())
            .collect()
    };
    assert_eq!(bf.wte, round(&full.wte));
    assert_eq!(bf.layers[1].attn_weight, round(&full.layers[1].attn_weight));
    assert_eq!(
        bf.layers[0].fc_proj_weight,
        round(&full.layers[0].fc_proj_weight)
    );
    assert_eq!(bf.ln_f_bias, round(&full.ln_f_bias));
}

/// The fixtures' Llama: the llama-tiny preset with a 256-token vocabulary.
fn fixture_llama_config() -> llama::Config {
    llama::Config {
        vocab_size: 256,
        ..llama::Config::tiny()
    }
}

#[test]
fn llama_fixture_loads_half_split_with_an_untied_head_and_the_saved_tensors() {
    let reference = Reference::load("llama-tiny");
    let w = llama_of(load_model(&reference.model_path).unwrap());
    assert_eq!(w.config, fixture_llama_config());
    assert_eq!(w.rope, RopeStyle::HalfSplit);
    assert!(w.output.is_some());
    for (name, s) in &reference.tensors {
        check_summary(name, &llama_tensor(&w, name), s);
    }
}

#[test]
fn llama2c_fixture_loads_interleaved_with_the_exported_tensors() {
    let reference = Reference::load("llama-tiny.bin");
    let w = load_llama2c(&reference.model_path).unwrap();
    assert_eq!(w.config, fixture_llama_config());
    assert_eq!(w.rope, RopeStyle::Interleaved);
    for (name, s) in &reference.tensors {
        check_summary(name, &llama2c_tensor(&w, name), s);
    }
    let via_load_model = llama_of(load_model(&reference.model_path).unwrap());
    assert_eq!(via_load_model, w);
}

#[test]
fn llama2c_export_is_the_hf_model_with_q_k_rows_repaired_for_interleaved_rope() {
    let hf = llama_of(load_model(&fixtures_dir().join("llama-tiny")).unwrap());
    let l2c = load_llama2c(&fixtures_dir().join("llama-tiny.bin")).unwrap();
    assert_ne!(hf.layers[0].wq, l2c.layers[0].wq);
    assert_eq!(with_rope(&l2c, RopeStyle::HalfSplit), hf);
    assert_eq!(with_rope(&hf, RopeStyle::Interleaved), l2c);
}

/// The legacy fixture's bytes and its header as seven i32.
fn legacy_bytes() -> (Vec<u8>, [i32; 7]) {
    let bytes = std::fs::read(fixtures_dir().join("llama-tiny.bin")).unwrap();
    let h = [0, 1, 2, 3, 4, 5, 6]
        .map(|i| i32::from_le_bytes(bytes[4 * i..4 * i + 4].try_into().unwrap()));
    (bytes, h)
}

#[test]
fn llama2c_shared_classifier_checkpoint_loads_with_a_tied_head() {
    let (mut bytes, h) = legacy_bytes();
    let vd = (h[0] * -h[5]) as usize;
    bytes.truncate(bytes.len() - 4 * vd);
    bytes[20..24].copy_from_slice(&(-h[5]).to_le_bytes());
    let path = scratch("shared").join("shared.bin");
    std::fs::write(&path, &bytes).unwrap();
    let w = load_llama2c(&path).unwrap();
    assert!(w.output.is_none());
    assert_eq!(w.lm_head(), &w.tok_embeddings[..]);
}

#[test]
fn llama2c_version1_checkpoint_loads_to_the_same_weights_as_legacy() {
    let (bytes, h) = legacy_bytes();
    let legacy = load_llama2c(&fixtures_dir().join("llama-tiny.bin")).unwrap();
    let mut out = Vec::new();
    out.extend(0x616b_3432u32.to_le_bytes());
    out.extend(1i32.to_le_bytes());
    for (i, v) in h.iter().enumerate() {
        out.extend((if i == 5 { v.abs() } else { *v }).to_le_bytes());
    }
    out.push(0); // classifier not shared
    out.resize(256, 0);
    let floats = |v: &[f32]| -> Vec<u8> { v.iter().flat_map(|x| x.to_le_bytes()).collect() };
    let all = |f: fn(&llama::LayerWeights) -> &Vec<f32>| -> Vec<u8> {
        legacy.layers.iter().flat_map(|l| floats(f(l))).collect()
    };
    out.extend(all(|l| &l.attention_norm));
    out.extend(all(|l| &l.ffn_norm));
    out.extend(floats(&legacy.norm));
    out.extend(floats(&legacy.tok_embeddings));
    for f in [
        (|l| &l.wq) as fn(&llama::LayerWeights) -> &Vec<f32>,
        |l| &l.wk,
        |l| &l.wv,
        |l| &l.wo,
        |l| &l.w1,
        |l| &l.w2,
        |l| &l.w3,
    ] {
        out.extend(all(f));
    }
    out.extend(floats(legacy.output.as_ref().unwrap()));
    assert!(out.len() < bytes.len(), "v1 has no RoPE tables");
    let path = scratch("v1").join("v1.bin");
    std::fs::write(&path, &out).unwrap();
    assert_eq!(load_llama2c(&path).unwrap(), legacy);
}

#[test]
fn llama2c_version2_checkpoint_is_rejected_as_quantized() {
    let mut bytes = 0x616b_3432u32.to_le_bytes().to_vec();
    bytes.extend(2i32.to_le_bytes());
    bytes.resize(256, 0);
    let path = scratch("v2").join("q80.bin");
    std::fs::write(&path, &bytes).unwrap();
    let msg = load_llama2c(&path).unwrap_err().to_string();
    assert!(
        msg.contains("version 2") && msg.contains("quantized"),
        "{msg}"
    );
}

#[test]
fn truncated_llama2c_checkpoint_names_the_sizes() {
    let (bytes, _) = legacy_bytes();
    let path = scratch("l2c-trunc").join("cut.bin");
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let msg = load_model(&path).unwrap_err().to_string();
    assert!(
        msg.contains("truncated") && msg.contains("cut.bin"),
        "{msg}"
    );
    assert!(!msg.contains('\n'), "{msg}");
}

#[test]
fn gpt2_save_then_load_is_identical_and_writes_save_pretrained_names() {
    let model = LoadedModel::random(&ModelConfig::Gpt2(gpt2::Config::tiny()), 7);
    let dir = scratch("gpt2-rt");
    save_model(&dir, &model, SaveDtype::F32).unwrap();
    assert_eq!(load_model(&dir).unwrap(), model);
    let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let view = st.tensor("transformer.h.0.attn.c_attn.weight").unwrap();
    assert_eq!(view.shape(), &[64, 192]);
    assert!(st.tensor("lm_head.weight").is_err());
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["architectures"][0], "GPT2LMHeadModel");
    assert_eq!(config["torch_dtype"], "float32");
    assert_eq!(config["layer_norm_epsilon"], 1e-5);
}

#[test]
fn llama_save_then_load_is_identical_untied_and_tied() {
    let mut model = llama::Weights::random(&llama::Config::tiny(), 3);
    for tied in [false, true] {
        if tied {
            model.output = None;
        }
        let dir = scratch(&format!("llama-rt-{tied}"));
        save_model(&dir, &LoadedModel::Llama(model.clone()), SaveDtype::F32).unwrap();
        assert_eq!(llama_of(load_model(&dir).unwrap()), model);
    }
}

#[test]
fn interleaved_llama_is_saved_half_split() {
    let l2c = load_llama2c(&fixtures_dir().join("llama-tiny.bin")).unwrap();
    let dir = scratch("l2c-save");
    save_model(&dir, &LoadedModel::Llama(l2c.clone()), SaveDtype::F32).unwrap();
    let loaded = llama_of(load_model(&dir).unwrap());
    assert_eq!(loaded, with_rope(&l2c, RopeStyle::HalfSplit));
    let hf = llama_of(load_model(&fixtures_dir().join("llama-tiny")).unwrap());
    assert_eq!(loaded, hf);
}

#[test]
fn f16_save_loads_as_the_weights_rounded_to_f16() {
    let model = llama::Weights::random(&llama::Config::tiny(), 5);
    let dir = scratch("f16");
    save_model(&dir, &LoadedModel::Llama(model.clone()), SaveDtype::F16).unwrap();
    let loaded = llama_of(load_model(&dir).unwrap());
    let round =
        |v: &[f32]| -> Vec<f32> { v.iter().map(|&x| half::f16::from_f32(x).to_f32()).collect() };
    assert_eq!(loaded.tok_embeddings, round(&model.tok_embeddings));
    assert_eq!(loaded.layers[1].w2, round(&model.layers[1].w2));
    assert_ne!(loaded.layers[1].w2, model.layers[1].w2);
    let size = std::fs::metadata(dir.join("model.safetensors"))
        .unwrap()
        .len();
    let params = LoadedModel::Llama(model).parameter_count() as u64;
    assert!(
        size > 2 * params && size < 2 * params + 16384,
        "{size} bytes"
    );
    let config = std::fs::read_to_string(dir.join("config.json")).unwrap();
    assert!(config.contains("\"float16\""));
}

/// Rewrites `src`'s tensors into `dst` after renaming (or dropping, on `None`) each one.
fn rewrite(src: &Path, dst: &Path, rename: impl Fn(&str) -> Option<String>) {
    let bytes = std::fs::read(src).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let kept: Vec<_> = st
        .tensors()
        .into_iter()
        .filter_map(|(name, view)| rename(&name).map(|n| (n, view)))
        .collect();
    safetensors::serialize_to_file(kept, None, dst).unwrap();
}

/// A copy of the gpt2-tiny fixture in a scratch directory.
fn gpt2_copy(name: &str) -> PathBuf {
    let dir = scratch(name);
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(fixtures_dir().join("gpt2-tiny").join(f), dir.join(f)).unwrap();
    }
    dir
}

#[test]
fn gpt2_hub_layout_without_prefix_and_with_a_tied_lm_head_loads_the_same() {
    let dir = gpt2_copy("hub");
    let original = load_model(&dir).unwrap();
    let src = fixtures_dir().join("gpt2-tiny/model.safetensors");
    rewrite(&src, &dir.join("model.safetensors"), |n| {
        n.strip_prefix("transformer.").map(str::to_string)
    });
    assert_eq!(load_model(&dir).unwrap(), original);
}

#[test]
fn gpt2_lm_head_that_differs_from_wte_is_rejected() {
    let dir = gpt2_copy("untied");
    let bytes = std::fs::read(fixtures_dir().join("gpt2-tiny/model.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors = st.tensors();
    // A (256, 64) head made of the (128, 64) position table twice: right shape, not wte.
    let wpe = st.tensor("transformer.wpe.weight").unwrap();
    let head = [wpe.data(), wpe.data()].concat();
    let view = safetensors::tensor::TensorView::new(wpe.dtype(), vec![256, 64], &head).unwrap();
    tensors.push(("lm_head.weight".to_string(), view));
    safetensors::serialize_to_file(tensors, None, &dir.join("model.safetensors")).unwrap();
    let msg = load_error(&dir);
    assert!(
        msg.contains("lm_head.weight") && msg.contains("untied"),
        "{msg}"
    );
}

#[test]
fn sharded_checkpoint_loads_through_its_index() {
    let reference = fixtures_dir().join("llama-tiny");
    let dir = scratch("sharded");
    std::fs::copy(reference.join("config.json"), dir.join("config.json")).unwrap();
    let src = reference.join("model.safetensors");
    let first = |n: &str| n.starts_with("model.layers.0.") || n.starts_with("model.embed");
    rewrite(&src, &dir.join("a.safetensors"), |n| {
        first(n).then(|| n.to_string())
    });
    rewrite(&src, &dir.join("b.safetensors"), |n| {
        (!first(n)).then(|| n.to_string())
    });
    let bytes = std::fs::read(&src).unwrap();
    let names = SafeTensors::deserialize(&bytes)
        .unwrap()
        .names()
        .into_iter()
        .map(str::to_string)
        .collect::<Vec<_>>();
    let map: serde_json::Map<String, serde_json::Value> = names
        .iter()
        .map(|n| {
            (
                n.clone(),
                (if first(n) {
                    "a.safetensors"
                } else {
                    "b.safetensors"
                })
                .into(),
            )
        })
        .collect();
    let index = serde_json::json!({"metadata": {}, "weight_map": map});
    std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();
    assert_eq!(load_model(&dir).unwrap(), load_model(&reference).unwrap());
}

/// The one-line message of loading `dir`, which must fail.
fn load_error(dir: &Path) -> String {
    let msg = load_model(dir).unwrap_err().to_string();
    assert!(!msg.contains('\n'), "one line: {msg}");
    msg
}

#[test]
fn missing_config_or_weights_name_the_file_and_directory() {
    let dir = scratch("missing");
    let msg = load_error(&dir);
    assert!(
        msg.contains("config.json") && msg.contains(dir.to_str().unwrap()),
        "{msg}"
    );
    std::fs::copy(
        fixtures_dir().join("gpt2-tiny/config.json"),
        dir.join("config.json"),
    )
    .unwrap();
    let msg = load_error(&dir);
    assert!(
        msg.contains("model.safetensors") && msg.contains(dir.to_str().unwrap()),
        "{msg}"
    );
    let msg = load_error(&dir.join("nope"));
    assert!(msg.contains("nope"), "{msg}");
    let msg = load_error(&dir.join("config.json"));
    assert!(msg.contains("pass the directory"), "{msg}");
}

#[test]
fn missing_tensor_is_named() {
    let dir = gpt2_copy("missing-tensor");
    let src = fixtures_dir().join("gpt2-tiny/model.safetensors");
    rewrite(&src, &dir.join("model.safetensors"), |n| {
        (n != "transformer.h.1.mlp.c_fc.bias").then(|| n.to_string())
    });
    let msg = load_error(&dir);
    assert!(
        msg.contains("missing tensor transformer.h.1.mlp.c_fc.bias"),
        "{msg}"
    );
}

#[test]
fn untied_llama_without_lm_head_names_the_missing_tensor() {
    let reference = fixtures_dir().join("llama-tiny");
    let dir = scratch("no-head");
    std::fs::copy(reference.join("config.json"), dir.join("config.json")).unwrap();
    rewrite(
        &reference.join("model.safetensors"),
        &dir.join("model.safetensors"),
        |n| (n != "lm_head.weight").then(|| n.to_string()),
    );
    assert!(load_error(&dir).contains("missing tensor lm_head.weight"));
}

#[test]
fn wrong_shape_names_the_tensor_with_expected_and_found_shapes() {
    let dir = gpt2_copy("shape");
    let config = std::fs::read_to_string(dir.join("config.json")).unwrap();
    let config = config.replace("\"n_positions\": 128", "\"n_positions\": 64");
    std::fs::write(dir.join("config.json"), config).unwrap();
    let msg = load_error(&dir);
    assert!(
        msg.contains("transformer.wpe.weight")
            && msg.contains("[128, 64]")
            && msg.contains("expected [64, 64]"),
        "{msg}"
    );
}

#[test]
fn truncated_safetensors_say_truncated() {
    let dir = gpt2_copy("trunc");
    let path = dir.join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 1000]).unwrap();
    let msg = load_error(&dir);
    assert!(
        msg.contains("truncated") && msg.contains("model.safetensors"),
        "{msg}"
    );

    let mut header = 1_000_000u64.to_le_bytes().to_vec();
    header.extend(b"{\"a\":");
    std::fs::write(&path, &header).unwrap();
    let msg = load_error(&dir);
    assert!(
        msg.contains("header length 1000000 runs past the end"),
        "{msg}"
    );
}

#[test]
fn unknown_architecture_is_named_with_the_supported_ones() {
    let dir = gpt2_copy("arch");
    std::fs::write(
        dir.join("config.json"),
        r#"{"model_type": "mistral", "architectures": ["MistralForCausalLM"]}"#,
    )
    .unwrap();
    let msg = load_error(&dir);
    assert!(
        msg.contains("mistral") && msg.contains("supported: gpt2"),
        "{msg}"
    );
}

#[test]
fn unsupported_llama_features_are_rejected_by_name() {
    let reference = fixtures_dir().join("llama-tiny");
    let dir = scratch("rope-scaling");
    std::fs::copy(
        reference.join("model.safetensors"),
        dir.join("model.safetensors"),
    )
    .unwrap();
    let config = std::fs::read_to_string(reference.join("config.json")).unwrap();
    let config = config.replace("\"rope_type\": \"default\"", "\"rope_type\": \"llama3\"");
    std::fs::write(dir.join("config.json"), config).unwrap();
    let msg = load_error(&dir);
    assert!(msg.contains("rope_type") && msg.contains("llama3"), "{msg}");
}

/// `config.json` of a saved tiny model with `edit` applied, and the loader's error.
fn load_error_after(
    name: &str,
    model: &LoadedModel,
    edit: impl Fn(&mut serde_json::Value),
) -> String {
    let dir = scratch(name);
    save_model(&dir, model, SaveDtype::F32).unwrap();
    let path = dir.join("config.json");
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut json);
    std::fs::write(&path, json.to_string()).unwrap();
    match load_model(&dir) {
        Ok(_) => panic!("{name}: a hostile config loaded"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn hostile_configs_are_refused_before_anything_is_sized_by_them() {
    let gpt2 = LoadedModel::Gpt2(gpt2::Weights::random(&gpt2::Config::tiny(), 1));
    let llama = LoadedModel::Llama(llama::Weights::random(&llama::Config::tiny(), 2));
    let cases: Vec<(&LoadedModel, &str, serde_json::Value, &str)> = vec![
        (&gpt2, "n_layer", 1_000_000_000u64.into(), "past the limit"),
        (
            &gpt2,
            "n_positions",
            1_000_000_000_000u64.into(),
            "past the limit",
        ),
        (&gpt2, "layer_norm_epsilon", (-1e-5).into(), "epsilon"),
        (&gpt2, "n_layer", 40.into(), "but the weights hold only"),
        (
            &llama,
            "num_hidden_layers",
            1_000_000_000u64.into(),
            "past the limit",
        ),
        (
            &llama,
            "max_position_embeddings",
            1_000_000_000_000u64.into(),
            "past the limit",
        ),
        (
            &llama,
            "hidden_size",
            1_000_000_000u64.into(),
            "past the limit",
        ),
        (&llama, "rms_norm_eps", (-1e-6).into(), "epsilon"),
        (&llama, "rope_theta", (-10000.0).into(), "RoPE base"),
        (
            &llama,
            "vocab_size",
            5_000_000.into(),
            "but the weights hold only",
        ),
    ];
    for (i, (model, key, value, want)) in cases.into_iter().enumerate() {
        let err = load_error_after(&format!("hostile-{i}"), model, |j| j[key] = value.clone());
        assert!(
            err.contains(want) && err.contains("config.json"),
            "{key}: {err}"
        );
    }
}
