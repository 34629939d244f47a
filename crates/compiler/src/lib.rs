//! Orion's graph compiler: graph IR, builder, shape inference, passes, ANE validation and
//! lowering to MIL text plus weight blobs.

pub mod autodiff;
pub mod builder;
mod display;
pub mod error;
pub mod graph;
pub mod infer;
pub mod lower;
pub mod nn;
pub mod passes;
pub mod validate;

pub use builder::{GraphBuilder, WeightMode};
pub use error::{Error, Result};
pub use graph::{Graph, NodeId};
pub use lower::Lowered;

use mil::bundle::ProgramBundle;
use mil::Diagnostics;

/// A compiled kernel: the MIL program, its bundle (text + weights) and validation warnings.
#[derive(Clone, Debug)]
pub struct Compiled {
    pub program: mil::Program,
    pub bundle: ProgramBundle,
    pub warnings: Diagnostics,
}

/// Optimizes, lowers and validates a graph; fails if the program would not run on the device.
pub fn compile(graph: &Graph) -> Result<Compiled> {
    let optimized = passes::optimize(graph)?;
    let Lowered { program, bundle } = lower::lower(&optimized)?;
    let diagnostics = validate::validate(&program, &mil::verify::VerifyOptions::default());
    if diagnostics.has_errors() {
        return Err(Error::Invalid {
            pass: "ane-validate".to_string(),
            diagnostics,
        });
    }
    Ok(Compiled {
        program,
        bundle,
        warnings: diagnostics,
    })
}
