//! Gradient hygiene before the optimizer step: sanitization (NaN/±Inf → 0, counted), the
//! global gradient norm and clipping to it (PyTorch's `clip_grad_norm_` rule).
//!
//! The norm's sum of squares is exact per term (an f32 squared fits an f64) and accumulated
//! in f64 in an order fixed by the tensor sizes alone: each tensor is cut into blocks of
//! [`BLOCK`] elements, element `i` of a block adds into lane `i mod 16`, the lanes of a block
//! are added pairwise, and the block sums are added in tensor and block order. Blocks run in
//! parallel, so the result does not depend on the number of threads.

use cpu::optim::sum_squares;
use cpu::Cpu;
use rayon::prelude::*;

/// Elements per block of the norm's sum (and per parallel work item).
pub const BLOCK: usize = 1 << 15;

/// Replaces every NaN and ±Inf in `grad` with 0 and returns how many there were.
pub fn sanitize_slice(grad: &mut [f32]) -> usize {
    let mut count = 0;
    for g in grad.iter_mut() {
        if !g.is_finite() {
            *g = 0.0;
            count += 1;
        }
    }
    count
}

/// Sanitizes every gradient tensor and returns the total number of values replaced.
pub fn sanitize<G: AsMut<[f32]>>(grads: &mut [G]) -> usize {
    grads.iter_mut().map(|g| sanitize_slice(g.as_mut())).sum()
}

/// What one look over the gradients found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GradStats {
    /// NaN and ±Inf values among the unscaled gradients.
    pub non_finite: usize,
    /// The global L2 norm of the unscaled gradients (non-finite values counting as 0 when
    /// sanitizing, as they will be).
    pub norm: f32,
}

/// Counts the non-finite values of `g · unscale` over all gradients and takes their global
/// norm, without writing the gradients: the optimizer applies the same unscaling later.
pub fn grad_stats<G: AsRef<[f32]> + Sync>(grads: &[G], unscale: f32, sanitize: bool) -> GradStats {
    let blocks: Vec<&[f32]> = grads
        .iter()
        .flat_map(|g| g.as_ref().chunks(BLOCK))
        .collect();
    let partial: Vec<(usize, f64)> = blocks
        .par_iter()
        .map(|b| block_stats(b, unscale, sanitize))
        .collect();
    let (non_finite, sum) = partial
        .iter()
        .fold((0, 0.0f64), |(n, s), &(bn, bs)| (n + bn, s + bs));
    GradStats {
        non_finite,
        norm: sum.sqrt() as f32,
    }
}

/// The non-finite count and f64 sum of squares of one block of `x · unscale`. A finite sum
/// of squares means every value was finite (an f32 squared and summed cannot overflow f64),
/// so only a block with a non-finite sum is looked at again to count and sanitize.
fn block_stats(block: &[f32], unscale: f32, sanitize: bool) -> (usize, f64) {
    let sum = block_sum(block, unscale);
    if sum.is_finite() {
        return (0, sum);
    }
    let bad = block
        .iter()
        .filter(|&&g| !(g * unscale).is_finite())
        .count();
    let sum = if sanitize {
        block_sum_finite(block, unscale)
    } else {
        sum
    };
    (bad, sum)
}

/// The sum of squares of one block of `x · unscale`, in the lane order of the module doc.
fn block_sum(block: &[f32], unscale: f32) -> f64 {
    sum_squares(Cpu::active(), block, unscale, false)
}

/// The sum of squares of one block of `x · unscale` with non-finite values as 0.
fn block_sum_finite(block: &[f32], unscale: f32) -> f64 {
    sum_squares(Cpu::active(), block, unscale, true)
}

/// The L2 norm of all gradients taken together, accumulated in f64.
pub fn grad_norm<G: AsRef<[f32]> + Sync>(grads: &[G]) -> f32 {
    grad_stats(grads, 1.0, false).norm
}

/// The factor [`clip_grad_norm`] scales by for a gradient norm: `max_norm / (norm + 1e-6)`
/// when the norm is finite and that is below 1, otherwise none.
pub fn clip_coefficient(norm: f32, max_norm: f32) -> Option<f32> {
    let coeff = max_norm / (norm + 1e-6);
    (norm.is_finite() && coeff < 1.0).then_some(coeff)
}

/// Scales all gradients by [`clip_coefficient`] when there is one, and returns the norm
/// before clipping. A non-finite norm leaves the gradients untouched (sanitize first).
pub fn clip_grad_norm<G: AsRef<[f32]> + AsMut<[f32]> + Sync + Send>(
    grads: &mut [G],
    max_norm: f32,
) -> f32 {
    let norm = grad_norm(grads);
    if let Some(coeff) = clip_coefficient(norm, max_norm) {
        grads.par_iter_mut().for_each(|g| {
            g.as_mut()
                .par_chunks_mut(BLOCK)
                .for_each(|c| cpu::vector::scale(Cpu::active(), c, coeff));
        });
    }
    norm
}

/// Sets every gradient to zero, for the next accumulation.
pub fn zero_grads<G: AsMut<[f32]> + Send>(grads: &mut [G]) {
    grads.par_iter_mut().for_each(|g| {
        g.as_mut().par_chunks_mut(BLOCK).for_each(|c| c.fill(0.0));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_count_non_finite_values_and_leave_them_out_of_a_sanitized_norm() {
        // Unscaled by 0.5: values 3, 4 and 12 (norm 13) among a NaN and two infinities; the
        // second tensor spans several blocks so the non-finite block is not the first.
        let mut big = vec![0.0f32; 3 * BLOCK + 5];
        big[2 * BLOCK + 1] = f32::NAN;
        big[3 * BLOCK + 4] = 24.0;
        let grads = vec![vec![6.0f32, f32::INFINITY, 8.0, f32::NEG_INFINITY], big];
        let clean = grad_stats(&grads, 0.5, true);
        assert_eq!(clean.non_finite, 3);
        assert_eq!(clean.norm, 13.0);
        let raw = grad_stats(&grads, 0.5, false);
        assert_eq!(raw.non_finite, 3);
        assert!(raw.norm.is_nan());
    }

    #[test]
    fn overflow_from_unscaling_counts_as_non_finite() {
        let grads = vec![vec![f32::MAX, 1.0]];
        assert_eq!(grad_stats(&grads, 4.0, true).non_finite, 1);
        assert_eq!(grad_stats(&grads, 4.0, true).norm, 4.0);
    }

    #[test]
    fn norm_is_exact_when_every_partial_sum_is_and_ignores_thread_count() {
        // Small integers: every partial sum is an exact f64, whatever the order.
        let grads: Vec<Vec<f32>> = [1, 7, BLOCK + 3, 2 * BLOCK]
            .iter()
            .map(|&n| (0..n).map(|i| (i % 5) as f32 - 2.0).collect())
            .collect();
        let want: f64 = grads.iter().flatten().map(|&x| f64::from(x * x)).sum();
        let norm = grad_norm(&grads);
        assert_eq!(norm, want.sqrt() as f32);
        let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build();
        let one = pool.expect("pool").install(|| grad_norm(&grads));
        assert_eq!(one.to_bits(), norm.to_bits());
    }

    #[test]
    fn clip_coefficient_only_below_one_and_for_finite_norms() {
        assert_eq!(clip_coefficient(4.0, 1.0), Some(1.0 / (4.0 + 1e-6)));
        assert_eq!(clip_coefficient(0.5, 1.0), None);
        assert_eq!(clip_coefficient(f32::NAN, 1.0), None);
        assert_eq!(clip_coefficient(f32::INFINITY, 1.0), None);
    }

    #[test]
    fn zero_grads_clears_every_value() {
        let mut grads = vec![vec![1.0f32; BLOCK + 1], vec![f32::NAN]];
        zero_grads(&mut grads);
        assert!(grads.iter().flatten().all(|&x| x.to_bits() == 0));
    }
}
