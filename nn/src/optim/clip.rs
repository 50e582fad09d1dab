//! Gradient clipping: DINO's per-parameter clip and PyTorch's global-norm clip.
//!
//! Both run entirely on the backend: norms and clip coefficients are rank-0 F64 tensors that
//! stay on the device, so clipping never stalls a training step on a read (PyTorch's
//! `clip_grad_norm_` is also sync-free). Read a returned norm with `item()` only when you
//! want to log it.

use crate::Result;
use alloc::vec::Vec;
use tessera_tensor::{Backend, BinaryOp, CmpOp, DType, Tensor, UnaryOp};

/// The L2 norm of all elements, read to the host (any float dtype; PyTorch:
/// `torch.linalg.vector_norm(t).item()`). See [`l2_norm_tensor`] for its precision.
pub fn l2_norm<B: Backend>(t: &Tensor<B>) -> Result<f64> {
    Ok(l2_norm_tensor(t)?.item()?)
}

/// The L2 norm of all elements as a rank-0 F64 tensor on `t`'s backend (no read).
///
/// The squares are taken in `t`'s dtype (f16/bf16 in f32, where squares overflow or lose
/// most of their bits) and summed by the backend's [`Tensor::sum_of_squares`], which on the
/// CPU accumulates in f64 as it squares: a relative error of a few f32 ulps, in one read of
/// the gradient, without the f64 copy of every gradient that squaring in f64 would cost
/// (that copy was 4% of a DINO step).
pub fn l2_norm_tensor<B: Backend>(t: &Tensor<B>) -> Result<Tensor<B>> {
    let t = match t.dtype() {
        DType::F16 | DType::BF16 => t.to_dtype(DType::F32)?,
        _ => t.clone(),
    };
    Ok(t.sum_of_squares()?.to_dtype(DType::F64)?.sqrt()?)
}

/// `g *= coef` where `coef < 1`, `g` unchanged elsewhere (also for a NaN coefficient, as
/// Python's `if clip_coef < 1` does), with `coef` a rank-0 F64 tensor. In place, as
/// PyTorch's `mul_` (a gradient shared with another tensor is copied first, so the other
/// is not changed); a factor of exactly 1 leaves every value as it was (and the CPU backend
/// skips that pass over `g`, as PyTorch's host-side `if` does).
fn scale_if_below_one<B: Backend>(g: &mut Tensor<B>, coef: &Tensor<B>) -> Result<()> {
    let below = coef.compare_scalar(CmpOp::Lt, 1.0)?;
    let one = coef.ones_like()?;
    let coef = below.where_cond(coef, &one)?.to_dtype(g.dtype())?;
    g.binary_(BinaryOp::Mul, &coef)?;
    Ok(())
}

/// DINO's `utils.clip_gradients(model, clip)`: each gradient on its own, with
/// `norm = ‖g‖` and `coef = clip / (norm + 1e-6)`, is scaled by `coef` if `coef < 1`.
/// Returns every norm before clipping as a rank-0 F64 tensor (DINO logs them).
///
/// DINO clips per parameter with `clip = 3.0`; this is not the global clip of
/// [`clip_grad_norm`].
pub fn clip_grad_per_param<B: Backend>(
    grads: &mut [Tensor<B>],
    clip: f64,
) -> Result<Vec<Tensor<B>>> {
    let mut norms = Vec::with_capacity(grads.len());
    for g in grads.iter_mut() {
        let norm = l2_norm_tensor(g)?;
        let coef = norm.add_scalar(1e-6)?.unary(UnaryOp::ScalarDiv(clip))?;
        scale_if_below_one(g, &coef)?;
        norms.push(norm);
    }
    Ok(norms)
}

/// `torch.nn.utils.clip_grad_norm_(params, max_norm)` with the L2 norm: the total norm is
/// the norm of all gradients together, `sqrt(Σ ‖g_i‖²)`; every gradient is multiplied by
/// `min(max_norm / (total + 1e-6), 1)`. Returns the total norm before clipping as a rank-0
/// F64 tensor (`None` for no gradients). A non-finite norm is not an error (PyTorch's
/// `error_if_nonfinite=False`).
pub fn clip_grad_norm<B: Backend>(
    grads: &mut [Tensor<B>],
    max_norm: f64,
) -> Result<Option<Tensor<B>>> {
    let Some(first) = grads.first() else {
        return Ok(None);
    };
    let mut sum_sq = first.to_dtype(DType::F64)?.sum_all()?.zeros_like()?;
    for g in grads.iter() {
        sum_sq.binary_(BinaryOp::Add, &l2_norm_tensor(g)?.square()?)?;
    }
    let total = sum_sq.sqrt()?;
    let coef = total
        .add_scalar(1e-6)?
        .unary(UnaryOp::ScalarDiv(max_norm))?
        .unary(UnaryOp::Clamp {
            min: f64::NEG_INFINITY,
            max: 1.0,
        })?;
    for g in grads.iter_mut() {
        g.binary_(BinaryOp::Mul, &coef.to_dtype(g.dtype())?)?;
    }
    Ok(Some(total))
}
