//! Text form of the graph IR, for pass dumps and test failure messages.

use crate::graph::{Graph, Op};
use std::fmt;

impl fmt::Display for Graph {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for id in self.ids() {
            let n = self.node(id);
            let operands: Vec<String> = n.inputs.iter().map(|i| format!("%{}", i.0)).collect();
            let detail = match &n.op {
                Op::Input { name } => format!("\"{name}\""),
                Op::Const { data, weight } => match weight {
                    Some(w) => format!("weight \"{w}\""),
                    None if data.values.len() <= 8 => format!("{:?}", data.values),
                    None => format!("[{} values]", data.values.len()),
                },
                Op::Softmax { axis } => format!("axis={axis}"),
                Op::Reduce {
                    axes, keep_dims, ..
                } => format!("axes={axes:?} keep_dims={keep_dims}"),
                Op::Matmul {
                    transpose_x,
                    transpose_y,
                } => format!("tx={transpose_x} ty={transpose_y}"),
                Op::Conv(p) => format!("{p:?}"),
                Op::Reshape { shape } => format!("shape={shape:?}"),
                Op::Transpose { perm } => format!("perm={perm:?}"),
                Op::Cast { dtype } => format!("dtype={dtype}"),
                Op::Slice { begin, end } => format!("begin={begin:?} end={end:?}"),
                Op::Unary(_) | Op::Binary(_) => String::new(),
            };
            write!(
                f,
                "%{} = {}({}) {} : {}{:?}",
                id.0,
                n.op.name(),
                operands.join(", "),
                detail,
                n.ty.dtype,
                n.ty.shape
            )?;
            if let Some(name) = &n.name {
                write!(f, " \"{name}\"")?;
            }
            writeln!(f)?;
        }
        let outs: Vec<String> = self
            .outputs
            .iter()
            .map(|(n, id)| format!("{n}=%{}", id.0))
            .collect();
        writeln!(f, "return {}", outs.join(", "))
    }
}
