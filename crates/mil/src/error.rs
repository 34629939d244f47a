//! The error type of the `mil` crate.

use crate::diag::Diagnostics;

/// Everything that can go wrong reading, checking or writing MIL and its weights.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// MIL text that does not parse; `line:col` is 1-based.
    #[error("{line}:{col}: {message}")]
    Parse {
        line: u32,
        col: u32,
        message: String,
    },
    /// A program that parses but breaks the type rules or the catalog.
    #[error("program is invalid:\n{0}")]
    Verify(Diagnostics),
    /// A malformed or inconsistent BLOBFILE.
    #[error("blob file{}: {message}", path.as_deref().map(|p| format!(" {p}")).unwrap_or_default())]
    Blob {
        path: Option<String>,
        message: String,
    },
    /// An I/O failure on a named file.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Result with the crate's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
