//! Helpers shared by the `orion` end-to-end tests.

use std::path::PathBuf;
use std::process::{Command, Output};

/// Runs the `orion` binary with `args`.
pub fn orion(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_orion"))
        .args(args)
        .output()
        .unwrap()
}

/// A fresh, empty directory for one test.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("orion-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
