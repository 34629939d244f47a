//! Causal multi-head attention (grouped-query when there are fewer key/value heads) over
//! row-major token buffers, forward and backward, one rayon task per (sequence, head).

use cpu::matmul::{matmul, Arith, MatRef};
use cpu::vector::{dot_lanes, exp_shifted_sum, max, scale};
use cpu::Cpu;
use rayon::prelude::*;

/// `dst = a · b` in f32 on the calling thread (each attention task is one rayon task).
fn gemm_f32(dst: &mut [f32], a: MatRef<'_>, b: MatRef<'_>) {
    matmul(Cpu::active(), dst, a, b, false, Arith::F32, false);
}

/// Where one projection's heads sit in a row-major `[N, stride]` buffer: head `h` occupies
/// columns `offset + h·head_dim ..`.
#[derive(Clone, Copy, Debug)]
pub struct Heads<'a> {
    /// The buffer.
    pub data: &'a [f32],
    /// Values per token row.
    pub stride: usize,
    /// Column of head 0.
    pub offset: usize,
}

impl<'a> Heads<'a> {
    /// Rows `first .. first + rows` of head `head` as a `rows × hd` matrix view.
    fn view(&self, first: usize, rows: usize, head: usize, hd: usize) -> MatRef<'a> {
        let start = first * self.stride + self.offset + head * hd;
        MatRef {
            data: &self.data[start..start + (rows - 1) * self.stride + hd],
            rows,
            cols: hd,
            row_stride: self.stride,
            col_stride: 1,
        }
    }
}

/// Sizes of one attention call.
#[derive(Clone, Copy, Debug)]
pub struct AttnShape {
    /// Sequences.
    pub batch: usize,
    /// Positions per sequence.
    pub seq: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads (divides `heads`).
    pub kv_heads: usize,
    /// Values per head.
    pub head_dim: usize,
}

impl AttnShape {
    /// Entries of the saved probabilities: `[batch, heads, seq, seq]`.
    pub fn probs_len(&self) -> usize {
        self.batch * self.heads * self.seq * self.seq
    }

    fn kv_head(&self, head: usize) -> usize {
        head / (self.heads / self.kv_heads)
    }

    fn scale(&self) -> f32 {
        1.0 / (self.head_dim as f32).sqrt()
    }
}

/// `out [N, heads·head_dim] = softmax(q kᵀ/√d + causal) v`, saving the probabilities.
pub fn attention_forward(
    s: AttnShape,
    q: Heads<'_>,
    k: Heads<'_>,
    v: Heads<'_>,
    probs: &mut [f32],
    out: &mut [f32],
) {
    let (t, hd) = (s.seq, s.head_dim);
    let ys: Vec<Vec<f32>> = probs
        .par_chunks_mut(t * t)
        .enumerate()
        .map(|(task, p)| {
            let (b, h) = (task / s.heads, task % s.heads);
            let g = s.kv_head(h);
            let (qh, kh) = (q.view(b * t, t, h, hd), k.view(b * t, t, g, hd));
            gemm_f32(p, qh, kh.t());
            let cpu = Cpu::active();
            for (i, row) in p.chunks_mut(t).enumerate() {
                scale(cpu, &mut row[..=i], s.scale());
                let max = max(cpu, &row[..=i]);
                let z = exp_shifted_sum(cpu, &mut row[..=i], max);
                scale(cpu, &mut row[..=i], 1.0 / z);
                row[i + 1..].fill(0.0);
            }
            let mut y = vec![0.0f32; t * hd];
            gemm_f32(&mut y, MatRef::row_major(p, t, t), v.view(b * t, t, g, hd));
            y
        })
        .collect();
    let width = s.heads * hd;
    for (task, y) in ys.iter().enumerate() {
        let (b, h) = (task / s.heads, task % s.heads);
        for i in 0..t {
            let start = (b * t + i) * width + h * hd;
            out[start..start + hd].copy_from_slice(&y[i * hd..(i + 1) * hd]);
        }
    }
}

/// Gradients of one (sequence, head) task, `[seq, head_dim]` each.
pub struct HeadGrads {
    /// Sequence index.
    pub batch: usize,
    /// Query head.
    pub head: usize,
    /// Key/value head it reads.
    pub kv_head: usize,
    /// ∂/∂q of the head.
    pub dq: Vec<f32>,
    /// ∂/∂k contribution (summed over the query heads sharing it by the caller).
    pub dk: Vec<f32>,
    /// ∂/∂v contribution.
    pub dv: Vec<f32>,
}

/// Backward of [`attention_forward`] from `dout [N, heads·head_dim]`: per-task gradients,
/// which [`scatter`] adds into the projections' gradient buffers.
pub fn attention_backward(
    s: AttnShape,
    q: Heads<'_>,
    k: Heads<'_>,
    v: Heads<'_>,
    probs: &[f32],
    dout: &[f32],
) -> Vec<HeadGrads> {
    let (t, hd) = (s.seq, s.head_dim);
    let width = s.heads * hd;
    probs
        .par_chunks(t * t)
        .enumerate()
        .map(|(task, p)| {
            let (b, h) = (task / s.heads, task % s.heads);
            let g = s.kv_head(h);
            let (qh, kh, vh) = (
                q.view(b * t, t, h, hd),
                k.view(b * t, t, g, hd),
                v.view(b * t, t, g, hd),
            );
            let start = b * t * width + h * hd;
            let dy = MatRef {
                data: &dout[start..start + (t - 1) * width + hd],
                rows: t,
                cols: hd,
                row_stride: width,
                col_stride: 1,
            };
            let pm = MatRef::row_major(p, t, t);
            let mut grads = HeadGrads {
                batch: b,
                head: h,
                kv_head: g,
                dq: vec![0.0; t * hd],
                dk: vec![0.0; t * hd],
                dv: vec![0.0; t * hd],
            };
            gemm_f32(&mut grads.dv, pm.t(), dy);
            // dS = P ⊙ (dP − Σ_j P·dP) / √d, with dP = dy · vᵀ.
            let mut ds = vec![0.0f32; t * t];
            gemm_f32(&mut ds, dy, vh.t());
            for (i, (d, prow)) in ds.chunks_mut(t).zip(p.chunks(t)).enumerate() {
                let weighted = dot_lanes(Cpu::active(), &d[..=i], &prow[..=i]);
                for (d, &pij) in d[..=i].iter_mut().zip(&prow[..=i]) {
                    *d = pij * (*d - weighted) * s.scale();
                }
                d[i + 1..].fill(0.0);
            }
            let dsm = MatRef::row_major(&ds, t, t);
            gemm_f32(&mut grads.dq, dsm, kh);
            gemm_f32(&mut grads.dk, dsm.t(), qh);
            grads
        })
        .collect()
}

/// Which of a task's gradients to add, and where: head `h` of a projection laid out as `dst`.
#[derive(Clone, Copy, Debug)]
pub enum Part {
    /// ∂/∂q, at the query head.
    Q,
    /// ∂/∂k, at the key/value head.
    K,
    /// ∂/∂v, at the key/value head.
    V,
}

/// Adds `part` of every task's gradients into `dst`, laid out with `stride` and `offset` as
/// [`Heads`] describes.
pub fn scatter(
    s: AttnShape,
    grads: &[HeadGrads],
    part: Part,
    dst: &mut [f32],
    stride: usize,
    offset: usize,
) {
    let (t, hd) = (s.seq, s.head_dim);
    for g in grads {
        let (src, head) = match part {
            Part::Q => (&g.dq, g.head),
            Part::K => (&g.dk, g.kv_head),
            Part::V => (&g.dv, g.kv_head),
        };
        for i in 0..t {
            let start = (g.batch * t + i) * stride + offset + head * hd;
            dst[start..start + hd]
                .iter_mut()
                .zip(&src[i * hd..(i + 1) * hd])
                .for_each(|(d, v)| *d += v);
        }
    }
}
