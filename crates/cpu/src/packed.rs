//! Packed matrix products `C (+)= A · B` over strided f32 views: blocks of A and B are copied
//! (rounded to bf16 when asked) into panels laid out in the order the micro-kernel reads them,
//! and the micro-kernel keeps an `MR × 2·LANES` block of C in registers, adding one outer
//! product of a column of A and a row of B per step of k.
//!
//! Packing makes every stride the same to the micro-kernel, so transposed operands (the weight
//! and data gradients of training) run as fast as plain ones.

use std::cell::Cell;
use std::ops::Range;

use crate::convert::bf16_round;
use crate::matmul::MatRef;
use crate::simd::Simd;

/// k values per packed block: a B panel (`KC × 2·LANES`) stays in L1, the A block in L2.
const KC: usize = 256;

thread_local! {
    /// This thread's packing buffers.
    static SCRATCH: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
}

/// Where C is: element `(i, j)` at `ptr + i·ld + j`.
#[derive(Clone, Copy)]
pub(crate) struct Dst {
    pub ptr: *mut f32,
    pub ld: usize,
}

/// `C[rows, cols] (+)= A[rows, :] · B[:, cols]`, inputs rounded to bf16 when `round`.
///
/// # Safety
/// `dst` must be valid for reads and writes at `(i, j)` for `i` in `rows`, `j` in `cols`, and
/// no other thread may access those elements during the call; `a` and `b` must be in bounds
/// with `a.cols == b.rows` and `rows`/`cols` inside `a.rows`/`b.cols`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(crate) unsafe fn block_in<S: Simd>(
    s: S,
    dst: Dst,
    a: MatRef<'_>,
    b: MatRef<'_>,
    rows: Range<usize>,
    cols: Range<usize>,
    accumulate: bool,
    round: bool,
) {
    let job = Job {
        dst,
        a,
        b,
        rows,
        cols,
        accumulate,
        round,
    };
    // SAFETY: the caller's contract, passed on.
    unsafe {
        match S::PACKED_ROWS {
            8 => run::<S, 8>(s, job),
            6 => run::<S, 6>(s, job),
            _ => run::<S, 4>(s, job),
        }
    }
}

/// One call's operands and block.
struct Job<'a> {
    dst: Dst,
    a: MatRef<'a>,
    b: MatRef<'a>,
    rows: Range<usize>,
    cols: Range<usize>,
    accumulate: bool,
    round: bool,
}

/// [`block_in`] with `MR` rows per micro-kernel call.
///
/// # Safety
/// As [`block_in`].
#[inline(always)]
unsafe fn run<S: Simd, const MR: usize>(s: S, job: Job<'_>) {
    let nr = 2 * S::LANES;
    let k = job.a.cols;
    let (mb, nb) = (job.rows.len(), job.cols.len());
    if mb == 0 || nb == 0 {
        return;
    }
    let (a_panels, b_panels) = (mb.div_ceil(MR), nb.div_ceil(nr));
    let a_len = a_panels * MR * KC;
    let mut buf = SCRATCH.take();
    // Panels start on cache lines (16 f32), so no vector load straddles two lines.
    let b_len = b_panels * nr * KC;
    if buf.len() < a_len + b_len + 16 {
        buf.resize(a_len + b_len + 16, 0.0);
    }
    let skip = buf.as_ptr().align_offset(64).min(15);
    let (apack, bpack) = buf[skip..skip + a_len + b_len].split_at_mut(a_len);
    for p0 in (0..k).step_by(KC) {
        let kc = KC.min(k - p0);
        let ks = p0..p0 + kc;
        pack(
            Lines::rows(job.a),
            job.rows.clone(),
            ks.clone(),
            MR,
            job.round,
            apack,
        );
        pack(
            Lines::cols(job.b),
            job.cols.clone(),
            ks,
            nr,
            job.round,
            bpack,
        );
        let load = job.accumulate || p0 > 0;
        for jp in 0..b_panels {
            let j = job.cols.start + jp * nr;
            let bp = &bpack[jp * kc * nr..(jp + 1) * kc * nr];
            for ip in 0..a_panels {
                let i = job.rows.start + ip * MR;
                let ap = &apack[ip * kc * MR..(ip + 1) * kc * MR];
                let edge = ((job.rows.end - i).min(MR), (job.cols.end - j).min(nr));
                // SAFETY: the tile (i.., j..) lies inside the caller's block of C.
                let c = job.dst.ptr.wrapping_add(i * job.dst.ld + j);
                unsafe { micro::<S, MR>(s, kc, ap, bp, c, job.dst.ld, edge, load) };
            }
        }
    }
    SCRATCH.set(buf);
}

/// An operand read as lines (rows of A, columns of B) along k.
#[derive(Clone, Copy)]
struct Lines<'a> {
    data: &'a [f32],
    line_stride: usize,
    k_stride: usize,
}

impl<'a> Lines<'a> {
    /// The rows of A (k runs along its columns).
    fn rows(a: MatRef<'a>) -> Self {
        Lines {
            data: a.data,
            line_stride: a.row_stride,
            k_stride: a.col_stride,
        }
    }

    /// The columns of B (k runs along its rows).
    fn cols(b: MatRef<'a>) -> Self {
        Lines {
            data: b.data,
            line_stride: b.col_stride,
            k_stride: b.row_stride,
        }
    }
}

/// Lines `lines` × k values `ks` into panels `width` lines wide:
/// `out[(panel·kc + p)·width + l]`, zero past the last line; rounded to bf16 when `round`.
#[inline(always)]
fn pack(
    src: Lines<'_>,
    lines: Range<usize>,
    ks: Range<usize>,
    width: usize,
    round: bool,
    out: &mut [f32],
) {
    let kc = ks.len();
    if kc == 0 || lines.is_empty() {
        return;
    }
    // Every element read below lies at or before the last line's last k value.
    let last = (lines.end - 1) * src.line_stride + (ks.end - 1) * src.k_stride;
    assert!(last < src.data.len(), "pack: view out of bounds");
    assert!(
        out.len() >= lines.len().div_ceil(width) * width * kc,
        "pack: output too small"
    );
    let d = src.data.as_ptr();
    for (panel, l0) in lines.clone().step_by(width).enumerate() {
        let dst = &mut out[panel * kc * width..(panel + 1) * kc * width];
        let live = (lines.end - l0).min(width);
        if live < width {
            dst.fill(0.0);
        }
        if src.line_stride == 1 {
            // Each k value's lines are contiguous: copy runs.
            for (p, row) in dst.chunks_exact_mut(width).zip(ks.clone()) {
                // SAFETY: l0 + live − 1 ≤ lines.end − 1 and row < ks.end: at most `last`.
                let run =
                    unsafe { std::slice::from_raw_parts(d.add(row * src.k_stride + l0), live) };
                p[..live].copy_from_slice(run);
            }
        } else {
            // Each line's k values are a (strided) stream: gather line by line.
            for l in 0..live {
                let base = (l0 + l) * src.line_stride;
                for (p, k) in ks.clone().enumerate() {
                    // SAFETY: line l0 + l < lines.end and k < ks.end: at most `last`.
                    dst[p * width + l] = unsafe { *d.add(base + k * src.k_stride) };
                }
            }
        }
        if round {
            dst.iter_mut().for_each(|v| *v = bf16_round(*v));
        }
    }
}

/// `C (+)= A-panel · B-panel` for one `MR × 2·LANES` tile at `c` (rows `ld` apart), of which
/// `edge` rows and columns are real; adds to C's values when `load`.
///
/// # Safety
/// The real part of the tile must be valid for reads and writes and owned by this thread;
/// `ap` holds `kc·MR` values and `bp` `kc·2·LANES`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn micro<S: Simd, const MR: usize>(
    s: S,
    kc: usize,
    ap: &[f32],
    bp: &[f32],
    c: *mut f32,
    ld: usize,
    edge: (usize, usize),
    load: bool,
) {
    let l = S::LANES;
    assert!(ap.len() >= kc * MR && bp.len() >= kc * 2 * l);
    let (a, b) = (ap.as_ptr(), bp.as_ptr());
    let mut acc = [[s.zero(); 2]; MR];
    for p in 0..kc {
        // SAFETY: p < kc, inside both panels (asserted above).
        let (b0, b1) = unsafe { (s.load(b.add(p * 2 * l)), s.load(b.add(p * 2 * l + l))) };
        for (i, row) in acc.iter_mut().enumerate() {
            // SAFETY: as above.
            let av = s.splat(unsafe { *a.add(p * MR + i) });
            row[0] = s.fma(av, b0, row[0]);
            row[1] = s.fma(av, b1, row[1]);
        }
    }
    let (rows, cols) = edge;
    if cols == 2 * l {
        for (i, row) in acc.iter().enumerate().take(rows) {
            // SAFETY: a whole row of the tile is real and this thread's.
            unsafe {
                let cr = c.add(i * ld);
                let (mut v0, mut v1) = (row[0], row[1]);
                if load {
                    v0 = s.add(v0, s.load(cr));
                    v1 = s.add(v1, s.load(cr.add(l)));
                }
                s.store(cr, v0);
                s.store(cr.add(l), v1);
            }
        }
        return;
    }
    let mut tile = [0.0f32; 64];
    for (i, row) in acc.iter().enumerate().take(rows) {
        // SAFETY: `tile` holds 64 ≥ 2·LANES values.
        unsafe {
            s.store(tile.as_mut_ptr(), row[0]);
            s.store(tile.as_mut_ptr().add(l), row[1]);
        }
        for (j, &t) in tile.iter().enumerate().take(cols) {
            // SAFETY: (i, j) is inside the real part of the tile.
            unsafe {
                let e = c.add(i * ld + j);
                *e = if load { *e + t } else { t };
            }
        }
    }
}

crate::kernel! {
    /// `C[rows, cols] (+)= A[rows, :] · B[:, cols]` into the row-major C at `dst` (`ld`
    /// elements between rows), inputs rounded to bf16 when `round`.
    ///
    /// # Safety
    /// As for the generic body: the block of C must be valid and this call's alone, and the
    /// views in bounds with matching shapes.
    pub(crate) unsafe fn block(
        s,
        dst: *mut f32,
        ld: usize,
        a: MatRef<'_>,
        b: MatRef<'_>,
        rows: Range<usize>,
        cols: Range<usize>,
        accumulate: bool,
        round: bool,
    ) {
        // SAFETY: the caller's contract.
        unsafe { block_in(s, Dst { ptr: dst, ld }, a, b, rows, cols, accumulate, round) }
    }
}
