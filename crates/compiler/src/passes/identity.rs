//! Identity elimination: removes ops that return their operand unchanged.

use crate::graph::{Binary, Graph, NodeId, Op, Unary};

/// Removes `identity`, same-shape `reshape`, identity-permutation `transpose`, whole-tensor
/// slices and multiplication by a scalar constant 1, and merges chains of reshapes.
/// Uses of a removed node are redirected to its operand.
pub fn eliminate_identities(g: &Graph) -> Graph {
    let mut g = g.clone();
    // reshape(reshape(x)) -> reshape(x): point the outer reshape at the inner operand.
    for id in g.ids().collect::<Vec<_>>() {
        if let Op::Reshape { .. } = g.node(id).op {
            let inner = g.node(id).inputs[0];
            if let Op::Reshape { .. } = g.node(inner).op {
                let source = g.node(inner).inputs[0];
                g.nodes[id.index()].inputs[0] = source;
            }
        }
    }
    let mut replace: Vec<NodeId> = g.ids().collect();
    for id in g.ids() {
        if let Some(target) = passthrough(&g, id) {
            replace[id.index()] = target;
        }
    }
    let keep = vec![true; g.nodes.len()];
    super::eliminate_dead_code(&g.rebuild(&keep, &replace))
}

/// The operand that `id` passes through unchanged, if it does.
fn passthrough(g: &Graph, id: NodeId) -> Option<NodeId> {
    let n = g.node(id);
    let x = *n.inputs.first()?;
    let same_type = g.ty(x) == &n.ty;
    let is = match &n.op {
        Op::Unary(Unary::Identity) | Op::Reshape { .. } | Op::Slice { .. } => same_type,
        Op::Transpose { perm } => perm.iter().enumerate().all(|(i, &p)| i == p),
        Op::Binary(Binary::Mul) => {
            let one = |k: NodeId| {
                g.const_data(k)
                    .is_some_and(|c| c.shape.is_empty() && c.values == [1.0])
            };
            if same_type && one(n.inputs[1]) {
                return Some(x);
            }
            if g.ty(n.inputs[1]) == &n.ty && one(x) {
                return Some(n.inputs[1]);
            }
            false
        }
        _ => false,
    };
    is.then_some(x)
}
