//! The error type of the compiler crate.

/// What can go wrong building, transforming or lowering a graph.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An op applied to operands of the wrong shape or dtype.
    #[error("{op}: {message}")]
    Shape { op: String, message: String },
    /// A malformed graph (dangling id, duplicate name, missing output).
    #[error("invalid graph: {0}")]
    Graph(String),
    /// The emitted program failed MIL verification or ANE validation.
    #[error("{pass}: emitted program is invalid:\n{diagnostics}")]
    Invalid {
        pass: String,
        diagnostics: mil::Diagnostics,
    },
    /// An error from the MIL layer (printing, parsing, blobs).
    #[error(transparent)]
    Mil(#[from] mil::Error),
}

/// Result with the compiler's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A shape error for `op`.
pub(crate) fn shape_err<T>(op: &str, message: impl Into<String>) -> Result<T> {
    Err(Error::Shape {
        op: op.to_string(),
        message: message.into(),
    })
}
