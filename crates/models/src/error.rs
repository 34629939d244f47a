//! The error type of the models crate.

use std::path::PathBuf;

/// What can go wrong building a model's kernels or reading and writing its weights.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An unknown kernel, preset or bad parameter, with what would be accepted.
    #[error("{0}")]
    Invalid(String),
    /// A kernel that failed to build or compile.
    #[error(transparent)]
    Compile(#[from] compiler::Error),
    /// A file that could not be opened, read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A model directory without a file it needs.
    #[error("no {file} in {dir}")]
    MissingFile { file: String, dir: PathBuf },
    /// A checkpoint or config file whose contents are malformed or unsupported.
    #[error("{path}: {message}")]
    Format { path: PathBuf, message: String },
    /// A checkpoint without a tensor the model needs.
    #[error("{path}: missing tensor {name}")]
    MissingTensor { path: PathBuf, name: String },
    /// A checkpoint tensor whose shape disagrees with the config.
    #[error("{path}: tensor {name} has shape {found:?}, expected {expected:?}")]
    Shape {
        path: PathBuf,
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
}

impl Error {
    /// A [`Error::Format`] for `path`.
    pub fn format(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Format {
            path: path.into(),
            message: message.into(),
        }
    }

    /// An [`Error::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// Result with the models crate's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
