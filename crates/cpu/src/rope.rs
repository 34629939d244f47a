//! Rotary position embedding: rotating each head's pairs of values by per-position angles.

use crate::kernel;

/// Which values of a head form the rotated pairs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pairs {
    /// `(i, i + head_dim/2)`: Hugging Face's `rotate_half`.
    HalfSplit,
    /// `(2i, 2i + 1)`: the original (Meta/llama2.c) layout.
    Interleaved,
}

kernel! {
    /// Rotates every head of `x` (heads of `2·cos.len()` values back to back): pair `i` by
    /// the angle whose cosine and sine are `cos[i]`, `sin[i]`.
    pub fn rotate(s, x: &mut [f32], cos: &[f32], sin: &[f32], pairs: Pairs) {
        let half = cos.len();
        for head in x.chunks_exact_mut(2 * half) {
            match pairs {
                Pairs::HalfSplit => {
                    let (a, b) = head.split_at_mut(half);
                    for (((a, b), &c), &s) in a.iter_mut().zip(b.iter_mut()).zip(cos).zip(sin) {
                        let (x0, x1) = (*a, *b);
                        *a = x0 * c - x1 * s;
                        *b = x0 * s + x1 * c;
                    }
                }
                Pairs::Interleaved => {
                    for ((p, &c), &s) in head.chunks_exact_mut(2).zip(cos).zip(sin) {
                        let (x0, x1) = (p[0], p[1]);
                        p[0] = x0 * c - x1 * s;
                        p[1] = x0 * s + x1 * c;
                    }
                }
            }
        }
    }
}
