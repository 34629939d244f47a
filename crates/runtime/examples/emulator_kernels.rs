//! Micro-benchmark of the emulator's kernels; prints one JSON object.
//!
//! `cargo run -p runtime --release --example emulator_kernels`

use std::hint::black_box;
use std::time::Instant;

use mil::DType;
use runtime::emulator::gemm::{gemm_f32, MatRef};
use runtime::emulator::*;

/// Median seconds per call of `f` over `reps` timed runs after one warm-up.
fn time(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut t: Vec<f64> = (0..reps)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[reps / 2]
}

/// A named kernel call to time.
type Bench<'a> = (&'static str, Box<dyn FnMut() + 'a>);

/// An fp16 tensor of `shape` with values spread over [-1, 1).
fn tensor(shape: &[usize]) -> Tensor {
    let n = shape.iter().product();
    let data = (0..n)
        .map(|i| ((i * 7919) % 2000) as f32 / 1000.0 - 1.0)
        .collect();
    Tensor::new(DType::Fp16, shape, data).expect("shape matches data")
}

/// GEMM throughput: the raw f32 GEMM, fp16 matmul and a linear-layer-sized 1×1 conv.
fn bench_gemm(nx: Numerics, rows: &mut Vec<String>) {
    for (m, k, n) in [(768, 768, 64), (3072, 768, 256), (256, 768, 3072)] {
        let a = tensor(&[m, k]);
        let b = tensor(&[k, n]);
        let mut c = vec![0.0f32; m * n];
        let flops = 2.0 * (m * k * n) as f64;
        let raw = time(15, || {
            gemm_f32(
                &mut c,
                MatRef::row_major(&a.data, m, k),
                MatRef::row_major(&b.data, k, n),
                true,
            )
        });
        let op = time(15, || {
            black_box(matmul(&a, &b, false, false, nx).expect("shapes agree"));
        });
        rows.push(format!(
            "{{\"kernel\":\"gemm_f32\",\"m\":{m},\"k\":{k},\"n\":{n},\"ms\":{:.3},\"gflops\":{:.1}}}",
            raw * 1e3,
            flops / raw / 1e9
        ));
        rows.push(format!(
            "{{\"kernel\":\"matmul_fp16\",\"m\":{m},\"k\":{k},\"n\":{n},\"ms\":{:.3},\"gflops\":{:.1}}}",
            op * 1e3,
            flops / op / 1e9
        ));
    }
    for (cin, cout, s) in [(768, 3072, 256), (768, 768, 16)] {
        let x = tensor(&[1, cin, 1, s]);
        let w = PackedWeight::new(tensor(&[cout, cin, 1, 1])).expect("rank-4 weight");
        let t = time(15, || {
            black_box(conv(&x, &w, &ConvParams::default(), nx).expect("shapes agree"));
        });
        rows.push(format!(
            "{{\"kernel\":\"conv1x1_fp16\",\"cin\":{cin},\"cout\":{cout},\"seq\":{s},\"ms\":{:.3},\"gflops\":{:.1}}}",
            t * 1e3,
            2.0 * (cin * cout * s) as f64 / t / 1e9
        ));
    }
}

/// Elementwise, softmax and reduction throughput on a `[1, 1024, 1, 1024]` tensor.
fn bench_elementwise(nx: Numerics, rows: &mut Vec<String>) {
    let big = tensor(&[1, 1024, 1, 1024]);
    let bias = tensor(&[1, 1024, 1, 1]);
    let elems = big.len() as f64;
    let mut buf = big.data.clone();
    let cases: Vec<Bench> = vec![
        (
            "round_to_fp16",
            Box::new(|| round_to_fp16(black_box(&mut buf))),
        ),
        (
            "add_same",
            Box::new(|| drop(black_box(binary(BinaryOp::Add, &big, &big, nx)))),
        ),
        (
            "add_channel_bias",
            Box::new(|| drop(black_box(binary(BinaryOp::Add, &big, &bias, nx)))),
        ),
        (
            "exp",
            Box::new(|| drop(black_box(unary(UnaryOp::Exp, &big, nx)))),
        ),
        (
            "softmax_last",
            Box::new(|| drop(black_box(softmax(&big, -1, nx)))),
        ),
        (
            "softmax_channel",
            Box::new(|| drop(black_box(softmax(&big, 1, nx)))),
        ),
        (
            "reduce_mean_channel",
            Box::new(|| {
                drop(black_box(reduce(
                    ReduceOp::Mean,
                    &big,
                    Some(&[1]),
                    true,
                    nx,
                )))
            }),
        ),
    ];
    for (name, mut f) in cases {
        let t = time(21, &mut f);
        rows.push(format!(
            "{{\"kernel\":\"{name}\",\"elements\":{elems},\"ms\":{:.3},\"gelem_per_s\":{:.2}}}",
            t * 1e3,
            elems / t / 1e9
        ));
    }
}

fn main() {
    let nx = Numerics::IeeeFp16;
    let mut rows = Vec::new();
    bench_gemm(nx, &mut rows);
    bench_elementwise(nx, &mut rows);
    println!(
        "{{\"threads\":{},\"results\":[\n  {}\n]}}",
        rayon::current_num_threads(),
        rows.join(",\n  ")
    );
}
