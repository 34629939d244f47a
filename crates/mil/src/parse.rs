//! The MIL text parser (being written).

use crate::ast::Program;
use crate::error::{Error, Result};

/// Parses MIL text into a program.
pub fn parse_program(_text: &str) -> Result<Program> {
    Err(Error::Parse {
        line: 1,
        col: 1,
        message: "parser not written yet".to_string(),
    })
}
