//! Default implementations of the fused, in-place parameter updates ([`Backend::adamw_update`],
//! [`Backend::sgd_update`], [`Backend::ema_update`]), composed from the in-place primitives.
//! They are the specification a fused kernel is tested against: the same operations in the
//! same order, so a fused kernel that evaluates them element by element gives the same bits.
//!
//! Every scalar (learning rate, bias corrections, momentum) is an `f64` argument of an
//! elementwise op, never an uploaded tensor, so an update reads nothing from the device and
//! uploads nothing to it.
//!
//! [`Backend::adamw_update`]: super::Backend::adamw_update
//! [`Backend::sgd_update`]: super::Backend::sgd_update
//! [`Backend::ema_update`]: super::Backend::ema_update

use super::{Backend, BinaryOp, UnaryOp};
use crate::{Result, Tensor};

/// The hyper-parameters of one AdamW step (PyTorch: `torch.optim.AdamW` with
/// `amsgrad=False`). At step `t = step` (1 for the first update):
///
/// ```text
/// p ← p·(1 − lr·wd)
/// m ← m + (1−β1)·(g − m)                       (torch.lerp; m ← g − β1·(g − m) for 1−β1 ≥ ½)
/// v ← β2·v + (1−β2)·g²
/// p ← p − (lr / (1−β1^t)) · m / (sqrt(v) / sqrt(1−β2^t) + eps)
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamWStep {
    pub lr: f64,
    pub weight_decay: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// The step number `t` of this update, counted on the host (1, 2, ...).
    pub step: u64,
}

impl AdamWStep {
    /// `lr / (1 − β1^t)`.
    pub fn step_size(&self) -> f64 {
        self.lr / (1.0 - libm::pow(self.beta1, self.step as f64))
    }
    /// `sqrt(1 − β2^t)`.
    pub fn bias_correction2_sqrt(&self) -> f64 {
        libm::sqrt(1.0 - libm::pow(self.beta2, self.step as f64))
    }
}

/// The hyper-parameters of one SGD step (PyTorch: `torch.optim.SGD`):
///
/// ```text
/// d ← g + wd·p
/// buf ← d                                  (first step with momentum)
/// buf ← momentum·buf + (1 − dampening)·d    (later steps)
/// d ← d + momentum·buf if nesterov else buf
/// p ← p − lr·d
/// ```
///
/// LARS uses it too, with `weight_decay = 0`, no dampening, and a gradient already scaled by
/// its trust ratio.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SgdStep {
    pub lr: f64,
    pub weight_decay: f64,
    pub momentum: f64,
    pub dampening: f64,
    pub nesterov: bool,
    /// True when the momentum buffer holds no history yet (it is then set to `d`).
    pub first_step: bool,
}

pub fn adamw<B: Backend>(
    p: &mut Tensor<B>,
    g: &Tensor<B>,
    m: &mut Tensor<B>,
    v: &mut Tensor<B>,
    s: &AdamWStep,
) -> Result<()> {
    p.mul_scalar_(1.0 - s.lr * s.weight_decay)?;
    // torch.lerp(m, g, w) with w = 1 − β1, in its two numerically different forms.
    let w = 1.0 - s.beta1;
    let diff = g.sub(m)?;
    if w < 0.5 {
        m.binary_(BinaryOp::Add, &diff.mul_scalar(w)?)?;
    } else {
        m.assign_(&g.sub(&diff.mul_scalar(1.0 - w)?)?)?;
    }
    v.mul_scalar_(s.beta2)?;
    v.binary_(BinaryOp::Add, &g.square()?.mul_scalar(1.0 - s.beta2)?)?;
    let mut denom = v.sqrt()?;
    denom.unary_(UnaryOp::DivScalar(s.bias_correction2_sqrt()))?;
    denom.unary_(UnaryOp::Affine {
        mul: 1.0,
        add: s.eps,
    })?;
    let update = m.div(&denom)?.mul_scalar(s.step_size())?;
    p.binary_(BinaryOp::Sub, &update)
}

pub fn sgd<B: Backend>(
    p: &mut Tensor<B>,
    g: &Tensor<B>,
    buf: Option<&mut Tensor<B>>,
    s: &SgdStep,
) -> Result<()> {
    let mut d = g.clone();
    if s.weight_decay != 0.0 {
        d = d.add(&p.mul_scalar(s.weight_decay)?)?;
    }
    if let Some(buf) = buf {
        if s.first_step {
            buf.assign_(&d)?;
        } else {
            buf.mul_scalar_(s.momentum)?;
            if s.dampening == 0.0 {
                buf.binary_(BinaryOp::Add, &d)?;
            } else {
                buf.binary_(BinaryOp::Add, &d.mul_scalar(1.0 - s.dampening)?)?;
            }
        }
        d = if s.nesterov {
            d.add(&buf.mul_scalar(s.momentum)?)?
        } else {
            buf.clone()
        };
    }
    p.binary_(BinaryOp::Sub, &d.mul_scalar(s.lr)?)
}

pub fn ema<B: Backend>(target: &mut Tensor<B>, source: &Tensor<B>, momentum: f64) -> Result<()> {
    let s = source.mul_scalar(1.0 - momentum)?;
    target.mul_scalar_(momentum)?;
    target.binary_(BinaryOp::Add, &s)
}
