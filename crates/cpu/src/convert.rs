//! Number format conversions: fp16 ↔ f32 over slices (exact widening, nearest-even
//! narrowing), rounding through fp16 in place, and rounding a value to bf16.

use crate::kernel;

kernel! {
    /// Widens fp16 bit patterns to f32 (`min(src.len(), dst.len())` values).
    pub fn f16_to_f32(s, src: &[u16], dst: &mut [f32]) {
        let n = src.len().min(dst.len());
        let body = n / S::LANES * S::LANES;
        for j in (0..body).step_by(S::LANES) {
            // SAFETY: j + LANES ≤ n, inside both slices.
            unsafe { s.store(dst.as_mut_ptr().add(j), s.load_f16(src.as_ptr().add(j))) };
        }
        for j in body..n {
            dst[j] = half::f16::from_bits(src[j]).to_f32();
        }
    }
}

kernel! {
    /// Narrows f32 values to fp16 bit patterns, rounding to nearest even, overflowing to ±inf,
    /// NaN staying NaN (`min(src.len(), dst.len())` values).
    pub fn f32_to_f16(s, src: &[f32], dst: &mut [u16]) {
        let n = src.len().min(dst.len());
        let body = n / S::LANES * S::LANES;
        for j in (0..body).step_by(S::LANES) {
            // SAFETY: j + LANES ≤ n, inside both slices.
            unsafe { s.store_f16(dst.as_mut_ptr().add(j), s.load(src.as_ptr().add(j))) };
        }
        for j in body..n {
            dst[j] = half::f16::from_f32(src[j]).to_bits();
        }
    }
}

kernel! {
    /// Replaces every value by the nearest fp16 value (ties to even; beyond ±65504 ±inf; NaN
    /// stays NaN), kept as f32.
    pub fn round_f16(s, data: &mut [f32]) {
        let n = data.len();
        let body = n / S::LANES * S::LANES;
        let mut h = [0u16; 16];
        for j in (0..body).step_by(S::LANES) {
            // SAFETY: j + LANES ≤ n; `h` holds 16 ≥ LANES values.
            unsafe {
                let p = data.as_mut_ptr().add(j);
                s.store_f16(h.as_mut_ptr(), s.load(p));
                s.store(p, s.load_f16(h.as_ptr()));
            }
        }
        for v in &mut data[body..] {
            *v = half::f16::from_f32(*v).to_f32();
        }
    }
}

/// f32 → bf16 bits as x86's `vcvtne2ps2bf16` converts: nearest even, NaN kept (quieted),
/// denormal inputs flushed to (signed) zero.
#[inline(always)]
pub fn bf16_bits(x: f32) -> u16 {
    let bits = x.to_bits();
    if x.is_nan() {
        return ((bits >> 16) as u16) | 0x40;
    }
    let bits = if bits & 0x7f80_0000 == 0 {
        bits & 0x8000_0000
    } else {
        bits
    };
    ((bits + 0x7fff + ((bits >> 16) & 1)) >> 16) as u16
}

/// `x` rounded to bf16 as [`bf16_bits`] rounds it, returned as the f32 of equal value.
#[inline(always)]
pub fn bf16_round(x: f32) -> f32 {
    f32::from_bits(u32::from(bf16_bits(x)) << 16)
}
