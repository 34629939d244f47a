//! The MIL abstract syntax tree: programs, functions, typed values, operations and literals.

use half::f16;

/// Element type of a MIL value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DType {
    Fp16,
    Fp32,
    Int32,
    Int8,
    UInt8,
    Bool,
    String,
    UInt64,
}

impl DType {
    /// Every dtype, in a fixed order.
    pub const ALL: [DType; 8] = [
        DType::Fp16,
        DType::Fp32,
        DType::Int32,
        DType::Int8,
        DType::UInt8,
        DType::Bool,
        DType::String,
        DType::UInt64,
    ];

    /// The spelling used in MIL text (`fp16`, `int32`, …).
    pub fn name(self) -> &'static str {
        match self {
            DType::Fp16 => "fp16",
            DType::Fp32 => "fp32",
            DType::Int32 => "int32",
            DType::Int8 => "int8",
            DType::UInt8 => "uint8",
            DType::Bool => "bool",
            DType::String => "string",
            DType::UInt64 => "uint64",
        }
    }

    /// Parses a MIL dtype spelling.
    pub fn from_name(s: &str) -> Option<DType> {
        DType::ALL.into_iter().find(|d| d.name() == s)
    }

    /// Bytes per element in a surface or blob; `None` for strings.
    pub fn size_bytes(self) -> Option<usize> {
        match self {
            DType::Fp16 => Some(2),
            DType::Fp32 | DType::Int32 => Some(4),
            DType::Int8 | DType::UInt8 | DType::Bool => Some(1),
            DType::UInt64 => Some(8),
            DType::String => None,
        }
    }

    /// True for fp16 and fp32.
    pub fn is_float(self) -> bool {
        matches!(self, DType::Fp16 | DType::Fp32)
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A tensor type: dtype and static shape.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TensorType {
    pub dtype: DType,
    pub shape: Vec<usize>,
}

impl TensorType {
    /// A tensor type from a dtype and shape.
    pub fn new(dtype: DType, shape: impl Into<Vec<usize>>) -> Self {
        TensorType {
            dtype,
            shape: shape.into(),
        }
    }

    /// Number of elements (1 for rank 0).
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Packed size in bytes, `None` for string tensors.
    pub fn size_bytes(&self) -> Option<usize> {
        self.dtype.size_bytes().map(|b| b * self.numel())
    }
}

/// The type of a MIL value: a scalar or a tensor.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ValueType {
    Scalar(DType),
    Tensor(TensorType),
}

impl ValueType {
    /// A tensor value type.
    pub fn tensor(dtype: DType, shape: impl Into<Vec<usize>>) -> Self {
        ValueType::Tensor(TensorType::new(dtype, shape))
    }

    /// The element dtype.
    pub fn dtype(&self) -> DType {
        match self {
            ValueType::Scalar(d) => *d,
            ValueType::Tensor(t) => t.dtype,
        }
    }

    /// The shape; scalars have rank 0.
    pub fn shape(&self) -> &[usize] {
        match self {
            ValueType::Scalar(_) => &[],
            ValueType::Tensor(t) => &t.shape,
        }
    }

    /// The tensor type, if this is a tensor.
    pub fn as_tensor(&self) -> Option<&TensorType> {
        match self {
            ValueType::Tensor(t) => Some(t),
            ValueType::Scalar(_) => None,
        }
    }
}

/// A scalar literal such as `fp16(0.5)` or `string("valid")`.
#[derive(Clone, Debug, PartialEq)]
pub enum Scalar {
    Fp16(f16),
    Fp32(f32),
    Int32(i32),
    Int8(i8),
    UInt8(u8),
    Bool(bool),
    String(String),
    UInt64(u64),
}

impl Scalar {
    /// The scalar's dtype.
    pub fn dtype(&self) -> DType {
        match self {
            Scalar::Fp16(_) => DType::Fp16,
            Scalar::Fp32(_) => DType::Fp32,
            Scalar::Int32(_) => DType::Int32,
            Scalar::Int8(_) => DType::Int8,
            Scalar::UInt8(_) => DType::UInt8,
            Scalar::Bool(_) => DType::Bool,
            Scalar::String(_) => DType::String,
            Scalar::UInt64(_) => DType::UInt64,
        }
    }

    /// The value as f64 for numeric scalars.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Scalar::Fp16(v) => Some(f64::from(*v)),
            Scalar::Fp32(v) => Some(f64::from(*v)),
            Scalar::Int32(v) => Some(f64::from(*v)),
            Scalar::Int8(v) => Some(f64::from(*v)),
            Scalar::UInt8(v) => Some(f64::from(*v)),
            Scalar::UInt64(v) => Some(*v as f64),
            Scalar::Bool(_) | Scalar::String(_) => None,
        }
    }
}

/// The elements of an inline tensor literal, row-major.
#[derive(Clone, Debug, PartialEq)]
pub enum TensorData {
    Fp16(Vec<f16>),
    Fp32(Vec<f32>),
    Int32(Vec<i32>),
    Int8(Vec<i8>),
    UInt8(Vec<u8>),
    Bool(Vec<bool>),
    String(Vec<String>),
    UInt64(Vec<u64>),
}

impl TensorData {
    /// The elements' dtype.
    pub fn dtype(&self) -> DType {
        match self {
            TensorData::Fp16(_) => DType::Fp16,
            TensorData::Fp32(_) => DType::Fp32,
            TensorData::Int32(_) => DType::Int32,
            TensorData::Int8(_) => DType::Int8,
            TensorData::UInt8(_) => DType::UInt8,
            TensorData::Bool(_) => DType::Bool,
            TensorData::String(_) => DType::String,
            TensorData::UInt64(_) => DType::UInt64,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            TensorData::Fp16(v) => v.len(),
            TensorData::Fp32(v) => v.len(),
            TensorData::Int32(v) => v.len(),
            TensorData::Int8(v) => v.len(),
            TensorData::UInt8(v) => v.len(),
            TensorData::Bool(v) => v.len(),
            TensorData::String(v) => v.len(),
            TensorData::UInt64(v) => v.len(),
        }
    }

    /// True when there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The elements as i64 for integer data.
    pub fn as_i64s(&self) -> Option<Vec<i64>> {
        match self {
            TensorData::Int32(v) => Some(v.iter().map(|&x| i64::from(x)).collect()),
            TensorData::Int8(v) => Some(v.iter().map(|&x| i64::from(x)).collect()),
            TensorData::UInt8(v) => Some(v.iter().map(|&x| i64::from(x)).collect()),
            TensorData::UInt64(v) => Some(v.iter().map(|&x| x as i64).collect()),
            _ => None,
        }
    }

    /// The elements as f32 for numeric data.
    pub fn as_f32s(&self) -> Option<Vec<f32>> {
        match self {
            TensorData::Fp16(v) => Some(v.iter().map(|x| x.to_f32()).collect()),
            TensorData::Fp32(v) => Some(v.clone()),
            TensorData::Int32(v) => Some(v.iter().map(|&x| x as f32).collect()),
            TensorData::Int8(v) => Some(v.iter().map(|&x| f32::from(x)).collect()),
            TensorData::UInt8(v) => Some(v.iter().map(|&x| f32::from(x)).collect()),
            TensorData::UInt64(v) => Some(v.iter().map(|&x| x as f32).collect()),
            TensorData::Bool(v) => Some(v.iter().map(|&x| f32::from(u8::from(x))).collect()),
            TensorData::String(_) => None,
        }
    }
}

/// A literal value: scalar, inline tensor, or a reference into a BLOBFILE.
#[derive(Clone, Debug, PartialEq)]
pub enum Literal {
    Scalar(Scalar),
    Tensor {
        ty: TensorType,
        data: TensorData,
    },
    /// `tensor<…>(BLOBFILE(path = string("@model_path/…"), offset = uint64(N)))`;
    /// `offset` is the offset of the blob's 64-byte record, not of its data.
    Blob {
        ty: TensorType,
        path: String,
        offset: u64,
    },
}

impl Literal {
    /// The value type this literal denotes.
    pub fn value_type(&self) -> ValueType {
        match self {
            Literal::Scalar(s) => ValueType::Scalar(s.dtype()),
            Literal::Tensor { ty, .. } | Literal::Blob { ty, .. } => ValueType::Tensor(ty.clone()),
        }
    }

    /// An `int32` tensor literal of rank 1.
    pub fn ints(values: &[i32]) -> Self {
        Literal::Tensor {
            ty: TensorType::new(DType::Int32, vec![values.len()]),
            data: TensorData::Int32(values.to_vec()),
        }
    }

    /// Integer elements of a scalar or inline tensor literal.
    pub fn as_i64s(&self) -> Option<Vec<i64>> {
        match self {
            Literal::Scalar(s) => match s {
                Scalar::Int32(v) => Some(vec![i64::from(*v)]),
                Scalar::Int8(v) => Some(vec![i64::from(*v)]),
                Scalar::UInt8(v) => Some(vec![i64::from(*v)]),
                Scalar::UInt64(v) => Some(vec![*v as i64]),
                _ => None,
            },
            Literal::Tensor { data, .. } => data.as_i64s(),
            Literal::Blob { .. } => None,
        }
    }

    /// The value of a `bool` scalar literal.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Literal::Scalar(Scalar::Bool(b)) => Some(*b),
            _ => None,
        }
    }

    /// The value of a `string` scalar literal.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Literal::Scalar(Scalar::String(s)) => Some(s),
            _ => None,
        }
    }
}

/// A source position (1-based line and column); `0:0` for values built in memory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Span {
    pub line: u32,
    pub col: u32,
}

impl std::fmt::Display for Span {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// An operand: a named value, an inline literal, or a tuple of operands (`values = (a, b)`).
#[derive(Clone, Debug, PartialEq)]
pub enum Arg {
    Var(String),
    Lit(Literal),
    Tuple(Vec<Arg>),
}

/// A function parameter (a program input).
#[derive(Clone, Debug, PartialEq)]
pub struct Param {
    pub name: String,
    pub ty: ValueType,
}

/// One SSA operation: `T result = op(args…)[attrs…];`.
#[derive(Clone, Debug, PartialEq)]
pub struct Operation {
    /// The op name as written (looked up in the op table by the verifier).
    pub op: String,
    /// Name of the value this operation defines.
    pub result: String,
    /// Declared type of the result.
    pub ty: ValueType,
    /// Named operands, in the order written.
    pub args: Vec<(String, Arg)>,
    /// The bracketed attributes, e.g. `name = string("y")` and, for `const`, `val = …`.
    pub attrs: Vec<(String, Literal)>,
    /// Where the operation starts in the source.
    pub span: Span,
}

impl Operation {
    /// An operation with a `name` attribute equal to its result name.
    pub fn new(op: &str, result: &str, ty: ValueType, args: Vec<(String, Arg)>) -> Self {
        Operation {
            op: op.to_string(),
            result: result.to_string(),
            ty,
            args,
            attrs: vec![(
                "name".to_string(),
                Literal::Scalar(Scalar::String(result.to_string())),
            )],
            span: Span::default(),
        }
    }

    /// A `const` operation holding `val`.
    pub fn constant(result: &str, val: Literal) -> Self {
        let mut op = Operation::new("const", result, val.value_type(), vec![]);
        op.attrs.push(("val".to_string(), val));
        op
    }

    /// The operand named `name`.
    pub fn arg(&self, name: &str) -> Option<&Arg> {
        self.args.iter().find(|(n, _)| n == name).map(|(_, a)| a)
    }

    /// The attribute named `name`.
    pub fn attr(&self, name: &str) -> Option<&Literal> {
        self.attrs.iter().find(|(n, _)| n == name).map(|(_, a)| a)
    }

    /// The value of a `const` operation.
    pub fn const_value(&self) -> Option<&Literal> {
        if self.op == "const" {
            self.attr("val")
        } else {
            None
        }
    }

    /// Names of the values this operation reads, in operand order.
    pub fn uses(&self) -> Vec<&str> {
        fn walk<'a>(a: &'a Arg, out: &mut Vec<&'a str>) {
            match a {
                Arg::Var(v) => out.push(v),
                Arg::Lit(_) => {}
                Arg::Tuple(items) => items.iter().for_each(|i| walk(i, out)),
            }
        }
        let mut out = Vec::new();
        for (_, a) in &self.args {
            walk(a, &mut out);
        }
        out
    }
}

/// A function: typed parameters, a straight-line body and returned names.
#[derive(Clone, Debug, PartialEq)]
pub struct Function {
    pub name: String,
    /// The opset in `func main<ios18>`.
    pub opset: String,
    pub inputs: Vec<Param>,
    pub body: Vec<Operation>,
    pub outputs: Vec<String>,
    pub span: Span,
}

/// A whole MIL program: `program(1.3) [buildInfo…] { func … }`.
#[derive(Clone, Debug, PartialEq)]
pub struct Program {
    /// The version in `program(1.3)`.
    pub version: String,
    /// The `buildInfo` dictionary, in order.
    pub build_info: Vec<(String, String)>,
    pub functions: Vec<Function>,
}

impl Program {
    /// The build info that working ANE programs carry.
    pub fn default_build_info() -> Vec<(String, String)> {
        [
            ("coremlc-component-MIL", "3510.2.1"),
            ("coremlc-version", "3505.4.1"),
            ("coremltools-component-milinternal", ""),
            ("coremltools-version", "9.0"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// A `program(1.3)` holding one `main<ios18>` function.
    pub fn with_main(inputs: Vec<Param>, body: Vec<Operation>, outputs: Vec<String>) -> Self {
        Program {
            version: "1.3".to_string(),
            build_info: Program::default_build_info(),
            functions: vec![Function {
                name: "main".to_string(),
                opset: "ios18".to_string(),
                inputs,
                body,
                outputs,
                span: Span::default(),
            }],
        }
    }

    /// The function named `main`.
    pub fn main(&self) -> Option<&Function> {
        self.functions.iter().find(|f| f.name == "main")
    }

    /// Every BLOBFILE reference, as (path, record offset, type), in program order.
    pub fn blob_refs(&self) -> Vec<(&str, u64, &TensorType)> {
        let mut out = Vec::new();
        for f in &self.functions {
            for op in &f.body {
                for (_, lit) in &op.attrs {
                    if let Literal::Blob { ty, path, offset } = lit {
                        out.push((path.as_str(), *offset, ty));
                    }
                }
            }
        }
        out
    }
}
