//! Micro-benchmarks of the linear-layer kernels at every level this CPU has: the tiled
//! product (prefill) in GFLOP/s and the matrix-vector product (decode) in GB/s of weights,
//! on the shapes of Stories110M / GPT-2 124M, with fp16 and f32 weights. Prints JSON lines.
//!
//! `cargo run -p cpu --release --example kernel_bench -- [--threads 2] [--tokens 256]`

use cpu::linear::{linear, Out};
use cpu::{Cpu, Matrix, Pool, Precision};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let opt = |name: &str, default: usize| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (threads, tokens) = (opt("--threads", 2), opt("--tokens", 256));
    // (rows, cols): fused qkv, attention out, fused gate+up, down (Stories110M); GPT-2's fc.
    let shapes = [
        (2304, 768),
        (768, 768),
        (4096, 768),
        (768, 2048),
        (3072, 768),
    ];
    for cpu in Cpu::available() {
        let pool = Pool::with_cpu(cpu, threads);
        for precision in [Precision::F16, Precision::F32] {
            let (mut flops, mut gemm_s, mut bytes, mut gemv_s) = (0.0, 0.0, 0.0, 0.0);
            for &(rows, cols) in &shapes {
                let w: Vec<f32> = (0..rows * cols)
                    .map(|i| ((i * 7919) % 1000) as f32 * 1e-3 - 0.5)
                    .collect();
                let m = Matrix::new(&w, rows, cols, precision);
                let x: Vec<f32> = (0..tokens * cols)
                    .map(|i| ((i * 31) % 97) as f32 * 0.01)
                    .collect();
                let mut y = vec![0.0; tokens * rows];
                linear(&pool, &m, &x, None, &mut y, Out::Store);
                let t = Instant::now();
                let reps = 3;
                for _ in 0..reps {
                    linear(&pool, &m, &x, None, &mut y, Out::Store);
                }
                gemm_s += t.elapsed().as_secs_f64() / reps as f64;
                flops += 2.0 * (rows * cols * tokens) as f64;
                let mut v = vec![0.0; rows];
                let t = Instant::now();
                let reps = 50;
                for _ in 0..reps {
                    linear(&pool, &m, &x[..cols], None, &mut v, Out::Store);
                }
                gemv_s += t.elapsed().as_secs_f64() / reps as f64;
                bytes += m.bytes() as f64;
            }
            println!(
                "{{\"level\": \"{}\", \"threads\": {threads}, \"weights\": \"{}\", \"tokens\": {tokens}, \"tiles_gflop_s\": {:.1}, \"gemv_gb_s\": {:.1}}}",
                cpu,
                precision.name(),
                flops / gemm_s / 1e9,
                bytes / gemv_s / 1e9
            );
        }
    }
}
