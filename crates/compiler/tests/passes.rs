//! Each pass changes what it should and nothing else; the pipeline reaches a fixed point.

use compiler::graph::{Binary, ConvParams, Graph, Op, Unary};
use compiler::passes::{
    eliminate_dead_code, eliminate_identities, fold_casts, fold_constants, legalize_conv_bias,
    optimize, PIPELINE,
};
use compiler::{GraphBuilder, WeightMode};
use mil::DType;

fn count(g: &Graph, pred: impl Fn(&Op) -> bool) -> usize {
    g.nodes.iter().filter(|n| pred(&n.op)).count()
}

/// x [1, 8, 1, 4] -> tanh -> out, plus the given extra construction.
fn simple() -> (GraphBuilder, compiler::NodeId) {
    let mut b = GraphBuilder::new(WeightMode::Baked);
    let x = b.input("x", DType::Fp16, &[1, 8, 1, 4]);
    (b, x)
}

#[test]
fn dce_drops_unreachable_nodes_and_keeps_inputs() {
    let (mut b, x) = simple();
    let unused_input = b.input("unused", DType::Fp16, &[1, 8, 1, 4]);
    let dead = b.unary(Unary::Exp, x).unwrap();
    let _dead2 = b.unary(Unary::Log, dead).unwrap();
    let y = b.unary(Unary::Tanh, x).unwrap();
    b.output("y", y);
    let g = b.finish().unwrap();
    let out = eliminate_dead_code(&g);
    assert_eq!(out.nodes.len(), 3, "{out}");
    assert_eq!(
        count(&out, |o| matches!(o, Op::Unary(Unary::Exp | Unary::Log))),
        0
    );
    assert!(out
        .inputs()
        .iter()
        .any(|(n, id)| n == "unused" && out.node(*id).op == g.node(unused_input).op));
    out.check().unwrap();
}

#[test]
fn identity_elimination_removes_only_no_ops() {
    let (mut b, x) = simple();
    let i = b.unary(Unary::Identity, x).unwrap();
    let r = b.reshape(i, &[1, 8, 1, 4]).unwrap();
    let t = b.transpose(r, &[0, 1, 2, 3]).unwrap();
    let one = b.mul_scalar(t, 1.0).unwrap();
    let real = b.transpose(one, &[0, 3, 2, 1]).unwrap();
    let r1 = b.reshape(real, &[4, 8]).unwrap();
    let r2 = b.reshape(r1, &[32]).unwrap();
    let two = b.mul_scalar(r2, 2.0).unwrap();
    b.output("y", two);
    let g = b.finish().unwrap();
    let out = eliminate_identities(&g);
    out.check().unwrap();
    // Left: input, the real transpose, one merged reshape, the scalar 2 and its mul.
    assert_eq!(
        count(&out, |o| matches!(o, Op::Unary(Unary::Identity))),
        0,
        "{out}"
    );
    assert_eq!(
        count(&out, |o| matches!(o, Op::Transpose { .. })),
        1,
        "{out}"
    );
    assert_eq!(count(&out, |o| matches!(o, Op::Reshape { .. })), 1, "{out}");
    assert_eq!(
        count(&out, |o| matches!(o, Op::Binary(Binary::Mul))),
        1,
        "{out}"
    );
    assert_eq!(out.nodes.len(), 5, "{out}");
}

#[test]
fn identity_elimination_leaves_a_graph_without_no_ops_unchanged() {
    let (mut b, x) = simple();
    let y = b.unary(Unary::Sigmoid, x).unwrap();
    let z = b.mul_scalar(y, 3.0).unwrap();
    b.output("z", z);
    let g = b.finish().unwrap();
    assert_eq!(eliminate_identities(&g), g);
}

#[test]
fn cast_folding_removes_round_trips_but_not_boundary_casts() {
    let mut b = GraphBuilder::new(WeightMode::Baked);
    let x32 = b.input("x", DType::Fp32, &[1, 8, 1, 4]);
    let x16 = b.cast(x32, DType::Fp16).unwrap(); // reads an input: kept
    let same = b.cast(x16, DType::Fp16).unwrap(); // no-op: removed
    let wide = b.cast(same, DType::Fp32).unwrap();
    let back = b.cast(wide, DType::Fp16).unwrap(); // round trip: removed with `wide`
    let t = b.unary(Unary::Tanh, back).unwrap();
    let out = b.cast(t, DType::Fp32).unwrap(); // an output: kept
    b.output("y", out);
    let g = b.finish().unwrap();
    let folded = fold_casts(&g);
    folded.check().unwrap();
    assert_eq!(
        count(&folded, |o| matches!(o, Op::Cast { .. })),
        2,
        "{folded}"
    );
    let tanh = folded
        .nodes
        .iter()
        .position(|n| n.op == Op::Unary(Unary::Tanh))
        .unwrap();
    let operand = folded.nodes[tanh].inputs[0];
    assert_eq!(folded.node(operand).op, Op::Cast { dtype: DType::Fp16 });
    assert!(matches!(
        folded.node(folded.node(operand).inputs[0]).op,
        Op::Input { .. }
    ));
}

#[test]
fn cast_folding_keeps_narrowing_round_trips() {
    // fp32 -> fp16 -> fp32 loses precision: not an identity.
    let mut b = GraphBuilder::new(WeightMode::Baked);
    let x = b.input("x", DType::Fp32, &[1, 8, 1, 4]);
    let e = b.unary(Unary::Exp, x).unwrap();
    let narrow = b.cast(e, DType::Fp16).unwrap();
    let wide = b.cast(narrow, DType::Fp32).unwrap();
    let y = b.unary(Unary::Tanh, wide).unwrap();
    b.output("y", y);
    let g = b.finish().unwrap();
    assert_eq!(fold_casts(&g), g);
}

#[test]
fn constant_folding_evaluates_at_the_result_precision() {
    let (mut b, x) = simple();
    let a = b
        .constant(DType::Fp16, &[1, 8, 1, 1], vec![1.0; 8])
        .unwrap();
    let c = b
        .constant(DType::Fp16, &[1, 8, 1, 1], vec![3.0; 8])
        .unwrap();
    let q = b.div(a, c).unwrap(); // 1/3 in fp16
    let y = b.mul(x, q).unwrap();
    b.output("y", y);
    let g = b.finish().unwrap();
    let folded = fold_constants(&g);
    folded.check().unwrap();
    assert_eq!(
        count(&folded, |o| matches!(o, Op::Binary(Binary::Div))),
        0,
        "{folded}"
    );
    let q = folded.nodes.iter().find_map(|n| match &n.op {
        Op::Const { data, .. } => Some(data.values.clone()),
        _ => None,
    });
    // 1/3 rounded to the nearest fp16 is 0x3555 = 0.333251953125.
    assert_eq!(q.unwrap(), vec![0.333_251_95_f32; 8]);
    assert_eq!(count(&folded, |o| matches!(o, Op::Binary(Binary::Mul))), 1);
}

#[test]
fn constant_folding_folds_matmul_transpose_and_slice() {
    let (mut b, x) = simple();
    // [[1, 2], [3, 4]]ᵀ · [[5], [6]] = [[1*5 + 3*6], [2*5 + 4*6]] = [[23], [34]]
    let m = b
        .constant(DType::Fp32, &[2, 2], vec![1.0, 2.0, 3.0, 4.0])
        .unwrap();
    let v = b.constant(DType::Fp32, &[2, 1], vec![5.0, 6.0]).unwrap();
    let p = b.matmul(m, v, true, false).unwrap();
    let t = b.transpose(p, &[1, 0]).unwrap();
    let s = b.slice(t, &[0, 1], &[1, 2]).unwrap();
    let r = b.reshape(s, &[1, 1, 1, 1]).unwrap();
    let h = b.cast(r, DType::Fp16).unwrap();
    let y = b.mul(x, h).unwrap();
    b.output("y", y);
    let g = b.finish().unwrap();
    let folded = fold_constants(&g);
    let values: Vec<Vec<f32>> = folded
        .nodes
        .iter()
        .filter_map(|n| match &n.op {
            Op::Const { data, .. } => Some(data.values.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(values, vec![vec![34.0]], "{folded}");
}

#[test]
fn constant_folding_leaves_inputs_alone() {
    let (mut b, x) = simple();
    let e = b.unary(Unary::Exp, x).unwrap();
    b.output("y", e);
    let g = b.finish().unwrap();
    assert_eq!(fold_constants(&g), g);
}

#[test]
fn conv_bias_is_legalized_to_conv_then_add_and_the_bias_survives() {
    let (mut b, x) = simple();
    let w = b.weight("w", &[16, 8, 1, 1], vec![0.5; 128]).unwrap();
    let bias = b
        .constant(DType::Fp16, &[16], (0..16).map(|i| i as f32).collect())
        .unwrap();
    let y = b.conv(x, w, Some(bias), ConvParams::default()).unwrap();
    b.output("y", y);
    let g = b.finish().unwrap();
    let legal = legalize_conv_bias(&g);
    legal.check().unwrap();
    let conv = legal
        .nodes
        .iter()
        .find(|n| matches!(n.op, Op::Conv(_)))
        .unwrap();
    assert_eq!(conv.inputs.len(), 2, "{legal}");
    let out = legal.node(legal.outputs[0].1);
    assert_eq!(out.op, Op::Binary(Binary::Add), "{legal}");
    let reshaped = legal.node(out.inputs[1]);
    assert_eq!(reshaped.ty.shape, vec![1, 16, 1, 1]);
    assert_eq!(
        legal.node(reshaped.inputs[0]).op,
        g.node(bias).op,
        "the bias values are kept"
    );
}

#[test]
fn pipeline_reaches_a_fixed_point_on_a_transformer_block() {
    for mode in [WeightMode::Baked, WeightMode::Dynamic] {
        let g = block(mode);
        let once = optimize(&g).unwrap();
        let twice = optimize(&once).unwrap();
        assert_eq!(once, twice, "{mode:?}: a second run changed the graph");
        for (name, pass) in PIPELINE {
            assert_eq!(
                pass(&once),
                once,
                "{mode:?}: pass {name} still changes the optimized graph"
            );
        }
    }
}

/// A small pre-norm transformer block with every composite op.
fn block(mode: WeightMode) -> Graph {
    let (c, s, heads) = (32, 16, 4);
    let mut b = GraphBuilder::new(mode);
    let x = b.input("x", DType::Fp16, &[1, c, 1, s]);
    let g1 = b
        .constant(DType::Fp16, &[1, c, 1, 1], vec![1.0; c])
        .unwrap();
    let b1 = b
        .constant(DType::Fp16, &[1, c, 1, 1], vec![0.0; c])
        .unwrap();
    let h = b.layer_norm(x, g1, b1, 1e-5).unwrap();
    let w = |n: usize| {
        (0..n)
            .map(|i| ((i % 7) as f32 - 3.0) * 0.01)
            .collect::<Vec<f32>>()
    };
    let q = b.linear(h, "wq", c, w(c * c), Some(vec![0.1; c])).unwrap();
    let k = b.linear(h, "wk", c, w(c * c), None).unwrap();
    let v = b.linear(h, "wv", c, w(c * c), None).unwrap();
    let mask = b.causal_mask(s, s).unwrap();
    let a = b.attention(q, k, v, mask, heads, heads).unwrap();
    let x2 = b.add(x, a).unwrap();
    let g2 = b
        .constant(DType::Fp16, &[1, c, 1, 1], vec![1.0; c])
        .unwrap();
    let h2 = b.rms_norm(x2, g2, 1e-5).unwrap();
    let up = b.linear(h2, "up", 2 * c, w(2 * c * c), None).unwrap();
    let act = b.gelu_tanh(up).unwrap();
    let act = b.silu(act).unwrap();
    let down = b.linear(act, "down", c, w(2 * c * c), None).unwrap();
    let y = b.add(x2, down).unwrap();
    b.output("y", y);
    b.output("k_cache", k);
    b.finish().unwrap()
}

#[test]
fn cse_merges_repeated_computations_but_not_weights() {
    let (mut b, x) = simple();
    let r1 = b.reshape(x, &[8, 4]).unwrap();
    let r2 = b.reshape(x, &[8, 4]).unwrap();
    let w1 = b.weight("w1", &[8, 8], vec![0.5; 64]).unwrap();
    let w2 = b.weight("w2", &[8, 8], vec![0.5; 64]).unwrap();
    let a = b.matmul(w1, r1, false, false).unwrap();
    let c = b.matmul(w2, r2, false, false).unwrap();
    let s = b.add(a, c).unwrap();
    b.output("y", s);
    let g = b.finish().unwrap();
    let out = compiler::passes::eliminate_common_subexpressions(&g);
    out.check().unwrap();
    assert_eq!(count(&out, |o| matches!(o, Op::Reshape { .. })), 1, "{out}");
    assert_eq!(count(&out, |o| matches!(o, Op::Matmul { .. })), 2, "{out}");
    assert_eq!(
        count(&out, |o| matches!(
            o,
            Op::Const {
                weight: Some(_),
                ..
            }
        )),
        2,
        "{out}"
    );
}
