//! Errors of the cpu crate.

use crate::level::Level;

/// What went wrong choosing or using a kernel level.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// `ORION_CPU` (or a caller) named no known level.
    #[error("unknown CPU level {0:?} (ORION_CPU); known: portable, avx2, avx512, neon")]
    UnknownLevel(String),
    /// A weight precision name that is not f16 or f32.
    #[error("unknown precision {0:?}; known: f16, f32")]
    UnknownPrecision(String),
    /// The level needs instructions this CPU lacks.
    #[error("this CPU cannot run the {level} kernels: they need {requirement} (ORION_CPU)")]
    Unsupported {
        level: Level,
        requirement: &'static str,
    },
}

/// A result of this crate.
pub type Result<T> = std::result::Result<T, Error>;
