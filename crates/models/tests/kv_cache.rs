//! The host key/value cache: fp16 storage with fp16 weights (rounded to nearest even on
//! write, widened in the attention kernels) against the f32 path, every kernel level against
//! the portable one, and f32 storage kept exact.

use cpu::attention::{causal, Shape};
use cpu::Cpu;
use half::f16;
use models::host::{HostModel, KvCache, KvLayer, Pool, Precision};
use models::load::LoadedModel;
use models::rng::Rng;
use models::{gpt2, llama};

/// Largest `|a - b|` over the largest `|b|`.
fn rel_err(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    let scale = b.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-12);
    let diff = a
        .iter()
        .zip(b)
        .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
    diff / scale
}

/// fp16 bit patterns of `v`, rounded to nearest even by the `half` crate.
fn to_bits(v: &[f32]) -> Vec<u16> {
    v.iter().map(|&x| f16::from_f32(x).to_bits()).collect()
}

/// `v` rounded through fp16.
fn rounded(v: &[f32]) -> Vec<f32> {
    v.iter().map(|&x| f16::from_f32(x).to_f32()).collect()
}

/// Query, keys and values for a grouped-head attention call at an offset, with cache room
/// for three positions more than are filled.
struct Case {
    shape: Shape,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    start: usize,
}

impl Case {
    fn new(head_dim: usize, start: usize, t: usize, seed: u64) -> Case {
        let mut rng = Rng::new(seed);
        let shape = Shape {
            n_heads: 6,
            n_kv_heads: 2,
            head_dim,
        };
        let (dim, kv_dim) = (6 * head_dim, 2 * head_dim);
        Case {
            shape,
            q: rng.normals(t * dim, 1.0),
            k: rng.normals((start + t + 3) * kv_dim, 1.0),
            v: rng.normals((start + t + 3) * kv_dim, 1.0),
            start,
        }
    }

    fn f32(&self, k: &[f32], v: &[f32], threads: usize) -> Vec<f32> {
        let mut out = vec![0.0; self.q.len()];
        let pool = Pool::new(threads);
        causal(&pool, self.shape, &self.q, k, v, self.start, &mut out);
        out
    }

    fn f16(&self, threads: usize) -> Vec<f32> {
        self.f16_at(Cpu::active(), threads)
    }

    fn f16_at(&self, cpu: Cpu, threads: usize) -> Vec<f32> {
        let (k, v) = (to_bits(&self.k), to_bits(&self.v));
        let mut out = vec![0.0; self.q.len()];
        let pool = Pool::with_cpu(cpu, threads);
        causal(&pool, self.shape, &self.q, &k, &v, self.start, &mut out);
        out
    }
}

/// Head widths off the 16-lane SIMD width, on it, GPT-2's 64 and past the 256 the register
/// kernels hold; a long prefix so several prefetch distances are crossed.
const HEAD_DIMS: [usize; 4] = [20, 32, 64, 272];

#[test]
fn fp16_cache_attention_equals_f32_attention_over_the_rounded_cache() {
    for head_dim in HEAD_DIMS {
        let case = Case::new(head_dim, 37, 3, head_dim as u64);
        let want = case.f32(&rounded(&case.k), &rounded(&case.v), 1);
        for threads in [1, 2] {
            let err = rel_err(&case.f16(threads), &want);
            // Same values, same order of sums: only the widening could differ, and it is exact.
            assert!(err < 1e-6, "head_dim {head_dim}, threads {threads}: {err}");
        }
    }
}

#[test]
fn fp16_cache_attention_stays_within_fp16_rounding_of_the_f32_cache() {
    for head_dim in HEAD_DIMS {
        let case = Case::new(head_dim, 37, 3, 100 + head_dim as u64);
        let want = case.f32(&case.k, &case.v, 1);
        let err = rel_err(&case.f16(2), &want);
        // Keys and values move by at most 2^-11 (4.9e-4) of themselves; the scores by that
        // times |q|·|k| / sqrt(head_dim), a few units; outputs by a few half-ulps of their range.
        assert!(err < 4e-3, "head_dim {head_dim}: {err}");
        assert!(
            err > 0.0,
            "head_dim {head_dim}: rounding should change something"
        );
    }
}

#[test]
fn every_kernel_level_agrees_with_the_portable_one_on_fp16_caches() {
    let mut specials = vec![
        1.0 + 2f32.powi(-11),       // a tie: rounds down to the even 1.0
        1.0 + 3.0 * 2f32.powi(-11), // a tie: rounds up to the even 1 + 2^-9
        65504.0,
        65520.0, // rounds to infinity
        -1e6,
        f32::INFINITY,
        f32::NEG_INFINITY,
        2f32.powi(-20), // subnormal in fp16
        2f32.powi(-26), // below half the smallest subnormal: zero
        -0.0,
        0.1,
    ];
    specials.extend(Rng::new(5).normals(61, 100.0));
    let run = |cpu: Cpu| {
        let mut cache = KvCache::new(1, 1, specials.len(), Precision::F16);
        cache.write(cpu, 0, 0, &specials, &specials);
        let bits = match cache.layer(0) {
            KvLayer::F16 { keys, .. } => keys.to_vec(),
            other => panic!("f16 cache gave {other:?}"),
        };
        let outs: Vec<Vec<f32>> = HEAD_DIMS
            .iter()
            .map(|&hd| Case::new(hd, 21, 4, 200 + hd as u64).f16_at(cpu, 2))
            .collect();
        (bits, outs)
    };
    let portable = run(Cpu::PORTABLE);
    assert_eq!(portable.0, to_bits(&specials), "portable narrowing");
    for cpu in Cpu::available() {
        let (bits, outs) = run(cpu);
        assert_eq!(
            bits,
            to_bits(&specials),
            "{cpu} narrowing against the half crate"
        );
        for ((a, b), hd) in outs.iter().zip(&portable.1).zip(HEAD_DIMS) {
            let err = rel_err(a, b);
            // The levels sum in different lanes: f32 reassociation only (observed up to 1e-6
            // at width 272), far below the fp16 rounding the cache itself adds.
            assert!(err < 1e-5, "{cpu} head_dim {hd}: {err}");
        }
    }
}

#[test]
fn the_cache_holds_f32_exactly_and_fp16_rounded_to_nearest_even() {
    let (key, value) = (Rng::new(7).normals(24, 3.0), Rng::new(8).normals(24, 3.0));
    let mut exact = KvCache::new(2, 4, 24, Precision::F32);
    let mut half = KvCache::new(2, 4, 24, Precision::F16);
    assert_eq!(half.precision(), Precision::F16);
    exact.write(Cpu::active(), 1, 2, &key, &value);
    half.write(Cpu::active(), 1, 2, &key, &value);
    let at = 2 * 24..3 * 24;
    match exact.layer(1) {
        KvLayer::F32 { keys, values } => {
            assert_eq!(&keys[at.clone()], &key[..]);
            assert_eq!(&values[at.clone()], &value[..]);
        }
        other => panic!("f32 cache gave {other:?}"),
    }
    match half.layer(1) {
        KvLayer::F16 { keys, values } => {
            assert_eq!(&keys[at.clone()], &to_bits(&key)[..]);
            assert_eq!(&values[at.clone()], &to_bits(&value)[..]);
            assert!(
                keys[..at.start].iter().all(|&b| b == 0),
                "other positions untouched"
            );
        }
        other => panic!("f16 cache gave {other:?}"),
    }
    half.clear();
    match half.layer(1) {
        KvLayer::F16 { keys, .. } => assert!(keys.iter().all(|&b| b == 0)),
        other => panic!("f16 cache gave {other:?}"),
    }
}

#[test]
fn models_keep_their_cache_at_the_weight_precision() {
    let models = [
        LoadedModel::Gpt2(gpt2::Weights::random(&gpt2::Config::tiny(), 2)),
        LoadedModel::Llama(llama::Weights::random(&llama::Config::tiny(), 3)),
    ];
    for w in &models {
        for precision in [Precision::F32, Precision::F16] {
            let cache = match HostModel::new(w, precision, 1) {
                HostModel::Gpt2(mut m) => m.cache_mut().precision(),
                HostModel::Llama(mut m) => m.cache_mut().precision(),
            };
            assert_eq!(cache, precision);
        }
    }
}
