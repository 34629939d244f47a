//! Common-subexpression elimination: one node per distinct computation.

use crate::graph::{Graph, NodeId, Op};
use std::collections::HashMap;

/// Merges nodes that apply the same op to the same operands, and equal unnamed constants.
/// Inputs and named weights are never merged: they are distinct by identity.
pub fn eliminate_common_subexpressions(g: &Graph) -> Graph {
    let mut replace: Vec<NodeId> = g.ids().collect();
    let mut seen: HashMap<String, NodeId> = HashMap::new();
    for id in g.ids() {
        let n = g.node(id);
        match &n.op {
            Op::Input { .. }
            | Op::Const {
                weight: Some(_), ..
            } => continue,
            _ => {}
        }
        let inputs: Vec<NodeId> = n.inputs.iter().map(|i| replace[i.index()]).collect();
        // The Debug form of an op is a complete, exact key (floats print round-trip).
        let key = format!("{:?}|{:?}|{:?}", n.op, inputs, n.ty);
        match seen.get(&key) {
            Some(&first) => replace[id.index()] = first,
            None => {
                seen.insert(key, id);
            }
        }
    }
    let keep = vec![true; g.nodes.len()];
    super::eliminate_dead_code(&g.rebuild(&keep, &replace))
}
