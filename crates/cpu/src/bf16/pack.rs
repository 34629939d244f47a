//! Packing f32 operands into the k-pair-interleaved bf16 panels the micro-kernel reads.
//!
//! A packed operand is a run of panels, each `W` lines wide (rows of A, columns of B) and
//! `pairs` k-pairs deep: `out[(panel · pairs + p) · W + l]` holds line `l`'s values at
//! `k = 2p` (low half) and `k = 2p + 1` (high half) as one u32, rounded to bf16
//! nearest-even. Lines past the operand and the odd k at the end are zero.

use std::arch::x86_64::*;

use crate::convert::bf16_bits;
use crate::matmul::MatRef;

/// Lines converted together by the vector paths.
const GROUP: usize = 16;
/// Groups the interleave path converts per pass along the k rows: many for wide panels, two
/// for 8-wide ones (more would scatter the stores over too many panels at once).
const fn batch(width: usize) -> usize {
    if width.is_multiple_of(GROUP) {
        8
    } else {
        2
    }
}
/// How many pairs ahead the interleave path prefetches.
const PREFETCH_PAIRS: usize = 4;

/// One operand's lines, read as `line × k` with explicit strides.
#[derive(Clone, Copy)]
pub(super) struct Lines<'a> {
    /// Backing values.
    data: &'a [f32],
    /// Number of lines.
    count: usize,
    /// Values along k.
    len: usize,
    /// Element step between lines.
    line_stride: usize,
    /// Element step along k.
    k_stride: usize,
}

impl<'a> Lines<'a> {
    /// The rows of `a` (lines are rows, k runs along columns).
    ///
    /// # Panics
    /// If `a` addresses memory outside its buffer.
    pub(super) fn rows(a: MatRef<'a>) -> Self {
        assert!(a.in_bounds(), "pack: view out of bounds");
        Lines {
            data: a.data,
            count: a.rows,
            len: a.cols,
            line_stride: a.row_stride,
            k_stride: a.col_stride,
        }
    }

    /// The columns of `b` (lines are columns, k runs along rows).
    ///
    /// # Panics
    /// If `b` addresses memory outside its buffer.
    pub(super) fn cols(b: MatRef<'a>) -> Self {
        assert!(b.in_bounds(), "pack: view out of bounds");
        Lines {
            data: b.data,
            count: b.cols,
            len: b.rows,
            line_stride: b.col_stride,
            k_stride: b.row_stride,
        }
    }
}

/// Which lines and which k values a pack covers.
#[derive(Clone, Copy)]
pub(super) struct Block {
    /// First line.
    pub(super) line0: usize,
    /// Lines to pack (the last panel is zero-padded to `W`).
    pub(super) lines: usize,
    /// First k (even).
    pub(super) k0: usize,
    /// k values to pack (odd counts are zero-padded to a pair).
    pub(super) depth: usize,
}

/// Packs `block` of `src` into panels `W` lines wide, choosing the transpose, interleave or
/// strided path by which stride is one.
///
/// # Panics
/// If `block` lies outside `src`, starts at an odd k, or `out` is shorter than
/// `⌈lines / W⌉ · W · ⌈depth / 2⌉`.
///
/// # Safety
/// The CPU must support avx512f, avx512bw and avx512bf16.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
pub(super) unsafe fn pack<const W: usize>(src: Lines<'_>, block: Block, out: &mut [u32]) {
    let pairs = block.depth.div_ceil(2);
    let padded = block.lines.div_ceil(W) * W;
    assert!(out.len() >= padded * pairs, "pack: output too small");
    assert!(
        block.line0 + block.lines <= src.count
            && block.k0 + block.depth <= src.len
            && block.k0.is_multiple_of(2),
        "pack: block outside the operand"
    );
    if src.k_stride == 1 {
        for g in (0..padded).step_by(GROUP) {
            // SAFETY: the CPU features are this function's contract; `src` is in bounds (checked
            // when `Lines` was made) and `block` inside it and `out` large enough (checked above).
            unsafe { transpose_group::<W>(src, block, g, out) };
        }
    } else if src.line_stride == 1 {
        for g0 in (0..padded).step_by(batch(W) * GROUP) {
            // SAFETY: as above.
            unsafe { interleave_batch::<W>(src, block, g0, out) };
        }
    } else {
        pack_strided::<W>(src, block, out);
    }
}

/// Where the pair words of one 16-line group go: one run of 16 per pair when `W` is a multiple
/// of 16, else two runs of 8 in consecutive panels (the second absent past the padding).
struct GroupOut<const W: usize> {
    /// Pair 0 of the group's first line.
    lo: *mut u32,
    /// Pair 0 of the group's ninth line when it starts a separate panel.
    hi: Option<*mut u32>,
}

impl<const W: usize> GroupOut<W> {
    /// The destination of lines `g..g + 16` in the output of `len` values at `base` (checked
    /// against `len`).
    fn new(base: *mut u32, len: usize, pairs: usize, padded: usize, g: usize) -> Self {
        let offset = |line: usize| (line / W) * pairs * W + line % W;
        let fits =
            |line: usize, run: usize| offset(line) + pairs.saturating_sub(1) * W + run <= len;
        if W.is_multiple_of(GROUP) {
            assert!(fits(g, GROUP), "pack: group outside the output");
            return GroupOut {
                lo: base.wrapping_add(offset(g)),
                hi: None,
            };
        }
        assert!(fits(g, 8), "pack: group outside the output");
        let hi = (g + 8 < padded).then(|| {
            assert!(fits(g + 8, 8), "pack: group outside the output");
            base.wrapping_add(offset(g + 8))
        });
        GroupOut {
            lo: base.wrapping_add(offset(g)),
            hi,
        }
    }

    /// Stores the group's 16 pair words for pair `p`.
    ///
    /// # Safety
    /// `p` must be below the `pairs` the group was made for, and `base` must still point to
    /// the `len` writable values it was made for.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn store(&self, p: usize, v: __m512i) {
        // SAFETY: `new` checked that pair `pairs - 1` of every run lies inside the output.
        unsafe {
            if W.is_multiple_of(GROUP) {
                _mm512_storeu_si512(self.lo.add(p * W).cast(), v);
            } else {
                _mm256_storeu_si256(self.lo.add(p * W).cast(), _mm512_castsi512_si256(v));
                if let Some(hi) = self.hi {
                    let upper = _mm512_extracti64x4_epi64::<1>(v);
                    _mm256_storeu_si256(hi.add(p * W).cast(), upper);
                }
            }
        }
    }
}

/// Packs lines `g..g + 16` when k is contiguous: each line's 32 k values become 16 pair words,
/// and a 16 × 16 transpose turns line-major words into pair-major ones.
///
/// # Safety
/// The CPU must support the features [`pack`] needs, `block` must lie inside `src` (whose view
/// is in bounds), and `src.k_stride == 1`.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn transpose_group<const W: usize>(src: Lines<'_>, block: Block, g: usize, out: &mut [u32]) {
    let pairs = block.depth.div_ceil(2);
    let padded = block.lines.div_ceil(W) * W;
    let dst = GroupOut::<W>::new(out.as_mut_ptr(), out.len(), pairs, padded, g);
    let live = block.lines.saturating_sub(g).min(GROUP);
    let first = src
        .data
        .as_ptr()
        .wrapping_add((block.line0 + g) * src.line_stride + block.k0);
    for p0 in (0..pairs).step_by(GROUP) {
        let kk = block.depth - 2 * p0;
        let lo_mask = mask16(kk);
        let hi_mask = mask16(kk.saturating_sub(16));
        let mut rows = [_mm512_setzero_si512(); GROUP];
        for (l, row) in rows.iter_mut().enumerate().take(live) {
            let ptr = first.wrapping_add(l * src.line_stride + 2 * p0);
            // SAFETY: masked-off lanes are neither read nor fault (the pointer is only formed
            // with wrapping arithmetic); live lanes address k < k0 + depth on a line < count,
            // inside `src.data` by the caller's contract.
            let (lo, hi) = unsafe {
                (
                    _mm512_maskz_loadu_ps(lo_mask, ptr),
                    _mm512_maskz_loadu_ps(hi_mask, ptr.wrapping_add(16)),
                )
            };
            *row = cvt2(hi, lo);
        }
        transpose16(&mut rows);
        for (i, &v) in rows.iter().enumerate().take((pairs - p0).min(GROUP)) {
            // SAFETY: p0 + i < pairs.
            unsafe { dst.store(p0 + i, v) };
        }
    }
}

/// Packs up to `batch(W)` groups of 16 lines from `g0` on when lines are contiguous: for each
/// pair, the two k rows are read along the batch, converted 16 lines at a time and interleaved.
///
/// # Safety
/// The CPU must support the features [`pack`] needs, `block` must lie inside `src` (whose view
/// is in bounds), and `src.line_stride == 1`.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn interleave_batch<const W: usize>(
    src: Lines<'_>,
    block: Block,
    g0: usize,
    out: &mut [u32],
) {
    let pairs = block.depth.div_ceil(2);
    let padded = block.lines.div_ceil(W) * W;
    let (base, len) = (out.as_mut_ptr(), out.len());
    let groups: Vec<(GroupOut<W>, __mmask16)> = (g0..padded.min(g0 + batch(W) * GROUP))
        .step_by(GROUP)
        .map(|g| {
            (
                GroupOut::new(base, len, pairs, padded, g),
                mask16(block.lines.saturating_sub(g)),
            )
        })
        .collect();
    let index = interleave_index();
    let step = src.k_stride;
    let mut even = src
        .data
        .as_ptr()
        .wrapping_add(block.line0 + g0 + block.k0 * step);
    for p in 0..pairs {
        let has_odd = 2 * p + 1 < block.depth;
        for (i, (dst, mask)) in groups.iter().enumerate() {
            let row = even.wrapping_add(i * GROUP);
            let ahead = row.wrapping_add(2 * PREFETCH_PAIRS * step);
            _mm_prefetch::<_MM_HINT_T0>(ahead.cast());
            _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(step).cast());
            let odd_mask = if has_odd { *mask } else { 0 };
            // SAFETY: masked-off lanes are neither read nor fault (pointers are formed with
            // wrapping arithmetic, prefetches never fault); live lanes address lines < count
            // at k < k0 + depth, inside `src.data` by the caller's contract; p < pairs.
            unsafe {
                let lo = _mm512_maskz_loadu_ps(*mask, row);
                let hi = _mm512_maskz_loadu_ps(odd_mask, row.wrapping_add(step));
                dst.store(p, _mm512_permutexvar_epi16(index, cvt2(hi, lo)));
            }
        }
        even = even.wrapping_add(2 * step);
    }
}

/// Prefetches (into L2) part `part` of `parts` of the source values of `block`, so that a
/// block can be fetched piecemeal while the previous one is being multiplied.
pub(super) fn prefetch(src: Lines<'_>, block: Block, part: usize, parts: usize) {
    // Runs of contiguous source values: one per line, or one per k.
    let (runs, run_len, run_step, along) = if src.k_stride == 1 {
        (
            block.lines,
            block.depth,
            src.line_stride,
            block.line0 * src.line_stride + block.k0,
        )
    } else if src.line_stride == 1 {
        (
            block.depth,
            block.lines,
            src.k_stride,
            block.line0 + block.k0 * src.k_stride,
        )
    } else {
        return;
    };
    if run_len == 0 || parts == 0 {
        return;
    }
    let base = src.data.as_ptr().wrapping_add(along);
    for run in runs * part / parts..runs * (part + 1) / parts {
        let start = base.wrapping_add(run * run_step);
        for offset in (0..run_len).step_by(16) {
            // SAFETY: prefetching has no architectural effect and never faults; the address
            // is formed with wrapping arithmetic.
            unsafe { _mm_prefetch::<_MM_HINT_T1>(start.wrapping_add(offset).cast()) };
        }
    }
}

/// Packs element by element, for views with no unit stride.
fn pack_strided<const W: usize>(src: Lines<'_>, block: Block, out: &mut [u32]) {
    let pairs = block.depth.div_ceil(2);
    let padded = block.lines.div_ceil(W) * W;
    let at = |line: usize, k: usize| -> u32 {
        if line < block.lines && k < block.depth {
            let idx = (block.line0 + line) * src.line_stride + (block.k0 + k) * src.k_stride;
            u32::from(bf16_bits(src.data[idx]))
        } else {
            0
        }
    };
    for line in 0..padded {
        for p in 0..pairs {
            let word = at(line, 2 * p) | (at(line, 2 * p + 1) << 16);
            out[((line / W) * pairs + p) * W + line % W] = word;
        }
    }
}

/// The lane mask selecting the first `live` of 16 lanes.
#[inline]
fn mask16(live: usize) -> __mmask16 {
    if live >= 16 {
        0xffff
    } else {
        ((1u32 << live) - 1) as __mmask16
    }
}

/// `_mm512_cvtne2ps_pbh` as integers: lanes 0..16 from `b`, 16..32 from `a`.
#[inline]
#[target_feature(enable = "avx512f,avx512bf16")]
fn cvt2(a: __m512, b: __m512) -> __m512i {
    let bh = _mm512_cvtne2ps_pbh(a, b);
    // SAFETY: both are 512-bit plain-data vectors.
    unsafe { std::mem::transmute::<__m512bh, __m512i>(bh) }
}

/// u16 permutation `[0, 16, 1, 17, …, 15, 31]`: lane q of two converted rows becomes one pair.
#[inline]
#[target_feature(enable = "avx512f")]
fn interleave_index() -> __m512i {
    _mm512_set_epi16(
        31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6, 21, 5, 20, 4,
        19, 3, 18, 2, 17, 1, 16, 0,
    )
}

/// Transposes a 16 × 16 matrix of u32 held as 16 row vectors.
#[inline]
#[target_feature(enable = "avx512f")]
fn transpose16(r: &mut [__m512i; 16]) {
    let mut t = [_mm512_setzero_si512(); 16];
    for i in 0..8 {
        t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
    // After this stage, r[4g + c] holds, in 128-bit lane L, rows 4g..4g+4 of column 4L + c.
    for g in 0..4 {
        let (a, b, c, d) = (t[4 * g], t[4 * g + 1], t[4 * g + 2], t[4 * g + 3]);
        r[4 * g] = _mm512_unpacklo_epi64(a, c);
        r[4 * g + 1] = _mm512_unpackhi_epi64(a, c);
        r[4 * g + 2] = _mm512_unpacklo_epi64(b, d);
        r[4 * g + 3] = _mm512_unpackhi_epi64(b, d);
    }
    for c in 0..4 {
        let v0 = _mm512_shuffle_i32x4::<0x44>(r[c], r[4 + c]);
        let v1 = _mm512_shuffle_i32x4::<0xee>(r[c], r[4 + c]);
        let v2 = _mm512_shuffle_i32x4::<0x44>(r[8 + c], r[12 + c]);
        let v3 = _mm512_shuffle_i32x4::<0xee>(r[8 + c], r[12 + c]);
        t[c] = _mm512_shuffle_i32x4::<0x88>(v0, v2);
        t[4 + c] = _mm512_shuffle_i32x4::<0xdd>(v0, v2);
        t[8 + c] = _mm512_shuffle_i32x4::<0x88>(v1, v3);
        t[12 + c] = _mm512_shuffle_i32x4::<0xdd>(v1, v3);
    }
    *r = t;
}
