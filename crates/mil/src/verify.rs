//! The MIL verifier (being written).

use crate::ast::Program;
use crate::diag::Diagnostics;
use crate::error::{Error, Result};

/// Switches for the verifier's catalog rules.
#[derive(Clone, Debug)]
pub struct VerifyOptions {
    /// Reject `rsqrt`/`sqrt` applied directly to a reduction's result (C20, unconfirmed on hardware).
    pub reject_rsqrt_after_reduction: bool,
    /// Reject `conv` with this many input channels or more (C19).
    pub max_conv_input_channels: usize,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            reject_rsqrt_after_reduction: true,
            max_conv_input_channels: 32_000,
        }
    }
}

/// Checks a program and returns every finding.
pub fn verify(_program: &Program, _options: &VerifyOptions) -> Diagnostics {
    Diagnostics::default()
}

/// Checks a program and fails with all errors if there are any.
pub fn check(program: &Program, options: &VerifyOptions) -> Result<Diagnostics> {
    let d = verify(program, options);
    if d.has_errors() {
        Err(Error::Verify(d))
    } else {
        Ok(d)
    }
}
