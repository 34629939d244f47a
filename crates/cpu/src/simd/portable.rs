//! The portable level: 8 lanes as a plain array, operations as loops the compiler may
//! vectorize for whatever baseline the target has. Multiply-add is two roundings.

use super::Simd;

/// The portable level's token.
#[derive(Clone, Copy, Debug, Default)]
pub struct Portable;

/// Lanes of the portable level (as many as NEON's register pairs and AVX2's registers).
const N: usize = 8;

/// `f` lane by lane, written as a plain indexed loop (which the compiler unrolls and
/// vectorizes more reliably than closures over arrays).
#[inline(always)]
fn zip(mut a: [f32; N], b: [f32; N], f: impl Fn(f32, f32) -> f32) -> [f32; N] {
    for i in 0..N {
        a[i] = f(a[i], b[i]);
    }
    a
}

impl Simd for Portable {
    const LANES: usize = N;
    // NEON's tile, so that x86 runs of this level exercise the shape NEON runs.
    const TILE_ROWS: usize = 3;
    const TILE_COLS: usize = 3;
    const PACKED_ROWS: usize = 4;
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
        h.map(f16_to_f32)
    }

    #[inline(always)]
    unsafe fn store_f16(self, p: *mut u16, v: [f32; N]) {
        let h = v.map(f32_to_f16);
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
    fn fma(self, a: [f32; N], b: [f32; N], mut c: [f32; N]) -> [f32; N] {
        for i in 0..N {
            c[i] += a[i] * b[i];
        }
        c
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

/// fp16 bits to f32, exactly, without branches (so lanes vectorize): the exponent and
/// mantissa bits shifted into place and scaled by 2^112 (which also normalizes subnormals),
/// infinities and NaNs given the all-ones exponent back.
#[inline(always)]
fn f16_to_f32(h: u16) -> f32 {
    let h = u32::from(h);
    let scaled = f32::from_bits((h & 0x7fff) << 13) * f32::from_bits((254 - 15) << 23);
    let inf_nan = scaled >= f32::from_bits((127 + 16) << 23);
    let bits = scaled.to_bits() | if inf_nan { 255 << 23 } else { 0 };
    f32::from_bits(bits | (h & 0x8000) << 16)
}

/// f32 to fp16 bits, rounding to nearest even (overflow to ±inf, NaN to a quiet NaN), without
/// branches on the data: subnormal results by adding a magic number that aligns the mantissa,
/// normal ones by re-biasing the exponent with a round-half-even bias.
#[inline(always)]
fn f32_to_f16(f: f32) -> u16 {
    const INF: u32 = 255 << 23;
    const F16_MAX: u32 = (127 + 16) << 23;
    const DENORM_MAGIC: u32 = ((127 - 15) + (23 - 10) + 1) << 23;
    let bits = f.to_bits();
    let sign = bits & 0x8000_0000;
    let x = bits ^ sign;
    let special = if x > INF { 0x7e00 } else { 0x7c00 };
    let sub = (f32::from_bits(x) + f32::from_bits(DENORM_MAGIC))
        .to_bits()
        .wrapping_sub(DENORM_MAGIC);
    let odd = (x >> 13) & 1;
    let normal = x.wrapping_add(((15u32.wrapping_sub(127)) << 23).wrapping_add(0xfff) + odd) >> 13;
    let h = if x >= F16_MAX {
        special
    } else if x < 113 << 23 {
        sub
    } else {
        normal
    };
    (h | sign >> 16) as u16
}
