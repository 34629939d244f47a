//! Blocking and threading of the bf16 GEMM.
//!
//! The operand along the short output side is packed once, whole, and shared by every task
//! (A when m is small, as in the trainer's forward and data-gradient products; otherwise B).
//! Tasks then split the long side: each packs its own pieces of the other operand and runs the
//! micro-kernel over its tiles. Every output element sums its k range in fixed `KC` blocks in
//! increasing k, whatever the split, so results do not depend on the number of threads.

use std::cell::Cell;
use std::ops::Range;
use std::thread::LocalKey;

use crate::matmul::{for_each_index, MatRef};
use rayon::prelude::*;

use super::kernel::{kernel, Tile, MR, NR};
use super::pack::{pack, prefetch, Block, Lines};
use super::Isa;

/// k values per cache block (even, so a pair never straddles two blocks).
const KC: usize = 256;
/// k values of A packed at a time when A is shared (a multiple of `KC`), so that the packed
/// slab stays in the last-level cache while every task streams it.
const KS: usize = 16 * KC;
/// Rows of A each task packs and sweeps when B is shared.
const MC: usize = 128;
/// Most B panels (of `NR` columns) per task when A is shared.
const MAX_PANELS_PER_TASK: usize = 8;
/// Tasks to aim for when A is shared, so that threads stay balanced.
const MIN_TASKS: usize = 8;
/// Largest m for which A is packed whole and shared.
const SHARE_A_MAX_ROWS: usize = 512;
/// Multiply-adds (m·n·k) from which one product runs on the rayon pool.
const PAR_WORK: usize = 1 << 20;

thread_local! {
    /// The calling thread's buffer for the operand packed whole.
    static SHARED: Cell<Vec<u32>> = const { Cell::new(Vec::new()) };
    /// A worker's buffer for the pieces one task packs.
    static TASK: Cell<Vec<u32>> = const { Cell::new(Vec::new()) };
}

/// The output matrix as a pointer tasks may write disjoint tiles through.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);

impl OutPtr {
    /// The element `offset` places into the output (formed without dereferencing).
    fn at(self, offset: usize) -> *mut f32 {
        self.0.wrapping_add(offset)
    }
}

// SAFETY: tasks write disjoint tiles of the output, which outlives every task (they all
// finish before `gemm` returns).
unsafe impl Send for OutPtr {}
// SAFETY: as above; no tile is accessed by two tasks.
unsafe impl Sync for OutPtr {}

/// `dst (m × n) = a · b` (`+=` when `accumulate`) on checked, non-empty shapes.
pub(super) fn gemm(isa: Isa, dst: &mut [f32], a: MatRef<'_>, b: MatRef<'_>, accumulate: bool) {
    let threaded = a.rows * a.cols * b.cols >= PAR_WORK;
    if a.rows <= SHARE_A_MAX_ROWS {
        shared_a(isa, dst, a, b, accumulate, threaded);
    } else {
        shared_b(isa, dst, a, b, accumulate, threaded);
    }
}

/// Packs A (a slab of `KS` k values at a time), then splits the columns of C into tasks that
/// pack their own B panels.
fn shared_a(
    isa: Isa,
    dst: &mut [f32],
    a: MatRef<'_>,
    b: MatRef<'_>,
    accumulate: bool,
    threaded: bool,
) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    let panels = m.div_ceil(MR);
    let out = OutPtr(dst.as_mut_ptr());
    let width = NR * panels_per_task(n.div_ceil(NR));
    with_scratch(&SHARED, panels * KS.min(k).div_ceil(2) * MR, |packed_a| {
        for k0 in (0..k).step_by(KS) {
            let ks = k0..k.min(k0 + KS);
            let pairs = ks.len().div_ceil(2);
            let packed_a = &mut packed_a[..panels * pairs * MR];
            for_each_chunk(packed_a, 2 * pairs * MR, threaded, |c, chunk| {
                let line0 = 2 * MR * c;
                let lines = (m - line0).min(2 * MR);
                let block = Block {
                    line0,
                    lines,
                    k0,
                    depth: ks.len(),
                };
                pack_operand::<MR>(isa, Lines::rows(a), block, chunk);
            });
            let packed_a: &[u32] = packed_a;
            for_each_index(n.div_ceil(width), threaded, |g| {
                let cols = g * width..n.min((g + 1) * width);
                let acc = accumulate || k0 > 0;
                column_task(isa, out, packed_a, m, b, (ks.clone(), cols), acc);
            });
        }
    });
}

/// B panels per task when A is shared: enough tasks to balance, few enough that each task
/// reuses every block of packed A across several panels.
fn panels_per_task(panels: usize) -> usize {
    (panels / MIN_TASKS).clamp(1, MAX_PANELS_PER_TASK)
}

/// Adds (or writes, unless `accumulate`) the product over the k slab `ks` into the output
/// columns `cols` (all m rows), from A packed for that slab, packing the matching B columns
/// one `KC` block at a time.
fn column_task(
    isa: Isa,
    out: OutPtr,
    packed_a: &[u32],
    m: usize,
    b: MatRef<'_>,
    (ks, cols): (Range<usize>, Range<usize>),
    accumulate: bool,
) {
    let n = b.cols;
    let (pairs, a_panels) = (ks.len().div_ceil(2), m.div_ceil(MR));
    let width = cols.len();
    with_scratch(&TASK, width.div_ceil(NR) * KC / 2 * NR, |packed_b| {
        for k0 in ks.clone().step_by(KC) {
            let depth = (ks.end - k0).min(KC);
            let block = Block {
                line0: cols.start,
                lines: width,
                k0,
                depth,
            };
            let kp = depth.div_ceil(2);
            pack_operand::<NR>(isa, Lines::cols(b), block, packed_b);
            let depth = b.rows.saturating_sub(k0 + KC).min(KC);
            let next = Block {
                k0: k0 + KC,
                depth,
                ..block
            };
            let calls = width.div_ceil(NR) * a_panels;
            for (jp, j) in cols.clone().step_by(NR).enumerate() {
                let b_panel = &packed_b[jp * kp * NR..];
                for ir in 0..a_panels {
                    // Spread the fetch of the next k block's B values over this block's calls.
                    prefetch(Lines::cols(b), next, jp * a_panels + ir, calls);
                    let tile = Tile {
                        c: out.at(ir * MR * n + j),
                        ldc: n,
                        rows: (m - ir * MR).min(MR),
                        cols: (cols.end - j).min(NR),
                        load: accumulate || k0 > ks.start,
                    };
                    let a_panel = &packed_a[(ir * pairs + (k0 - ks.start) / 2) * MR..];
                    // SAFETY: rows ir·MR.. (< m) and columns j.. (< cols.end ≤ n) of the
                    // output belong to this task's column range alone.
                    unsafe { run_kernel(isa, kp, a_panel, b_panel, &tile) };
                }
            }
        }
    });
}

/// Packs all of B once, then splits the rows of C into tasks that pack their own A blocks.
fn shared_b(
    isa: Isa,
    dst: &mut [f32],
    a: MatRef<'_>,
    b: MatRef<'_>,
    accumulate: bool,
    threaded: bool,
) {
    let (k, n) = (a.cols, b.cols);
    let pairs = k.div_ceil(2);
    let panels = n.div_ceil(NR);
    with_scratch(&SHARED, panels * pairs * NR, |packed_b| {
        for_each_chunk(packed_b, pairs * NR, threaded, |jp, chunk| {
            let line0 = jp * NR;
            let block = Block {
                line0,
                lines: (n - line0).min(NR),
                k0: 0,
                depth: k,
            };
            pack_operand::<NR>(isa, Lines::cols(b), block, chunk);
        });
        let packed_b: &[u32] = packed_b;
        for_each_chunk(dst, MC * n, threaded, |t, out| {
            row_task(isa, out, t * MC, a, packed_b, n, accumulate);
        });
    });
}

/// Computes the output rows `line0..` held in `out` (all n columns) from the shared packed B,
/// packing the matching A rows one k block at a time.
fn row_task(
    isa: Isa,
    out: &mut [f32],
    line0: usize,
    a: MatRef<'_>,
    packed_b: &[u32],
    n: usize,
    accumulate: bool,
) {
    let k = a.cols;
    let (rows, pairs, b_panels) = (out.len() / n, k.div_ceil(2), n.div_ceil(NR));
    with_scratch(&TASK, MC * KC / 2, |packed_a| {
        for k0 in (0..k).step_by(KC) {
            let block = Block {
                line0,
                lines: rows,
                k0,
                depth: (k - k0).min(KC),
            };
            pack_operand::<MR>(isa, Lines::rows(a), block, packed_a);
            let (kp, a_panels) = (block.depth.div_ceil(2), rows.div_ceil(MR));
            for jp in 0..b_panels {
                let b_panel = &packed_b[(jp * pairs + k0 / 2) * NR..];
                for ir in 0..a_panels {
                    let tile = Tile {
                        c: out[ir * MR * n + jp * NR..].as_mut_ptr(),
                        ldc: n,
                        rows: (rows - ir * MR).min(MR),
                        cols: (n - jp * NR).min(NR),
                        load: accumulate || k0 > 0,
                    };
                    let a_panel = &packed_a[ir * kp * MR..];
                    // SAFETY: the tile's real rows and columns lie inside `out`, this task's
                    // own rows of the output.
                    unsafe { run_kernel(isa, kp, a_panel, b_panel, &tile) };
                }
            }
        }
    });
}

/// Packs `block` of `src` into `out` (panels `W` lines wide).
fn pack_operand<const W: usize>(_isa: Isa, src: Lines<'_>, block: Block, out: &mut [u32]) {
    // SAFETY: `Isa` proves the CPU features; `pack` checks everything else.
    unsafe { pack::<W>(src, block, out) };
}

/// Runs the micro-kernel over `pairs` k-pairs of an A and a B panel into `tile`.
///
/// # Safety
/// The real part of `tile` must lie inside the output and belong to the calling task alone.
unsafe fn run_kernel(_isa: Isa, pairs: usize, a: &[u32], b: &[u32], tile: &Tile) {
    assert!(
        a.len() >= pairs * MR && b.len() >= pairs * NR,
        "bf16 gemm: panel too short"
    );
    // SAFETY: `Isa` proves the CPU features; the panels were just checked; the tile is the
    // caller's contract.
    unsafe { kernel(pairs, a.as_ptr(), b.as_ptr(), tile) };
}

/// Runs `f` on a thread-local scratch buffer of at least `len` values (contents arbitrary).
fn with_scratch<R>(
    key: &'static LocalKey<Cell<Vec<u32>>>,
    len: usize,
    f: impl FnOnce(&mut [u32]) -> R,
) -> R {
    let mut buf = key.take();
    if buf.len() < len {
        buf.resize(len, 0);
    }
    let result = f(&mut buf[..len]);
    key.set(buf);
    result
}

/// Calls `f(i, chunk)` for each `len`-sized chunk of `buf`, on the pool when `threaded`.
fn for_each_chunk<T: Send>(
    buf: &mut [T],
    len: usize,
    threaded: bool,
    f: impl Fn(usize, &mut [T]) + Sync + Send,
) {
    if threaded {
        buf.par_chunks_mut(len)
            .enumerate()
            .for_each(|(i, c)| f(i, c));
    } else {
        buf.chunks_mut(len).enumerate().for_each(|(i, c)| f(i, c));
    }
}
