//! Reductions over any set of axes, with `keepdim` (PyTorch: `sum`, `mean`, `amax`, `amin`,
//! `argmax`, `var`). An empty axis list means "all axes", as in PyTorch.

pub(crate) mod cpu;
pub(crate) mod run_sum;
pub(crate) mod sum_contiguous;
pub mod sum_of_squares;

use crate::backend::{Backend, ReduceOp};
use crate::dtype::DType;
use crate::shape::{normalize_axes, normalize_axis, Dims};
use crate::{Result, Tensor};
use alloc::vec::Vec;

impl<B: Backend> Tensor<B> {
    fn reduce_axes(&self, op: &'static str, axes: &[isize]) -> Result<Dims> {
        if axes.is_empty() {
            return Ok((0..self.rank()).collect());
        }
        if self.rank() == 0 {
            // As in PyTorch, a scalar accepts dim 0 / -1 and reduces to itself.
            normalize_axes(op, axes, 1)?;
            return Ok(Dims::new());
        }
        normalize_axes(op, axes, self.rank())
    }

    /// The result shape: reduced dims become 1 (`keepdim`) or disappear.
    fn reduced_shape(&self, axes: &[usize], keepdim: bool) -> Vec<usize> {
        let mut s = Vec::new();
        for (i, &d) in self.shape().iter().enumerate() {
            if !axes.contains(&i) {
                s.push(d);
            } else if keepdim {
                s.push(1);
            }
        }
        s
    }

    /// Applies any [`ReduceOp`] over normalized axes.
    pub fn reduce(&self, op: ReduceOp, axes: &[isize], keepdim: bool) -> Result<Self> {
        let name = match op {
            ReduceOp::Sum => "sum",
            ReduceOp::Max => "max",
            ReduceOp::Min => "min",
            ReduceOp::ArgMax => "argmax",
            ReduceOp::ArgMin => "argmin",
        };
        let axes = self.reduce_axes(name, axes)?;
        if op != ReduceOp::Sum && axes.iter().any(|&a| self.shape()[a] == 0) {
            return Err(crate::shape_err!(
                name,
                "cannot reduce an empty dim of {:?} (axes {axes:?})",
                self.shape()
            ));
        }
        if op == ReduceOp::Sum && self.dtype() == DType::U8 {
            return self.to_dtype(DType::I64)?.reduce(
                op,
                &axes.iter().map(|&a| a as isize).collect::<Vec<_>>(),
                keepdim,
            );
        }
        let out_shape = self.reduced_shape(&axes, keepdim);
        if self.rank() == 0 {
            // A scalar reduces to itself (argmax of a scalar is 0).
            let t = if matches!(op, ReduceOp::ArgMax | ReduceOp::ArgMin) {
                Tensor::zeros(&[], DType::I64, self.backend())?
            } else {
                self.clone()
            };
            return Ok(t);
        }
        let s = self
            .backend()
            .reduce(op, self.storage(), self.layout(), &axes)?;
        let keep_shape = self.reduced_shape(&axes, true);
        Self::from_storage(s, &keep_shape, self.backend()).reshape(&out_shape)
    }

    /// Sum over `axes` (all if empty).
    pub fn sum(&self, axes: &[isize], keepdim: bool) -> Result<Self> {
        self.reduce(ReduceOp::Sum, axes, keepdim)
    }

    /// Sum of every element, as a rank-0 tensor.
    pub fn sum_all(&self) -> Result<Self> {
        self.sum(&[], false)
    }

    /// Mean over `axes` (all if empty).
    pub fn mean(&self, axes: &[isize], keepdim: bool) -> Result<Self> {
        self.check_float("mean")?;
        let n: usize = self
            .reduce_axes("mean", axes)?
            .iter()
            .map(|&a| self.shape()[a])
            .product();
        self.sum(axes, keepdim)?.mul_scalar(1.0 / n as f64)
    }

    /// Maximum over `axes` (PyTorch: `amax`); NaN propagates.
    pub fn max(&self, axes: &[isize], keepdim: bool) -> Result<Self> {
        self.reduce(ReduceOp::Max, axes, keepdim)
    }

    /// Minimum over `axes` (PyTorch: `amin`); NaN propagates.
    pub fn min(&self, axes: &[isize], keepdim: bool) -> Result<Self> {
        self.reduce(ReduceOp::Min, axes, keepdim)
    }

    /// Index (I64) of the first maximum along one axis.
    pub fn argmax(&self, axis: isize, keepdim: bool) -> Result<Self> {
        normalize_axis("argmax", axis, self.rank().max(1))?;
        self.reduce(ReduceOp::ArgMax, &[axis], keepdim)
    }

    /// Index (I64) of the first minimum along one axis.
    pub fn argmin(&self, axis: isize, keepdim: bool) -> Result<Self> {
        normalize_axis("argmin", axis, self.rank().max(1))?;
        self.reduce(ReduceOp::ArgMin, &[axis], keepdim)
    }

    /// Variance over `axes` with `correction` (1 = unbiased, PyTorch's default; 0 = biased).
    pub fn var(&self, axes: &[isize], correction: usize, keepdim: bool) -> Result<Self> {
        self.check_float("var")?;
        let n: usize = self
            .reduce_axes("var", axes)?
            .iter()
            .map(|&a| self.shape()[a])
            .product();
        let mean = self.mean(axes, true)?;
        let dev = self.sub(&mean)?.square()?;
        let denom = n.saturating_sub(correction);
        // n <= correction gives inf/NaN as in PyTorch (with its warning), not an error.
        dev.sum(axes, keepdim)?.mul_scalar(if denom == 0 {
            f64::INFINITY
        } else {
            1.0 / denom as f64
        })
    }
}
