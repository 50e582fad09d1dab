//! Adam with decoupled weight decay (PyTorch: `torch.optim.AdamW`), DINO's optimizer.

use super::state::{ParamState, State};
use super::{check_groups, check_hparam, Optimizer, ParamGroup};
use crate::checkpoint::StateDict;
use crate::Result;
use alloc::vec::Vec;
use tessera_tensor::{Backend, DType, Tensor};

/// AdamW's group-independent hyper-parameters. [`Default`] is PyTorch's: betas (0.9, 0.999),
/// eps 1e-8.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamWConfig {
    pub beta1: f64,
    pub beta2: f64,
    /// Added to `sqrt(v̂)`, outside the square root.
    pub eps: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        AdamWConfig {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }
}

/// AdamW exactly as `torch.optim.AdamW` (`amsgrad=False`, `maximize=False`). Per parameter,
/// with the group's learning rate γ and weight decay λ, at step t = 1, 2, ...:
///
/// ```text
/// p ← p·(1 − γλ)                               (decoupled decay, before the Adam update)
/// m ← m + (1−β1)·(g − m)                       (torch.lerp)
/// v ← β2·v + (1−β2)·g²
/// p ← p − (γ / (1−β1^t)) · m / (sqrt(v) / sqrt(1−β2^t) + eps)
/// ```
///
/// State: `"<name>.exp_avg"`, `"<name>.exp_avg_sq"` (the parameter's shape) and
/// `"<name>.step"` (a rank-0 F64 tensor), as PyTorch names them.
#[derive(Clone, Debug)]
pub struct AdamW<B: Backend> {
    groups: Vec<ParamGroup>,
    config: AdamWConfig,
    state: State<B>,
}

const FIELDS: &[(&str, bool)] = &[("exp_avg", true), ("exp_avg_sq", true), ("step", false)];

impl<B: Backend> AdamW<B> {
    /// An AdamW optimizer; errors on hyper-parameters PyTorch rejects or duplicate names.
    pub fn new(groups: Vec<ParamGroup>, config: AdamWConfig) -> Result<Self> {
        let op = "AdamW";
        check_groups(op, &groups)?;
        let beta_ok = |b: f64| (0.0..1.0).contains(&b);
        check_hparam(op, "beta1", config.beta1, beta_ok(config.beta1))?;
        check_hparam(op, "beta2", config.beta2, beta_ok(config.beta2))?;
        check_hparam(op, "eps", config.eps, config.eps >= 0.0)?;
        Ok(AdamW {
            groups,
            config,
            state: State::new(FIELDS),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &AdamWConfig {
        &self.config
    }
}

/// `a + w·(b − a)` as `torch.lerp` computes it (the other form for `w ≥ 0.5`).
fn lerp<B: Backend>(a: &Tensor<B>, b: &Tensor<B>, w: f64) -> tessera_tensor::Result<Tensor<B>> {
    let diff = b.sub(a)?;
    if w < 0.5 {
        a.add(&diff.mul_scalar(w)?)
    } else {
        b.sub(&diff.mul_scalar(1.0 - w)?)
    }
}

impl<B: Backend> Optimizer<B> for AdamW<B> {
    fn groups(&self) -> &[ParamGroup] {
        &self.groups
    }

    fn groups_mut(&mut self) -> &mut [ParamGroup] {
        &mut self.groups
    }

    fn step_some(&mut self, params: &mut [Tensor<B>], grads: &[Option<Tensor<B>>]) -> Result<()> {
        let c = self.config;
        self.state
            .apply("AdamW", &self.groups, params, grads, |group, p, g, st| {
                let (lr, wd) = (group.lr, group.weight_decay);
                let (m, v, step) = match st {
                    Some(s) => (
                        s["exp_avg"].clone(),
                        s["exp_avg_sq"].clone(),
                        s["step"].item()?,
                    ),
                    None => (p.zeros_like()?, p.zeros_like()?, 0.0),
                };
                let step = step + 1.0;
                let p = p.mul_scalar(1.0 - lr * wd)?;
                let m = lerp(&m, g, 1.0 - c.beta1)?;
                let v = v
                    .mul_scalar(c.beta2)?
                    .add(&g.square()?.mul_scalar(1.0 - c.beta2)?)?;
                let bc1 = 1.0 - libm::pow(c.beta1, step);
                let bc2 = 1.0 - libm::pow(c.beta2, step);
                let step_size = lr / bc1;
                let bc2_sqrt = libm::sqrt(bc2);
                let denom = v
                    .sqrt()?
                    .div(&Tensor::scalar(bc2_sqrt, p.dtype(), p.backend())?)?
                    .add_scalar(c.eps)?;
                let p = p.sub(&m.div(&denom)?.mul_scalar(step_size)?)?;
                let mut s = ParamState::new();
                s.insert("step", Tensor::scalar(step, DType::F64, p.backend())?);
                s.insert("exp_avg", m);
                s.insert("exp_avg_sq", v);
                Ok((p, s))
            })
    }

    fn state_dict(&self) -> StateDict<B> {
        self.state.to_state_dict()
    }

    fn load_state_dict(&mut self, state: &StateDict<B>) -> Result<()> {
        self.state.load(&self.groups, state)
    }
}
