//! The MIL text printer: one byte-stable canonical form (`spec/ane.md` §2) that
//! [`crate::parse::parse_program`] reads back to the same program.
//!
//! Choices: an empty `build_info` omits the `[buildInfo = …]` line; attributes print in a
//! `[…]` suffix only when there are any; inline tensors print as flat row-major lists; floats
//! print as the shortest decimal that reads back to the same bits (`1.0`, `0.1`, `1e-7`), with
//! `inf`, `-inf` and `nan` (NaN payloads are not preserved); strings escape `"`, `\`, `\n`,
//! `\t`, `\r`, `\0` and other control characters as `\u{…}`. A rank-0 inline tensor
//! ([`Literal::Tensor`] with shape `[]`) prints as `tensor<T, []>([v])`, which parses back as
//! the equivalent [`Literal::Scalar`]. Names are printed as stored and must be identifiers.

use std::fmt::{self, Display, Formatter, Write};

use half::f16;

use crate::ast::{
    Arg, Function, Literal, Operation, Program, Scalar, TensorData, TensorType, ValueType,
};

/// Prints a program as MIL text.
pub fn print_program(program: &Program) -> String {
    program.to_string()
}

impl Display for Program {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        writeln!(f, "program({})", self.version)?;
        if !self.build_info.is_empty() {
            f.write_str("[buildInfo = dict<string, string>({")?;
            for (i, (k, v)) in self.build_info.iter().enumerate() {
                let sep = if i == 0 { "" } else { ", " };
                write!(f, "{sep}{{{}, {}}}", Quoted(k), Quoted(v))?;
            }
            f.write_str("})]\n")?;
        }
        f.write_str("{\n")?;
        for func in &self.functions {
            write_function(f, func)?;
        }
        f.write_str("}\n")
    }
}

fn write_function(f: &mut Formatter<'_>, func: &Function) -> fmt::Result {
    write!(f, "    func {}<{}>(", func.name, func.opset)?;
    for (i, p) in func.inputs.iter().enumerate() {
        let sep = if i == 0 { "" } else { ", " };
        write!(f, "{sep}{} {}", p.ty, p.name)?;
    }
    f.write_str(") {\n")?;
    for op in &func.body {
        write_operation(f, op)?;
    }
    writeln!(f, "    }} -> ({});", func.outputs.join(", "))
}

fn write_operation(f: &mut Formatter<'_>, op: &Operation) -> fmt::Result {
    write!(f, "        {} {} = {}(", op.ty, op.result, op.op)?;
    for (i, (name, arg)) in op.args.iter().enumerate() {
        let sep = if i == 0 { "" } else { ", " };
        write!(f, "{sep}{name} = ")?;
        write_arg(f, arg)?;
    }
    f.write_char(')')?;
    if !op.attrs.is_empty() {
        f.write_char('[')?;
        for (i, (name, lit)) in op.attrs.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            write!(f, "{sep}{name} = {lit}")?;
        }
        f.write_char(']')?;
    }
    f.write_str(";\n")
}

fn write_arg(f: &mut Formatter<'_>, arg: &Arg) -> fmt::Result {
    match arg {
        Arg::Var(v) => f.write_str(v),
        Arg::Lit(l) => write!(f, "{l}"),
        Arg::Tuple(items) => {
            f.write_char('(')?;
            for (i, a) in items.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write_arg(f, a)?;
            }
            f.write_char(')')
        }
    }
}

impl Display for TensorType {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "tensor<{}, [", self.dtype)?;
        for (i, d) in self.shape.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            write!(f, "{sep}{d}")?;
        }
        f.write_str("]>")
    }
}

impl Display for ValueType {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            ValueType::Scalar(d) => write!(f, "{d}"),
            ValueType::Tensor(t) => write!(f, "{t}"),
        }
    }
}

impl Display for Scalar {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{}(", self.dtype())?;
        write_scalar_value(f, self)?;
        f.write_char(')')
    }
}

impl Display for Literal {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Scalar(s) => write!(f, "{s}"),
            Literal::Tensor { ty, data } => {
                write!(f, "{ty}([")?;
                write_elements(f, data)?;
                f.write_str("])")
            }
            Literal::Blob { ty, path, offset } => write!(
                f,
                "{ty}(BLOBFILE(path = string({}), offset = uint64({offset})))",
                Quoted(path)
            ),
        }
    }
}

fn write_scalar_value(f: &mut Formatter<'_>, s: &Scalar) -> fmt::Result {
    match s {
        Scalar::Fp16(v) => f.write_str(&format_f16(*v)),
        Scalar::Fp32(v) => f.write_str(&format_f32(*v)),
        Scalar::Int32(v) => write!(f, "{v}"),
        Scalar::Int8(v) => write!(f, "{v}"),
        Scalar::UInt8(v) => write!(f, "{v}"),
        Scalar::UInt64(v) => write!(f, "{v}"),
        Scalar::Bool(v) => write!(f, "{v}"),
        Scalar::String(v) => write!(f, "{}", Quoted(v)),
    }
}

fn write_elements(f: &mut Formatter<'_>, data: &TensorData) -> fmt::Result {
    fn join<T>(f: &mut Formatter<'_>, items: &[T], each: impl Fn(&T) -> String) -> fmt::Result {
        for (i, x) in items.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(&each(x))?;
        }
        Ok(())
    }
    match data {
        TensorData::Fp16(v) => join(f, v, |x| format_f16(*x)),
        TensorData::Fp32(v) => join(f, v, |x| format_f32(*x)),
        TensorData::Int32(v) => join(f, v, i32::to_string),
        TensorData::Int8(v) => join(f, v, i8::to_string),
        TensorData::UInt8(v) => join(f, v, u8::to_string),
        TensorData::UInt64(v) => join(f, v, u64::to_string),
        TensorData::Bool(v) => join(f, v, bool::to_string),
        TensorData::String(v) => join(f, v, |s| Quoted(s).to_string()),
    }
}

/// The shortest decimal that parses back to `v`, or `inf`/`-inf`/`nan`.
pub fn format_f32(v: f32) -> String {
    if v.is_nan() {
        "nan".to_string()
    } else if v.is_infinite() {
        if v > 0.0 { "inf" } else { "-inf" }.to_string()
    } else {
        format!("{v:?}")
    }
}

/// The shortest decimal whose nearest f16 (via f32) is `v`, or `inf`/`-inf`/`nan`.
pub fn format_f16(v: f16) -> String {
    let wide = v.to_f32();
    if !wide.is_finite() {
        return format_f32(wide);
    }
    for digits in 0..5 {
        let short: f32 = format!("{wide:.digits$e}").parse().unwrap_or(wide);
        if f16::from_f32(short).to_bits() == v.to_bits() {
            return format_f32(short);
        }
    }
    format_f32(wide)
}

/// A string printed as a MIL string literal with escapes.
struct Quoted<'a>(&'a str);

impl Display for Quoted<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_char('"')?;
        for c in self.0.chars() {
            match c {
                '"' => f.write_str("\\\"")?,
                '\\' => f.write_str("\\\\")?,
                '\n' => f.write_str("\\n")?,
                '\t' => f.write_str("\\t")?,
                '\r' => f.write_str("\\r")?,
                '\0' => f.write_str("\\0")?,
                c if c.is_control() => write!(f, "\\u{{{:x}}}", c as u32)?,
                c => f.write_char(c)?,
            }
        }
        f.write_char('"')
    }
}
