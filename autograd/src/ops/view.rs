//! Views: the forward shares storage, the backward is the adjoint layout change. Shape-only
//! views (reshape, squeeze, unsqueeze, flatten) reshape the gradient back; permutations apply
//! the inverse; views that drop elements (narrow, slice, select) write the gradient into
//! zeros; `broadcast_to` sums it back with [`reduce_to_shape`].

use super::{embed, reduce_to_shape};
use crate::{Backward, Var};
use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;
use tessera_tensor::shape::normalize_axis;
use tessera_tensor::{Backend, Layout, Result, Tensor};

/// reshape, flatten, squeeze, unsqueeze, contiguous.
struct ReshapeBackward {
    name: &'static str,
    in_shape: Vec<usize>,
}

impl<B: Backend> Backward<B> for ReshapeBackward {
    fn name(&self) -> &'static str {
        self.name
    }
    fn backward(&self, grad: &Tensor<B>, _needs: &[bool]) -> Result<Vec<Option<Tensor<B>>>> {
        Ok(vec![Some(grad.reshape(&self.in_shape)?)])
    }
}

struct PermuteBackward {
    inverse: Vec<usize>,
}

impl<B: Backend> Backward<B> for PermuteBackward {
    fn name(&self) -> &'static str {
        "permute"
    }
    fn backward(&self, grad: &Tensor<B>, _needs: &[bool]) -> Result<Vec<Option<Tensor<B>>>> {
        Ok(vec![Some(grad.permute(&self.inverse)?)])
    }
}

/// The sub-view a narrow/slice/select took, replayed on the gradient's zero canvas.
#[derive(Clone, Copy)]
enum Window {
    Slice {
        axis: usize,
        start: usize,
        end: usize,
        step: usize,
    },
    Select {
        axis: usize,
        index: usize,
    },
}

struct WindowBackward {
    name: &'static str,
    in_shape: Vec<usize>,
    window: Window,
}

impl<B: Backend> Backward<B> for WindowBackward {
    fn name(&self) -> &'static str {
        self.name
    }
    fn backward(&self, grad: &Tensor<B>, _needs: &[bool]) -> Result<Vec<Option<Tensor<B>>>> {
        let g = embed(grad, &self.in_shape, |l| self.window.of(l))?;
        Ok(vec![Some(g)])
    }
    fn input_window(&self, input: &Layout) -> Option<Result<Layout>> {
        Some(self.window.of(input))
    }
}

impl Window {
    /// The part of `l` (a layout of the op's input) that the output views.
    fn of(&self, l: &Layout) -> Result<Layout> {
        match *self {
            Window::Slice {
                axis,
                start,
                end,
                step,
            } => l.slice(axis, start, end, step),
            Window::Select { axis, index } => l.narrow(axis, index, 1)?.squeeze(axis),
        }
    }
}

struct BroadcastBackward {
    in_shape: Vec<usize>,
}

impl<B: Backend> Backward<B> for BroadcastBackward {
    fn name(&self) -> &'static str {
        "broadcast_to"
    }
    fn backward(&self, grad: &Tensor<B>, _needs: &[bool]) -> Result<Vec<Option<Tensor<B>>>> {
        Ok(vec![Some(reduce_to_shape(grad, &self.in_shape)?)])
    }
}

impl<B: Backend> Var<B> {
    fn reshaped(&self, name: &'static str, y: Tensor<B>) -> Var<B> {
        let in_shape = self.value().shape().to_vec();
        Var::from_op(
            y,
            core::slice::from_ref(self),
            Box::new(ReshapeBackward { name, in_shape }),
        )
    }

    fn windowed(&self, name: &'static str, y: Tensor<B>, window: Window) -> Var<B> {
        let bw = WindowBackward {
            name,
            in_shape: self.value().shape().to_vec(),
            window,
        };
        Var::from_op(y, core::slice::from_ref(self), Box::new(bw))
    }

    /// Same elements in a new shape; one dim may be `usize::MAX` (inferred).
    pub fn reshape(&self, shape: &[usize]) -> Result<Var<B>> {
        let y = self.value().reshape(shape)?;
        Ok(self.reshaped("reshape", y))
    }
    /// Merges dims `start..=end` into one.
    pub fn flatten(&self, start: isize, end: isize) -> Result<Var<B>> {
        let y = self.value().flatten(start, end)?;
        Ok(self.reshaped("flatten", y))
    }
    /// Removes a size-1 dim.
    pub fn squeeze(&self, axis: isize) -> Result<Var<B>> {
        let y = self.value().squeeze(axis)?;
        Ok(self.reshaped("squeeze", y))
    }
    /// Inserts a size-1 dim.
    pub fn unsqueeze(&self, axis: isize) -> Result<Var<B>> {
        let y = self.value().unsqueeze(axis)?;
        Ok(self.reshaped("unsqueeze", y))
    }
    /// A row-major copy if needed; the gradient passes through unchanged.
    pub fn contiguous(&self) -> Result<Var<B>> {
        let y = self.value().contiguous()?;
        Ok(self.reshaped("contiguous", y))
    }

    /// Reorders dims.
    pub fn permute(&self, perm: &[usize]) -> Result<Var<B>> {
        let y = self.value().permute(perm)?;
        let mut inverse = vec![0; perm.len()];
        for (i, &p) in perm.iter().enumerate() {
            inverse[p] = i;
        }
        Ok(Var::from_op(
            y,
            core::slice::from_ref(self),
            Box::new(PermuteBackward { inverse }),
        ))
    }
    /// Swaps two dims.
    pub fn transpose(&self, a: isize, b: isize) -> Result<Var<B>> {
        let r = self.value().rank();
        let a = normalize_axis("transpose", a, r)?;
        let b = normalize_axis("transpose", b, r)?;
        let mut perm: Vec<usize> = (0..r).collect();
        perm.swap(a, b);
        self.permute(&perm)
    }
    /// Swaps the last two dims.
    pub fn t(&self) -> Result<Var<B>> {
        self.value().t()?; // rank check and message
        self.transpose(-2, -1)
    }

    /// `len` elements of `axis` from `start`.
    pub fn narrow(&self, axis: isize, start: usize, len: usize) -> Result<Var<B>> {
        let y = self.value().narrow(axis, start, len)?;
        let axis = normalize_axis("narrow", axis, self.value().rank())?;
        let window = Window::Slice {
            axis,
            start,
            end: start + len,
            step: 1,
        };
        Ok(self.windowed("narrow", y, window))
    }
    /// `x[.., start:end:step, ..]` along `axis`.
    pub fn slice(&self, axis: isize, start: usize, end: usize, step: usize) -> Result<Var<B>> {
        let y = self.value().slice(axis, start, end, step)?;
        let axis = normalize_axis("slice", axis, self.value().rank())?;
        let window = Window::Slice {
            axis,
            start,
            end,
            step,
        };
        Ok(self.windowed("slice", y, window))
    }
    /// The `index`-th entry along `axis`, dropping that dim.
    pub fn select(&self, axis: isize, index: usize) -> Result<Var<B>> {
        let y = self.value().select(axis, index)?;
        let axis = normalize_axis("select", axis, self.value().rank())?;
        Ok(self.windowed("select", y, Window::Select { axis, index }))
    }

    /// Stretched to `shape` by broadcasting (PyTorch: `expand`).
    pub fn broadcast_to(&self, shape: &[usize]) -> Result<Var<B>> {
        let y = self.value().broadcast_to(shape)?;
        let in_shape = self.value().shape().to_vec();
        Ok(Var::from_op(
            y,
            core::slice::from_ref(self),
            Box::new(BroadcastBackward { in_shape }),
        ))
    }
}

#[cfg(test)]
mod tests {
    use crate::test_util::{check, rand};

    #[test]
    fn shape_views() {
        let x = rand(&[2, 3, 4], 1);
        check(
            |v| v[0].reshape(&[4, usize::MAX])?.mul(&v[0].reshape(&[4, 6])?),
            core::slice::from_ref(&x),
        );
        check(|v| v[0].flatten(1, 2), core::slice::from_ref(&x));
        check(
            |v| v[0].unsqueeze(1)?.squeeze(1)?.unsqueeze(-1),
            core::slice::from_ref(&x),
        );
        check(
            |v| v[0].permute(&[2, 0, 1])?.contiguous(),
            core::slice::from_ref(&x),
        );
        check(|v| v[0].transpose(0, -1), core::slice::from_ref(&x));
        check(|v| v[0].t(), &[x]);
    }

    #[test]
    fn windows_and_broadcast() {
        let x = rand(&[3, 5], 2);
        check(|v| v[0].narrow(1, 1, 3), core::slice::from_ref(&x));
        check(|v| v[0].slice(-1, 0, 5, 2), core::slice::from_ref(&x));
        check(|v| v[0].select(0, 2), core::slice::from_ref(&x));
        check(|v| v[0].select(-1, 4)?.square(), core::slice::from_ref(&x));
        check(|v| v[0].broadcast_to(&[2, 3, 5]), &[x]);
        check(|v| v[0].broadcast_to(&[4, 3]), &[rand(&[3], 3)]);
        check(|v| v[0].broadcast_to(&[2, 3]), &[rand(&[2, 1], 4)]);
    }
}
