//! Cast folding: removes casts that change nothing, never at program boundaries.

use crate::graph::{Graph, NodeId, Op};
use mil::DType;

/// Removes casts to the operand's own dtype, and round trips `cast(cast(x, wide), narrow)`
/// that return `x` exactly (fp16 → fp32 → fp16). A cast that reads a program input or is a
/// program output is kept: it defines the program's interface.
pub fn fold_casts(g: &Graph) -> Graph {
    let mut replace: Vec<NodeId> = g.ids().collect();
    for id in g.ids() {
        let n = g.node(id);
        let Op::Cast { dtype } = n.op else { continue };
        let x = n.inputs[0];
        if g.is_output(id) || matches!(g.node(x).op, Op::Input { .. }) {
            continue;
        }
        let source = g.ty(x).dtype;
        if source == dtype {
            replace[id.index()] = x;
            continue;
        }
        if let Op::Cast { dtype: mid } = g.node(x).op {
            let inner = g.node(x).inputs[0];
            if g.ty(inner).dtype == dtype
                && widens(dtype, mid)
                && !matches!(g.node(inner).op, Op::Input { .. })
            {
                replace[id.index()] = inner;
            }
        }
    }
    let keep = vec![true; g.nodes.len()];
    super::eliminate_dead_code(&g.rebuild(&keep, &replace))
}

/// True when every value of `from` is exactly representable in `to`.
fn widens(from: DType, to: DType) -> bool {
    matches!(
        (from, to),
        (DType::Fp16, DType::Fp32)
            | (
                DType::Int8 | DType::UInt8,
                DType::Int32 | DType::Fp16 | DType::Fp32
            )
    )
}
