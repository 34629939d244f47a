//! Reverse-mode autodiff: every VJP rule and the composites built from them agree with central
//! finite differences of the forward graph, both graphs run on the emulator after
//! `compiler::compile` (so every backward graph is device-legal).
//!
//! Graphs are fp32 end to end so that fp16 rounding does not drown the differences. The
//! tolerance is `|fd − grad| ≤ 3e-3 + 1e-2·|fd|` with step `h = 1e-2` (fp32 evaluation noise of
//! the summed loss over `2h` is ~1e-4; the `h²` truncation term stays below 1e-3 for these
//! inputs of magnitude ≤ 2).

use compiler::autodiff::{backward, backward_with, gradient_name, BackwardOptions};
use compiler::graph::{Binary, ConvParams, Reduce, Unary};
use compiler::nn::{rope_tables, RopeStyle};
use compiler::{Graph, GraphBuilder, NodeId, WeightMode};
use mil::DType;
use runtime::{Emulator, HostTensor, ProgramKey, Session};
use std::collections::HashMap;

const F32: DType = DType::Fp32;
const H: f32 = 1e-2;
const ATOL: f64 = 3e-3;
const RTOL: f64 = 1e-2;
/// Elements per tensor checked by finite differences.
const SAMPLES: usize = 6;

/// A deterministic generator of values in a range.
struct Lcg(u64);

impl Lcg {
    fn unit(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32) / ((1u64 << 24) as f32)
    }

    fn range(&mut self, lo: f32, hi: f32, n: usize) -> Vec<f32> {
        (0..n).map(|_| lo + (hi - lo) * self.unit()).collect()
    }
}

/// Runs compiled graphs on one emulator session.
struct Runner {
    session: Session<Emulator>,
    loaded: usize,
}

impl Runner {
    fn new() -> Self {
        Runner {
            session: Session::new(Emulator::new()),
            loaded: 0,
        }
    }

    fn load(&mut self, g: &Graph) -> ProgramKey {
        let compiled = compiler::compile(g).expect("the graph compiles for the device");
        self.loaded += 1;
        let key = ProgramKey {
            kernel: format!("k{}", self.loaded),
            layer: 0,
            weights_id: 0,
            bucket: 0,
        };
        self.session.load(&key, &compiled.bundle).unwrap();
        key
    }

    fn run(
        &mut self,
        key: &ProgramKey,
        g: &Graph,
        values: &HashMap<String, HostTensor>,
    ) -> HashMap<String, HostTensor> {
        let inputs: Vec<(String, &HostTensor)> = g
            .inputs()
            .into_iter()
            .map(|(name, _)| {
                let t = values
                    .get(&name)
                    .unwrap_or_else(|| panic!("no value for {name}"));
                (name, t)
            })
            .collect();
        let refs: Vec<(&str, &HostTensor)> = inputs.iter().map(|(n, t)| (n.as_str(), *t)).collect();
        self.session.run(key, &refs).unwrap()
    }
}

/// Random values in `lo..hi` for every input of `g`.
fn random_inputs(g: &Graph, rng: &mut Lcg, lo: f32, hi: f32) -> HashMap<String, HostTensor> {
    g.inputs()
        .into_iter()
        .map(|(name, id)| {
            let shape = g.ty(id).shape.clone();
            let n = shape.iter().product();
            (name, HostTensor::new(shape, rng.range(lo, hi, n)))
        })
        .collect()
}

/// `Σ_outputs seed ⊙ output` in f64.
fn loss(outs: &HashMap<String, HostTensor>, seeds: &HashMap<String, HostTensor>) -> f64 {
    seeds
        .iter()
        .map(|(name, s)| {
            let out = &outs[name.trim_start_matches("seed_")];
            out.data
                .iter()
                .zip(&s.data)
                .map(|(&o, &w)| f64::from(o) * f64::from(w))
                .sum::<f64>()
        })
        .sum()
}

/// Checks the gradients of `forward` w.r.t. the inputs `wrt` (every output seeded) against
/// central differences at `values`; returns the gradients by name.
fn check_at(
    forward: &Graph,
    wrt: &[&str],
    mut values: HashMap<String, HostTensor>,
) -> HashMap<String, HostTensor> {
    let mut rng = Lcg(7);
    let ids: Vec<NodeId> = wrt.iter().map(|n| input_id(forward, n)).collect();
    let seed_names: Vec<(String, String)> = forward
        .outputs
        .iter()
        .map(|(o, _)| (o.clone(), format!("seed_{o}")))
        .collect();
    let seeds_ref: Vec<(&str, &str)> = seed_names
        .iter()
        .map(|(o, s)| (o.as_str(), s.as_str()))
        .collect();
    let bwd = backward(forward, &ids, &seeds_ref).unwrap();
    let mut seeds = HashMap::new();
    for (o, id) in &forward.outputs {
        let shape = forward.ty(*id).shape.clone();
        let n = shape.iter().product();
        seeds.insert(
            format!("seed_{o}"),
            HostTensor::new(shape, rng.range(-1.0, 1.0, n)),
        );
    }
    let mut runner = Runner::new();
    let fkey = runner.load(forward);
    let bkey = runner.load(&bwd);
    let mut all = values.clone();
    all.extend(seeds.clone());
    let grads = runner.run(&bkey, &bwd, &all);
    let mut worst = 0.0f64;
    for name in wrt {
        let grad = &grads[&format!("d_{name}")];
        let n = values[*name].data.len();
        assert_eq!(grad.data.len(), n, "d_{name} has the input's size");
        for k in 0..SAMPLES.min(n) {
            let i = if n <= SAMPLES { k } else { (k * 7919 + 3) % n };
            let orig = values[*name].data[i];
            let mut at = |v: f32, values: &mut HashMap<String, HostTensor>| {
                values.get_mut(*name).unwrap().data[i] = v;
                loss(&runner.run(&fkey, forward, values), &seeds)
            };
            let plus = at(orig + H, &mut values);
            let minus = at(orig - H, &mut values);
            values.get_mut(*name).unwrap().data[i] = orig;
            let fd = (plus - minus) / (2.0 * f64::from(H));
            let an = f64::from(grad.data[i]);
            let err = (fd - an).abs();
            worst = worst.max(err);
            assert!(
                err <= ATOL + RTOL * fd.abs(),
                "d_{name}[{i}]: autodiff {an}, finite difference {fd}"
            );
        }
    }
    eprintln!("worst |fd - grad| = {worst:e}");
    grads
}

/// [`check_at`] with random inputs in `lo..hi`.
fn check(forward: &Graph, wrt: &[&str], lo: f32, hi: f32) -> HashMap<String, HostTensor> {
    let values = random_inputs(forward, &mut Lcg(42), lo, hi);
    check_at(forward, wrt, values)
}

fn input_id(g: &Graph, name: &str) -> NodeId {
    g.inputs()
        .into_iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no input {name}"))
        .1
}

fn fp32() -> GraphBuilder {
    GraphBuilder::with_dtype(WeightMode::Dynamic, F32)
}

fn unary_graph(u: Unary) -> Graph {
    let mut b = fp32();
    let x = b.input("x", F32, &[2, 8]);
    let y = b.unary(u, x).unwrap();
    b.output("y", y);
    b.finish().unwrap()
}

#[test]
fn unary_rules_match_finite_differences() {
    for u in [Unary::Exp, Unary::Tanh, Unary::Sigmoid, Unary::Identity] {
        check(&unary_graph(u), &["x"], -1.5, 1.5);
    }
    for u in [Unary::Log, Unary::Sqrt, Unary::Rsqrt] {
        check(&unary_graph(u), &["x"], 0.5, 2.0);
    }
}

#[test]
fn relu_gradient_is_the_exact_step_including_zero_and_tiny_values() {
    let g = unary_graph(Unary::Relu);
    let mut values = random_inputs(&g, &mut Lcg(1), 0.1, 1.5);
    for (i, v) in values.get_mut("x").unwrap().data.iter_mut().enumerate() {
        if i % 2 == 1 {
            *v = -*v;
        }
    }
    check_at(&g, &["x"], values.clone());
    let special = vec![0.0, 1e-30, -1e-30, 1e-45, -1e-45, 3e38, -3e38, 1.0];
    let expected = [0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0];
    values.get_mut("x").unwrap().data = [special.clone(), special].concat();
    let bwd = backward(&g, &[input_id(&g, "x")], &[("y", "dy")]).unwrap();
    values.insert("dy".into(), HostTensor::new(vec![2, 8], vec![1.0; 16]));
    let mut runner = Runner::new();
    let key = runner.load(&bwd);
    let d = runner.run(&key, &bwd, &values);
    assert_eq!(d["d_x"].data[..8], expected);
}

fn binary_graph(op: Binary, xs: &[usize], ys: &[usize]) -> Graph {
    let mut b = fp32();
    let x = b.input("x", F32, xs);
    let y = b.input("y", F32, ys);
    let z = b.binary(op, x, y).unwrap();
    b.output("z", z);
    b.finish().unwrap()
}

#[test]
fn binary_rules_reduce_over_broadcast_axes() {
    let shapes: [(&[usize], &[usize]); 4] = [
        (&[2, 3, 4], &[2, 3, 4]),
        (&[2, 3, 4], &[3, 1]),
        (&[4], &[2, 3, 4]),
        (&[1, 3, 1], &[2, 1, 4]),
    ];
    for op in [Binary::Add, Binary::Sub, Binary::Mul, Binary::Div] {
        for (xs, ys) in shapes {
            check(&binary_graph(op, xs, ys), &["x", "y"], 0.5, 2.0);
        }
    }
}

#[test]
fn pow_differentiates_base_and_exponent() {
    check(
        &binary_graph(Binary::Pow, &[2, 3, 4], &[3, 1]),
        &["x", "y"],
        0.5,
        2.0,
    );
    for c in [-0.5, 2.0, 3.0] {
        let mut b = fp32();
        let x = b.input("x", F32, &[2, 8]);
        let e = b.constant(F32, &[], vec![c]).unwrap();
        let y = b.binary(Binary::Pow, x, e).unwrap();
        b.output("y", y);
        check(&b.finish().unwrap(), &["x"], 0.5, 2.0);
    }
}

#[test]
fn softmax_gradient_along_each_axis() {
    for axis in [-1, 1, 0] {
        let mut b = fp32();
        let x = b.input("x", F32, &[2, 3, 5]);
        let y = b.softmax(x, axis).unwrap();
        b.output("y", y);
        check(&b.finish().unwrap(), &["x"], -2.0, 2.0);
    }
}

#[test]
fn reductions_broadcast_the_gradient_back() {
    let cases: [(&[i64], bool); 5] = [
        (&[1], true),
        (&[-1], false),
        (&[0, 2], true),
        (&[1, 3], false),
        (&[], false),
    ];
    for kind in [Reduce::Sum, Reduce::Mean, Reduce::Max] {
        for (axes, keep) in cases {
            let mut b = fp32();
            let x = b.input("x", F32, &[2, 3, 2, 4]);
            let r = b.reduce(kind, x, axes, keep).unwrap();
            // A rank-0 result is lifted to `[1]` (MIL cannot reshape a scalar; surfaces need
            // an axis).
            let out = if b.shape(r).is_empty() {
                let one = b.constant(F32, &[1], vec![1.0]).unwrap();
                b.mul(r, one).unwrap()
            } else {
                r
            };
            b.output("r", out);
            check(&b.finish().unwrap(), &["x"], -2.0, 2.0);
        }
    }
}

#[test]
fn matmul_gradients_for_every_transpose_and_batch_broadcast() {
    for tx in [false, true] {
        for ty in [false, true] {
            let xs = if tx { [2, 1, 4, 3] } else { [2, 1, 3, 4] };
            let ys: &[usize] = if ty { &[3, 5, 4] } else { &[3, 4, 5] };
            let mut b = fp32();
            let x = b.input("x", F32, &xs);
            let y = b.input("y", F32, ys);
            let z = b.matmul(x, y, tx, ty).unwrap();
            b.output("z", z);
            check(&b.finish().unwrap(), &["x", "y"], -1.0, 1.0);
        }
    }
    let mut b = fp32();
    let x = b.input("x", F32, &[3, 4]);
    let y = b.input("y", F32, &[2, 4, 5]);
    let z = b.matmul(x, y, false, false).unwrap();
    b.output("z", z);
    check(&b.finish().unwrap(), &["x", "y"], -1.0, 1.0);
}

#[test]
fn reshape_transpose_and_multiple_users_accumulate() {
    let mut b = fp32();
    let x = b.input("x", F32, &[2, 3, 4]);
    let r = b.reshape(x, &[4, 6]).unwrap();
    let t = b.transpose(r, &[1, 0]).unwrap();
    let e = b.unary(Unary::Exp, t).unwrap();
    let back = b.reshape(e, &[2, 3, 4]).unwrap();
    let sq = b.mul(x, x).unwrap();
    let z = b.add(back, sq).unwrap();
    let t3 = b.transpose(x, &[2, 0, 1]).unwrap();
    b.output("z", z);
    b.output("t", t3);
    check(&b.finish().unwrap(), &["x"], -1.0, 1.0);
}

#[test]
fn cast_gradient_is_cast_back() {
    let mut b = fp32();
    let x = b.input("x", F32, &[2, 8]);
    let h = b.cast(x, DType::Fp16).unwrap();
    let back = b.cast(h, F32).unwrap();
    let y = b.mul(back, x).unwrap();
    b.output("y", y);
    let g = b.finish().unwrap();
    let bwd = backward(&g, &[x], &[("y", "dy")]).unwrap();
    let mut values = random_inputs(&g, &mut Lcg(3), -2.0, 2.0);
    values.insert("dy".into(), HostTensor::new(vec![2, 8], vec![1.0; 16]));
    let mut runner = Runner::new();
    let key = runner.load(&bwd);
    let d = runner.run(&key, &bwd, &values);
    for (&xv, &dv) in values["x"].data.iter().zip(&d["d_x"].data) {
        // d(x·x) through an fp16 round trip: 2x up to fp16 rounding of one factor.
        assert!(
            (dv - 2.0 * xv).abs() <= 2e-3 * xv.abs(),
            "{dv} vs {}",
            2.0 * xv
        );
    }
}

#[test]
fn slices_scatter_back_and_accumulate() {
    let mut b = fp32();
    let x = b.input("x", F32, &[2, 6, 5]);
    let a = b.slice(x, &[0, 1, 0], &[2, 4, 5]).unwrap();
    let c = b.slice(x, &[1, 2, 1], &[2, 6, 4]).unwrap();
    let ea = b.unary(Unary::Exp, a).unwrap();
    let tc = b.unary(Unary::Tanh, c).unwrap();
    b.output("a", ea);
    b.output("c", tc);
    check(&b.finish().unwrap(), &["x"], -1.0, 1.0);
}

fn conv_graph(with_bias: bool) -> Graph {
    let mut b = fp32();
    let x = b.input("x", F32, &[2, 3, 2, 4]);
    let w = b.input("w", F32, &[5, 3, 1, 1]);
    let bias = with_bias.then(|| b.input("b", F32, &[5]));
    let y = b.conv(x, w, bias, ConvParams::default()).unwrap();
    let e = b.unary(Unary::Tanh, y).unwrap();
    b.output("y", e);
    b.finish().unwrap()
}

#[test]
fn pointwise_conv_gradients_for_input_weight_and_bias() {
    check(&conv_graph(false), &["x", "w"], -1.0, 1.0);
    check(&conv_graph(true), &["x", "w", "b"], -1.0, 1.0);
}

#[test]
fn unsupported_conv_and_unreachable_gradients_are_errors() {
    let mut b = fp32();
    let x = b.input("x", F32, &[1, 2, 4, 4]);
    let w = b.input("w", F32, &[2, 2, 3, 3]);
    let unused = b.input("u", F32, &[1, 2, 4, 4]);
    let int = b.input("n", DType::Int32, &[4]);
    let y = b.conv(x, w, None, ConvParams::default()).unwrap();
    b.name(y, "blk.0/conv");
    b.output("y", y);
    let g = b.finish().unwrap();
    assert_eq!(gradient_name(&g, y), "d_blk_0_conv");
    let err = backward(&g, &[int], &[("y", "dy")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a float value"), "{err}");
    let err = backward(&g, &[x], &[("y", "dy")]).unwrap_err().to_string();
    assert!(err.contains("1×1 kernel"), "{err}");
    let err = backward(&g, &[unused], &[("y", "dy")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("d_u is identically zero"), "{err}");
    let err = backward(&g, &[x], &[("nope", "dy")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("no forward output named nope"), "{err}");
}

#[test]
fn saved_activations_become_inputs_and_give_the_same_gradient() {
    let mut b = fp32();
    let x = b.input("x", F32, &[1, 8, 1, 4]);
    let e = b.unary(Unary::Exp, x).unwrap();
    let s = b.softmax(e, 1).unwrap();
    b.output("s", s);
    b.output("e", e);
    let g = b.finish().unwrap();
    let options = BackwardOptions {
        saved: vec![(e, "saved_e".into()), (s, "saved_s".into())],
    };
    let saved = backward_with(&g, &[x], &[("s", "ds")], &options).unwrap();
    let names: Vec<String> = saved.inputs().into_iter().map(|(n, _)| n).collect();
    assert!(
        !names.contains(&"x".to_string()),
        "x is not recomputed: {names:?}"
    );
    assert!(names.contains(&"saved_s".to_string()) && names.contains(&"saved_e".to_string()));
    assert!(saved.nodes.iter().all(|n| n.op.name() != "softmax"));
    let recomputed = backward(&g, &[x], &[("s", "ds")]).unwrap();
    let mut runner = Runner::new();
    let fkey = runner.load(&g);
    let skey = runner.load(&saved);
    let rkey = runner.load(&recomputed);
    let mut values = random_inputs(&g, &mut Lcg(5), -1.0, 1.0);
    let fwd = runner.run(&fkey, &g, &values);
    values.insert("saved_e".into(), fwd["e"].clone());
    values.insert("saved_s".into(), fwd["s"].clone());
    values.insert(
        "ds".into(),
        HostTensor::new(vec![1, 8, 1, 4], Lcg(9).range(-1.0, 1.0, 32)),
    );
    let a = runner.run(&skey, &saved, &values);
    let r = runner.run(&rkey, &recomputed, &values);
    assert_eq!(a["d_x"], r["d_x"]);
}

#[test]
fn layer_norm_and_rms_norm_gradients() {
    let mut b = fp32();
    let x = b.input("x", F32, &[1, 6, 1, 4]);
    let gamma = b.input("gamma", F32, &[1, 6, 1, 1]);
    let beta = b.input("beta", F32, &[1, 6, 1, 1]);
    let ln = b.layer_norm(x, gamma, beta, 1e-5).unwrap();
    let rms = b.rms_norm(x, gamma, 1e-5).unwrap();
    b.output("ln", ln);
    b.output("rms", rms);
    check(&b.finish().unwrap(), &["x", "gamma", "beta"], -1.5, 1.5);
}

#[test]
fn gelu_and_silu_gradients() {
    let mut b = fp32();
    let x = b.input("x", F32, &[1, 4, 1, 6]);
    let g = b.gelu_tanh(x).unwrap();
    let s = b.silu(x).unwrap();
    b.output("g", g);
    b.output("s", s);
    check(&b.finish().unwrap(), &["x"], -2.0, 2.0);
}

fn rope_consts(b: &mut GraphBuilder, d: usize, s: usize, style: RopeStyle) -> (NodeId, NodeId) {
    let (cos, sin) = rope_tables(d, s, 0, 10000.0, style);
    let cos = b.constant(F32, &[1, 1, d, s], cos).unwrap();
    let sin = b.constant(F32, &[1, 1, d, s], sin).unwrap();
    (cos, sin)
}

#[test]
fn rope_gradients_in_both_styles() {
    for style in [RopeStyle::HalfSplit, RopeStyle::Interleaved] {
        let mut b = fp32();
        let x = b.input("x", F32, &[1, 2, 4, 3]);
        let (cos, sin) = rope_consts(&mut b, 4, 3, style);
        let y = b.rope(x, cos, sin, style).unwrap();
        b.output("y", y);
        check(&b.finish().unwrap(), &["x"], -1.0, 1.0);
    }
}

#[test]
fn causal_attention_gradients_with_grouped_query_heads() {
    for (heads, kv_heads) in [(2, 2), (4, 2), (2, 1)] {
        let (d, s) = (2, 4);
        let mut b = fp32();
        let q = b.input("q", F32, &[1, heads * d, 1, s]);
        let k = b.input("k", F32, &[1, kv_heads * d, 1, s]);
        let v = b.input("v", F32, &[1, kv_heads * d, 1, s]);
        let mask = b.causal_mask(s, s).unwrap();
        let o = b.attention(q, k, v, mask, heads, kv_heads).unwrap();
        b.output("o", o);
        check(&b.finish().unwrap(), &["q", "k", "v"], -1.0, 1.0);
    }
}

#[test]
fn joint_softmax_attention_differentiates_through_max_and_relu() {
    let (d, s) = (2, 3);
    let mut b = fp32();
    let q = b.input("q", F32, &[1, 2, d, s]);
    let k1 = b.input("k1", F32, &[1, 2, d, s]);
    let v1 = b.input("v1", F32, &[1, 2, d, s]);
    let k2 = b.input("k2", F32, &[1, 2, d, 1]);
    let v2 = b.input("v2", F32, &[1, 2, d, 1]);
    let m1 = b.causal_mask(s, s).unwrap();
    let m2 = b.constant(F32, &[1, 1, s, 1], vec![0.0; s]).unwrap();
    let o = b.attention_over(q, &[(k1, v1, m1), (k2, v2, m2)]).unwrap();
    b.output("o", o);
    check(
        &b.finish().unwrap(),
        &["q", "k1", "v1", "k2", "v2"],
        -1.0,
        1.0,
    );
}

fn linear_graph(mode: WeightMode, w: &[f32]) -> Graph {
    let mut b = GraphBuilder::with_dtype(mode, F32);
    let x = b.input("x", F32, &[1, 4, 1, 3]);
    let y = b.linear(x, "w", 5, w.to_vec(), None).unwrap();
    let t = b.unary(Unary::Tanh, y).unwrap();
    b.output("y", t);
    b.finish().unwrap()
}

#[test]
fn linear_gradients_agree_for_baked_conv_and_dynamic_matmul() {
    let w = Lcg(11).range(-1.0, 1.0, 20);
    let dynamic = linear_graph(WeightMode::Dynamic, &w);
    let mut values = random_inputs(&dynamic, &mut Lcg(12), -1.0, 1.0);
    values.get_mut("w").unwrap().data = w.clone();
    let dyn_grads = check_at(&dynamic, &["x", "w"], values.clone());

    let baked = linear_graph(WeightMode::Baked, &w);
    assert!(baked.nodes.iter().any(|n| n.op.name() == "conv"));
    let wid = baked
        .ids()
        .find(|&i| baked.node(i).name.as_deref() == Some("w"))
        .unwrap();
    let bwd = backward(&baked, &[input_id(&baked, "x"), wid], &[("y", "seed_y")]).unwrap();
    assert!(
        bwd.nodes.iter().any(|n| n.op.name() == "conv"),
        "d_x stays a conv"
    );
    let seed = Lcg(7).range(-1.0, 1.0, 15);
    values.insert("seed_y".into(), HostTensor::new(vec![1, 5, 1, 3], seed));
    let mut runner = Runner::new();
    let key = runner.load(&bwd);
    let baked_grads = runner.run(&key, &bwd, &values);
    for (name, shape) in [("x", vec![1, 4, 1, 3]), ("w", vec![5, 4, 1, 1])] {
        let got = &baked_grads[&format!("d_{name}")];
        assert_eq!(got.shape, shape);
        for (a, b) in got.data.iter().zip(&dyn_grads[&format!("d_{name}")].data) {
            assert!((a - b).abs() <= 1e-5, "d_{name}: baked {a}, dynamic {b}");
        }
    }
}

/// A pre-norm transformer block on `[1, C, 1, S]` with dynamic weights.
fn transformer_block() -> Graph {
    let (c, s, heads, kv_heads, hidden) = (8, 4, 2, 1, 12);
    let d = c / heads;
    let mut b = fp32();
    let x = b.input("x", F32, &[1, c, 1, s]);
    let g1 = b.input("g1", F32, &[1, c, 1, 1]);
    let g2 = b.input("g2", F32, &[1, c, 1, 1]);
    let h = b.rms_norm(x, g1, 1e-5).unwrap();
    let q = b.linear(h, "wq", c, vec![], None).unwrap();
    let k = b.linear(h, "wk", kv_heads * d, vec![], None).unwrap();
    let v = b.linear(h, "wv", kv_heads * d, vec![], None).unwrap();
    let (cos, sin) = rope_consts(&mut b, d, s, RopeStyle::HalfSplit);
    let qh = b.split_heads(q, heads).unwrap();
    let kh = b.split_heads(k, kv_heads).unwrap();
    let qr = b.rope(qh, cos, sin, RopeStyle::HalfSplit).unwrap();
    let kr = b.rope(kh, cos, sin, RopeStyle::HalfSplit).unwrap();
    let q = b.merge_heads(qr).unwrap();
    let k = b.merge_heads(kr).unwrap();
    let mask = b.causal_mask(s, s).unwrap();
    let att = b.attention(q, k, v, mask, heads, kv_heads).unwrap();
    let o = b.linear(att, "wo", c, vec![], None).unwrap();
    let x1 = b.add(x, o).unwrap();
    let h2 = b.rms_norm(x1, g2, 1e-5).unwrap();
    let gate = b.linear(h2, "w1", hidden, vec![], None).unwrap();
    let up = b.linear(h2, "w3", hidden, vec![], None).unwrap();
    let act = b.silu(gate).unwrap();
    let prod = b.mul(act, up).unwrap();
    let down = b.linear(prod, "w2", c, vec![], None).unwrap();
    let y = b.add(x1, down).unwrap();
    b.output("y", y);
    b.finish().unwrap()
}

#[test]
fn transformer_block_gradients_for_input_and_dynamic_weights() {
    let g = transformer_block();
    let names = ["x", "g1", "g2", "wq", "wk", "wv", "wo", "w1", "w2", "w3"];
    check(&g, &names, -0.8, 0.8);
}

#[test]
fn scalar_outputs_and_scalar_gradients_travel_as_one_element_tensors() {
    let mut b = fp32();
    let x = b.input("x", F32, &[2, 8]);
    let s = b.reduce(Reduce::Sum, x, &[], false).unwrap(); // rank 0
    let y = b.mul(x, s).unwrap();
    let total = b.reduce(Reduce::Sum, y, &[], false).unwrap(); // rank 0
    b.output("y", y);
    b.output("total", total);
    let g = b.finish().unwrap();
    let bwd = backward(&g, &[x, s], &[("y", "dy"), ("total", "dtotal")]).unwrap();
    let d_s = gradient_name(&g, s);
    assert_eq!(d_s, format!("d_v{}", s.0));
    let seed_ty = bwd.ty(input_id(&bwd, "dtotal"));
    assert_eq!(seed_ty.shape, [1]);

    let xs = Lcg(21).range(-1.0, 1.0, 16);
    let dy = Lcg(22).range(-1.0, 1.0, 16);
    let dtotal = 0.75f32;
    let mut values = HashMap::new();
    values.insert("x".to_string(), HostTensor::new(vec![2, 8], xs.clone()));
    values.insert("dy".to_string(), HostTensor::new(vec![2, 8], dy.clone()));
    values.insert("dtotal".to_string(), HostTensor::new(vec![1], vec![dtotal]));
    let mut runner = Runner::new();
    let key = runner.load(&bwd);
    let out = runner.run(&key, &bwd, &values);

    // L = Σ_i w_i x_i S with w_i = dy_i + dtotal and S = Σ x: dL/dS = Σ w x, dL/dx_j = w_j S + dL/dS.
    let sum: f64 = xs.iter().map(|&v| f64::from(v)).sum();
    let w: Vec<f64> = dy.iter().map(|&d| f64::from(d + dtotal)).collect();
    let expect_s: f64 = w.iter().zip(&xs).map(|(w, &x)| w * f64::from(x)).sum();
    assert_eq!(out[&d_s].shape, [1]);
    assert!((f64::from(out[&d_s].data[0]) - expect_s).abs() < 1e-5);
    for (j, &got) in out["d_x"].data.iter().enumerate() {
        let expect = w[j] * sum + expect_s;
        assert!(
            (f64::from(got) - expect).abs() < 1e-5,
            "d_x[{j}]: {got} vs {expect}"
        );
    }
}

#[test]
fn fp16_relu_step_covers_subnormals_and_overflow() {
    let mut b = GraphBuilder::new(WeightMode::Dynamic);
    let x = b.input("x", DType::Fp16, &[1, 8]);
    let y = b.unary(Unary::Relu, x).unwrap();
    b.output("y", y);
    let g = b.finish().unwrap();
    let bwd = backward(&g, &[x], &[("y", "dy")]).unwrap();
    let tiny = 2f32.powi(-24); // the smallest fp16 subnormal
    let xs = vec![0.0, tiny, -tiny, 65504.0, -65504.0, 1.0, -1.0, 1e-3];
    let mut values = HashMap::new();
    values.insert("x".to_string(), HostTensor::new(vec![1, 8], xs));
    values.insert("dy".to_string(), HostTensor::new(vec![1, 8], vec![0.5; 8]));
    let mut runner = Runner::new();
    let key = runner.load(&bwd);
    let out = runner.run(&key, &bwd, &values);
    assert_eq!(out["d_x"].data, [0.0, 0.5, 0.0, 0.5, 0.0, 0.5, 0.0, 0.5]);
}

#[test]
fn vocabulary_sized_conv_input_gradient_avoids_a_too_wide_conv() {
    let vocab = 32_000;
    let mut b = GraphBuilder::with_dtype(WeightMode::Baked, F32);
    let x = b.input("x", F32, &[1, 2, 1, 1]);
    let w: Vec<f32> = (0..vocab * 2)
        .map(|i| ((i % 7) as f32 - 3.0) / 4.0)
        .collect();
    let logits = b.linear(x, "head", vocab, w.clone(), None).unwrap();
    b.output("logits", logits);
    let g = b.finish().unwrap();
    let bwd = backward(&g, &[x], &[("logits", "dlogits")]).unwrap();
    let seed: Vec<f32> = (0..vocab).map(|i| ((i % 5) as f32 - 2.0) / 8.0).collect();
    let mut values = HashMap::new();
    values.insert(
        "x".to_string(),
        HostTensor::new(vec![1, 2, 1, 1], vec![0.5, -0.5]),
    );
    values.insert(
        "dlogits".to_string(),
        HostTensor::new(vec![1, vocab, 1, 1], seed.clone()),
    );
    let mut runner = Runner::new();
    let key = runner.load(&bwd);
    let out = runner.run(&key, &bwd, &values);
    for c in 0..2 {
        let expect: f64 = (0..vocab)
            .map(|o| f64::from(w[o * 2 + c]) * f64::from(seed[o]))
            .sum();
        let got = f64::from(out["d_x"].data[c]);
        assert!((got - expect).abs() < 1e-3, "d_x[{c}]: {got} vs {expect}");
    }
}
