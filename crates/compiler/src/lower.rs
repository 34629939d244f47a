//! Lowering: graph IR to a MIL program plus its weight blob file.
//!
//! Every node becomes one MIL operation (constants become `const` ops); op parameters
//! (axes, permutations, matmul transpose flags, conv settings) become named `const` values,
//! which is what the device requires (C15). Named weights and constants larger than
//! [`INLINE_LIMIT`] elements are written to one BLOBFILE, `weights/weight.bin`, and referenced
//! by their record offset (C8); smaller constants are inline literals.

use crate::error::Result;
use crate::graph::{ConstData, Graph, NodeId, Op};
use half::f16;
use mil::blobfile::BlobWriter;
use mil::bundle::ProgramBundle;
use mil::{
    Arg, DType, Literal, Operation, Param, Program, Scalar, TensorData, TensorType, ValueType,
};
use std::collections::HashSet;

/// Constants with more elements than this go to the blob file.
pub const INLINE_LIMIT: usize = 64;

/// The weight file every lowered program uses.
pub const WEIGHT_FILE: &str = "weights/weight.bin";

/// A lowered program: the MIL AST and the bundle (text + weight file) that carries it.
#[derive(Clone, Debug)]
pub struct Lowered {
    pub program: Program,
    pub bundle: ProgramBundle,
}

/// Lowers a graph to MIL and its weights.
pub fn lower(g: &Graph) -> Result<Lowered> {
    let mut cx = Lowering::new(g);
    for id in g.ids() {
        cx.node(id);
    }
    let outputs = cx.outputs();
    let program = Program::with_main(cx.params, cx.body, outputs);
    let mut bundle = ProgramBundle {
        mil: mil::print::print_program(&program),
        weights: Vec::new(),
    };
    if cx.blobs_used {
        bundle
            .weights
            .push((WEIGHT_FILE.to_string(), cx.blobs.finish()));
    }
    Ok(Lowered { program, bundle })
}

struct Lowering<'g> {
    g: &'g Graph,
    names: Vec<String>,
    used: HashSet<String>,
    params: Vec<Param>,
    body: Vec<Operation>,
    blobs: BlobWriter,
    blobs_used: bool,
}

/// A MIL identifier from a free-form name.
fn sanitize(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, 'v');
    }
    s
}

impl<'g> Lowering<'g> {
    fn new(g: &'g Graph) -> Self {
        let mut cx = Lowering {
            g,
            names: Vec::with_capacity(g.nodes.len()),
            used: HashSet::new(),
            params: Vec::new(),
            body: Vec::new(),
            blobs: BlobWriter::new(),
            blobs_used: false,
        };
        // Input and output names are reserved first: they are the program's interface.
        for (name, _) in g.outputs.iter().chain(&g.inputs()) {
            cx.used.insert(name.clone());
        }
        let mut output_claimed = HashSet::new();
        for id in g.ids() {
            let n = g.node(id);
            let out_name = g
                .outputs
                .iter()
                .find(|(_, o)| *o == id)
                .map(|(name, _)| name.clone())
                .filter(|_| !matches!(n.op, Op::Input { .. }) && output_claimed.insert(id));
            let name = match (out_name, &n.op) {
                (Some(name), _) => name,
                (None, Op::Input { name }) => name.clone(),
                (None, _) => {
                    let base = n.name.clone().unwrap_or_else(|| format!("v{}", id.0));
                    cx.fresh(&base)
                }
            };
            cx.names.push(name);
        }
        cx
    }

    /// A unique identifier based on `base`.
    fn fresh(&mut self, base: &str) -> String {
        let base = sanitize(base);
        let mut name = base.clone();
        let mut k = 1;
        while !self.used.insert(name.clone()) {
            name = format!("{base}_{k}");
            k += 1;
        }
        name
    }

    fn var(&self, id: NodeId) -> Arg {
        Arg::Var(self.names[id.index()].clone())
    }

    /// Emits a named `const` for an op parameter and returns it as an operand.
    fn param(&mut self, owner: &str, what: &str, val: Literal) -> Arg {
        let name = self.fresh(&format!("{owner}_{what}"));
        self.body.push(Operation::constant(&name, val));
        Arg::Var(name)
    }

    fn node(&mut self, id: NodeId) {
        let n = self.g.node(id);
        let result = self.names[id.index()].clone();
        let ty = value_type(&n.ty);
        let (op, args): (&str, Vec<(&str, Arg)>) = match &n.op {
            Op::Input { .. } => {
                self.params.push(Param { name: result, ty });
                return;
            }
            Op::Const { data, weight } => {
                let val = self.const_literal(data, weight.is_some());
                self.body.push(Operation::constant(&result, val));
                return;
            }
            Op::Unary(u) => (u.mil_name(), vec![("x", self.var(n.inputs[0]))]),
            Op::Binary(b) => (
                b.mil_name(),
                vec![("x", self.var(n.inputs[0])), ("y", self.var(n.inputs[1]))],
            ),
            Op::Softmax { axis } => {
                let a = self.param(
                    &result,
                    "axis",
                    Literal::Scalar(Scalar::Int32(*axis as i32)),
                );
                ("softmax", vec![("x", self.var(n.inputs[0])), ("axis", a)])
            }
            Op::Reduce {
                kind,
                axes,
                keep_dims,
            } => {
                let axes: Vec<i32> = if axes.is_empty() {
                    (0..self.g.ty(n.inputs[0]).shape.len() as i32).collect()
                } else {
                    axes.iter().map(|&a| a as i32).collect()
                };
                let a = self.param(&result, "axes", Literal::ints(&axes));
                let k = self.param(
                    &result,
                    "keep_dims",
                    Literal::Scalar(Scalar::Bool(*keep_dims)),
                );
                (
                    kind.mil_name(),
                    vec![("x", self.var(n.inputs[0])), ("axes", a), ("keep_dims", k)],
                )
            }
            Op::Matmul {
                transpose_x,
                transpose_y,
            } => {
                let tx = self.param(
                    &result,
                    "transpose_x",
                    Literal::Scalar(Scalar::Bool(*transpose_x)),
                );
                let ty_ = self.param(
                    &result,
                    "transpose_y",
                    Literal::Scalar(Scalar::Bool(*transpose_y)),
                );
                let (a, b) = (self.var(n.inputs[0]), self.var(n.inputs[1]));
                (
                    "matmul",
                    vec![
                        ("transpose_x", tx),
                        ("transpose_y", ty_),
                        ("x", a),
                        ("y", b),
                    ],
                )
            }
            Op::Conv(p) => {
                let i32s =
                    |v: &[usize]| Literal::ints(&v.iter().map(|&d| d as i32).collect::<Vec<_>>());
                let dl = self.param(&result, "dilations", i32s(&p.dilations));
                let gr = self.param(
                    &result,
                    "groups",
                    Literal::Scalar(Scalar::Int32(p.groups as i32)),
                );
                let pd = self.param(&result, "pad", i32s(&p.pads));
                let pt = self.param(
                    &result,
                    "pad_type",
                    Literal::Scalar(Scalar::String("custom".into())),
                );
                let st = self.param(&result, "strides", i32s(&p.strides));
                let (xv, wv) = (self.var(n.inputs[0]), self.var(n.inputs[1]));
                let args = vec![
                    ("dilations", dl),
                    ("groups", gr),
                    ("pad", pd),
                    ("pad_type", pt),
                    ("strides", st),
                    ("weight", wv),
                    ("x", xv),
                ];
                ("conv", args)
            }
            Op::Reshape { shape } => {
                let s = self.param(&result, "shape", Literal::ints(&to_i32(shape)));
                ("reshape", vec![("shape", s), ("x", self.var(n.inputs[0]))])
            }
            Op::Transpose { perm } => {
                let p = self.param(&result, "perm", Literal::ints(&to_i32(perm)));
                ("transpose", vec![("perm", p), ("x", self.var(n.inputs[0]))])
            }
            Op::Cast { dtype } => {
                let d = self.param(
                    &result,
                    "dtype",
                    Literal::Scalar(Scalar::String(dtype.name().into())),
                );
                ("cast", vec![("dtype", d), ("x", self.var(n.inputs[0]))])
            }
            Op::Slice { begin, end } => {
                let b = self.param(&result, "begin", Literal::ints(&to_i32(begin)));
                let e = self.param(&result, "end", Literal::ints(&to_i32(end)));
                (
                    "slice_by_index",
                    vec![("begin", b), ("end", e), ("x", self.var(n.inputs[0]))],
                )
            }
        };
        let args = args.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        self.body.push(Operation::new(op, &result, ty, args));
    }

    /// The literal for a constant: scalar, inline tensor, or a blob reference.
    fn const_literal(&mut self, data: &ConstData, is_weight: bool) -> Literal {
        let ty = data.ty();
        if data.shape.is_empty() {
            return Literal::Scalar(scalar(data.dtype, data.values[0]));
        }
        let to_blob = (is_weight || data.values.len() > INLINE_LIMIT) && data.dtype.is_float();
        if !to_blob {
            return Literal::Tensor {
                ty,
                data: tensor_data(data.dtype, &data.values),
            };
        }
        self.blobs_used = true;
        let offset = match data.dtype {
            DType::Fp32 => self.blobs.add_f32(&data.values),
            _ => {
                let halves: Vec<f16> = data.values.iter().map(|&v| f16::from_f32(v)).collect();
                self.blobs.add_f16(&halves)
            }
        };
        Literal::Blob {
            ty,
            path: format!("{}{WEIGHT_FILE}", mil::bundle::MODEL_PATH),
            offset,
        }
    }

    /// The returned names; an output that is a program input, or that repeats a node already
    /// returned, is copied through an `identity` so every returned name is a distinct op result.
    fn outputs(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        for (name, id) in &self.g.outputs {
            let current = &self.names[id.index()];
            if current != name {
                let ty = value_type(self.g.ty(*id));
                let arg = self.var(*id);
                self.body.push(Operation::new(
                    "identity",
                    name,
                    ty,
                    vec![("x".to_string(), arg)],
                ));
            }
            out.push(name.clone());
        }
        out
    }
}

fn to_i32(v: &[usize]) -> Vec<i32> {
    v.iter().map(|&d| d as i32).collect()
}

/// The MIL value type of an IR tensor type (rank 0 is a scalar).
pub fn value_type(t: &TensorType) -> ValueType {
    if t.shape.is_empty() {
        ValueType::Scalar(t.dtype)
    } else {
        ValueType::Tensor(t.clone())
    }
}

fn scalar(dtype: DType, v: f32) -> Scalar {
    match dtype {
        DType::Fp16 => Scalar::Fp16(f16::from_f32(v)),
        DType::Int32 => Scalar::Int32(v as i32),
        DType::Int8 => Scalar::Int8(v as i8),
        DType::UInt8 => Scalar::UInt8(v as u8),
        DType::Bool => Scalar::Bool(v != 0.0),
        DType::UInt64 => Scalar::UInt64(v as u64),
        DType::Fp32 | DType::String => Scalar::Fp32(v),
    }
}

fn tensor_data(dtype: DType, values: &[f32]) -> TensorData {
    match dtype {
        DType::Fp16 => TensorData::Fp16(values.iter().map(|&v| f16::from_f32(v)).collect()),
        DType::Int32 => TensorData::Int32(values.iter().map(|&v| v as i32).collect()),
        DType::Int8 => TensorData::Int8(values.iter().map(|&v| v as i8).collect()),
        DType::UInt8 => TensorData::UInt8(values.iter().map(|&v| v as u8).collect()),
        DType::Bool => TensorData::Bool(values.iter().map(|&v| v != 0.0).collect()),
        DType::UInt64 => TensorData::UInt64(values.iter().map(|&v| v as u64).collect()),
        DType::Fp32 | DType::String => TensorData::Fp32(values.to_vec()),
    }
}
