//! Reverse-mode automatic differentiation: derives a backward graph from a forward graph.
//!
//! [`backward`] returns a new [`Graph`] that recomputes the forward values its gradients read
//! (or takes them as inputs, see [`BackwardOptions::saved`]), takes one upstream gradient per
//! seeded forward output as a program input, and returns the gradient of `Σ seed ⊙ output`
//! with respect to each requested node. Every rule is written with the IR's own primitives
//! (no `concat`, `gelu`, `silu`, comparison, tile or pad op), so a backward graph compiles
//! wherever its forward graph does. Composites need no rules of their own: the builder
//! expands them into primitives.
//!
//! Rules (`g` is the gradient of a node's result `y`):
//! - broadcasting binary ops: each operand's gradient is summed over the axes it was broadcast
//!   along and reshaped to its shape; `pow` differentiates both operands
//!   (`dx = g·c·x^(c−1)`, `dc = g·y·log x`);
//! - `exp`, `log`, `sqrt`, `rsqrt`, `tanh` (`1 − y²`), `sigmoid` (`y(1 − y)`), `identity`;
//! - `relu` and `reduce_max` use the exact step `[x > 0] = 1 − relu(1 − relu(x·K·K))` with a
//!   power-of-two `K` large enough that every positive value of the dtype (subnormals
//!   included) reaches 1 (so `relu'(0) = 0`); `reduce_max` passes `g` to every element equal to the maximum
//!   (ties all receive it);
//! - softmax: `dx = y ⊙ (g − Σ_axis g ⊙ y)`;
//! - `reduce_sum`/`reduce_mean`: `g` is broadcast back as an outer product with a
//!   `[1, reduced elements]` constant of ones (or `1/n`), then reshaped and transposed;
//! - matmul (both transpose flags, batch broadcasting reduced away);
//! - conv: only 1×1, stride 1, dilation 1, no padding, one group; `dx` is a conv with the
//!   transposed weight (a matmul when that conv would have too many input channels, C19),
//!   `dw` a matmul of `g` and `x`, `db` a sum; anything else is an error;
//! - reshape and transpose are inverted, cast is cast back;
//! - slice: `g` is scattered into the operand's shape by a matmul with a 0/1 selection
//!   constant along each sliced axis.
//!
//! Gradients reaching a node from several users are summed. Integer-typed nodes stop
//! gradients. A requested gradient that no seeded output depends on is an error rather than
//! a zeros constant, since it almost always means the wrong node was named. Rank-0
//! gradients and seeds travel as shape `[1]` (device surfaces have at least one axis).

use crate::error::{shape_err, Error, Result};
use crate::graph::{Binary, ConstData, ConvParams, Graph, Node, NodeId, Op, Reduce, Unary};
use crate::infer::{infer, normalize_axis};
use mil::{DType, TensorType};

/// Options for [`backward_with`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BackwardOptions {
    /// Forward nodes whose values the backward graph takes as inputs (with these names)
    /// instead of recomputing them: the forward program returns them, the backward program
    /// reads them ("saved activations"). Each must be a computed float node.
    pub saved: Vec<(NodeId, String)>,
}

/// The backward graph of `g`: gradients of `Σ_seeds d_out ⊙ out` with respect to `wrt`.
///
/// Each seed `(output, grad_input)` names a forward output and the new program input that
/// holds its upstream gradient (same shape and dtype as the output, `[1]` for a scalar).
/// The result's outputs are the gradients, in `wrt` order, named by [`gradient_name`];
/// its inputs are every seed plus the forward inputs that the gradients read (see
/// [`Graph::inputs`]). Forward values are recomputed inside the backward graph.
pub fn backward(g: &Graph, wrt: &[NodeId], seeds: &[(&str, &str)]) -> Result<Graph> {
    backward_with(g, wrt, seeds, &BackwardOptions::default())
}

/// [`backward`] with options (saved activations).
pub fn backward_with(
    g: &Graph,
    wrt: &[NodeId],
    seeds: &[(&str, &str)],
    options: &BackwardOptions,
) -> Result<Graph> {
    check_wrt(g, wrt)?;
    let mut tape = Tape::forward_copy(g, &options.saved)?;
    let active = active_nodes(g, wrt);
    let mut grads: Vec<Option<NodeId>> = vec![None; g.nodes.len()];
    let mut seed_inputs = Vec::with_capacity(seeds.len());
    for &(output, grad_input) in seeds {
        let (_, out) = g
            .outputs
            .iter()
            .find(|(name, _)| name == output)
            .ok_or_else(|| Error::Graph(format!("autodiff: no forward output named {output}")))?;
        let seed = tape.seed(grad_input, g.ty(*out))?;
        seed_inputs.push(seed.0);
        if active[out.index()] {
            accumulate(&mut tape, &mut grads, *out, seed.1)?;
        }
    }
    for id in g.ids().rev() {
        let Some(dy) = grads[id.index()] else {
            continue;
        };
        let node = g.node(id);
        let need: Vec<bool> = node.inputs.iter().map(|i| active[i.index()]).collect();
        if !need.contains(&true) {
            continue;
        }
        for (operand, d) in vjp(&mut tape, g, id, dy, &need)? {
            accumulate(&mut tape, &mut grads, node.inputs[operand], d)?;
        }
    }
    let mut outputs = Vec::with_capacity(wrt.len());
    for &id in wrt {
        let name = gradient_name(g, id);
        let d = grads[id.index()].ok_or_else(|| {
            Error::Graph(format!(
                "autodiff: {name} is identically zero: no seeded output depends on node {}",
                id.0
            ))
        })?;
        let d = if tape.shape(d).is_empty() {
            // MIL cannot reshape a scalar; broadcasting against a `[1]` one lifts it.
            let one = tape.constant(tape.dtype(d), &[1], vec![1.0]);
            tape.bin(Binary::Mul, d, one)?
        } else {
            d
        };
        outputs.push((name, d));
    }
    tape.finish(outputs, &seed_inputs)
}

/// The name of the gradient output for forward node `id`: `d_<input or node name>` (characters
/// that are not MIL identifier characters become `_`), or `d_v<id>` for an unnamed node.
pub fn gradient_name(g: &Graph, id: NodeId) -> String {
    let n = g.node(id);
    match (&n.op, &n.name) {
        (Op::Input { name }, _) | (_, Some(name)) => {
            name.chars().fold("d_".to_string(), |mut s, c| {
                s.push(if c.is_ascii_alphanumeric() { c } else { '_' });
                s
            })
        }
        _ => format!("d_v{}", id.0),
    }
}

/// Checks that every `wrt` node exists and is a float value.
fn check_wrt(g: &Graph, wrt: &[NodeId]) -> Result<()> {
    for id in wrt {
        match g.nodes.get(id.index()) {
            None => {
                return Err(Error::Graph(format!(
                    "autodiff: node {} does not exist",
                    id.0
                )))
            }
            Some(n) if !n.ty.dtype.is_float() => {
                return Err(Error::Graph(format!(
                    "autodiff: node {} is {}, not a float value to differentiate by",
                    id.0, n.ty.dtype
                )))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Marks nodes that depend on a `wrt` node through float values.
fn active_nodes(g: &Graph, wrt: &[NodeId]) -> Vec<bool> {
    let mut active = vec![false; g.nodes.len()];
    for id in g.ids() {
        let n = g.node(id);
        let reached = wrt.contains(&id) || n.inputs.iter().any(|i| active[i.index()]);
        active[id.index()] = reached && n.ty.dtype.is_float();
    }
    active
}

fn accumulate(tape: &mut Tape, grads: &mut [Option<NodeId>], id: NodeId, d: NodeId) -> Result<()> {
    let slot = &mut grads[id.index()];
    *slot = Some(match *slot {
        None => d,
        Some(prev) => tape.bin(Binary::Add, prev, d)?,
    });
    Ok(())
}

/// The gradient contributions `(operand index, gradient)` of node `id` given its gradient `dy`,
/// for the operands flagged in `need`.
fn vjp(
    tape: &mut Tape,
    g: &Graph,
    id: NodeId,
    dy: NodeId,
    need: &[bool],
) -> Result<Vec<(usize, NodeId)>> {
    let n = g.node(id);
    let Some(&x) = n.inputs.first() else {
        return Ok(Vec::new()); // inputs and constants have no operands
    };
    let single = |d: Result<NodeId>| d.map(|d| vec![(0, d)]);
    match &n.op {
        Op::Input { .. } | Op::Const { .. } => Ok(Vec::new()),
        Op::Unary(u) => single(unary_vjp(tape, *u, x, id, dy)),
        Op::Binary(b) => binary_vjp(tape, *b, x, n.inputs[1], id, dy, need),
        Op::Softmax { axis } => {
            let gy = tape.bin(Binary::Mul, dy, id)?;
            let s = tape.push(
                Op::Reduce {
                    kind: Reduce::Sum,
                    axes: vec![*axis],
                    keep_dims: true,
                },
                &[gy],
            )?;
            let centered = tape.bin(Binary::Sub, dy, s)?;
            single(tape.bin(Binary::Mul, id, centered))
        }
        Op::Reduce {
            kind,
            axes,
            keep_dims,
        } => single(reduce_vjp(tape, *kind, axes, *keep_dims, x, id, dy)),
        Op::Matmul {
            transpose_x,
            transpose_y,
        } => matmul_vjp(tape, x, n.inputs[1], *transpose_x, *transpose_y, dy, need),
        Op::Conv(p) => {
            let plain = p.strides == [1, 1] && p.dilations == [1, 1] && p.pads == [0; 4];
            let w_shape = tape.shape(n.inputs[1]);
            if !plain || p.groups != 1 || w_shape[2..] != [1, 1] {
                return shape_err(
                    "autodiff",
                    format!(
                        "conv gradients need a 1×1 kernel, stride 1, dilation 1, no padding and \
                         one group; found kernel {:?} and {p:?}",
                        &w_shape[2..]
                    ),
                );
            }
            conv_vjp(tape, &n.inputs, dy, need)
        }
        Op::Reshape { .. } => {
            let shape = tape.shape(x);
            single(tape.reshape(dy, &shape))
        }
        Op::Transpose { perm } => single(tape.transpose(dy, &inverse(perm))),
        Op::Cast { .. } => single(tape.push(
            Op::Cast {
                dtype: tape.dtype(x),
            },
            &[dy],
        )),
        Op::Slice { begin, end } => single(slice_vjp(tape, x, begin, end, dy)),
    }
}

fn unary_vjp(tape: &mut Tape, u: Unary, x: NodeId, y: NodeId, dy: NodeId) -> Result<NodeId> {
    let dt = tape.dtype(x);
    match u {
        Unary::Identity => Ok(dy),
        Unary::Exp => tape.bin(Binary::Mul, dy, y),
        Unary::Log => tape.bin(Binary::Div, dy, x),
        Unary::Sqrt => {
            let half = tape.scaled(dy, 0.5)?;
            tape.bin(Binary::Div, half, y)
        }
        Unary::Rsqrt => {
            // d(x^-1/2) = -1/2 · y³
            let y2 = tape.bin(Binary::Mul, y, y)?;
            let y3 = tape.bin(Binary::Mul, y2, y)?;
            let s = tape.scaled(dy, -0.5)?;
            tape.bin(Binary::Mul, s, y3)
        }
        Unary::Tanh => {
            let y2 = tape.bin(Binary::Mul, y, y)?;
            let one = tape.scalar(dt, 1.0);
            let d = tape.bin(Binary::Sub, one, y2)?;
            tape.bin(Binary::Mul, dy, d)
        }
        Unary::Sigmoid => {
            let one = tape.scalar(dt, 1.0);
            let rest = tape.bin(Binary::Sub, one, y)?;
            let d = tape.bin(Binary::Mul, y, rest)?;
            tape.bin(Binary::Mul, dy, d)
        }
        Unary::Relu => {
            let mask = tape.step(x)?;
            tape.bin(Binary::Mul, dy, mask)
        }
    }
}

fn binary_vjp(
    tape: &mut Tape,
    b: Binary,
    x: NodeId,
    y: NodeId,
    out: NodeId,
    dy: NodeId,
    need: &[bool],
) -> Result<Vec<(usize, NodeId)>> {
    let mut res = Vec::with_capacity(2);
    let (dx, dother) = match b {
        Binary::Add => (need[0].then_some(dy), need[1].then_some(dy)),
        Binary::Sub => {
            let neg = if need[1] {
                Some(tape.scaled(dy, -1.0)?)
            } else {
                None
            };
            (need[0].then_some(dy), neg)
        }
        Binary::Mul => (
            opt(need[0], || tape.bin(Binary::Mul, dy, y))?,
            opt(need[1], || tape.bin(Binary::Mul, dy, x))?,
        ),
        Binary::Div => {
            // dx = g / y; dy = -(g / y) · (x / y)
            let t = tape.bin(Binary::Div, dy, y)?;
            let d_den = opt(need[1], || {
                let to = tape.bin(Binary::Mul, t, out)?;
                tape.scaled(to, -1.0)
            })?;
            (need[0].then_some(t), d_den)
        }
        Binary::Pow => {
            let d_base = opt(need[0], || {
                if tape.negative_constant(y) {
                    // c·x^(c−1) overflows fp16 for small x (x^-1.5 at x = 4e-4 is 1.25e5) even
                    // when the gradient itself is small: form ((g · y) / x) · c instead, whose
                    // intermediates stay near the gradient's own size. x > 0 here (the power
                    // of a non-positive base with a fractional negative exponent is undefined).
                    let gy = tape.bin(Binary::Mul, dy, out)?;
                    let q = tape.bin(Binary::Div, gy, x)?;
                    return tape.bin(Binary::Mul, q, y);
                }
                let one = tape.scalar(tape.dtype(y), 1.0);
                let c1 = tape.bin(Binary::Sub, y, one)?;
                let p = tape.bin(Binary::Pow, x, c1)?;
                let cp = tape.bin(Binary::Mul, y, p)?;
                tape.bin(Binary::Mul, dy, cp)
            })?;
            let d_exp = opt(need[1], || {
                let lx = tape.unary(Unary::Log, x)?;
                let yl = tape.bin(Binary::Mul, out, lx)?;
                tape.bin(Binary::Mul, dy, yl)
            })?;
            (d_base, d_exp)
        }
    };
    for (i, (d, operand)) in [(dx, x), (dother, y)].into_iter().enumerate() {
        if let Some(d) = d {
            let shape = tape.shape(operand);
            res.push((i, tape.unbroadcast(d, &shape)?));
        }
    }
    Ok(res)
}

fn opt(needed: bool, mut f: impl FnMut() -> Result<NodeId>) -> Result<Option<NodeId>> {
    needed.then(&mut f).transpose()
}

fn reduce_vjp(
    tape: &mut Tape,
    kind: Reduce,
    axes: &[i64],
    keep_dims: bool,
    x: NodeId,
    y: NodeId,
    dy: NodeId,
) -> Result<NodeId> {
    let shape = tape.shape(x);
    let mut reduced: Vec<usize> = if axes.is_empty() {
        (0..shape.len()).collect()
    } else {
        axes.iter()
            .map(|&a| normalize_axis("autodiff", a, shape.len()))
            .collect::<Result<_>>()?
    };
    reduced.sort_unstable();
    let kept_shape: Vec<usize> = shape
        .iter()
        .enumerate()
        .map(|(i, &d)| if reduced.contains(&i) { 1 } else { d })
        .collect();
    match kind {
        Reduce::Sum => tape.broadcast_back(dy, &shape, &reduced, 1.0),
        Reduce::Mean => {
            let n: usize = reduced.iter().map(|&a| shape[a]).product();
            tape.broadcast_back(dy, &shape, &reduced, 1.0 / n as f32)
        }
        Reduce::Max => {
            // The maximum's positions: 1 − [max − x > 0]; the gradient broadcasts by `mul`
            // (a scalar result broadcasts as it is: MIL cannot reshape a scalar).
            let scalar = tape.shape(y).is_empty();
            let m = if keep_dims || scalar {
                y
            } else {
                tape.reshape(y, &kept_shape)?
            };
            let gap = tape.bin(Binary::Sub, m, x)?;
            let above = tape.step(gap)?;
            let one = tape.scalar(tape.dtype(x), 1.0);
            let at_max = tape.bin(Binary::Sub, one, above)?;
            let g = if scalar {
                dy
            } else {
                tape.reshape(dy, &kept_shape)?
            };
            tape.bin(Binary::Mul, g, at_max)
        }
    }
}

fn matmul_vjp(
    tape: &mut Tape,
    x: NodeId,
    y: NodeId,
    tx: bool,
    ty: bool,
    dy: NodeId,
    need: &[bool],
) -> Result<Vec<(usize, NodeId)>> {
    let mut res = Vec::with_capacity(2);
    if need[0] {
        let d = if tx {
            tape.matmul(y, dy, ty, true)?
        } else {
            tape.matmul(dy, y, false, !ty)?
        };
        let shape = tape.shape(x);
        res.push((0, tape.unbroadcast(d, &shape)?));
    }
    if need[1] {
        let d = if ty {
            tape.matmul(dy, x, true, tx)?
        } else {
            tape.matmul(x, dy, !tx, false)?
        };
        let shape = tape.shape(y);
        res.push((1, tape.unbroadcast(d, &shape)?));
    }
    Ok(res)
}

/// Gradients of a 1×1, stride-1, unpadded, single-group conv `[x, w(, b)]`.
fn conv_vjp(
    tape: &mut Tape,
    operands: &[NodeId],
    dy: NodeId,
    need: &[bool],
) -> Result<Vec<(usize, NodeId)>> {
    let (x, w) = (operands[0], operands[1]);
    let xs = tape.shape(x); // [N, Cin, H, W]
    let ws = tape.shape(w); // [Cout, Cin, 1, 1]
    let (n, cin, hw, cout) = (xs[0], xs[1], xs[2] * xs[3], ws[0]);
    let mut res = Vec::with_capacity(3);
    if need[0] {
        let dx = if cout < mil::verify::VerifyOptions::default().max_conv_input_channels {
            // A conv with the transposed weight (folded to a constant for baked weights).
            let wt = tape.transpose(w, &[1, 0, 2, 3])?; // [Cin, Cout, 1, 1]
            tape.push(Op::Conv(ConvParams::default()), &[dy, wt])?
        } else {
            // That conv would read Cout input channels, too many for the device (C19).
            let w2 = tape.reshape(w, &[cout, cin])?;
            let g3 = tape.reshape(dy, &[n, cout, hw])?;
            let dx3 = tape.matmul(w2, g3, true, false)?; // [N, Cin, HW]
            tape.reshape(dx3, &xs)?
        };
        res.push((0, dx));
    }
    if need[1] {
        let g3 = tape.reshape(dy, &[n, cout, hw])?;
        let x3 = tape.reshape(x, &[n, cin, hw])?;
        let per_batch = tape.matmul(g3, x3, false, true)?; // [N, Cout, Cin]
        let summed = if n == 1 {
            per_batch
        } else {
            tape.sum(per_batch, &[0], false)?
        };
        res.push((1, tape.reshape(summed, &ws)?));
    }
    if need.get(2) == Some(&true) {
        res.push((2, tape.sum(dy, &[0, 2, 3], false)?));
    }
    Ok(res)
}

/// Scatters `dy` (the slice's gradient) into the operand's shape, one sliced axis at a time.
fn slice_vjp(
    tape: &mut Tape,
    x: NodeId,
    begin: &[usize],
    end: &[usize],
    dy: NodeId,
) -> Result<NodeId> {
    let full = tape.shape(x);
    let rank = full.len();
    let mut g = dy;
    for axis in 0..rank {
        let (b, e, d) = (begin[axis], end[axis], full[axis]);
        if b == 0 && e == d {
            continue;
        }
        // Move `axis` last, flatten the rest, multiply by the [e-b, d] selection, restore.
        let mut perm: Vec<usize> = (0..rank).filter(|&a| a != axis).collect();
        perm.push(axis);
        let moved = tape.transpose(g, &perm)?;
        let moved_shape = tape.shape(moved);
        let rows: usize = moved_shape[..rank - 1].iter().product();
        let flat = tape.reshape(moved, &[rows, e - b])?;
        let mut select = vec![0.0; (e - b) * d];
        for i in 0..e - b {
            select[i * d + b + i] = 1.0;
        }
        let sel = tape.constant(tape.dtype(dy), &[e - b, d], select);
        let spread = tape.matmul(flat, sel, false, false)?; // [rows, d]
        let mut spread_shape = moved_shape;
        spread_shape[rank - 1] = d;
        let shaped = tape.reshape(spread, &spread_shape)?;
        g = tape.transpose(shaped, &inverse(&perm))?;
    }
    Ok(g)
}

fn inverse(perm: &[usize]) -> Vec<usize> {
    let mut inv = vec![0; perm.len()];
    for (i, &p) in perm.iter().enumerate() {
        inv[p] = i;
    }
    inv
}

/// The backward graph under construction: a copy of the forward nodes (same ids) followed by
/// seed inputs and gradient nodes.
struct Tape {
    g: Graph,
}

impl Tape {
    /// Copies the forward nodes, turning `saved` nodes into inputs.
    fn forward_copy(g: &Graph, saved: &[(NodeId, String)]) -> Result<Tape> {
        let mut nodes = g.nodes.clone();
        for (id, name) in saved {
            let node = nodes.get_mut(id.index()).ok_or_else(|| {
                Error::Graph(format!("autodiff: saved node {} does not exist", id.0))
            })?;
            if node.inputs.is_empty() || !node.ty.dtype.is_float() {
                return Err(Error::Graph(format!(
                    "autodiff: saved node {} ({}) must be a computed float value",
                    id.0,
                    node.op.name()
                )));
            }
            *node = Node {
                op: Op::Input { name: name.clone() },
                inputs: Vec::new(),
                ty: node.ty.clone(),
                name: Some(name.clone()),
            };
        }
        Ok(Tape {
            g: Graph {
                nodes,
                outputs: Vec::new(),
            },
        })
    }

    /// True when `id` is a constant whose values are all negative.
    fn negative_constant(&self, id: NodeId) -> bool {
        self.g
            .const_data(id)
            .is_some_and(|c| !c.values.is_empty() && c.values.iter().all(|&v| v < 0.0))
    }

    fn add_node(&mut self, node: Node) -> NodeId {
        self.g.nodes.push(node);
        NodeId(self.g.nodes.len() as u32 - 1)
    }

    /// Adds the seed input for an output of type `ty`; returns `(input, gradient)` where the
    /// gradient has `ty` (a `[1]` input is summed to rank 0 for a scalar output).
    fn seed(&mut self, name: &str, ty: &TensorType) -> Result<(NodeId, NodeId)> {
        let shape = if ty.shape.is_empty() {
            vec![1]
        } else {
            ty.shape.clone()
        };
        let input = self.add_node(Node {
            op: Op::Input {
                name: name.to_string(),
            },
            inputs: Vec::new(),
            ty: TensorType::new(ty.dtype, shape),
            name: Some(name.to_string()),
        });
        let grad = if ty.shape.is_empty() {
            self.sum(input, &[0], false)?
        } else {
            input
        };
        Ok((input, grad))
    }

    /// Sets the outputs, drops nodes they do not need (keeping the seed inputs) and checks.
    fn finish(mut self, outputs: Vec<(String, NodeId)>, seeds: &[NodeId]) -> Result<Graph> {
        self.g.outputs = outputs;
        let g = &self.g;
        let mut live = vec![false; g.nodes.len()];
        for id in g.outputs.iter().map(|(_, o)| o).chain(seeds) {
            live[id.index()] = true;
        }
        for id in g.ids().rev() {
            if live[id.index()] {
                for i in &g.node(id).inputs {
                    live[i.index()] = true;
                }
            }
        }
        let identity: Vec<NodeId> = g.ids().collect();
        let pruned = g.rebuild(&live, &identity);
        pruned.check()?;
        Ok(pruned)
    }

    fn shape(&self, id: NodeId) -> Vec<usize> {
        self.g.ty(id).shape.clone()
    }

    fn dtype(&self, id: NodeId) -> DType {
        self.g.ty(id).dtype
    }

    fn push(&mut self, op: Op, inputs: &[NodeId]) -> Result<NodeId> {
        let types: Vec<&TensorType> = inputs.iter().map(|i| self.g.ty(*i)).collect();
        let ty = infer(&op, &types)?;
        Ok(self.add_node(Node {
            op,
            inputs: inputs.to_vec(),
            ty,
            name: None,
        }))
    }

    fn constant(&mut self, dtype: DType, shape: &[usize], values: Vec<f32>) -> NodeId {
        let data = ConstData {
            dtype,
            shape: shape.to_vec(),
            values,
        };
        let ty = data.ty();
        self.add_node(Node {
            op: Op::Const { data, weight: None },
            inputs: Vec::new(),
            ty,
            name: None,
        })
    }

    fn scalar(&mut self, dtype: DType, value: f32) -> NodeId {
        self.constant(dtype, &[], vec![value])
    }

    fn bin(&mut self, b: Binary, x: NodeId, y: NodeId) -> Result<NodeId> {
        self.push(Op::Binary(b), &[x, y])
    }

    fn unary(&mut self, u: Unary, x: NodeId) -> Result<NodeId> {
        self.push(Op::Unary(u), &[x])
    }

    /// `x · c` for a scalar `c` of `x`'s dtype.
    fn scaled(&mut self, x: NodeId, c: f32) -> Result<NodeId> {
        let s = self.scalar(self.dtype(x), c);
        self.bin(Binary::Mul, x, s)
    }

    fn matmul(&mut self, x: NodeId, y: NodeId, tx: bool, ty: bool) -> Result<NodeId> {
        self.push(
            Op::Matmul {
                transpose_x: tx,
                transpose_y: ty,
            },
            &[x, y],
        )
    }

    fn sum(&mut self, x: NodeId, axes: &[i64], keep_dims: bool) -> Result<NodeId> {
        self.push(
            Op::Reduce {
                kind: Reduce::Sum,
                axes: axes.to_vec(),
                keep_dims,
            },
            &[x],
        )
    }

    /// `x` reshaped to `shape` (no node when it already has it).
    fn reshape(&mut self, x: NodeId, shape: &[usize]) -> Result<NodeId> {
        if self.g.ty(x).shape == shape {
            return Ok(x);
        }
        self.push(
            Op::Reshape {
                shape: shape.to_vec(),
            },
            &[x],
        )
    }

    /// `x` transposed by `perm` (no node for the identity).
    fn transpose(&mut self, x: NodeId, perm: &[usize]) -> Result<NodeId> {
        if perm.iter().enumerate().all(|(i, &p)| i == p) {
            return Ok(x);
        }
        self.push(
            Op::Transpose {
                perm: perm.to_vec(),
            },
            &[x],
        )
    }

    /// `[x > 0]` as 0/1 of `x`'s dtype: `1 − relu(1 − relu(x·K·K))`, where `K·K` lifts the
    /// smallest positive value of the dtype to at least 1 (overflow to +inf is harmless).
    fn step(&mut self, x: NodeId) -> Result<NodeId> {
        let dt = self.dtype(x);
        let k = if dt == DType::Fp16 {
            2f32.powi(15)
        } else {
            2f32.powi(75)
        };
        let a = self.scaled(x, k)?;
        let b = self.scaled(a, k)?;
        let pos = self.unary(Unary::Relu, b)?;
        let one = self.scalar(dt, 1.0);
        let under = self.bin(Binary::Sub, one, pos)?;
        let clipped = self.unary(Unary::Relu, under)?;
        let one = self.scalar(dt, 1.0);
        self.bin(Binary::Sub, one, clipped)
    }

    /// Sums `d` (a broadcast result's gradient) down to `target`, undoing numpy broadcasting.
    fn unbroadcast(&mut self, d: NodeId, target: &[usize]) -> Result<NodeId> {
        let shape = self.shape(d);
        if shape == target {
            return Ok(d);
        }
        let lead = shape.len() - target.len();
        if target.is_empty() {
            let all: Vec<i64> = (0..shape.len() as i64).collect();
            return self.sum(d, &all, false);
        }
        let axes: Vec<i64> = (0..shape.len())
            .filter(|&i| i < lead || (target[i - lead] == 1 && shape[i] != 1))
            .map(|i| i as i64)
            .collect();
        let summed = if axes.is_empty() {
            d
        } else {
            self.sum(d, &axes, true)?
        };
        self.reshape(summed, target)
    }

    /// Broadcasts `g` (a reduction of `full` over the sorted `reduced` axes, with or without
    /// kept dims) back to `full`, times `scale`: an outer product with a `[1, n]` constant.
    fn broadcast_back(
        &mut self,
        g: NodeId,
        full: &[usize],
        reduced: &[usize],
        scale: f32,
    ) -> Result<NodeId> {
        let kept: Vec<usize> = (0..full.len()).filter(|a| !reduced.contains(a)).collect();
        let nk: usize = kept.iter().map(|&a| full[a]).product();
        let nr: usize = reduced.iter().map(|&a| full[a]).product();
        let ones = self.constant(self.dtype(g), &[1, nr], vec![scale; nr]);
        // [kept…, reduced…] flattened; a scalar `g` (everything reduced) just scales the row.
        let outer = if self.shape(g).is_empty() {
            self.bin(Binary::Mul, ones, g)?
        } else {
            let column = self.reshape(g, &[nk, 1])?;
            self.matmul(column, ones, false, false)?
        };
        let perm: Vec<usize> = kept.iter().chain(reduced).copied().collect();
        let grouped: Vec<usize> = perm.iter().map(|&a| full[a]).collect();
        let shaped = self.reshape(outer, &grouped)?;
        self.transpose(shaped, &inverse(&perm))
    }
}
