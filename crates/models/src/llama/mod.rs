//! Llama family (Stories15M/42M/110M): RMSNorm, RoPE, SwiGLU, optional grouped-query attention.

pub mod kernels;

use crate::rng::Rng;

/// Llama hyperparameters (the blueprint).
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Model width D.
    pub dim: usize,
    /// FFN width H.
    pub hidden_dim: usize,
    pub n_layers: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub vocab_size: usize,
    /// Context length.
    pub seq_len: usize,
    pub norm_eps: f32,
    pub rope_theta: f32,
}

impl Config {
    fn stories(
        dim: usize,
        hidden_dim: usize,
        n_layers: usize,
        n_heads: usize,
        seq_len: usize,
    ) -> Self {
        Config {
            dim,
            hidden_dim,
            n_layers,
            n_heads,
            n_kv_heads: n_heads,
            vocab_size: 32000,
            seq_len,
            norm_eps: 1e-5,
            rope_theta: 10000.0,
        }
    }

    /// Stories15M (llama2.c): D 288, 6 layers, 6 heads, context 256.
    pub fn stories15m() -> Self {
        Config::stories(288, 768, 6, 6, 256)
    }

    /// Stories42M (llama2.c): D 512, 8 layers, 8 heads, context 1024.
    pub fn stories42m() -> Self {
        Config::stories(512, 1376, 8, 8, 1024)
    }

    /// Stories110M (llama2.c): D 768, 12 layers, 12 heads, context 1024.
    pub fn stories110m() -> Self {
        Config::stories(768, 2048, 12, 12, 1024)
    }

    /// A tiny Llama for tests: D 64, 2 layers, 4 heads sharing 2 key/value heads.
    pub fn tiny() -> Self {
        Config {
            n_kv_heads: 2,
            ..Config::stories(64, 160, 2, 4, 128)
        }
    }

    /// The `tiny` preset: a byte-level model (vocabulary 264: 256 bytes, end-of-text and
    /// padding) small enough to train from scratch in minutes on a laptop CPU.
    pub fn byte_tiny() -> Self {
        Config {
            vocab_size: 264,
            ..Config::stories(128, 384, 4, 4, 256)
        }
    }

    /// Channels per head.
    pub fn head_dim(&self) -> usize {
        self.dim / self.n_heads
    }

    /// Key/value width: `n_kv_heads * head_dim`.
    pub fn kv_dim(&self) -> usize {
        self.n_kv_heads * self.head_dim()
    }
}

/// One transformer block's weights, linear weights as `[out, in]` row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerWeights {
    pub attention_norm: Vec<f32>, // (D)
    pub wq: Vec<f32>,             // (D, D)
    pub wk: Vec<f32>,             // (KV, D)
    pub wv: Vec<f32>,             // (KV, D)
    pub wo: Vec<f32>,             // (D, D)
    pub ffn_norm: Vec<f32>,       // (D)
    pub w1: Vec<f32>,             // (H, D) gate
    pub w2: Vec<f32>,             // (D, H) down
    pub w3: Vec<f32>,             // (H, D) up
}

impl LayerWeights {
    /// The tensors' names, in field order.
    pub const NAMES: [&'static str; 9] = [
        "attention_norm",
        "wq",
        "wk",
        "wv",
        "wo",
        "ffn_norm",
        "w1",
        "w2",
        "w3",
    ];

    /// The tensors' shapes for `cfg`, in field order (linear weights `[out, in]`).
    pub fn shapes(cfg: &Config) -> [Vec<usize>; 9] {
        let (d, h, kv) = (cfg.dim, cfg.hidden_dim, cfg.kv_dim());
        [
            vec![d],
            vec![d, d],
            vec![kv, d],
            vec![kv, d],
            vec![d, d],
            vec![d],
            vec![h, d],
            vec![d, h],
            vec![h, d],
        ]
    }

    /// Empty tensors, for graphs whose weights are program inputs (the values are unused).
    pub fn placeholder() -> Self {
        LayerWeights {
            attention_norm: vec![],
            wq: vec![],
            wk: vec![],
            wv: vec![],
            wo: vec![],
            ffn_norm: vec![],
            w1: vec![],
            w2: vec![],
            w3: vec![],
        }
    }

    /// The tensors in field order (the order [`kernels::train_inputs`] indexes).
    pub fn tensors(&self) -> [&Vec<f32>; 9] {
        [
            &self.attention_norm,
            &self.wq,
            &self.wk,
            &self.wv,
            &self.wo,
            &self.ffn_norm,
            &self.w1,
            &self.w2,
            &self.w3,
        ]
    }

    /// The tensors in field order, writable.
    pub fn tensors_mut(&mut self) -> [&mut Vec<f32>; 9] {
        [
            &mut self.attention_norm,
            &mut self.wq,
            &mut self.wk,
            &mut self.wv,
            &mut self.wo,
            &mut self.ffn_norm,
            &mut self.w1,
            &mut self.w2,
            &mut self.w3,
        ]
    }

    /// N(0, 0.02) weights (output projections scaled by 1/sqrt(2·n_layers)) and unit norms,
    /// reproducible from `seed`.
    pub fn random(cfg: &Config, layer: usize, seed: u64) -> Self {
        let (d, h, kv) = (cfg.dim, cfg.hidden_dim, cfg.kv_dim());
        let mut rng = Rng::new(seed ^ (layer as u64).wrapping_mul(0x1000_0000_01B3));
        let resid_std = 0.02 / (2.0 * cfg.n_layers as f32).sqrt();
        LayerWeights {
            attention_norm: vec![1.0; d],
            wq: rng.normals(d * d, 0.02),
            wk: rng.normals(kv * d, 0.02),
            wv: rng.normals(kv * d, 0.02),
            wo: rng.normals(d * d, resid_std),
            ffn_norm: vec![1.0; d],
            w1: rng.normals(h * d, 0.02),
            w2: rng.normals(d * h, resid_std),
            w3: rng.normals(h * d, 0.02),
        }
    }
}

/// A whole Llama model's weights (read-only after loading).
#[derive(Clone, Debug, PartialEq)]
pub struct Weights {
    pub config: Config,
    pub tok_embeddings: Vec<f32>, // (V, D)
    pub layers: Vec<LayerWeights>,
    pub norm: Vec<f32>, // (D) final RMSNorm
    /// (V, D) LM head; `None` when tied to `tok_embeddings`.
    pub output: Option<Vec<f32>>,
    /// How the stored q/k weights pair channels for RoPE: Hugging Face checkpoints are
    /// half-split, llama2.c checkpoints interleaved.
    pub rope: compiler::nn::RopeStyle,
}

impl Weights {
    /// A randomly initialized model with an untied head, reproducible from `seed`.
    pub fn random(config: &Config, seed: u64) -> Self {
        let d = config.dim;
        let mut rng = Rng::new(seed.wrapping_add(0x5EED));
        Weights {
            tok_embeddings: rng.normals(config.vocab_size * d, 0.02),
            layers: (0..config.n_layers)
                .map(|l| LayerWeights::random(config, l, seed))
                .collect(),
            norm: vec![1.0; d],
            output: Some(rng.normals(config.vocab_size * d, 0.02)),
            rope: compiler::nn::RopeStyle::HalfSplit,
            config: config.clone(),
        }
    }

    /// The LM head `(V, D)`: the output matrix, or the embeddings when tied.
    pub fn lm_head(&self) -> &[f32] {
        self.output.as_deref().unwrap_or(&self.tok_embeddings)
    }
}
