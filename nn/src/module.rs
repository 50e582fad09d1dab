//! The module abstraction (PyTorch: `nn.Module`): named parameters and buffers with
//! PyTorch's dotted names, train/eval mode, freezing, and a visitor over everything.
//!
//! A layer is a plain struct whose fields are [`Param`]s, buffers (`Tensor`s such as
//! BatchNorm's running statistics) and sub-modules. It implements [`Module::visit`] and
//! [`Module::visit_mut`] by naming each field; containers prefix their children's names
//! (`blocks.3.attn.qkv.weight`). Everything else — state dicts, loading checkpoints, handing
//! parameters and gradients to an optimizer, EMA of a teacher — is written once on top of the
//! two visitors.
//!
//! A [`Param`] holds its value as an autograd leaf [`Var`]: a forward pass uses `param.var()`
//! and the gradient is found in the `Gradients` by that var. Frozen parameters are constants,
//! so no gradient is computed for them (PyTorch: `requires_grad=False`).

use crate::checkpoint::StateDict;
use crate::{Error, Result};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use tessera_autograd::{Gradients, Var};
use tessera_tensor::{Backend, Tensor};

/// A trainable tensor (PyTorch: `nn.Parameter`).
#[derive(Clone, Debug)]
pub struct Param<B: Backend> {
    var: Var<B>,
    frozen: bool,
}

impl<B: Backend> Param<B> {
    /// A trainable parameter with this initial value.
    pub fn new(value: Tensor<B>) -> Self {
        Param {
            var: Var::leaf(value),
            frozen: false,
        }
    }

    /// The current value.
    pub fn value(&self) -> &Tensor<B> {
        self.var.value()
    }

    /// The value as a graph input: a leaf if trainable, a constant if frozen.
    pub fn var(&self) -> &Var<B> {
        &self.var
    }

    /// Replaces the value (after an optimizer step or when loading a checkpoint). Shape and
    /// dtype must stay the same.
    pub fn set(&mut self, value: Tensor<B>) -> tessera_tensor::Result<()> {
        let old = self.value();
        if old.shape() != value.shape() || old.dtype() != value.dtype() {
            return Err(tessera_tensor::Error::Shape {
                op: "Param::set",
                msg: format!(
                    "new value {:?} {} does not match {:?} {}",
                    value.shape(),
                    value.dtype(),
                    old.shape(),
                    old.dtype()
                ),
            });
        }
        self.var = if self.frozen {
            Var::constant(value)
        } else {
            Var::leaf(value)
        };
        Ok(())
    }

    /// The value for writing in place (an optimizer step, an EMA update). If a graph or a
    /// clone still shares this parameter's node, the parameter first gets a node of its own
    /// (same value; the storage is then copied on the first write, so the graph's view of
    /// the old value stays intact).
    pub fn value_mut(&mut self) -> &mut Tensor<B> {
        if self.var.value_mut().is_none() {
            let v = self.value().clone();
            self.var = if self.frozen {
                Var::constant(v)
            } else {
                Var::leaf(v)
            };
        }
        self.var
            .value_mut()
            .expect("a fresh Var is not shared with anything")
    }

    /// Stops (or restarts) gradient computation for this parameter.
    pub fn set_frozen(&mut self, frozen: bool) {
        self.frozen = frozen;
        let v = self.value().clone();
        self.var = if frozen {
            Var::constant(v)
        } else {
            Var::leaf(v)
        };
    }

    /// True if no gradient is computed for it.
    pub fn is_frozen(&self) -> bool {
        self.frozen
    }

    /// This parameter's gradient in `grads`, if it got one.
    pub fn grad<'g>(&self, grads: &'g Gradients<B>) -> Option<&'g Tensor<B>> {
        grads.get(&self.var)
    }
}

/// What a visitor sees: a parameter or a buffer.
#[derive(Debug)]
pub enum Entry<'a, B: Backend> {
    Param(&'a Param<B>),
    /// Non-trainable state saved in the state dict (BatchNorm's running statistics).
    Buffer(&'a Tensor<B>),
}

/// What a mutable visitor sees.
#[derive(Debug)]
pub enum EntryMut<'a, B: Backend> {
    Param(&'a mut Param<B>),
    Buffer(&'a mut Tensor<B>),
}

/// `prefix.name`, or `name` at the root.
pub fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        String::from(name)
    } else {
        format!("{prefix}.{name}")
    }
}

/// A layer or model (PyTorch: `nn.Module`).
pub trait Module<B: Backend> {
    /// Calls `f` with the full dotted name of every parameter and buffer, in a fixed order.
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_, B>));

    /// Like [`Module::visit`], with mutable access.
    fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, EntryMut<'_, B>));

    /// Switches training mode (BatchNorm statistics, dropout); containers forward it to their
    /// children. PyTorch: `train()` / `eval()`.
    fn set_training(&mut self, training: bool);
}

/// Extension methods available on every [`Module`].
pub trait ModuleExt<B: Backend>: Module<B> {
    /// `(name, param)` for every parameter, in visit order (PyTorch: `named_parameters()`).
    fn named_params(&self) -> Vec<(String, Param<B>)> {
        let mut out = Vec::new();
        self.visit("", &mut |name, e| {
            if let Entry::Param(p) = e {
                out.push((String::from(name), p.clone()));
            }
        });
        out
    }

    /// Number of parameter elements (trainable and frozen).
    fn num_params(&self) -> usize {
        self.named_params()
            .iter()
            .map(|(_, p)| p.value().numel())
            .sum()
    }

    /// Every parameter and buffer by name (PyTorch: `state_dict()`).
    fn state_dict(&self) -> StateDict<B> {
        let mut sd = StateDict::new();
        self.visit("", &mut |name, e| {
            let t = match e {
                Entry::Param(p) => p.value().clone(),
                Entry::Buffer(b) => b.clone(),
            };
            sd.insert(String::from(name), t);
        });
        sd
    }

    /// Loads every parameter and buffer from `sd` (PyTorch: `load_state_dict(strict=True)`):
    /// a missing, unexpected or mis-shaped key is an error that names it (and both shapes),
    /// and then nothing is changed. Values are cast to the module's dtype.
    fn load_state_dict(&mut self, sd: &StateDict<B>) -> Result<()> {
        let loaded = crate::checkpoint::load_state_dict(&self.state_dict(), sd, true)?;
        self.assign(&loaded)
    }

    /// Writes the tensors of `values` into the parameters and buffers of the same names
    /// (contiguous copies); names not present are left unchanged.
    fn assign(&mut self, values: &StateDict<B>) -> Result<()> {
        let mut failure: Option<Error> = None;
        self.visit_mut("", &mut |name, e| {
            let Some(v) = values.get(name) else { return };
            if failure.is_some() {
                return;
            }
            let r = v.contiguous().map_err(Error::from).and_then(|v| match e {
                EntryMut::Param(p) => p.set(v).map_err(Error::from),
                EntryMut::Buffer(b) => {
                    *b = v;
                    Ok(())
                }
            });
            failure = r.err();
        });
        failure.map_or(Ok(()), Err)
    }

    /// Freezes or unfreezes every parameter whose name starts with `prefix` (all if empty).
    fn set_frozen(&mut self, prefix: &str, frozen: bool) {
        self.visit_mut("", &mut |name, e| {
            if let EntryMut::Param(p) = e {
                if name.starts_with(prefix) {
                    p.set_frozen(frozen);
                }
            }
        });
    }

    /// The gradients of every trainable parameter that got one, by name.
    fn grads_by_name(&self, grads: &Gradients<B>) -> StateDict<B> {
        let mut out = StateDict::new();
        self.visit("", &mut |name, e| {
            if let Entry::Param(p) = e {
                if let Some(g) = p.grad(grads) {
                    out.insert(String::from(name), g.clone());
                }
            }
        });
        out
    }
}

impl<B: Backend, M: Module<B> + ?Sized> ModuleExt<B> for M {}
