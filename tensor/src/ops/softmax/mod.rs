//! Softmax and log-softmax along one axis, numerically stable (PyTorch: `F.softmax`,
//! `F.log_softmax`). Composite ops: the default subtracts the max, a backend may fuse.

mod backward_cpu;
pub(crate) mod cpu;
mod cpu_f32;

pub(crate) use backward_cpu::softmax_backward as cpu_softmax_backward;

use crate::backend::Backend;
use crate::shape::normalize_axis;
use crate::{Result, Tensor};

impl<B: Backend> Tensor<B> {
    /// `exp(x - max) / sum(exp(x - max))` along `axis`.
    pub fn softmax(&self, axis: isize) -> Result<Self> {
        self.check_float("softmax")?;
        let a = normalize_axis("softmax", axis, self.rank())?;
        self.backend().softmax(self, a)
    }

    /// `x - max - log(sum(exp(x - max)))` along `axis`.
    pub fn log_softmax(&self, axis: isize) -> Result<Self> {
        self.check_float("log_softmax")?;
        let a = normalize_axis("log_softmax", axis, self.rank())?;
        self.backend().log_softmax(self, a)
    }
}
