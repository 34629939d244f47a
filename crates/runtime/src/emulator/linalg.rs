//! Matrix kernels: matmul, conv (1×1 as a plain GEMM), scaled dot-product attention.

use rayon::prelude::*;

use super::elementwise::{broadcast_shapes, broadcast_strides};
use super::error::KernelError;
use super::gemm::{gemm_f32, overflow_partial_sums, MatRef};
use super::numerics::Numerics;
use super::reduce::softmax;
use super::tensor::Tensor;

/// A weight held as a row-major f32 matrix `[rows, cols]`, converted once at compile time
/// and reused by every evaluation.
#[derive(Clone, Debug, PartialEq)]
pub struct PackedWeight {
    tensor: Tensor,
    rows: usize,
    cols: usize,
}

impl PackedWeight {
    /// Packs a weight of rank ≥ 2 as `[shape[0], product(shape[1..])]`, e.g. a conv weight
    /// `[Cout, Cin/groups, kH, kW]` as `[Cout, Cin/groups·kH·kW]`.
    pub fn new(weight: Tensor) -> Result<PackedWeight, KernelError> {
        if weight.rank() < 2 {
            return Err(KernelError::shape(
                "weight",
                format!("needs rank ≥ 2, got shape {:?}", weight.shape),
            ));
        }
        let rows = weight.shape[0];
        let cols = weight.shape[1..].iter().product();
        Ok(PackedWeight {
            tensor: weight,
            rows,
            cols,
        })
    }

    /// The weight's original shape.
    pub fn shape(&self) -> &[usize] {
        &self.tensor.shape
    }

    /// The weight as a tensor.
    pub fn tensor(&self) -> &Tensor {
        &self.tensor
    }

    /// The weight as a row-major `[rows, cols]` matrix view.
    fn mat(&self) -> MatRef<'_> {
        MatRef::row_major(&self.tensor.data, self.rows, self.cols)
    }
}

/// Batched matrix product with numpy batch broadcasting; rank-1 operands act as a row
/// (`x`) or column (`y`) vector that is dropped from the result.
/// `x`: (…, M, K) or (…, K, M) if `transpose_x`; `y`: (…, K, N) or (…, N, K) → (…, M, N)
pub fn matmul(
    x: &Tensor,
    y: &Tensor,
    transpose_x: bool,
    transpose_y: bool,
    nx: Numerics,
) -> Result<Tensor, KernelError> {
    let mut out = matmul_f32(x, y, transpose_x, transpose_y, nx)?;
    nx.finish(out.dtype, &mut out.data);
    Ok(out)
}

/// Shape of one matmul operand: (batch dims, stored rows, stored cols).
fn split_matrix(shape: &[usize], vector_is_row: bool) -> (&[usize], usize, usize) {
    match shape.len() {
        0 => (&[], 0, 0),
        1 if vector_is_row => (&[], 1, shape[0]),
        1 => (&[], shape[0], 1),
        r => (&shape[..r - 2], shape[r - 2], shape[r - 1]),
    }
}

/// The matmul product before the profile's rounding.
fn matmul_f32(
    x: &Tensor,
    y: &Tensor,
    tx: bool,
    ty: bool,
    nx: Numerics,
) -> Result<Tensor, KernelError> {
    let (xb, xr, xc) = split_matrix(&x.shape, true);
    let (yb, yr, yc) = split_matrix(&y.shape, false);
    let (m, k) = if tx && x.rank() > 1 {
        (xc, xr)
    } else {
        (xr, xc)
    };
    let (k2, n) = if ty && y.rank() > 1 {
        (yc, yr)
    } else {
        (yr, yc)
    };
    let mismatch = || KernelError::shape("matmul", format!("{:?} · {:?}", x.shape, y.shape));
    if k != k2 || x.rank() == 0 || y.rank() == 0 {
        return Err(mismatch());
    }
    let batch = broadcast_shapes(xb, yb).ok_or_else(mismatch)?;
    let xs = broadcast_strides(xb, &batch);
    let ys = broadcast_strides(yb, &batch);
    let batches: usize = batch.iter().product();
    let mut data = vec![0.0f32; batches * m * n];
    let product = |b: usize, dst: &mut [f32], threaded: bool| {
        let (mut ox, mut oy, mut rem) = (0, 0, b);
        for d in (0..batch.len()).rev() {
            let i = rem % batch[d];
            rem /= batch[d];
            ox += i * xs[d];
            oy += i * ys[d];
        }
        let a = MatRef::row_major(&x.data[ox * xr * xc..(ox + 1) * xr * xc], xr, xc);
        let bm = MatRef::row_major(&y.data[oy * yr * yc..(oy + 1) * yr * yc], yr, yc);
        let a = if tx && x.rank() > 1 { a.t() } else { a };
        let bm = if ty && y.rank() > 1 { bm.t() } else { bm };
        gemm_f32(dst, a, bm, threaded);
        if let Some(limit) = nx.accumulator_limit() {
            overflow_partial_sums(dst, a, bm, limit);
        }
    };
    if batches > 1 && m * n * k < (1 << 18) {
        data.par_chunks_mut((m * n).max(1))
            .enumerate()
            .for_each(|(b, dst)| product(b, dst, false));
    } else {
        for (b, dst) in data.chunks_mut((m * n).max(1)).enumerate() {
            product(b, dst, true);
        }
    }
    let mut shape = batch;
    if x.rank() > 1 {
        shape.push(m);
    }
    if y.rank() > 1 {
        shape.push(n);
    }
    Ok(Tensor {
        dtype: x.dtype,
        shape,
        data,
    })
}

/// How a conv pads its spatial dimensions (MIL `pad_type` and `pad`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Padding {
    /// No padding.
    Valid,
    /// Output size `ceil(in / stride)`; the odd extra pad goes after.
    Same,
    /// Output size `ceil(in / stride)`; the odd extra pad goes before.
    SameLower,
    /// Explicit `[top, bottom, left, right]`.
    Custom([usize; 4]),
}

impl Padding {
    /// The padding named by MIL `pad_type` (`valid`, `same`, `same_lower`, `custom`), with
    /// `pad` (`[top, bottom, left, right]`) required for `custom`.
    pub fn from_mil(pad_type: &str, pad: Option<&[i64]>) -> Result<Padding, KernelError> {
        match (pad_type, pad) {
            ("valid", _) => Ok(Padding::Valid),
            ("same", _) => Ok(Padding::Same),
            ("same_lower", _) => Ok(Padding::SameLower),
            ("custom", Some(&[t, b, l, r])) if t >= 0 && b >= 0 && l >= 0 && r >= 0 => {
                Ok(Padding::Custom([
                    t as usize, b as usize, l as usize, r as usize,
                ]))
            }
            _ => Err(KernelError::shape(
                "conv",
                format!("pad_type {pad_type:?} with pad {pad:?}"),
            )),
        }
    }
}

/// A 2-D conv's attributes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvParams {
    /// `[stride_h, stride_w]`
    pub strides: [usize; 2],
    /// `[dilation_h, dilation_w]`
    pub dilations: [usize; 2],
    /// Spatial padding.
    pub padding: Padding,
    /// Channel groups.
    pub groups: usize,
}

impl Default for ConvParams {
    fn default() -> Self {
        ConvParams {
            strides: [1, 1],
            dilations: [1, 1],
            padding: Padding::Valid,
            groups: 1,
        }
    }
}

/// Padding before and after one spatial dimension, and the output size.
fn conv_extent(
    len: usize,
    k: usize,
    stride: usize,
    dil: usize,
    pad: Padding,
    axis: usize,
) -> Option<(usize, usize)> {
    let span = (k - 1) * dil + 1;
    let (before, after) = match pad {
        Padding::Valid => (0, 0),
        Padding::Custom(p) => (p[2 * axis], p[2 * axis + 1]),
        Padding::Same | Padding::SameLower => {
            let out = len.div_ceil(stride);
            let total = ((out.max(1) - 1) * stride + span).saturating_sub(len);
            let small = total / 2;
            if pad == Padding::Same {
                (small, total - small)
            } else {
                (total - small, small)
            }
        }
    };
    let padded = len + before + after;
    (padded >= span).then(|| (before, (padded - span) / stride + 1))
}

/// 2-D convolution (no bias, C16).
/// `x`: (N, Cin, H, W), `weight`: (Cout, Cin/groups, kH, kW) → (N, Cout, OH, OW)
pub fn conv(
    x: &Tensor,
    weight: &PackedWeight,
    p: &ConvParams,
    nx: Numerics,
) -> Result<Tensor, KernelError> {
    let bad = |msg: String| KernelError::shape("conv", msg);
    let ws = weight.shape();
    if x.rank() != 4 || ws.len() != 4 {
        return Err(bad(format!(
            "needs rank-4 x and weight, got {:?} and {ws:?}",
            x.shape
        )));
    }
    let (nb, cin, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3]);
    let (cout, cin_g, kh, kw) = (ws[0], ws[1], ws[2], ws[3]);
    let g = p.groups;
    if g == 0
        || cin != cin_g * g
        || cout % g != 0
        || p.strides.contains(&0)
        || p.dilations.contains(&0)
    {
        return Err(bad(format!("x {:?}, weight {ws:?}, groups {g}", x.shape)));
    }
    let (pt, oh) = conv_extent(h, kh, p.strides[0], p.dilations[0], p.padding, 0)
        .ok_or_else(|| bad(format!("kernel {kh} longer than padded height {h}")))?;
    let (pl, ow) = conv_extent(w, kw, p.strides[1], p.dilations[1], p.padding, 1)
        .ok_or_else(|| bad(format!("kernel {kw} longer than padded width {w}")))?;
    let geo = Im2Col {
        h,
        w,
        kh,
        kw,
        oh,
        ow,
        pt,
        pl,
        s: p.strides,
        d: p.dilations,
    };
    let mut data = vec![0.0f32; nb * cout * oh * ow];
    for (n, out) in data.chunks_mut((cout * oh * ow).max(1)).enumerate() {
        let image = &x.data[n * cin * h * w..(n + 1) * cin * h * w];
        conv_image(image, weight, &geo, g, out, nx);
    }
    nx.finish(x.dtype, &mut data);
    Ok(Tensor {
        dtype: x.dtype,
        shape: vec![nb, cout, oh, ow],
        data,
    })
}

/// Convolves one image `(Cin, H, W)` into `out` `(Cout, OH, OW)`, one GEMM per group; a
/// 1×1, stride-1, unpadded conv multiplies the image itself, with no im2col copy.
fn conv_image(
    image: &[f32],
    weight: &PackedWeight,
    geo: &Im2Col,
    groups: usize,
    out: &mut [f32],
    nx: Numerics,
) {
    let ws = weight.shape();
    let (cout_g, cin_g) = (ws[0] / groups, ws[1]);
    let kdim = weight.cols;
    let plane = geo.h * geo.w;
    let direct = geo.kh == 1
        && geo.kw == 1
        && geo.s == [1, 1]
        && geo.pt == 0
        && geo.pl == 0
        && geo.oh == geo.h
        && geo.ow == geo.w;
    let mut col = if direct {
        Vec::new()
    } else {
        vec![0.0f32; kdim * geo.oh * geo.ow]
    };
    let wm = weight.mat();
    let out_len = cout_g * geo.oh * geo.ow;
    for gi in 0..groups {
        let xin = &image[gi * cin_g * plane..(gi + 1) * cin_g * plane];
        let rhs = if direct {
            MatRef::row_major(xin, cin_g, plane)
        } else {
            geo.fill(xin, cin_g, &mut col);
            MatRef::row_major(&col, kdim, geo.oh * geo.ow)
        };
        let lhs = MatRef {
            data: &wm.data[gi * cout_g * kdim..(gi + 1) * cout_g * kdim],
            rows: cout_g,
            ..wm
        };
        let dst = &mut out[gi * out_len..(gi + 1) * out_len];
        gemm_f32(dst, lhs, rhs, true);
        if let Some(limit) = nx.accumulator_limit() {
            overflow_partial_sums(dst, lhs, rhs, limit);
        }
    }
}

/// Geometry of an im2col expansion of one image's channel group.
struct Im2Col {
    h: usize,
    w: usize,
    kh: usize,
    kw: usize,
    oh: usize,
    ow: usize,
    pt: usize,
    pl: usize,
    s: [usize; 2],
    d: [usize; 2],
}

impl Im2Col {
    /// Writes `col` (C·kH·kW, OH·OW) from `xin` (C, H, W), zero where the window is padding.
    fn fill(&self, xin: &[f32], channels: usize, col: &mut [f32]) {
        let mut rows = col.chunks_mut(self.oh * self.ow);
        for c in 0..channels {
            let plane = &xin[c * self.h * self.w..(c + 1) * self.h * self.w];
            for i in 0..self.kh {
                for j in 0..self.kw {
                    let Some(row) = rows.next() else { return };
                    for oy in 0..self.oh {
                        let iy = (oy * self.s[0] + i * self.d[0]) as isize - self.pt as isize;
                        for ox in 0..self.ow {
                            let ix = (ox * self.s[1] + j * self.d[1]) as isize - self.pl as isize;
                            let inside = (0..self.h as isize).contains(&iy)
                                && (0..self.w as isize).contains(&ix);
                            row[oy * self.ow + ox] = if inside {
                                plane[iy as usize * self.w + ix as usize]
                            } else {
                                0.0
                            };
                        }
                    }
                }
            }
        }
    }
}

/// `softmax(Q·Kᵀ / √E) · V`; the mask is ignored, as the device ignores it (C6).
///
/// Each step is rounded as the composed ops would be: the scaled scores once, the softmax
/// once, the final product once.
/// `query`: (…, L, E), `key`: (…, S, E), `value`: (…, S, Ev) → (…, L, Ev)
pub fn scaled_dot_product_attention(
    query: &Tensor,
    key: &Tensor,
    value: &Tensor,
    nx: Numerics,
) -> Result<Tensor, KernelError> {
    if query.rank() < 2 {
        return Err(KernelError::shape(
            "scaled_dot_product_attention",
            "query needs rank ≥ 2",
        ));
    }
    let e = query.shape[query.rank() - 1];
    let mut scores = matmul_f32(query, key, false, true, nx)?;
    let scale = 1.0 / (e as f32).sqrt();
    scores.data.iter_mut().for_each(|v| *v *= scale);
    nx.finish(scores.dtype, &mut scores.data);
    let probs = softmax(&scores, -1, nx)?;
    matmul(&probs, value, false, false, nx)
}
