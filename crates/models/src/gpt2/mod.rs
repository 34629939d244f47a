//! GPT-2: learned positions, LayerNorm, GELU (tanh form), tied LM head.

pub mod kernels;

use crate::rng::Rng;

/// GPT-2 hyperparameters (the blueprint).
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub n_layer: usize,
    pub n_head: usize,
    /// Model width C.
    pub n_embd: usize,
    pub vocab_size: usize,
    /// Context length.
    pub n_positions: usize,
    pub layer_norm_epsilon: f32,
}

impl Config {
    /// GPT-2 small, 124M parameters.
    pub fn gpt2_124m() -> Self {
        Config {
            n_layer: 12,
            n_head: 12,
            n_embd: 768,
            vocab_size: 50257,
            n_positions: 1024,
            layer_norm_epsilon: 1e-5,
        }
    }

    /// A tiny GPT-2 for tests: 2 layers, width 64, 4 heads.
    pub fn tiny() -> Self {
        Config {
            n_layer: 2,
            n_head: 4,
            n_embd: 64,
            vocab_size: 256,
            n_positions: 128,
            layer_norm_epsilon: 1e-5,
        }
    }
}

/// One transformer block's weights, linear weights as `[out, in]` row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerWeights {
    pub ln_1_weight: Vec<f32>,    // (C)
    pub ln_1_bias: Vec<f32>,      // (C)
    pub attn_weight: Vec<f32>,    // (3C, C): q, k, v stacked
    pub attn_bias: Vec<f32>,      // (3C)
    pub proj_weight: Vec<f32>,    // (C, C)
    pub proj_bias: Vec<f32>,      // (C)
    pub ln_2_weight: Vec<f32>,    // (C)
    pub ln_2_bias: Vec<f32>,      // (C)
    pub fc_weight: Vec<f32>,      // (4C, C)
    pub fc_bias: Vec<f32>,        // (4C)
    pub fc_proj_weight: Vec<f32>, // (C, 4C)
    pub fc_proj_bias: Vec<f32>,   // (C)
}

impl LayerWeights {
    /// The tensors' names, in field order.
    pub const NAMES: [&'static str; 12] = [
        "ln_1_weight",
        "ln_1_bias",
        "attn",
        "attn_bias",
        "proj",
        "proj_bias",
        "ln_2_weight",
        "ln_2_bias",
        "fc",
        "fc_bias",
        "fc_proj",
        "fc_proj_bias",
    ];

    /// The tensors' shapes for `cfg`, in field order (linear weights `[out, in]`).
    pub fn shapes(cfg: &Config) -> [Vec<usize>; 12] {
        let e = cfg.n_embd;
        [
            vec![e],
            vec![e],
            vec![3 * e, e],
            vec![3 * e],
            vec![e, e],
            vec![e],
            vec![e],
            vec![e],
            vec![4 * e, e],
            vec![4 * e],
            vec![e, 4 * e],
            vec![e],
        ]
    }

    /// Empty tensors, for graphs whose weights are program inputs (the values are unused).
    pub fn placeholder() -> Self {
        LayerWeights {
            ln_1_weight: vec![],
            ln_1_bias: vec![],
            attn_weight: vec![],
            attn_bias: vec![],
            proj_weight: vec![],
            proj_bias: vec![],
            ln_2_weight: vec![],
            ln_2_bias: vec![],
            fc_weight: vec![],
            fc_bias: vec![],
            fc_proj_weight: vec![],
            fc_proj_bias: vec![],
        }
    }

    /// The tensors in field order (the order [`kernels::train_inputs`] indexes).
    pub fn tensors(&self) -> [&Vec<f32>; 12] {
        [
            &self.ln_1_weight,
            &self.ln_1_bias,
            &self.attn_weight,
            &self.attn_bias,
            &self.proj_weight,
            &self.proj_bias,
            &self.ln_2_weight,
            &self.ln_2_bias,
            &self.fc_weight,
            &self.fc_bias,
            &self.fc_proj_weight,
            &self.fc_proj_bias,
        ]
    }

    /// The tensors in field order, writable.
    pub fn tensors_mut(&mut self) -> [&mut Vec<f32>; 12] {
        [
            &mut self.ln_1_weight,
            &mut self.ln_1_bias,
            &mut self.attn_weight,
            &mut self.attn_bias,
            &mut self.proj_weight,
            &mut self.proj_bias,
            &mut self.ln_2_weight,
            &mut self.ln_2_bias,
            &mut self.fc_weight,
            &mut self.fc_bias,
            &mut self.fc_proj_weight,
            &mut self.fc_proj_bias,
        ]
    }

    /// GPT-2's initialization for layer `layer`: N(0, 0.02) weights, residual projections
    /// scaled by 1/sqrt(2·n_layer), zero biases, unit norms; reproducible from `seed`.
    pub fn random(cfg: &Config, layer: usize, seed: u64) -> Self {
        let c = cfg.n_embd;
        let mut rng = Rng::new(seed ^ (layer as u64).wrapping_mul(0x1000_0000_01B3));
        let resid_std = 0.02 / (2.0 * cfg.n_layer as f32).sqrt();
        LayerWeights {
            ln_1_weight: vec![1.0; c],
            ln_1_bias: vec![0.0; c],
            attn_weight: rng.normals(3 * c * c, 0.02),
            attn_bias: vec![0.0; 3 * c],
            proj_weight: rng.normals(c * c, resid_std),
            proj_bias: vec![0.0; c],
            ln_2_weight: vec![1.0; c],
            ln_2_bias: vec![0.0; c],
            fc_weight: rng.normals(4 * c * c, 0.02),
            fc_bias: vec![0.0; 4 * c],
            fc_proj_weight: rng.normals(4 * c * c, resid_std),
            fc_proj_bias: vec![0.0; c],
        }
    }
}

/// A whole GPT-2 model's weights (read-only after loading).
#[derive(Clone, Debug, PartialEq)]
pub struct Weights {
    pub config: Config,
    pub wte: Vec<f32>, // (V, C) token embeddings, also the tied LM head
    pub wpe: Vec<f32>, // (P, C) learned positions
    pub layers: Vec<LayerWeights>,
    pub ln_f_weight: Vec<f32>, // (C)
    pub ln_f_bias: Vec<f32>,   // (C)
}

impl Weights {
    /// A randomly initialized model (GPT-2's scheme), reproducible from `seed`.
    pub fn random(config: &Config, seed: u64) -> Self {
        let c = config.n_embd;
        let mut rng = Rng::new(seed.wrapping_add(0x5EED));
        Weights {
            wte: rng.normals(config.vocab_size * c, 0.02),
            wpe: rng.normals(config.n_positions * c, 0.01),
            layers: (0..config.n_layer)
                .map(|l| LayerWeights::random(config, l, seed))
                .collect(),
            ln_f_weight: vec![1.0; c],
            ln_f_bias: vec![0.0; c],
            config: config.clone(),
        }
    }
}
