//! ANE validation: every catalog violation visible in a MIL program before the device sees it.
//!
//! Runs the MIL verifier (C1, C10, C15, C16, C17, C19, C20 and the C6 warning) and adds the
//! device-level checks on the program's interface — surfaces are its inputs and outputs only,
//! never intermediate values:
//! - I/O dtypes must be fp16 or fp32 (error);
//! - surfaces under 49,152 bytes (C4) and non-uniform input (C12) or output (C2) sizes are
//!   warnings that state the padded allocation the runtime session will use;
//! - a last dimension that is not a multiple of 16 is a warning (C21, unconfirmed);
//! - an SRAM working-set estimate above 32 MiB is a warning (C18, a cost, not a failure).

use mil::verify::VerifyOptions;
use mil::{Diagnostic, Diagnostics, Literal, Program, Rule, Span, ValueType};
use std::collections::HashMap;

/// The smallest surface the device evaluates (C4).
pub const MIN_SURFACE_BYTES: usize = 49_152;

/// On-chip SRAM assumed by the working-set estimate (C18).
pub const SRAM_BYTES: usize = 32 << 20;

/// Validates `program` for the device; returns every finding (errors and warnings).
pub fn validate(program: &Program, options: &VerifyOptions) -> Diagnostics {
    let mut diags = mil::verify::verify(program, options);
    if diags.has_errors() {
        return diags;
    }
    let Some(main) = program.main() else {
        return diags;
    };
    let mut types: HashMap<&str, &ValueType> = main
        .inputs
        .iter()
        .map(|p| (p.name.as_str(), &p.ty))
        .collect();
    for op in &main.body {
        types.insert(&op.result, &op.ty);
    }
    let inputs: Vec<(&str, &ValueType)> = main
        .inputs
        .iter()
        .map(|p| (p.name.as_str(), &p.ty))
        .collect();
    let outputs: Vec<(&str, &ValueType)> = main
        .outputs
        .iter()
        .filter_map(|n| types.get(n.as_str()).map(|t| (n.as_str(), *t)))
        .collect();
    check_surfaces(&mut diags.0, "input", &inputs, Rule::C12, main.span);
    check_surfaces(&mut diags.0, "output", &outputs, Rule::C2, main.span);
    check_working_set(&mut diags.0, program, &inputs, &outputs, main.span);
    diags
}

fn surface_bytes(ty: &ValueType) -> usize {
    let numel: usize = ty.shape().iter().product();
    numel * ty.dtype().size_bytes().unwrap_or(0)
}

fn check_surfaces(
    out: &mut Vec<Diagnostic>,
    kind: &str,
    surfaces: &[(&str, &ValueType)],
    uniform_rule: Rule,
    span: Span,
) {
    for (name, ty) in surfaces {
        let subject = format!("{kind} {name}");
        if !ty.dtype().is_float() {
            out.push(Diagnostic::error(
                span,
                None,
                &subject,
                format!("device surfaces carry fp16 or fp32, not {}", ty.dtype()),
            ));
            continue;
        }
        let bytes = surface_bytes(ty);
        if bytes < MIN_SURFACE_BYTES {
            out.push(Diagnostic::warning(
                span,
                Some(Rule::C4),
                &subject,
                format!("{bytes} bytes is under the device minimum; the session pads it to {MIN_SURFACE_BYTES}"),
            ));
        }
        if ty.shape().last().is_some_and(|w| w % 16 != 0) {
            out.push(Diagnostic::warning(
                span,
                Some(Rule::C21),
                &subject,
                format!(
                    "last dimension {:?} is not a multiple of 16",
                    ty.shape().last()
                ),
            ));
        }
    }
    let sizes: Vec<usize> = surfaces
        .iter()
        .map(|(_, t)| surface_bytes(t).max(MIN_SURFACE_BYTES))
        .collect();
    if let Some(&max) = sizes.iter().max() {
        if sizes.iter().any(|&s| s != max) {
            out.push(Diagnostic::warning(
                span,
                Some(uniform_rule),
                format!("{kind}s"),
                format!("{kind} surfaces differ in size ({sizes:?} bytes); the session allocates all at {max}"),
            ));
        }
    }
}

fn check_working_set(
    out: &mut Vec<Diagnostic>,
    program: &Program,
    inputs: &[(&str, &ValueType)],
    outputs: &[(&str, &ValueType)],
    span: Span,
) {
    let weights: usize = program
        .functions
        .iter()
        .flat_map(|f| &f.body)
        .filter_map(|op| match op.const_value() {
            Some(Literal::Blob { ty, .. }) => ty.size_bytes(),
            _ => None,
        })
        .sum();
    let largest_intermediate = program
        .main()
        .into_iter()
        .flat_map(|f| &f.body)
        .map(|op| surface_bytes(&op.ty))
        .max()
        .unwrap_or(0);
    let io: usize = inputs
        .iter()
        .chain(outputs)
        .map(|(_, t)| surface_bytes(t))
        .sum();
    let total = weights + io + largest_intermediate;
    if total > SRAM_BYTES {
        out.push(Diagnostic::warning(
            span,
            Some(Rule::C18),
            "program",
            format!(
                "working set ≈ {:.1} MiB (weights {:.1}, I/O {:.1}, largest intermediate {:.1}) exceeds the {} MiB SRAM; expect ~30% slower evaluation",
                total as f64 / 1048576.0,
                weights as f64 / 1048576.0,
                io as f64 / 1048576.0,
                largest_intermediate as f64 / 1048576.0,
                SRAM_BYTES >> 20
            ),
        ));
    }
}
