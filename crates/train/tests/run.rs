//! Training runs on the emulator: bit-exact resume from a checkpoint, learning on the built-in
//! corpus, and the fp16 safety switches (NaN without them, none with them).

use models::llama;
use models::load::LoadedModel;
use runtime::Emulator;
use train::corpus::{builtin_corpus, ByteTokenizer};
use train::native::Precision;
use train::params::tensors;
use train::run::{Run, RunConfig, Safety};
use train::{AdamWConfig, Checkpoint, TokenFile};

fn tiny_model() -> LoadedModel {
    let config = llama::Config {
        dim: 32,
        hidden_dim: 64,
        n_layers: 2,
        n_heads: 2,
        n_kv_heads: 2,
        vocab_size: ByteTokenizer::VOCAB_SIZE,
        seq_len: 64,
        norm_eps: 1e-5,
        rope_theta: 10000.0,
    };
    LoadedModel::Llama(llama::Weights::random(&config, 5))
}

fn corpus() -> TokenFile {
    TokenFile::from_tokens(ByteTokenizer.encode_corpus(&builtin_corpus(40_000, 1)))
}

fn config(steps: u64, fp16: bool) -> RunConfig {
    RunConfig {
        steps,
        batch: 2,
        seq: 16,
        accumulation: 2,
        lr: 3e-3,
        min_lr: 3e-4,
        warmup: 2,
        adamw: AdamWConfig::default(),
        clip: 1.0,
        seed: 9,
        random_order: true,
        safety: Safety::default(),
        loss_scale: 1024.0,
        fp16,
        native: None,
    }
}

fn weights(run: &Run<Emulator>) -> Vec<Vec<f32>> {
    tensors(run.model()).into_iter().cloned().collect()
}

/// Runs 6 steps straight, and 3 + checkpoint + resume + 3: identical losses and weights.
fn check_resume(cfg: RunConfig) {
    let mut straight = Run::new(tiny_model(), Emulator::new(), corpus(), cfg.clone()).unwrap();
    let losses: Vec<f32> = (0..6).map(|_| straight.step().unwrap().loss).collect();

    let mut first = Run::new(tiny_model(), Emulator::new(), corpus(), cfg).unwrap();
    for l in &losses[..3] {
        assert_eq!(first.step().unwrap().loss, *l);
    }
    let path = std::env::temp_dir().join(format!(
        "orion-resume-{}-{:?}.ckpt",
        std::process::id(),
        std::thread::current().id()
    ));
    first.checkpoint().unwrap().save(&path).unwrap();
    let loaded = Checkpoint::load(&path).unwrap();
    let mut resumed = Run::resume(&loaded, Emulator::new(), corpus()).unwrap();
    assert_eq!(resumed.step_count(), 3);
    for l in &losses[3..] {
        assert_eq!(
            resumed.step().unwrap().loss.to_bits(),
            l.to_bits(),
            "resumed losses are identical"
        );
    }
    assert_eq!(
        weights(&resumed),
        weights(&straight),
        "and so are the weights"
    );
    let _ = std::fs::remove_file(path);
}

#[test]
fn resume_from_a_checkpoint_continues_bit_exactly() {
    check_resume(config(6, true));
}

#[test]
fn resume_on_the_native_host_path_continues_bit_exactly() {
    let mut cfg = config(6, false);
    cfg.native = Some(Precision::Bf16);
    check_resume(cfg);
}

#[test]
fn loss_falls_on_the_builtin_corpus() {
    let mut cfg = config(40, false);
    cfg.native = Some(Precision::F32);
    let mut run = Run::new(tiny_model(), Emulator::new(), corpus(), cfg).unwrap();
    let losses: Vec<f32> = (0..40).map(|_| run.step().unwrap().loss).collect();
    let first: f32 = losses[..5].iter().sum::<f32>() / 5.0;
    let last: f32 = losses[35..].iter().sum::<f32>() / 5.0;
    println!("loss {first:.3} -> {last:.3}");
    assert!(last < first - 1.0, "loss {first} -> {last}");
}

/// fp16 training with a loss scale far too large for the gradients: every backward overflows.
fn stress(safety: Safety) -> (Vec<f32>, bool, usize) {
    let mut cfg = config(8, true);
    cfg.safety = safety;
    cfg.loss_scale = 16_777_216.0;
    let mut run = Run::new(tiny_model(), Emulator::new(), corpus(), cfg).unwrap();
    let mut losses = Vec::new();
    let mut skipped = 0;
    for _ in 0..8 {
        let r = run.step().unwrap();
        losses.push(r.loss);
        skipped += usize::from(r.skipped);
    }
    let finite_weights = tensors(run.model())
        .iter()
        .all(|t| t.iter().all(|v| v.is_finite()));
    (losses, finite_weights, skipped)
}

#[test]
fn fp16_safety_turns_nan_training_into_clean_training() {
    let off = Safety {
        clamp: false,
        sanitize: false,
        loss_scaling: false,
    };
    let (losses, finite, _) = stress(off);
    assert!(
        !finite || losses.iter().any(|l| !l.is_finite()),
        "without safety the run goes non-finite: {losses:?}"
    );

    let (losses, finite, skipped) = stress(Safety::default());
    assert!(
        finite && losses.iter().all(|l| l.is_finite()),
        "with safety: {losses:?}"
    );
    assert!(skipped > 0, "overflowing steps were skipped, not applied");
}

#[test]
fn bad_configurations_are_clear_errors() {
    let err = |cfg: RunConfig| {
        Run::new(tiny_model(), Emulator::new(), corpus(), cfg)
            .err()
            .expect("refused")
            .to_string()
    };
    let mut long = config(1, false);
    long.seq = 65;
    assert!(err(long).contains("exceeds the model's context of 64"));
    let mut empty = config(1, false);
    empty.batch = 0;
    assert!(err(empty).contains("must all be positive"));
    let mut negative = config(1, false);
    negative.lr = -1e-3;
    assert!(err(negative).contains("learning rates"));
    let wrong_vocab = TokenFile::from_tokens(vec![300; 100]);
    let e = Run::new(tiny_model(), Emulator::new(), wrong_vocab, config(1, false))
        .err()
        .expect("refused");
    assert!(e.to_string().contains("300"), "{e}");
}
