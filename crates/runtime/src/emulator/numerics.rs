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

use cpu::Cpu;
use mil::DType;
use rayon::prelude::*;

/// Values per parallel task of an fp16 rounding pass.
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

/// Rounds every value to the nearest fp16 (ties to even; beyond ±65504 to ±inf; NaN stays NaN),
/// with the `cpu` crate's conversion at the process's level, on the rayon pool for large
/// buffers.
pub fn round_to_fp16(data: &mut [f32]) {
    let cpu = Cpu::active();
    if data.len() >= PAR_THRESHOLD {
        data.par_chunks_mut(CHUNK)
            .for_each(|c| cpu::convert::round_f16(cpu, c));
    } else {
        cpu::convert::round_f16(cpu, data);
    }
}

/// Applies `f` to every value, on the rayon pool for large buffers.
fn for_each_par(data: &mut [f32], f: impl Fn(&mut f32) + Sync + Send) {
    if data.len() >= PAR_THRESHOLD {
        data.par_iter_mut().for_each(f);
    } else {
        data.iter_mut().for_each(f);
    }
}
