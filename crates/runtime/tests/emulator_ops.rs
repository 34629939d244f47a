//! Emulator op kernels against numpy references (`fixtures/ops/make_fixture.py`), the fp16
//! overflow behaviour of numpy float16, device-observed numerics, and GEMM/conv properties.

use half::f16;
use mil::DType;
use proptest::prelude::*;
use runtime::emulator::*;
use serde_json::Value;

const FIXTURE: &str = include_str!("fixtures/ops/ops.json");
const NX: Numerics = Numerics::IeeeFp16;

/// Decodes a fixture tensor (`fp16` as IEEE bit patterns, other dtypes as numbers).
fn tensor(v: &Value) -> Tensor {
    let dtype = DType::from_name(v["dtype"].as_str().unwrap()).unwrap();
    let shape: Vec<usize> = v["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect();
    let vals = v["values"].as_array().unwrap();
    let data = vals
        .iter()
        .map(|x| match dtype {
            DType::Fp16 => f16::from_bits(x.as_u64().unwrap() as u16).to_f32(),
            _ => x.as_f64().unwrap() as f32,
        })
        .collect();
    Tensor::new(dtype, shape, data).unwrap()
}

fn ints(v: &Value) -> Vec<i64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect()
}

fn bools(v: &Value) -> Option<Vec<bool>> {
    v.as_array()
        .map(|a| a.iter().map(|x| x.as_bool().unwrap()).collect())
}

/// Position of an fp16 value on the ordered line of fp16 values (adjacent values differ by 1).
fn ordinal(v: f32) -> i32 {
    let b = f16::from_f32(v).to_bits() as i32;
    if b & 0x8000 != 0 {
        -(b & 0x7fff)
    } else {
        b
    }
}

/// Checks `got` against `want` within `ulps` fp16 ulps or `atol` absolute; returns the worst ulp gap.
fn assert_close(name: &str, got: &Tensor, want: &Tensor, ulps: i32, atol: f32) -> i32 {
    assert_eq!(got.shape, want.shape, "{name}: shape");
    assert_eq!(got.dtype, want.dtype, "{name}: dtype");
    let mut worst = 0;
    for (i, (&g, &w)) in got.data.iter().zip(&want.data).enumerate() {
        if g.is_nan() || w.is_nan() {
            assert!(g.is_nan() && w.is_nan(), "{name}[{i}]: got {g}, want {w}");
            continue;
        }
        if want.dtype != DType::Fp16 {
            assert_eq!(g, w, "{name}[{i}]");
            continue;
        }
        let gap = (ordinal(g) - ordinal(w)).abs();
        worst = worst.max(gap);
        assert!(
            gap <= ulps || (g - w).abs() <= atol,
            "{name}[{i}]: got {g}, want {w} ({gap} ulp, tolerance {ulps} ulp or {atol})"
        );
    }
    worst
}

/// Runs one fixture case through the kernel it names.
fn run(op: &str, a: &Value, x: &[Tensor], nx: Numerics) -> Tensor {
    let axis = a["axis"].as_i64();
    let flag = |k: &str| a[k].as_bool().unwrap_or(false);
    let bin = |op| binary(op, &x[0], &x[1], nx).unwrap();
    match op {
        "add" => bin(BinaryOp::Add),
        "sub" => bin(BinaryOp::Sub),
        "mul" => bin(BinaryOp::Mul),
        "real_div" => bin(BinaryOp::RealDiv),
        "pow" => bin(BinaryOp::Pow),
        "exp" => unary(UnaryOp::Exp, &x[0], nx),
        "log" => unary(
            UnaryOp::Log {
                epsilon: a["epsilon"].as_f64().unwrap() as f32,
            },
            &x[0],
            nx,
        ),
        "sqrt" => unary(UnaryOp::Sqrt, &x[0], nx),
        "rsqrt" => unary(
            UnaryOp::Rsqrt {
                epsilon: a["epsilon"].as_f64().unwrap() as f32,
            },
            &x[0],
            nx,
        ),
        "tanh" => unary(UnaryOp::Tanh, &x[0], nx),
        "sigmoid" => unary(UnaryOp::Sigmoid, &x[0], nx),
        "relu" => unary(UnaryOp::Relu, &x[0], nx),
        "softmax" => softmax(&x[0], axis.unwrap(), nx).unwrap(),
        "reduce_sum" | "reduce_mean" | "reduce_max" => {
            let r = match op {
                "reduce_sum" => ReduceOp::Sum,
                "reduce_mean" => ReduceOp::Mean,
                _ => ReduceOp::Max,
            };
            let axes = a.get("axes").map(ints);
            reduce(r, &x[0], axes.as_deref(), flag("keep_dims"), nx).unwrap()
        }
        "matmul" => matmul(&x[0], &x[1], flag("transpose_x"), flag("transpose_y"), nx).unwrap(),
        "conv" => run_conv(a, x, nx),
        "reshape" => reshape(&x[0], &ints(&a["shape"])).unwrap(),
        "transpose" => transpose(&x[0], &ints(&a["perm"])).unwrap(),
        "slice_by_index" => run_slice_by_index(a, x),
        "slice_by_size" => slice_by_size(&x[0], &ints(&a["begin"]), &ints(&a["size"])).unwrap(),
        "identity" => identity(&x[0]),
        "cast" => cast(
            &x[0],
            DType::from_name(a["dtype"].as_str().unwrap()).unwrap(),
            nx,
        )
        .unwrap(),
        "scaled_dot_product_attention" => {
            scaled_dot_product_attention(&x[0], &x[1], &x[2], nx).unwrap()
        }
        "dequantize" | "constexpr_affine_dequantize" => {
            dequantize(&x[0], Some(&x[1]), &x[2], axis, nx).unwrap()
        }
        "quantize" => {
            let dtype = DType::from_name(a["output_dtype"].as_str().unwrap()).unwrap();
            quantize(&x[0], Some(&x[1]), &x[2], axis, dtype).unwrap()
        }
        other => panic!("fixture names unknown op {other}"),
    }
}

/// Runs a fixture `conv` case.
fn run_conv(a: &Value, x: &[Tensor], nx: Numerics) -> Tensor {
    let pair = |k: &str| {
        let v = ints(&a[k]);
        [v[0] as usize, v[1] as usize]
    };
    let padding =
        Padding::from_mil(a["pad_type"].as_str().unwrap(), Some(&ints(&a["pad"]))).unwrap();
    let p = ConvParams {
        strides: pair("strides"),
        dilations: pair("dilations"),
        padding,
        groups: a["groups"].as_u64().unwrap() as usize,
    };
    conv(&x[0], &PackedWeight::new(x[1].clone()).unwrap(), &p, nx).unwrap()
}

/// Runs a fixture `slice_by_index` case.
fn run_slice_by_index(a: &Value, x: &[Tensor]) -> Tensor {
    let spec = SliceSpec {
        begin: ints(&a["begin"]),
        end: ints(&a["end"]),
        stride: a.get("stride").map(ints),
        begin_mask: bools(&a["begin_mask"]),
        end_mask: bools(&a["end_mask"]),
        squeeze_mask: bools(&a["squeeze_mask"]),
    };
    slice_by_index(&x[0], &spec).unwrap()
}

/// Tolerance per op: (fp16 ulps, absolute). Exact ops 0; transcendentals 1 ulp (f32 libm vs
/// numpy); f32-vs-f64 accumulation 1–2 ulp plus 1e-5 absolute for results that cancel.
fn tolerance(op: &str) -> (i32, f32) {
    match op {
        "pow" | "exp" | "log" | "rsqrt" | "tanh" | "sigmoid" | "softmax" => (1, 0.0),
        "reduce_sum" | "reduce_mean" => (1, 1e-5),
        "matmul" | "conv" | "scaled_dot_product_attention" => (2, 1e-5),
        _ => (0, 0.0),
    }
}

#[test]
fn every_op_matches_numpy_within_its_stated_tolerance() {
    let fixture: Value = serde_json::from_str(FIXTURE).unwrap();
    assert_eq!(fixture["version"], 1, "regenerate with make_fixture.py");
    let cases = fixture["cases"].as_array().unwrap();
    assert!(cases.len() >= 60);
    for c in cases {
        let (name, op) = (c["name"].as_str().unwrap(), c["op"].as_str().unwrap());
        let inputs: Vec<Tensor> = c["inputs"].as_array().unwrap().iter().map(tensor).collect();
        let got = run(op, &c["attrs"], &inputs, NX);
        let (ulps, atol) = tolerance(op);
        let worst = assert_close(name, &got, &tensor(&c["output"]), ulps, atol);
        println!("{name}: worst {worst} ulp");
    }
}

#[test]
fn fp16_overflow_chain_matches_numpy_float16() {
    let fixture: Value = serde_json::from_str(FIXTURE).unwrap();
    let chain = &fixture["overflow_chain"];
    let x = tensor(&chain["x"]);
    let square = binary(BinaryOp::Mul, &x, &x, NX).unwrap();
    assert_close("square", &square, &tensor(&chain["square"]), 0, 0.0);
    assert!(square.data[2].is_infinite(), "256² = 65536 overflows fp16");
    let diff = binary(BinaryOp::Sub, &square, &square, NX).unwrap();
    assert_close(
        "square_minus_square",
        &diff,
        &tensor(&chain["square_minus_square"]),
        0,
        0.0,
    );
    assert!(diff.data[2].is_nan(), "inf − inf is NaN");
    let sixteen = Tensor::scalar(DType::Fp16, 16.0);
    let grow = binary(BinaryOp::Add, &x, &sixteen, NX).unwrap();
    assert_close("plus_16", &grow, &tensor(&chain["plus_16"]), 0, 0.0);
    let e = unary(
        UnaryOp::Exp,
        &Tensor::new(DType::Fp16, [1], vec![11.5]).unwrap(),
        NX,
    );
    assert_close("exp_11_5", &e, &tensor(&chain["exp_11_5"]), 0, 0.0);
}

#[test]
fn fp32_tensors_are_not_rounded_to_fp16_under_ieee_profile() {
    let x = Tensor::new(DType::Fp32, [2], vec![1.0 + 1e-6, 70000.0]).unwrap();
    let y = binary(BinaryOp::Mul, &x, &Tensor::scalar(DType::Fp32, 1.0), NX).unwrap();
    assert_eq!(y.data, vec![1.0 + 1e-6, 70000.0]);
    let h = cast(&y, DType::Fp16, NX).unwrap();
    assert_eq!(h.data, vec![1.0, f32::INFINITY]);
}

#[test]
fn device_observed_turns_nan_inputs_into_inf_and_invalid_results_into_zero() {
    let dev = Numerics::DeviceObserved;
    let mut input = vec![f32::NAN, 1.0];
    dev.admit_input(DType::Fp16, &mut input);
    assert_eq!(input, vec![f32::INFINITY, 1.0]);
    let inf = Tensor::new(DType::Fp16, [2], vec![f32::INFINITY, 3.0]).unwrap();
    assert_eq!(
        binary(BinaryOp::Sub, &inf, &inf, dev).unwrap().data,
        vec![0.0, 0.0]
    );
    assert!(binary(BinaryOp::Sub, &inf, &inf, NX).unwrap().data[0].is_nan());
    let neg = Tensor::new(DType::Fp16, [1], vec![-1.0]).unwrap();
    assert_eq!(unary(UnaryOp::Sqrt, &neg, dev).data, vec![0.0]);
}

#[test]
fn device_observed_matmul_overflows_at_two_to_the_fifteen() {
    // 64 · 256 · 2 = 32768 = 2^15: representable in fp16, but past the device accumulator (C24).
    let x = Tensor::new(DType::Fp16, [1, 64], vec![256.0; 64]).unwrap();
    let y = Tensor::new(DType::Fp16, [64, 1], vec![2.0; 64]).unwrap();
    assert_eq!(
        matmul(&x, &y, false, false, NX).unwrap().data,
        vec![32768.0]
    );
    assert_eq!(
        matmul(&x, &y, false, false, Numerics::DeviceObserved)
            .unwrap()
            .data,
        vec![f32::INFINITY]
    );
}

#[test]
fn device_observed_rounds_fp32_results_to_fp16() {
    let x = Tensor::new(DType::Fp32, [1], vec![1.0 + 1e-6]).unwrap();
    let y = unary(UnaryOp::Relu, &x, Numerics::DeviceObserved);
    assert_eq!(y.data, vec![1.0]);
}

#[test]
fn attention_ignores_mask_operand_by_signature_and_matches_unmasked_softmax() {
    let q = Tensor::new(
        DType::Fp16,
        [1, 2, 4],
        vec![0.5, -1.0, 0.25, 2.0, 1.0, 0.0, -0.5, 0.75],
    )
    .unwrap();
    let k = Tensor::new(
        DType::Fp16,
        [1, 3, 4],
        (0..12).map(|i| (i as f32 - 6.0) / 8.0).collect(),
    )
    .unwrap();
    let v = Tensor::new(DType::Fp16, [1, 3, 2], (0..6).map(|i| i as f32).collect()).unwrap();
    let got = scaled_dot_product_attention(&q, &k, &v, NX).unwrap();
    let s = matmul(&q, &k, false, true, NX).unwrap();
    let s = binary(BinaryOp::Mul, &s, &Tensor::scalar(DType::Fp16, 0.5), NX).unwrap();
    let p = softmax(&s, -1, NX).unwrap();
    let want = matmul(&p, &v, false, false, NX).unwrap();
    assert_close("sdpa", &got, &want, 1, 0.0);
}

#[test]
fn kernels_reject_mismatched_shapes_with_errors() {
    let a = Tensor::new(DType::Fp16, [2, 3], vec![0.0; 6]).unwrap();
    let b = Tensor::new(DType::Fp16, [4], vec![0.0; 4]).unwrap();
    assert!(matches!(
        binary(BinaryOp::Add, &a, &b, NX),
        Err(KernelError::Broadcast { .. })
    ));
    assert!(matches!(
        matmul(&a, &a, false, false, NX),
        Err(KernelError::Shape { .. })
    ));
    assert!(matches!(
        reshape(&a, &[4, -1]),
        Err(KernelError::Shape { .. })
    ));
    assert!(matches!(softmax(&a, 2, NX), Err(KernelError::Axis { .. })));
    assert!(matches!(
        transpose(&a, &[0, 0]),
        Err(KernelError::Shape { .. })
    ));
    assert!(Tensor::new(DType::Fp16, [3], vec![0.0; 2]).is_err());
    assert!(Padding::from_mil("custom", Some(&[1, 1])).is_err());
    assert!(Padding::from_mil("reflect", None).is_err());
}

/// Deterministic fp16 values in [-2, 2) from a seed.
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0
        })
        .collect()
}

/// Naive triple loop in f64, rounded to fp16.
fn naive_matmul(
    x: &[f32],
    y: &[f32],
    m: usize,
    k: usize,
    n: usize,
    tx: bool,
    ty: bool,
) -> Vec<f32> {
    let mut out = vec![0.0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut acc = 0.0f64;
            for p in 0..k {
                let a = if tx { x[p * m + i] } else { x[i * k + p] };
                let b = if ty { y[j * k + p] } else { y[p * n + j] };
                acc += a as f64 * b as f64;
            }
            out[i * n + j] = f16::from_f64(acc).to_f32();
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn gemm_path_equals_naive_triple_loop(m in 1usize..80, k in 1usize..80, n in 1usize..80, tx: bool, ty: bool, seed: u64) {
        let xs = if tx { [k, m] } else { [m, k] };
        let ys = if ty { [n, k] } else { [k, n] };
        let x = Tensor::new(DType::Fp16, xs, values(m * k, seed)).unwrap();
        let y = Tensor::new(DType::Fp16, ys, values(k * n, seed ^ 0xabcdef)).unwrap();
        let got = matmul(&x, &y, tx, ty, NX).unwrap();
        let want = Tensor::new(DType::Fp16, [m, n], naive_matmul(&x.data, &y.data, m, k, n, tx, ty)).unwrap();
        assert_close("gemm", &got, &want, 2, 1e-5);
    }

    #[test]
    fn conv_1x1_equals_matmul_with_reshaped_weight(cin in 1usize..40, cout in 1usize..40, s in 1usize..40, seed: u64) {
        let x = Tensor::new(DType::Fp16, [1, cin, 1, s], values(cin * s, seed)).unwrap();
        let w = Tensor::new(DType::Fp16, [cout, cin, 1, 1], values(cout * cin, seed ^ 7)).unwrap();
        let y = conv(&x, &PackedWeight::new(w.clone()).unwrap(), &ConvParams::default(), NX).unwrap();
        let w2 = reshape(&w, &[cout as i64, cin as i64]).unwrap();
        let x2 = reshape(&x, &[cin as i64, s as i64]).unwrap();
        let m = matmul(&w2, &x2, false, false, NX).unwrap();
        prop_assert_eq!(&y.shape, &vec![1, cout, 1, s]);
        prop_assert_eq!(y.data, m.data);
    }
}

#[test]
fn device_observed_profile_matches_numpy_model_of_section_8() {
    let fixture: Value = serde_json::from_str(FIXTURE).unwrap();
    let cases = fixture["device_observed_cases"].as_array().unwrap();
    assert!(cases.len() >= 6);
    for c in cases {
        let (name, op) = (c["name"].as_str().unwrap(), c["op"].as_str().unwrap());
        let inputs: Vec<Tensor> = c["inputs"].as_array().unwrap().iter().map(tensor).collect();
        let got = run(op, &c["attrs"], &inputs, Numerics::DeviceObserved);
        // Exact: a 1-ulp allowance would hide the softmax difference between the profiles.
        assert_close(name, &got, &tensor(&c["output"]), 0, 0.0);
    }
}

#[test]
fn quantize_rounds_half_to_even_and_saturates() {
    let x = Tensor::new(DType::Fp16, [6], vec![0.5, 1.5, 2.5, -0.5, 300.0, -300.0]).unwrap();
    let one = Tensor::scalar(DType::Fp16, 1.0);
    let q = quantize(&x, None, &one, None, DType::Int8).unwrap();
    assert_eq!(q.data, vec![0.0, 2.0, 2.0, 0.0, 127.0, -128.0]);
    assert!(
        q.data[3].is_sign_positive(),
        "an integer has no negative zero"
    );
    let u = quantize(&x, None, &one, None, DType::UInt8).unwrap();
    assert_eq!(u.data, vec![0.0, 2.0, 2.0, 0.0, 255.0, 0.0]);
}

/// Direct 7-loop convolution in f64, rounded to fp16; `pad` is `[t, b, l, r]`.
/// `x`: (1, C, H, W), `w`: (O, C/g, kH, kW) → (1, O, OH, OW) as (data, OH, OW)
fn naive_conv(
    x: &Tensor,
    w: &Tensor,
    s: [usize; 2],
    d: [usize; 2],
    pad: [usize; 4],
    g: usize,
) -> (Vec<f32>, usize, usize) {
    let (h, wd) = (x.shape[2], x.shape[3]);
    let (o, cg, kh, kw) = (w.shape[0], w.shape[1], w.shape[2], w.shape[3]);
    let oh = (h + pad[0] + pad[1] - (kh - 1) * d[0] - 1) / s[0] + 1;
    let ow = (wd + pad[2] + pad[3] - (kw - 1) * d[1] - 1) / s[1] + 1;
    let mut out = vec![0.0f32; o * oh * ow];
    for oc in 0..o {
        let grp = oc / (o / g);
        for oy in 0..oh {
            for ox in 0..ow {
                let mut acc = 0.0f64;
                for ic in 0..cg {
                    for i in 0..kh {
                        for j in 0..kw {
                            let iy = (oy * s[0] + i * d[0]) as isize - pad[0] as isize;
                            let ix = (ox * s[1] + j * d[1]) as isize - pad[2] as isize;
                            if iy < 0 || ix < 0 || iy >= h as isize || ix >= wd as isize {
                                continue;
                            }
                            let xv = x.data[((grp * cg + ic) * h + iy as usize) * wd + ix as usize];
                            acc += xv as f64 * w.data[((oc * cg + ic) * kh + i) * kw + j] as f64;
                        }
                    }
                }
                out[(oc * oh + oy) * ow + ox] = f16::from_f64(acc).to_f32();
            }
        }
    }
    (out, oh, ow)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn conv_im2col_path_equals_direct_convolution(
        g in 1usize..3, cg in 1usize..4, og in 1usize..4, h in 3usize..9, wd in 3usize..9,
        kh in 1usize..4, kw in 1usize..4, s in (1usize..3, 1usize..3), d in (1usize..3, 1usize..3),
        pad in (0usize..2, 0usize..2, 0usize..2, 0usize..2), seed: u64,
    ) {
        let pad = [pad.0, pad.1, pad.2, pad.3];
        prop_assume!(h + pad[0] + pad[1] > (kh - 1) * d.0 && wd + pad[2] + pad[3] > (kw - 1) * d.1);
        let x = Tensor::new(DType::Fp16, [1, g * cg, h, wd], values(g * cg * h * wd, seed)).unwrap();
        let w = Tensor::new(DType::Fp16, [g * og, cg, kh, kw], values(g * og * cg * kh * kw, !seed)).unwrap();
        let p = ConvParams { strides: [s.0, s.1], dilations: [d.0, d.1], padding: Padding::Custom(pad), groups: g };
        let got = conv(&x, &PackedWeight::new(w.clone()).unwrap(), &p, NX).unwrap();
        let (want, oh, ow) = naive_conv(&x, &w, [s.0, s.1], [d.0, d.1], pad, g);
        let want = Tensor::new(DType::Fp16, [1, g * og, oh, ow], want).unwrap();
        assert_close("conv", &got, &want, 2, 1e-5);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn round_to_fp16_equals_software_conversion_for_any_f32(bits in proptest::collection::vec(any::<u32>(), 0..300)) {
        let specials = [0x7f80_0000u32, 0xff80_0000, 0x7fc0_0001, 0x477f_f000, 0x477f_efff, 0x3380_0000, 0x3380_0001, 0x8000_0001];
        let input: Vec<f32> = bits.iter().chain(&specials).map(|&b| f32::from_bits(b)).collect();
        let mut got = input.clone();
        round_to_fp16(&mut got);
        for (i, (&x, &g)) in input.iter().zip(&got).enumerate() {
            let want = f16::from_f32_const(x).to_f32_const();
            prop_assert!(g.to_bits() == want.to_bits() || (g.is_nan() && want.is_nan()), "[{}] {:e}: got {:e}, want {:e}", i, x, g, want);
        }
    }
}

/// An fp16 `[1, C, 1, S]` activation large enough (C·S > 2^16) to take the parallel paths.
fn large_activation(c: usize, s: usize) -> Tensor {
    Tensor::new(
        DType::Fp16,
        [1, c, 1, s],
        values(c * s, 99).iter().map(|v| v * 3.0).collect(),
    )
    .unwrap()
}

#[test]
fn parallel_elementwise_paths_equal_per_element_rounding() {
    let (c, s) = (512, 256);
    let x = large_activation(c, s);
    let bias = Tensor::new(DType::Fp16, [1, c, 1, 1], values(c, 5)).unwrap();
    let sum = binary(BinaryOp::Add, &x, &bias, NX).unwrap();
    let e = unary(UnaryOp::Exp, &x, NX);
    for i in 0..c * s {
        let want = f16::from_f32_const(x.data[i] + bias.data[i / s]).to_f32_const();
        assert_eq!(sum.data[i], want, "add[{i}]");
        assert_eq!(
            e.data[i],
            f16::from_f32_const(x.data[i].exp()).to_f32_const(),
            "exp[{i}]"
        );
    }
    let mut big: Vec<f32> = values(1 << 18, 3).iter().map(|v| v * 40000.0).collect();
    let want: Vec<f32> = big
        .iter()
        .map(|&v| f16::from_f32_const(v).to_f32_const())
        .collect();
    round_to_fp16(&mut big);
    assert_eq!(big, want);
}

#[test]
fn parallel_softmax_equals_softmax_of_small_slices() {
    let (c, s) = (512, 256);
    let x = large_activation(c, s);
    let by_channel = softmax(&x, 1, NX).unwrap();
    let by_seq = softmax(&x, -1, NX).unwrap();
    let cols = slice_by_size(&x, &[0, 0, 0, 8], &[1, -1, 1, 4]).unwrap();
    let want = softmax(&cols, 1, NX).unwrap();
    let got = slice_by_size(&by_channel, &[0, 0, 0, 8], &[1, -1, 1, 4]).unwrap();
    assert_eq!(got.data, want.data);
    let rows = slice_by_size(&x, &[0, 100, 0, 0], &[1, 2, 1, -1]).unwrap();
    let want = softmax(&rows, -1, NX).unwrap();
    let got = slice_by_size(&by_seq, &[0, 100, 0, 0], &[1, 2, 1, -1]).unwrap();
    assert_eq!(got.data, want.data);
}
