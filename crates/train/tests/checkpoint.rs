//! Checkpoints: round trip, atomic replacement, and rejection of truncated, corrupted and
//! foreign files with messages that say what was found.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::json;
use train::{
    AdamW, AdamWConfig, Batcher, Checkpoint, DataOrder, LossScaleConfig, LossScaler, ParamSpec,
    Rng, TokenFile,
};

/// A checkpoint with every kind of state filled in.
fn sample(step: u64) -> Checkpoint {
    let mut ckpt = Checkpoint::new(step, json!({"preset": "tiny", "n_layer": 2, "lr": 1e-3}));
    ckpt.push(
        "wte",
        vec![3, 4],
        (0..12).map(|i| i as f32 * 0.5 - step as f32).collect(),
    );
    ckpt.push(
        "ln_f.weight",
        vec![4],
        vec![1.0, f32::MIN_POSITIVE, -0.0, 3.25e-7],
    );
    let mut opt = AdamW::new(
        AdamWConfig::default(),
        vec![
            ParamSpec::new("wte", vec![3, 4]),
            ParamSpec::new("ln_f.weight", vec![4]),
        ],
    );
    let mut params = vec![vec![0.1f32; 12], vec![1.0f32; 4]];
    let grads = vec![vec![0.01f32; 12], vec![-0.2f32; 4]];
    opt.step(&mut params, &grads, 1e-3).expect("step");
    ckpt.set_optimizer(&opt);
    let mut loader = Batcher::new(
        TokenFile::from_tokens((0..100).collect()),
        2,
        8,
        DataOrder::Random { seed: 5 },
    )
    .expect("loader");
    loader.next_batch().expect("batch");
    ckpt.header.data = Some(loader.state());
    let mut rng = Rng::new(77);
    rng.next_u64();
    ckpt.header.rng = Some(rng.state());
    ckpt.header.loss_scale = Some(LossScaler::new(LossScaleConfig::default()).state());
    ckpt.header.metadata = json!({"orion": "0.1.0", "elapsed_s": 12.5});
    ckpt
}

fn saved(dir: &Path, step: u64) -> (PathBuf, Checkpoint) {
    let path = dir.join("ckpt.bin");
    let ckpt = sample(step);
    ckpt.save(&path).expect("save");
    (path, ckpt)
}

/// The load error message for `path`.
fn load_error(path: &Path) -> String {
    Checkpoint::load(path)
        .expect_err("should be rejected")
        .to_string()
}

#[test]
fn round_trip_preserves_everything_bit_exactly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, ckpt) = saved(dir.path(), 42);
    let back = Checkpoint::load(&path).expect("load");
    assert_eq!(back, ckpt);
    let bits = |c: &Checkpoint| -> Vec<u32> {
        c.tensors
            .iter()
            .flat_map(|t| t.data.iter().map(|x| x.to_bits()))
            .collect()
    };
    assert_eq!(bits(&back), bits(&ckpt), "-0.0 and subnormals survive");
    let opt = back.optimizer().expect("optimizer").expect("present");
    assert_eq!(opt.step_count(), 1);
    assert_eq!(back.tensor("optim.m.wte").expect("m").data.len(), 12);
}

#[test]
fn file_starts_with_magic_and_version_and_aligns_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, ckpt) = saved(dir.path(), 1);
    let bytes = fs::read(&path).expect("read");
    assert_eq!(&bytes[..8], b"ORIONCKP");
    assert_eq!(u32::from_le_bytes(bytes[8..12].try_into().expect("4")), 1);
    let header_len = u64::from_le_bytes(bytes[12..20].try_into().expect("8")) as usize;
    let header: serde_json::Value =
        serde_json::from_slice(&bytes[20..20 + header_len]).expect("json");
    assert_eq!(header["step"], 1);
    assert_eq!(header["config"]["preset"], "tiny");
    assert_eq!(header["tensors"][0]["name"], "wte");
    assert_eq!(header["tensors"][0]["dtype"], "f32");
    let values: usize = ckpt.tensors.iter().map(|t| t.data.len()).sum();
    let data_start = (20 + header_len).div_ceil(64) * 64;
    assert_eq!(bytes.len(), data_start + 4 * values + 4);
    let first = f32::from_le_bytes(bytes[data_start..data_start + 4].try_into().expect("4"));
    assert_eq!(first, ckpt.tensors[0].data[0]);
}

#[test]
fn flipped_byte_anywhere_is_detected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, _) = saved(dir.path(), 3);
    let good = fs::read(&path).expect("read");
    // A byte in the tensor data, in the JSON header, and in the checksum itself.
    for at in [good.len() - 10, 40, good.len() - 1] {
        let mut bad = good.clone();
        bad[at] ^= 0x10;
        fs::write(&path, &bad).expect("write");
        let msg = load_error(&path);
        assert!(
            msg.contains("checksum mismatch") || msg.contains("corrupted"),
            "byte {at}: {msg}"
        );
    }
}

#[test]
fn truncated_file_is_rejected_with_sizes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, _) = saved(dir.path(), 3);
    let good = fs::read(&path).expect("read");
    for keep in [good.len() - 1, good.len() / 2, 30, 10, 0] {
        fs::write(&path, &good[..keep]).expect("write");
        let msg = load_error(&path);
        assert!(
            msg.contains("truncated") || msg.contains("corrupted"),
            "{keep} bytes: {msg}"
        );
    }
    fs::write(&path, &good[..good.len() - 1]).expect("write");
    let msg = load_error(&path);
    assert!(
        msg.contains(&format!("{} bytes", good.len() - 1)) && msg.contains(&good.len().to_string()),
        "{msg}"
    );
}

#[test]
fn wrong_magic_and_version_say_what_was_found() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, _) = saved(dir.path(), 3);
    let good = fs::read(&path).expect("read");
    let mut bad = good.clone();
    bad[..8].copy_from_slice(b"GGUF\0\0\0\0");
    fs::write(&path, &bad).expect("write");
    let msg = load_error(&path);
    assert!(
        msg.contains("not an Orion checkpoint") && msg.contains("GGUF"),
        "{msg}"
    );
    // A whole file of another version (its checksum intact) says which version it is.
    let mut other = good.clone();
    other[8..12].copy_from_slice(&7u32.to_le_bytes());
    let end = other.len() - 4;
    let crc = crc32fast::hash(&other[..end]);
    other[end..].copy_from_slice(&crc.to_le_bytes());
    fs::write(&path, &other).expect("write");
    let msg = load_error(&path);
    assert!(
        msg.contains("version 7") && msg.contains("version 1"),
        "{msg}"
    );
    // A damaged byte in the version field is damage, not a version.
    let mut bad = good;
    bad[10] ^= 0x01;
    fs::write(&path, &bad).expect("write");
    let msg = load_error(&path);
    assert!(
        msg.contains("checksum mismatch") && !msg.contains("version"),
        "{msg}"
    );
}

#[test]
fn interrupted_save_leaves_previous_checkpoint_loadable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, first) = saved(dir.path(), 10);
    // Simulate a process killed mid-write: the temp file beside the target holds a prefix of
    // the next checkpoint, and the rename never happened.
    let next = dir.path().join("next.bin");
    sample(20).save(&next).expect("save next");
    let partial = fs::read(&next).expect("read");
    let temp = files::temp_path(&path);
    fs::write(&temp, &partial[..partial.len() * 2 / 3]).expect("partial");
    assert_eq!(
        Checkpoint::load(&path).expect("previous still loads"),
        first
    );
    let msg = load_error(&temp);
    assert!(msg.contains("truncated"), "{msg}");
    // The next save overwrites the stale temp file and replaces the target.
    sample(30).save(&path).expect("save over stale temp");
    assert_eq!(Checkpoint::load(&path).expect("new").header.step, 30);
    assert!(!temp.exists(), "temp file renamed away");
}

#[test]
fn save_rejects_tensor_whose_shape_disagrees_with_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.bin");
    let mut ckpt = Checkpoint::new(0, json!(null));
    ckpt.push("w", vec![2, 3], vec![0.0; 5]);
    let msg = ckpt.save(&path).expect_err("shape mismatch").to_string();
    assert!(msg.contains("w") && msg.contains("[2, 3]"), "{msg}");
    assert!(!path.exists());
}

#[test]
fn missing_file_error_names_the_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let msg = load_error(&dir.path().join("nope.bin"));
    assert!(msg.contains("nope.bin"), "{msg}");
}

#[test]
fn resume_through_file_continues_training_bit_exactly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("run.ckpt");
    let config = AdamWConfig {
        beta1: 0.9,
        beta2: 0.95,
        eps: 1.000000000000001e-8,
        weight_decay: 0.1,
    };
    let specs = vec![
        ParamSpec::new("w", vec![4, 8]),
        ParamSpec::new("norm", vec![8]),
    ];
    let grads = |rng: &mut Rng| -> Vec<Vec<f32>> {
        vec![
            (0..32).map(|_| rng.next_f32() - 0.5).collect(),
            (0..8).map(|_| rng.next_f32() - 0.5).collect(),
        ]
    };
    let mut rng = Rng::new(3);
    let mut opt = AdamW::new(config, specs);
    let mut params = vec![vec![0.3f32; 32], vec![1.0f32; 8]];
    for _ in 0..4 {
        let g = grads(&mut rng);
        opt.step(&mut params, &g, 3.3e-4).expect("step");
    }
    let mut ckpt = Checkpoint::new(4, json!({}));
    ckpt.push("w", vec![4, 8], params[0].clone());
    ckpt.push("norm", vec![8], params[1].clone());
    ckpt.set_optimizer(&opt);
    ckpt.header.rng = Some(rng.state());
    ckpt.save(&path).expect("save");

    let back = Checkpoint::load(&path).expect("load");
    let mut opt2 = back.optimizer().expect("optimizer").expect("present");
    let mut rng2 = Rng::from_state(back.header.rng.expect("rng"));
    let mut params2 = vec![
        back.tensor("w").expect("w").data.clone(),
        back.tensor("norm").expect("n").data.clone(),
    ];
    for _ in 0..4 {
        let (g, g2) = (grads(&mut rng), grads(&mut rng2));
        opt.step(&mut params, &g, 3.3e-4).expect("step");
        opt2.step(&mut params2, &g2, 3.3e-4).expect("step");
    }
    let bits = |p: &[Vec<f32>]| -> Vec<u32> { p.iter().flatten().map(|x| x.to_bits()).collect() };
    assert_eq!(bits(&params), bits(&params2));
}
