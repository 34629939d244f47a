//! Throughput of the bf16 GEMM against the f32 one on the GPT-2 124M training-step shapes
//! (batch 4 × seq 64 = 256 tokens), and the total GEMM time of one training step.
//!
//! Run with `cargo run -p train --release --example gemm_bench [reps]`.

use std::time::Instant;

use runtime::emulator::gemm::{gemm_f32, gemm_f32_add, MatRef};
use train::native::bf16::gemm_bf16;

/// Tokens per step (batch 4 × sequence 64).
const TOKENS: usize = 256;
/// Model width.
const C: usize = 768;
/// Vocabulary.
const V: usize = 50257;
/// Transformer layers.
const LAYERS: usize = 12;

/// How an operand is stored: as the matrix itself, or as its transpose read through `.t()`.
#[derive(Clone, Copy)]
enum Layout {
    /// Row-major as used.
    Plain,
    /// Row-major transpose, viewed with `.t()`.
    Transposed,
}

/// One product of the step: `dst (m × n) (+)= a (m × k) · b (k × n)`.
struct Shape {
    /// Which layer product this is.
    name: &'static str,
    m: usize,
    k: usize,
    n: usize,
    a: Layout,
    b: Layout,
    accumulate: bool,
    /// Times this product runs per training step.
    per_step: usize,
}

/// Median seconds of one call of `first` and of `second` over `reps` timed calls each (after
/// one warm-up), alternating the two so that both see the same machine load.
fn median_secs_pair(reps: usize, mut first: impl FnMut(), mut second: impl FnMut()) -> (f64, f64) {
    let time = |call: &mut dyn FnMut()| {
        let start = Instant::now();
        call();
        start.elapsed().as_secs_f64()
    };
    first();
    second();
    let (mut a, mut b) = (Vec::with_capacity(reps), Vec::with_capacity(reps));
    for _ in 0..reps {
        a.push(time(&mut first));
        b.push(time(&mut second));
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    (median(a), median(b))
}

/// Deterministic values in [-1, 1).
fn values(len: usize, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

/// A view of `data` as a `rows × cols` matrix stored per `layout`.
fn view(data: &[f32], rows: usize, cols: usize, layout: Layout) -> MatRef<'_> {
    match layout {
        Layout::Plain => MatRef::row_major(data, rows, cols),
        Layout::Transposed => MatRef::row_major(data, cols, rows).t(),
    }
}

/// The step's products: forward, data gradient and weight gradient of the four layer
/// matmuls (`[out, in]` weights), then the tied LM head.
fn shapes() -> Vec<Shape> {
    use Layout::{Plain, Transposed};
    let layer = [
        ("qkv", C, 3 * C),
        ("attn_proj", C, C),
        ("fc", C, 4 * C),
        ("fc_proj", 4 * C, C),
    ];
    let mut out = Vec::new();
    for &(name, fan_in, fan_out) in &layer {
        let (m, per_step) = (TOKENS, LAYERS);
        out.push(Shape {
            name,
            m,
            k: fan_in,
            n: fan_out,
            a: Plain,
            b: Transposed,
            accumulate: false,
            per_step,
        });
        out.push(Shape {
            name,
            m,
            k: fan_out,
            n: fan_in,
            a: Plain,
            b: Plain,
            accumulate: false,
            per_step,
        });
        out.push(Shape {
            name,
            m: fan_out,
            k: m,
            n: fan_in,
            a: Transposed,
            b: Plain,
            accumulate: true,
            per_step,
        });
    }
    let (m, per_step) = (TOKENS, 1);
    out.push(Shape {
        name: "lm_head",
        m,
        k: C,
        n: V,
        a: Plain,
        b: Transposed,
        accumulate: false,
        per_step,
    });
    out.push(Shape {
        name: "lm_head",
        m,
        k: V,
        n: C,
        a: Plain,
        b: Plain,
        accumulate: false,
        per_step,
    });
    out.push(Shape {
        name: "lm_head",
        m: V,
        k: m,
        n: C,
        a: Transposed,
        b: Plain,
        accumulate: true,
        per_step,
    });
    out
}

/// The kind of product a shape is, from its layouts.
fn kind(shape: &Shape) -> &'static str {
    match (shape.a, shape.b) {
        (Layout::Plain, Layout::Transposed) => "fwd",
        (Layout::Plain, Layout::Plain) => "dgrad",
        _ => "wgrad",
    }
}

/// Seconds per call of the bf16 and the f32 GEMM on `shape`.
fn time_shape(shape: &Shape, reps: usize) -> (f64, f64) {
    let a_data = values(shape.m * shape.k, 1);
    let b_data = values(shape.k * shape.n, 2);
    let a = view(&a_data, shape.m, shape.k, shape.a);
    let b = view(&b_data, shape.k, shape.n, shape.b);
    let mut dst_bf16 = vec![0.0f32; shape.m * shape.n];
    let mut dst_f32 = vec![0.0f32; shape.m * shape.n];
    median_secs_pair(
        reps,
        || {
            assert!(
                gemm_bf16(&mut dst_bf16, a, b, shape.accumulate),
                "this CPU lacks AVX-512 BF16"
            );
        },
        || {
            if shape.accumulate {
                gemm_f32_add(&mut dst_f32, a, b, true);
            } else {
                gemm_f32(&mut dst_f32, a, b, true);
            }
        },
    )
}

fn main() {
    let reps: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(7);
    println!(
        "threads: {}, reps: {reps} (median)",
        rayon::current_num_threads()
    );
    println!(
        "{:<10} {:<6} {:>6} {:>6} {:>6}  {:>9} {:>8}  {:>9} {:>8}",
        "layer", "kind", "m", "k", "n", "bf16 ms", "GFLOP/s", "f32 ms", "GFLOP/s"
    );
    let (mut step_bf16, mut step_f32, mut step_flops) = (0.0, 0.0, 0.0);
    let mut json = Vec::new();
    for shape in shapes() {
        let (bf16, f32) = time_shape(&shape, reps);
        let flops = 2.0 * (shape.m * shape.k * shape.n) as f64;
        println!(
            "{:<10} {:<6} {:>6} {:>6} {:>6}  {:>9.3} {:>8.1}  {:>9.3} {:>8.1}",
            shape.name,
            kind(&shape),
            shape.m,
            shape.k,
            shape.n,
            bf16 * 1e3,
            flops / bf16 / 1e9,
            f32 * 1e3,
            flops / f32 / 1e9
        );
        step_bf16 += bf16 * shape.per_step as f64;
        step_f32 += f32 * shape.per_step as f64;
        step_flops += flops * shape.per_step as f64;
        json.push(format!(
            "{{\"layer\":\"{}\",\"kind\":\"{}\",\"m\":{},\"k\":{},\"n\":{},\"bf16_gflops\":{:.1},\"f32_gflops\":{:.1}}}",
            shape.name,
            kind(&shape),
            shape.m,
            shape.k,
            shape.n,
            flops / bf16 / 1e9,
            flops / f32 / 1e9
        ));
    }
    println!(
        "GPT-2 124M step GEMMs ({:.1} GFLOP): bf16 {:.3} s ({:.1} GFLOP/s), f32 {:.3} s ({:.1} GFLOP/s)",
        step_flops / 1e9,
        step_bf16,
        step_flops / step_bf16 / 1e9,
        step_f32,
        step_flops / step_f32 / 1e9
    );
    println!(
        "{{\"step_bf16_s\":{step_bf16:.4},\"step_f32_s\":{step_f32:.4},\"step_gflop\":{:.2},\"shapes\":[{}]}}",
        step_flops / 1e9,
        json.join(",")
    );
}
