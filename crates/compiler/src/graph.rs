//! The graph IR: nodes in an arena addressed by `NodeId`, each a primitive op with a typed result.
//!
//! A graph is a DAG whose node list is always in topological order (operands have smaller ids),
//! which is what lowering to straight-line MIL needs. Composite operations (layer norm, GELU,
//! attention, …) do not exist here: the builder expands them into these primitives.

use mil::{DType, TensorType};

/// Index of a node in its graph's arena.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub u32);

impl NodeId {
    /// The arena index.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// Elementwise unary ops.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Unary {
    Exp,
    Log,
    Sqrt,
    Rsqrt,
    Tanh,
    Sigmoid,
    Relu,
    Identity,
}

impl Unary {
    /// The MIL op name.
    pub fn mil_name(self) -> &'static str {
        match self {
            Unary::Exp => "exp",
            Unary::Log => "log",
            Unary::Sqrt => "sqrt",
            Unary::Rsqrt => "rsqrt",
            Unary::Tanh => "tanh",
            Unary::Sigmoid => "sigmoid",
            Unary::Relu => "relu",
            Unary::Identity => "identity",
        }
    }
}

/// Elementwise binary ops with numpy broadcasting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Binary {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
}

impl Binary {
    /// The MIL op name.
    pub fn mil_name(self) -> &'static str {
        match self {
            Binary::Add => "add",
            Binary::Sub => "sub",
            Binary::Mul => "mul",
            Binary::Div => "real_div",
            Binary::Pow => "pow",
        }
    }
}

/// Reductions over a set of axes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reduce {
    Sum,
    Mean,
    Max,
}

impl Reduce {
    /// The MIL op name.
    pub fn mil_name(self) -> &'static str {
        match self {
            Reduce::Sum => "reduce_sum",
            Reduce::Mean => "reduce_mean",
            Reduce::Max => "reduce_max",
        }
    }
}

/// A constant tensor; values are held as f32 (exact for fp16 and for int32 up to 2^24).
#[derive(Clone, Debug, PartialEq)]
pub struct ConstData {
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

impl ConstData {
    /// The constant's type.
    pub fn ty(&self) -> TensorType {
        TensorType::new(self.dtype, self.shape.clone())
    }
}

/// Convolution parameters (2-D, NCHW), `pads` as [top, bottom, left, right].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ConvParams {
    pub strides: [usize; 2],
    pub pads: [usize; 4],
    pub dilations: [usize; 2],
    pub groups: usize,
}

impl Default for ConvParams {
    fn default() -> Self {
        ConvParams {
            strides: [1, 1],
            pads: [0; 4],
            dilations: [1, 1],
            groups: 1,
        }
    }
}

/// A primitive operation. Operands are the node's `inputs`, in the order given per variant.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// A program input (a surface); no operands.
    Input { name: String },
    /// A constant; no operands. `weight` names baked weights, which lower to BLOBFILE data.
    Const {
        data: ConstData,
        weight: Option<String>,
    },
    /// Operands: `[x]`.
    Unary(Unary),
    /// Operands: `[x, y]`.
    Binary(Binary),
    /// Operands: `[x]`.
    Softmax { axis: i64 },
    /// Operands: `[x]`; empty `axes` means every axis.
    Reduce {
        kind: Reduce,
        axes: Vec<i64>,
        keep_dims: bool,
    },
    /// Operands: `[x, y]`.
    Matmul {
        transpose_x: bool,
        transpose_y: bool,
    },
    /// Operands: `[x, weight]` or `[x, weight, bias]` (the bias is legalized away before lowering).
    Conv(ConvParams),
    /// Operands: `[x]`.
    Reshape { shape: Vec<usize> },
    /// Operands: `[x]`.
    Transpose { perm: Vec<usize> },
    /// Operands: `[x]`.
    Cast { dtype: DType },
    /// Operands: `[x]`; a stride-1 slice `begin..end` per axis.
    Slice { begin: Vec<usize>, end: Vec<usize> },
}

impl Op {
    /// A short name for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Input { .. } => "input",
            Op::Const { .. } => "const",
            Op::Unary(u) => u.mil_name(),
            Op::Binary(b) => b.mil_name(),
            Op::Softmax { .. } => "softmax",
            Op::Reduce { kind, .. } => kind.mil_name(),
            Op::Matmul { .. } => "matmul",
            Op::Conv(_) => "conv",
            Op::Reshape { .. } => "reshape",
            Op::Transpose { .. } => "transpose",
            Op::Cast { .. } => "cast",
            Op::Slice { .. } => "slice_by_index",
        }
    }
}

/// One node: an op, its operands and its result type, with an optional name for the MIL value.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub op: Op,
    pub inputs: Vec<NodeId>,
    pub ty: TensorType,
    pub name: Option<String>,
}

/// A dataflow graph with named outputs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Graph {
    pub nodes: Vec<Node>,
    /// Program outputs: MIL name and node.
    pub outputs: Vec<(String, NodeId)>,
}

impl Graph {
    /// The node with id `id`.
    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id.index()]
    }

    /// The result type of `id`.
    pub fn ty(&self, id: NodeId) -> &TensorType {
        &self.node(id).ty
    }

    /// Ids of every node, in order.
    pub fn ids(&self) -> impl DoubleEndedIterator<Item = NodeId> {
        (0..self.nodes.len() as u32).map(NodeId)
    }

    /// The program inputs, in node order.
    pub fn inputs(&self) -> Vec<(String, NodeId)> {
        self.ids()
            .filter_map(|id| match &self.node(id).op {
                Op::Input { name } => Some((name.clone(), id)),
                _ => None,
            })
            .collect()
    }

    /// The constant behind `id`, if it is one.
    pub fn const_data(&self, id: NodeId) -> Option<&ConstData> {
        match &self.node(id).op {
            Op::Const { data, .. } => Some(data),
            _ => None,
        }
    }

    /// How many times each node is used as an operand or an output.
    pub fn use_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.nodes.len()];
        for n in &self.nodes {
            for i in &n.inputs {
                counts[i.index()] += 1;
            }
        }
        for (_, o) in &self.outputs {
            counts[o.index()] += 1;
        }
        counts
    }

    /// True if `id` is returned as a program output.
    pub fn is_output(&self, id: NodeId) -> bool {
        self.outputs.iter().any(|(_, o)| *o == id)
    }

    /// Checks the graph's invariants: operands precede their users, types match inference,
    /// input and output names are unique, outputs exist.
    pub fn check(&self) -> crate::Result<()> {
        let mut names = std::collections::HashSet::new();
        for id in self.ids() {
            let n = self.node(id);
            if let Some(bad) = n.inputs.iter().find(|i| i.index() >= id.index()) {
                return Err(crate::Error::Graph(format!(
                    "node {} ({}) uses node {} which does not precede it",
                    id.0,
                    n.op.name(),
                    bad.0
                )));
            }
            if let Op::Const { data, .. } = &n.op {
                if data.ty() != n.ty || data.values.len() != n.ty.numel() {
                    return Err(crate::Error::Graph(format!(
                        "node {} is a constant of the wrong size",
                        id.0
                    )));
                }
            }
            if let Op::Input { name } = &n.op {
                if !names.insert(name.clone()) {
                    return Err(crate::Error::Graph(format!(
                        "input name {name} is used twice"
                    )));
                }
            }
            if matches!(n.op, Op::Input { .. } | Op::Const { .. }) {
                continue;
            }
            let operand_types: Vec<&TensorType> = n.inputs.iter().map(|i| self.ty(*i)).collect();
            let inferred = crate::infer::infer(&n.op, &operand_types)?;
            if inferred != n.ty {
                return Err(crate::Error::Graph(format!(
                    "node {} ({}) is typed {:?} but its operands give {:?}",
                    id.0,
                    n.op.name(),
                    n.ty,
                    inferred
                )));
            }
        }
        let mut out_names = std::collections::HashSet::new();
        for (name, _) in self.outputs.iter().chain(&self.inputs()) {
            if !is_identifier(name) {
                return Err(crate::Error::Graph(format!(
                    "{name:?} is not a MIL identifier (letters, digits, '_', not starting with a digit)"
                )));
            }
        }
        for (name, id) in &self.outputs {
            if names.contains(name) {
                return Err(crate::Error::Graph(format!(
                    "{name} names both an input and an output"
                )));
            }
            if id.index() >= self.nodes.len() {
                return Err(crate::Error::Graph(format!(
                    "output {name} names a missing node"
                )));
            }
            if !out_names.insert(name) {
                return Err(crate::Error::Graph(format!(
                    "output name {name} is used twice"
                )));
            }
        }
        if self.outputs.is_empty() {
            return Err(crate::Error::Graph("the graph has no outputs".to_string()));
        }
        Ok(())
    }

    /// Rebuilds the graph keeping only nodes for which `keep` is true, remapping ids.
    /// `replace[i]` redirects uses of node `i` to another node first.
    pub(crate) fn rebuild(&self, keep: &[bool], replace: &[NodeId]) -> Graph {
        let resolve = |mut id: NodeId| {
            while replace[id.index()] != id {
                id = replace[id.index()];
            }
            id
        };
        let mut remap = vec![None; self.nodes.len()];
        let mut nodes = Vec::new();
        for id in self.ids() {
            if !keep[id.index()] || resolve(id) != id {
                continue;
            }
            let mut n = self.node(id).clone();
            n.inputs = n
                .inputs
                .iter()
                .map(|i| remap[resolve(*i).index()].expect("operands precede users"))
                .collect();
            remap[id.index()] = Some(NodeId(nodes.len() as u32));
            nodes.push(n);
        }
        let outputs = self
            .outputs
            .iter()
            .map(|(name, o)| {
                (
                    name.clone(),
                    remap[resolve(*o).index()].expect("outputs are kept"),
                )
            })
            .collect();
        Graph { nodes, outputs }
    }
}

/// True for a valid MIL identifier: ASCII letters, digits and `_`, not starting with a digit.
pub fn is_identifier(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}
