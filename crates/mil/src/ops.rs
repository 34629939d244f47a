//! The op table: every MIL op Orion knows, its operands and its type rule, in one declaration.
//!
//! The printer, parser, verifier and the emulator's dispatch all read this table. Ops that
//! the device rejects (`concat`, `gelu`, `silu`) are listed too, so that a program using them
//! gets the catalog rule in its error rather than "unknown op".

use crate::ast::{Literal, ValueType};
use crate::diag::Rule;
use crate::typing;

/// Every op in the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OpKind {
    Const,
    Add,
    Sub,
    Mul,
    RealDiv,
    Pow,
    Exp,
    Log,
    Sqrt,
    Rsqrt,
    Tanh,
    Sigmoid,
    Relu,
    Softmax,
    ReduceSum,
    ReduceMean,
    ReduceMax,
    Matmul,
    Conv,
    Reshape,
    Transpose,
    Cast,
    SliceByIndex,
    SliceBySize,
    Identity,
    ScaledDotProductAttention,
    ConstexprAffineDequantize,
    Quantize,
    Dequantize,
    Concat,
    Gelu,
    Silu,
}

/// How an operand may be supplied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OperandKind {
    /// Any value: a function input, an op result, or a const.
    Value,
    /// A compile-time constant: a named `const` value or an inline literal.
    Const,
    /// A compile-time constant that must be a named `const` value, never an inline literal (C15).
    NamedConst,
    /// A tuple of values, `values = (a, b)`.
    Tuple,
}

/// One operand of an op.
#[derive(Clone, Copy, Debug)]
pub struct OperandDef {
    pub name: &'static str,
    pub kind: OperandKind,
    pub required: bool,
}

/// What the type rule sees of one operand.
#[derive(Clone, Debug)]
pub struct OperandInfo<'a> {
    /// The operand's type; `None` for tuples.
    pub ty: Option<ValueType>,
    /// The constant value, when the operand is a const or an inline literal.
    pub value: Option<&'a Literal>,
}

/// The resolved operands of one operation, as handed to a type rule.
#[derive(Clone, Debug, Default)]
pub struct Operands<'a> {
    pub items: Vec<(&'a str, OperandInfo<'a>)>,
}

impl<'a> Operands<'a> {
    /// The operand named `name`, if present.
    pub fn get(&self, name: &str) -> Option<&OperandInfo<'a>> {
        self.items.iter().find(|(n, _)| *n == name).map(|(_, i)| i)
    }

    /// The type of operand `name`.
    pub fn ty(&self, name: &str) -> Option<&ValueType> {
        self.get(name).and_then(|i| i.ty.as_ref())
    }

    /// The constant value of operand `name`.
    pub fn value(&self, name: &str) -> Option<&'a Literal> {
        self.get(name).and_then(|i| i.value)
    }
}

/// A type rule: the result type from the operands, or what is wrong with them.
pub type TypeRule = fn(&Operands<'_>) -> Result<ValueType, String>;

/// The declaration of one op.
#[derive(Clone, Copy, Debug)]
pub struct OpDef {
    pub kind: OpKind,
    /// The op's name in MIL text.
    pub name: &'static str,
    pub operands: &'static [OperandDef],
    pub type_rule: TypeRule,
    /// Set when the device refuses this op: the catalog rule and the fix.
    pub rejected: Option<(Rule, &'static str)>,
}

const fn v(name: &'static str) -> OperandDef {
    OperandDef {
        name,
        kind: OperandKind::Value,
        required: true,
    }
}

const fn c(name: &'static str) -> OperandDef {
    OperandDef {
        name,
        kind: OperandKind::Const,
        required: true,
    }
}

const fn opt(mut d: OperandDef) -> OperandDef {
    d.required = false;
    d
}

const fn named(mut d: OperandDef) -> OperandDef {
    d.kind = OperandKind::NamedConst;
    d
}

const fn tuple(name: &'static str) -> OperandDef {
    OperandDef {
        name,
        kind: OperandKind::Tuple,
        required: true,
    }
}

const BINARY: &[OperandDef] = &[v("x"), v("y")];
const UNARY: &[OperandDef] = &[v("x")];
const UNARY_EPS: &[OperandDef] = &[v("x"), opt(c("epsilon"))];
const REDUCE: &[OperandDef] = &[v("x"), opt(c("axes")), opt(c("keep_dims"))];

const fn op(
    kind: OpKind,
    name: &'static str,
    operands: &'static [OperandDef],
    type_rule: TypeRule,
) -> OpDef {
    OpDef {
        kind,
        name,
        operands,
        type_rule,
        rejected: None,
    }
}

const fn rejected(
    kind: OpKind,
    name: &'static str,
    operands: &'static [OperandDef],
    rule: Rule,
    why: &'static str,
) -> OpDef {
    OpDef {
        kind,
        name,
        operands,
        type_rule: typing::unsupported,
        rejected: Some((rule, why)),
    }
}

/// The op table.
pub static OPS: &[OpDef] = &[
    op(OpKind::Const, "const", &[], typing::constant),
    op(OpKind::Add, "add", BINARY, typing::broadcast_binary),
    op(OpKind::Sub, "sub", BINARY, typing::broadcast_binary),
    op(OpKind::Mul, "mul", BINARY, typing::broadcast_binary),
    op(
        OpKind::RealDiv,
        "real_div",
        BINARY,
        typing::broadcast_binary,
    ),
    op(OpKind::Pow, "pow", BINARY, typing::broadcast_binary),
    op(OpKind::Exp, "exp", UNARY, typing::float_unary),
    op(OpKind::Log, "log", UNARY_EPS, typing::float_unary),
    op(OpKind::Sqrt, "sqrt", UNARY, typing::float_unary),
    op(OpKind::Rsqrt, "rsqrt", UNARY_EPS, typing::float_unary),
    op(OpKind::Tanh, "tanh", UNARY, typing::float_unary),
    op(OpKind::Sigmoid, "sigmoid", UNARY, typing::float_unary),
    op(OpKind::Relu, "relu", UNARY, typing::float_unary),
    op(
        OpKind::Softmax,
        "softmax",
        &[v("x"), c("axis")],
        typing::softmax,
    ),
    op(OpKind::ReduceSum, "reduce_sum", REDUCE, typing::reduce),
    op(OpKind::ReduceMean, "reduce_mean", REDUCE, typing::reduce),
    op(OpKind::ReduceMax, "reduce_max", REDUCE, typing::reduce),
    op(
        OpKind::Matmul,
        "matmul",
        &[
            v("x"),
            v("y"),
            opt(named(c("transpose_x"))),
            opt(named(c("transpose_y"))),
        ],
        typing::matmul,
    ),
    op(
        OpKind::Conv,
        "conv",
        &[
            v("x"),
            v("weight"),
            opt(v("bias")),
            opt(c("strides")),
            opt(c("pad_type")),
            opt(c("pad")),
            opt(c("dilations")),
            opt(c("groups")),
        ],
        typing::conv,
    ),
    op(
        OpKind::Reshape,
        "reshape",
        &[v("x"), c("shape")],
        typing::reshape,
    ),
    op(
        OpKind::Transpose,
        "transpose",
        &[v("x"), c("perm")],
        typing::transpose,
    ),
    op(OpKind::Cast, "cast", &[v("x"), c("dtype")], typing::cast),
    op(
        OpKind::SliceByIndex,
        "slice_by_index",
        &[
            v("x"),
            c("begin"),
            c("end"),
            opt(c("stride")),
            opt(c("begin_mask")),
            opt(c("end_mask")),
            opt(c("squeeze_mask")),
        ],
        typing::slice_by_index,
    ),
    op(
        OpKind::SliceBySize,
        "slice_by_size",
        &[v("x"), c("begin"), c("size")],
        typing::slice_by_size,
    ),
    op(OpKind::Identity, "identity", UNARY, typing::same_as_x),
    op(
        OpKind::ScaledDotProductAttention,
        "scaled_dot_product_attention",
        &[v("query"), v("key"), v("value"), opt(v("attn_mask"))],
        typing::attention,
    ),
    op(
        OpKind::ConstexprAffineDequantize,
        "constexpr_affine_dequantize",
        &[c("quantized_data"), c("zero_point"), c("scale"), c("axis")],
        typing::affine_dequantize,
    ),
    op(
        OpKind::Quantize,
        "quantize",
        &[
            v("input"),
            opt(c("zero_point")),
            c("scale"),
            opt(c("axis")),
            c("output_dtype"),
        ],
        typing::quantize,
    ),
    op(
        OpKind::Dequantize,
        "dequantize",
        &[v("input"), opt(c("zero_point")), c("scale"), opt(c("axis"))],
        typing::dequantize,
    ),
    rejected(
        OpKind::Concat,
        "concat",
        &[tuple("values"), c("axis"), opt(c("interleave"))],
        Rule::C1,
        "the device has no concat; write the parts to separate outputs or slice a larger buffer",
    ),
    rejected(
        OpKind::Gelu,
        "gelu",
        &[v("x"), opt(c("mode"))],
        Rule::C10,
        "the device has no gelu; use the tanh form 0.5*x*(1+tanh(sqrt(2/pi)*(x+0.044715*x^3)))",
    ),
    rejected(
        OpKind::Silu,
        "silu",
        UNARY,
        Rule::C10,
        "the device has no silu; write it as mul(x, sigmoid(x))",
    ),
];

impl OpKind {
    /// The table entry for this op.
    pub fn def(self) -> &'static OpDef {
        // The table is ordered like the enum; the assertion in tests keeps it so.
        &OPS[self as usize]
    }

    /// The op's name in MIL text.
    pub fn name(self) -> &'static str {
        self.def().name
    }

    /// Looks an op up by its MIL name.
    pub fn from_name(name: &str) -> Option<OpKind> {
        OPS.iter().find(|d| d.name == name).map(|d| d.kind)
    }
}

/// The table entry for the op named `name`.
pub fn lookup(name: &str) -> Option<&'static OpDef> {
    OPS.iter().find(|d| d.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_ordered_like_the_enum() {
        for (i, d) in OPS.iter().enumerate() {
            assert_eq!(d.kind as usize, i, "op {} is out of place", d.name);
            assert_eq!(OpKind::from_name(d.name), Some(d.kind));
        }
    }

    #[test]
    fn covers_every_op_of_spec_section_2() {
        let spec = "add sub mul real_div pow exp log sqrt rsqrt tanh sigmoid relu softmax \
                    reduce_sum reduce_mean reduce_max matmul conv reshape transpose cast \
                    slice_by_index slice_by_size identity const scaled_dot_product_attention \
                    constexpr_affine_dequantize quantize dequantize";
        for name in spec.split_whitespace() {
            let d = lookup(name).unwrap_or_else(|| panic!("{name} missing from the op table"));
            assert!(d.rejected.is_none(), "{name} is a working op");
        }
    }
}
