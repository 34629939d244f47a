//! A step that fails changes nothing a checkpoint holds: after the token file is truncated
//! under a running run, the step reports the read error and the run keeps its step count and
//! data position, so the checkpoint saved then resumes exactly.

use models::load::LoadedModel;
use models::ModelConfig;
use runtime::Emulator;
use train::native::Precision;
use train::run::{Run, RunConfig, Safety};
use train::{write_tokens, AdamWConfig, TokenFile};

#[test]
fn a_step_whose_data_cannot_be_read_leaves_the_run_where_it_was() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("tokens.bin");
    let tokens: Vec<u32> = (0..20_000).map(|i| (i * 7 % 256) as u32).collect();
    write_tokens(&path, &tokens, 256).expect("write");
    let model = LoadedModel::random(&ModelConfig::from_preset("llama-tiny").unwrap(), 0);
    let config = RunConfig {
        steps: 10,
        batch: 2,
        seq: 16,
        accumulation: 2,
        lr: 1e-3,
        min_lr: 1e-4,
        warmup: 0,
        adamw: AdamWConfig::default(),
        clip: 1.0,
        seed: 3,
        random_order: true,
        safety: Safety::default(),
        loss_scale: 1024.0,
        fp16: false,
        native: Some(Precision::F32),
    };
    let file = TokenFile::open(&path).expect("open");
    let mut run = Run::new(model, Emulator::new(), file, config).expect("run");
    run.step().expect("first step");
    let before = run.checkpoint().expect("checkpoint");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .and_then(|f| f.set_len(64))
        .expect("truncate");
    let err = run.step().expect_err("the data is gone").to_string();
    assert!(err.contains("truncated or replaced"), "{err}");
    let after = run.checkpoint().expect("checkpoint");
    assert_eq!(after.header.step, before.header.step);
    assert_eq!(
        after.header.data, before.header.data,
        "the data position moved"
    );
}
