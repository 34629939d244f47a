//! The host forward path: each operator against naive loops, prefill against step-by-step
//! decode, fp16 against f32 weights, and logits against the transformers / run.c fixtures.

#[allow(dead_code)] // the shared fixture reader has fields this test does not need
#[path = "fixtures/reference.rs"]
mod reference;

use compiler::nn::RopeStyle;
use models::host::ops::{self, AttentionShape, Out, Rope};
use models::host::threads::Pool;
use models::host::{HostModel, Matrix, Precision};
use models::load::{load_llama2c, load_model, LoadedModel};
use models::rng::Rng;
use models::{gpt2, llama};
use reference::Reference;

/// f32 weights rounded through fp16, what the fp16 kernels see.
fn round_f16(w: &[f32]) -> Vec<f32> {
    w.iter().map(|&v| half::f16::from_f32(v).to_f32()).collect()
}

/// Largest `|a - b|` over the largest `|b|`.
fn rel_err(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    let scale = b.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-12);
    let diff = a
        .iter()
        .zip(b)
        .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
    diff / scale
}

/// `y[t][o] = bias[o] + Σ_i w[o][i] x[t][i]` in f64.
fn naive_linear(w: &[f32], bias: &[f32], x: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let t = x.len() / cols;
    let mut y = vec![0.0; t * rows];
    for tt in 0..t {
        for o in 0..rows {
            let s: f64 = (0..cols)
                .map(|i| f64::from(w[o * cols + i]) * f64::from(x[tt * cols + i]))
                .sum();
            y[tt * rows + o] = (s + f64::from(bias[o])) as f32;
        }
    }
    y
}

#[test]
fn gemv_matches_naive_loops_on_odd_sizes_for_both_precisions_and_thread_counts() {
    check_gemv();
}

#[test]
fn gemm_matches_naive_loops_for_every_token_count_up_to_nine() {
    check_gemm();
}

#[test]
fn attention_matches_naive_softmax_with_grouped_heads_and_an_offset() {
    check_attention();
}

#[test]
fn portable_loops_match_naive_loops_too() {
    ops::force_portable(true);
    check_gemv();
    check_gemm();
    check_attention();
    ops::force_portable(false);
}

fn check_gemv() {
    let mut rng = Rng::new(7);
    for (rows, cols) in [(1, 1), (37, 77), (5, 16), (130, 259), (67, 1000)] {
        let w = rng.normals(rows * cols, 0.5);
        let x = rng.normals(cols, 1.0);
        let bias = rng.normals(rows, 0.1);
        for precision in [Precision::F32, Precision::F16] {
            let seen = match precision {
                Precision::F16 => round_f16(&w),
                Precision::F32 => w.clone(),
            };
            let want = naive_linear(&seen, &bias, &x, rows, cols);
            let m = Matrix::new(&w, rows, cols, precision);
            for threads in [1, 2, 3] {
                let pool = Pool::new(threads);
                let mut y = vec![0.0; rows];
                ops::gemv(&pool, &m, &x, Some(&bias), &mut y, Out::Store);
                assert!(
                    rel_err(&y, &want) < 1e-5,
                    "{rows}x{cols} {precision:?} {threads}"
                );
                ops::gemv(&pool, &m, &x, Some(&bias), &mut y, Out::Add);
                let twice: Vec<f32> = want.iter().map(|v| 2.0 * v).collect();
                assert!(rel_err(&y, &twice) < 1e-5, "accumulate {rows}x{cols}");
                ops::gemv(&pool, &m, &x, Some(&bias), &mut y, Out::Gelu);
                let mut gelu = want.clone();
                ops::gelu_tanh(&mut gelu);
                assert!(rel_err(&y, &gelu) < 1e-5, "gelu {rows}x{cols}");
            }
        }
    }
}

fn check_gemm() {
    let mut rng = Rng::new(8);
    let (rows, cols) = (23, 45);
    let w = rng.normals(rows * cols, 0.5);
    let bias = rng.normals(rows, 0.1);
    let pool = Pool::new(2);
    for precision in [Precision::F32, Precision::F16] {
        let seen = match precision {
            Precision::F16 => round_f16(&w),
            Precision::F32 => w.clone(),
        };
        let m = Matrix::new(&w, rows, cols, precision);
        for t in 1..=9 {
            let x = rng.normals(t * cols, 1.0);
            let want = naive_linear(&seen, &bias, &x, rows, cols);
            let mut y = vec![0.0; t * rows];
            ops::gemm(&pool, &m, &x, Some(&bias), &mut y, Out::Store);
            assert!(rel_err(&y, &want) < 1e-5, "{precision:?} t={t}");
            ops::gemm(&pool, &m, &x, Some(&bias), &mut y, Out::Add);
            let twice: Vec<f32> = want.iter().map(|v| 2.0 * v).collect();
            assert!(rel_err(&y, &twice) < 1e-5, "accumulate t={t}");
            ops::gemm(&pool, &m, &x, Some(&bias), &mut y, Out::Gelu);
            let mut gelu = want.clone();
            ops::gelu_tanh(&mut gelu);
            assert!(rel_err(&y, &gelu) < 1e-5, "gelu t={t}");
        }
    }
}

/// Causal grouped-query attention in f64, one query token at a time.
fn naive_attention(s: AttentionShape, q: &[f32], k: &[f32], v: &[f32], start: usize) -> Vec<f32> {
    let (hd, dim, kvd) = (
        s.head_dim,
        s.n_heads * s.head_dim,
        s.n_kv_heads * s.head_dim,
    );
    let t = q.len() / dim;
    // Position-major caches: [positions, kv_heads · head_dim].
    let at = |kh: usize, p: usize, i: usize| p * kvd + kh * hd + i;
    let mut out = vec![0.0; t * dim];
    for j in 0..t {
        for h in 0..s.n_heads {
            let kh = h / (s.n_heads / s.n_kv_heads);
            let len = start + j + 1;
            let scores: Vec<f64> = (0..len)
                .map(|p| {
                    (0..hd)
                        .map(|i| f64::from(q[j * dim + h * hd + i]) * f64::from(k[at(kh, p, i)]))
                        .sum::<f64>()
                        / (hd as f64).sqrt()
                })
                .collect();
            let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
            let sum: f64 = e.iter().sum();
            for i in 0..hd {
                let o: f64 = (0..len)
                    .map(|p| e[p] / sum * f64::from(v[at(kh, p, i)]))
                    .sum();
                out[j * dim + h * hd + i] = o as f32;
            }
        }
    }
    out
}

fn check_attention() {
    let mut rng = Rng::new(9);
    // Head widths off and on the 16-lane SIMD width.
    for head_dim in [20, 32] {
        let shape = AttentionShape {
            n_heads: 6,
            n_kv_heads: 2,
            head_dim,
        };
        let (dim, kv_dim) = (6 * head_dim, 2 * head_dim);
        let (start, t) = (5, 4);
        let q = rng.normals(t * dim, 1.0);
        // Caches with room for three positions more than are filled.
        let k = rng.normals((start + t + 3) * kv_dim, 1.0);
        let v = rng.normals((start + t + 3) * kv_dim, 1.0);
        let want = naive_attention(shape, &q, &k, &v, start);
        for threads in [1, 2] {
            let mut out = vec![0.0; t * dim];
            ops::attention(&Pool::new(threads), shape, &q, &k, &v, start, &mut out);
            let err = rel_err(&out, &want);
            assert!(err < 1e-5, "head_dim {head_dim}, threads {threads}: {err}");
        }
    }
}

#[test]
fn rope_rotates_the_pairs_each_convention_names() {
    let (hd, pos, theta) = (8, 3, 10000.0f32);
    let x: Vec<f32> = (0..2 * hd).map(|i| i as f32 + 1.0).collect();
    for style in [RopeStyle::HalfSplit, RopeStyle::Interleaved] {
        let mut y = x.clone();
        Rope::new(hd, 4, theta, style).apply(&mut y, pos);
        for head in 0..2 {
            for i in 0..hd / 2 {
                let (a, b) = match style {
                    RopeStyle::HalfSplit => (i, i + hd / 2),
                    RopeStyle::Interleaved => (2 * i, 2 * i + 1),
                };
                let (a, b) = (head * hd + a, head * hd + b);
                let angle = pos as f64 * f64::from(theta).powf(-2.0 * i as f64 / hd as f64);
                let (c, s) = (angle.cos(), angle.sin());
                let (x0, x1) = (f64::from(x[a]), f64::from(x[b]));
                assert!(
                    (f64::from(y[a]) - (x0 * c - x1 * s)).abs() < 1e-4,
                    "{style:?}"
                );
                assert!(
                    (f64::from(y[b]) - (x0 * s + x1 * c)).abs() < 1e-4,
                    "{style:?}"
                );
            }
        }
    }
}

#[test]
fn norms_and_activations_match_their_formulas() {
    let x = [0.5f32, -1.0, 2.0, 0.25];
    let (w, b) = ([1.0f32, 2.0, 0.5, -1.0], [0.1f32, 0.0, -0.2, 0.3]);
    let mean = x.iter().sum::<f32>() / 4.0;
    let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / 4.0;
    let mut out = [0.0; 4];
    ops::layer_norm(&x, &w, &b, 1e-5, &mut out);
    for i in 0..4 {
        let want = (x[i] - mean) / (var + 1e-5).sqrt() * w[i] + b[i];
        assert!((out[i] - want).abs() < 1e-5);
    }
    let ms = x.iter().map(|v| v * v).sum::<f32>() / 4.0;
    ops::rms_norm(&x, &w, 1e-5, &mut out);
    for i in 0..4 {
        assert!((out[i] - x[i] / (ms + 1e-5).sqrt() * w[i]).abs() < 1e-5);
    }
    let mut g = x;
    ops::gelu_tanh(&mut g);
    // GELU(2) with the tanh form, from the definition.
    assert!((g[2] - 1.954_597_7).abs() < 1e-5, "{}", g[2]);
    let mut gate = x;
    ops::silu_mul(&mut gate, &[2.0; 4]);
    assert!((gate[1] - 2.0 * (-1.0 / (1.0 + 1.0f32.exp()))).abs() < 1e-6);
}

fn tiny_models() -> Vec<(&'static str, LoadedModel)> {
    let mut interleaved = llama::Weights::random(&llama::Config::tiny(), 3);
    interleaved.rope = RopeStyle::Interleaved;
    let mut tied = llama::Weights::random(&llama::Config::tiny(), 4);
    tied.output = None;
    vec![
        (
            "gpt2",
            LoadedModel::Gpt2(gpt2::Weights::random(&gpt2::Config::tiny(), 2)),
        ),
        (
            "llama",
            LoadedModel::Llama(llama::Weights::random(&llama::Config::tiny(), 3)),
        ),
        ("llama interleaved", LoadedModel::Llama(interleaved)),
        ("llama tied", LoadedModel::Llama(tied)),
    ]
}

#[test]
fn prefill_of_a_prompt_gives_the_logits_of_decoding_it_token_by_token() {
    let tokens: Vec<u32> = (0..11).map(|i| (i * 37 + 5) % 256).collect();
    for (name, w) in tiny_models() {
        for precision in [Precision::F32, Precision::F16] {
            let mut m = HostModel::new(&w, precision, 2);
            let all = m.prefill_all(&tokens, 0).expect("prefill").to_vec();
            let last = m.prefill(&tokens, 0).expect("prefill").to_vec();
            let v = m.vocab_size();
            let err = rel_err(&last, &all[(tokens.len() - 1) * v..]);
            assert!(err < 1e-5, "{name} {precision:?} last position: {err}");
            m.reset();
            for (p, &tok) in tokens.iter().enumerate() {
                let step = m.decode(tok, p).expect("decode");
                let err = rel_err(step, &all[p * v..(p + 1) * v]);
                assert!(err < 1e-5, "{name} {precision:?} position {p}: {err}");
            }
        }
    }
}

#[test]
fn prefill_continues_from_a_cached_prefix() {
    let tokens: Vec<u32> = (0..9).map(|i| (i * 11 + 1) % 256).collect();
    for (name, w) in tiny_models() {
        let mut m = HostModel::new(&w, Precision::F32, 2);
        let whole = m.prefill_all(&tokens, 0).expect("prefill").to_vec();
        m.reset();
        m.prefill(&tokens[..4], 0).expect("prefix");
        let rest = m.prefill_all(&tokens[4..], 4).expect("rest").to_vec();
        let err = rel_err(&rest, &whole[4 * m.vocab_size()..]);
        assert!(err < 1e-5, "{name}: {err}");
    }
}

#[test]
fn fp16_weights_agree_with_f32_weights_within_fp16_rounding() {
    let tokens: Vec<u32> = (0..12).map(|i| (i * 53 + 2) % 256).collect();
    for (name, w) in tiny_models() {
        let f32_logits = HostModel::new(&w, Precision::F32, 1)
            .prefill_all(&tokens, 0)
            .expect("f32")
            .to_vec();
        let f16_logits = HostModel::new(&w, Precision::F16, 2)
            .prefill_all(&tokens, 0)
            .expect("f16")
            .to_vec();
        let err = rel_err(&f16_logits, &f32_logits);
        // Each weight moves by at most 2^-11 (4.9e-4) of itself; the logits move by a few
        // times that relative to their range (observed 2e-4 to 4e-4), far above f32 noise.
        assert!(err < 3e-3, "{name}: {err}");
        assert!(err > 0.0, "{name}: fp16 rounding should change something");
    }
}

#[test]
fn out_of_range_tokens_and_positions_are_errors() {
    let (_, w) = tiny_models().swap_remove(0);
    let mut m = HostModel::new(&w, Precision::F32, 1);
    assert!(m.decode(256, 0).is_err());
    assert!(m.decode(1, m.context_len()).is_err());
    assert!(m.prefill(&[], 0).is_err());
    assert!(m.prefill(&[1, 2], m.context_len() - 1).is_err());
    assert!(m.decode(1, m.context_len() - 1).is_ok());
}

/// f32 logits within 1e-5 of the reference's range at every prompt position (observed 3e-7 to
/// 5e-7); fp16 weights within 3e-3, six fp16 half-ulps (2^-11) of the largest logit (observed
/// 2e-4 to 6e-4); the greedy continuation from step-by-step decode matches.
fn check_fixture(name: &str, model: &LoadedModel) {
    let r = Reference::load(name);
    for (precision, tol) in [(Precision::F32, 1e-5), (Precision::F16, 3e-3)] {
        let mut m = HostModel::new(model, precision, 2);
        let logits = m.prefill_all(&r.prompt, 0).expect("prefill").to_vec();
        let err = rel_err(&logits, &r.logits);
        assert!(err < tol, "{name} {precision:?}: {err}");
    }
    let mut m = HostModel::new(model, Precision::F32, 2);
    let mut next = argmax(m.prefill(&r.prompt, 0).expect("prefill"));
    let mut greedy = vec![];
    for step in 0..r.greedy.len() {
        greedy.push(next);
        next = argmax(m.decode(next, r.prompt.len() + step).expect("decode"));
    }
    assert_eq!(greedy, r.greedy, "{name} greedy continuation");
}

fn argmax(v: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best as u32
}

#[test]
fn gpt2_logits_match_transformers() {
    let r = Reference::load("gpt2-tiny");
    let model = load_model(&r.model_path).expect("load gpt2-tiny");
    check_fixture("gpt2-tiny", &model);
}

#[test]
fn hugging_face_llama_logits_match_transformers() {
    let r = Reference::load("llama-tiny");
    let model = load_model(&r.model_path).expect("load llama-tiny");
    check_fixture("llama-tiny", &model);
}

#[test]
fn llama2c_export_logits_match_the_run_c_reference() {
    let r = Reference::load("llama-tiny.bin");
    let w = load_llama2c(&r.model_path).expect("load llama-tiny.bin");
    assert_eq!(w.rope, RopeStyle::Interleaved);
    check_fixture("llama-tiny.bin", &LoadedModel::Llama(w));
}
