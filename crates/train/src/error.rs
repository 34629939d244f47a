//! The error type of the `train` crate.

/// Everything that can go wrong preparing data, stepping the optimizer or saving a run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O failure on a named file.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A token file that is malformed or does not fit the vocabulary.
    #[error("token file {path}: {message}")]
    Tokens { path: String, message: String },
    /// A checkpoint that is truncated, corrupted, of another version or inconsistent.
    #[error("checkpoint {path}: {message}")]
    Checkpoint { path: String, message: String },
    /// A data loader asked for something the token stream cannot give.
    #[error("data loader: {0}")]
    Loader(String),
    /// Optimizer state or inputs that do not match the parameters.
    #[error("optimizer: {0}")]
    Optimizer(String),
    /// A training setup or pass that cannot run (bad shapes, compile or device failures).
    #[error("{0}")]
    Invalid(String),
    /// A metrics log that cannot be read back.
    #[error("metrics log {path}: {message}")]
    Metrics { path: String, message: String },
}

impl Error {
    /// Wraps an I/O error with the file it concerns.
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

/// Result with the crate's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
