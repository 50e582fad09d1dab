//! Constant padding; the backward narrows the gradient back to the input's window.

use crate::{Backward, Var};
use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;
use tessera_tensor::{Backend, Result, Tensor};

struct PadBackward {
    /// `(axis, before, len)` for each padded dim.
    windows: Vec<(usize, usize, usize)>,
}

impl<B: Backend> Backward<B> for PadBackward {
    fn name(&self) -> &'static str {
        "pad"
    }
    fn backward(&self, g: &Tensor<B>, _needs: &[bool]) -> Result<Vec<Option<Tensor<B>>>> {
        let mut dx = g.clone();
        for &(axis, start, len) in &self.windows {
            dx = dx.narrow(axis as isize, start, len)?;
        }
        Ok(vec![Some(dx)])
    }
}

impl<B: Backend> Var<B> {
    /// Pads with `value`; `pads` lists `(before, after)` pairs from the **last** dim, as
    /// PyTorch's `F.pad`.
    pub fn pad(&self, pads: &[usize], value: f64) -> Result<Var<B>> {
        let x = self.value();
        let y = x.pad(pads, value)?;
        let r = x.rank();
        // The tensor op validated `pads` (even length, at most 2 * rank).
        let windows = pads
            .chunks(2)
            .enumerate()
            .filter(|(i, _)| *i < r)
            .map(|(i, pair)| {
                let axis = r - 1 - i;
                (axis, pair[0], x.shape()[axis])
            })
            .collect();
        Ok(Var::from_op(
            y,
            core::slice::from_ref(self),
            Box::new(PadBackward { windows }),
        ))
    }
}

#[cfg(test)]
mod tests {
    use crate::test_util::{check, rand};

    // Needs the tensor crate's pad (being written in parallel).
    #[test]
    fn pad_last_dims() {
        let x = rand(&[2, 3, 4], 1);
        check(|v| v[0].pad(&[1, 2], 0.5), core::slice::from_ref(&x));
        check(|v| v[0].pad(&[0, 1, 2, 0, 1, 1], 0.0), &[x]);
    }
}
