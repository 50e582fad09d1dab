//! Softmax and log-softmax with their closed-form backward passes (not the composite op's
//! chain of exp/sum/div unrolled), both from the saved output:
//! `softmax: dx = y * (g - sum(g * y))`, `log_softmax: dx = g - exp(y) * sum(g)`.

use super::need;
use crate::{Backward, Var};
use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;
use tessera_tensor::shape::normalize_axis;
use tessera_tensor::{Backend, Result, Tensor};

struct SoftmaxBackward<B: Backend> {
    y: Tensor<B>,
    axis: isize,
    log: bool,
}

impl<B: Backend> Backward<B> for SoftmaxBackward<B> {
    fn name(&self) -> &'static str {
        if self.log {
            "log_softmax"
        } else {
            "softmax"
        }
    }
    fn backward(&self, g: &Tensor<B>, needs: &[bool]) -> Result<Vec<Option<Tensor<B>>>> {
        if !need(needs, 0) {
            return Ok(vec![None]);
        }
        // The closed forms live in the backend, which may fuse them.
        let (axis, backend) = (self.axis as usize, self.y.backend());
        let dx = if self.log {
            backend.log_softmax_backward(&self.y, g, axis)?
        } else {
            backend.softmax_backward(&self.y, g, axis)?
        };
        Ok(vec![Some(dx)])
    }
}

impl<B: Backend> Var<B> {
    fn softmax_record(&self, y: Tensor<B>, axis: isize, log: bool) -> Result<Var<B>> {
        let axis = normalize_axis("softmax", axis, self.value().rank())? as isize;
        let bw = SoftmaxBackward {
            y: y.clone(),
            axis,
            log,
        };
        Ok(Var::from_op(y, core::slice::from_ref(self), Box::new(bw)))
    }

    /// Softmax along `axis`.
    pub fn softmax(&self, axis: isize) -> Result<Var<B>> {
        let y = self.value().softmax(axis)?;
        self.softmax_record(y, axis, false)
    }

    /// Log-softmax along `axis`.
    pub fn log_softmax(&self, axis: isize) -> Result<Var<B>> {
        let y = self.value().log_softmax(axis)?;
        self.softmax_record(y, axis, true)
    }
}

#[cfg(test)]
mod tests {
    use crate::test_util::{check, rand};

    #[test]
    fn softmax_and_log_softmax() {
        let x = rand(&[2, 3, 4], 1);
        check(|v| v[0].softmax(-1), core::slice::from_ref(&x));
        check(|v| v[0].softmax(1), core::slice::from_ref(&x));
        check(|v| v[0].log_softmax(-1), core::slice::from_ref(&x));
        check(|v| v[0].log_softmax(0), &[x]);
    }
}
