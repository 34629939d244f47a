//! The error type of the runtime crate.

use mil::Rule;

/// What can go wrong compiling or evaluating a program on a device.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The device refused the program at compile time (parse, type, catalog or weight errors).
    #[error("compile failed: {0}")]
    Compile(String),
    /// The device failed an evaluation; `rule` names the catalog constraint when known.
    #[error("eval failed{}: {message}", rule.map(|r| format!(" [{r}]")).unwrap_or_default())]
    Eval { rule: Option<Rule>, message: String },
    /// The per-process compile budget (C5) is spent.
    #[error("compile budget exhausted: {used} of {budget} compiles used in this process [C5]; restart the process or raise the budget")]
    Budget { used: usize, budget: usize },
    /// Too many programs are loaded at once (C23).
    #[error("{loaded} programs are loaded, the limit is {limit} [C23]; unload one first")]
    Loaded { loaded: usize, limit: usize },
    /// A handle that this device did not issue or has already unloaded.
    #[error("unknown program handle {0}")]
    Handle(u64),
    /// The requested device cannot be used on this machine.
    #[error("{0}")]
    Unavailable(String),
    /// Wrong inputs or outputs handed to a session (names, shapes, sizes).
    #[error("{0}")]
    Binding(String),
}

/// Result with the runtime's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An eval error citing `rule`.
pub(crate) fn eval_err<T>(rule: Option<Rule>, message: impl Into<String>) -> Result<T> {
    Err(Error::Eval {
        rule,
        message: message.into(),
    })
}
