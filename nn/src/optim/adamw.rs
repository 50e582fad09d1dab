//! Adam with decoupled weight decay (PyTorch: `torch.optim.AdamW`), DINO's optimizer.

use super::state::State;
use super::{check_groups, check_hparam, Optimizer, ParamGroup};
use crate::checkpoint::StateDict;
use crate::Result;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use tessera_tensor::{AdamWStep, Backend, DType, Tensor};

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
    /// Host copies of the step counts, with the `step` tensor each was written to: the count
    /// is read from the device only after that tensor was replaced (a loaded state dict).
    steps: BTreeMap<String, (u64, Tensor<B>)>,
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
            steps: BTreeMap::new(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &AdamWConfig {
        &self.config
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
        let steps = &mut self.steps;
        self.state.apply(
            "AdamW",
            &self.groups,
            params,
            grads,
            |name, group, p, g, st| {
                // The step count lives on the host; the device's `step` tensor is read only
                // when it is not the one written here (a loaded state dict).
                let done = match (st.get("step"), steps.get(name)) {
                    (None, _) => 0,
                    (Some(t), Some((n, mine))) if t.shares_storage_with(mine) => *n,
                    (Some(t), _) => t.item()? as u64,
                };
                let step = AdamWStep {
                    lr: group.lr,
                    weight_decay: group.weight_decay,
                    beta1: c.beta1,
                    beta2: c.beta2,
                    eps: c.eps,
                    step: done + 1,
                };
                let mut m = match st.remove("exp_avg") {
                    Some(m) => m,
                    None => p.zeros_like()?,
                };
                let mut v = match st.remove("exp_avg_sq") {
                    Some(v) => v,
                    None => p.zeros_like()?,
                };
                let r = p.adamw_update_(g, &mut m, &mut v, &step);
                st.insert("exp_avg", m);
                st.insert("exp_avg_sq", v);
                r?;
                // A fill on the device, not an upload (`Backend::full`).
                let t = Tensor::scalar(step.step as f64, DType::F64, p.backend())?;
                steps.insert(String::from(name), (step.step, t.clone()));
                st.insert("step", t);
                Ok(())
            },
        )
    }

    fn state_dict(&self) -> StateDict<B> {
        self.state.to_state_dict()
    }

    fn load_state_dict(&mut self, state: &StateDict<B>) -> Result<()> {
        self.state.load(&self.groups, state)
    }
}
