//! GPT-2-sized attention and FFN kernels on the emulator match a plain f32 host reference
//! within a tolerance derived from fp16 precision.
//!
//! Tolerance: every op result is rounded to fp16 (unit roundoff u = 2⁻¹¹ ≈ 4.9e-4). The
//! output is the residual `x + f(x)`; `x` passes through one rounding (exact for fp16 inputs)
//! and `f(x)` through a chain of ~25 roundings (LayerNorm 9, linear 2, attention 6,
//! projection 2, add 1 …), each contributing at most u relative to its operand. So the error is
//! bounded by `u·|out| + 25·u·max|f(x)|` per element; we assert the max error stays within
//! 32·u·(max|out|) — a loose first-order bound — and the RMS error within 2·u·rms(out).

use compiler::WeightMode;
use models::gpt2::{kernels, Config, LayerWeights};
use models::rng::Rng;
use runtime::{Emulator, HostTensor, ProgramKey, Session};

const U: f32 = 1.0 / 2048.0;

fn layer_norm(x: &[f32], g: &[f32], b: &[f32], eps: f32) -> Vec<f32> {
    let c = g.len();
    x.chunks_exact(c)
        .flat_map(|row| {
            let mean = row.iter().sum::<f32>() / c as f32;
            let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / c as f32;
            let r = 1.0 / (var + eps).sqrt();
            row.iter()
                .enumerate()
                .map(move |(i, v)| (v - mean) * r * g[i] + b[i])
                .collect::<Vec<_>>()
        })
        .collect()
}

/// rows [S, in] · Wᵀ (W [out, in]) + b → [S, out]
fn linear(x: &[f32], w: &[f32], b: &[f32], cin: usize) -> Vec<f32> {
    let cout = b.len();
    x.chunks_exact(cin)
        .flat_map(|row| {
            (0..cout).map(move |o| {
                b[o] + row
                    .iter()
                    .zip(&w[o * cin..(o + 1) * cin])
                    .map(|(a, c)| a * c)
                    .sum::<f32>()
            })
        })
        .collect()
}

fn attention_ref(
    cfg: &Config,
    w: &LayerWeights,
    x: &[f32],
    s: usize,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let c = cfg.n_embd;
    let (h, d) = (cfg.n_head, c / cfg.n_head);
    let ln = layer_norm(x, &w.ln_1_weight, &w.ln_1_bias, cfg.layer_norm_epsilon);
    let qkv = linear(&ln, &w.attn_weight, &w.attn_bias, c);
    let col = |p: usize, ch: usize| qkv[p * 3 * c + ch];
    let mut att = vec![0.0; s * c];
    for head in 0..h {
        for i in 0..s {
            let scores: Vec<f32> = (0..=i)
                .map(|j| {
                    (0..d)
                        .map(|t| col(i, head * d + t) * col(j, c + head * d + t))
                        .sum::<f32>()
                        / (d as f32).sqrt()
                })
                .collect();
            let m = scores.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
            let e: Vec<f32> = scores.iter().map(|v| (v - m).exp()).collect();
            let z: f32 = e.iter().sum();
            for t in 0..d {
                att[i * c + head * d + t] = (0..=i)
                    .map(|j| e[j] / z * col(j, 2 * c + head * d + t))
                    .sum();
            }
        }
    }
    let proj = linear(&att, &w.proj_weight, &w.proj_bias, c);
    let out = x.iter().zip(&proj).map(|(a, b)| a + b).collect();
    let k = (0..s)
        .flat_map(|p| (0..c).map(move |ch| col(p, c + ch)))
        .collect();
    let v = (0..s)
        .flat_map(|p| (0..c).map(move |ch| col(p, 2 * c + ch)))
        .collect();
    (out, k, v)
}

fn ffn_ref(cfg: &Config, w: &LayerWeights, x: &[f32]) -> Vec<f32> {
    let c = cfg.n_embd;
    let ln = layer_norm(x, &w.ln_2_weight, &w.ln_2_bias, cfg.layer_norm_epsilon);
    let up = linear(&ln, &w.fc_weight, &w.fc_bias, c);
    let act: Vec<f32> = up
        .iter()
        .map(|&v| {
            0.5 * v
                * (1.0 + ((2.0 / std::f32::consts::PI).sqrt() * (v + 0.044715 * v * v * v)).tanh())
        })
        .collect();
    let down = linear(&act, &w.fc_proj_weight, &w.fc_proj_bias, 4 * c);
    x.iter().zip(&down).map(|(a, b)| a + b).collect()
}

/// Asserts the fp16-derived bound of the module doc; returns (max error, rms error).
fn assert_close(what: &str, got: &[f32], want: &[f32]) -> (f32, f32) {
    assert_eq!(got.len(), want.len());
    let max_ref = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let rms_ref = (want.iter().map(|v| v * v).sum::<f32>() / want.len() as f32).sqrt();
    let max_err = got
        .iter()
        .zip(want)
        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    let rms_err = (got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b) * (a - b))
        .sum::<f32>()
        / want.len() as f32)
        .sqrt();
    println!(
        "{what}: max err {max_err:.3e} (bound {:.3e}), rms err {rms_err:.3e} (bound {:.3e})",
        32.0 * U * max_ref,
        2.0 * U * rms_ref
    );
    assert!(
        max_err <= 32.0 * U * max_ref,
        "{what}: max error {max_err} over the bound"
    );
    assert!(
        rms_err <= 2.0 * U * rms_ref,
        "{what}: rms error {rms_err} over the bound"
    );
    (max_err, rms_err)
}

fn fp16_input(s: usize, c: usize, seed: u64) -> Vec<f32> {
    Rng::new(seed)
        .normals(s * c, 1.0)
        .into_iter()
        .map(|v| half::f16::from_f32(v).to_f32())
        .collect()
}

#[test]
fn gpt2_sized_attention_and_ffn_match_the_f32_reference() {
    let cfg = Config::gpt2_124m();
    let (s, c) = (64, cfg.n_embd);
    let w = LayerWeights::random(&cfg, 0, 1);
    let x = fp16_input(s, c, 2);
    let mut session = Session::new(Emulator::new());
    let key = |k: &str| ProgramKey {
        kernel: k.to_string(),
        layer: 0,
        weights_id: 1,
        bucket: s,
    };

    let attn =
        compiler::compile(&kernels::prefill_attn(&cfg, &w, s, WeightMode::Baked).unwrap()).unwrap();
    session.load(&key("attn"), &attn.bundle).unwrap();
    let out = session
        .run(&key("attn"), &[("x", &HostTensor::from_seq(s, c, &x))])
        .unwrap();
    let (want_out, want_k, want_v) = attention_ref(&cfg, &w, &x, s);
    assert_close("attention out", &out["out"].to_seq().unwrap(), &want_out);
    assert_close("attention k", &out["k_cache"].to_seq().unwrap(), &want_k);
    assert_close("attention v", &out["v_cache"].to_seq().unwrap(), &want_v);

    let ffn =
        compiler::compile(&kernels::prefill_ffn(&cfg, &w, s, WeightMode::Baked).unwrap()).unwrap();
    session.load(&key("ffn"), &ffn.bundle).unwrap();
    let out = session
        .run(&key("ffn"), &[("x", &HostTensor::from_seq(s, c, &x))])
        .unwrap();
    assert_close(
        "ffn out",
        &out["out"].to_seq().unwrap(),
        &ffn_ref(&cfg, &w, &x),
    );
}
