//! Rotary position embedding tables for the host path: cosines and sines per position and
//! frequency, applied by the `cpu` crate's rotation kernel.

use compiler::nn::RopeStyle;
use cpu::rope::{rotate, Pairs};
use cpu::Cpu;

/// Per-position rotation tables for RoPE: `cos`/`sin` `[positions, head_dim / 2]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Rope {
    pub head_dim: usize,
    pub style: RopeStyle,
    cos: Vec<f32>,
    sin: Vec<f32>,
}

impl Rope {
    /// Tables for `positions` positions; frequency `i` is `theta^(-2i / head_dim)`.
    pub fn new(head_dim: usize, positions: usize, theta: f32, style: RopeStyle) -> Rope {
        let half = head_dim / 2;
        let mut cos = Vec::with_capacity(positions * half);
        let mut sin = Vec::with_capacity(positions * half);
        for p in 0..positions {
            for i in 0..half {
                let freq = 1.0 / f64::from(theta).powf(2.0 * i as f64 / head_dim as f64);
                let angle = p as f64 * freq;
                cos.push(angle.cos() as f32);
                sin.push(angle.sin() as f32);
            }
        }
        Rope {
            head_dim,
            style,
            cos,
            sin,
        }
    }

    /// Rotates every head of `x` (heads of `head_dim` values back to back) for position `pos`.
    pub fn apply(&self, cpu: Cpu, x: &mut [f32], pos: usize) {
        let half = self.head_dim / 2;
        let span = pos * half..(pos + 1) * half;
        let pairs = match self.style {
            RopeStyle::HalfSplit => Pairs::HalfSplit,
            RopeStyle::Interleaved => Pairs::Interleaved,
        };
        rotate(cpu, x, &self.cos[span.clone()], &self.sin[span], pairs);
    }
}
