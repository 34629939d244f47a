//! The verifier on MIL text: one test per compile-time catalog rule, the language rules, error
//! collection, and realistic programs that must verify clean.

use mil::parse::parse_program;
use mil::verify::{check, value_types, verify, VerifyOptions};
use mil::{DType, Diagnostic, Diagnostics, Operation, Param, Program, Rule, Severity, ValueType};

/// Wraps `body` (one op per line) in `program(1.3) { func main<ios18>(params) {…} -> (outputs); }`.
fn source(params: &str, body: &str, outputs: &str) -> String {
    format!(
        "program(1.3)\n{{\n    func main<ios18>({params}) {{\n{body}    }} -> ({outputs});\n}}\n"
    )
}

/// Parses MIL text, panicking with the text on a parse error.
fn parse(text: &str) -> Program {
    parse_program(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// The 1-based line of `text` that contains `needle`.
fn line_of(text: &str, needle: &str) -> u32 {
    let i = text
        .lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("`{needle}` is not in the program"));
    i as u32 + 1
}

/// Verifies with default options.
fn diags(text: &str) -> Diagnostics {
    verify(&parse(text), &VerifyOptions::default())
}

/// The diagnostic citing `rule`, asserting it has the given severity, line and subject.
fn cited<'d>(
    d: &'d Diagnostics,
    rule: Rule,
    severity: Severity,
    line: u32,
    subject: &str,
) -> &'d Diagnostic {
    let found =
        d.0.iter()
            .find(|x| x.rule == Some(rule))
            .unwrap_or_else(|| panic!("{rule} not cited in:\n{d}"));
    assert_eq!(found.severity, severity, "{found}");
    assert_eq!(found.span.line, line, "{found}");
    assert_eq!(found.subject, subject, "{found}");
    found
}

/// The only error, asserting its line and subject and that its message contains `words`.
fn single_error<'d>(d: &'d Diagnostics, line: u32, subject: &str, words: &str) -> &'d Diagnostic {
    let errors: Vec<_> = d.errors().collect();
    assert_eq!(errors.len(), 1, "expected one error, found:\n{d}");
    let e = errors[0];
    assert_eq!((e.span.line, e.subject.as_str()), (line, subject), "{e}");
    assert!(e.message.contains(words), "`{words}` not in: {e}");
    e
}

/// Asserts that a program has no diagnostics at all.
fn assert_clean(text: &str) {
    let d = diags(text);
    assert!(d.0.is_empty(), "unexpected findings:\n{d}\n{text}");
}

const X: &str = "tensor<fp16, [1, 64, 1, 32]> x";

#[test]
fn concat_is_rejected_citing_c1() {
    let text = source(
        X,
        "        int32 ax = const()[name = string(\"ax\"), val = int32(1)];
        tensor<fp16, [1, 128, 1, 32]> c = concat(values = (x, x), axis = ax)[name = string(\"c\")];
",
        "c",
    );
    let d = diags(&text);
    let e = cited(
        &d,
        Rule::C1,
        Severity::Error,
        line_of(&text, "concat("),
        "concat \"c\"",
    );
    assert!(e.message.contains("no concat"), "{e}");
}

#[test]
fn gelu_is_rejected_citing_c10() {
    let text = source(
        X,
        "        tensor<fp16, [1, 64, 1, 32]> g = gelu(x = x)[name = string(\"g\")];\n",
        "g",
    );
    let d = diags(&text);
    let e = cited(&d, Rule::C10, Severity::Error, 4, "gelu \"g\"");
    assert!(e.message.contains("tanh"), "{e}");
}

#[test]
fn silu_is_rejected_citing_c10() {
    let text = source(
        X,
        "        tensor<fp16, [1, 64, 1, 32]> s = silu(x = x)[name = string(\"s\")];\n",
        "s",
    );
    let d = diags(&text);
    let e = cited(&d, Rule::C10, Severity::Error, 4, "silu \"s\"");
    assert!(e.message.contains("sigmoid"), "{e}");
}

#[test]
fn inline_matmul_transpose_flag_is_rejected_citing_c15() {
    let text = source(
        "tensor<fp16, [1, 32, 64]> a",
        "        bool f = const()[name = string(\"f\"), val = bool(false)];
        tensor<fp16, [1, 32, 32]> s = matmul(x = a, y = a, transpose_x = f, transpose_y = bool(true))[name = string(\"s\")];
",
        "s",
    );
    let d = diags(&text);
    let e = cited(&d, Rule::C15, Severity::Error, 5, "matmul \"s\"");
    assert!(e.message.contains("transpose_y"), "{e}");
    assert_eq!(d.errors().count(), 1, "{d}");
}

#[test]
fn named_matmul_transpose_flags_verify_clean() {
    assert_clean(&source(
        "tensor<fp16, [1, 32, 64]> a",
        "        bool f = const()[name = string(\"f\"), val = bool(false)];
        bool t = const()[name = string(\"t\"), val = bool(true)];
        tensor<fp16, [1, 32, 32]> s = matmul(x = a, y = a, transpose_x = f, transpose_y = t)[name = string(\"s\")];
",
        "s",
    ));
}

/// A 1×1 conv from 64 to 128 channels with optional extra operands.
fn conv_source(extra_consts: &str, extra_args: &str) -> String {
    source(
        X,
        &format!(
            "        tensor<fp16, [128, 64, 1, 1]> W = const()[name = string(\"W\"), val = tensor<fp16, [128, 64, 1, 1]>(BLOBFILE(path = string(\"@model_path/weights/w.bin\"), offset = uint64(64)))];
{extra_consts}        tensor<fp16, [1, 128, 1, 32]> y = conv(weight = W, x = x{extra_args})[name = string(\"y\")];
"
        ),
        "y",
    )
}

#[test]
fn conv_bias_is_rejected_citing_c16() {
    let text = conv_source(
        "        tensor<fp16, [128]> b = const()[name = string(\"b\"), val = tensor<fp16, [128]>(BLOBFILE(path = string(\"@model_path/weights/w.bin\"), offset = uint64(16512)))];\n",
        ", bias = b",
    );
    let d = diags(&text);
    let e = cited(
        &d,
        Rule::C16,
        Severity::Error,
        line_of(&text, "conv("),
        "conv \"y\"",
    );
    assert!(e.message.contains("separate `add`"), "{e}");
    assert_eq!(
        d.errors().count(),
        1,
        "the bias is well typed; only C16 applies:\n{d}"
    );
}

#[test]
fn returning_an_undefined_name_cites_c17() {
    let text = source(
        X,
        "        tensor<fp16, [1, 64, 1, 32]> y = relu(x = x)[name = string(\"y\")];\n",
        "y, ghost",
    );
    let d = diags(&text);
    let e = cited(&d, Rule::C17, Severity::Error, 3, "func \"main\"");
    assert!(e.message.contains("`ghost`"), "{e}");
}

#[test]
fn returning_nothing_or_a_name_twice_is_an_error() {
    let relu = Operation::new(
        "relu",
        "y",
        ValueType::tensor(DType::Fp16, [1, 64, 1, 32]),
        vec![("x".into(), mil::Arg::Var("x".into()))],
    );
    let input = Param {
        name: "x".into(),
        ty: ValueType::tensor(DType::Fp16, [1, 64, 1, 32]),
    };
    let empty = Program::with_main(vec![input.clone()], vec![relu.clone()], vec![]);
    let d = verify(&empty, &VerifyOptions::default());
    assert!(d.cites(Rule::C17), "{d}");
    let twice = Program::with_main(vec![input], vec![relu], vec!["y".into(), "y".into()]);
    let d = verify(&twice, &VerifyOptions::default());
    assert_eq!(d.errors().count(), 1, "{d}");
    assert!(d.0[0].message.contains("returned twice"), "{d}");
}

/// A 1×1 conv with `cin` input channels.
fn wide_conv(cin: usize) -> String {
    source(
        &format!("tensor<fp16, [1, {cin}, 1, 16]> x"),
        &format!(
            "        tensor<fp16, [8, {cin}, 1, 1]> W = const()[name = string(\"W\"), val = tensor<fp16, [8, {cin}, 1, 1]>(BLOBFILE(path = string(\"@model_path/weights/w.bin\"), offset = uint64(64)))];
        tensor<fp16, [1, 8, 1, 16]> y = conv(weight = W, x = x)[name = string(\"y\")];
"
        ),
        "y",
    )
}

#[test]
fn conv_with_32000_input_channels_cites_c19() {
    let text = wide_conv(32_000);
    let d = diags(&text);
    let e = cited(&d, Rule::C19, Severity::Error, 5, "conv \"y\"");
    assert!(e.message.contains("32000"), "{e}");
    assert_clean(&wide_conv(31_999));
}

#[test]
fn c19_limit_is_configurable() {
    let program = parse(&wide_conv(32_000));
    let options = VerifyOptions {
        max_conv_input_channels: 50_000,
        ..VerifyOptions::default()
    };
    assert!(verify(&program, &options).0.is_empty());
}

/// `op(reduce_kind(x))` over the channel axis.
fn after_reduction(reduce: &str, op: &str) -> String {
    source(
        X,
        &format!(
            "        tensor<int32, [1]> ax = const()[name = string(\"ax\"), val = tensor<int32, [1]>([1])];
        bool kd = const()[name = string(\"kd\"), val = bool(true)];
        tensor<fp16, [1, 1, 1, 32]> r = {reduce}(x = x, axes = ax, keep_dims = kd)[name = string(\"r\")];
        tensor<fp16, [1, 1, 1, 32]> y = {op}(x = r)[name = string(\"y\")];
"
        ),
        "y",
    )
}

#[test]
fn rsqrt_right_after_a_reduction_cites_c20_when_enabled() {
    for reduce in ["reduce_sum", "reduce_mean", "reduce_max"] {
        for op in ["rsqrt", "sqrt"] {
            let d = diags(&after_reduction(reduce, op));
            let e = cited(&d, Rule::C20, Severity::Error, 7, &format!("{op} \"y\""));
            assert!(e.message.contains("pow(x, -0.5)"), "{e}");
        }
    }
}

#[test]
fn rsqrt_right_after_a_reduction_passes_when_c20_is_disabled() {
    let options = VerifyOptions {
        reject_rsqrt_after_reduction: false,
        ..VerifyOptions::default()
    };
    let d = verify(&parse(&after_reduction("reduce_mean", "rsqrt")), &options);
    assert!(d.0.is_empty(), "{d}");
}

#[test]
fn rsqrt_of_a_non_reduction_is_not_c20() {
    assert_clean(&after_reduction("reduce_mean", "exp"));
    let text = source(
        X,
        "        tensor<fp16, [1, 64, 1, 32]> y = rsqrt(x = x)[name = string(\"y\")];\n",
        "y",
    );
    assert_clean(&text);
}

#[test]
fn attention_mask_is_a_warning_citing_c6() {
    let q = "tensor<fp16, [1, 4, 32, 16]>";
    let text = source(
        &format!("{q} q, {q} k, {q} v, tensor<fp16, [1, 1, 32, 32]> m"),
        &format!(
            "        {q} a = scaled_dot_product_attention(query = q, key = k, value = v, attn_mask = m)[name = string(\"a\")];\n"
        ),
        "a",
    );
    let d = diags(&text);
    let w = cited(
        &d,
        Rule::C6,
        Severity::Warning,
        4,
        "scaled_dot_product_attention \"a\"",
    );
    assert!(w.message.contains("ignores"), "{w}");
    assert!(!d.has_errors(), "{d}");
    assert!(check(&parse(&text), &VerifyOptions::default()).is_ok());
}

#[test]
fn duplicate_names_are_errors() {
    let text = source(
        X,
        "        tensor<fp16, [1, 64, 1, 32]> y = relu(x = x)[name = string(\"y\")];
        tensor<fp16, [1, 64, 1, 32]> y = tanh(x = x)[name = string(\"y2\")];
        tensor<fp16, [1, 64, 1, 32]> x = exp(x = y)[name = string(\"x\")];
",
        "y",
    );
    let d = diags(&text);
    let errors: Vec<_> = d.errors().collect();
    assert_eq!(errors.len(), 2, "{d}");
    assert_eq!(
        (errors[0].span.line, errors[0].subject.as_str()),
        (5, "tanh \"y\"")
    );
    assert!(
        errors[0].message.contains("`y` is already defined at 4:"),
        "{d}"
    );
    assert_eq!(
        (errors[1].span.line, errors[1].subject.as_str()),
        (6, "exp \"x\"")
    );
    assert!(errors[1].message.contains("`x` is already defined"), "{d}");
}

#[test]
fn use_before_definition_is_an_error() {
    let text = source(
        X,
        "        tensor<fp16, [1, 64, 1, 32]> a = relu(x = b)[name = string(\"a\")];
        tensor<fp16, [1, 64, 1, 32]> b = tanh(x = x)[name = string(\"b\")];
",
        "a",
    );
    single_error(
        &diags(&text),
        4,
        "relu \"a\"",
        "`b` is used before its definition at 5:",
    );
}

#[test]
fn undefined_name_is_an_error() {
    let text = source(
        X,
        "        tensor<fp16, [1, 64, 1, 32]> a = relu(x = nowhere)[name = string(\"a\")];\n",
        "a",
    );
    single_error(&diags(&text), 4, "relu \"a\"", "`nowhere` is not defined");
}

#[test]
fn unknown_op_is_an_error_naming_the_op() {
    let text = source(
        X,
        "        tensor<fp16, [1, 64, 1, 32]> a = frobnicate(x = x)[name = string(\"a\")];
        tensor<fp16, [1, 64, 1, 32]> b = relu(x = a)[name = string(\"b\")];
",
        "b",
    );
    single_error(
        &diags(&text),
        4,
        "frobnicate \"a\"",
        "unknown op `frobnicate`",
    );
}

#[test]
fn unknown_operand_is_an_error() {
    let text = source(
        X,
        "        tensor<fp16, [1, 64, 1, 32]> a = relu(x = x, alpha = x)[name = string(\"a\")];\n",
        "a",
    );
    single_error(&diags(&text), 4, "relu \"a\"", "unknown operand `alpha`");
}

#[test]
fn missing_required_operand_is_an_error() {
    let text = source(
        X,
        "        tensor<fp16, [1, 64, 1, 32]> a = add(x = x)[name = string(\"a\")];\n",
        "a",
    );
    single_error(
        &diags(&text),
        4,
        "add \"a\"",
        "missing required operand `y`",
    );
}

#[test]
fn declared_type_that_differs_from_the_inferred_one_is_an_error() {
    let text = source(
        X,
        "        tensor<fp16, [1, 64, 1, 16]> a = relu(x = x)[name = string(\"a\")];\n",
        "a",
    );
    single_error(
        &diags(&text),
        4,
        "relu \"a\"",
        "declared type tensor<fp16, [1, 64, 1, 16]> but the operands give tensor<fp16, [1, 64, 1, 32]>",
    );
}

#[test]
fn type_rule_error_names_the_operand() {
    let text = source(
        "tensor<fp16, [1, 64, 1, 32]> x, tensor<fp32, [1, 64, 1, 32]> z",
        "        tensor<fp16, [1, 64, 1, 32]> a = add(x = x, y = z)[name = string(\"a\")];\n",
        "a",
    );
    single_error(
        &diags(&text),
        4,
        "add \"a\"",
        "y: expected fp16, found fp32",
    );
}

#[test]
fn const_val_must_match_the_declared_type() {
    let text = source(
        X,
        "        tensor<int32, [3]> s = const()[name = string(\"s\"), val = tensor<int32, [2]>([1, 2])];\n",
        "x",
    );
    single_error(
        &diags(&text),
        4,
        "const \"s\"",
        "declared type tensor<int32, [3]> but val is tensor<int32, [2]>",
    );
}

#[test]
fn value_operand_must_be_named_and_const_operand_must_be_const() {
    let text = source(
        "tensor<fp16, [1, 64, 1, 32]> x, tensor<int32, [4]> shape",
        "        tensor<fp16, [1, 64, 1, 32]> a = add(x = x, y = fp16(1.0))[name = string(\"a\")];
        tensor<fp16, [64, 32]> b = reshape(x = x, shape = shape)[name = string(\"b\")];
",
        "a, b",
    );
    let d = diags(&text);
    let errors: Vec<_> = d.errors().collect();
    assert_eq!(errors.len(), 2, "{d}");
    assert!(
        errors[0].message.contains("y: expected a named value"),
        "{d}"
    );
    assert!(errors[1].message.contains("shape: expected a const"), "{d}");
}

#[test]
fn missing_name_attribute_is_an_error() {
    let mut relu = Operation::new(
        "relu",
        "y",
        ValueType::tensor(DType::Fp16, [4]),
        vec![("x".into(), mil::Arg::Var("x".into()))],
    );
    relu.attrs.clear();
    let input = Param {
        name: "x".into(),
        ty: ValueType::tensor(DType::Fp16, [4]),
    };
    let p = Program::with_main(vec![input], vec![relu], vec!["y".into()]);
    let d = verify(&p, &VerifyOptions::default());
    assert_eq!(d.errors().count(), 1, "{d}");
    assert!(d.0[0].message.contains("missing `name"), "{d}");
}

#[test]
fn scalar_input_and_missing_main_are_errors() {
    let input = Param {
        name: "s".into(),
        ty: ValueType::Scalar(DType::Fp16),
    };
    let mut p = Program::with_main(vec![input], vec![], vec!["s".into()]);
    p.functions[0].name = "other".into();
    let d = verify(&p, &VerifyOptions::default());
    let messages: Vec<&str> = d.errors().map(|e| e.message.as_str()).collect();
    assert_eq!(messages.len(), 2, "{d}");
    assert!(messages[0].contains("no function `main`"), "{d}");
    assert!(messages[1].contains("expected a tensor input"), "{d}");
}

#[test]
fn every_error_is_collected_not_just_the_first() {
    let text = source(
        X,
        "        tensor<fp16, [1, 64, 1, 32]> a = gelu(x = x)[name = string(\"a\")];
        tensor<fp16, [1, 64, 1, 32]> b = relu(x = nope)[name = string(\"b\")];
        tensor<fp16, [1, 64, 1, 32]> c = whatever(x = a)[name = string(\"c\")];
        tensor<fp32, [1, 64, 1, 32]> d = tanh(x = a)[name = string(\"d\")];
",
        "d, missing",
    );
    let d = diags(&text);
    let lines: Vec<(u32, Option<Rule>)> = d.errors().map(|e| (e.span.line, e.rule)).collect();
    assert_eq!(
        lines,
        [
            (4, Some(Rule::C10)),
            (5, None),
            (6, None),
            (7, None),
            (3, Some(Rule::C17))
        ],
        "{d}"
    );
}

#[test]
fn spec_section_2_example_verifies_clean() {
    assert_clean(include_str!("data/spec_example.mil"));
}

/// A transformer layer in the device's layout `[1, C, 1, S]`, C = 64, S = 32: layer norm via
/// reduce_mean/sub/mul/pow, single-head matmul attention with softmax, conv FFN with tanh GELU.
const LAYER: &str = r#"program(1.3)
{
    func main<ios18>(tensor<fp16, [1, 64, 1, 32]> x) {
        tensor<int32, [1]> ch = const()[name = string("ch"), val = tensor<int32, [1]>([1])];
        bool kd = const()[name = string("kd"), val = bool(true)];
        tensor<fp16, [1, 1, 1, 32]> mu = reduce_mean(x = x, axes = ch, keep_dims = kd)[name = string("mu")];
        tensor<fp16, [1, 64, 1, 32]> xc = sub(x = x, y = mu)[name = string("xc")];
        tensor<fp16, [1, 64, 1, 32]> sq = mul(x = xc, y = xc)[name = string("sq")];
        tensor<fp16, [1, 1, 1, 32]> var = reduce_mean(x = sq, axes = ch, keep_dims = kd)[name = string("var")];
        fp16 eps = const()[name = string("eps"), val = fp16(0.00001)];
        tensor<fp16, [1, 1, 1, 32]> ve = add(x = var, y = eps)[name = string("ve")];
        fp16 nhalf = const()[name = string("nhalf"), val = fp16(-0.5)];
        tensor<fp16, [1, 1, 1, 32]> rstd = pow(x = ve, y = nhalf)[name = string("rstd")];
        tensor<fp16, [1, 64, 1, 32]> xn = mul(x = xc, y = rstd)[name = string("xn")];
        tensor<fp16, [1, 64, 1, 1]> gamma = const()[name = string("gamma"), val = tensor<fp16, [1, 64, 1, 1]>(BLOBFILE(path = string("@model_path/weights/w.bin"), offset = uint64(64)))];
        tensor<fp16, [1, 64, 1, 32]> h = mul(x = xn, y = gamma)[name = string("h")];
        tensor<int32, [3]> s3 = const()[name = string("s3"), val = tensor<int32, [3]>([1, 64, 32])];
        tensor<fp16, [1, 64, 32]> h3 = reshape(x = h, shape = s3)[name = string("h3")];
        tensor<int32, [3]> p021 = const()[name = string("p021"), val = tensor<int32, [3]>([0, 2, 1])];
        tensor<fp16, [1, 32, 64]> q = transpose(x = h3, perm = p021)[name = string("q")];
        bool tf = const()[name = string("tf"), val = bool(false)];
        bool tt = const()[name = string("tt"), val = bool(true)];
        tensor<fp16, [1, 32, 32]> scores = matmul(x = q, y = q, transpose_x = tf, transpose_y = tt)[name = string("scores")];
        fp16 scale = const()[name = string("scale"), val = fp16(0.125)];
        tensor<fp16, [1, 32, 32]> scaled = mul(x = scores, y = scale)[name = string("scaled")];
        int32 last = const()[name = string("last"), val = int32(-1)];
        tensor<fp16, [1, 32, 32]> probs = softmax(x = scaled, axis = last)[name = string("probs")];
        tensor<fp16, [1, 32, 64]> att = matmul(x = probs, y = q, transpose_x = tf, transpose_y = tf)[name = string("att")];
        tensor<fp16, [1, 64, 32]> att_t = transpose(x = att, perm = p021)[name = string("att_t")];
        tensor<int32, [4]> s4 = const()[name = string("s4"), val = tensor<int32, [4]>([1, 64, 1, -1])];
        tensor<fp16, [1, 64, 1, 32]> att4 = reshape(x = att_t, shape = s4)[name = string("att4")];
        tensor<fp16, [1, 64, 1, 32]> r1 = add(x = x, y = att4)[name = string("r1")];
        string pt = const()[name = string("pt"), val = string("valid")];
        tensor<int32, [2]> st = const()[name = string("st"), val = tensor<int32, [2]>([1, 1])];
        tensor<int32, [4]> pd = const()[name = string("pd"), val = tensor<int32, [4]>([0, 0, 0, 0])];
        tensor<int32, [2]> dl = const()[name = string("dl"), val = tensor<int32, [2]>([1, 1])];
        int32 gr = const()[name = string("gr"), val = int32(1)];
        tensor<fp16, [256, 64, 1, 1]> W1 = const()[name = string("W1"), val = tensor<fp16, [256, 64, 1, 1]>(BLOBFILE(path = string("@model_path/weights/w.bin"), offset = uint64(256)))];
        tensor<fp16, [1, 256, 1, 32]> u = conv(dilations = dl, groups = gr, pad = pd, pad_type = pt, strides = st, weight = W1, x = r1)[name = string("u")];
        tensor<fp16, [1, 256, 1, 32]> u2 = mul(x = u, y = u)[name = string("u2")];
        tensor<fp16, [1, 256, 1, 32]> u3 = mul(x = u2, y = u)[name = string("u3")];
        fp16 c0 = const()[name = string("c0"), val = fp16(0.044715)];
        tensor<fp16, [1, 256, 1, 32]> u3c = mul(x = u3, y = c0)[name = string("u3c")];
        tensor<fp16, [1, 256, 1, 32]> inner = add(x = u, y = u3c)[name = string("inner")];
        fp16 c1 = const()[name = string("c1"), val = fp16(0.7978846)];
        tensor<fp16, [1, 256, 1, 32]> arg = mul(x = inner, y = c1)[name = string("arg")];
        tensor<fp16, [1, 256, 1, 32]> th = tanh(x = arg)[name = string("th")];
        fp16 one = const()[name = string("one"), val = fp16(1.0)];
        tensor<fp16, [1, 256, 1, 32]> th1 = add(x = th, y = one)[name = string("th1")];
        fp16 half = const()[name = string("half"), val = fp16(0.5)];
        tensor<fp16, [1, 256, 1, 32]> uh = mul(x = u, y = half)[name = string("uh")];
        tensor<fp16, [1, 256, 1, 32]> g = mul(x = uh, y = th1)[name = string("g")];
        tensor<fp16, [64, 256, 1, 1]> W2 = const()[name = string("W2"), val = tensor<fp16, [64, 256, 1, 1]>(BLOBFILE(path = string("@model_path/weights/w.bin"), offset = uint64(33152)))];
        tensor<fp16, [1, 64, 1, 32]> f = conv(dilations = dl, groups = gr, pad = pd, pad_type = pt, strides = st, weight = W2, x = g)[name = string("f")];
        tensor<fp16, [1, 64, 1, 32]> out = add(x = r1, y = f)[name = string("out")];
    } -> (out);
}
"#;

#[test]
fn realistic_layer_verifies_clean() {
    assert_clean(LAYER);
}

#[test]
fn value_types_give_every_value_its_checked_type() {
    let p = parse(LAYER);
    let types = value_types(p.main().expect("main")).expect("the layer verifies");
    let f = p.main().expect("main");
    assert_eq!(types.len(), f.inputs.len() + f.body.len());
    assert_eq!(types["att"], ValueType::tensor(DType::Fp16, [1, 32, 64]));
    assert_eq!(types["scores"], ValueType::tensor(DType::Fp16, [1, 32, 32]));
    assert_eq!(types["mu"], ValueType::tensor(DType::Fp16, [1, 1, 1, 32]));
    let broken = parse(&LAYER.replace("= softmax(", "= softmaxx("));
    let d = value_types(broken.main().expect("main")).expect_err("unknown op");
    assert!(d.0[0].message.contains("softmaxx"), "{d}");
}

#[test]
fn rejected_op_still_has_its_operands_checked() {
    let text = source(
        X,
        "        int32 ax = const()[name = string(\"ax\"), val = int32(1)];
        tensor<fp16, [1, 128, 1, 32]> c = concat(values = x, axis = ax)[name = string(\"c\")];
",
        "c",
    );
    let d = diags(&text);
    let messages: Vec<(Option<Rule>, &str)> =
        d.errors().map(|e| (e.rule, e.message.as_str())).collect();
    assert_eq!(messages.len(), 2, "{d}");
    assert_eq!(messages[0].0, Some(Rule::C1), "{d}");
    assert!(messages[1].1.contains("values: expected a tuple"), "{d}");
}

#[test]
fn inline_tensor_data_must_fill_its_shape() {
    let short = mil::Literal::Tensor {
        ty: mil::TensorType::new(DType::Int32, [3]),
        data: mil::TensorData::Int32(vec![1, 2]),
    };
    let input = Param {
        name: "x".into(),
        ty: ValueType::tensor(DType::Fp16, [4]),
    };
    let p = Program::with_main(
        vec![input],
        vec![Operation::constant("s", short)],
        vec!["x".into()],
    );
    let d = verify(&p, &VerifyOptions::default());
    assert_eq!(d.errors().count(), 1, "{d}");
    assert_eq!(d.0[0].subject, "const \"s\"");
    assert!(
        d.0[0].message.contains("holds 2 elements, expected 3"),
        "{d}"
    );
}

#[test]
fn check_fails_with_every_error() {
    let text = source(
        X,
        "        tensor<fp16, [1, 64, 1, 32]> a = gelu(x = x)[name = string(\"a\")];
        tensor<fp16, [1, 64, 1, 32]> b = silu(x = a)[name = string(\"b\")];
",
        "b",
    );
    match check(&parse(&text), &VerifyOptions::default()) {
        Err(mil::Error::Verify(d)) => assert_eq!(d.errors().count(), 2, "{d}"),
        other => panic!("expected a verify error, got {other:?}"),
    }
}
