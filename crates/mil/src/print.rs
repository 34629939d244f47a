//! The MIL text printer (being written).

use crate::ast::Program;

/// Prints a program as MIL text.
pub fn print_program(_program: &Program) -> String {
    String::new()
}
