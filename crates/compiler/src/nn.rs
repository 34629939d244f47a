//! Composite operations built from primitives: norms, activations, linear, RoPE, attention.
//!
//! Activations use the device layout `[1, C, 1, S]` (channels, then sequence). Nothing here
//! emits an op the device lacks: GELU is the tanh form (C10), SiLU is `x * sigmoid(x)` (C10),
//! inverse square roots are `pow(x, -0.5)` (C20), attention masks are explicit additions rather
//! than the fused attention op's ignored mask (C6), and RoPE needs no `concat` (C1).

use crate::builder::{GraphBuilder, WeightMode};
use crate::error::{shape_err, Result};
use crate::graph::{ConvParams, NodeId, Reduce, Unary};

/// The additive mask value for disallowed attention positions: large enough that `exp`
/// underflows to zero after the softmax's max subtraction, small enough to stay finite in fp16.
pub const MASK_NEG: f32 = -1.0e4;

/// The rotation convention of rotary position embeddings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RopeStyle {
    /// Pairs `(i, i + d/2)` rotate together (Hugging Face Llama).
    HalfSplit,
    /// Pairs `(2i, 2i + 1)` rotate together (llama2.c, Meta's original).
    Interleaved,
}

impl GraphBuilder {
    fn channels(&self, x: NodeId, op: &str) -> Result<(usize, usize)> {
        match self.shape(x)[..] {
            [1, c, 1, s] => Ok((c, s)),
            ref other => shape_err(
                op,
                format!("expected an activation [1, C, 1, S], found {other:?}"),
            ),
        }
    }

    /// Mean over channels, keeping dims: `[1, C, 1, S] -> [1, 1, 1, S]`.
    fn channel_mean(&mut self, x: NodeId) -> Result<NodeId> {
        self.reduce(Reduce::Mean, x, &[1], true)
    }

    /// LayerNorm over channels: `(x - mean) * (var + eps)^-0.5 * gamma + beta`,
    /// gamma and beta shaped `[1, C, 1, 1]`.
    pub fn layer_norm(
        &mut self,
        x: NodeId,
        gamma: NodeId,
        beta: NodeId,
        eps: f32,
    ) -> Result<NodeId> {
        self.channels(x, "layer_norm")?;
        let mean = self.channel_mean(x)?;
        let centered = self.sub(x, mean)?;
        let sq = self.mul(centered, centered)?;
        let var = self.channel_mean(sq)?;
        let var_eps = self.add_scalar(var, eps)?;
        let rstd = self.pow_scalar(var_eps, -0.5)?;
        let normed = self.mul(centered, rstd)?;
        let scaled = self.mul(normed, gamma)?;
        self.add(scaled, beta)
    }

    /// RMSNorm over channels: `x * (mean(x²) + eps)^-0.5 * gamma`, gamma shaped `[1, C, 1, 1]`.
    pub fn rms_norm(&mut self, x: NodeId, gamma: NodeId, eps: f32) -> Result<NodeId> {
        self.channels(x, "rms_norm")?;
        let sq = self.mul(x, x)?;
        let ms = self.channel_mean(sq)?;
        let ms_eps = self.add_scalar(ms, eps)?;
        let rrms = self.pow_scalar(ms_eps, -0.5)?;
        let normed = self.mul(x, rrms)?;
        self.mul(normed, gamma)
    }

    /// GELU, tanh form: `0.5 x (1 + tanh(sqrt(2/π) (x + 0.044715 x³)))`.
    pub fn gelu_tanh(&mut self, x: NodeId) -> Result<NodeId> {
        let x2 = self.mul(x, x)?;
        let x3 = self.mul(x2, x)?;
        let cubic = self.mul_scalar(x3, 0.044715)?;
        let inner = self.add(x, cubic)?;
        let scaled = self.mul_scalar(inner, (2.0 / std::f32::consts::PI).sqrt())?;
        let t = self.unary(Unary::Tanh, scaled)?;
        let one_plus = self.add_scalar(t, 1.0)?;
        let half_x = self.mul_scalar(x, 0.5)?;
        self.mul(half_x, one_plus)
    }

    /// SiLU: `x * sigmoid(x)`.
    pub fn silu(&mut self, x: NodeId) -> Result<NodeId> {
        let s = self.unary(Unary::Sigmoid, x)?;
        self.mul(x, s)
    }

    /// A linear layer on `[1, Cin, 1, S]` with weight `[Cout, Cin]` stored as `name`:
    /// a 1×1 conv on baked weights, a matmul on dynamic ones. `bias` is `[Cout]` values
    /// (baked) or a named input (dynamic), added separately (C16).
    pub fn linear(
        &mut self,
        x: NodeId,
        name: &str,
        cout: usize,
        weight: Vec<f32>,
        bias: Option<Vec<f32>>,
    ) -> Result<NodeId> {
        let (cin, s) = self.channels(x, "linear")?;
        let y = match self.mode() {
            WeightMode::Baked => {
                let w = self.weight(name, &[cout, cin, 1, 1], weight)?;
                self.conv(x, w, None, ConvParams::default())?
            }
            WeightMode::Dynamic => {
                let w = self.weight(name, &[1, cout, 1, cin], weight)?;
                let w2 = self.reshape(w, &[cout, cin])?;
                let x2 = self.reshape(x, &[cin, s])?;
                let y2 = self.matmul(w2, x2, false, false)?;
                self.reshape(y2, &[1, cout, 1, s])?
            }
        };
        match bias {
            None => Ok(y),
            Some(b) => {
                let b = self.weight(&format!("{name}_bias"), &[1, cout, 1, 1], b)?;
                self.add(y, b)
            }
        }
    }

    /// `[1, H*D, 1, S] -> [1, H, D, S]`.
    pub fn split_heads(&mut self, x: NodeId, heads: usize) -> Result<NodeId> {
        let (c, s) = self.channels(x, "split_heads")?;
        if heads == 0 || c % heads != 0 {
            return shape_err(
                "split_heads",
                format!("{c} channels do not split into {heads} heads"),
            );
        }
        self.reshape(x, &[1, heads, c / heads, s])
    }

    /// `[1, H, D, S] -> [1, H*D, 1, S]`.
    pub fn merge_heads(&mut self, x: NodeId) -> Result<NodeId> {
        match self.shape(x)[..] {
            [1, h, d, s] => self.reshape(x, &[1, h * d, 1, s]),
            ref other => shape_err(
                "merge_heads",
                format!("expected [1, H, D, S], found {other:?}"),
            ),
        }
    }

    /// Rotary embedding of `x` `[1, H, D, S]` with tables `cos`, `sin` `[1, 1, D, S]`
    /// (per channel of a head and position): `x * cos + rotate(x) * sin`, where `rotate` is
    /// a fixed signed permutation applied as a `[D, D]` matmul, so no `concat` is needed.
    pub fn rope(
        &mut self,
        x: NodeId,
        cos: NodeId,
        sin: NodeId,
        style: RopeStyle,
    ) -> Result<NodeId> {
        let d = match self.shape(x)[..] {
            [1, _, d, _] if d % 2 == 0 => d,
            ref other => {
                return shape_err(
                    "rope",
                    format!("expected [1, H, D, S] with even D, found {other:?}"),
                )
            }
        };
        let rot = self.constant(self.dtype(), &[d, d], rotation_matrix(d, style))?;
        let rotated = self.matmul(rot, x, false, false)?;
        let a = self.mul(x, cos)?;
        let b = self.mul(rotated, sin)?;
        self.add(a, b)
    }

    /// Causal self-attention on `q`, `k`, `v` `[1, H*D, 1, S]` with an explicit additive
    /// mask `[1, 1, S, S]` (0 where allowed, [`MASK_NEG`] elsewhere); returns `[1, H*D, 1, S]`.
    /// Heads are split inside; `k`/`v` may have fewer heads (grouped-query attention) when
    /// `kv_heads` divides `heads`, in which case they are shared by consecutive query heads.
    pub fn attention(
        &mut self,
        q: NodeId,
        k: NodeId,
        v: NodeId,
        mask: NodeId,
        heads: usize,
        kv_heads: usize,
    ) -> Result<NodeId> {
        let qh = self.split_heads(q, heads)?;
        let kh = self.split_heads(k, kv_heads)?;
        let vh = self.split_heads(v, kv_heads)?;
        self.attention_heads(qh, kh, vh, mask)
    }

    /// Attention on per-head tensors: `q` `[1, H, D, Sq]`, `k`, `v` `[1, Hkv, D, Sk]`,
    /// mask `[1, 1, Sq, Sk]`; returns `[1, H*D, 1, Sq]`.
    pub fn attention_heads(
        &mut self,
        q: NodeId,
        k: NodeId,
        v: NodeId,
        mask: NodeId,
    ) -> Result<NodeId> {
        self.attention_over(q, &[(k, v, mask)])
    }

    /// Attention of `q` `[1, H, D, Sq]` over the union of several key/value sets, each
    /// `(k, v, mask)` with `k`, `v` `[1, Hkv, D, Sk_i]` and an additive mask `[1, 1, Sq, Sk_i]`:
    /// one softmax across all of them, without concatenating (C1). Decode uses it to attend
    /// over the KV cache and the new token's own key. Returns `[1, H*D, 1, Sq]`.
    pub fn attention_over(
        &mut self,
        q: NodeId,
        parts: &[(NodeId, NodeId, NodeId)],
    ) -> Result<NodeId> {
        let (h, d, sq) = match self.shape(q)[..] {
            [1, h, d, s] => (h, d, s),
            ref other => {
                return shape_err(
                    "attention",
                    format!("q must be [1, H, D, S], found {other:?}"),
                )
            }
        };
        let Some(&(k0, _, _)) = parts.first() else {
            return shape_err("attention", "no keys to attend to");
        };
        let hkv = match self.shape(k0)[..] {
            [1, hk, dk, _] if dk == d => hk,
            ref other => {
                return shape_err(
                    "attention",
                    format!("k must be [1, Hkv, {d}, S], found {other:?}"),
                )
            }
        };
        if hkv == 0 || h % hkv != 0 {
            return shape_err(
                "attention",
                format!("{h} query heads do not group over {hkv} key heads"),
            );
        }
        let group = h / hkv;
        // Grouped heads share a key head: fold the group into the query sequence axis,
        // [1, H, D, Sq] -> [1, Hkv, D, G*Sq], so each key head meets all of its queries at once.
        let q3 = if group == 1 {
            q
        } else {
            let q5 = self.reshape(q, &[hkv, group, d, sq])?;
            let qt = self.transpose(q5, &[0, 2, 1, 3])?;
            self.reshape(qt, &[1, hkv, d, group * sq])?
        };
        let mut scores = Vec::with_capacity(parts.len());
        for &(k, _, mask) in parts {
            let sk = match self.shape(k)[..] {
                [1, hk, dk, s] if hk == hkv && dk == d => s,
                ref other => {
                    return shape_err(
                        "attention",
                        format!("k must be [1, {hkv}, {d}, S], found {other:?}"),
                    )
                }
            };
            // scores [1, Hkv, G*Sq, Sk] = q3ᵀ k / sqrt(D) + mask
            let raw = self.matmul(q3, k, true, false)?;
            let scaled = self.mul_scalar(raw, 1.0 / (d as f32).sqrt())?;
            let masked = if group == 1 {
                self.add(scaled, mask)?
            } else {
                let s5 = self.reshape(scaled, &[hkv, group, sq, sk])?;
                let m = self.add(s5, mask)?;
                self.reshape(m, &[1, hkv, group * sq, sk])?
            };
            scores.push(masked);
        }
        let out = if let [single] = scores[..] {
            let probs = self.softmax(single, -1)?;
            // out [1, Hkv, D, G*Sq] = v probsᵀ
            self.matmul(parts[0].1, probs, false, true)?
        } else {
            self.joint_softmax_values(&scores, parts, hkv, group * sq)?
        };
        let out = if group == 1 {
            out
        } else {
            let o5 = self.reshape(out, &[hkv, d, group, sq])?;
            let ot = self.transpose(o5, &[0, 2, 1, 3])?;
            self.reshape(ot, &[1, h, d, sq])?
        };
        self.reshape(out, &[1, h * d, 1, sq])
    }

    /// `Σ_i v_i softmax_joint(scores)_iᵀ` for score blocks `[1, Hkv, Q, Sk_i]` sharing one
    /// softmax: the running max uses `max(a, b) = b + relu(a - b)` (the device has no maximum).
    fn joint_softmax_values(
        &mut self,
        scores: &[NodeId],
        parts: &[(NodeId, NodeId, NodeId)],
        hkv: usize,
        q: usize,
    ) -> Result<NodeId> {
        let mut max = None;
        for &s in scores {
            let m = self.reduce(Reduce::Max, s, &[-1], true)?;
            max = Some(match max {
                None => m,
                Some(prev) => {
                    let diff = self.sub(prev, m)?;
                    let pos = self.unary(Unary::Relu, diff)?;
                    self.add(m, pos)?
                }
            });
        }
        let max = max.expect("at least one part");
        let mut total = None;
        let mut weighted = None;
        for (&s, &(_, v, _)) in scores.iter().zip(parts) {
            let shifted = self.sub(s, max)?;
            let p = self.unary(Unary::Exp, shifted)?;
            let z = self.reduce(Reduce::Sum, p, &[-1], true)?;
            let pv = self.matmul(v, p, false, true)?;
            total = Some(match total {
                None => z,
                Some(t) => self.add(t, z)?,
            });
            weighted = Some(match weighted {
                None => pv,
                Some(w) => self.add(w, pv)?,
            });
        }
        // [1, Hkv, Q, 1] -> [1, Hkv, 1, Q] to divide the [1, Hkv, D, Q] weighted values.
        let z = self.reshape(total.expect("parts"), &[1, hkv, 1, q])?;
        self.div(weighted.expect("parts"), z)
    }

    /// The causal mask `[1, 1, S, S]` for a prefill of `valid` real tokens padded to `s`:
    /// query i may attend key j when j <= i and j < valid.
    pub fn causal_mask(&mut self, s: usize, valid: usize) -> Result<NodeId> {
        let values = causal_mask_values(s, valid);
        self.constant(self.dtype(), &[1, 1, s, s], values)
    }

    /// The mask `[1, 1, B·T, B·T]` for `batch` sequences of `t` positions side by side.
    pub fn batched_causal_mask(&mut self, batch: usize, t: usize) -> Result<NodeId> {
        let n = batch * t;
        self.constant(
            self.dtype(),
            &[1, 1, n, n],
            batched_causal_mask_values(batch, t),
        )
    }
}

/// Row-major values of a `[B·T, B·T]` mask for `batch` sequences of `t` positions laid side by
/// side: causal within each sequence, nothing across sequences.
pub fn batched_causal_mask_values(batch: usize, t: usize) -> Vec<f32> {
    let n = batch * t;
    let mut m = vec![MASK_NEG; n * n];
    for i in 0..n {
        let start = i - i % t;
        m[i * n + start..=i * n + i]
            .iter_mut()
            .for_each(|v| *v = 0.0);
    }
    m
}

/// Row-major values of a `[S, S]` causal mask with `valid` real keys.
pub fn causal_mask_values(s: usize, valid: usize) -> Vec<f32> {
    let mut m = vec![MASK_NEG; s * s];
    for i in 0..s {
        for j in 0..=i.min(valid.saturating_sub(1)) {
            m[i * s + j] = 0.0;
        }
    }
    m
}

/// The `[D, D]` signed permutation `R` with `(R x)` = the rotated partner of each channel:
/// half-split: `(-x[d/2..], x[..d/2])`; interleaved: `(-x1, x0, -x3, x2, …)`.
pub fn rotation_matrix(d: usize, style: RopeStyle) -> Vec<f32> {
    let mut r = vec![0.0; d * d];
    let half = d / 2;
    for i in 0..half {
        let (a, b) = match style {
            RopeStyle::HalfSplit => (i, i + half),
            RopeStyle::Interleaved => (2 * i, 2 * i + 1),
        };
        r[a * d + b] = -1.0; // out[a] = -x[b]
        r[b * d + a] = 1.0; // out[b] = x[a]
    }
    r
}

/// RoPE tables `(cos, sin)`, each `[D, S]` row-major, for positions `start..start+s`,
/// with the channel pairing of `style` and base `theta`.
pub fn rope_tables(
    d: usize,
    s: usize,
    start: usize,
    theta: f32,
    style: RopeStyle,
) -> (Vec<f32>, Vec<f32>) {
    let mut cos = vec![0.0; d * s];
    let mut sin = vec![0.0; d * s];
    let half = d / 2;
    for i in 0..half {
        let freq = 1.0 / f64::from(theta).powf(2.0 * i as f64 / d as f64);
        let (a, b) = match style {
            RopeStyle::HalfSplit => (i, i + half),
            RopeStyle::Interleaved => (2 * i, 2 * i + 1),
        };
        for p in 0..s {
            let angle = (start + p) as f64 * freq;
            for ch in [a, b] {
                cos[ch * s + p] = angle.cos() as f32;
                sin[ch * s + p] = angle.sin() as f32;
            }
        }
    }
    (cos, sin)
}

/// Row-major values of a `[W, W]` mask letting each query slot see only its own key.
pub fn diagonal_mask_values(w: usize) -> Vec<f32> {
    (0..w * w)
        .map(|i| if i / w == i % w { 0.0 } else { MASK_NEG })
        .collect()
}
