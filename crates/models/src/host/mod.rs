//! The fast host (CPU) forward path for GPT-2 and Llama: weights kept in fp16 (or f32) and
//! widened inside the kernels, a threaded GEMV for decode and tiled products for prefill, a
//! key/value cache up to the context length (fp16 with fp16 weights, f32 with f32). The
//! kernels and the thread pool are the `cpu` crate's, at the level of the model's [`Cpu`].

pub mod gpt2;
pub mod llama;
pub mod rope;

pub use cpu::{Cpu, Matrix, Pool, Precision};

use cpu::attention::{causal, Shape};
use cpu::matrix::Buffer;
use cpu::simd::Element;

use crate::error::{Error, Result};
use crate::load::LoadedModel;

/// Per-layer key and value caches, each position-major `[positions, kv_heads · head_dim]`.
///
/// With [`Precision::F16`] weights the entries are stored as fp16 (rounded to nearest even on
/// write, widened inside the attention kernels), as llama.cpp does: half the bytes attention
/// streams per decoded token, at a rounding no larger than the weights already carry. With
/// [`Precision::F32`] they stay f32, so that path is exact.
pub struct KvCache {
    width: usize,
    store: KvStore,
}

/// The cache's entries at its precision.
enum KvStore {
    F32(Planes<f32>),
    /// fp16 bit patterns.
    F16(Planes<u16>),
}

/// One buffer of keys and one of values per layer, on huge pages where the system has them
/// (attention reads a few bytes of each position, so TLB reach matters as for the weights).
struct Planes<T: Element> {
    keys: Vec<Buffer<T>>,
    values: Vec<Buffer<T>>,
}

impl<T: Element> Planes<T> {
    fn new(layers: usize, len: usize) -> Planes<T> {
        let zeros = || Buffer::collect(len, std::iter::repeat(T::default()));
        Planes {
            keys: (0..layers).map(|_| zeros()).collect(),
            values: (0..layers).map(|_| zeros()).collect(),
        }
    }

    fn fill(&mut self) {
        for v in self.keys.iter_mut().chain(self.values.iter_mut()) {
            v.fill(T::default());
        }
    }
}

/// One layer's cached `keys` and `values`, at the cache's precision.
#[derive(Clone, Copy, Debug)]
pub enum KvLayer<'a> {
    F32 {
        keys: &'a [f32],
        values: &'a [f32],
    },
    /// fp16 bit patterns.
    F16 {
        keys: &'a [u16],
        values: &'a [u16],
    },
}

impl KvCache {
    /// An empty cache for `layers` layers of `positions` positions of width `kv_width`, held
    /// in fp16 for [`Precision::F16`] and in f32 for [`Precision::F32`].
    pub fn new(layers: usize, positions: usize, kv_width: usize, precision: Precision) -> KvCache {
        let len = positions * kv_width;
        KvCache {
            width: kv_width,
            store: match precision {
                Precision::F32 => KvStore::F32(Planes::new(layers, len)),
                Precision::F16 => KvStore::F16(Planes::new(layers, len)),
            },
        }
    }

    /// Bytes one position takes across every layer's keys and values.
    pub fn bytes_per_position(&self) -> usize {
        let (layers, size) = match &self.store {
            KvStore::F32(p) => (p.keys.len(), 4),
            KvStore::F16(p) => (p.keys.len(), 2),
        };
        2 * layers * self.width * size
    }

    /// The precision entries are held at.
    pub fn precision(&self) -> Precision {
        match self.store {
            KvStore::F32(_) => Precision::F32,
            KvStore::F16(_) => Precision::F16,
        }
    }

    /// Stores layer `l`'s key and value (`kv_width` each) of position `pos`, narrowing them
    /// at level `cpu` for an fp16 cache.
    pub fn write(&mut self, cpu: Cpu, l: usize, pos: usize, key: &[f32], value: &[f32]) {
        let at = pos * self.width..(pos + 1) * self.width;
        match &mut self.store {
            KvStore::F32(p) => {
                p.keys[l][at.clone()].copy_from_slice(key);
                p.values[l][at].copy_from_slice(value);
            }
            KvStore::F16(p) => {
                assert!(key.len() == at.len() && value.len() == at.len(), "kv width");
                cpu::convert::f32_to_f16(cpu, key, &mut p.keys[l][at.clone()]);
                cpu::convert::f32_to_f16(cpu, value, &mut p.values[l][at]);
            }
        }
    }

    /// Layer `l`'s keys and values.
    pub fn layer(&self, l: usize) -> KvLayer<'_> {
        match &self.store {
            KvStore::F32(p) => KvLayer::F32 {
                keys: &p.keys[l],
                values: &p.values[l],
            },
            KvStore::F16(p) => KvLayer::F16 {
                keys: &p.keys[l],
                values: &p.values[l],
            },
        }
    }

    /// Causal attention of `q` (`[t, n_heads·head_dim]`, the first token at `start`) over
    /// layer `l`, into `out`, on `pool`.
    pub fn attend(
        &self,
        pool: &Pool,
        shape: Shape,
        l: usize,
        q: &[f32],
        start: usize,
        out: &mut [f32],
    ) {
        match self.layer(l) {
            KvLayer::F32 { keys, values } => causal(pool, shape, q, keys, values, start, out),
            KvLayer::F16 { keys, values } => causal(pool, shape, q, keys, values, start, out),
        }
    }

    /// Zeroes every entry.
    pub fn clear(&mut self) {
        match &mut self.store {
            KvStore::F32(p) => p.fill(),
            KvStore::F16(p) => p.fill(),
        }
    }
}

/// Checks that `tokens` is non-empty, in the vocabulary and fits the context from `start`.
fn check_tokens(tokens: &[u32], start: usize, vocab: usize, context: usize) -> Result<()> {
    if tokens.is_empty() {
        return Err(Error::Invalid("no tokens to run".into()));
    }
    if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= vocab) {
        return Err(Error::Invalid(format!(
            "token {bad} outside the vocabulary of {vocab}"
        )));
    }
    if start + tokens.len() > context {
        return Err(Error::Invalid(format!(
            "positions {start}..{} exceed the context length {context}",
            start + tokens.len()
        )));
    }
    Ok(())
}

/// A model of either family ready to run on the host.
pub enum HostModel {
    Gpt2(gpt2::Gpt2),
    Llama(llama::Llama),
}

impl HostModel {
    /// Converts loaded weights to `precision`, running on `threads` threads at the process's
    /// kernel level ([`Cpu::active`]).
    pub fn new(model: &LoadedModel, precision: Precision, threads: usize) -> HostModel {
        HostModel::with_pool(model, precision, Pool::new(threads))
    }

    /// Converts loaded weights to `precision`, running on `pool` (its threads and level).
    pub fn with_pool(model: &LoadedModel, precision: Precision, pool: Pool) -> HostModel {
        match model {
            LoadedModel::Gpt2(w) => HostModel::Gpt2(gpt2::Gpt2::new(w, precision, pool)),
            LoadedModel::Llama(w) => HostModel::Llama(llama::Llama::new(w, precision, pool)),
        }
    }

    /// Runs the prompt `tokens` at positions `start..` in one pass (GEMM), filling the cache;
    /// returns the logits of the last position.
    pub fn prefill(&mut self, tokens: &[u32], start: usize) -> Result<&[f32]> {
        self.forward(tokens, start, false)
    }

    /// Like [`HostModel::prefill`] but returns the logits of every position, `[t, vocab]`.
    pub fn prefill_all(&mut self, tokens: &[u32], start: usize) -> Result<&[f32]> {
        self.forward(tokens, start, true)
    }

    /// Runs one token at position `pos` (GEMV), returning its logits.
    pub fn decode(&mut self, token: u32, pos: usize) -> Result<&[f32]> {
        self.forward(&[token], pos, false)
    }

    fn forward(&mut self, tokens: &[u32], start: usize, all: bool) -> Result<&[f32]> {
        match self {
            HostModel::Gpt2(m) => m.forward(tokens, start, all),
            HostModel::Llama(m) => m.forward(tokens, start, all),
        }
    }

    /// Forgets every cached position.
    pub fn reset(&mut self) {
        match self {
            HostModel::Gpt2(m) => m.cache_mut().clear(),
            HostModel::Llama(m) => m.cache_mut().clear(),
        }
    }

    /// Vocabulary size (the length of one position's logits).
    pub fn vocab_size(&self) -> usize {
        match self {
            HostModel::Gpt2(m) => m.config().vocab_size,
            HostModel::Llama(m) => m.config().vocab_size,
        }
    }

    /// Context length: the most positions the cache holds.
    pub fn context_len(&self) -> usize {
        match self {
            HostModel::Gpt2(m) => m.config().n_positions,
            HostModel::Llama(m) => m.config().seq_len,
        }
    }

    /// Bytes of weights read per decoded token.
    pub fn weight_bytes(&self) -> usize {
        match self {
            HostModel::Gpt2(m) => m.weight_bytes(),
            HostModel::Llama(m) => m.weight_bytes(),
        }
    }

    /// Bytes one decode step at position `pos` reads: the weights, and the cached keys and
    /// values of positions `0..=pos`.
    pub fn decode_bytes(&mut self, pos: usize) -> usize {
        let cache = match self {
            HostModel::Gpt2(m) => m.cache_mut(),
            HostModel::Llama(m) => m.cache_mut(),
        };
        let kv = cache.bytes_per_position() * (pos + 1);
        self.weight_bytes() + kv
    }

    /// The pool the kernels run on (its threads and level).
    pub fn pool(&self) -> &Pool {
        match self {
            HostModel::Gpt2(m) => m.pool(),
            HostModel::Llama(m) => m.pool(),
        }
    }

    /// Threads the kernels run on.
    pub fn threads(&self) -> usize {
        self.pool().threads()
    }
}
