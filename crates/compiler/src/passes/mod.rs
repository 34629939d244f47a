//! The optimization pipeline: one straight-line list of named passes over the graph IR.
//!
//! In debug builds the graph is checked after every pass; with `ORION_DUMP_PASSES` set
//! (to `1`, or to a directory), the graph is printed after each pass to stderr or to
//! `DIR/NN-pass.txt`.

mod cast_fold;
mod const_fold;
mod cse;
mod dce;
mod identity;
mod legalize;

pub use cast_fold::fold_casts;
pub use const_fold::fold_constants;
pub use cse::eliminate_common_subexpressions;
pub use dce::eliminate_dead_code;
pub use identity::eliminate_identities;
pub use legalize::legalize_conv_bias;

use crate::error::Result;
use crate::graph::Graph;

/// A graph-to-graph transformation.
pub type Pass = fn(&Graph) -> Graph;

/// The pipeline, in order.
pub const PIPELINE: &[(&str, Pass)] = &[
    ("legalize-conv-bias", legalize_conv_bias),
    ("fold-constants", fold_constants),
    ("fold-casts", fold_casts),
    ("eliminate-identities", eliminate_identities),
    (
        "eliminate-common-subexpressions",
        eliminate_common_subexpressions,
    ),
    ("eliminate-dead-code", eliminate_dead_code),
];

/// Runs every pass of [`PIPELINE`] once, in order.
pub fn optimize(graph: &Graph) -> Result<Graph> {
    let dump = std::env::var("ORION_DUMP_PASSES").ok();
    let mut g = graph.clone();
    for (i, (name, pass)) in PIPELINE.iter().enumerate() {
        g = pass(&g);
        if cfg!(debug_assertions) {
            g.check()
                .map_err(|e| crate::Error::Graph(format!("after pass {name}: {e}")))?;
        }
        if let Some(target) = dump.as_deref() {
            dump_graph(target, i, name, &g);
        }
    }
    Ok(g)
}

fn dump_graph(target: &str, index: usize, name: &str, g: &Graph) {
    let text = format!("{g}");
    if target == "1" {
        eprintln!("=== after {name} ===\n{text}");
    } else {
        let path = std::path::Path::new(target).join(format!("{index:02}-{name}.txt"));
        if let Err(e) = std::fs::create_dir_all(target).and_then(|_| std::fs::write(&path, text)) {
            eprintln!("ORION_DUMP_PASSES: cannot write {}: {e}", path.display());
        }
    }
}
