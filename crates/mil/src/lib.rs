//! The MIL language of the Apple Neural Engine: AST, op table, printer, parser, verifier and
//! the BLOBFILE weight format (`spec/ane.md` §2–§5).

pub mod ast;
pub mod blobfile;
pub mod bundle;
pub mod diag;
pub mod error;
mod lex;
pub mod ops;
pub mod parse;
pub mod print;
pub mod typing;
pub mod verify;

pub use ast::{
    Arg, DType, Function, Literal, Operation, Param, Program, Scalar, Span, TensorData, TensorType,
    ValueType,
};
pub use diag::{Diagnostic, Diagnostics, Rule, Severity};
pub use error::{Error, Result};
pub use ops::{OpDef, OpKind};
