//! The matrix products at every level this CPU has, against an f64 reference: bf16 (over
//! bf16-rounded inputs; AVX-512 BF16 dot products where the CPU has them, f32 FMA tiles
//! everywhere else, so the bf16 path is tested on every CPU) and f32. Every operand layout,
//! ragged edges, odd k, accumulate and overwrite, NaN/inf, rounding, and thread-count
//! independence.

use cpu::matmul::{matmul, Arith, MatRef};
use cpu::Cpu;
use half::bf16;

/// Unit roundoff of f32.
const U: f64 = 1.0 / (1u64 << 24) as f64;

/// The levels this CPU has, saying which bf16 path each runs (so a run's log shows what was
/// tested), and checking that the native bf16 kernel is among them exactly when the CPU has
/// its instructions.
fn levels() -> Vec<Cpu> {
    let all = Cpu::available();
    for cpu in &all {
        let path = if cpu.bf16_dot() {
            "AVX-512 BF16 dot products"
        } else {
            "bf16-rounded inputs, f32 FMA tiles"
        };
        eprintln!("{cpu}: bf16 products by {path}");
    }
    #[cfg(target_arch = "x86_64")]
    {
        let native = is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512bf16");
        assert_eq!(all.iter().any(|c| c.bf16_dot()), native);
    }
    all
}

/// `dst (+)= a · b` with bf16-rounded inputs at level `cpu`, on the rayon pool.
fn gemm_bf16(cpu: Cpu, dst: &mut [f32], a: MatRef<'_>, b: MatRef<'_>, accumulate: bool) {
    matmul(cpu, dst, a, b, accumulate, Arith::Bf16, true);
}

/// Deterministic values in [-1, 1), multiples of 2^-23 (never denormal).
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

/// How a test operand is laid out in memory.
#[derive(Clone, Copy, Debug)]
enum Layout {
    /// Row-major.
    Rows,
    /// Column-major (a row-major transpose read through `.t()`).
    Cols,
    /// Neither stride is one: every other element of every other row of a wider buffer.
    Strided,
}

const LAYOUTS: [Layout; 3] = [Layout::Rows, Layout::Cols, Layout::Strided];

/// An owned matrix in some layout.
struct Operand {
    data: Vec<f32>,
    rows: usize,
    cols: usize,
    layout: Layout,
}

impl Operand {
    /// A `rows × cols` matrix of `values(…, seed)` stored per `layout`.
    fn new(rows: usize, cols: usize, layout: Layout, seed: u64) -> Self {
        let len = match layout {
            Layout::Rows | Layout::Cols => rows * cols,
            Layout::Strided => (2 * rows + 1) * (2 * cols + 1),
        };
        Operand {
            data: values(len, seed),
            rows,
            cols,
            layout,
        }
    }

    /// The strided view of the matrix.
    fn view(&self) -> MatRef<'_> {
        let (r, c) = (self.rows, self.cols);
        match self.layout {
            Layout::Rows => MatRef::row_major(&self.data, r, c),
            Layout::Cols => MatRef::row_major(&self.data, c, r).t(),
            Layout::Strided => MatRef {
                data: &self.data,
                rows: r,
                cols: c,
                row_stride: 4 * c + 2,
                col_stride: 2,
            },
        }
    }

    /// Sets element (i, j).
    fn set(&mut self, i: usize, j: usize, value: f32) {
        let v = self.view();
        let idx = i * v.row_stride + j * v.col_stride;
        self.data[idx] = value;
    }
}

/// Element (i, j) of a view, rounded to bf16 when `round`, widened to f64.
fn at(v: MatRef<'_>, i: usize, j: usize, round: bool) -> f64 {
    let x = v.data[i * v.row_stride + j * v.col_stride];
    if round {
        bf16::from_f32(x).to_f64()
    } else {
        f64::from(x)
    }
}

/// `c0 + a · b` in f64 over bf16-rounded inputs, and the error allowed for an f32 sum of each
/// entry: `(k + 2) · 2u · (|c0| + Σ|a||b|)`.
fn reference(a: MatRef<'_>, b: MatRef<'_>, c0: Option<&[f32]>) -> (Vec<f64>, Vec<f64>) {
    reference_in(a, b, c0, true)
}

/// [`reference`] over the inputs rounded to bf16 or not.
fn reference_in(
    a: MatRef<'_>,
    b: MatRef<'_>,
    c0: Option<&[f32]>,
    round: bool,
) -> (Vec<f64>, Vec<f64>) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    let mut want = vec![0.0; m * n];
    let mut bound = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            let start = c0.map_or(0.0, |c| f64::from(c[i * n + j]));
            let (mut sum, mut mag) = (start, start.abs());
            for p in 0..k {
                let prod = at(a, i, p, round) * at(b, p, j, round);
                sum += prod;
                mag += prod.abs();
            }
            want[i * n + j] = sum;
            bound[i * n + j] = (k + 2) as f64 * 2.0 * U * mag;
        }
    }
    (want, bound)
}

/// Asserts `got` matches `want` within `bound`, NaN for NaN and infinities exactly.
fn check(got: &[f32], want: &[f64], bound: &[f64], what: &str) {
    for (idx, ((&g, &w), &e)) in got.iter().zip(want).zip(bound).enumerate() {
        let g = f64::from(g);
        let ok = if w.is_nan() {
            g.is_nan()
        } else if w.is_infinite() {
            g == w
        } else {
            (g - w).abs() <= e
        };
        assert!(ok, "{what}: entry {idx}: got {g}, want {w} ± {e}");
    }
}

/// Runs `dst = a · b` (or `dst += a · b` over a random start) at every level in both
/// arithmetics and checks it against the reference; an overwrite starts from a NaN-filled
/// `dst`.
fn run_and_check(a: MatRef<'_>, b: MatRef<'_>, accumulate: bool, what: &str) {
    let (m, n) = (a.rows, b.cols);
    let start = if accumulate {
        values(m * n, 99)
    } else {
        vec![f32::NAN; m * n]
    };
    for cpu in Cpu::available() {
        for arith in [Arith::Bf16, Arith::F32] {
            let mut dst = start.clone();
            matmul(cpu, &mut dst, a, b, accumulate, arith, true);
            let c0 = accumulate.then_some(&start[..]);
            let (want, bound) = reference_in(a, b, c0, arith == Arith::Bf16);
            check(&dst, &want, &bound, &format!("{what} {cpu} {arith:?}"));
        }
    }
}

#[test]
fn small_products_match_reference_in_every_layout_and_ragged_size() {
    let sizes = [1, 7, 13, 33, 65];
    for &m in &sizes {
        for &k in &sizes {
            for &n in &sizes {
                for a_layout in LAYOUTS {
                    for b_layout in LAYOUTS {
                        let a = Operand::new(m, k, a_layout, 1);
                        let b = Operand::new(k, n, b_layout, 2);
                        let what = format!("{m}x{k}x{n} a {a_layout:?} b {b_layout:?}");
                        run_and_check(a.view(), b.view(), (m + k + n) % 2 == 0, &what);
                    }
                }
            }
        }
    }
}

#[test]
fn large_products_match_reference_across_cache_blocks_and_threads() {
    // Small m shares packed A; large m shares packed B. k spans several cache blocks and ends
    // odd; m and n are not multiples of the tile; wide n gives tasks of several B panels; the
    // longest k is packed in more than one slab.
    for &(m, k, n) in &[
        (300, 601, 100),
        (700, 301, 130),
        (64, 1025, 50),
        (24, 4401, 70),
        (40, 99, 1500),
    ] {
        for a_layout in [Layout::Rows, Layout::Cols] {
            for b_layout in [Layout::Rows, Layout::Cols] {
                let a = Operand::new(m, k, a_layout, 3);
                let b = Operand::new(k, n, b_layout, 4);
                for accumulate in [false, true] {
                    let what =
                        format!("{m}x{k}x{n} a {a_layout:?} b {b_layout:?} acc {accumulate}");
                    run_and_check(a.view(), b.view(), accumulate, &what);
                }
            }
        }
    }
}

#[test]
fn overwrite_ignores_nan_in_dst_and_accumulate_adds_to_it() {
    let a = Operand::new(9, 5, Layout::Rows, 5);
    let b = Operand::new(5, 50, Layout::Cols, 6);
    for cpu in levels() {
        let mut dst = vec![f32::NAN; 9 * 50];
        gemm_bf16(cpu, &mut dst, a.view(), b.view(), false);
        let (want, bound) = reference(a.view(), b.view(), None);
        check(&dst, &want, &bound, "overwrite");
        let before = dst.clone();
        gemm_bf16(cpu, &mut dst, a.view(), b.view(), true);
        let (want, bound) = reference(a.view(), b.view(), Some(&before));
        check(&dst, &want, &bound, "accumulate");
        assert!(
            dst.iter().zip(&before).any(|(x, y)| x != y),
            "{cpu}: accumulate changed nothing"
        );
    }
}

#[test]
fn empty_k_overwrites_with_zero_and_accumulate_keeps_dst() {
    let (a, b) = (vec![0.0f32; 0], vec![0.0f32; 0]);
    let (a, b) = (MatRef::row_major(&a, 2, 0), MatRef::row_major(&b, 0, 3));
    for cpu in levels() {
        for arith in [Arith::Bf16, Arith::F32] {
            let mut dst = vec![f32::NAN; 6];
            matmul(cpu, &mut dst, a, b, false, arith, true);
            assert!(dst.iter().all(|&x| x == 0.0), "{cpu} {arith:?}");
            let mut dst = vec![1.5f32; 6];
            matmul(cpu, &mut dst, a, b, true, arith, true);
            assert!(dst.iter().all(|&x| x == 1.5), "{cpu} {arith:?}");
        }
    }
}

#[test]
fn nan_and_infinity_propagate_only_where_they_belong() {
    // A NaN whose payload sits only in the low 16 bits becomes infinity if truncated.
    let low_nan = f32::from_bits(0x7f80_0001);
    for a_layout in LAYOUTS {
        for b_layout in LAYOUTS {
            let (m, k, n) = (20, 37, 53);
            let mut a = Operand::new(m, k, a_layout, 7);
            let mut b = Operand::new(k, n, b_layout, 8);
            a.set(3, 36, low_nan);
            a.set(11, 0, f32::INFINITY);
            b.set(20, 50, f32::NEG_INFINITY);
            b.set(5, 17, f32::NAN);
            let what = format!("nan/inf a {a_layout:?} b {b_layout:?}");
            run_and_check(a.view(), b.view(), false, &what);
            for cpu in levels() {
                let mut dst = vec![0.0f32; m * n];
                gemm_bf16(cpu, &mut dst, a.view(), b.view(), false);
                assert!(
                    dst[3 * n..4 * n].iter().all(|x| x.is_nan()),
                    "{what} {cpu}: NaN row lost"
                );
                assert!(
                    (0..m).all(|i| dst[i * n + 17].is_nan()),
                    "{what} {cpu}: NaN column lost"
                );
                assert!(
                    dst[11 * n].is_infinite() && dst[50].is_infinite(),
                    "{what} {cpu}: infinity lost"
                );
                assert!(
                    dst[n + 1].is_finite(),
                    "{what} {cpu}: unrelated entry not finite"
                );
            }
        }
    }
}

#[test]
fn inputs_round_to_nearest_even_bf16() {
    // bf16 keeps 7 mantissa bits: near 1 its spacing is 2^-7.
    let s = 1.0 / 128.0f32;
    let cases = [
        (1.0 + 0.75 * s, 1.0 + s), // above the midpoint: up (truncation would give 1)
        (1.0 + 0.5 * s, 1.0),      // tie, rounds to the even mantissa 0
        (1.0 + 1.5 * s, 1.0 + 2.0 * s), // tie, rounds to the even mantissa 2
        (-(1.0 + 0.25 * s), -1.0), // below the midpoint: down
        (f32::MAX, f32::INFINITY), // rounds past the largest bf16
    ];
    for (input, want) in cases {
        for layout in LAYOUTS {
            let mut a = Operand::new(1, 1, layout, 9);
            a.set(0, 0, input);
            let one = [1.0f32];
            for cpu in levels() {
                let mut dst = [0.0f32];
                gemm_bf16(
                    cpu,
                    &mut dst,
                    a.view(),
                    MatRef::row_major(&one, 1, 1),
                    false,
                );
                assert_eq!(dst[0], want, "{input} in {layout:?} {cpu}");
            }
        }
    }
}

#[test]
fn results_are_bit_identical_for_any_thread_count() {
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("pool");
    let three = rayon::ThreadPoolBuilder::new()
        .num_threads(3)
        .build()
        .expect("pool");
    for &(m, k, n, a_layout, b_layout) in &[
        (256, 768, 300, Layout::Rows, Layout::Cols),
        (256, 1000, 200, Layout::Rows, Layout::Rows),
        (1000, 256, 200, Layout::Cols, Layout::Rows),
        (64, 4500, 200, Layout::Rows, Layout::Rows),
    ] {
        let a = Operand::new(m, k, a_layout, 10);
        let b = Operand::new(k, n, b_layout, 11);
        let start = values(m * n, 12);
        for cpu in levels() {
            let run = |accumulate: bool| {
                let mut dst = start.clone();
                gemm_bf16(cpu, &mut dst, a.view(), b.view(), accumulate);
                dst
            };
            for accumulate in [false, true] {
                let default = run(accumulate);
                let single = one.install(|| run(accumulate));
                let triple = three.install(|| run(accumulate));
                let same = |x: &[f32]| {
                    x.iter()
                        .zip(&default)
                        .all(|(p, q)| p.to_bits() == q.to_bits())
                };
                assert!(
                    same(&single),
                    "{m}x{k}x{n} {cpu}: 1 thread differs from the default pool"
                );
                assert!(
                    same(&triple),
                    "{m}x{k}x{n} {cpu}: 3 threads differ from the default pool"
                );
            }
        }
    }
}
