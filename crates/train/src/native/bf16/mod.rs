//! bf16 GEMM with f32 accumulation (AVX-512 BF16): inputs rounded to bf16 while packing into
//! k-pair-interleaved panels, a register-blocked `vdpbf16ps` micro-kernel, rayon threads.

#[cfg(target_arch = "x86_64")]
mod driver;
#[cfg(target_arch = "x86_64")]
mod kernel;
#[cfg(target_arch = "x86_64")]
mod pack;

use runtime::emulator::gemm::MatRef;

/// Proof that this CPU has the AVX-512 features the kernels use.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
struct Isa(());

#[cfg(target_arch = "x86_64")]
impl Isa {
    /// `Some` when the CPU supports avx512f, avx512bw and avx512bf16.
    fn detect() -> Option<Isa> {
        let ok = is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512bf16");
        ok.then_some(Isa(()))
    }
}

/// True when this CPU runs [`gemm_bf16`] (AVX-512 F, BW and BF16 on x86-64).
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        Isa::detect().is_some()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `dst (m × n) = a · b` (`+=` when `accumulate`) with bf16-rounded inputs; false when this CPU
/// cannot (the caller then uses f32).
///
/// `dst` is row-major; `a` (m × k) and `b` (k × n) may have any strides. Each input is rounded
/// to bf16 (nearest-even, NaN stays NaN, denormals flush to zero) and products are summed in
/// f32 in a fixed order, so the result is the same for any number of threads.
///
/// # Panics
/// If the views' shapes disagree or address memory outside their buffers (a caller bug).
pub fn gemm_bf16(dst: &mut [f32], a: MatRef<'_>, b: MatRef<'_>, accumulate: bool) -> bool {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert!(
        b.rows == k && dst.len() == m * n,
        "gemm_bf16: shape mismatch"
    );
    assert!(
        a.in_bounds() && b.in_bounds(),
        "gemm_bf16: view out of bounds"
    );
    #[cfg(target_arch = "x86_64")]
    {
        let Some(isa) = Isa::detect() else {
            return false;
        };
        if m == 0 || n == 0 {
            return true;
        }
        if k == 0 {
            if !accumulate {
                dst.fill(0.0);
            }
            return true;
        }
        driver::gemm(isa, dst, a, b, accumulate);
        true
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = accumulate;
        false
    }
}
