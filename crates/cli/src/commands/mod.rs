//! One module per subcommand.

pub mod bench;
pub mod compile;
pub mod data;
pub mod device;
pub mod eval;
pub mod export;
pub mod infer;
pub mod init;
pub mod train;

/// Parses a `--threads` value: 1 to [`cpu::threads::MAX_THREADS`].
pub fn thread_count(s: &str) -> Result<usize, String> {
    let n: usize = s.parse().map_err(|e| format!("{e}"))?;
    if (1..=cpu::threads::MAX_THREADS).contains(&n) {
        Ok(n)
    } else {
        Err(format!(
            "{n} threads: give 1 to {}",
            cpu::threads::MAX_THREADS
        ))
    }
}

/// Parses a count that must be at least 1.
pub fn positive(s: &str) -> Result<u64, String> {
    match s.parse::<u64>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("{e}")),
    }
}

/// The error of a command stopped by Ctrl-C or SIGTERM after saving its work: the process
/// exits with 130, as shells expect of an interrupted program.
#[derive(Debug)]
pub struct Interrupted;

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("interrupted")
    }
}

impl std::error::Error for Interrupted {}
