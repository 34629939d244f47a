//! `orion train`, `orion export` and `orion data prepare` end to end: files written, Ctrl-C
//! and SIGTERM leave a checkpoint that resumes, an existing run is not replaced unasked, and
//! an exported model runs in `orion infer`.

mod common;

use common::{orion, scratch};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn ok(o: &Output) {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

const SMALL: [&str; 10] = [
    "--batch",
    "2",
    "--seq",
    "16",
    "--device",
    "emulator",
    "--sample",
    "0",
    "--checkpoint-every",
    "2",
];

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |t| t.lines().count())
}

#[test]
fn train_writes_checkpoint_metrics_and_plot_and_exports_a_runnable_model() {
    let dir = scratch("basic");
    let out = dir.join("run");
    let mut args = vec!["train", "--steps", "4", "--out", out.to_str().unwrap()];
    args.extend(SMALL);
    ok(&orion(&args));
    assert_eq!(lines(&out.join("metrics.jsonl")), 4);
    assert!(std::fs::read_to_string(out.join("loss.svg"))
        .unwrap()
        .contains("<svg"));
    let ck = train::Checkpoint::load(&out.join("checkpoint.ckpt")).unwrap();
    assert_eq!(ck.header.step, 4);

    let model = dir.join("model");
    ok(&orion(&[
        "export",
        out.join("checkpoint.ckpt").to_str().unwrap(),
        "--out",
        model.to_str().unwrap(),
    ]));
    let o = orion(&[
        "infer",
        "--model",
        model.to_str().unwrap(),
        "--prompt-ids",
        "79,110,99,101",
        "--max-tokens",
        "5",
        "--json",
    ]);
    ok(&o);
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(json["generated_ids"].as_array().unwrap().len(), 5);
}

#[test]
fn ctrl_c_and_sigterm_save_a_checkpoint_that_resumes_and_exit_130() {
    let dir = scratch("interrupt");
    let out = dir.join("run");
    let mut args = vec!["train", "--steps", "100000", "--out", out.to_str().unwrap()];
    args.extend(SMALL);
    let interrupt_after = |args: &[&str], steps: usize, signal: &str| -> Output {
        let child = Command::new(env!("CARGO_BIN_EXE_orion"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        while lines(&out.join("metrics.jsonl")) < steps && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let o = interrupt_after(&args, 3, "-INT");
    assert_eq!(
        o.status.code(),
        Some(130),
        "Ctrl-C exits with 130 after checkpointing"
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("stopped at step"));
    // Without a terminal, progress lines reach the log from the first step.
    assert!(String::from_utf8_lossy(&o.stderr).contains("step 1/100000: loss"));
    let first = train::Checkpoint::load(&out.join("checkpoint.ckpt"))
        .unwrap()
        .header
        .step;
    assert!(
        first >= 3,
        "the checkpoint holds every finished step ({first})"
    );

    let ck = out.join("checkpoint.ckpt");
    let resume = [
        "train",
        "--resume",
        ck.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--device",
        "emulator",
        "--sample",
        "0",
    ];
    // SIGTERM checkpoints as Ctrl-C does.
    let o = interrupt_after(&resume, first as usize + 2, "-TERM");
    assert_eq!(
        o.status.code(),
        Some(130),
        "SIGTERM exits with 130 after checkpointing"
    );
    assert!(String::from_utf8_lossy(&o.stderr)
        .contains(&format!("resuming {} at step {first}", ck.display())));
    let second = train::Checkpoint::load(&ck).unwrap().header.step;
    assert!(second > first, "training continued: {first} -> {second}");
    assert_eq!(
        lines(&out.join("metrics.jsonl")),
        second as usize,
        "one metrics line per step, none lost or repeated"
    );
}

#[test]
fn data_prepare_writes_byte_tokens_and_rejects_a_bad_tokenizer() {
    let dir = scratch("data");
    let text = dir.join("story.txt");
    std::fs::write(&text, "Once upon a time.").unwrap();
    let out = dir.join("tokens.bin");
    ok(&orion(&[
        "data",
        "prepare",
        "--tokenizer",
        "bytes",
        text.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]));
    let tokens = train::TokenFile::open(&out).unwrap();
    assert_eq!(
        tokens.len(),
        "Once upon a time.".len() + 1,
        "the bytes and an end-of-text token"
    );
    assert_eq!(tokens.to_vec().unwrap()[0], u32::from(b'O'));
    let o = orion(&[
        "data",
        "prepare",
        "--tokenizer",
        text.to_str().unwrap(),
        text.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a tokenizer"));
}

#[test]
fn host_path_trains_with_bf16_products_and_precision_needs_it() {
    let dir = scratch("host-bf16");
    let out = dir.join("run");
    let o = orion(&[
        "train",
        "--steps",
        "3",
        "--batch",
        "2",
        "--seq",
        "16",
        "--device",
        "cpu",
        "--precision",
        "bf16",
        "--sample",
        "0",
        "--out",
        out.to_str().unwrap(),
    ]);
    ok(&o);
    assert!(String::from_utf8_lossy(&o.stderr).contains("host path"));
    assert_eq!(lines(&out.join("metrics.jsonl")), 3);
    let ck = train::Checkpoint::load(&out.join("checkpoint.ckpt")).unwrap();
    assert_eq!(ck.header.config["run"]["native"], "bf16");

    let o = orion(&["train", "--device", "emulator", "--precision", "bf16"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--precision applies to the host path"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn a_new_run_into_an_existing_run_is_refused_unless_forced() {
    let dir = scratch("overwrite");
    let out = dir.join("run");
    let mut args = vec!["train", "--steps", "2", "--out", out.to_str().unwrap()];
    args.extend(SMALL);
    ok(&orion(&args));
    let before = std::fs::read(out.join("checkpoint.ckpt")).unwrap();
    let metrics = std::fs::read(out.join("metrics.jsonl")).unwrap();
    let mut again = args.clone();
    again[2] = "3";
    let o = orion(&again);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("already holds a run") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(std::fs::read(out.join("checkpoint.ckpt")).unwrap(), before);
    assert_eq!(std::fs::read(out.join("metrics.jsonl")).unwrap(), metrics);
    again.push("--force");
    ok(&orion(&again));
    let ck = train::Checkpoint::load(&out.join("checkpoint.ckpt")).unwrap();
    assert_eq!(ck.header.step, 3);
    assert_eq!(lines(&out.join("metrics.jsonl")), 3);
}
