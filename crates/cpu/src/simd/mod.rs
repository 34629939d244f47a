//! The vector operations every kernel is written in, one implementation per level, and the
//! [`kernel!`](crate::kernel) macro that instantiates a kernel once per level and picks the
//! instantiation at run time.
//!
//! A kernel is a generic function over [`Simd`]; the macro wraps it in one function per level
//! compiled with that level's target features, so the trait's operations inline into real
//! vector instructions. The portable and NEON levels both have 8 lanes, so the x86 test runs
//! of the portable instantiation exercise the same lane logic NEON runs.

mod portable;
pub use portable::Portable;

#[cfg(target_arch = "x86_64")]
mod x86;
#[cfg(target_arch = "x86_64")]
pub use x86::{Avx2, Avx512};

#[cfg(target_arch = "aarch64")]
mod neon;
#[cfg(target_arch = "aarch64")]
pub use neon::Neon;

/// Vector operations on f32 lanes. Implementations exist only for levels whose token can be
/// made on this CPU (inside [`kernel!`](crate::kernel)), so the operations are safe to call.
pub trait Simd: Copy + Send + Sync + 'static {
    /// f32 lanes per vector.
    const LANES: usize;
    /// Rows of the GEMM register tile (weights).
    const TILE_ROWS: usize;
    /// Columns of the GEMM register tile (tokens).
    const TILE_COLS: usize;
    /// Rows of the packed GEMM's micro-kernel (its columns are two vectors).
    const PACKED_ROWS: usize;
    /// A vector of `LANES` f32 values.
    type F: Copy;

    /// Every lane `x`.
    fn splat(self, x: f32) -> Self::F;
    /// Every lane zero.
    fn zero(self) -> Self::F {
        self.splat(0.0)
    }
    /// `LANES` values from `p`.
    ///
    /// # Safety
    /// `p` must be valid for `LANES` reads.
    unsafe fn load(self, p: *const f32) -> Self::F;
    /// Stores the lanes at `p`.
    ///
    /// # Safety
    /// `p` must be valid for `LANES` writes.
    unsafe fn store(self, p: *mut f32, v: Self::F);
    /// `LANES` fp16 bit patterns from `p`, widened exactly to f32.
    ///
    /// # Safety
    /// `p` must be valid for `LANES` reads.
    unsafe fn load_f16(self, p: *const u16) -> Self::F;
    /// Stores the lanes at `p` as fp16 bit patterns, rounded to nearest even (overflow to
    /// ±inf, NaN kept).
    ///
    /// # Safety
    /// `p` must be valid for `LANES` writes.
    unsafe fn store_f16(self, p: *mut u16, v: Self::F);
    /// `a + b`.
    fn add(self, a: Self::F, b: Self::F) -> Self::F;
    /// `a − b`.
    fn sub(self, a: Self::F, b: Self::F) -> Self::F;
    /// `a · b`.
    fn mul(self, a: Self::F, b: Self::F) -> Self::F;
    /// `a · b + c`, fused (one rounding) where the level has FMA; two roundings on portable.
    fn fma(self, a: Self::F, b: Self::F, c: Self::F) -> Self::F;
    /// Lane-wise maximum (which operand a NaN yields is level-specific).
    fn max(self, a: Self::F, b: Self::F) -> Self::F;
    /// The sum of the lanes (the order of the additions is level-specific).
    fn sum(self, v: Self::F) -> f32;
    /// The largest lane.
    fn hmax(self, v: Self::F) -> f32;
    /// Asks for the cache line holding `p` in the L2 cache; never faults, whatever `p` is.
    fn prefetch(self, p: *const u8);
}

/// Element types a kernel can read as f32 vectors: f32 itself, or fp16 bit patterns (`u16`)
/// widened on load.
pub trait Element: Copy + Default + PartialEq + std::fmt::Debug + Send + Sync + 'static {
    /// True for f32 itself.
    const F32: bool;
    /// The slice as f32 values, when the elements are f32.
    fn as_f32(s: &[Self]) -> Option<&[f32]>;
    /// `LANES` elements from `p` as f32.
    ///
    /// # Safety
    /// `p` must be valid for `S::LANES` reads.
    unsafe fn load<S: Simd>(s: S, p: *const Self) -> S::F;
    /// The element as f32.
    fn widen(self) -> f32;
}

impl Element for f32 {
    const F32: bool = true;

    fn as_f32(s: &[f32]) -> Option<&[f32]> {
        Some(s)
    }

    #[inline(always)]
    unsafe fn load<S: Simd>(s: S, p: *const f32) -> S::F {
        // SAFETY: the caller's contract.
        unsafe { s.load(p) }
    }

    #[inline(always)]
    fn widen(self) -> f32 {
        self
    }
}

impl Element for u16 {
    const F32: bool = false;

    fn as_f32(_: &[u16]) -> Option<&[f32]> {
        None
    }

    #[inline(always)]
    unsafe fn load<S: Simd>(s: S, p: *const u16) -> S::F {
        // SAFETY: the caller's contract.
        unsafe { s.load_f16(p) }
    }

    #[inline(always)]
    fn widen(self) -> f32 {
        half::f16::from_bits(self).to_f32()
    }
}

/// Defines a function `$name(cpu: Cpu, args…)` that runs the generic body with `$s` bound
/// to the [`Simd`](crate::simd::Simd) token of `cpu`'s level. Each level's instantiation is
/// compiled with that level's target features; bodies that never touch `$s` are plain Rust
/// the compiler vectorizes for each level. An `unsafe fn` passes its contract on to the body.
#[macro_export]
macro_rules! kernel {
    (
        $(#[$meta:meta])*
        $vis:vis unsafe fn $($rest:tt)*
    ) => {
        $crate::kernel!(@emit [$(#[$meta])*] [$vis] [unsafe] $($rest)*);
    };
    (
        $(#[$meta:meta])*
        $vis:vis fn $($rest:tt)*
    ) => {
        $crate::kernel!(@emit [$(#[$meta])*] [$vis] [] $($rest)*);
    };
    (
        @emit [$($meta:tt)*] [$vis:vis] [$($unsafety:tt)*]
        $name:ident $(<$($g:ident: $gb:path),* $(,)?>)?
            ($s:ident $(, $arg:ident: $ty:ty)* $(,)?) $(-> $ret:ty)? $body:block
    ) => {
        $($meta)*
        #[allow(clippy::too_many_arguments, unused_unsafe)]
        $vis $($unsafety)* fn $name $(<$($g: $gb),*>)? (cpu: $crate::Cpu $(, $arg: $ty)*) $(-> $ret)? {
            #[inline(always)]
            #[allow(unused_variables, clippy::too_many_arguments)]
            $($unsafety)* fn imp<S: $crate::simd::Simd, $($($g: $gb),*)?>($s: S $(, $arg: $ty)*) $(-> $ret)?
                $body
            match cpu.level() {
                #[cfg(target_arch = "x86_64")]
                $crate::Level::Avx2 => {
                    #[target_feature(enable = "avx2,fma,f16c")]
                    #[allow(clippy::too_many_arguments, unused_unsafe)]
                    $($unsafety)* fn wrap<$($($g: $gb),*)?>($($arg: $ty),*) $(-> $ret)? {
                        // SAFETY: this function only runs where the CPU has the level; the
                        // rest of the contract is the caller's.
                        unsafe { imp($crate::simd::Avx2::new_unchecked() $(, $arg)*) }
                    }
                    // SAFETY: a `Cpu` at this level exists only when the CPU supports it.
                    unsafe { wrap($($arg),*) }
                }
                #[cfg(target_arch = "x86_64")]
                $crate::Level::Avx512 => {
                    #[target_feature(enable = "avx512f,avx2,fma,f16c")]
                    #[allow(clippy::too_many_arguments, unused_unsafe)]
                    $($unsafety)* fn wrap<$($($g: $gb),*)?>($($arg: $ty),*) $(-> $ret)? {
                        // SAFETY: as for AVX2.
                        unsafe { imp($crate::simd::Avx512::new_unchecked() $(, $arg)*) }
                    }
                    // SAFETY: as for AVX2.
                    unsafe { wrap($($arg),*) }
                }
                #[cfg(target_arch = "aarch64")]
                $crate::Level::Neon => {
                    #[target_feature(enable = "neon")]
                    #[allow(clippy::too_many_arguments, unused_unsafe)]
                    $($unsafety)* fn wrap<$($($g: $gb),*)?>($($arg: $ty),*) $(-> $ret)? {
                        // SAFETY: as for AVX2.
                        unsafe { imp($crate::simd::Neon::new_unchecked() $(, $arg)*) }
                    }
                    // SAFETY: as for AVX2.
                    unsafe { wrap($($arg),*) }
                }
                // Portable, and levels of other architectures (no `Cpu` can hold those).
                // SAFETY: the caller's contract, for an `unsafe fn`.
                _ => unsafe { imp($crate::simd::Portable $(, $arg)*) },
            }
        }
    };
}
