//! The emulator's compiled form of a MIL program: parsed from the text, verified against the
//! op table and catalog, weights decoded from the blob bytes once (C7: a snapshot), and every
//! op turned into a step whose constant parameters are already resolved.

use crate::emulator::{
    self as k, BinaryOp, ConvParams, Numerics, PackedWeight, Padding, ReduceOp, SliceSpec, Tensor,
    UnaryOp,
};
use crate::error::{Error, Result};
use mil::blobfile::BlobFile;
use mil::bundle::ProgramBundle;
use mil::verify::VerifyOptions;
use mil::{Arg, DType, Literal, OpKind, Operation, Scalar, TensorData, ValueType};
use std::collections::HashMap;
use std::sync::Arc;

/// Index of a value in the evaluation environment.
type Slot = usize;

/// A program input or output: MIL name, dtype, shape and environment slot.
#[derive(Clone, Debug, PartialEq)]
pub struct IoSlot {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub(crate) slot: Slot,
}

impl IoSlot {
    /// Packed size in bytes.
    pub fn packed_bytes(&self) -> usize {
        self.shape.iter().product::<usize>() * self.dtype.size_bytes().unwrap_or(0)
    }
}

/// What a step computes, with constant operands resolved.
#[derive(Debug)]
enum Kind {
    Binary(BinaryOp),
    Unary(UnaryOp),
    Softmax(i64),
    Reduce(ReduceOp, Option<Vec<i64>>, bool),
    Matmul(bool, bool),
    /// Conv with a constant weight packed once.
    ConvConst(Arc<PackedWeight>, ConvParams),
    /// Conv whose weight is a runtime value (packed per eval).
    Conv(ConvParams),
    Reshape(Vec<i64>),
    Transpose(Vec<i64>),
    Cast(DType),
    SliceByIndex(SliceSpec),
    SliceBySize(Vec<i64>, Vec<i64>),
    Identity,
    Attention,
    Dequantize(Option<i64>),
    Quantize(Option<i64>, DType),
}

/// One op: its kind, operand slots, result slot and declared result type.
#[derive(Debug)]
struct Step {
    kind: Kind,
    op: String,
    args: Vec<Slot>,
    out: Slot,
    shape: Vec<usize>,
    /// Slots whose last use is this step (freed after it).
    frees: Vec<Slot>,
}

/// A compiled program, ready to evaluate.
#[derive(Debug)]
pub struct Plan {
    /// Inputs in declaration order.
    pub inputs: Vec<IoSlot>,
    /// Outputs in the order returned.
    pub outputs: Vec<IoSlot>,
    consts: Vec<(Slot, Arc<Tensor>)>,
    steps: Vec<Step>,
    slots: usize,
}

/// The most elements any value of a program may have (1 GiB of f32): far past what the
/// device handles, and small enough that a hostile or mistaken shape is refused at compile
/// time instead of exhausting memory at run time.
pub const MAX_ELEMENTS: usize = 1 << 28;

/// Checks a value's element count against [`MAX_ELEMENTS`] without overflowing.
fn check_size(shape: &[usize]) -> std::result::Result<(), String> {
    let count = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
    match count {
        Some(n) if n <= MAX_ELEMENTS => Ok(()),
        _ => Err(format!(
            "shape {shape:?} has {} elements, past the emulator's limit of 2^28",
            count.map_or("more than 2^64".to_string(), |n| n.to_string())
        )),
    }
}

fn compile_err(op: &Operation, msg: impl std::fmt::Display) -> Error {
    Error::Compile(format!("{}: {} \"{}\": {msg}", op.span, op.op, op.result))
}

/// Parses, verifies and plans a bundle.
pub fn compile(bundle: &ProgramBundle, options: &VerifyOptions, nx: Numerics) -> Result<Plan> {
    let program =
        mil::parse::parse_program(&bundle.mil).map_err(|e| Error::Compile(e.to_string()))?;
    mil::verify::check(&program, options).map_err(|e| Error::Compile(e.to_string()))?;
    let main = program
        .main()
        .ok_or_else(|| Error::Compile("the program has no main function".to_string()))?;
    let mut b = Builder {
        bundle,
        nx,
        slots: HashMap::new(),
        consts: HashMap::new(),
        plan: Plan {
            inputs: Vec::new(),
            outputs: Vec::new(),
            consts: Vec::new(),
            steps: Vec::new(),
            slots: 0,
        },
        blob_files: HashMap::new(),
    };
    for p in &main.inputs {
        check_size(p.ty.shape()).map_err(|e| Error::Compile(format!("input {}: {e}", p.name)))?;
        let slot = b.new_slot(&p.name);
        b.plan.inputs.push(io_slot(&p.name, &p.ty, slot));
    }
    for op in &main.body {
        b.op(op)?;
    }
    for name in &main.outputs {
        let slot = b.slots[name.as_str()];
        let ty = main
            .body
            .iter()
            .find(|o| &o.result == name)
            .map(|o| &o.ty)
            .ok_or_else(|| Error::Compile(format!("returned value {name} is not an op result")))?;
        b.plan.outputs.push(io_slot(name, ty, slot));
    }
    let mut plan = b.plan;
    plan.schedule_frees();
    Ok(plan)
}

fn io_slot(name: &str, ty: &ValueType, slot: Slot) -> IoSlot {
    IoSlot {
        name: name.to_string(),
        dtype: ty.dtype(),
        shape: ty.shape().to_vec(),
        slot,
    }
}

struct Builder<'a> {
    bundle: &'a ProgramBundle,
    nx: Numerics,
    slots: HashMap<String, Slot>,
    /// Constant values by name, for resolving parameters.
    consts: HashMap<String, (Literal, Option<Arc<Tensor>>)>,
    plan: Plan,
    blob_files: HashMap<String, BlobFile<'a>>,
}

impl<'a> Builder<'a> {
    fn new_slot(&mut self, name: &str) -> Slot {
        let s = self.plan.slots;
        self.plan.slots += 1;
        self.slots.insert(name.to_string(), s);
        s
    }

    fn op(&mut self, op: &Operation) -> Result<()> {
        let kind = OpKind::from_name(&op.op).ok_or_else(|| compile_err(op, "unknown op"))?;
        check_size(op.ty.shape()).map_err(|e| compile_err(op, e))?;
        if kind == OpKind::Const {
            let lit = op
                .const_value()
                .ok_or_else(|| compile_err(op, "const without val"))?;
            let tensor = self.literal_tensor(op, lit)?.map(Arc::new);
            if let Some(t) = &tensor {
                let slot = self.new_slot(&op.result);
                self.plan.consts.push((slot, t.clone()));
            }
            self.consts.insert(op.result.clone(), (lit.clone(), tensor));
            return Ok(());
        }
        let (kind, operands) = self.kind(op, kind)?;
        let args = operands
            .iter()
            .map(|name| self.value_slot(op, name))
            .collect::<Result<Vec<_>>>()?;
        let out = self.new_slot(&op.result);
        self.plan.steps.push(Step {
            kind,
            op: op.op.clone(),
            args,
            out,
            shape: op.ty.shape().to_vec(),
            frees: Vec::new(),
        });
        Ok(())
    }

    /// The slot of a tensor operand, materializing inline literals as constants.
    fn value_slot(&mut self, op: &Operation, name: &str) -> Result<Slot> {
        match op.arg(name) {
            Some(Arg::Var(v)) => self
                .slots
                .get(v.as_str())
                .copied()
                .ok_or_else(|| compile_err(op, format!("{name}: {v} is not a tensor value"))),
            Some(Arg::Lit(lit)) => {
                let t = self
                    .literal_tensor(op, lit)?
                    .ok_or_else(|| compile_err(op, format!("{name}: not a tensor literal")))?;
                let slot = self.new_slot(&format!("{}#{name}", op.result));
                self.plan.consts.push((slot, Arc::new(t)));
                Ok(slot)
            }
            _ => Err(compile_err(op, format!("{name}: missing operand"))),
        }
    }

    /// The constant literal behind operand `name`, if it is one.
    fn const_arg(&self, op: &Operation, name: &str) -> Option<Literal> {
        match op.arg(name)? {
            Arg::Var(v) => self.consts.get(v.as_str()).map(|(l, _)| l.clone()),
            Arg::Lit(l) => Some(l.clone()),
            Arg::Tuple(_) => None,
        }
    }

    /// The constant tensor behind operand `name`, decoded.
    fn const_tensor(&mut self, op: &Operation, name: &str) -> Result<Option<Arc<Tensor>>> {
        match op.arg(name) {
            Some(Arg::Var(v)) => Ok(self.consts.get(v.as_str()).and_then(|(_, t)| t.clone())),
            Some(Arg::Lit(l)) => Ok(self.literal_tensor(op, l)?.map(Arc::new)),
            _ => Ok(None),
        }
    }

    fn ints(&self, op: &Operation, name: &str) -> Result<Option<Vec<i64>>> {
        match self.const_arg(op, name) {
            None => Ok(None),
            Some(l) => l
                .as_i64s()
                .map(Some)
                .ok_or_else(|| compile_err(op, format!("{name}: expected integer constants"))),
        }
    }

    fn bools(&self, op: &Operation, name: &str) -> Option<Vec<bool>> {
        match self.const_arg(op, name)? {
            Literal::Tensor {
                data: TensorData::Bool(v),
                ..
            } => Some(v),
            Literal::Scalar(Scalar::Bool(b)) => Some(vec![b]),
            _ => None,
        }
    }

    fn flag(&self, op: &Operation, name: &str) -> bool {
        self.const_arg(op, name)
            .and_then(|l| l.as_bool())
            .unwrap_or(false)
    }

    fn float(&self, op: &Operation, name: &str, default: f32) -> f32 {
        match self.const_arg(op, name) {
            Some(Literal::Scalar(s)) => s.as_f64().map_or(default, |v| v as f32),
            _ => default,
        }
    }

    fn kind(&mut self, op: &Operation, kind: OpKind) -> Result<(Kind, Vec<&'static str>)> {
        use OpKind as O;
        let x = vec!["x"];
        Ok(match kind {
            O::Add | O::Sub | O::Mul | O::RealDiv | O::Pow => {
                let b = match kind {
                    O::Add => BinaryOp::Add,
                    O::Sub => BinaryOp::Sub,
                    O::Mul => BinaryOp::Mul,
                    O::RealDiv => BinaryOp::RealDiv,
                    _ => BinaryOp::Pow,
                };
                (Kind::Binary(b), vec!["x", "y"])
            }
            O::Exp => (Kind::Unary(UnaryOp::Exp), x),
            O::Log => (
                Kind::Unary(UnaryOp::Log {
                    epsilon: self.float(op, "epsilon", 1e-45),
                }),
                x,
            ),
            O::Sqrt => (Kind::Unary(UnaryOp::Sqrt), x),
            O::Rsqrt => (
                Kind::Unary(UnaryOp::Rsqrt {
                    epsilon: self.float(op, "epsilon", 1e-12),
                }),
                x,
            ),
            O::Tanh => (Kind::Unary(UnaryOp::Tanh), x),
            O::Sigmoid => (Kind::Unary(UnaryOp::Sigmoid), x),
            O::Relu => (Kind::Unary(UnaryOp::Relu), x),
            O::Identity => (Kind::Identity, x),
            O::Softmax => {
                let axis = self
                    .ints(op, "axis")?
                    .and_then(|v| v.first().copied())
                    .unwrap_or(-1);
                (Kind::Softmax(axis), x)
            }
            O::ReduceSum | O::ReduceMean | O::ReduceMax => {
                let r = match kind {
                    O::ReduceSum => ReduceOp::Sum,
                    O::ReduceMean => ReduceOp::Mean,
                    _ => ReduceOp::Max,
                };
                (
                    Kind::Reduce(r, self.ints(op, "axes")?, self.flag(op, "keep_dims")),
                    x,
                )
            }
            O::Matmul => (
                Kind::Matmul(self.flag(op, "transpose_x"), self.flag(op, "transpose_y")),
                vec!["x", "y"],
            ),
            O::Conv => self.conv(op)?,
            O::Reshape => (
                Kind::Reshape(self.ints(op, "shape")?.unwrap_or_default()),
                x,
            ),
            O::Transpose => (
                Kind::Transpose(self.ints(op, "perm")?.unwrap_or_default()),
                x,
            ),
            O::Cast => {
                let name = self
                    .const_arg(op, "dtype")
                    .and_then(|l| l.as_str().map(str::to_string));
                let dtype = name
                    .as_deref()
                    .and_then(DType::from_name)
                    .ok_or_else(|| compile_err(op, format!("cast to unknown dtype {name:?}")))?;
                (Kind::Cast(dtype), x)
            }
            O::SliceByIndex => {
                let spec = SliceSpec {
                    begin: self.ints(op, "begin")?.unwrap_or_default(),
                    end: self.ints(op, "end")?.unwrap_or_default(),
                    stride: self.ints(op, "stride")?,
                    begin_mask: self.bools(op, "begin_mask"),
                    end_mask: self.bools(op, "end_mask"),
                    squeeze_mask: self.bools(op, "squeeze_mask"),
                };
                (Kind::SliceByIndex(spec), x)
            }
            O::SliceBySize => (
                Kind::SliceBySize(
                    self.ints(op, "begin")?.unwrap_or_default(),
                    self.ints(op, "size")?.unwrap_or_default(),
                ),
                x,
            ),
            O::ScaledDotProductAttention => (Kind::Attention, vec!["query", "key", "value"]),
            O::ConstexprAffineDequantize => {
                let axis = self.ints(op, "axis")?.and_then(|v| v.first().copied());
                (
                    Kind::Dequantize(axis),
                    vec!["quantized_data", "zero_point", "scale"],
                )
            }
            O::Dequantize => {
                let axis = self.ints(op, "axis")?.and_then(|v| v.first().copied());
                let mut operands = vec!["input", "scale"];
                if op.arg("zero_point").is_some() {
                    operands.push("zero_point");
                }
                (Kind::Dequantize(axis), operands)
            }
            O::Quantize => {
                let axis = self.ints(op, "axis")?.and_then(|v| v.first().copied());
                let dtype = self
                    .const_arg(op, "output_dtype")
                    .and_then(|l| l.as_str().and_then(DType::from_name))
                    .ok_or_else(|| compile_err(op, "output_dtype must be \"int8\" or \"uint8\""))?;
                let mut operands = vec!["input", "scale"];
                if op.arg("zero_point").is_some() {
                    operands.push("zero_point");
                }
                (Kind::Quantize(axis, dtype), operands)
            }
            O::Const | O::Concat | O::Gelu | O::Silu => {
                return Err(compile_err(op, "the device does not support this op"));
            }
        })
    }

    fn conv(&mut self, op: &Operation) -> Result<(Kind, Vec<&'static str>)> {
        let pair = |v: Option<Vec<i64>>| -> [usize; 2] {
            match v.as_deref() {
                Some([a, b]) => [*a as usize, *b as usize],
                _ => [1, 1],
            }
        };
        let pad_type = self
            .const_arg(op, "pad_type")
            .and_then(|l| l.as_str().map(str::to_string))
            .unwrap_or_else(|| "valid".to_string());
        let pads = self.ints(op, "pad")?.unwrap_or_else(|| vec![0; 4]);
        let padding = match pad_type.as_str() {
            "valid" => Padding::Valid,
            "same" => Padding::Same,
            "same_lower" => Padding::SameLower,
            "custom" => match pads.as_slice() {
                [t, b, l, r] => {
                    Padding::Custom([*t as usize, *b as usize, *l as usize, *r as usize])
                }
                _ => return Err(compile_err(op, "pad must have 4 entries")),
            },
            other => return Err(compile_err(op, format!("unknown pad_type {other:?}"))),
        };
        let params = ConvParams {
            strides: pair(self.ints(op, "strides")?),
            dilations: pair(self.ints(op, "dilations")?),
            padding,
            groups: self
                .ints(op, "groups")?
                .and_then(|v| v.first().copied())
                .unwrap_or(1) as usize,
        };
        match self.const_tensor(op, "weight")? {
            Some(w) => {
                let packed = PackedWeight::new((*w).clone()).map_err(|e| compile_err(op, e))?;
                Ok((Kind::ConvConst(Arc::new(packed), params), vec!["x"]))
            }
            None => Ok((Kind::Conv(params), vec!["x", "weight"])),
        }
    }

    /// Decodes a literal into a tensor (`None` for strings), reading blobs from the bundle.
    fn literal_tensor(&mut self, op: &Operation, lit: &Literal) -> Result<Option<Tensor>> {
        let mut t = match lit {
            Literal::Scalar(Scalar::String(_)) => return Ok(None),
            Literal::Scalar(s) => Tensor::scalar(
                s.dtype(),
                s.as_f64()
                    .unwrap_or(f64::from(u8::from(s == &Scalar::Bool(true))))
                    as f32,
            ),
            Literal::Tensor { ty, data } => {
                if ty.dtype == DType::String {
                    return Ok(None);
                }
                let values = data
                    .as_f32s()
                    .ok_or_else(|| compile_err(op, "non-numeric tensor literal"))?;
                Tensor::new(ty.dtype, ty.shape.clone(), values).map_err(|e| compile_err(op, e))?
            }
            Literal::Blob { ty, path, offset } => {
                let bytes = self.bundle.weight_file(path).ok_or_else(|| {
                    compile_err(op, format!("weight file {path} was not provided"))
                })?;
                if !self.blob_files.contains_key(path) {
                    let file = BlobFile::parse(bytes)
                        .map_err(|e| compile_err(op, e.with_blob_path(path.clone())))?;
                    self.blob_files.insert(path.clone(), file);
                }
                let blob = self.blob_files[path]
                    .check_type(*offset, ty.dtype, ty.numel())
                    .map_err(|e| compile_err(op, e.with_blob_path(path.clone())))?;
                let values = blob.to_f32_vec().map_err(|e| compile_err(op, e))?;
                Tensor::new(ty.dtype, ty.shape.clone(), values).map_err(|e| compile_err(op, e))?
            }
        };
        self.nx.admit_input(t.dtype, &mut t.data);
        Ok(Some(t))
    }
}

impl Plan {
    /// Marks, for each step, the operand slots it uses last, so their memory is freed.
    fn schedule_frees(&mut self) {
        let mut last_use = vec![None; self.slots];
        for (i, step) in self.steps.iter().enumerate() {
            for &a in &step.args {
                last_use[a] = Some(i);
            }
        }
        let keep: Vec<Slot> = self
            .outputs
            .iter()
            .map(|o| o.slot)
            .chain(self.consts.iter().map(|(s, _)| *s))
            .collect();
        for (slot, last) in last_use.into_iter().enumerate() {
            if let Some(i) = last {
                if !keep.contains(&slot) {
                    self.steps[i].frees.push(slot);
                }
            }
        }
    }

    /// Runs the program on input tensors (in declaration order), returning the outputs in
    /// returned order.
    pub fn run(&self, inputs: Vec<Tensor>, nx: Numerics) -> Result<Vec<Tensor>> {
        let mut env: Vec<Option<Arc<Tensor>>> = vec![None; self.slots];
        for (slot, t) in &self.consts {
            env[*slot] = Some(t.clone());
        }
        for (io, t) in self.inputs.iter().zip(inputs) {
            env[io.slot] = Some(Arc::new(t));
        }
        for step in &self.steps {
            let args: Vec<&Tensor> = step
                .args
                .iter()
                .map(|&s| env[s].as_deref().expect("operands are computed before use"))
                .collect();
            let result = execute(&step.kind, &args, nx).map_err(|e| Error::Eval {
                rule: None,
                message: format!("{} \"{}\": {e}", step.op, step.out),
            })?;
            if result.shape != step.shape {
                return crate::error::eval_err(
                    None,
                    format!(
                        "{} produced shape {:?}, declared {:?}",
                        step.op, result.shape, step.shape
                    ),
                );
            }
            env[step.out] = Some(Arc::new(result));
            for &f in &step.frees {
                env[f] = None;
            }
        }
        Ok(self
            .outputs
            .iter()
            .map(|o| {
                env[o.slot]
                    .as_deref()
                    .expect("outputs are computed")
                    .clone()
            })
            .collect())
    }
}

fn execute(kind: &Kind, a: &[&Tensor], nx: Numerics) -> Result<Tensor, k::KernelError> {
    match kind {
        Kind::Binary(op) => k::binary(*op, a[0], a[1], nx),
        Kind::Unary(op) => Ok(k::unary(*op, a[0], nx)),
        Kind::Softmax(axis) => k::softmax(a[0], *axis, nx),
        Kind::Reduce(op, axes, keep) => k::reduce(*op, a[0], axes.as_deref(), *keep, nx),
        Kind::Matmul(tx, ty) => k::matmul(a[0], a[1], *tx, *ty, nx),
        Kind::ConvConst(w, p) => k::conv(a[0], w, p, nx),
        Kind::Conv(p) => k::conv(a[0], &PackedWeight::new(a[1].clone())?, p, nx),
        Kind::Reshape(shape) => k::reshape(a[0], shape),
        Kind::Transpose(perm) => k::transpose(a[0], perm),
        Kind::Cast(dtype) => k::cast(a[0], *dtype, nx),
        Kind::SliceByIndex(spec) => k::slice_by_index(a[0], spec),
        Kind::SliceBySize(begin, size) => k::slice_by_size(a[0], begin, size),
        Kind::Identity => Ok(k::identity(a[0])),
        Kind::Attention => k::scaled_dot_product_attention(a[0], a[1], a[2], nx),
        Kind::Dequantize(axis) => match a.len() {
            3 => k::dequantize(a[0], Some(a[1]), a[2], *axis, nx),
            _ => k::dequantize(a[0], None, a[1], *axis, nx),
        },
        Kind::Quantize(axis, dtype) => k::quantize(a[0], a.get(2).copied(), a[1], *axis, *dtype),
    }
}
