//! Gradient clipping: DINO's per-parameter clip and PyTorch's global-norm clip.

use crate::Result;
use alloc::vec::Vec;
use tessera_tensor::{Backend, DType, Tensor};

/// The L2 norm of all elements, computed in f64 (any float dtype; PyTorch:
/// `torch.linalg.vector_norm(t)`).
pub fn l2_norm<B: Backend>(t: &Tensor<B>) -> Result<f64> {
    let sq = t.to_dtype(DType::F64)?.square()?.sum_all()?.item()?;
    Ok(libm::sqrt(sq))
}

/// DINO's `utils.clip_gradients(model, clip)`: each gradient on its own, with
/// `norm = ‖g‖` and `coef = clip / (norm + 1e-6)`, is scaled by `coef` if `coef < 1`.
/// Returns every norm before clipping, as DINO does (it logs them).
///
/// DINO clips per parameter with `clip = 3.0`; this is not the global clip of
/// [`clip_grad_norm`].
pub fn clip_grad_per_param<B: Backend>(grads: &mut [Tensor<B>], clip: f64) -> Result<Vec<f64>> {
    let mut norms = Vec::with_capacity(grads.len());
    for g in grads.iter_mut() {
        let norm = l2_norm(g)?;
        let coef = clip / (norm + 1e-6);
        if coef < 1.0 {
            *g = g.mul_scalar(coef)?;
        }
        norms.push(norm);
    }
    Ok(norms)
}

/// `torch.nn.utils.clip_grad_norm_(params, max_norm)` with the L2 norm: the total norm is
/// the norm of all gradients together, `sqrt(Σ ‖g_i‖²)`; every gradient is multiplied by
/// `min(max_norm / (total + 1e-6), 1)`. Returns the total norm before clipping (0 for no
/// gradients). A non-finite norm is not an error (PyTorch's `error_if_nonfinite=False`).
pub fn clip_grad_norm<B: Backend>(grads: &mut [Tensor<B>], max_norm: f64) -> Result<f64> {
    if grads.is_empty() {
        return Ok(0.0);
    }
    let mut sum_sq = 0.0;
    for g in grads.iter() {
        let n = l2_norm(g)?;
        sum_sq += n * n;
    }
    let total = libm::sqrt(sum_sq);
    let coef = max_norm / (total + 1e-6);
    let coef = if coef > 1.0 { 1.0 } else { coef };
    for g in grads.iter_mut() {
        *g = g.mul_scalar(coef)?;
    }
    Ok(total)
}
