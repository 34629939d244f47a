//! AdamW against torch.optim.AdamW (fixture from tests/fixtures/make_adamw.py), the decay rule,
//! gradient clipping and sanitization.

use serde_json::Value;
use train::{
    clip_grad_norm, decays, grad_norm, sanitize, AdamW, AdamWConfig, Checkpoint, ParamSpec,
};

/// Reads a JSON array of numbers as f32.
fn f32s(v: &Value) -> Vec<f32> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number") as f32)
        .collect()
}

/// The largest |got − want| / max(|want|, 1e-3) over two tensors.
fn worst_rel(got: &[f32], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len());
    got.iter()
        .zip(want)
        .map(|(&g, &w)| (g as f64 - w as f64).abs() / (w.abs() as f64).max(1e-3))
        .fold(0.0, f64::max)
}

#[test]
fn adamw_matches_pytorch_for_five_steps() {
    let text = include_str!("fixtures/adamw.json");
    let fixture: Value = serde_json::from_str(text).expect("fixture");
    for (ci, case) in fixture["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .enumerate()
    {
        let config = AdamWConfig {
            beta1: case["beta1"].as_f64().expect("beta1"),
            beta2: case["beta2"].as_f64().expect("beta2"),
            eps: case["eps"].as_f64().expect("eps"),
            weight_decay: case["weight_decay"].as_f64().expect("wd"),
        };
        let specs: Vec<ParamSpec> = case["names"]
            .as_array()
            .expect("names")
            .iter()
            .zip(case["shapes"].as_array().expect("shapes"))
            .map(|(n, s)| {
                let shape = s
                    .as_array()
                    .expect("shape")
                    .iter()
                    .map(|d| d.as_u64().expect("dim") as usize)
                    .collect();
                ParamSpec::new(n.as_str().expect("name"), shape)
            })
            .collect();
        let want_decay: Vec<bool> = case["decay"]
            .as_array()
            .expect("decay")
            .iter()
            .map(|d| d.as_bool().expect("bool"))
            .collect();
        assert_eq!(
            specs.iter().map(|s| s.decay).collect::<Vec<_>>(),
            want_decay
        );
        let mut params: Vec<Vec<f32>> = case["init"]
            .as_array()
            .expect("init")
            .iter()
            .map(f32s)
            .collect();
        let mut opt = AdamW::new(config, specs);
        let mut worst: f64 = 0.0;
        for (si, step) in case["steps"].as_array().expect("steps").iter().enumerate() {
            let grads: Vec<Vec<f32>> = step["grads"]
                .as_array()
                .expect("grads")
                .iter()
                .map(f32s)
                .collect();
            opt.step(&mut params, &grads, step["lr"].as_f64().expect("lr"))
                .expect("step");
            for (pi, want) in step["params"]
                .as_array()
                .expect("params")
                .iter()
                .enumerate()
            {
                let err = worst_rel(&params[pi], &f32s(want));
                assert!(
                    err < 1e-6,
                    "case {ci} step {si} param {pi}: relative error {err:e}"
                );
                worst = worst.max(err);
            }
        }
        for (pi, (_, m, v)) in opt.moments().enumerate() {
            let em = worst_rel(m, &f32s(&case["exp_avg"][pi]));
            let ev = worst_rel(v, &f32s(&case["exp_avg_sq"][pi]));
            assert!(
                em < 1e-6 && ev < 1e-6,
                "case {ci} moments of param {pi}: {em:e} {ev:e}"
            );
        }
        println!("case {ci}: worst relative parameter error {worst:e}");
        assert_eq!(opt.step_count(), 5);
    }
}

#[test]
fn decay_rule_exempts_norms_biases_and_vectors() {
    assert!(decays("h.0.attn.c_attn.weight", &[768, 2304]));
    assert!(decays("tok_embeddings.weight", &[32000, 288]));
    assert!(!decays("h.0.ln_1.weight", &[768]));
    assert!(!decays("layers.0.attention_norm.weight", &[288]));
    assert!(!decays("h.0.attn.c_attn.bias", &[2304]));
    assert!(!decays("some.vector", &[16]));
    assert!(
        !decays("model.norm.weight", &[4, 4]),
        "named norm even if 2-D"
    );
    assert!(!decays("scale", &[]));
}

#[test]
fn decay_skipped_for_exempt_parameter_with_zero_gradient() {
    // With a zero gradient the Adam term is 0, so only weight decay can move a parameter.
    let config = AdamWConfig {
        weight_decay: 0.5,
        ..AdamWConfig::default()
    };
    let specs = vec![
        ParamSpec::new("w", vec![1, 2]),
        ParamSpec::new("ln.bias", vec![2]),
    ];
    let mut opt = AdamW::new(config, specs);
    let mut params = vec![vec![1.0f32, -2.0], vec![1.0f32, -2.0]];
    let grads = vec![vec![0.0f32; 2], vec![0.0f32; 2]];
    opt.step(&mut params, &grads, 0.1).expect("step");
    assert_eq!(params[0], [0.95, -1.9]);
    assert_eq!(params[1], [1.0, -2.0]);
}

#[test]
fn step_rejects_mismatched_gradients() {
    let mut opt = AdamW::new(
        AdamWConfig::default(),
        vec![ParamSpec::new("w", vec![2, 2])],
    );
    let mut params = vec![vec![0.0f32; 4]];
    let err = opt
        .step(&mut params, &[vec![0.0f32; 3]], 1e-3)
        .expect_err("size mismatch");
    assert!(err.to_string().contains("w:"), "{err}");
    assert!(opt
        .step(&mut params, &Vec::<Vec<f32>>::new(), 1e-3)
        .is_err());
    assert_eq!(opt.step_count(), 0, "a rejected step does not count");
}

#[test]
fn optimizer_resumed_from_checkpoint_continues_bit_exactly() {
    let specs = vec![
        ParamSpec::new("w", vec![2, 3]),
        ParamSpec::new("b", vec![3]),
    ];
    let grad = |k: usize| {
        vec![
            vec![0.1 * k as f32, -0.2, 0.3, 0.05, -0.4, 0.6],
            vec![0.2, -0.1 * k as f32, 0.0],
        ]
    };
    let mut a = AdamW::new(AdamWConfig::default(), specs);
    let mut pa = vec![vec![0.5f32; 6], vec![0.1f32; 3]];
    for k in 0..3 {
        a.step(&mut pa, &grad(k), 1e-2).expect("step");
    }
    let mut ckpt = Checkpoint::new(3, Value::Null);
    ckpt.set_optimizer(&a);
    let mut b = ckpt.optimizer().expect("restore").expect("present");
    let mut pb = pa.clone();
    for k in 3..6 {
        a.step(&mut pa, &grad(k), 1e-2).expect("step a");
        b.step(&mut pb, &grad(k), 1e-2).expect("step b");
    }
    assert_eq!(pa, pb);
    assert_eq!(b.step_count(), 6);
}

#[test]
fn sanitize_zeroes_and_counts_non_finite_values() {
    let mut grads = vec![
        vec![1.0f32, f32::NAN, 2.0],
        vec![f32::INFINITY, f32::NEG_INFINITY],
    ];
    assert_eq!(sanitize(&mut grads), 3);
    assert_eq!(grads, vec![vec![1.0, 0.0, 2.0], vec![0.0, 0.0]]);
    assert_eq!(sanitize(&mut grads), 0);
}

#[test]
fn clipping_scales_to_max_norm_and_reports_pre_clip_norm() {
    let mut grads = vec![vec![3.0f32], vec![0.0f32, 4.0]];
    assert_eq!(grad_norm(&grads), 5.0);
    let norm = clip_grad_norm(&mut grads, 1.0);
    assert_eq!(norm, 5.0);
    let after = grad_norm(&grads);
    assert!((after - 1.0).abs() < 1e-5, "{after}");
    assert!((grads[0][0] - 0.6).abs() < 1e-6 && (grads[1][1] - 0.8).abs() < 1e-6);

    let mut small = vec![vec![0.3f32, 0.4]];
    assert!((clip_grad_norm(&mut small, 1.0) - 0.5).abs() < 1e-7);
    assert_eq!(
        small,
        vec![vec![0.3f32, 0.4]],
        "below the limit nothing changes"
    );
}
