//! The aarch64 level: 8 f32 lanes held as two 128-bit Advanced SIMD registers, fused
//! multiply-add, and fp16 conversion with `fcvtl`/`fcvtn` (base ARMv8, written as inline
//! assembly because Rust's fp16 vector intrinsics are not stable).
//!
//! The operations are `#[inline(always)]` and only ever inlined into functions compiled with
//! the `neon` target feature (see [`kernel!`](crate::kernel)).

use std::arch::aarch64::*;
use std::arch::asm;

use super::Simd;

/// The NEON level's token.
#[derive(Clone, Copy, Debug)]
pub struct Neon(());

impl Neon {
    /// The token.
    ///
    /// # Safety
    /// The CPU must support Advanced SIMD (every aarch64 CPU Orion targets does).
    #[inline(always)]
    pub unsafe fn new_unchecked() -> Neon {
        Neon(())
    }
}

/// Applies a two-operand intrinsic to both halves.
macro_rules! halves {
    ($f:ident, $a:expr, $b:expr) => {{
        let (a, b) = ($a, $b);
        // SAFETY: the token proves Advanced SIMD (module doc).
        unsafe { [$f(a[0], b[0]), $f(a[1], b[1])] }
    }};
}

impl Simd for Neon {
    const LANES: usize = 8;
    const TILE_ROWS: usize = 3;
    const TILE_COLS: usize = 3;
    const PACKED_ROWS: usize = 6;
    type F = [float32x4_t; 2];

    #[inline(always)]
    fn splat(self, x: f32) -> Self::F {
        // SAFETY: as in `halves!`.
        let v = unsafe { vdupq_n_f32(x) };
        [v, v]
    }

    #[inline(always)]
    unsafe fn load(self, p: *const f32) -> Self::F {
        // SAFETY: the caller's contract.
        unsafe { [vld1q_f32(p), vld1q_f32(p.add(4))] }
    }

    #[inline(always)]
    unsafe fn store(self, p: *mut f32, v: Self::F) {
        // SAFETY: the caller's contract.
        unsafe {
            vst1q_f32(p, v[0]);
            vst1q_f32(p.add(4), v[1]);
        }
    }

    #[inline(always)]
    unsafe fn load_f16(self, p: *const u16) -> Self::F {
        // SAFETY: the caller's contract.
        let h = unsafe { vld1q_u16(p) };
        let (lo, hi): (float32x4_t, float32x4_t);
        // SAFETY: register-only conversions (exact widening).
        unsafe {
            asm!(
                "fcvtl {lo:v}.4s, {h:v}.4h",
                "fcvtl2 {hi:v}.4s, {h:v}.8h",
                h = in(vreg) h,
                lo = out(vreg) lo,
                hi = out(vreg) hi,
                options(pure, nomem, nostack, preserves_flags),
            );
        }
        [lo, hi]
    }

    #[inline(always)]
    unsafe fn store_f16(self, p: *mut u16, v: Self::F) {
        let h: uint16x8_t;
        // SAFETY: register-only conversions, rounding as FPCR says (nearest even by default).
        unsafe {
            asm!(
                "fcvtn {h:v}.4h, {lo:v}.4s",
                "fcvtn2 {h:v}.8h, {hi:v}.4s",
                lo = in(vreg) v[0],
                hi = in(vreg) v[1],
                h = out(vreg) h,
                options(pure, nomem, nostack, preserves_flags),
            );
        }
        // SAFETY: the caller's contract.
        unsafe { vst1q_u16(p, h) }
    }

    #[inline(always)]
    fn add(self, a: Self::F, b: Self::F) -> Self::F {
        halves!(vaddq_f32, a, b)
    }

    #[inline(always)]
    fn sub(self, a: Self::F, b: Self::F) -> Self::F {
        halves!(vsubq_f32, a, b)
    }

    #[inline(always)]
    fn mul(self, a: Self::F, b: Self::F) -> Self::F {
        halves!(vmulq_f32, a, b)
    }

    #[inline(always)]
    fn fma(self, a: Self::F, b: Self::F, c: Self::F) -> Self::F {
        // SAFETY: as in `halves!`; vfmaq_f32(c, a, b) = c + a·b, fused.
        unsafe { [vfmaq_f32(c[0], a[0], b[0]), vfmaq_f32(c[1], a[1], b[1])] }
    }

    #[inline(always)]
    fn max(self, a: Self::F, b: Self::F) -> Self::F {
        halves!(vmaxq_f32, a, b)
    }

    #[inline(always)]
    fn sum(self, v: Self::F) -> f32 {
        // SAFETY: as in `halves!`.
        unsafe { vaddvq_f32(vaddq_f32(v[0], v[1])) }
    }

    #[inline(always)]
    fn hmax(self, v: Self::F) -> f32 {
        // SAFETY: as in `halves!`.
        unsafe { vmaxvq_f32(vmaxq_f32(v[0], v[1])) }
    }

    #[inline(always)]
    fn prefetch(self, p: *const u8) {
        // SAFETY: a prefetch hint never faults, whatever the address.
        unsafe {
            asm!(
                "prfm pldl2keep, [{p}]",
                p = in(reg) p,
                options(nostack, preserves_flags, readonly)
            )
        }
    }
}
