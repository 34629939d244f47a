//! The `orion` binary end to end: compile a kernel, evaluate programs with `.npy` files
//! (checked against numpy), and one clear error line for bad input.

mod common;

use common::{orion, scratch};
use std::path::Path;
use std::process::Output;

/// `orion eval` of the fixture program with both fixture inputs on `device`.
fn eval_fixture(out: &Path, device: &str) -> Output {
    let (x, bias) = (
        format!("x={}", fixture("x.npy")),
        format!("bias={}", fixture("bias.npy")),
    );
    let program = fixture("program");
    let out = out.to_str().unwrap();
    orion(&[
        "eval", &program, "--input", &x, "--input", &bias, "--out", out, "--device", device,
    ])
}

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/eval")
        .join(name)
        .display()
        .to_string()
}

/// The fp16 values of a `.npy` file's data section (the last `n` elements).
fn fp16_tail(path: &Path, n: usize) -> Vec<u16> {
    let bytes = std::fs::read(path).unwrap();
    bytes[bytes.len() - 2 * n..]
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

#[test]
fn compile_writes_a_program_directory_that_parses() {
    let out = scratch("compile");
    let o = orion(&[
        "compile",
        "gpt2.prefill_ffn",
        "--preset",
        "gpt2-tiny",
        "--bucket",
        "32",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mil = std::fs::read_to_string(out.join("model.mil")).unwrap();
    let program = mil::parse::parse_program(&mil).unwrap();
    assert!(!mil::verify::verify(&program, &Default::default()).has_errors());
    assert!(out.join("weights/weight.bin").exists());
}

#[test]
fn eval_binds_by_name_and_matches_numpy() {
    let out = scratch("eval");
    let o = eval_fixture(&out, "emulator");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("device: emulator"),
        "says which device: {}",
        stderr(&o)
    );
    let n = 64 * 8;
    assert_eq!(
        fp16_tail(&out.join("z.npy"), n),
        fp16_tail(Path::new(&fixture("z_expected.npy")), n)
    );
    let (got, want) = (
        fp16_tail(&out.join("s.npy"), n),
        fp16_tail(Path::new(&fixture("s_expected.npy")), n),
    );
    for (g, w) in got.iter().zip(&want) {
        assert!(
            g.abs_diff(*w) <= 1,
            "sigmoid within one fp16 ulp of numpy: {g:04x} vs {w:04x}"
        );
    }
}

#[test]
fn bad_inputs_give_one_clear_error_line() {
    let out = scratch("bad");
    let out = out.to_str().unwrap();
    let x = format!("x={}", fixture("x.npy"));
    let cases: [(Vec<String>, &str); 5] = [
        (vec![x.clone()], "missing inputs [\"bias\"]"),
        (
            vec![x.clone(), format!("nope={}", fixture("x.npy"))],
            "no input \"nope\"",
        ),
        (
            vec![x.clone(), format!("bias={}", fixture("x.npy"))],
            "has shape [1, 64, 1, 8], the program declares [1, 64, 1, 1]",
        ),
        (
            vec![x.clone(), "bias=/nonexistent.npy".to_string()],
            "/nonexistent.npy",
        ),
        (vec!["x".to_string()], "must be NAME=FILE.npy"),
    ];
    for (inputs, expected) in cases {
        let mut args = vec![
            "eval".to_string(),
            fixture("program"),
            "--out".to_string(),
            out.to_string(),
        ];
        for i in inputs {
            args.push("--input".to_string());
            args.push(i);
        }
        let o = orion(&args.iter().map(String::as_str).collect::<Vec<_>>());
        let err = stderr(&o);
        assert!(!o.status.success());
        assert!(err.contains(expected), "expected {expected:?} in {err:?}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err:?}");
    }
    let o = orion(&["eval", "/nonexistent-dir", "--out", out]);
    assert!(stderr(&o).contains("model.mil"), "{}", stderr(&o));
}

#[test]
fn asking_for_the_ane_off_a_mac_says_why() {
    if cfg!(target_os = "macos") {
        println!("skipped: this test checks the message off Apple hardware");
        return;
    }
    let o = eval_fixture(&scratch("ane"), "ane");
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("Apple Neural Engine not available"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn orion_cpu_forces_a_level_refuses_one_the_cpu_lacks_and_reports_the_level_used() {
    let dir = scratch("cpu-level");
    let model = dir.join("m");
    assert!(orion(&[
        "init",
        "--preset",
        "gpt2-tiny",
        "--out",
        model.to_str().unwrap()
    ])
    .status
    .success());
    let run = |level: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_orion"))
            .env("ORION_CPU", level)
            .args(["infer", "--model", model.to_str().unwrap()])
            .args([
                "--prompt-ids",
                "1,2,3",
                "--max-tokens",
                "3",
                "--temperature",
                "0",
                "--json",
            ])
            .output()
            .unwrap()
    };
    let bad = run("sse9");
    assert!(!bad.status.success());
    assert!(
        stderr(&bad).contains("unknown CPU level \"sse9\""),
        "{}",
        stderr(&bad)
    );
    #[cfg(target_arch = "x86_64")]
    {
        let lacking = run("neon");
        assert!(!lacking.status.success());
        assert!(
            stderr(&lacking).contains("need aarch64"),
            "{}",
            stderr(&lacking)
        );
    }
    let mut outputs = Vec::new();
    for cpu in cpu::Cpu::available() {
        let o = run(cpu.level().name());
        assert!(o.status.success(), "{}", stderr(&o));
        let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert!(json["cpu_level"]
            .as_str()
            .unwrap()
            .starts_with(cpu.level().name()));
        outputs.push(json["generated_ids"].clone());
    }
    // Greedy ids of a tiny model are the same whichever level computed them.
    assert!(outputs.windows(2).all(|w| w[0] == w[1]), "{outputs:?}");
}

#[test]
fn bad_counts_and_hyperparameters_are_refused_before_any_file_is_touched() {
    let dir = scratch("bad-flags");
    let out = dir.join("run");
    std::fs::create_dir_all(&out).unwrap();
    let metrics = out.join("metrics.jsonl");
    std::fs::write(&metrics, "{\"step\":1}\n{\"step\":2}\n{\"step\":3}\n").unwrap();
    let out = out.to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (
            &["train", "--checkpoint-every", "0", "--out", out],
            "must be at least 1",
        ),
        (
            &["train", "--eps", "0", "--out", out],
            "eps must be positive",
        ),
        (
            &["train", "--beta2=-1", "--out", out],
            "beta2 must be in [0, 1)",
        ),
        (
            &["train", "--beta1", "2", "--out", out],
            "beta1 must be in [0, 1)",
        ),
        (
            &["train", "--clip=-1", "--out", out],
            "clipping norm must be ≥ 0",
        ),
        (
            &["train", "--weight-decay=-0.1", "--out", out],
            "weight decay must be ≥ 0",
        ),
        (
            &["train", "--steps", "0", "--out", out],
            "must all be positive",
        ),
        (&["bench", "training", "--steps", "0"], "must be at least 1"),
        (
            &["bench", "inference", "--threads", "100000"],
            "give 1 to 256",
        ),
        (
            &[
                "infer",
                "--model",
                out,
                "--prompt-ids",
                "1",
                "--threads",
                "0",
            ],
            "give 1 to 256",
        ),
    ];
    for (args, want) in cases {
        let o = orion(args);
        assert!(!o.status.success(), "{args:?} succeeded");
        assert!(stderr(&o).contains(want), "{args:?}: {}", stderr(&o));
        assert!(!stderr(&o).contains("panicked"), "{args:?}: {}", stderr(&o));
    }
    let kept = std::fs::read_to_string(&metrics).unwrap();
    assert_eq!(kept.lines().count(), 3, "metrics.jsonl was rewritten");
    assert_eq!(
        std::fs::read_dir(dir.join("run")).unwrap().count(),
        1,
        "files were written"
    );
}

#[test]
fn init_help_lists_the_tiny_preset_and_eval_refuses_an_input_given_twice() {
    let help = orion(&["init", "--help"]);
    assert!(String::from_utf8_lossy(&help.stdout).contains("tiny  "));
    let dir = scratch("eval-twice");
    let out = dir.join("k");
    assert!(orion(&[
        "compile",
        "gpt2.prefill_ffn",
        "--bucket",
        "32",
        "--out",
        out.to_str().unwrap()
    ])
    .status
    .success());
    let o = orion(&[
        "eval",
        out.to_str().unwrap(),
        "--input",
        "x=a.npy",
        "--input",
        "x=b.npy",
        "--out",
        dir.join("r").to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("given twice"), "{}", stderr(&o));
}
