//! Printer/parser round trips: the spec example, accepted input spellings, and random programs.

use half::f16;
use mil::parse::parse_program;
use mil::print::print_program;
use mil::{
    Arg, DType, Function, Literal, Operation, Param, Program, Scalar, Span, TensorData, TensorType,
    ValueType,
};
use proptest::prelude::*;

const SPEC_EXAMPLE: &str = include_str!("data/spec_example.mil");
const OLD_DIALECT: &str = include_str!("data/old_dialect.mil");

/// A copy with every span cleared and every float replaced by zero, plus the floats' bits in
/// program order — so programs compare equal modulo spans with NaN compared by bits.
fn split_floats(p: &Program) -> (Program, Vec<u32>) {
    fn scalar(s: &mut Scalar, bits: &mut Vec<u32>) {
        match s {
            Scalar::Fp16(v) => bits.push(u32::from(std::mem::replace(v, f16::ZERO).to_bits())),
            Scalar::Fp32(v) => bits.push(std::mem::replace(v, 0.0).to_bits()),
            _ => {}
        }
    }
    fn literal(l: &mut Literal, bits: &mut Vec<u32>) {
        match l {
            Literal::Scalar(s) => scalar(s, bits),
            Literal::Tensor {
                data: TensorData::Fp16(v),
                ..
            } => v
                .iter_mut()
                .for_each(|x| bits.push(u32::from(std::mem::replace(x, f16::ZERO).to_bits()))),
            Literal::Tensor {
                data: TensorData::Fp32(v),
                ..
            } => v
                .iter_mut()
                .for_each(|x| bits.push(std::mem::replace(x, 0.0).to_bits())),
            Literal::Tensor { .. } | Literal::Blob { .. } => {}
        }
    }
    fn arg(a: &mut Arg, bits: &mut Vec<u32>) {
        match a {
            Arg::Var(_) => {}
            Arg::Lit(l) => literal(l, bits),
            Arg::Tuple(items) => items.iter_mut().for_each(|i| arg(i, bits)),
        }
    }
    let mut p = p.clone();
    let mut bits = Vec::new();
    for f in &mut p.functions {
        f.span = Span::default();
        for op in &mut f.body {
            op.span = Span::default();
            op.args.iter_mut().for_each(|(_, a)| arg(a, &mut bits));
            op.attrs.iter_mut().for_each(|(_, l)| literal(l, &mut bits));
        }
    }
    (p, bits)
}

#[test]
fn spec_example_prints_back_byte_identical() {
    let p = parse_program(SPEC_EXAMPLE).unwrap();
    assert_eq!(print_program(&p), SPEC_EXAMPLE);
    assert_eq!(p.to_string(), SPEC_EXAMPLE);
}

#[test]
fn spec_example_parses_to_the_expected_tree() {
    let p = parse_program(SPEC_EXAMPLE).unwrap();
    assert_eq!(p.version, "1.3");
    assert_eq!(p.build_info, Program::default_build_info());
    let main = p.main().unwrap();
    assert_eq!(main.opset, "ios18");
    assert_eq!(
        main.inputs[0].ty,
        ValueType::tensor(DType::Fp16, [1, 64, 1, 32])
    );
    assert_eq!(main.outputs, ["y"]);
    assert_eq!(main.body.len(), 7);
    let w = main.body[0].const_value().unwrap();
    assert_eq!(
        *w,
        Literal::Blob {
            ty: TensorType::new(DType::Fp16, [128, 64, 1, 1]),
            path: "@model_path/weights/w.bin".into(),
            offset: 64,
        }
    );
    assert_eq!(main.body[1].ty, ValueType::Scalar(DType::String));
    assert_eq!(main.body[2].const_value(), Some(&Literal::ints(&[1, 1])));
    let conv = &main.body[6];
    assert_eq!(conv.op, "conv");
    let names: Vec<&str> = conv.args.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "dilations",
            "groups",
            "pad",
            "pad_type",
            "strides",
            "weight",
            "x"
        ]
    );
    assert_eq!(conv.arg("weight"), Some(&Arg::Var("W".into())));
}

#[test]
fn spans_point_at_function_and_operation_starts() {
    let p = parse_program(SPEC_EXAMPLE).unwrap();
    let main = p.main().unwrap();
    assert_eq!(main.span, Span { line: 4, col: 5 });
    for (i, op) in main.body.iter().enumerate() {
        assert_eq!(
            op.span,
            Span {
                line: 5 + i as u32,
                col: 9
            }
        );
    }
    let old = parse_program(OLD_DIALECT).unwrap();
    assert_eq!(old.functions[0].span, Span { line: 6, col: 3 });
    assert_eq!(old.functions[0].body[1].span, Span { line: 9, col: 5 });
}

#[test]
fn old_dialect_with_free_spacing_parses_to_the_canonical_program() {
    let canonical = parse_program(SPEC_EXAMPLE).unwrap();
    let old = parse_program(OLD_DIALECT).unwrap();
    assert_eq!(split_floats(&old), split_floats(&canonical));
    assert_eq!(print_program(&old), SPEC_EXAMPLE);
}

/// A one-function program whose body is `op_lines`.
fn program_with(op_lines: &str) -> String {
    format!("program(1.3)\n{{\n    func main<ios18>() {{\n{op_lines}\n    }} -> ();\n}}\n")
}

fn only_const(text: &str) -> Literal {
    let p = parse_program(&program_with(text)).unwrap();
    p.functions[0].body[0].const_value().unwrap().clone()
}

#[test]
fn float_spellings_parse_to_the_intended_values() {
    let cases: [(&str, f32); 9] = [
        ("0x1.8p+1", 3.0),
        ("0X1P-2", 0.25),
        ("-0x10", -16.0),
        ("1", 1.0),
        ("-2.5e-3", -2.5e-3),
        ("1E+2", 100.0),
        (".5", 0.5),
        ("inf", f32::INFINITY),
        ("-inf", f32::NEG_INFINITY),
    ];
    for (text, want) in cases {
        let lit = only_const(&format!("fp32 c = const()[val = fp32({text})];"));
        assert_eq!(lit, Literal::Scalar(Scalar::Fp32(want)), "{text}");
    }
    let nan = only_const("fp16 c = const()[val = fp16(nan)];");
    assert!(matches!(nan, Literal::Scalar(Scalar::Fp16(v)) if v.is_nan()));
    let big = only_const("fp16 c = const()[val = fp16(1e300)];");
    assert_eq!(big, Literal::Scalar(Scalar::Fp16(f16::INFINITY)));
}

#[test]
fn integer_literals_where_floats_are_expected_become_floats() {
    let lit = only_const("tensor<fp16, [2]> c = const()[val = tensor<fp16, [2]>([0.5, 1])];");
    let want = TensorData::Fp16(vec![f16::from_f32(0.5), f16::ONE]);
    assert_eq!(
        lit,
        Literal::Tensor {
            ty: TensorType::new(DType::Fp16, [2]),
            data: want
        }
    );
}

#[test]
fn nested_and_flat_lists_give_the_same_row_major_tensor() {
    let nested = only_const(
        "tensor<int32, [2, 2]> c = const()[val = tensor<int32, [2, 2]>([[1, 2], [3, -4]])];",
    );
    let flat = only_const(
        "tensor<int32, [2, 2]> c = const()[val = tensor<int32, [2, 2]>([1, 2, 3, -4])];",
    );
    assert_eq!(nested, flat);
    assert_eq!(nested.as_i64s(), Some(vec![1, 2, 3, -4]));
    let empty = only_const("tensor<int32, [0, 3]> c = const()[val = tensor<int32, [0, 3]>([])];");
    assert_eq!(empty.as_i64s(), Some(vec![]));
}

#[test]
fn old_rank0_literals_normalize_to_scalars_but_declared_types_stay_tensors() {
    let text = program_with(
        "        tensor<bool, []> b = const()[val = tensor<bool, []>(true)];\n        \
         tensor<uint64, []> u = const()[val = tensor<uint64, []>(18446744073709551615)];",
    );
    let p = parse_program(&text).unwrap();
    let body = &p.functions[0].body;
    assert_eq!(body[0].ty, ValueType::tensor(DType::Bool, []));
    assert_eq!(
        body[0].const_value(),
        Some(&Literal::Scalar(Scalar::Bool(true)))
    );
    assert_eq!(
        body[1].const_value(),
        Some(&Literal::Scalar(Scalar::UInt64(u64::MAX)))
    );
}

#[test]
fn inline_literal_operands_parse_as_literal_args() {
    let text = program_with(
        "        tensor<fp16, [2, 2]> m = matmul(x = a, y = b, transpose_x = bool(false), \
         values = (a, int8(-128), (b)), t = tensor<int32, [1]>([7]))[name = string(\"m\")];",
    );
    let p = parse_program(&text).unwrap();
    let op = &p.functions[0].body[0];
    assert_eq!(op.arg("x"), Some(&Arg::Var("a".into())));
    assert_eq!(
        op.arg("transpose_x"),
        Some(&Arg::Lit(Literal::Scalar(Scalar::Bool(false))))
    );
    assert_eq!(
        op.arg("values"),
        Some(&Arg::Tuple(vec![
            Arg::Var("a".into()),
            Arg::Lit(Literal::Scalar(Scalar::Int8(-128))),
            Arg::Tuple(vec![Arg::Var("b".into())]),
        ]))
    );
    assert_eq!(op.arg("t"), Some(&Arg::Lit(Literal::ints(&[7]))));
}

#[test]
fn empty_build_info_omits_the_bracket_line_and_reads_back() {
    let mut p = parse_program(SPEC_EXAMPLE).unwrap();
    p.build_info.clear();
    let text = print_program(&p);
    assert!(!text.contains("buildInfo"));
    assert_eq!(parse_program(&text).unwrap().build_info, vec![]);
    let explicit = SPEC_EXAMPLE.replacen(
        &SPEC_EXAMPLE.lines().nth(1).unwrap().to_string(),
        "[buildInfo = dict<string, string>({})]",
        1,
    );
    assert_eq!(parse_program(&explicit).unwrap().build_info, vec![]);
}

#[test]
fn literal_display_uses_the_spec_dialect() {
    let cases: [(Literal, &str); 7] = [
        (
            Literal::Scalar(Scalar::Fp16(f16::from_f32(0.5))),
            "fp16(0.5)",
        ),
        (
            Literal::Scalar(Scalar::Fp16(f16::from_f32(0.1))),
            "fp16(0.1)",
        ),
        (Literal::Scalar(Scalar::Fp32(1.0)), "fp32(1.0)"),
        (
            Literal::Scalar(Scalar::Fp32(f32::NEG_INFINITY)),
            "fp32(-inf)",
        ),
        (Literal::Scalar(Scalar::UInt64(64)), "uint64(64)"),
        (
            Literal::Scalar(Scalar::String("a\"b\\c\nd\u{1}".into())),
            "string(\"a\\\"b\\\\c\\nd\\u{1}\")",
        ),
        (Literal::ints(&[1, 1]), "tensor<int32, [2]>([1, 1])"),
    ];
    for (lit, want) in cases {
        assert_eq!(lit.to_string(), want);
    }
    assert_eq!(
        ValueType::tensor(DType::Fp16, []).to_string(),
        "tensor<fp16, []>"
    );
    assert_eq!(ValueType::Scalar(DType::Int32).to_string(), "int32");
}

#[test]
fn rank0_inline_tensor_prints_as_a_list_that_reads_back_as_a_scalar() {
    let lit = Literal::Tensor {
        ty: TensorType::new(DType::Int32, []),
        data: TensorData::Int32(vec![5]),
    };
    assert_eq!(lit.to_string(), "tensor<int32, []>([5])");
    let back = only_const(&format!("int32 c = const()[val = {lit}];"));
    assert_eq!(back, Literal::Scalar(Scalar::Int32(5)));
}

#[test]
fn million_element_inline_tensor_parses_quickly() {
    let n = 1_000_000;
    let elems = vec!["0.5"; n].join(", ");
    let text = program_with(&format!(
        "        tensor<fp16, [1000, 1000]> c = const()[val = tensor<fp16, [1000, 1000]>([{elems}])];"
    ));
    let start = std::time::Instant::now();
    let p = parse_program(&text).unwrap();
    let elapsed = start.elapsed();
    let lit = p.functions[0].body[0].const_value().unwrap();
    assert!(matches!(lit, Literal::Tensor { data: TensorData::Fp16(v), .. } if v.len() == n));
    assert!(elapsed.as_secs_f64() < 5.0, "took {elapsed:?}");
}

fn ident() -> impl Strategy<Value = String> {
    "[a-zA-Z_][a-zA-Z0-9_]{0,7}"
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), "[\"\\\\\n\t\r\u{0}a@/ é]{0,6}"]
}

fn any_dtype() -> impl Strategy<Value = DType> {
    proptest::sample::select(DType::ALL.to_vec())
}

fn any_f16() -> impl Strategy<Value = f16> {
    let special = [
        f16::INFINITY,
        f16::NEG_INFINITY,
        f16::NAN,
        f16::NEG_ZERO,
        f16::MAX,
        f16::MIN_POSITIVE_SUBNORMAL,
    ];
    prop_oneof![
        any::<u16>().prop_map(f16::from_bits),
        proptest::sample::select(special.to_vec()),
    ]
    .prop_map(|v| if v.is_nan() { f16::NAN } else { v })
}

fn any_f32() -> impl Strategy<Value = f32> {
    let special = [
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        -0.0,
        f32::MAX,
        f32::MIN_POSITIVE,
        1e-45,
    ];
    prop_oneof![
        any::<u32>().prop_map(f32::from_bits),
        proptest::sample::select(special.to_vec()),
    ]
    .prop_map(|v| if v.is_nan() { f32::NAN } else { v })
}

fn scalar(dtype: DType) -> BoxedStrategy<Scalar> {
    match dtype {
        DType::Fp16 => any_f16().prop_map(Scalar::Fp16).boxed(),
        DType::Fp32 => any_f32().prop_map(Scalar::Fp32).boxed(),
        DType::Int32 => any::<i32>().prop_map(Scalar::Int32).boxed(),
        DType::Int8 => any::<i8>().prop_map(Scalar::Int8).boxed(),
        DType::UInt8 => any::<u8>().prop_map(Scalar::UInt8).boxed(),
        DType::Bool => any::<bool>().prop_map(Scalar::Bool).boxed(),
        DType::String => text().prop_map(Scalar::String).boxed(),
        DType::UInt64 => any::<u64>().prop_map(Scalar::UInt64).boxed(),
    }
}

fn data(dtype: DType, n: usize) -> BoxedStrategy<TensorData> {
    use proptest::collection::vec;
    match dtype {
        DType::Fp16 => vec(any_f16(), n).prop_map(TensorData::Fp16).boxed(),
        DType::Fp32 => vec(any_f32(), n).prop_map(TensorData::Fp32).boxed(),
        DType::Int32 => vec(any::<i32>(), n).prop_map(TensorData::Int32).boxed(),
        DType::Int8 => vec(any::<i8>(), n).prop_map(TensorData::Int8).boxed(),
        DType::UInt8 => vec(any::<u8>(), n).prop_map(TensorData::UInt8).boxed(),
        DType::Bool => vec(any::<bool>(), n).prop_map(TensorData::Bool).boxed(),
        DType::String => vec(text(), n).prop_map(TensorData::String).boxed(),
        DType::UInt64 => vec(any::<u64>(), n).prop_map(TensorData::UInt64).boxed(),
    }
}

fn tensor_type(min_rank: usize) -> impl Strategy<Value = TensorType> {
    (
        any_dtype(),
        proptest::collection::vec(0..4usize, min_rank..=3),
    )
        .prop_map(|(d, shape)| TensorType::new(d, shape))
}

/// Literals in canonical form: inline tensors have rank ≥ 1 (rank 0 reads back as a scalar).
fn literal() -> impl Strategy<Value = Literal> {
    prop_oneof![
        any_dtype().prop_flat_map(scalar).prop_map(Literal::Scalar),
        tensor_type(1).prop_flat_map(|ty| {
            data(ty.dtype, ty.numel()).prop_map(move |data| Literal::Tensor {
                ty: ty.clone(),
                data,
            })
        }),
        (tensor_type(0), text(), any::<u64>()).prop_map(|(ty, path, offset)| Literal::Blob {
            ty,
            path,
            offset
        }),
    ]
}

fn value_type() -> impl Strategy<Value = ValueType> {
    prop_oneof![
        any_dtype().prop_map(ValueType::Scalar),
        tensor_type(0).prop_map(ValueType::Tensor),
    ]
}

fn arg() -> impl Strategy<Value = Arg> {
    let leaf = prop_oneof![ident().prop_map(Arg::Var), literal().prop_map(Arg::Lit)];
    leaf.prop_recursive(2, 8, 3, |inner| {
        proptest::collection::vec(inner, 0..3).prop_map(Arg::Tuple)
    })
}

fn operation() -> impl Strategy<Value = Operation> {
    use proptest::collection::vec;
    (
        ident(),
        ident(),
        value_type(),
        vec((ident(), arg()), 0..4),
        vec((ident(), literal()), 0..3),
    )
        .prop_map(|(op, result, ty, args, attrs)| Operation {
            op,
            result,
            ty,
            args,
            attrs,
            span: Span::default(),
        })
}

fn function() -> impl Strategy<Value = Function> {
    use proptest::collection::vec;
    let param = (value_type(), ident()).prop_map(|(ty, name)| Param { name, ty });
    (
        ident(),
        ident(),
        vec(param, 0..3),
        vec(operation(), 0..5),
        vec(ident(), 0..3),
    )
        .prop_map(|(name, opset, inputs, body, outputs)| Function {
            name,
            opset,
            inputs,
            body,
            outputs,
            span: Span::default(),
        })
}

fn program() -> impl Strategy<Value = Program> {
    use proptest::collection::vec;
    (
        "[0-9]\\.[0-9]",
        vec((text(), text()), 0..3),
        vec(function(), 1..3),
    )
        .prop_map(|(version, build_info, functions)| Program {
            version,
            build_info,
            functions,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn random_programs_survive_print_parse_print(p in program()) {
        let text = print_program(&p);
        let back = parse_program(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(split_floats(&back), split_floats(&p));
        prop_assert_eq!(print_program(&back), text);
    }

    #[test]
    fn f16_values_print_shortest_and_read_back_exactly(v in any_f16()) {
        let lit = Literal::Scalar(Scalar::Fp16(v));
        let back = only_const(&format!("fp16 c = const()[val = {lit}];"));
        let Literal::Scalar(Scalar::Fp16(w)) = back else { panic!("not an fp16 scalar") };
        prop_assert_eq!(w.to_bits(), v.to_bits());
        prop_assert!(lit.to_string().len() <= "fp16(-6.104e-5)".len() + 2, "{}", lit);
    }
}
