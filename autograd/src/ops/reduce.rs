//! Reductions over any set of axes (empty = all), with `keepdim`. Each backward first
//! reshapes the output gradient so the reduced dims are size 1, then broadcasts it back.

use super::{keepdim_grad, mask_as, need, reduced_axes};
use crate::{Backward, Var};
use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;
use tessera_tensor::{Backend, Result, Tensor};

/// Sum and mean: the gradient is spread evenly (`scale` = 1 or 1/n).
struct SumBackward {
    name: &'static str,
    in_shape: Vec<usize>,
    axes: Vec<usize>,
    scale: f64,
}

impl<B: Backend> Backward<B> for SumBackward {
    fn name(&self) -> &'static str {
        self.name
    }
    fn backward(&self, grad: &Tensor<B>, _needs: &[bool]) -> Result<Vec<Option<Tensor<B>>>> {
        let g = keepdim_grad(grad, &self.in_shape, &self.axes)?;
        let g = if self.scale == 1.0 {
            g
        } else {
            g.mul_scalar(self.scale)?
        };
        // A stride-0 view: no copy until a later op needs one.
        Ok(vec![Some(g.broadcast_to(&self.in_shape)?)])
    }
}

/// Max and min (PyTorch: `amax`/`amin`): the gradient goes to the positions equal to the
/// extremum, divided evenly among ties.
struct ExtremumBackward<B: Backend> {
    x: Tensor<B>,
    /// The output with the reduced dims kept.
    y_keep: Tensor<B>,
    axes: Vec<usize>,
}

impl<B: Backend> Backward<B> for ExtremumBackward<B> {
    fn name(&self) -> &'static str {
        "max/min"
    }
    fn backward(&self, grad: &Tensor<B>, _needs: &[bool]) -> Result<Vec<Option<Tensor<B>>>> {
        let axes: Vec<isize> = self.axes.iter().map(|&a| a as isize).collect();
        let hits = mask_as(&self.x.eq(&self.y_keep)?, self.x.dtype())?;
        let count = hits.sum(&axes, true)?;
        let g = keepdim_grad(grad, self.x.shape(), &self.axes)?;
        Ok(vec![Some(hits.mul(&g.div(&count)?)?)])
    }
}

/// Variance: `d/dx_i = 2 (x_i - mean) / (n - correction)`.
struct VarBackward<B: Backend> {
    centered: Tensor<B>,
    axes: Vec<usize>,
    denom: f64,
}

impl<B: Backend> Backward<B> for VarBackward<B> {
    fn name(&self) -> &'static str {
        "var"
    }
    fn backward(&self, grad: &Tensor<B>, needs: &[bool]) -> Result<Vec<Option<Tensor<B>>>> {
        if !need(needs, 0) {
            return Ok(vec![None]);
        }
        let g = keepdim_grad(grad, self.centered.shape(), &self.axes)?;
        let g = self.centered.mul(&g)?.mul_scalar(2.0 / self.denom)?;
        Ok(vec![Some(g)])
    }
}

impl<B: Backend> Var<B> {
    fn reduce_info(&self, op: &'static str, axes: &[isize]) -> Result<(Vec<usize>, usize)> {
        let x = self.value();
        let axes = reduced_axes(op, axes, x.rank())?;
        let n = axes.iter().map(|&a| x.shape()[a]).product();
        Ok((axes, n))
    }

    fn sum_scaled(&self, name: &'static str, y: Tensor<B>, axes: Vec<usize>, scale: f64) -> Var<B> {
        let bw = SumBackward {
            name,
            in_shape: self.value().shape().to_vec(),
            axes,
            scale,
        };
        Var::from_op(y, core::slice::from_ref(self), Box::new(bw))
    }

    /// Sum over `axes` (all if empty).
    pub fn sum(&self, axes: &[isize], keepdim: bool) -> Result<Var<B>> {
        let y = self.value().sum(axes, keepdim)?;
        let (axes, _) = self.reduce_info("sum", axes)?;
        Ok(self.sum_scaled("sum", y, axes, 1.0))
    }

    /// Sum of every element, as a rank-0 var (the usual last step before `backward`).
    pub fn sum_all(&self) -> Result<Var<B>> {
        self.sum(&[], false)
    }

    /// Mean over `axes` (all if empty).
    pub fn mean(&self, axes: &[isize], keepdim: bool) -> Result<Var<B>> {
        let y = self.value().mean(axes, keepdim)?;
        let (axes, n) = self.reduce_info("mean", axes)?;
        Ok(self.sum_scaled("mean", y, axes, 1.0 / n as f64))
    }

    fn extremum(&self, y: Tensor<B>, op: &'static str, axes: &[isize]) -> Result<Var<B>> {
        let (axes, _) = self.reduce_info(op, axes)?;
        let bw = ExtremumBackward {
            x: self.value().clone(),
            y_keep: keepdim_grad(&y, self.value().shape(), &axes)?,
            axes,
        };
        Ok(Var::from_op(y, core::slice::from_ref(self), Box::new(bw)))
    }

    /// Maximum over `axes` (PyTorch: `amax`); ties share the gradient evenly.
    pub fn max(&self, axes: &[isize], keepdim: bool) -> Result<Var<B>> {
        let y = self.value().max(axes, keepdim)?;
        self.extremum(y, "max", axes)
    }

    /// Minimum over `axes` (PyTorch: `amin`); ties share the gradient evenly.
    pub fn min(&self, axes: &[isize], keepdim: bool) -> Result<Var<B>> {
        let y = self.value().min(axes, keepdim)?;
        self.extremum(y, "min", axes)
    }

    /// Variance over `axes` with `correction` (1 = unbiased, PyTorch's default).
    pub fn var(&self, axes: &[isize], correction: usize, keepdim: bool) -> Result<Var<B>> {
        let x = self.value();
        let y = x.var(axes, correction, keepdim)?;
        let (axes_n, n) = self.reduce_info("var", axes)?;
        let denom = n.saturating_sub(correction) as f64;
        let bw = VarBackward {
            centered: x.sub(&x.mean(axes, true)?)?,
            axes: axes_n,
            denom,
        };
        Ok(Var::from_op(y, core::slice::from_ref(self), Box::new(bw)))
    }
}

#[cfg(test)]
mod tests {
    use crate::test_util::{check, rand};
    use crate::Var;
    use tessera_tensor::{Cpu, Tensor};

    #[test]
    fn sum_and_mean() {
        let x = rand(&[2, 3, 4], 1);
        check(|v| v[0].sum(&[], false), core::slice::from_ref(&x));
        check(|v| v[0].sum(&[0, 2], false), core::slice::from_ref(&x));
        check(|v| v[0].sum(&[-1], true), core::slice::from_ref(&x));
        check(|v| v[0].mean(&[1], false), core::slice::from_ref(&x));
        check(|v| v[0].mean(&[0, -1], true), &[x]);
    }

    #[test]
    fn max_min_and_var() {
        let x = rand(&[3, 4], 2);
        check(|v| v[0].max(&[1], false), core::slice::from_ref(&x));
        check(|v| v[0].min(&[0], true), core::slice::from_ref(&x));
        check(|v| v[0].max(&[], false), core::slice::from_ref(&x));
        check(|v| v[0].var(&[1], 1, false), core::slice::from_ref(&x));
        check(|v| v[0].var(&[], 0, true), &[x]);
    }

    #[test]
    fn max_ties_share_the_gradient() {
        let x = Var::leaf(Tensor::from_vec(vec![1.0f64, 3.0, 3.0, 0.0], &[4], &Cpu).unwrap());
        let g = x.max(&[0], false).unwrap().backward().unwrap();
        assert_eq!(
            g.get(&x).unwrap().to_vec::<f64>().unwrap(),
            [0.0, 0.5, 0.5, 0.0]
        );
    }
}
