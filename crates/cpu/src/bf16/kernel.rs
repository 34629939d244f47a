//! The register-blocked micro-kernel: one `MR × NR` tile of C from a packed A panel and a
//! packed B panel, 24 zmm accumulators fed by `vdpbf16ps`.

use std::arch::x86_64::*;

/// Rows of C per micro-kernel call (A panel width).
pub(super) const MR: usize = 8;
/// Columns of C per micro-kernel call (B panel width).
pub(super) const NR: usize = 48;
/// zmm vectors across one tile row.
const NV: usize = NR / 16;

/// One tile of the row-major output and how much of it is real.
pub(super) struct Tile {
    /// Top-left element of the tile in C.
    pub(super) c: *mut f32,
    /// Element step between rows of C.
    pub(super) ldc: usize,
    /// Real rows (≤ MR); the rest are computed from zero padding and dropped.
    pub(super) rows: usize,
    /// Real columns (≤ NR).
    pub(super) cols: usize,
    /// Start from the tile's current values (accumulate) instead of zero.
    pub(super) load: bool,
}

/// `tile (rows × cols) (+)= Σ_p a[p] ⊗ b[p]` over `pairs` k-pairs, in increasing p.
///
/// `a` is an A panel (`pairs × MR` pair words), `b` a B panel (`pairs × NR` pair words).
///
/// # Safety
/// The CPU must support avx512f and avx512bf16; `a` and `b` must be readable for
/// `pairs · MR` and `pairs · NR` u32; the real part of the tile must be readable and writable
/// and not accessed by any other thread during the call.
#[target_feature(enable = "avx512f,avx512bf16")]
pub(super) unsafe fn kernel(pairs: usize, a: *const u32, b: *const u32, tile: &Tile) {
    let masks: [__mmask16; NV] = std::array::from_fn(|v| col_mask(tile.cols, v));
    let mut acc = [[_mm512_setzero_ps(); NV]; MR];
    // Start fetching the tile below (usually the next one computed) while this one runs.
    for i in MR..2 * MR {
        for v in 0..NV {
            let below = tile.c.wrapping_add(i * tile.ldc + 16 * v);
            _mm_prefetch::<_MM_HINT_T0>(below.cast());
        }
    }
    if tile.load {
        for (i, row) in acc.iter_mut().enumerate() {
            if i < tile.rows {
                for (v, x) in row.iter_mut().enumerate() {
                    // SAFETY: row i < rows and the unmasked columns are < cols, inside the tile;
                    // masked-off lanes are not touched (the pointer uses wrapping arithmetic).
                    *x = unsafe {
                        _mm512_maskz_loadu_ps(masks[v], tile.c.wrapping_add(i * tile.ldc + 16 * v))
                    };
                }
            }
        }
    }
    for p in 0..pairs {
        // SAFETY: p < pairs, so these reads stay inside the panels the caller vouched for.
        let bv: [__m512bh; NV] = std::array::from_fn(|v| unsafe {
            std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(
                b.add(p * NR + 16 * v).cast(),
            ))
        });
        for (i, row) in acc.iter_mut().enumerate() {
            // SAFETY: as above.
            let word = unsafe { *a.add(p * MR + i) };
            // SAFETY: a broadcast u32 pair is a valid bf16 pair vector.
            let av =
                unsafe { std::mem::transmute::<__m512i, __m512bh>(_mm512_set1_epi32(word as i32)) };
            for (x, &bw) in row.iter_mut().zip(&bv) {
                *x = _mm512_dpbf16_ps(*x, av, bw);
            }
        }
    }
    for (i, row) in acc.iter().enumerate() {
        if i < tile.rows {
            for (v, &x) in row.iter().enumerate() {
                // SAFETY: as for the loads.
                unsafe {
                    _mm512_mask_storeu_ps(tile.c.wrapping_add(i * tile.ldc + 16 * v), masks[v], x)
                };
            }
        }
    }
}

/// The lanes of zmm `v` (columns `16v..16v + 16`) that fall inside `cols`.
#[inline]
fn col_mask(cols: usize, v: usize) -> __mmask16 {
    let live = cols.saturating_sub(16 * v);
    if live >= 16 {
        0xffff
    } else {
        ((1u32 << live) - 1) as __mmask16
    }
}
