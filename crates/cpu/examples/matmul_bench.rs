//! Throughput of the matrix products on the GPT-2 124M training-step shapes (batch 4 × seq
//! 64 = 256 tokens) at every level this CPU has: bf16 and f32 as `matmul` runs them, and f32
//! through each engine (the `gemm` crate, this crate's packed micro-kernel) to compare them;
//! and the total product time of one training step for each.
//!
//! Run with `cargo run -p cpu --release --example matmul_bench [reps]`.

use std::time::Instant;

use cpu::matmul::{matmul, matmul_gemm_crate, matmul_packed, Arith, MatRef};
use cpu::Cpu;

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

/// Median seconds of one call of each function over `reps` timed calls (after one warm-up),
/// taking turns so that all see the same machine load.
fn median_secs(reps: usize, calls: &mut [&mut dyn FnMut()]) -> Vec<f64> {
    let mut times = vec![Vec::with_capacity(reps); calls.len()];
    for call in calls.iter_mut() {
        call();
    }
    for _ in 0..reps {
        for (call, t) in calls.iter_mut().zip(&mut times) {
            let start = Instant::now();
            call();
            t.push(start.elapsed().as_secs_f64());
        }
    }
    times
        .into_iter()
        .map(|mut v| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        })
        .collect()
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

/// Seconds per call on `shape` at level `cpu`: bf16 and f32 as `matmul` runs them, f32 by
/// the `gemm` crate, f32 by the packed micro-kernel.
fn time_shape(cpu: Cpu, shape: &Shape, reps: usize) -> Vec<f64> {
    let a_data = values(shape.m * shape.k, 1);
    let b_data = values(shape.k * shape.n, 2);
    let a = view(&a_data, shape.m, shape.k, shape.a);
    let b = view(&b_data, shape.k, shape.n, shape.b);
    let acc = shape.accumulate;
    let mut d = [
        vec![0.0f32; shape.m * shape.n],
        vec![0.0f32; shape.m * shape.n],
        vec![0.0f32; shape.m * shape.n],
        vec![0.0f32; shape.m * shape.n],
    ];
    let [d0, d1, d2, d3] = &mut d;
    median_secs(
        reps,
        &mut [
            &mut || matmul(cpu, d0, a, b, acc, Arith::Bf16, true),
            &mut || matmul(cpu, d1, a, b, acc, Arith::F32, true),
            &mut || matmul_gemm_crate(d2, a, b, acc, true),
            &mut || matmul_packed(cpu, d3, a, b, acc, Arith::F32, true),
        ],
    )
}

fn main() {
    let reps: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    println!(
        "threads: {}, reps: {reps} (median)",
        rayon::current_num_threads()
    );
    for cpu in Cpu::available() {
        println!("== {cpu}");
        println!(
            "{:<10} {:<6} {:>6} {:>6} {:>6}  {:>9} {:>9} {:>9} {:>9}  (GFLOP/s)",
            "layer", "kind", "m", "k", "n", "bf16", "f32", "gemm f32", "packed"
        );
        let mut step = [0.0f64; 4];
        let mut step_flops = 0.0;
        for shape in shapes() {
            let t = time_shape(cpu, &shape, reps);
            let flops = 2.0 * (shape.m * shape.k * shape.n) as f64;
            println!(
                "{:<10} {:<6} {:>6} {:>6} {:>6}  {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
                shape.name,
                kind(&shape),
                shape.m,
                shape.k,
                shape.n,
                flops / t[0] / 1e9,
                flops / t[1] / 1e9,
                flops / t[2] / 1e9,
                flops / t[3] / 1e9
            );
            for (s, t) in step.iter_mut().zip(&t) {
                *s += t * shape.per_step as f64;
            }
            step_flops += flops * shape.per_step as f64;
        }
        println!(
            "{{\"level\":\"{cpu}\",\"step_gflop\":{:.2},\"step_bf16_s\":{:.4},\"step_f32_s\":{:.4},\"step_f32_gemm_crate_s\":{:.4},\"step_f32_packed_s\":{:.4}}}",
            step_flops / 1e9,
            step[0],
            step[1],
            step[2],
            step[3]
        );
    }
}
