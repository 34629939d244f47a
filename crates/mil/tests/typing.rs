//! The op type rules against result types inferred by coremltools (and numpy), plus the places
//! where Orion is deliberately stricter than coremltools.

use half::f16;
use mil::ops::{lookup, OperandInfo, Operands};
use mil::{DType, Literal, Scalar, TensorData, TensorType, ValueType};

/// Written by `fixtures/typing/make_shapes.py` from coremltools' iOS18 type inference.
const SHAPES: &str = include_str!("fixtures/typing/shapes.txt");

/// One operand of a fixture line: a value of some type, or a constant.
enum Spec {
    Value(ValueType),
    Const(Literal),
}

/// Parses `fp16[2,3]` (`fp16[]` is a scalar).
fn parse_type(s: &str) -> ValueType {
    let (dtype, dims) = s.trim_end_matches(']').split_once('[').expect("a type");
    let dtype = DType::from_name(dtype).expect("a dtype");
    if dims.is_empty() {
        return ValueType::Scalar(dtype);
    }
    let shape: Vec<usize> = dims.split(',').map(|d| d.parse().expect("a dim")).collect();
    ValueType::tensor(dtype, shape)
}

/// Parses one `name=…` operand of the fixture format (see `make_shapes.py`).
fn parse_operand(s: &str) -> (String, Spec) {
    let (name, spec) = s.split_once('=').expect("name=spec");
    let list = |items: &str| -> Vec<String> {
        let inner = items.trim_start_matches('[').trim_end_matches(']');
        inner.split(',').map(str::to_string).collect()
    };
    let spec = if let Some(items) = spec.strip_prefix("i32:") {
        let v: Vec<i32> = list(items)
            .iter()
            .map(|x| x.parse().expect("int"))
            .collect();
        Spec::Const(Literal::ints(&v))
    } else if let Some(items) = spec.strip_prefix("bool:") {
        let v: Vec<bool> = list(items).iter().map(|x| x == "true").collect();
        Spec::Const(Literal::Tensor {
            ty: TensorType::new(DType::Bool, vec![v.len()]),
            data: TensorData::Bool(v),
        })
    } else if let Some((kind, rest)) = spec.split_once('(') {
        let v = rest.trim_end_matches(')');
        let scalar = match kind {
            "i32" => Scalar::Int32(v.parse().expect("int")),
            "bool" => Scalar::Bool(v == "true"),
            "str" => Scalar::String(v.to_string()),
            "fp16" => Scalar::Fp16(f16::from_f32(v.parse().expect("float"))),
            "fp32" => Scalar::Fp32(v.parse().expect("float")),
            "int8" => Scalar::Int8(v.parse().expect("int8")),
            "uint8" => Scalar::UInt8(v.parse().expect("uint8")),
            other => panic!("unknown scalar kind {other}"),
        };
        Spec::Const(Literal::Scalar(scalar))
    } else {
        Spec::Value(parse_type(spec))
    };
    (name.to_string(), spec)
}

/// Runs `op`'s type rule on the operands.
fn infer(op: &str, specs: &[(String, Spec)]) -> Result<ValueType, String> {
    let items = specs
        .iter()
        .map(|(name, spec)| {
            let info = match spec {
                Spec::Value(t) => OperandInfo {
                    ty: Some(t.clone()),
                    value: None,
                },
                Spec::Const(lit) => OperandInfo {
                    ty: Some(lit.value_type()),
                    value: Some(lit),
                },
            };
            (name.as_str(), info)
        })
        .collect();
    let def = lookup(op).unwrap_or_else(|| panic!("{op} is not in the op table"));
    (def.type_rule)(&Operands { items })
}

/// Parses a list of operands written like the fixture's middle column.
fn operands(text: &str) -> Vec<(String, Spec)> {
    text.split_whitespace().map(parse_operand).collect()
}

#[test]
fn type_rules_agree_with_coremltools_and_numpy() {
    let mut checked = 0;
    for line in SHAPES.lines() {
        let cols: Vec<&str> = line.split(" | ").collect();
        let [op, args, expected] = cols[..] else {
            panic!("malformed fixture line: {line}");
        };
        let got = infer(op, &operands(args));
        match expected {
            "error" => assert!(got.is_err(), "{line}: expected an error, got {got:?}"),
            t => assert_eq!(got, Ok(parse_type(t)), "{line}"),
        }
        checked += 1;
    }
    assert!(checked >= 40, "only {checked} fixture lines");
}

/// The error message of a rule that must fail.
fn error(op: &str, args: &str) -> String {
    infer(op, &operands(args)).expect_err("the rule must reject these operands")
}

#[test]
fn broadcast_errors_name_the_operand_and_both_sides() {
    assert_eq!(
        error("add", "x=fp16[2,3] y=fp32[2,3]"),
        "y: expected fp16, found fp32"
    );
    assert!(error("mul", "x=fp16[2,3] y=fp16[3,2]").contains("does not broadcast"));
}

#[test]
fn two_scalars_give_a_scalar() {
    let got = infer("add", &operands("x=fp16(1.0) y=fp16(2.0)"));
    assert_eq!(got, Ok(ValueType::Scalar(DType::Fp16)));
}

#[test]
fn float_unary_rejects_ints_and_a_mistyped_epsilon() {
    assert_eq!(
        error("exp", "x=int32[2]"),
        "x: expected fp16 or fp32, found int32"
    );
    assert!(error("rsqrt", "x=fp16[2] epsilon=fp32(0.1)").starts_with("epsilon: expected fp16"));
}

#[test]
fn orion_rejects_what_coremltools_lets_through() {
    assert!(error("softmax", "x=fp16[1,4,8] axis=i32(3)").contains("out of range"));
    assert!(error("transpose", "x=fp16[2,3,4] perm=i32:[0,1,1]").contains("not a permutation"));
    assert!(error("reduce_sum", "x=fp16[2,3] axes=i32:[1,-1]").contains("repeated"));
    assert!(error("matmul", "x=fp16[4] y=fp16[4]").contains("rank 2"));
    assert!(error("matmul", "x=fp16[4] y=fp16[4,3] transpose_x=bool(true)").contains("rank 1"));
}

#[test]
fn slice_by_index_rejects_negative_strides_and_empty_slices() {
    assert!(error(
        "slice_by_index",
        "x=fp16[8] begin=i32:[7] end=i32:[0] stride=i32:[-1]"
    )
    .starts_with("stride: expected positive"));
    assert!(
        error("slice_by_index", "x=fp16[8] begin=i32:[5] end=i32:[2]").contains("slices nothing")
    );
    assert!(error(
        "slice_by_index",
        "x=fp16[8,2] begin=i32:[8,0] end=i32:[9,2] squeeze_mask=bool:[true,false]"
    )
    .contains("squeezed axis 0"));
}

#[test]
fn slice_by_index_squeezing_every_axis_gives_a_scalar() {
    let got = infer(
        "slice_by_index",
        &operands("x=fp16[4,5] begin=i32:[-1,2] end=i32:[0,0] squeeze_mask=bool:[true,true]"),
    );
    assert_eq!(got, Ok(ValueType::Scalar(DType::Fp16)));
}

#[test]
fn slice_by_size_checks_bounds() {
    assert!(error(
        "slice_by_size",
        "x=fp16[4,8] begin=i32:[0,6] size=i32:[1,3]"
    )
    .starts_with("size:"));
    assert!(error(
        "slice_by_size",
        "x=fp16[4,8] begin=i32:[-1,0] size=i32:[1,3]"
    )
    .starts_with("begin:"));
}

#[test]
fn reshape_zero_needs_matching_rank() {
    assert!(error("reshape", "x=fp16[2,3,4] shape=i32:[0,12]").contains("rank"));
}

#[test]
fn conv_checks_channels_pads_and_kernel() {
    assert!(
        error("conv", "x=fp16[1,6,5,5] weight=fp16[4,4,1,1] groups=i32(2)")
            .starts_with("weight: expected 3 input channels per group")
    );
    assert!(error(
        "conv",
        "x=fp16[1,6,5,5] weight=fp16[4,6,1,1] pad_type=str(reflect)"
    )
    .starts_with("pad_type:"));
    assert!(error("conv", "x=fp16[1,6,2,2] weight=fp16[4,6,3,3]").contains("exceeds"));
    assert!(error(
        "conv",
        "x=fp16[1,6,5,5] weight=fp16[4,6,1,1] strides=i32:[1]"
    )
    .starts_with("strides: expected 2 values"));
    assert!(
        error("conv", "x=fp16[1,6,5,5] weight=fp16[4,6,1,1] bias=fp16[6]").starts_with("bias:")
    );
    let with_bias = infer(
        "conv",
        &operands("x=fp16[1,6,5,5] weight=fp16[4,6,1,1] bias=fp16[4]"),
    );
    assert_eq!(with_bias, Ok(ValueType::tensor(DType::Fp16, [1, 4, 5, 5])));
}

#[test]
fn attention_mask_must_broadcast_and_end_in_the_key_length() {
    assert!(error(
        "scaled_dot_product_attention",
        "query=fp16[2,32,16] key=fp16[2,24,16] value=fp16[2,24,8] attn_mask=fp16[32,32]"
    )
    .starts_with("attn_mask:"));
    let bool_mask = infer(
        "scaled_dot_product_attention",
        &operands("query=fp16[2,32,16] key=fp16[2,24,16] value=fp16[2,24,8] attn_mask=bool[32,24]"),
    );
    assert_eq!(bool_mask, Ok(ValueType::tensor(DType::Fp16, [2, 32, 8])));
}

#[test]
fn per_channel_quantization_parameters_follow_the_axis() {
    let ok = infer(
        "constexpr_affine_dequantize",
        &operands("quantized_data=uint8[4,3] zero_point=uint8[3] scale=fp32[3] axis=i32(-1)"),
    );
    assert_eq!(ok, Ok(ValueType::tensor(DType::Fp32, [4, 3])));
    assert!(error(
        "constexpr_affine_dequantize",
        "quantized_data=uint8[4,3] zero_point=uint8[3] scale=fp32[4] axis=i32(1)"
    )
    .starts_with("scale: expected 3 values"));
    assert!(error(
        "quantize",
        "input=fp16[4,3] scale=fp16[3] output_dtype=str(int8)"
    )
    .starts_with("axis: required"));
    assert!(error(
        "quantize",
        "input=fp16[4,3] scale=fp16(1.0) output_dtype=str(int4)"
    )
    .starts_with("output_dtype:"));
    assert!(
        error("dequantize", "input=fp16[4,3] scale=fp16(1.0)").starts_with("input: expected int8")
    );
}

#[test]
fn cast_accepts_coremltools_spellings_only() {
    assert!(error("cast", "x=fp16[2] dtype=str(float16)").starts_with("dtype:"));
    let got = infer("cast", &operands("x=fp16[2] dtype=str(bool)"));
    assert_eq!(got, Ok(ValueType::tensor(DType::Bool, [2])));
}

#[test]
fn const_and_rejected_ops_have_no_type_rule() {
    assert!(error("const", "").contains("`val`"));
    assert!(error("gelu", "x=fp16[2]").contains("not support"));
}
