//! Gradient hygiene before the optimizer step: sanitization (NaN/±Inf → 0, counted), the
//! global gradient norm and clipping to it (PyTorch's `clip_grad_norm_` rule).

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

/// The L2 norm of all gradients taken together, accumulated in f64.
pub fn grad_norm<G: AsRef<[f32]>>(grads: &[G]) -> f32 {
    let sum: f64 = grads
        .iter()
        .flat_map(|g| g.as_ref().iter())
        .map(|&x| x as f64 * x as f64)
        .sum();
    sum.sqrt() as f32
}

/// Scales all gradients by `max_norm / (norm + 1e-6)` when that is below 1, and returns the
/// norm before clipping. A non-finite norm leaves the gradients untouched (sanitize first).
pub fn clip_grad_norm<G: AsRef<[f32]> + AsMut<[f32]>>(grads: &mut [G], max_norm: f32) -> f32 {
    let norm = grad_norm(grads);
    let coeff = max_norm / (norm + 1e-6);
    if norm.is_finite() && coeff < 1.0 {
        for g in grads.iter_mut() {
            for x in g.as_mut() {
                *x *= coeff;
            }
        }
    }
    norm
}
