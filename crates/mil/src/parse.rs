//! The MIL text parser: text to [`Program`], with 1-based line:col on every error and span.
//!
//! Accepted beyond the printer's canonical form (`spec/ane.md` §2):
//! - free spacing, newlines anywhere and `//` comments;
//! - an optional `[buildInfo = dict<string, string>({…})]` line (absent means empty);
//! - the older literal dialect `tensor<T, []>(v)` for scalars — rank-0 *literals* (also
//!   `tensor<T, []>([v])`) are normalized to [`Literal::Scalar`], while a declared op result or
//!   parameter type `tensor<T, []>` stays a rank-0 [`ValueType::Tensor`] exactly as written;
//!   rank-0 BLOBFILE references stay [`Literal::Blob`];
//! - numbers: negative, exponent (`1e-3`), hex floats (`0x1.8p+1`), `inf`, `-inf`, `nan`,
//!   integers where a float is expected (`fp16(1)`);
//! - inline tensors as a flat row-major list or as nested lists matching the shape.
//!
//! The element count of an inline tensor must match its shape. Nesting of tuples and lists is
//! bounded by [`MAX_DEPTH`]. Parsing is a single left-to-right pass, linear in the input.

use half::f16;

use crate::ast::{
    Arg, DType, Function, Literal, Operation, Param, Program, Scalar, Span, TensorData, TensorType,
    ValueType,
};
use crate::error::{Error, Result};
use crate::lex::{unescape, Kind, Lexer, Token};

/// Deepest nesting of tuples or list literals the parser accepts.
pub const MAX_DEPTH: usize = 64;

/// Parses MIL text into a program.
pub fn parse_program(text: &str) -> Result<Program> {
    let mut p = Parser::new(text)?;
    p.program()
}

struct Parser<'a> {
    lex: Lexer<'a>,
    tok: Token<'a>,
}

fn error_at(tok: &Token<'_>, message: String) -> Error {
    Error::Parse {
        line: tok.line,
        col: tok.col,
        message,
    }
}

fn span_of(tok: &Token<'_>) -> Span {
    Span {
        line: tok.line,
        col: tok.col,
    }
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Result<Self> {
        let mut lex = Lexer::new(text);
        let tok = lex.next_token()?;
        Ok(Parser { lex, tok })
    }

    /// Returns the current token and moves to the next one.
    fn bump(&mut self) -> Result<Token<'a>> {
        let next = self.lex.next_token()?;
        Ok(std::mem::replace(&mut self.tok, next))
    }

    fn unexpected<T>(&self, expected: &str) -> Result<T> {
        Err(error_at(
            &self.tok,
            format!("expected {expected}, found {}", self.tok.describe()),
        ))
    }

    fn eat(&mut self, c: u8) -> Result<bool> {
        if self.tok.is_punct(c) {
            self.bump()?;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    /// Consumes the punctuation `c`; `context` completes "expected 'c' …".
    fn expect(&mut self, c: u8, context: &str) -> Result<Token<'a>> {
        if self.tok.is_punct(c) {
            self.bump()
        } else {
            let sep = if context.is_empty() { "" } else { " " };
            self.unexpected(&format!("'{}'{sep}{context}", c as char))
        }
    }

    fn expect_ident(&mut self, what: &str) -> Result<Token<'a>> {
        if self.tok.kind == Kind::Ident {
            self.bump()
        } else {
            self.unexpected(what)
        }
    }

    fn expect_keyword(&mut self, word: &str) -> Result<Token<'a>> {
        if self.tok.is_ident(word) {
            self.bump()
        } else {
            self.unexpected(&format!("'{word}'"))
        }
    }

    fn string(&mut self, what: &str) -> Result<String> {
        if self.tok.kind != Kind::Str {
            return self.unexpected(what);
        }
        let tok = self.bump()?;
        unescape(tok.text).map_err(|m| error_at(&tok, m))
    }

    fn program(&mut self) -> Result<Program> {
        self.expect_keyword("program")?;
        self.expect(b'(', "after 'program'")?;
        if self.tok.kind != Kind::Number {
            return self.unexpected("program version such as 1.3");
        }
        let version = self.bump()?.text.to_string();
        self.expect(b')', "after program version")?;
        let build_info = if self.tok.is_punct(b'[') {
            self.build_info()?
        } else {
            Vec::new()
        };
        self.expect(b'{', "to open the program body")?;
        let mut functions = Vec::new();
        while self.tok.is_ident("func") {
            functions.push(self.function()?);
        }
        if !self.tok.is_punct(b'}') {
            return self.unexpected("'func' or '}' closing the program");
        }
        self.bump()?;
        if self.tok.kind != Kind::Eof {
            return self.unexpected("end of input after the program");
        }
        Ok(Program {
            version,
            build_info,
            functions,
        })
    }

    /// `[buildInfo = dict<string, string>({{"k", "v"}, …})]`.
    fn build_info(&mut self) -> Result<Vec<(String, String)>> {
        self.expect(b'[', "")?;
        self.expect_keyword("buildInfo")?;
        self.expect(b'=', "after 'buildInfo'")?;
        self.expect_keyword("dict")?;
        self.expect(b'<', "after 'dict'")?;
        self.expect_keyword("string")?;
        self.expect(b',', "between dict key and value types")?;
        self.expect_keyword("string")?;
        self.expect(b'>', "after dict value type")?;
        self.expect(b'(', "before dict entries")?;
        self.expect(b'{', "to open dict entries")?;
        let mut entries = Vec::new();
        if !self.eat(b'}')? {
            loop {
                self.expect(b'{', "to open a dict entry")?;
                let k = self.string("dict key string")?;
                self.expect(b',', "between dict key and value")?;
                let v = self.string("dict value string")?;
                self.expect(b'}', "after dict value")?;
                entries.push((k, v));
                if !self.eat(b',')? {
                    self.expect(b'}', "or ',' after dict entry")?;
                    break;
                }
            }
        }
        self.expect(b')', "after dict entries")?;
        self.expect(b']', "after buildInfo")?;
        Ok(entries)
    }

    fn function(&mut self) -> Result<Function> {
        let span = span_of(&self.expect_keyword("func")?);
        let name = self.expect_ident("function name")?.text.to_string();
        self.expect(b'<', "before opset after function name")?;
        let opset = self
            .expect_ident("opset name such as ios18")?
            .text
            .to_string();
        self.expect(b'>', "after opset")?;
        self.expect(b'(', "to open function parameters")?;
        let mut inputs = Vec::new();
        if !self.eat(b')')? {
            loop {
                let ty = self.value_type()?;
                let name = self.expect_ident("parameter name")?.text.to_string();
                inputs.push(Param { name, ty });
                if !self.eat(b',')? {
                    self.expect(b')', "or ',' after parameter")?;
                    break;
                }
            }
        }
        self.expect(b'{', "to open function body")?;
        let mut body = Vec::new();
        while !self.eat(b'}')? {
            body.push(self.operation()?);
        }
        if self.tok.kind != Kind::Arrow {
            return self.unexpected("'->' after function body");
        }
        self.bump()?;
        self.expect(b'(', "to open function outputs")?;
        let mut outputs = Vec::new();
        if !self.eat(b')')? {
            loop {
                outputs.push(self.expect_ident("output name")?.text.to_string());
                if !self.eat(b',')? {
                    self.expect(b')', "or ',' after output name")?;
                    break;
                }
            }
        }
        self.expect(b';', "after function outputs")?;
        Ok(Function {
            name,
            opset,
            inputs,
            body,
            outputs,
            span,
        })
    }

    /// `T result = op(name = arg, …)[name = literal, …];`.
    fn operation(&mut self) -> Result<Operation> {
        if self.tok.kind != Kind::Ident {
            return self.unexpected("operation result type or '}'");
        }
        let span = span_of(&self.tok);
        let ty = self.value_type()?;
        let result = self
            .expect_ident("result name after type")?
            .text
            .to_string();
        self.expect(b'=', "after result name")?;
        let op = self.expect_ident("op name")?.text.to_string();
        self.expect(b'(', "after op name")?;
        let mut args = Vec::new();
        if !self.eat(b')')? {
            loop {
                let name = self.expect_ident("operand name")?.text.to_string();
                self.expect(b'=', "after operand name")?;
                args.push((name, self.arg(0)?));
                if !self.eat(b',')? {
                    self.expect(b')', "after operands")?;
                    break;
                }
            }
        }
        let mut attrs = Vec::new();
        if self.eat(b'[')? && !self.eat(b']')? {
            loop {
                let name = self.expect_ident("attribute name")?.text.to_string();
                self.expect(b'=', "after attribute name")?;
                attrs.push((name, self.literal()?));
                if !self.eat(b',')? {
                    self.expect(b']', "after attributes")?;
                    break;
                }
            }
        }
        self.expect(b';', "after operation")?;
        Ok(Operation {
            op,
            result,
            ty,
            args,
            attrs,
            span,
        })
    }

    /// An operand: a value name, an inline literal, or a tuple `(a, b, …)`.
    fn arg(&mut self, depth: usize) -> Result<Arg> {
        if self.tok.is_punct(b'(') {
            if depth >= MAX_DEPTH {
                return Err(error_at(
                    &self.tok,
                    format!("tuples nested deeper than {MAX_DEPTH}"),
                ));
            }
            self.bump()?;
            let mut items = Vec::new();
            if !self.eat(b')')? {
                loop {
                    items.push(self.arg(depth + 1)?);
                    if !self.eat(b',')? {
                        self.expect(b')', "or ',' in tuple")?;
                        break;
                    }
                }
            }
            return Ok(Arg::Tuple(items));
        }
        let head = self.expect_ident("operand (value name, literal or tuple)")?;
        let is_literal = (head.text == "tensor" && self.tok.is_punct(b'<'))
            || (DType::from_name(head.text).is_some() && self.tok.is_punct(b'('));
        if is_literal {
            Ok(Arg::Lit(self.literal_after(head)?))
        } else {
            Ok(Arg::Var(head.text.to_string()))
        }
    }

    fn literal(&mut self) -> Result<Literal> {
        let head = self.expect_ident("literal such as int32(1) or tensor<…>(…)")?;
        self.literal_after(head)
    }

    /// The rest of a literal whose leading identifier (`tensor` or a dtype) was consumed.
    fn literal_after(&mut self, head: Token<'a>) -> Result<Literal> {
        if head.text == "tensor" {
            let ty = self.tensor_type_rest(&head)?;
            return self.tensor_literal(ty);
        }
        let Some(dtype) = DType::from_name(head.text) else {
            return Err(error_at(
                &head,
                format!(
                    "expected literal such as int32(1) or tensor<…>(…), found {}",
                    head.describe()
                ),
            ));
        };
        self.expect(b'(', "after literal dtype")?;
        let s = self.scalar(dtype)?;
        self.expect(b')', "after scalar literal value")?;
        Ok(Literal::Scalar(s))
    }

    /// `(…)` after a literal's `tensor<T, [shape]>`: BLOBFILE, list, or a bare rank-0 value.
    fn tensor_literal(&mut self, ty: TensorType) -> Result<Literal> {
        self.expect(b'(', "after tensor literal type")?;
        let lit = if self.tok.is_ident("BLOBFILE") {
            self.blobfile(ty)?
        } else if self.tok.is_punct(b'[') {
            let data = self.list(&ty)?;
            match (ty.shape.is_empty(), scalar_of(&data)) {
                (true, Some(s)) => Literal::Scalar(s),
                _ => Literal::Tensor { ty, data },
            }
        } else if ty.shape.is_empty() {
            Literal::Scalar(self.scalar(ty.dtype)?)
        } else {
            return self.unexpected(&format!(
                "'[' list or BLOBFILE for a tensor literal of rank {}",
                ty.shape.len()
            ));
        };
        self.expect(b')', "after tensor literal value")?;
        Ok(lit)
    }

    /// `BLOBFILE(path = string("…"), offset = uint64(N))`, keys in any order.
    fn blobfile(&mut self, ty: TensorType) -> Result<Literal> {
        let start = self.bump()?;
        self.expect(b'(', "after BLOBFILE")?;
        let (mut path, mut offset) = (None, None);
        loop {
            let key = self.expect_ident("BLOBFILE argument 'path' or 'offset'")?;
            self.expect(b'=', "after BLOBFILE argument name")?;
            let value = self.literal()?;
            match (key.text, value) {
                ("path", Literal::Scalar(Scalar::String(s))) => path = Some(s),
                ("offset", Literal::Scalar(Scalar::UInt64(n))) => offset = Some(n),
                ("path" | "offset", _) => {
                    return Err(error_at(
                        &key,
                        format!(
                            "BLOBFILE {} must be a {} literal",
                            key.text,
                            blob_arg_type(key.text)
                        ),
                    ))
                }
                _ => {
                    return Err(error_at(
                        &key,
                        format!(
                            "expected BLOBFILE argument 'path' or 'offset', found {}",
                            key.describe()
                        ),
                    ))
                }
            }
            if !self.eat(b',')? {
                self.expect(b')', "or ',' after BLOBFILE argument")?;
                break;
            }
        }
        match (path, offset) {
            (Some(path), Some(offset)) => Ok(Literal::Blob { ty, path, offset }),
            _ => Err(error_at(
                &start,
                "BLOBFILE needs both path and offset".to_string(),
            )),
        }
    }

    /// A value type: `fp16` or `tensor<fp16, [1, 2]>`.
    fn value_type(&mut self) -> Result<ValueType> {
        let head = self.expect_ident("type such as fp16 or tensor<fp16, [1, 2]>")?;
        if head.text == "tensor" {
            return Ok(ValueType::Tensor(self.tensor_type_rest(&head)?));
        }
        match DType::from_name(head.text) {
            Some(d) => Ok(ValueType::Scalar(d)),
            None => Err(error_at(
                &head,
                format!(
                    "expected type such as fp16 or tensor<…>, found {}",
                    head.describe()
                ),
            )),
        }
    }

    /// `<dtype, [d0, d1, …]>` after `tensor`; the element count must fit in `usize`.
    fn tensor_type_rest(&mut self, head: &Token<'a>) -> Result<TensorType> {
        self.expect(b'<', "after 'tensor'")?;
        let dt = self.expect_ident("dtype")?;
        let dtype = DType::from_name(dt.text).ok_or_else(|| {
            error_at(
                &dt,
                format!(
                    "expected dtype such as fp16 or int32, found {}",
                    dt.describe()
                ),
            )
        })?;
        self.expect(b',', "after tensor dtype")?;
        self.expect(b'[', "to open tensor shape")?;
        let mut shape = Vec::new();
        if !self.eat(b']')? {
            loop {
                if self.tok.kind != Kind::Number {
                    return self.unexpected("dimension (a non-negative integer)");
                }
                let tok = self.bump()?;
                let dim = tok.text.parse::<usize>().map_err(|_| {
                    error_at(
                        &tok,
                        format!(
                            "expected dimension (a non-negative integer), found {}",
                            tok.describe()
                        ),
                    )
                })?;
                shape.push(dim);
                if !self.eat(b',')? {
                    self.expect(b']', "or ',' in tensor shape")?;
                    break;
                }
            }
        }
        self.expect(b'>', "after tensor shape")?;
        if shape
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .is_none()
        {
            return Err(error_at(head, "tensor element count overflows".to_string()));
        }
        Ok(TensorType::new(dtype, shape))
    }
}

impl Parser<'_> {
    /// One scalar value of `dtype` inside literal parentheses or a list.
    fn scalar(&mut self, dtype: DType) -> Result<Scalar> {
        Ok(match dtype {
            DType::Fp16 => Scalar::Fp16(self.f16_value()?),
            DType::Fp32 => Scalar::Fp32(self.f32_value()?),
            DType::Int32 => Scalar::Int32(self.int_value(dtype)?),
            DType::Int8 => Scalar::Int8(self.int_value(dtype)?),
            DType::UInt8 => Scalar::UInt8(self.int_value(dtype)?),
            DType::UInt64 => Scalar::UInt64(self.int_value(dtype)?),
            DType::Bool => Scalar::Bool(self.bool_value()?),
            DType::String => Scalar::String(self.string("string value")?),
        })
    }

    /// The elements of a `[…]` list literal of type `ty`, flat or nested.
    fn list(&mut self, ty: &TensorType) -> Result<TensorData> {
        Ok(match ty.dtype {
            DType::Fp16 => TensorData::Fp16(self.elements(ty, Self::f16_value)?),
            DType::Fp32 => TensorData::Fp32(self.elements(ty, Self::f32_value)?),
            DType::Int32 => TensorData::Int32(self.elements(ty, |p| p.int_value(DType::Int32))?),
            DType::Int8 => TensorData::Int8(self.elements(ty, |p| p.int_value(DType::Int8))?),
            DType::UInt8 => TensorData::UInt8(self.elements(ty, |p| p.int_value(DType::UInt8))?),
            DType::UInt64 => TensorData::UInt64(self.elements(ty, |p| p.int_value(DType::UInt64))?),
            DType::Bool => TensorData::Bool(self.elements(ty, Self::bool_value)?),
            DType::String => TensorData::String(self.elements(ty, |p| p.string("string value"))?),
        })
    }

    /// A list of `ty.numel()` elements: flat `[a, b, …]`, or nested to the tensor's rank.
    fn elements<T>(
        &mut self,
        ty: &TensorType,
        elem: impl Fn(&mut Self) -> Result<T> + Copy,
    ) -> Result<Vec<T>> {
        let open = self.expect(b'[', "to open tensor elements")?;
        let numel = ty.numel();
        let mut out = Vec::with_capacity(numel.min(1 << 16));
        if ty.shape.len() >= 2 && self.tok.is_punct(b'[') {
            if ty.shape.len() > MAX_DEPTH {
                return Err(error_at(
                    &open,
                    format!("nested list deeper than {MAX_DEPTH}"),
                ));
            }
            self.nested(&ty.shape, elem, &mut out, &open)?;
            return Ok(out);
        }
        if !self.tok.is_punct(b']') {
            loop {
                if out.len() == numel {
                    return self.unexpected(&format!("']' after {numel} elements of {ty}"));
                }
                out.push(elem(self)?);
                if !self.eat(b',')? {
                    break;
                }
            }
        }
        if !self.tok.is_punct(b']') {
            return self.unexpected("',' or ']' in tensor elements");
        }
        if out.len() != numel {
            return Err(error_at(
                &open,
                format!("{ty} literal expects {numel} elements, found {}", out.len()),
            ));
        }
        self.bump()?;
        Ok(out)
    }

    /// The rest of a nested list whose `[` (`open`) was consumed; `shape[0]` is its length.
    fn nested<T>(
        &mut self,
        shape: &[usize],
        elem: impl Fn(&mut Self) -> Result<T> + Copy,
        out: &mut Vec<T>,
        open: &Token<'_>,
    ) -> Result<()> {
        let mut count = 0usize;
        if !self.tok.is_punct(b']') {
            loop {
                if shape.len() > 1 {
                    let inner = self.expect(b'[', "to open a nested list")?;
                    self.nested(&shape[1..], elem, out, &inner)?;
                } else {
                    out.push(elem(self)?);
                }
                count += 1;
                if !self.eat(b',')? {
                    break;
                }
            }
        }
        if !self.tok.is_punct(b']') {
            return self.unexpected("',' or ']' in nested list");
        }
        if count != shape[0] {
            return Err(error_at(
                open,
                format!("nested list expects {} entries, found {count}", shape[0]),
            ));
        }
        self.bump()?;
        Ok(())
    }

    fn bool_value(&mut self) -> Result<bool> {
        let v = match self.tok.text {
            "true" if self.tok.kind == Kind::Ident => true,
            "false" if self.tok.kind == Kind::Ident => false,
            _ => return self.unexpected("'true' or 'false'"),
        };
        self.bump()?;
        Ok(v)
    }

    /// An optional sign; true for `-`.
    fn sign(&mut self) -> Result<bool> {
        if self.eat(b'-')? {
            Ok(true)
        } else {
            self.eat(b'+')?;
            Ok(false)
        }
    }

    /// A decimal integer that fits `dtype` (int32, int8, uint8 or uint64).
    fn int_value<T: TryFrom<i128>>(&mut self, dtype: DType) -> Result<T> {
        let start = self.tok;
        let neg = self.sign()?;
        if self.tok.kind != Kind::Number {
            return self.unexpected(&format!("{dtype} integer"));
        }
        let tok = self.bump()?;
        let magnitude = tok.text.parse::<u128>().map_err(|e| {
            let why = match e.kind() {
                std::num::IntErrorKind::PosOverflow => "out of range".to_string(),
                _ => format!("found {}", tok.describe()),
            };
            error_at(&tok, format!("expected {dtype} integer, {why}"))
        })?;
        let value = i128::try_from(magnitude)
            .ok()
            .map(|m| if neg { -m } else { m });
        value.and_then(|v| T::try_from(v).ok()).ok_or_else(|| {
            let sign = if neg { "-" } else { "" };
            error_at(
                &start,
                format!("integer {sign}{} out of range for {dtype}", tok.text),
            )
        })
    }

    fn f16_value(&mut self) -> Result<f16> {
        self.float_value(DType::Fp16).map(f16::from_f32)
    }

    fn f32_value(&mut self) -> Result<f32> {
        self.float_value(DType::Fp32)
    }

    /// A float: decimal, hex (`0x1.8p+1`), integer, `inf` or `nan`, optionally signed.
    fn float_value(&mut self, dtype: DType) -> Result<f32> {
        let neg = self.sign()?;
        let tok = self.tok;
        let v = match tok.kind {
            Kind::Ident if matches!(tok.text, "inf" | "infinity" | "Inf" | "Infinity") => {
                f32::INFINITY
            }
            Kind::Ident if matches!(tok.text, "nan" | "NaN") => f32::NAN,
            Kind::Number => parse_float(tok.text).ok_or_else(|| {
                error_at(
                    &tok,
                    format!("expected {dtype} number, found {}", tok.describe()),
                )
            })?,
            _ => return self.unexpected(&format!("{dtype} number")),
        };
        self.bump()?;
        Ok(if neg { -v } else { v })
    }
}

/// Parses an unsigned decimal or hex float to the nearest f32.
fn parse_float(text: &str) -> Option<f32> {
    match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => hex_float(hex).map(|v| v as f32),
        None => text.parse::<f32>().ok(),
    }
}

/// The value of hex float digits after `0x`: `1.8p+1`, `ff`, `1p-3`.
fn hex_float(text: &str) -> Option<f64> {
    let (mantissa, exp) = match text.find(['p', 'P']) {
        Some(i) => (&text[..i], &text[i + 1..]),
        None => (text, "0"),
    };
    let exp_digits = exp.strip_prefix(['+', '-']).unwrap_or(exp);
    if exp_digits.is_empty() || !exp_digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let exp_mag = exp_digits.parse::<i64>().unwrap_or(i64::MAX).min(100_000);
    let mut exp2 = if exp.starts_with('-') {
        -exp_mag
    } else {
        exp_mag
    };
    let (mut mant, mut seen_dot, mut digits) = (0u64, false, 0usize);
    for c in mantissa.chars() {
        if c == '.' && !seen_dot {
            seen_dot = true;
            continue;
        }
        let d = u64::from(c.to_digit(16)?);
        digits += 1;
        if mant < 1 << 59 {
            mant = mant * 16 + d;
            exp2 -= if seen_dot { 4 } else { 0 };
        } else {
            exp2 += if seen_dot { 0 } else { 4 };
        }
    }
    if digits == 0 {
        return None;
    }
    let mut v = mant as f64;
    while exp2 != 0 {
        let step = exp2.clamp(-1000, 1000);
        v *= 2f64.powi(step as i32);
        exp2 -= step;
    }
    Some(v)
}

fn blob_arg_type(key: &str) -> &'static str {
    if key == "path" {
        "string"
    } else {
        "uint64"
    }
}

/// The single element of rank-0 list data.
fn scalar_of(data: &TensorData) -> Option<Scalar> {
    Some(match data {
        TensorData::Fp16(v) => Scalar::Fp16(*v.first()?),
        TensorData::Fp32(v) => Scalar::Fp32(*v.first()?),
        TensorData::Int32(v) => Scalar::Int32(*v.first()?),
        TensorData::Int8(v) => Scalar::Int8(*v.first()?),
        TensorData::UInt8(v) => Scalar::UInt8(*v.first()?),
        TensorData::Bool(v) => Scalar::Bool(*v.first()?),
        TensorData::String(v) => Scalar::String(v.first()?.clone()),
        TensorData::UInt64(v) => Scalar::UInt64(*v.first()?),
    })
}
