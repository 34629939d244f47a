//! The numerics profile: the one place that decides how an op's f32 result becomes a value.
//!
//! [`Numerics::IeeeFp16`] (the default) is the model of `design.md` "Emulator numerics":
//! every kernel computes in f32 (matmul, conv and reductions accumulate in f32; exp, log,
//! tanh, sigmoid… are evaluated in f32) and the result is rounded once to fp16,
//! round-to-nearest-even, overflowing to ±inf, NaN propagating. fp32 results stay f32.
//! Softmax subtracts the max in f32 and rounds once, so it is the correctly rounded softmax.
//!
//! [`Numerics::DeviceObserved`] adds the cheap, well-measured behaviours of `spec/ane.md` §8:
//! - fp16 everywhere: fp32 results are rounded to fp16 as well;
//! - a NaN entering the program becomes +inf ([`Numerics::admit_input`]);
//! - the engine never produces NaN: an invalid result (inf − inf, 0·inf, sqrt(−1)) is +0;
//! - a matmul/conv running sum whose magnitude reaches 2^15 overflows to ±inf, even if later
//!   terms would cancel it (C24). Sums run in index order (the device's lane order is not
//!   known), and only outputs whose Σ|a·b| reaches 2^15 are re-summed, so the check costs one
//!   extra GEMM of absolute values;
//! - softmax rounds its max-subtracted exponentials to fp16 before summing them.
//!
//! Not modelled: piecewise-linear transcendental tables, 4-lane fp16 pre-summing, denormal
//! flushing, and the ×16 width-slice scaling.

use half::{f16, slice::HalfFloatSliceExt};
use mil::DType;
use rayon::prelude::*;

/// Values per chunk of an fp16 rounding pass (fits a stack buffer).
const CHUNK: usize = 2048;
/// Element count above which buffer-wide passes run on the rayon pool.
pub(crate) const PAR_THRESHOLD: usize = 1 << 16;
/// Magnitude at which the device's matmul/conv accumulator overflows (C24).
const DEVICE_ACCUMULATOR_LIMIT: f32 = 32768.0;

/// How an op's f32 result is turned into the value the device would produce.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Numerics {
    /// IEEE fp16 per op: compute in f32, round once to fp16 (RNE, overflow to ±inf).
    #[default]
    IeeeFp16,
    /// IEEE fp16 plus the device behaviours measured in `spec/ane.md` §8 (see module doc).
    DeviceObserved,
}

impl Numerics {
    /// True when a result of `dtype` is rounded to fp16 under this profile.
    pub fn rounds_to_fp16(self, dtype: DType) -> bool {
        match self {
            Numerics::IeeeFp16 => dtype == DType::Fp16,
            Numerics::DeviceObserved => dtype.is_float(),
        }
    }

    /// Turns an op's f32 result buffer of `dtype` into the values the profile produces.
    pub fn finish(self, dtype: DType, data: &mut [f32]) {
        if self.rounds_to_fp16(dtype) {
            round_to_fp16(data);
        }
        if self == Numerics::DeviceObserved && dtype.is_float() {
            for_each_par(data, |v| {
                if v.is_nan() {
                    *v = 0.0;
                }
            });
        }
    }

    /// Turns a program input or weight buffer of `dtype` into the values the device reads.
    pub fn admit_input(self, dtype: DType, data: &mut [f32]) {
        if self == Numerics::DeviceObserved && dtype.is_float() {
            for_each_par(data, |v| {
                if v.is_nan() {
                    *v = f32::INFINITY;
                }
            });
        }
        if self.rounds_to_fp16(dtype) {
            round_to_fp16(data);
        }
    }

    /// Magnitude at which a matmul/conv running sum overflows to ±inf, if the profile models it.
    pub fn accumulator_limit(self) -> Option<f32> {
        (self == Numerics::DeviceObserved).then_some(DEVICE_ACCUMULATOR_LIMIT)
    }

    /// True when softmax rounds its exponentials to fp16 before summing them.
    pub fn softmax_rounds_exponentials(self) -> bool {
        self == Numerics::DeviceObserved
    }
}

/// Rounds every value to the nearest fp16 (ties to even; beyond ±65504 to ±inf; NaN stays NaN).
///
/// Uses the CPU's F16C conversions when present (detected at run time), `half`'s otherwise,
/// and runs on the rayon pool for large buffers.
pub fn round_to_fp16(data: &mut [f32]) {
    if data.len() >= PAR_THRESHOLD {
        data.par_chunks_mut(CHUNK).for_each(round_chunk);
    } else {
        data.chunks_mut(CHUNK).for_each(round_chunk);
    }
}

/// Rounds one chunk of at most `CHUNK` values: the inlined F16C loop when the CPU has it,
/// otherwise `half`'s slice conversion.
fn round_chunk(chunk: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("f16c") && std::arch::is_x86_feature_detected!("avx") {
        // SAFETY: the CPU supports the `avx` and `f16c` features `f16c_round` is compiled for.
        unsafe { f16c_round(chunk) };
        return;
    }
    round_chunk_half(chunk);
}

/// Rounds 8 lanes at a time with `vcvtps2ph` (round to nearest even) and `vcvtph2ps`.
///
/// Compiled with the features enabled so the conversions inline into the loop; `half`'s own
/// runtime dispatch calls an out-of-line function per 8 values and runs at about half speed.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx,f16c")]
unsafe fn f16c_round(chunk: &mut [f32]) {
    use std::arch::x86_64::{
        _mm256_cvtph_ps, _mm256_cvtps_ph, _mm256_loadu_ps, _mm256_storeu_ps,
        _MM_FROUND_TO_NEAREST_INT,
    };
    let mut lanes = chunk.chunks_exact_mut(8);
    for c in &mut lanes {
        // SAFETY: `c` holds exactly 8 f32 values; unaligned loads and stores are used.
        unsafe {
            let v = _mm256_loadu_ps(c.as_ptr());
            let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(v);
            _mm256_storeu_ps(c.as_mut_ptr(), _mm256_cvtph_ps(h));
        }
    }
    round_chunk_half(lanes.into_remainder());
}

/// Rounds one chunk of at most `CHUNK` values through an fp16 stack buffer with `half`.
fn round_chunk_half(chunk: &mut [f32]) {
    let mut buf = [f16::ZERO; CHUNK];
    let half = &mut buf[..chunk.len()];
    half.convert_from_f32_slice(chunk);
    half.convert_to_f32_slice(chunk);
}

/// Applies `f` to every value, on the rayon pool for large buffers.
fn for_each_par(data: &mut [f32], f: impl Fn(&mut f32) + Sync + Send) {
    if data.len() >= PAR_THRESHOLD {
        data.par_iter_mut().for_each(f);
    } else {
        data.iter_mut().for_each(f);
    }
}
