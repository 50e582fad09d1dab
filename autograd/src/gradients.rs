//! [`Gradients`]: what one backward pass returns, the gradient of each leaf by id.

use crate::Var;
use alloc::collections::BTreeMap;
use core::fmt;
use tessera_tensor::{Backend, Tensor};

/// The gradients of one backward pass, keyed by leaf (PyTorch: the `.grad` fields).
pub struct Gradients<B: Backend> {
    grads: BTreeMap<u64, Tensor<B>>,
}

impl<B: Backend> Gradients<B> {
    pub(crate) fn new() -> Self {
        Gradients {
            grads: BTreeMap::new(),
        }
    }
    pub(crate) fn insert(&mut self, id: u64, grad: Tensor<B>) {
        self.grads.insert(id, grad);
    }
    /// The gradient of `var`, or `None` if the output does not depend on it.
    pub fn get(&self, var: &Var<B>) -> Option<&Tensor<B>> {
        self.grads.get(&var.id())
    }
    /// Takes the gradient of `var` out.
    pub fn remove(&mut self, var: &Var<B>) -> Option<Tensor<B>> {
        self.grads.remove(&var.id())
    }
    /// `(var id, gradient)` pairs in increasing id order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &Tensor<B>)> {
        self.grads.iter().map(|(&id, g)| (id, g))
    }
    pub fn len(&self) -> usize {
        self.grads.len()
    }
    pub fn is_empty(&self) -> bool {
        self.grads.is_empty()
    }
}

impl<B: Backend> fmt::Debug for Gradients<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.grads.iter()).finish()
    }
}
