//! Optimizers over plain parameter tensors and their gradients (PyTorch: `torch.optim`), and
//! gradient clipping (DINO's `clip_gradients`, `torch.nn.utils.clip_grad_norm_`).
//!
//! # Model
//!
//! A step updates each parameter and its state *in place*, with one fused backend call per
//! parameter where the backend has one (`Backend::adamw_update`, `Backend::sgd_update`), and
//! reads nothing from the device (step counts live on the host; clipping coefficients and
//! LARS trust ratios stay on the device). An optimizer is built from [`ParamGroup`]s, each naming its parameters (PyTorch's dotted names,
//! e.g. `"blocks.0.attn.qkv.weight"`) and carrying its own learning rate, weight decay and LARS
//! exclusion flag. The parameters then have one *flat order*: the groups' names concatenated,
//! as PyTorch indexes `optimizer.state`. Three ways to step:
//!
//! - [`Optimizer::step`]: parameters and gradients as slices in the flat order;
//! - [`Optimizer::step_some`]: the same with `Option` gradients; a `None` gradient leaves the
//!   parameter and its state untouched, as PyTorch skips `p.grad is None` (DINO freezes its
//!   head's last layer during the first epoch this way);
//! - [`Optimizer::step_named`]: parameters and gradients as name → tensor maps, so a module
//!   can pass its named parameters in any order;
//! - [`Optimizer::step_module`]: a module's own parameters, moved into the step and back, so
//!   the update writes where the values are (what the trainers use: no copy per step).
//!
//! A step validates every shape and dtype before it changes anything; on such an error
//! nothing is updated (only a failure of the backend itself can stop a step midway). Optimizer state (momentum buffers, Adam moments, step counts) is exposed as named
//! tensors, `"<param name>.<field>"` with PyTorch's field names, for checkpoints
//! ([`Optimizer::state_dict`], [`Optimizer::load_state_dict`]). Hyper-parameters are not state:
//! schedules set them every iteration through [`Optimizer::groups_mut`].

mod adamw;
mod clip;
mod lars;
mod sgd;
mod state;

pub use adamw::{AdamW, AdamWConfig};
pub use clip::{clip_grad_norm, clip_grad_per_param, l2_norm, l2_norm_tensor};
pub use lars::{Lars, LarsConfig};
pub use sgd::{Sgd, SgdConfig};

use crate::checkpoint::StateDict;
use crate::module::{EntryMut, Module};
use crate::Result;
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::String;
use alloc::vec::Vec;
use tessera_tensor::{Backend, Tensor};

/// A set of parameters sharing hyper-parameters (PyTorch: one dict of
/// `optimizer.param_groups`).
#[derive(Clone, Debug, PartialEq)]
pub struct ParamGroup {
    /// The parameters' names, in the order their tensors are passed to a step.
    pub names: Vec<String>,
    /// Learning rate.
    pub lr: f64,
    /// Weight decay: coupled (added to the gradient) in SGD and LARS, decoupled in AdamW.
    pub weight_decay: f64,
    /// LARS only: exclude these parameters from trust-ratio adaptation *and* weight decay
    /// (BYOL's `exclude_bias_and_norm` filter). Ignored by SGD and AdamW.
    pub lars_exclude: bool,
}

impl ParamGroup {
    /// A group with learning rate `lr`, no weight decay, not excluded from LARS.
    pub fn new<S: Into<String>>(names: impl IntoIterator<Item = S>, lr: f64) -> Self {
        ParamGroup {
            names: names.into_iter().map(Into::into).collect(),
            lr,
            weight_decay: 0.0,
            lars_exclude: false,
        }
    }

    /// Sets the weight decay.
    pub fn with_weight_decay(mut self, weight_decay: f64) -> Self {
        self.weight_decay = weight_decay;
        self
    }

    /// Sets the LARS exclusion flag.
    pub fn with_lars_exclude(mut self, exclude: bool) -> Self {
        self.lars_exclude = exclude;
        self
    }
}

/// True for parameters that DINO and BYOL do not regularize: biases (a name that is `bias` or
/// ends in `.bias`) and every parameter of rank 0 or 1 (norm weights and biases).
///
/// DINO's `get_params_groups` tests `name.endswith(".bias") or len(param.shape) == 1`; BYOL's
/// `exclude_bias_and_norm` tests for biases and batch-norm parameters, which are rank 1.
pub fn is_bias_or_norm(name: &str, shape: &[usize]) -> bool {
    name == "bias" || name.ends_with(".bias") || shape.len() <= 1
}

/// Splits named parameters into DINO's two groups (`utils.get_params_groups`):
/// `[regularized, not_regularized]`, the first with `weight_decay`, the second with weight
/// decay 0 and [`ParamGroup::lars_exclude`] set (see [`is_bias_or_norm`]). Both keep the input
/// order. DINO's schedule then sets the weight decay of group 0 only, every iteration.
pub fn split_decay_groups<'a, S: AsRef<str>>(
    named_shapes: impl IntoIterator<Item = (S, &'a [usize])>,
    lr: f64,
    weight_decay: f64,
) -> [ParamGroup; 2] {
    let (mut reg, mut not_reg) = (Vec::new(), Vec::new());
    for (name, shape) in named_shapes {
        let name = name.as_ref();
        if is_bias_or_norm(name, shape) {
            not_reg.push(String::from(name));
        } else {
            reg.push(String::from(name));
        }
    }
    [
        ParamGroup::new(reg, lr).with_weight_decay(weight_decay),
        ParamGroup::new(not_reg, lr).with_lars_exclude(true),
    ]
}

/// An optimizer over parameter tensors (PyTorch: `torch.optim.Optimizer`). See the
/// [module docs](self) for the flat order and the three ways to step.
pub trait Optimizer<B: Backend> {
    /// The parameter groups.
    fn groups(&self) -> &[ParamGroup];

    /// The parameter groups, to change their learning rate or weight decay (schedules).
    fn groups_mut(&mut self) -> &mut [ParamGroup];

    /// One update of every parameter whose gradient is `Some`; `params` and `grads` are in the
    /// flat order (see [`Optimizer::param_names`]). Arguments are validated before anything
    /// changes; the update then runs in place on `params` (a tensor that shares its storage
    /// with another is copied first, so values held elsewhere never change).
    fn step_some(&mut self, params: &mut [Tensor<B>], grads: &[Option<Tensor<B>>]) -> Result<()>;

    /// The optimizer state as named tensors, `"<param name>.<field>"`; empty before the first
    /// step.
    fn state_dict(&self) -> StateDict<B>;

    /// Restores state saved by [`Optimizer::state_dict`]. Keys for unknown parameters or
    /// fields, and parameters with some fields missing, are errors; shapes are checked against
    /// the parameters at the next step.
    fn load_state_dict(&mut self, state: &StateDict<B>) -> Result<()>;

    /// One update with a gradient for every parameter (flat order).
    fn step(&mut self, params: &mut [Tensor<B>], grads: &[Tensor<B>]) -> Result<()> {
        let grads: Vec<Option<Tensor<B>>> = grads.iter().cloned().map(Some).collect();
        self.step_some(params, &grads)
    }

    /// One update with parameters and gradients keyed by name. `params` must hold every
    /// parameter of the optimizer (it may hold others, which are left alone); a parameter
    /// without an entry in `grads` is skipped; a gradient for an unknown name is an error.
    fn step_named(&mut self, params: &mut StateDict<B>, grads: &StateDict<B>) -> Result<()> {
        let names: Vec<String> = self.param_names().into_iter().map(String::from).collect();
        let mut missing = Vec::new();
        let mut flat = Vec::with_capacity(names.len());
        for n in &names {
            match params.get(n) {
                Some(p) => flat.push(p.clone()),
                None => missing.push(n.clone()),
            }
        }
        let unexpected: Vec<String> = grads
            .keys()
            .filter(|k| !names.contains(k))
            .cloned()
            .collect();
        if !missing.is_empty() || !unexpected.is_empty() {
            return Err(tessera_tensor::arg_err!(
                "step_named",
                "parameters missing from `params`: {missing:?}; gradients of unknown \
                 parameters: {unexpected:?}"
            )
            .into());
        }
        let g: Vec<Option<Tensor<B>>> = names.iter().map(|n| grads.get(n).cloned()).collect();
        self.step_some(&mut flat, &g)?;
        for (n, p) in names.into_iter().zip(flat) {
            params.insert(n, p);
        }
        Ok(())
    }

    /// One update of `module`'s parameters in place (PyTorch: `optimizer.step()` after
    /// `loss.backward()`), with gradients by name: a parameter without one is skipped, a
    /// gradient for an unknown name is an error. The parameters' tensors are moved into the
    /// step (each `Param` holds a 0-element placeholder meanwhile) and always put back, so an
    /// update writes where the values already are: no copy of the model per step.
    fn step_module<M: Module<B> + ?Sized>(
        &mut self,
        module: &mut M,
        grads: &StateDict<B>,
    ) -> Result<()>
    where
        Self: Sized,
    {
        let names: Vec<String> = self.param_names().into_iter().map(String::from).collect();
        let wanted: BTreeSet<&str> = names.iter().map(String::as_str).collect();
        let mut taken: BTreeMap<String, Tensor<B>> = BTreeMap::new();
        let mut failure: Option<tessera_tensor::Error> = None;
        module.visit_mut("", &mut |name, e| {
            if let EntryMut::Param(p) = e {
                if wanted.contains(name) && failure.is_none() {
                    let slot = p.value_mut();
                    match Tensor::zeros(&[0], slot.dtype(), slot.backend()) {
                        Ok(placeholder) => {
                            taken.insert(String::from(name), core::mem::replace(slot, placeholder));
                        }
                        Err(e) => failure = Some(e),
                    }
                }
            }
        });
        let result = match failure {
            Some(e) => Err(e.into()),
            None => step_taken(self, &names, &mut taken, grads),
        };
        // Always put every value back, stepped or not.
        module.visit_mut("", &mut |name, e| {
            if let EntryMut::Param(p) = e {
                if let Some(t) = taken.remove(name) {
                    *p.value_mut() = t;
                }
            }
        });
        result
    }

    /// Every parameter name in the flat order.
    fn param_names(&self) -> Vec<&str> {
        self.groups()
            .iter()
            .flat_map(|g| g.names.iter().map(String::as_str))
            .collect()
    }

    /// Sets the learning rate of every group (DINO: `param_group["lr"] = lr_schedule[it]`).
    fn set_lr(&mut self, lr: f64) {
        for g in self.groups_mut() {
            g.lr = lr;
        }
    }
}

/// [`Optimizer::step_module`]'s step over the moved-out tensors.
fn step_taken<B: Backend, O: Optimizer<B> + ?Sized>(
    opt: &mut O,
    names: &[String],
    taken: &mut BTreeMap<String, Tensor<B>>,
    grads: &StateDict<B>,
) -> Result<()> {
    let missing: Vec<&String> = names.iter().filter(|n| !taken.contains_key(*n)).collect();
    let unexpected: Vec<&String> = grads.keys().filter(|k| !names.contains(k)).collect();
    if !missing.is_empty() || !unexpected.is_empty() {
        return Err(tessera_tensor::arg_err!(
            "step_module",
            "parameters not in the module: {missing:?}; gradients of unknown parameters: \
             {unexpected:?}"
        )
        .into());
    }
    let mut flat: Vec<Tensor<B>> = names.iter().filter_map(|n| taken.remove(n)).collect();
    let g: Vec<Option<Tensor<B>>> = names.iter().map(|n| grads.get(n).cloned()).collect();
    let result = opt.step_some(&mut flat, &g);
    for (n, t) in names.iter().zip(flat) {
        taken.insert(n.clone(), t);
    }
    result
}

/// Checks a hyper-parameter; `what` names it in the error.
pub(crate) fn check_hparam(op: &'static str, what: &str, value: f64, ok: bool) -> Result<()> {
    if ok && !value.is_nan() {
        Ok(())
    } else {
        Err(tessera_tensor::arg_err!(op, "invalid {what}: {value}").into())
    }
}

/// Checks the groups' learning rates and weight decays and that no name appears twice.
pub(crate) fn check_groups(op: &'static str, groups: &[ParamGroup]) -> Result<()> {
    let mut seen = alloc::collections::BTreeSet::new();
    for g in groups {
        check_hparam(op, "learning rate", g.lr, g.lr >= 0.0)?;
        check_hparam(op, "weight decay", g.weight_decay, g.weight_decay >= 0.0)?;
        for n in &g.names {
            if !seen.insert(n.as_str()) {
                return Err(
                    tessera_tensor::arg_err!(op, "parameter \"{n}\" is in two groups").into(),
                );
            }
        }
    }
    Ok(())
}
