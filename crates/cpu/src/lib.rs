//! Host compute kernels for Orion: matrix-vector and matrix products over f32, fp16 and bf16,
//! attention over f32/fp16 caches, norms, activations, rotary embeddings, conversions, and
//! the optimizer's elementwise passes; the thread pool that runs them.
//!
//! Every kernel is one generic source over [`simd::Simd`], instantiated per instruction-set
//! [`Level`] (x86-64 AVX-512, x86-64 AVX2+FMA+F16C, aarch64 NEON, portable) and chosen at run
//! time through a [`Cpu`] handle: [`Cpu::active`] (the best level, or the one `ORION_CPU`
//! forces) for programs, any of [`Cpu::available`] for tests. Slices in, slices out: nothing
//! here knows about models or MIL.

pub mod activation;
pub mod attention;
#[cfg(target_arch = "x86_64")]
mod bf16;
pub mod convert;
mod error;
mod gemm;
pub mod gemv;
mod level;
pub mod linear;
pub mod matmul;
pub mod matrix;
pub mod norm;
pub mod optim;
mod packed;
pub mod probe;
pub mod rope;
pub mod simd;
pub mod threads;
pub mod vector;

pub use error::{Error, Result};
pub use level::{Cpu, Level, ENV};
pub use matrix::{Matrix, Precision};
pub use threads::Pool;
