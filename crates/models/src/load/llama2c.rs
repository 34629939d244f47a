//! llama2.c checkpoints: the legacy `.bin` that run.c reads (Stories15M/42M/110M) and the
//! version 1 export with the "ak42" header. Both store q/k with interleaved rotary pairing.
//!
//! Legacy layout: seven i32 `dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size,
//! seq_len` (a negative `vocab_size` means the classifier is stored separately rather than
//! shared with the embeddings), then f32 tensors, each kind for all layers in turn: embeddings
//! (V, D), attention norms (L, D), wq (L, D, D), wk (L, KV, D), wv (L, KV, D), wo (L, D, D),
//! FFN norms (L, D), w1 (L, H, D), w2 (L, D, H), w3 (L, H, D), final norm (D), two unused RoPE
//! tables (seq_len, head_dim / 2) each, and the classifier (V, D) when not shared.
//!
//! Version 1 layout: a 256-byte header (u32 magic 0x616b3432, i32 version 1, the seven i32
//! above with a positive `vocab_size`, a u8 shared-classifier flag, zero padding), then the
//! norms (attention L×D, FFN L×D, final D), embeddings, wq, wk, wv, wo, w1, w2, w3 and the
//! classifier when not shared. Version 2 is int8-quantized and not supported.

use crate::error::{Error, Result};
use crate::llama;
use compiler::nn::RopeStyle;
use memmap2::Mmap;
use std::fs::File;
use std::path::Path;

/// The version 1+ header's magic number, "ak42" read as a little-endian u32.
const MAGIC: u32 = 0x616b_3432;
/// Bytes of the version 1 header.
const V1_HEADER: usize = 256;

/// Reads a llama2.c checkpoint (legacy or version 1) into Llama weights with interleaved RoPE.
pub fn load_llama2c(path: &Path) -> Result<llama::Weights> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    // SAFETY: a read-only map that lives only for the duration of this call.
    let mmap = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
    let ints: Vec<i32> = mmap
        .chunks_exact(4)
        .take(9)
        .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    if ints.len() < 7 {
        return Err(Error::format(
            path,
            format!(
                "{} bytes is too short for a llama2.c checkpoint header",
                mmap.len()
            ),
        ));
    }
    if ints[0] as u32 == MAGIC {
        return match ints.get(1) {
            Some(1) if mmap.len() >= V1_HEADER => {
                let header: [i32; 7] = [2, 3, 4, 5, 6, 7, 8].map(|i| ints[i]);
                let (config, _) = parse_header(path, header)?;
                let shared = mmap[36] != 0;
                read_v1(path, &mmap[V1_HEADER..], config, shared)
            }
            Some(2) => Err(Error::format(
                path,
                "llama2.c version 2 (int8-quantized) checkpoints are not supported; export \
                 with --version 0 or 1",
            )),
            version => Err(Error::format(
                path,
                format!(
                    "unsupported llama2.c checkpoint version {}; supported: legacy (no header \
                     magic) and 1",
                    version.map_or("(truncated)".to_string(), |v| v.to_string())
                ),
            )),
        };
    }
    let header: [i32; 7] = [0, 1, 2, 3, 4, 5, 6].map(|i| ints[i]);
    let (config, shared) = parse_header(path, header)?;
    read_legacy(path, &mmap[28..], config, shared)
}

/// The config from the seven header ints, and whether the classifier is shared.
fn parse_header(path: &Path, h: [i32; 7]) -> Result<(llama::Config, bool)> {
    let [dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab, seq_len] = h;
    let positive = [dim, hidden_dim, n_layers, n_heads, n_kv_heads, seq_len];
    let valid = positive.iter().all(|&x| x > 0)
        && vocab != 0
        && dim % n_heads == 0
        && (dim / n_heads) % 2 == 0
        && n_heads % n_kv_heads == 0;
    if !valid {
        return Err(Error::format(
            path,
            format!(
                "not a llama2.c checkpoint: header dim {dim}, hidden_dim {hidden_dim}, \
                 n_layers {n_layers}, n_heads {n_heads}, n_kv_heads {n_kv_heads}, \
                 vocab_size {vocab}, seq_len {seq_len}"
            ),
        ));
    }
    let config = llama::Config {
        dim: dim as usize,
        hidden_dim: hidden_dim as usize,
        n_layers: n_layers as usize,
        n_heads: n_heads as usize,
        n_kv_heads: n_kv_heads as usize,
        vocab_size: vocab.unsigned_abs() as usize,
        seq_len: seq_len as usize,
        norm_eps: 1e-5,
        rope_theta: 10000.0,
    };
    crate::ModelConfig::Llama(config.clone())
        .validate()
        .map_err(|e| Error::format(path, format!("not a usable llama2.c checkpoint: {e}")))?;
    Ok((config, vocab > 0))
}

/// Sequential f32 reads from a checkpoint's data section, sized and checked up front.
struct Floats<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Floats<'a> {
    /// A reader over `data`, failing unless it holds exactly `count` floats.
    fn exact(path: &Path, data: &'a [u8], count: usize, cfg: &llama::Config) -> Result<Self> {
        if data.len() != count * 4 {
            return Err(Error::format(
                path,
                format!(
                    "{} bytes of weights where the header (dim {}, hidden_dim {}, n_layers {}, \
                     n_heads {}, n_kv_heads {}, vocab_size {}, seq_len {}) implies {}; the file \
                     is truncated or not a llama2.c checkpoint",
                    data.len(),
                    cfg.dim,
                    cfg.hidden_dim,
                    cfg.n_layers,
                    cfg.n_heads,
                    cfg.n_kv_heads,
                    cfg.vocab_size,
                    cfg.seq_len,
                    count * 4
                ),
            ));
        }
        Ok(Floats { data, pos: 0 })
    }

    fn take(&mut self, n: usize) -> Vec<f32> {
        let bytes = &self.data[self.pos * 4..(self.pos + n) * 4];
        self.pos += n;
        bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    }

    /// `layers` consecutive tensors of `n` floats.
    fn per_layer(&mut self, layers: usize, n: usize) -> Vec<Vec<f32>> {
        (0..layers).map(|_| self.take(n)).collect()
    }
}

/// Per-layer tensors of every kind, in the order they are assembled into layers.
struct Stacks {
    attention_norm: Vec<Vec<f32>>,
    wq: Vec<Vec<f32>>,
    wk: Vec<Vec<f32>>,
    wv: Vec<Vec<f32>>,
    wo: Vec<Vec<f32>>,
    ffn_norm: Vec<Vec<f32>>,
    w1: Vec<Vec<f32>>,
    w2: Vec<Vec<f32>>,
    w3: Vec<Vec<f32>>,
}

impl Stacks {
    fn into_layers(mut self) -> Vec<llama::LayerWeights> {
        let take = std::mem::take::<Vec<f32>>;
        (0..self.wq.len())
            .map(|i| llama::LayerWeights {
                attention_norm: take(&mut self.attention_norm[i]),
                wq: take(&mut self.wq[i]),
                wk: take(&mut self.wk[i]),
                wv: take(&mut self.wv[i]),
                wo: take(&mut self.wo[i]),
                ffn_norm: take(&mut self.ffn_norm[i]),
                w1: take(&mut self.w1[i]),
                w2: take(&mut self.w2[i]),
                w3: take(&mut self.w3[i]),
            })
            .collect()
    }
}

/// Floats in one layer's `(attention norm, wq, wk/wv, wo, FFN norm, w1/w2/w3)`.
fn layer_sizes(c: &llama::Config) -> [usize; 6] {
    let (d, h, kv) = (c.dim, c.hidden_dim, c.kv_dim());
    [d, d * d, kv * d, d * d, d, h * d]
}

fn read_legacy(path: &Path, data: &[u8], c: llama::Config, shared: bool) -> Result<llama::Weights> {
    let (l, d, v) = (c.n_layers, c.dim, c.vocab_size);
    let [norm, q, kv, o, ffn_norm, mlp] = layer_sizes(&c);
    let rope_tables = c.seq_len * c.head_dim();
    let count = v * d
        + l * (norm + q + 2 * kv + o + ffn_norm + 3 * mlp)
        + d
        + rope_tables
        + if shared { 0 } else { v * d };
    let mut f = Floats::exact(path, data, count, &c)?;
    let tok_embeddings = f.take(v * d);
    let attention_norm = f.per_layer(l, norm);
    let (wq, wk, wv, wo) = (
        f.per_layer(l, q),
        f.per_layer(l, kv),
        f.per_layer(l, kv),
        f.per_layer(l, o),
    );
    let ffn_norm = f.per_layer(l, ffn_norm);
    let (w1, w2, w3) = (
        f.per_layer(l, mlp),
        f.per_layer(l, mlp),
        f.per_layer(l, mlp),
    );
    let final_norm = f.take(d);
    f.take(rope_tables);
    let output = (!shared).then(|| f.take(v * d));
    let stacks = Stacks {
        attention_norm,
        wq,
        wk,
        wv,
        wo,
        ffn_norm,
        w1,
        w2,
        w3,
    };
    Ok(assemble(c, tok_embeddings, stacks, final_norm, output))
}

fn read_v1(path: &Path, data: &[u8], c: llama::Config, shared: bool) -> Result<llama::Weights> {
    let (l, d, v) = (c.n_layers, c.dim, c.vocab_size);
    let [norm, q, kv, o, ffn_norm, mlp] = layer_sizes(&c);
    let count = l * (norm + ffn_norm)
        + d
        + v * d
        + l * (q + 2 * kv + o + 3 * mlp)
        + if shared { 0 } else { v * d };
    let mut f = Floats::exact(path, data, count, &c)?;
    let attention_norm = f.per_layer(l, norm);
    let ffn_norm = f.per_layer(l, ffn_norm);
    let final_norm = f.take(d);
    let tok_embeddings = f.take(v * d);
    let (wq, wk, wv, wo) = (
        f.per_layer(l, q),
        f.per_layer(l, kv),
        f.per_layer(l, kv),
        f.per_layer(l, o),
    );
    let (w1, w2, w3) = (
        f.per_layer(l, mlp),
        f.per_layer(l, mlp),
        f.per_layer(l, mlp),
    );
    let output = (!shared).then(|| f.take(v * d));
    let stacks = Stacks {
        attention_norm,
        wq,
        wk,
        wv,
        wo,
        ffn_norm,
        w1,
        w2,
        w3,
    };
    Ok(assemble(c, tok_embeddings, stacks, final_norm, output))
}

fn assemble(
    config: llama::Config,
    tok_embeddings: Vec<f32>,
    stacks: Stacks,
    norm: Vec<f32>,
    output: Option<Vec<f32>>,
) -> llama::Weights {
    llama::Weights {
        config,
        tok_embeddings,
        layers: stacks.into_layers(),
        norm,
        output,
        rope: RopeStyle::Interleaved,
    }
}
