//! Stochastic gradient descent with momentum (PyTorch: `torch.optim.SGD`).

use super::state::State;
use super::{check_groups, check_hparam, Optimizer, ParamGroup};
use crate::checkpoint::StateDict;
use crate::Result;
use alloc::vec::Vec;
use tessera_tensor::{Backend, SgdStep, Tensor};

/// SGD's group-independent hyper-parameters (PyTorch's defaults: all zero / false).
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct SgdConfig {
    /// Momentum factor μ (0 disables the buffer).
    pub momentum: f64,
    /// Dampening τ of the gradient added to the buffer (not applied on the first step).
    pub dampening: f64,
    /// Nesterov momentum (needs `momentum > 0` and `dampening == 0`).
    pub nesterov: bool,
}

/// SGD exactly as `torch.optim.SGD` (with `maximize=False`). Per parameter, with the group's
/// learning rate γ and weight decay λ:
///
/// ```text
/// g ← g + λ·p                                  (if λ ≠ 0; coupled weight decay)
/// b ← g  on the first step,  μ·b + (1−τ)·g  after  (if μ ≠ 0)
/// g ← g + μ·b  (Nesterov)  or  b               (if μ ≠ 0)
/// p ← p − γ·g
/// ```
///
/// State: `"<name>.momentum_buffer"` when μ ≠ 0.
#[derive(Clone, Debug)]
pub struct Sgd<B: Backend> {
    groups: Vec<ParamGroup>,
    config: SgdConfig,
    state: State<B>,
}

const FIELDS: &[(&str, bool)] = &[("momentum_buffer", true)];
const NO_FIELDS: &[(&str, bool)] = &[];

impl<B: Backend> Sgd<B> {
    /// An SGD optimizer; errors on negative hyper-parameters, duplicate names, or Nesterov
    /// without momentum or with dampening (as PyTorch).
    pub fn new(groups: Vec<ParamGroup>, config: SgdConfig) -> Result<Self> {
        let op = "SGD";
        check_groups(op, &groups)?;
        check_hparam(op, "momentum", config.momentum, config.momentum >= 0.0)?;
        check_hparam(op, "dampening", config.dampening, config.dampening >= 0.0)?;
        if config.nesterov && (config.momentum <= 0.0 || config.dampening != 0.0) {
            return Err(tessera_tensor::arg_err!(
                op,
                "Nesterov momentum requires a momentum and zero dampening"
            )
            .into());
        }
        let fields = if config.momentum != 0.0 {
            FIELDS
        } else {
            NO_FIELDS
        };
        Ok(Sgd {
            groups,
            config,
            state: State::new(fields),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &SgdConfig {
        &self.config
    }
}

impl<B: Backend> Optimizer<B> for Sgd<B> {
    fn groups(&self) -> &[ParamGroup] {
        &self.groups
    }

    fn groups_mut(&mut self) -> &mut [ParamGroup] {
        &mut self.groups
    }

    fn step_some(&mut self, params: &mut [Tensor<B>], grads: &[Option<Tensor<B>>]) -> Result<()> {
        let c = self.config;
        self.state.apply(
            "SGD",
            &self.groups,
            params,
            grads,
            |_name, group, p, g, st| {
                let mut step = SgdStep {
                    lr: group.lr,
                    weight_decay: group.weight_decay,
                    momentum: c.momentum,
                    dampening: c.dampening,
                    nesterov: c.nesterov,
                    first_step: false,
                };
                if c.momentum == 0.0 {
                    return Ok(p.sgd_update_(g, None, &step)?);
                }
                let mut buf = match st.remove("momentum_buffer") {
                    Some(b) => b,
                    None => {
                        step.first_step = true;
                        p.zeros_like()?
                    }
                };
                let r = p.sgd_update_(g, Some(&mut buf), &step);
                st.insert("momentum_buffer", buf);
                Ok(r?)
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
