//! Conv-bias legalization: the device's `conv` has no bias (C16), so `conv(x, w, b)` becomes
//! `add(conv(x, w), reshape(b))`, keeping the bias.

use crate::graph::{Binary, Graph, Node, NodeId, Op};
use mil::TensorType;

/// Rewrites every biased conv as a conv followed by an add of the bias as `[1, Cout, 1, 1]`.
pub fn legalize_conv_bias(g: &Graph) -> Graph {
    let mut out = Graph::default();
    let mut remap: Vec<NodeId> = Vec::with_capacity(g.nodes.len());
    let push = |out: &mut Graph, node: Node| {
        out.nodes.push(node);
        NodeId(out.nodes.len() as u32 - 1)
    };
    for n in &g.nodes {
        let inputs: Vec<NodeId> = n.inputs.iter().map(|i| remap[i.index()]).collect();
        let new_id = match (&n.op, inputs.as_slice()) {
            (Op::Conv(p), &[x, w, b]) => {
                let conv = push(
                    &mut out,
                    Node {
                        op: Op::Conv(p.clone()),
                        inputs: vec![x, w],
                        ty: n.ty.clone(),
                        name: n.name.as_ref().map(|s| format!("{s}_nobias")),
                    },
                );
                let cout = n.ty.shape[1];
                let bias_ty = TensorType::new(n.ty.dtype, vec![1, cout, 1, 1]);
                let bias = push(
                    &mut out,
                    Node {
                        op: Op::Reshape {
                            shape: bias_ty.shape.clone(),
                        },
                        inputs: vec![b],
                        ty: bias_ty,
                        name: None,
                    },
                );
                push(
                    &mut out,
                    Node {
                        op: Op::Binary(Binary::Add),
                        inputs: vec![conv, bias],
                        ty: n.ty.clone(),
                        name: n.name.clone(),
                    },
                )
            }
            _ => push(
                &mut out,
                Node {
                    inputs,
                    ..n.clone()
                },
            ),
        };
        remap.push(new_id);
    }
    out.outputs = g
        .outputs
        .iter()
        .map(|(name, o)| (name.clone(), remap[o.index()]))
        .collect();
    out
}
