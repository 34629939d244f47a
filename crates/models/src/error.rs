//! The error type of the models crate.

/// What can go wrong building a model's kernels.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An unknown kernel, preset or bad parameter, with what would be accepted.
    #[error("{0}")]
    Invalid(String),
    /// A kernel that failed to build or compile.
    #[error(transparent)]
    Compile(#[from] compiler::Error),
}

/// Result with the models crate's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
