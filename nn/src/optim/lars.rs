//! LARS as BYOL uses it (deepmind-research `byol/utils/optimizers.py`: `lars`, i.e.
//! `add_weight_decay` → `scale_by_lars` → `scale(-lr)`).

use super::clip::l2_norm_tensor;
use super::state::State;
use super::{check_groups, check_hparam, Optimizer, ParamGroup};
use crate::checkpoint::StateDict;
use crate::Result;
use alloc::vec::Vec;
use tessera_tensor::{Backend, CmpOp, SgdStep, Tensor};

/// LARS's group-independent hyper-parameters. [`Default`] is BYOL's: momentum 0.9,
/// eta 1e-3.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LarsConfig {
    /// Momentum factor μ.
    pub momentum: f64,
    /// Trust coefficient η.
    pub eta: f64,
}

impl Default for LarsConfig {
    fn default() -> Self {
        LarsConfig {
            momentum: 0.9,
            eta: 1e-3,
        }
    }
}

/// Layer-wise adaptive rate scaling, BYOL's optimizer. Per parameter, with the group's
/// learning rate γ and weight decay λ:
///
/// ```text
/// if the group is not lars_exclude:
///     u ← g + λ·p
///     u ← u · (η·‖p‖ / ‖u‖)     if ‖p‖ > 0 and ‖u‖ > 0   (trust ratio; else unchanged)
/// else:
///     u ← g                      (biases and norm parameters: no decay, no adaptation)
/// b ← μ·b + u                    (b starts at zero, so b = u on the first step)
/// p ← p − γ·b
/// ```
///
/// The learning rate multiplies the momentum buffer (not the update inside it), as in BYOL,
/// so a learning-rate schedule acts at once. Norms are L2 norms over all elements, computed
/// in f64 on the host.
///
/// State: `"<name>.momentum_buffer"`.
#[derive(Clone, Debug)]
pub struct Lars<B: Backend> {
    groups: Vec<ParamGroup>,
    config: LarsConfig,
    state: State<B>,
}

const FIELDS: &[(&str, bool)] = &[("momentum_buffer", true)];

impl<B: Backend> Lars<B> {
    /// A LARS optimizer; errors on negative hyper-parameters or duplicate names.
    pub fn new(groups: Vec<ParamGroup>, config: LarsConfig) -> Result<Self> {
        let op = "LARS";
        check_groups(op, &groups)?;
        check_hparam(op, "momentum", config.momentum, config.momentum >= 0.0)?;
        check_hparam(op, "eta", config.eta, config.eta >= 0.0)?;
        Ok(Lars {
            groups,
            config,
            state: State::new(FIELDS),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &LarsConfig {
        &self.config
    }
}

impl<B: Backend> Optimizer<B> for Lars<B> {
    fn groups(&self) -> &[ParamGroup] {
        &self.groups
    }

    fn groups_mut(&mut self) -> &mut [ParamGroup] {
        &mut self.groups
    }

    fn step_some(&mut self, params: &mut [Tensor<B>], grads: &[Option<Tensor<B>>]) -> Result<()> {
        let c = self.config;
        self.state.apply(
            "LARS",
            &self.groups,
            params,
            grads,
            |_name, group, p, g, st| {
                let mut u = g.clone();
                if !group.lars_exclude {
                    if group.weight_decay != 0.0 {
                        u = u.add(&p.mul_scalar(group.weight_decay)?)?;
                    }
                    // The trust ratio stays on the device: no read per parameter.
                    let (pn, un) = (l2_norm_tensor(p)?, l2_norm_tensor(&u)?);
                    let one = pn.ones_like()?;
                    let ratio = pn.mul_scalar(c.eta)?.div(&un)?;
                    let ratio = un
                        .compare_scalar(CmpOp::Gt, 0.0)?
                        .where_cond(&ratio, &one)?;
                    let ratio = pn
                        .compare_scalar(CmpOp::Gt, 0.0)?
                        .where_cond(&ratio, &one)?;
                    u = u.mul(&ratio.to_dtype(u.dtype())?)?;
                }
                // SGD with momentum on the adapted update (no dampening, no further decay).
                let mut buf = st.remove("momentum_buffer");
                let step = SgdStep {
                    lr: group.lr,
                    weight_decay: 0.0,
                    momentum: c.momentum,
                    dampening: 0.0,
                    nesterov: false,
                    first_step: buf.is_none(),
                };
                let mut b = match buf.take() {
                    Some(b) => b,
                    None => p.zeros_like()?,
                };
                let r = p.sgd_update_(&u, Some(&mut b), &step);
                st.insert("momentum_buffer", b);
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
