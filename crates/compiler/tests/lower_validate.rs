//! Lowering emits device-legal MIL (named parameter consts, blobs by record offset, distinct
//! returned values) and ANE validation reports interface problems on surfaces only.

use compiler::graph::Unary;
use compiler::lower::lower;
use compiler::validate::validate;
use compiler::{GraphBuilder, WeightMode};
use mil::blobfile::BlobFile;
use mil::{Arg, DType, Literal, Rule, Severity};

fn verify_opts() -> mil::verify::VerifyOptions {
    mil::verify::VerifyOptions::default()
}

#[test]
fn weights_go_to_one_blob_file_referenced_by_record_offset() {
    let mut b = GraphBuilder::new(WeightMode::Baked);
    let x = b.input("x", DType::Fp16, &[1, 32, 1, 64]);
    let y = b.linear(x, "w1", 32, vec![0.25; 32 * 32], None).unwrap();
    let z = b.linear(y, "w2", 32, vec![-0.5; 32 * 32], None).unwrap();
    b.output("z", z);
    let lowered = lower(&b.finish().unwrap()).unwrap();
    let refs = lowered.program.blob_refs();
    assert_eq!(refs.len(), 2);
    assert_eq!(refs[0].1, 64, "the first record sits at 64");
    let bytes = lowered.bundle.weight_file(refs[0].0).unwrap();
    let file = BlobFile::parse(bytes).unwrap();
    let first = file.blob_at(refs[0].1).unwrap().to_f32_vec().unwrap();
    let second = file.blob_at(refs[1].1).unwrap().to_f32_vec().unwrap();
    assert!(first.iter().all(|&v| v == 0.25) && second.iter().all(|&v| v == -0.5));
}

#[test]
fn matmul_flags_and_op_parameters_are_named_consts() {
    let mut b = GraphBuilder::new(WeightMode::Dynamic);
    let x = b.input("x", DType::Fp16, &[8, 16]);
    let w = b.input("w", DType::Fp16, &[8, 4]);
    let m = b.matmul(x, w, true, false).unwrap();
    let s = b.softmax(m, -1).unwrap();
    b.output("y", s);
    let lowered = lower(&b.finish().unwrap()).unwrap();
    let main = lowered.program.main().unwrap();
    let matmul = main.body.iter().find(|o| o.op == "matmul").unwrap();
    for flag in ["transpose_x", "transpose_y"] {
        let Some(Arg::Var(name)) = matmul.arg(flag) else {
            panic!("{flag} is not a named value")
        };
        let def = main.body.iter().find(|o| &o.result == name).unwrap();
        assert_eq!(def.op, "const");
    }
    let tx = main
        .body
        .iter()
        .find(|o| o.result.ends_with("transpose_x"))
        .unwrap();
    assert_eq!(
        tx.const_value(),
        Some(&Literal::Scalar(mil::Scalar::Bool(true)))
    );
    assert!(!mil::verify::verify(&lowered.program, &verify_opts()).has_errors());
}

#[test]
fn an_output_that_is_an_input_or_repeated_gets_its_own_value() {
    let mut b = GraphBuilder::new(WeightMode::Baked);
    let x = b.input("x", DType::Fp16, &[1, 8, 1, 16]);
    let t = b.unary(Unary::Tanh, x).unwrap();
    b.output("passthrough", x);
    b.output("t1", t);
    b.output("t2", t);
    let lowered = lower(&b.finish().unwrap()).unwrap();
    let main = lowered.program.main().unwrap();
    assert_eq!(main.outputs, vec!["passthrough", "t1", "t2"]);
    for name in &main.outputs {
        assert!(
            main.body.iter().any(|o| &o.result == name),
            "{name} is an op result"
        );
    }
    assert!(!mil::verify::verify(&lowered.program, &verify_opts()).has_errors());
}

#[test]
fn names_are_sanitized_and_unique() {
    let mut b = GraphBuilder::new(WeightMode::Baked);
    let x = b.input("x", DType::Fp16, &[1, 8, 1, 16]);
    let a = b.unary(Unary::Exp, x).unwrap();
    b.name(a, "layer0.attn");
    let c = b.unary(Unary::Tanh, a).unwrap();
    b.name(c, "layer0.attn");
    b.output("y", c);
    let lowered = lower(&b.finish().unwrap()).unwrap();
    let results: Vec<&str> = lowered
        .program
        .main()
        .unwrap()
        .body
        .iter()
        .map(|o| o.result.as_str())
        .collect();
    assert!(results.contains(&"layer0_attn"), "{results:?}");
    assert!(mil::parse::parse_program(&lowered.bundle.mil).is_ok());
}

#[test]
fn validation_checks_surfaces_not_intermediates() {
    // A tiny intermediate is fine; small I/O surfaces are warnings the session pads for.
    let mut b = GraphBuilder::new(WeightMode::Baked);
    let x = b.input("x", DType::Fp16, &[1, 768, 1, 64]);
    let m = b
        .reduce(compiler::graph::Reduce::Mean, x, &[1], true)
        .unwrap(); // [1, 1, 1, 64]: 128 bytes
    let y = b.sub(x, m).unwrap();
    b.output("y", y);
    b.output("mean", m);
    let lowered = lower(&b.finish().unwrap()).unwrap();
    let diags = validate(&lowered.program, &verify_opts());
    assert!(!diags.has_errors(), "{diags}");
    let c4: Vec<&str> = diags
        .0
        .iter()
        .filter(|d| d.rule == Some(Rule::C4))
        .map(|d| d.subject.as_str())
        .collect();
    assert_eq!(
        c4,
        vec!["output mean"],
        "only the small surface, never the intermediate: {diags}"
    );
    assert!(diags.cites(Rule::C2), "outputs of different sizes: {diags}");
    assert!(!diags.cites(Rule::C12), "one input is uniform: {diags}");
    assert!(diags.0.iter().all(|d| d.severity == Severity::Warning));
}

#[test]
fn validation_rejects_integer_surfaces_and_flags_odd_widths_and_big_working_sets() {
    let mut b = GraphBuilder::new(WeightMode::Baked);
    let x = b.input("x", DType::Fp16, &[1, 4096, 1, 30]);
    let y = b
        .linear(x, "w", 4096, vec![0.0; 4096 * 4096], None)
        .unwrap(); // 32 MiB of fp16
    b.output("y", y);
    let lowered = lower(&b.finish().unwrap()).unwrap();
    let diags = validate(&lowered.program, &verify_opts());
    assert!(diags.cites(Rule::C18), "{diags}");
    assert!(diags.cites(Rule::C21), "{diags}");

    let mut b = GraphBuilder::new(WeightMode::Baked);
    let x = b.input("x", DType::Int32, &[1, 64, 1, 384]);
    let y = b.cast(x, DType::Fp16).unwrap();
    b.output("y", y);
    let lowered = lower(&b.finish().unwrap()).unwrap();
    let diags = validate(&lowered.program, &verify_opts());
    assert!(diags.has_errors(), "{diags}");
    assert!(compiler::compile(
        &GraphBuilder::new(WeightMode::Baked)
            .finish()
            .unwrap_or_default()
    )
    .is_err());
}
