//! The portable level: 8 lanes as a plain array, operations as loops the compiler may
//! vectorize for whatever baseline the target has. Multiply-add is two roundings.

use super::Simd;

/// The portable level's token.
#[derive(Clone, Copy, Debug, Default)]
pub struct Portable;

/// Lanes of the portable level (as many as NEON's register pairs and AVX2's registers).
const N: usize = 8;

#[inline(always)]
fn zip(a: [f32; N], b: [f32; N], f: impl Fn(f32, f32) -> f32) -> [f32; N] {
    std::array::from_fn(|i| f(a[i], b[i]))
}

impl Simd for Portable {
    const LANES: usize = N;
    // NEON's tile, so that x86 runs of this level exercise the shape NEON runs.
    const TILE_ROWS: usize = 3;
    const TILE_COLS: usize = 3;
    type F = [f32; N];

    #[inline(always)]
    fn splat(self, x: f32) -> [f32; N] {
        [x; N]
    }

    #[inline(always)]
    unsafe fn load(self, p: *const f32) -> [f32; N] {
        // SAFETY: the caller's contract; unaligned read of plain data.
        unsafe { p.cast::<[f32; N]>().read_unaligned() }
    }

    #[inline(always)]
    unsafe fn store(self, p: *mut f32, v: [f32; N]) {
        // SAFETY: the caller's contract.
        unsafe { p.cast::<[f32; N]>().write_unaligned(v) }
    }

    #[inline(always)]
    unsafe fn load_f16(self, p: *const u16) -> [f32; N] {
        // SAFETY: the caller's contract.
        let h = unsafe { p.cast::<[u16; N]>().read_unaligned() };
        h.map(|b| half::f16::from_bits(b).to_f32())
    }

    #[inline(always)]
    unsafe fn store_f16(self, p: *mut u16, v: [f32; N]) {
        let h = v.map(|x| half::f16::from_f32(x).to_bits());
        // SAFETY: the caller's contract.
        unsafe { p.cast::<[u16; N]>().write_unaligned(h) }
    }

    #[inline(always)]
    fn add(self, a: [f32; N], b: [f32; N]) -> [f32; N] {
        zip(a, b, |x, y| x + y)
    }

    #[inline(always)]
    fn sub(self, a: [f32; N], b: [f32; N]) -> [f32; N] {
        zip(a, b, |x, y| x - y)
    }

    #[inline(always)]
    fn mul(self, a: [f32; N], b: [f32; N]) -> [f32; N] {
        zip(a, b, |x, y| x * y)
    }

    #[inline(always)]
    fn fma(self, a: [f32; N], b: [f32; N], c: [f32; N]) -> [f32; N] {
        std::array::from_fn(|i| a[i] * b[i] + c[i])
    }

    #[inline(always)]
    fn max(self, a: [f32; N], b: [f32; N]) -> [f32; N] {
        zip(a, b, f32::max)
    }

    #[inline(always)]
    fn sum(self, v: [f32; N]) -> f32 {
        ((v[0] + v[4]) + (v[2] + v[6])) + ((v[1] + v[5]) + (v[3] + v[7]))
    }

    #[inline(always)]
    fn hmax(self, v: [f32; N]) -> f32 {
        v.into_iter().fold(f32::NEG_INFINITY, f32::max)
    }

    #[inline(always)]
    fn prefetch(self, _p: *const u8) {}
}
