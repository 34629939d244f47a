//! The graph builder: creates typed primitive nodes, with inference checking every step.

use crate::error::{Error, Result};
use crate::graph::{Binary, ConstData, ConvParams, Graph, Node, NodeId, Op, Reduce, Unary};
use crate::infer::infer;
use mil::{DType, TensorType};

/// How a kernel's weights reach the device (design "Weights: baked or dynamic").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WeightMode {
    /// Weights are BLOBFILE constants compiled into the program; linear layers are 1×1 convs.
    Baked,
    /// Weights are program inputs; linear layers are matmuls. Compiled once, never reloaded.
    Dynamic,
}

/// Builds a [`Graph`] node by node.
#[derive(Debug)]
pub struct GraphBuilder {
    graph: Graph,
    mode: WeightMode,
    dtype: DType,
}

impl GraphBuilder {
    /// A builder for fp16 activations with weights in `mode`.
    pub fn new(mode: WeightMode) -> Self {
        GraphBuilder::with_dtype(mode, DType::Fp16)
    }

    /// A builder whose activations, weights and scalar constants have `dtype` (fp16 for the
    /// device; fp32 for the host path, which runs the same programs without fp16 rounding).
    pub fn with_dtype(mode: WeightMode, dtype: DType) -> Self {
        GraphBuilder {
            graph: Graph::default(),
            mode,
            dtype,
        }
    }

    /// The weight mode.
    pub fn mode(&self) -> WeightMode {
        self.mode
    }

    /// The activation dtype.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The type of a node built so far.
    pub fn ty(&self, id: NodeId) -> &TensorType {
        self.graph.ty(id)
    }

    /// The shape of a node built so far.
    pub fn shape(&self, id: NodeId) -> Vec<usize> {
        self.graph.ty(id).shape.clone()
    }

    fn push_typed(&mut self, op: Op, inputs: Vec<NodeId>, ty: TensorType) -> NodeId {
        let id = NodeId(self.graph.nodes.len() as u32);
        self.graph.nodes.push(Node {
            op,
            inputs,
            ty,
            name: None,
        });
        id
    }

    /// Adds a primitive op node, inferring its type.
    pub fn push(&mut self, op: Op, inputs: &[NodeId]) -> Result<NodeId> {
        if let Some(bad) = inputs.iter().find(|i| i.index() >= self.graph.nodes.len()) {
            return Err(Error::Graph(format!(
                "{}: operand {} does not exist",
                op.name(),
                bad.0
            )));
        }
        let types: Vec<&TensorType> = inputs.iter().map(|i| self.graph.ty(*i)).collect();
        let ty = infer(&op, &types)?;
        Ok(self.push_typed(op, inputs.to_vec(), ty))
    }

    /// Gives a node a name for the emitted MIL (made unique at lowering).
    pub fn name(&mut self, id: NodeId, name: &str) -> NodeId {
        self.graph.nodes[id.index()].name = Some(name.to_string());
        id
    }

    /// A program input.
    pub fn input(&mut self, name: &str, dtype: DType, shape: &[usize]) -> NodeId {
        let id = self.push_typed(
            Op::Input {
                name: name.to_string(),
            },
            vec![],
            TensorType::new(dtype, shape.to_vec()),
        );
        self.name(id, name)
    }

    /// A constant tensor.
    pub fn constant(&mut self, dtype: DType, shape: &[usize], values: Vec<f32>) -> Result<NodeId> {
        self.const_node(dtype, shape, values, None)
    }

    fn const_node(
        &mut self,
        dtype: DType,
        shape: &[usize],
        values: Vec<f32>,
        weight: Option<String>,
    ) -> Result<NodeId> {
        let numel: usize = shape.iter().product();
        if values.len() != numel {
            return Err(Error::Shape {
                op: "const".to_string(),
                message: format!(
                    "{} values for shape {shape:?} ({numel} elements)",
                    values.len()
                ),
            });
        }
        let data = ConstData {
            dtype,
            shape: shape.to_vec(),
            values,
        };
        let ty = data.ty();
        Ok(self.push_typed(Op::Const { data, weight }, vec![], ty))
    }

    /// A scalar constant of the activation dtype.
    pub fn scalar(&mut self, value: f32) -> NodeId {
        let dtype = self.dtype;
        self.push_typed(
            Op::Const {
                data: ConstData {
                    dtype,
                    shape: vec![],
                    values: vec![value],
                },
                weight: None,
            },
            vec![],
            TensorType::new(dtype, vec![]),
        )
    }

    /// A weight: a baked constant, or in dynamic mode a program input named `name`
    /// (the values are then supplied at eval time and `values` is ignored).
    pub fn weight(&mut self, name: &str, shape: &[usize], values: Vec<f32>) -> Result<NodeId> {
        match self.mode {
            WeightMode::Baked => {
                let id = self.const_node(self.dtype, shape, values, Some(name.to_string()))?;
                Ok(self.name(id, name))
            }
            WeightMode::Dynamic => Ok(self.input(name, self.dtype, shape)),
        }
    }

    /// Marks `id` as a program output named `name`.
    pub fn output(&mut self, name: &str, id: NodeId) {
        self.graph.outputs.push((name.to_string(), id));
    }

    /// Finishes the graph, checking its invariants.
    pub fn finish(self) -> Result<Graph> {
        self.graph.check()?;
        Ok(self.graph)
    }

    /// An elementwise unary op.
    pub fn unary(&mut self, u: Unary, x: NodeId) -> Result<NodeId> {
        self.push(Op::Unary(u), &[x])
    }

    /// An elementwise binary op.
    pub fn binary(&mut self, b: Binary, x: NodeId, y: NodeId) -> Result<NodeId> {
        self.push(Op::Binary(b), &[x, y])
    }

    /// `x + y`.
    pub fn add(&mut self, x: NodeId, y: NodeId) -> Result<NodeId> {
        self.binary(Binary::Add, x, y)
    }

    /// `x - y`.
    pub fn sub(&mut self, x: NodeId, y: NodeId) -> Result<NodeId> {
        self.binary(Binary::Sub, x, y)
    }

    /// `x * y`.
    pub fn mul(&mut self, x: NodeId, y: NodeId) -> Result<NodeId> {
        self.binary(Binary::Mul, x, y)
    }

    /// `x / y`.
    pub fn div(&mut self, x: NodeId, y: NodeId) -> Result<NodeId> {
        self.binary(Binary::Div, x, y)
    }

    /// `x * c` for a scalar constant `c`.
    pub fn mul_scalar(&mut self, x: NodeId, c: f32) -> Result<NodeId> {
        let s = self.scalar(c);
        self.mul(x, s)
    }

    /// `x + c` for a scalar constant `c`.
    pub fn add_scalar(&mut self, x: NodeId, c: f32) -> Result<NodeId> {
        let s = self.scalar(c);
        self.add(x, s)
    }

    /// `x ^ c` for a scalar constant `c`.
    pub fn pow_scalar(&mut self, x: NodeId, c: f32) -> Result<NodeId> {
        let s = self.scalar(c);
        self.binary(Binary::Pow, x, s)
    }

    /// Softmax along `axis`.
    pub fn softmax(&mut self, x: NodeId, axis: i64) -> Result<NodeId> {
        self.push(Op::Softmax { axis }, &[x])
    }

    /// A reduction over `axes`.
    pub fn reduce(
        &mut self,
        kind: Reduce,
        x: NodeId,
        axes: &[i64],
        keep_dims: bool,
    ) -> Result<NodeId> {
        self.push(
            Op::Reduce {
                kind,
                axes: axes.to_vec(),
                keep_dims,
            },
            &[x],
        )
    }

    /// A batched matrix product.
    pub fn matmul(
        &mut self,
        x: NodeId,
        y: NodeId,
        transpose_x: bool,
        transpose_y: bool,
    ) -> Result<NodeId> {
        self.push(
            Op::Matmul {
                transpose_x,
                transpose_y,
            },
            &[x, y],
        )
    }

    /// A 2-D convolution, optionally with a bias (legalized to conv + add before lowering).
    pub fn conv(
        &mut self,
        x: NodeId,
        weight: NodeId,
        bias: Option<NodeId>,
        params: ConvParams,
    ) -> Result<NodeId> {
        let mut operands = vec![x, weight];
        operands.extend(bias);
        self.push(Op::Conv(params), &operands)
    }

    /// A reshape to `shape`.
    pub fn reshape(&mut self, x: NodeId, shape: &[usize]) -> Result<NodeId> {
        self.push(
            Op::Reshape {
                shape: shape.to_vec(),
            },
            &[x],
        )
    }

    /// An axis permutation.
    pub fn transpose(&mut self, x: NodeId, perm: &[usize]) -> Result<NodeId> {
        self.push(
            Op::Transpose {
                perm: perm.to_vec(),
            },
            &[x],
        )
    }

    /// A dtype conversion.
    pub fn cast(&mut self, x: NodeId, dtype: DType) -> Result<NodeId> {
        self.push(Op::Cast { dtype }, &[x])
    }

    /// The slice `begin..end` (stride 1) on every axis.
    pub fn slice(&mut self, x: NodeId, begin: &[usize], end: &[usize]) -> Result<NodeId> {
        self.push(
            Op::Slice {
                begin: begin.to_vec(),
                end: end.to_vec(),
            },
            &[x],
        )
    }

    /// The slice `begin..end` of one axis, keeping the others whole.
    pub fn slice_axis(
        &mut self,
        x: NodeId,
        axis: usize,
        begin: usize,
        end: usize,
    ) -> Result<NodeId> {
        let shape = self.shape(x);
        if axis >= shape.len() {
            return crate::error::shape_err(
                "slice_by_index",
                format!("axis {axis} is out of range for {shape:?}"),
            );
        }
        let mut b = vec![0; shape.len()];
        let mut e = shape;
        b[axis] = begin;
        e[axis] = end;
        self.slice(x, &b, &e)
    }
}
