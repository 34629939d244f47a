//! Dead-code elimination: drops nodes that no output depends on.

use crate::graph::{Graph, NodeId};

/// Removes every node that does not reach an output (program inputs are kept: they are
/// part of the program's interface).
pub fn eliminate_dead_code(g: &Graph) -> Graph {
    let mut live = vec![false; g.nodes.len()];
    for (_, o) in &g.outputs {
        live[o.index()] = true;
    }
    for id in g.ids().rev() {
        if live[id.index()] {
            for i in &g.node(id).inputs {
                live[i.index()] = true;
            }
        }
    }
    for (_, id) in g.inputs() {
        live[id.index()] = true;
    }
    let identity: Vec<NodeId> = g.ids().collect();
    g.rebuild(&live, &identity)
}
