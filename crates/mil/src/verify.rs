//! The MIL verifier: checks a program against the language's rules and the device's catalog.
//!
//! Every violation is reported with its span and subject (e.g. `conv "y"`); checking never stops
//! at the first. The invariants, in the order they are checked:
//!
//! - The program has a function `main`; every function has a non-empty opset.
//! - Function inputs are tensors (the device binds tensors only).
//! - Names are unique across a function's inputs and op results.
//! - Every used name is defined earlier in the straight-line body ("used before its definition"
//!   is told apart from "not defined").
//! - Every op is in the op table; rejected ops cite their catalog rule (`concat` C1, `gelu` and
//!   `silu` C10) and still have their operands checked.
//! - Every op carries a `name = string("…")` attribute (the device needs it).
//! - Operands: each name is one the op declares, given once; required operands are present;
//!   `Value` operands are named values (spec §2: every operand is named, never an inline
//!   literal); `Const` operands are `const` results or inline literals; `NamedConst` operands are
//!   `const` results (an inline literal cites C15, the matmul transpose rule); `Tuple` operands
//!   are tuples of named values.
//! - `const` has a `val` attribute whose type equals the declared type; inline tensor data has
//!   the shape's element count and the declared dtype.
//! - The type rule's inferred type equals the declared result type.
//! - Catalog: `conv` has no `bias` (C16) and fewer than `max_conv_input_channels` input channels
//!   (C19); `rsqrt`/`sqrt` do not read a `reduce_*` result directly when
//!   `reject_rsqrt_after_reduction` (C20); `scaled_dot_product_attention` with `attn_mask` is a
//!   warning (C6, the device ignores the mask).
//! - The returned list is non-empty, without duplicates, and names defined values (C17).

use std::collections::{HashMap, HashSet};

use crate::ast::{Arg, Function, Literal, Operation, Program, Scalar, Span, ValueType};
use crate::diag::{Diagnostic, Diagnostics, Rule};
use crate::error::{Error, Result};
use crate::ops::{self, OpDef, OpKind, OperandInfo, OperandKind, Operands};

/// Switches for the verifier's catalog rules.
#[derive(Clone, Debug)]
pub struct VerifyOptions {
    /// Reject `rsqrt`/`sqrt` applied directly to a reduction's result (C20, unconfirmed on hardware).
    pub reject_rsqrt_after_reduction: bool,
    /// Reject `conv` with this many input channels or more (C19).
    pub max_conv_input_channels: usize,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            reject_rsqrt_after_reduction: true,
            max_conv_input_channels: 32_000,
        }
    }
}

impl VerifyOptions {
    /// Options with the configurable catalog rules (C19, C20) switched off.
    pub fn permissive() -> Self {
        VerifyOptions {
            reject_rsqrt_after_reduction: false,
            max_conv_input_channels: usize::MAX,
        }
    }
}

/// Checks a program and returns every finding.
pub fn verify(program: &Program, options: &VerifyOptions) -> Diagnostics {
    let mut diags = Vec::new();
    if program.main().is_none() {
        diags.push(Diagnostic::error(
            Span::default(),
            None,
            "program",
            "the program has no function `main`",
        ));
    }
    for f in &program.functions {
        diags.extend(check_function(f, options).diags);
    }
    Diagnostics(diags)
}

/// Checks a program and fails with all errors if there are any.
pub fn check(program: &Program, options: &VerifyOptions) -> Result<Diagnostics> {
    let d = verify(program, options);
    if d.has_errors() {
        Err(Error::Verify(d))
    } else {
        Ok(d)
    }
}

/// The type of every input and op result of `f`, checked: the declared types, which the verifier
/// has proved equal to the inferred ones.
///
/// Runs the verifier on `f` with [`VerifyOptions::permissive`] (the configurable catalog rules
/// are the caller's business: call [`check`] first) and fails with its diagnostics on any error.
pub fn value_types(f: &Function) -> std::result::Result<HashMap<String, ValueType>, Diagnostics> {
    let options = VerifyOptions::permissive();
    let checker = check_function(f, &options);
    let diags = Diagnostics(checker.diags);
    if diags.has_errors() {
        return Err(diags);
    }
    Ok(checker
        .values
        .into_iter()
        .map(|(name, v)| (name.to_string(), v.ty))
        .collect())
}

/// What the checker knows of one defined value.
struct Value<'a> {
    ty: ValueType,
    /// The literal, when the value is a `const` result.
    konst: Option<&'a Literal>,
    /// The op that produced it; `None` for function inputs.
    producer: Option<OpKind>,
    span: Span,
}

/// The state of checking one function.
struct Checker<'a> {
    options: &'a VerifyOptions,
    diags: Vec<Diagnostic>,
    values: HashMap<&'a str, Value<'a>>,
    /// Every op result of the function, to tell "defined later" from "never defined".
    results: HashMap<&'a str, Span>,
}

/// Checks one function.
fn check_function<'a>(f: &'a Function, options: &'a VerifyOptions) -> Checker<'a> {
    let mut results = HashMap::new();
    for op in &f.body {
        results.entry(op.result.as_str()).or_insert(op.span);
    }
    let mut c = Checker {
        options,
        diags: Vec::new(),
        values: HashMap::new(),
        results,
    };
    if f.opset.is_empty() {
        c.error(
            f.span,
            None,
            &format!("func \"{}\"", f.name),
            "the opset is empty (expected e.g. `main<ios18>`)",
        );
    }
    for p in &f.inputs {
        let subject = format!("input \"{}\"", p.name);
        if p.ty.as_tensor().is_none() {
            let msg = format!("expected a tensor input, found {}", p.ty);
            c.error(f.span, None, &subject, &msg);
        }
        c.define(&p.name, p.ty.clone(), None, None, f.span, &subject);
    }
    for op in &f.body {
        c.check_op(op);
    }
    c.check_outputs(f);
    c
}

impl<'a> Checker<'a> {
    /// Records an error.
    fn error(&mut self, span: Span, rule: Option<Rule>, subject: &str, message: &str) {
        self.diags
            .push(Diagnostic::error(span, rule, subject, message));
    }

    /// Defines a value, reporting a duplicate name.
    fn define(
        &mut self,
        name: &'a str,
        ty: ValueType,
        konst: Option<&'a Literal>,
        producer: Option<OpKind>,
        span: Span,
        subject: &str,
    ) {
        if let Some(prev) = self.values.get(name) {
            let msg = format!("`{name}` is already defined at {}", prev.span);
            self.error(span, None, subject, &msg);
            return;
        }
        let value = Value {
            ty,
            konst,
            producer,
            span,
        };
        self.values.insert(name, value);
    }

    /// The type and constant value of a used name, or an error if it is not defined yet.
    fn use_value(
        &mut self,
        name: &str,
        span: Span,
        subject: &str,
    ) -> Option<(ValueType, Option<&'a Literal>)> {
        if let Some(v) = self.values.get(name) {
            return Some((v.ty.clone(), v.konst));
        }
        let msg = match self.results.get(name) {
            Some(at) => format!("`{name}` is used before its definition at {at}"),
            None => format!("`{name}` is not defined"),
        };
        self.error(span, None, subject, &msg);
        None
    }

    /// Checks one operation and defines its result.
    fn check_op(&mut self, op: &'a Operation) {
        let subject = format!("{} \"{}\"", op.op, op.result);
        self.check_name_attr(op, &subject);
        let def = ops::lookup(&op.op);
        let konst = match def {
            None => {
                let msg = format!("unknown op `{}`", op.op);
                self.error(op.span, None, &subject, &msg);
                self.check_uses(op, &subject);
                None
            }
            Some(
                def @ OpDef {
                    rejected: Some((rule, why)),
                    ..
                },
            ) => {
                let msg = format!("`{}` is not supported: {why}", op.op);
                self.error(op.span, Some(*rule), &subject, &msg);
                self.resolve_operands(op, def, &subject);
                None
            }
            Some(def) if def.kind == OpKind::Const => {
                self.resolve_operands(op, def, &subject);
                self.check_const(op, &subject)
            }
            Some(def) => {
                if let Some(operands) = self.resolve_operands(op, def, &subject) {
                    self.check_type(op, def, &operands, &subject);
                }
                self.check_catalog(op, def.kind, &subject);
                None
            }
        };
        let producer = def.map(|d| d.kind);
        self.define(
            &op.result,
            op.ty.clone(),
            konst,
            producer,
            op.span,
            &subject,
        );
    }

    /// Every op needs a `name = string("…")` attribute.
    fn check_name_attr(&mut self, op: &Operation, subject: &str) {
        match op.attr("name") {
            Some(Literal::Scalar(Scalar::String(_))) => {}
            Some(other) => {
                let msg = format!(
                    "the `name` attribute must be a string, found {}",
                    other.value_type()
                );
                self.error(op.span, None, subject, &msg);
            }
            None => self.error(
                op.span,
                None,
                subject,
                "missing `name = string(\"…\")` attribute (the device needs it)",
            ),
        }
    }

    /// Reports undefined names among the operands of an op that is not in the table.
    fn check_uses(&mut self, op: &Operation, subject: &str) {
        for name in op.uses() {
            self.use_value(name, op.span, subject);
        }
    }

    /// Resolves the operands against the op's declaration; `None` if any is wrong.
    fn resolve_operands(
        &mut self,
        op: &'a Operation,
        def: &OpDef,
        subject: &str,
    ) -> Option<Operands<'a>> {
        let mut ok = true;
        let mut items = Vec::new();
        for (i, (name, arg)) in op.args.iter().enumerate() {
            if op.args[..i].iter().any(|(n, _)| n == name) {
                let msg = format!("operand `{name}` is given twice");
                self.error(op.span, None, subject, &msg);
                ok = false;
                continue;
            }
            let Some(od) = def.operands.iter().find(|d| d.name == name) else {
                let known: Vec<&str> = def.operands.iter().map(|d| d.name).collect();
                let msg = format!(
                    "unknown operand `{name}` ({} takes: {})",
                    def.name,
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                );
                self.error(op.span, None, subject, &msg);
                ok = false;
                continue;
            };
            match self.resolve_arg(name, arg, od.kind, op.span, subject) {
                Some(info) => items.push((name.as_str(), info)),
                None => ok = false,
            }
        }
        for od in def.operands.iter().filter(|d| d.required) {
            if op.arg(od.name).is_none() {
                let msg = format!("missing required operand `{}`", od.name);
                self.error(op.span, None, subject, &msg);
                ok = false;
            }
        }
        ok.then_some(Operands { items })
    }

    /// Resolves one operand according to its kind; `None` (after reporting) if it is wrong.
    fn resolve_arg(
        &mut self,
        name: &str,
        arg: &'a Arg,
        kind: OperandKind,
        span: Span,
        subject: &str,
    ) -> Option<OperandInfo<'a>> {
        let (rule, problem) = match (kind, arg) {
            (OperandKind::Tuple, Arg::Tuple(items)) => {
                let mut ok = true;
                for item in items {
                    if let Arg::Var(v) = item {
                        ok &= self.use_value(v, span, subject).is_some();
                    } else {
                        let msg = format!("{name}: tuple items must be named values");
                        self.error(span, None, subject, &msg);
                        ok = false;
                    }
                }
                let info = OperandInfo {
                    ty: None,
                    value: None,
                };
                return ok.then_some(info);
            }
            (OperandKind::Tuple, _) => (None, "expected a tuple `(a, b, …)`".to_string()),
            (_, Arg::Tuple(_)) => (None, "expected one value, found a tuple".to_string()),
            (OperandKind::Value, Arg::Lit(_)) => (
                None,
                "expected a named value, found an inline literal (define it with const())"
                    .to_string(),
            ),
            (OperandKind::NamedConst, Arg::Lit(_)) => (
                Some(Rule::C15),
                "must be a named const, not an inline literal (define it with const())".to_string(),
            ),
            (OperandKind::Const, Arg::Lit(lit)) => match literal_problem(lit) {
                Some(msg) => (None, msg),
                None => {
                    let info = OperandInfo {
                        ty: Some(lit.value_type()),
                        value: Some(lit),
                    };
                    return Some(info);
                }
            },
            (_, Arg::Var(v)) => {
                let (ty, konst) = self.use_value(v, span, subject)?;
                if kind == OperandKind::Value || konst.is_some() {
                    let info = OperandInfo {
                        ty: Some(ty),
                        value: konst,
                    };
                    return Some(info);
                }
                (
                    None,
                    format!("expected a const, but `{v}` is computed at run time"),
                )
            }
        };
        self.error(span, rule, subject, &format!("{name}: {problem}"));
        None
    }

    /// Checks a `const`: its `val` exists, is well formed and has the declared type.
    fn check_const(&mut self, op: &'a Operation, subject: &str) -> Option<&'a Literal> {
        let Some(val) = op.attr("val") else {
            self.error(op.span, None, subject, "const needs a `val` attribute");
            return None;
        };
        if let Some(msg) = literal_problem(val) {
            self.error(op.span, None, subject, &format!("val: {msg}"));
        }
        let found = val.value_type();
        if found != op.ty {
            let msg = format!("declared type {} but val is {found}", op.ty);
            self.error(op.span, None, subject, &msg);
        }
        Some(val)
    }

    /// Runs the op's type rule and compares with the declared result type.
    fn check_type(&mut self, op: &Operation, def: &OpDef, operands: &Operands<'_>, subject: &str) {
        match (def.type_rule)(operands) {
            Err(msg) => self.error(op.span, None, subject, &msg),
            Ok(inferred) if inferred != op.ty => {
                let msg = format!("declared type {} but the operands give {inferred}", op.ty);
                self.error(op.span, None, subject, &msg);
            }
            Ok(_) => {}
        }
    }

    /// The defined value an operand names, if it names one.
    fn operand_value(&self, op: &Operation, operand: &str) -> Option<&Value<'a>> {
        match op.arg(operand)? {
            Arg::Var(v) => self.values.get(v.as_str()),
            _ => None,
        }
    }

    /// The catalog rules that concern single ops (C6, C16, C19, C20).
    fn check_catalog(&mut self, op: &Operation, kind: OpKind, subject: &str) {
        match kind {
            OpKind::Conv => {
                if op.arg("bias").is_some() {
                    self.error(
                        op.span,
                        Some(Rule::C16),
                        subject,
                        "conv has no bias on the device; drop `bias` and add it with a separate `add`",
                    );
                }
                let channels = self
                    .operand_value(op, "x")
                    .and_then(|v| v.ty.shape().get(1).copied());
                let max = self.options.max_conv_input_channels;
                if let Some(cin) = channels.filter(|&c| c >= max) {
                    let msg = format!(
                        "{cin} input channels is too many for the device (limit: fewer than {max}); split the conv"
                    );
                    self.error(op.span, Some(Rule::C19), subject, &msg);
                }
            }
            OpKind::Rsqrt | OpKind::Sqrt if self.options.reject_rsqrt_after_reduction => {
                let reduced = self
                    .operand_value(op, "x")
                    .and_then(|v| v.producer)
                    .filter(|p| {
                        matches!(
                            p,
                            OpKind::ReduceSum | OpKind::ReduceMean | OpKind::ReduceMax
                        )
                    });
                if let Some(p) = reduced {
                    let msg = format!(
                        "{} of a {} result fails to compile on the device; use pow(x, -0.5) (or pow(x, 0.5))",
                        op.op,
                        p.name()
                    );
                    self.error(op.span, Some(Rule::C20), subject, &msg);
                }
            }
            OpKind::ScaledDotProductAttention if op.arg("attn_mask").is_some() => {
                self.diags.push(Diagnostic::warning(
                    op.span,
                    Some(Rule::C6),
                    subject,
                    "the device ignores attn_mask: attention runs unmasked; mask with matmul/softmax instead",
                ));
            }
            _ => {}
        }
    }

    /// The returned list: non-empty, no duplicates, every name defined (C17).
    fn check_outputs(&mut self, f: &Function) {
        let subject = format!("func \"{}\"", f.name);
        if f.outputs.is_empty() {
            self.error(
                f.span,
                Some(Rule::C17),
                &subject,
                "the function returns nothing",
            );
        }
        let mut seen = HashSet::new();
        for name in &f.outputs {
            if !seen.insert(name.as_str()) {
                let msg = format!("`{name}` is returned twice");
                self.error(f.span, None, &subject, &msg);
            } else if !self.values.contains_key(name.as_str()) {
                let msg = format!("returned name `{name}` is not a defined value");
                self.error(f.span, Some(Rule::C17), &subject, &msg);
            }
        }
    }
}

/// What is wrong with an inline literal, if anything: data count or dtype against its type.
fn literal_problem(lit: &Literal) -> Option<String> {
    match lit {
        Literal::Tensor { ty, data } if data.dtype() != ty.dtype => Some(format!(
            "{} data in a {} literal",
            data.dtype(),
            lit.value_type()
        )),
        Literal::Tensor { ty, data } if data.len() != ty.numel() => Some(format!(
            "{} holds {} elements, expected {}",
            lit.value_type(),
            data.len(),
            ty.numel()
        )),
        _ => None,
    }
}
