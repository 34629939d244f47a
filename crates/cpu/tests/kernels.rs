//! Every kernel at every level this CPU has, against naive f64 loops (and `half` for the
//! fp16 conversions), and every level against the portable one.

use cpu::attention::{self, Shape};
use cpu::linear::{self, Out};
use cpu::{activation, convert, gemv, norm, rope, vector, Cpu, Level, Matrix, Pool, Precision};

/// Deterministic pseudo-random normal-ish values (sum of uniforms), scaled.
fn values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut uniform = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32
    };
    (0..n)
        .map(|_| ((0..4).map(|_| uniform()).sum::<f32>() - 2.0) * scale)
        .collect()
}

/// Largest `|a − b|` over the largest `|b|`.
fn rel_err(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    let scale = b.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-30);
    let diff = a
        .iter()
        .zip(b)
        .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
    diff / scale
}

fn round_f16(w: &[f32]) -> Vec<f32> {
    w.iter().map(|&v| half::f16::from_f32(v).to_f32()).collect()
}

fn to_bits(v: &[f32]) -> Vec<u16> {
    v.iter()
        .map(|&x| half::f16::from_f32(x).to_bits())
        .collect()
}

/// The levels to test: every one this CPU has (portable always).
fn levels() -> Vec<Cpu> {
    let all = Cpu::available();
    assert_eq!(all[0].level(), Level::Portable);
    all
}

/// f32 values with the fp16 edge cases: ties both ways, overflow, subnormals, underflow,
/// infinities, NaN, negative zero.
fn specials() -> Vec<f32> {
    let mut v = vec![
        1.0 + 2f32.powi(-11),
        1.0 + 3.0 * 2f32.powi(-11),
        65504.0,
        65519.0,
        65520.0,
        -1e6,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        2f32.powi(-20),
        2f32.powi(-25),
        2f32.powi(-26),
        -0.0,
        0.1,
        -3.3e-5,
    ];
    v.extend(values(50, 5, 300.0));
    v
}

#[test]
fn fp16_narrowing_and_widening_match_the_half_crate_bit_for_bit_at_every_level() {
    let src = specials();
    let want = to_bits(&src);
    for cpu in levels() {
        for n in [0, 1, 7, 8, 15, 16, 17, 33, src.len()] {
            let mut bits = vec![0u16; n];
            convert::f32_to_f16(cpu, &src[..n], &mut bits);
            for (i, (&got, &w)) in bits.iter().zip(&want).enumerate() {
                let nan = half::f16::from_bits(w).is_nan();
                assert!(
                    got == w || (nan && half::f16::from_bits(got).is_nan()),
                    "{cpu}: narrowing {} gave {got:#06x}, want {w:#06x}",
                    src[i]
                );
            }
            let mut back = vec![0.0f32; n];
            convert::f16_to_f32(cpu, &want[..n], &mut back);
            let mut rounded = src[..n].to_vec();
            convert::round_f16(cpu, &mut rounded);
            for i in 0..n {
                let exact = half::f16::from_bits(want[i]).to_f32();
                let same =
                    |x: f32| x.to_bits() == exact.to_bits() || (x.is_nan() && exact.is_nan());
                assert!(same(back[i]), "{cpu}: widening {:#06x}", want[i]);
                assert!(same(rounded[i]), "{cpu}: rounding {}", src[i]);
            }
        }
    }
}

#[test]
fn every_fp16_bit_pattern_widens_exactly_at_every_level() {
    let all: Vec<u16> = (0..=u16::MAX).collect();
    for cpu in levels() {
        let mut out = vec![0.0f32; all.len()];
        convert::f16_to_f32(cpu, &all, &mut out);
        for (&b, &got) in all.iter().zip(&out) {
            let want = half::f16::from_bits(b).to_f32();
            assert!(
                got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                "{cpu}: {b:#06x}"
            );
        }
    }
}

#[test]
fn fp16_narrowing_matches_the_half_crate_across_the_whole_f32_range_at_every_level() {
    // Every exponent, with mantissas at and around every rounding boundary, both signs.
    let mut src = Vec::new();
    for bits in (0..=u32::MAX).step_by(4093) {
        src.push(f32::from_bits(bits));
    }
    for e in 0..256u32 {
        for m in [
            0, 1, 0xfff, 0x1000, 0x1001, 0x1fff, 0x2000, 0x3000, 0x7fffff,
        ] {
            src.push(f32::from_bits(e << 23 | m));
            src.push(-f32::from_bits(e << 23 | m));
        }
    }
    for cpu in levels() {
        let mut got = vec![0u16; src.len()];
        convert::f32_to_f16(cpu, &src, &mut got);
        for (x, g) in src.iter().zip(&got) {
            let want = half::f16::from_f32(*x);
            let g = half::f16::from_bits(*g);
            assert!(
                g.to_bits() == want.to_bits() || (g.is_nan() && want.is_nan()),
                "{cpu}: {x:e} ({:#010x}) gave {:#06x}, want {:#06x}",
                x.to_bits(),
                g.to_bits(),
                want.to_bits()
            );
        }
    }
}

#[test]
fn dot_and_axpy_match_f64_sums_at_every_level() {
    for cpu in levels() {
        for n in [0, 1, 5, 8, 31, 64, 100, 1027] {
            let (a, b) = (values(n, 1, 1.0), values(n, 2, 1.0));
            let want: f64 = a
                .iter()
                .zip(&b)
                .map(|(x, y)| f64::from(*x) * f64::from(*y))
                .sum();
            let norm: f64 = a
                .iter()
                .zip(&b)
                .map(|(x, y)| f64::from((x * y).abs()))
                .sum();
            let tol = 1e-5 * norm.max(1.0);
            assert!(
                (f64::from(vector::dot(cpu, &a, &b)) - want).abs() <= tol,
                "{cpu} dot {n}"
            );
            let bh = to_bits(&b);
            let want_h: f64 = a
                .iter()
                .zip(round_f16(&b))
                .map(|(x, y)| f64::from(*x) * f64::from(y))
                .sum();
            let got_h = f64::from(vector::dot_f16(cpu, &a, &bh));
            assert!((got_h - want_h).abs() <= tol, "{cpu} dot_f16 {n}");
            let mut y = b.clone();
            vector::axpy(cpu, 0.75, &a, &mut y);
            let want_y: Vec<f32> = a.iter().zip(&b).map(|(x, y)| 0.75 * x + y).collect();
            assert!(rel_err(&y, &want_y) < 1e-6, "{cpu} axpy {n}");
        }
    }
}

#[test]
fn fixed_order_reductions_give_the_same_bits_at_every_level() {
    let x = values(1000, 3, 5.0);
    let y = values(1000, 4, 5.0);
    let port = Cpu::PORTABLE;
    for cpu in levels() {
        for n in [0, 3, 16, 17, 999, 1000] {
            let (x, y) = (&x[..n], &y[..n]);
            assert_eq!(
                vector::sum(cpu, x).to_bits(),
                vector::sum(port, x).to_bits()
            );
            assert_eq!(
                vector::dot_lanes(cpu, x, y).to_bits(),
                vector::dot_lanes(port, x, y).to_bits()
            );
            assert_eq!(
                vector::max(cpu, x),
                x.iter().cloned().fold(f32::NEG_INFINITY, f32::max)
            );
            let (mut a, mut b) = (x.to_vec(), x.to_vec());
            let sa = vector::exp_shifted_sum(cpu, &mut a, 3.0);
            let sb = vector::exp_shifted_sum(port, &mut b, 3.0);
            assert_eq!(sa.to_bits(), sb.to_bits());
            assert_eq!(a, b);
        }
        let mut e = x.clone();
        let total = vector::exp_shifted_sum(cpu, &mut e, 2.0);
        let want: f64 = x.iter().map(|v| (f64::from(*v) - 2.0).exp()).sum();
        assert!((f64::from(total) - want).abs() < 1e-5 * want, "{cpu}");
    }
}

#[test]
fn exp_fast_is_within_a_few_ulp_of_std_and_saturates() {
    let mut worst = 0.0f32;
    for i in -8600..8870 {
        let x = i as f32 / 100.0;
        let (got, want) = (vector::exp_fast(x), x.exp());
        worst = worst.max(((got - want) / want).abs());
    }
    assert!(worst < 5e-7, "relative error {worst}");
    assert_eq!(vector::exp_fast(100.0), f32::INFINITY);
    assert!(vector::exp_fast(-100.0) < 1e-37);
    assert!(vector::exp_fast(f32::NAN).is_nan());
    for i in -2000..2000 {
        let u = i as f32 / 100.0;
        assert!((vector::tanh_fast(u) - u.tanh()).abs() < 3e-7, "tanh({u})");
    }
}

/// `y[t][o] = bias[o] + Σ_i w[o][i] x[t][i]` in f64.
fn naive_linear(w: &[f32], bias: &[f32], x: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let t = x.len() / cols;
    let mut y = vec![0.0; t * rows];
    for tt in 0..t {
        for o in 0..rows {
            let s: f64 = (0..cols)
                .map(|i| f64::from(w[o * cols + i]) * f64::from(x[tt * cols + i]))
                .sum();
            y[tt * rows + o] = (s + f64::from(bias[o])) as f32;
        }
    }
    y
}

fn gelu(v: &[f32]) -> Vec<f32> {
    v.iter()
        .map(|&u| {
            let u = f64::from(u);
            (0.5 * u
                * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (u + 0.044715 * u * u * u)).tanh()))
                as f32
        })
        .collect()
}

/// Checks `linear` (so the matrix-vector product or the tiles) on `t` tokens.
fn check_linear(pool: &Pool, rows: usize, cols: usize, t: usize, precision: Precision, seed: u64) {
    let cpu = pool.cpu();
    let w = values(rows * cols, seed, 0.5);
    let x = values(t * cols, seed + 1, 1.0);
    let bias = values(rows, seed + 2, 0.1);
    let seen = match precision {
        Precision::F16 => round_f16(&w),
        Precision::F32 => w.clone(),
    };
    let want = naive_linear(&seen, &bias, &x, rows, cols);
    let m = Matrix::new(&w, rows, cols, precision);
    let what = format!(
        "{cpu} {rows}x{cols} t={t} {precision:?} threads={}",
        pool.threads()
    );
    let mut y = vec![0.0; t * rows];
    linear::linear(pool, &m, &x, Some(&bias), &mut y, Out::Store);
    assert!(rel_err(&y, &want) < 1e-5, "{what}: {}", rel_err(&y, &want));
    linear::linear(pool, &m, &x, Some(&bias), &mut y, Out::Add);
    let twice: Vec<f32> = want.iter().map(|v| 2.0 * v).collect();
    assert!(rel_err(&y, &twice) < 1e-5, "{what} accumulate");
    linear::linear(pool, &m, &x, Some(&bias), &mut y, Out::Gelu);
    assert!(rel_err(&y, &gelu(&want)) < 1e-5, "{what} gelu");
}

#[test]
fn matrix_vector_products_match_naive_loops_on_odd_sizes() {
    for cpu in levels() {
        for threads in [1, 2, 3] {
            let pool = Pool::with_cpu(cpu, threads);
            for (rows, cols) in [(1, 1), (37, 77), (5, 16), (130, 259), (67, 1000), (9, 33)] {
                for precision in [Precision::F32, Precision::F16] {
                    check_linear(&pool, rows, cols, 1, precision, (rows * cols) as u64);
                }
            }
        }
    }
}

#[test]
fn tiled_products_match_naive_loops_for_every_small_token_count_and_across_blocks() {
    for cpu in levels() {
        let pool = Pool::with_cpu(cpu, 2);
        for precision in [Precision::F32, Precision::F16] {
            for t in 2..=13 {
                check_linear(&pool, 23, 45, t, precision, t as u64);
            }
            check_linear(&pool, 50, 100, 70, precision, 99);
            check_linear(&pool, 13, 7, 129, precision, 98);
            check_linear(&pool, 200, 264, 20, precision, 97);
        }
    }
}

#[test]
fn gemv_kernels_write_only_their_block_of_rows() {
    for cpu in levels() {
        let (rows, cols) = (40, 50);
        let w = values(rows * cols, 3, 1.0);
        let x = values(cols, 4, 1.0);
        let seen = round_f16(&w);
        let wh = to_bits(&w);
        let want = naive_linear(&seen, &vec![0.0; rows], &x, rows, cols);
        let mut y = vec![0.0; 11];
        gemv::gemv(cpu, &wh, &x, 17..28, None, &mut y, false);
        assert!(rel_err(&y, &want[17..28]) < 1e-5, "{cpu}");
    }
}

/// One head's attention probabilities and output in f64.
fn naive_head(q: &[f32], keys: &[Vec<f32>], vals: &[Vec<f32>]) -> Vec<f32> {
    let scale = 1.0 / (q.len() as f64).sqrt();
    let s: Vec<f64> = keys
        .iter()
        .map(|k| {
            q.iter()
                .zip(k)
                .map(|(a, b)| f64::from(*a) * f64::from(*b))
                .sum::<f64>()
                * scale
        })
        .collect();
    let max = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = s.iter().map(|v| (v - max).exp()).collect();
    let z: f64 = e.iter().sum();
    (0..q.len())
        .map(|d| {
            (e.iter()
                .zip(vals)
                .map(|(p, v)| p * f64::from(v[d]))
                .sum::<f64>()
                / z) as f32
        })
        .collect()
}

#[test]
fn causal_attention_matches_naive_softmax_for_every_head_width_and_cache_precision() {
    for cpu in levels() {
        let pool = Pool::with_cpu(cpu, 2);
        for hd in [4, 8, 16, 24, 32, 48, 64, 96, 128, 200, 256, 272] {
            let shape = Shape {
                n_heads: 4,
                n_kv_heads: 2,
                head_dim: hd,
            };
            let (start, t) = (5, 3);
            let positions = start + t;
            let kvd = 2 * hd;
            let k = values(positions * kvd, hd as u64, 1.0);
            let v = values(positions * kvd, hd as u64 + 1, 1.0);
            let q = values(t * 4 * hd, hd as u64 + 2, 1.0);
            for f16 in [false, true] {
                let (ks, vs) = if f16 {
                    (round_f16(&k), round_f16(&v))
                } else {
                    (k.clone(), v.clone())
                };
                let mut want = vec![0.0; t * 4 * hd];
                for j in 0..t {
                    for h in 0..4 {
                        let g = h / 2;
                        let rows = |c: &[f32]| -> Vec<Vec<f32>> {
                            (0..=start + j)
                                .map(|p| c[p * kvd + g * hd..][..hd].to_vec())
                                .collect()
                        };
                        let o = naive_head(&q[(j * 4 + h) * hd..][..hd], &rows(&ks), &rows(&vs));
                        want[(j * 4 + h) * hd..][..hd].copy_from_slice(&o);
                    }
                }
                let mut out = vec![0.0; t * 4 * hd];
                if f16 {
                    let (kb, vb) = (to_bits(&k), to_bits(&v));
                    attention::causal(&pool, shape, &q, &kb, &vb, start, &mut out);
                } else {
                    attention::causal(&pool, shape, &q, &k, &v, start, &mut out);
                }
                assert!(
                    rel_err(&out, &want) < 2e-5,
                    "{cpu} hd={hd} f16={f16}: {}",
                    rel_err(&out, &want)
                );
            }
        }
    }
}

#[test]
fn norms_activations_and_rope_give_the_portable_bits_and_match_f64() {
    let c = 77;
    let x = values(3 * c, 11, 2.0);
    let w = values(c, 12, 1.0);
    let b = values(c, 13, 0.5);
    let port = Cpu::PORTABLE;
    // f64 references.
    let mut ln_want = vec![0.0; 3 * c];
    let mut rms_want = vec![0.0; 3 * c];
    for r in 0..3 {
        let row: Vec<f64> = x[r * c..(r + 1) * c]
            .iter()
            .map(|&v| f64::from(v))
            .collect();
        let mean = row.iter().sum::<f64>() / c as f64;
        let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / c as f64;
        let ms = row.iter().map(|v| v * v).sum::<f64>() / c as f64;
        for i in 0..c {
            ln_want[r * c + i] =
                ((row[i] - mean) / (var + 1e-5).sqrt() * f64::from(w[i]) + f64::from(b[i])) as f32;
            rms_want[r * c + i] = (row[i] / (ms + 1e-5).sqrt() * f64::from(w[i])) as f32;
        }
    }
    let silu_want: Vec<f32> = x
        .iter()
        .zip(&w)
        .map(|(&g, &u)| (f64::from(g) / (1.0 + (-f64::from(g)).exp()) * f64::from(u)) as f32)
        .collect();
    let soft_want: Vec<f32> = {
        let m = x.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        let e: Vec<f64> = x.iter().map(|v| f64::from(v - m).exp()).collect();
        let z: f64 = e.iter().sum();
        e.iter().map(|v| (v / z) as f32).collect()
    };
    let run = |cpu: Cpu| {
        let mut ln = vec![0.0; 3 * c];
        norm::layer_norm(cpu, &x, &w, &b, 1e-5, &mut ln);
        let mut rms = vec![0.0; 3 * c];
        norm::rms_norm(cpu, &x, &w, 1e-5, &mut rms);
        let mut g = x.clone();
        activation::gelu_tanh(cpu, &mut g);
        let mut silu = x[..c].to_vec();
        activation::silu_mul(cpu, &mut silu, &w);
        let mut soft = x.clone();
        activation::softmax(cpu, &mut soft);
        let mut rot_half = x[..64].to_vec();
        let mut rot_pairs = x[..64].to_vec();
        let (cos, sin): (Vec<f32>, Vec<f32>) = (0..16)
            .map(|i| ((i as f32 * 0.3).cos(), (i as f32 * 0.3).sin()))
            .unzip();
        rope::rotate(cpu, &mut rot_half, &cos, &sin, rope::Pairs::HalfSplit);
        rope::rotate(cpu, &mut rot_pairs, &cos, &sin, rope::Pairs::Interleaved);
        (ln, rms, g, silu, soft, rot_half, rot_pairs)
    };
    let portable = run(port);
    assert!(rel_err(&portable.0, &ln_want) < 1e-5);
    assert!(rel_err(&portable.1, &rms_want) < 1e-5);
    assert!(rel_err(&portable.2, &gelu(&x)) < 1e-5);
    assert!(rel_err(&portable.3, &silu_want[..c]) < 1e-5);
    assert!(rel_err(&portable.4, &soft_want) < 1e-5);
    // Rotation against the definition, per pairing, for head_dim 32.
    for (got, interleaved) in [(&portable.5, false), (&portable.6, true)] {
        for head in 0..2 {
            for i in 0..16 {
                let (a, bb) = if interleaved {
                    (2 * i, 2 * i + 1)
                } else {
                    (i, i + 16)
                };
                let (x0, x1) = (x[head * 32 + a], x[head * 32 + bb]);
                let (cs, sn) = ((i as f32 * 0.3).cos(), (i as f32 * 0.3).sin());
                assert!((got[head * 32 + a] - (x0 * cs - x1 * sn)).abs() < 1e-6);
                assert!((got[head * 32 + bb] - (x0 * sn + x1 * cs)).abs() < 1e-6);
            }
        }
    }
    for cpu in levels() {
        assert_eq!(run(cpu), portable, "{cpu}");
    }
}

#[test]
fn training_rows_give_the_portable_bits_at_every_level() {
    let c = 45;
    let x = values(c, 21, 2.0);
    let dy = values(c, 22, 1.0);
    let gamma = values(c, 23, 1.0);
    let beta = values(c, 24, 1.0);
    let run = |cpu: Cpu| {
        let mut out = Vec::new();
        for centered in [false, true] {
            let (mut y, mut xhat) = (vec![0.0; c], vec![0.0; c]);
            let beta = centered.then_some(&beta[..]);
            let rstd = norm::norm_row(cpu, &mut y, &mut xhat, &x, &gamma, beta, centered, 1e-5);
            let (mut dx, mut g) = (vec![0.5; c], vec![0.0; c]);
            norm::norm_back_row(cpu, &mut dx, &mut g, &dy, &xhat, &gamma, rstd, centered);
            out.extend(y);
            out.extend(xhat);
            out.extend(dx);
            out.push(rstd);
        }
        let (mut g, mut t) = (vec![0.0; c], vec![0.0; c]);
        activation::gelu_forward(cpu, &mut g, &mut t, &x);
        let mut dg = dy.clone();
        activation::gelu_backward(cpu, &mut dg, &t, &x);
        let (mut s, mut sig) = (vec![0.0; c], vec![0.0; c]);
        activation::swiglu_forward(cpu, &mut s, &mut sig, &x, &gamma);
        let (mut d, mut db) = (dy.clone(), vec![0.0; c]);
        activation::swiglu_backward(cpu, &mut d, &mut db, &sig, &x, &gamma);
        let mut row = x.clone();
        let loss = activation::softmax_cross_entropy(cpu, &mut row, 7, 0.25);
        out.extend(
            g.iter()
                .chain(&t)
                .chain(&dg)
                .chain(&s)
                .chain(&sig)
                .chain(&d)
                .chain(&db)
                .chain(&row),
        );
        out.push(loss);
        out.iter().map(|v| v.to_bits()).collect::<Vec<u32>>()
    };
    let portable = run(Cpu::PORTABLE);
    for cpu in levels() {
        assert_eq!(run(cpu), portable, "{cpu}");
    }
    // The loss against its definition.
    let m = x.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let z: f64 = x.iter().map(|v| f64::from(v - m).exp()).sum();
    let want = z.ln() + f64::from(m) - f64::from(x[7]);
    let mut row = x.clone();
    let loss = activation::softmax_cross_entropy(Cpu::PORTABLE, &mut row, 7, 1.0);
    assert!((f64::from(loss) - want).abs() < 1e-5);
}

#[test]
fn levels_parse_and_unsupported_ones_are_refused_with_the_reason() {
    assert_eq!("AVX2".parse::<Level>().expect("avx2"), Level::Avx2);
    assert!("sse9"
        .parse::<Level>()
        .unwrap_err()
        .to_string()
        .contains("portable, avx2, avx512, neon"));
    for level in Level::ALL {
        match Cpu::new(level) {
            Ok(cpu) => assert!(Cpu::available().contains(&cpu)),
            Err(e) => {
                assert!(!level.supported());
                assert!(e.to_string().contains(level.requirement()), "{e}");
            }
        }
    }
    #[cfg(target_arch = "x86_64")]
    assert!(Cpu::new(Level::Neon).is_err());
}
