//! In-place updates (PyTorch: the trailing-underscore methods `x.add_(y)`, `x.mul_(c)`,
//! `x.copy_(y)`), the memory model's way to change a parameter, a gradient buffer or an
//! optimizer state without a new allocation.
//!
//! Tensors share storages (views, clones), so an in-place op first makes the storage its
//! own ([`Tensor::make_unique`]): if another tensor can see the storage, or the view overlaps
//! itself (a broadcast), the tensor is given a private contiguous copy first (copy on write),
//! and only then written. An in-place op therefore never changes a value held elsewhere,
//! and on a tensor that is the only owner of its storage (a parameter after its gradient is
//! gone, an optimizer moment) it writes where the data already is.

pub(crate) mod cpu;

use crate::backend::{AdamWStep, Backend, BackendStorage, BinaryOp, SgdStep, UnaryOp};
use crate::layout::Layout;
use crate::{Result, Tensor};
use alloc::sync::Arc;
use alloc::vec::Vec;

/// True if no two elements of the view share a storage position. Sufficient test: with the
/// dims sorted by stride, every stride steps over all the elements of the smaller ones.
pub(crate) fn is_non_overlapping(l: &Layout) -> bool {
    let mut dims: Vec<(usize, usize)> = l
        .shape()
        .iter()
        .zip(l.strides())
        .filter(|(&d, _)| d > 1)
        .map(|(&d, &s)| (s, d))
        .collect();
    dims.sort_unstable();
    let mut span = 1usize;
    for (stride, size) in dims {
        if stride < span {
            return false;
        }
        span = match stride.checked_mul(size) {
            Some(s) => s,
            None => return false,
        };
    }
    true
}

impl<B: Backend> Tensor<B> {
    /// Makes this tensor the only owner of a storage it may write through: a no-op if it
    /// already is and its view does not overlap itself, else a private contiguous copy.
    pub fn make_unique(&mut self) -> Result<()> {
        let unique = Arc::get_mut(self.parts_mut().0).is_some();
        if unique && is_non_overlapping(self.layout()) {
            return Ok(());
        }
        *self = self.copy()?;
        Ok(())
    }

    /// Mutable access to the storage for backend authors (after [`Tensor::make_unique`]),
    /// with the layout the elements are viewed through.
    pub fn storage_mut(&mut self) -> Result<(&mut B::Storage, &Layout)> {
        self.make_unique()?;
        let (arc, layout) = self.parts_mut();
        let storage = Arc::get_mut(arc)
            .ok_or_else(|| crate::arg_err!("storage_mut", "storage is shared after make_unique"))?;
        Ok((storage, layout))
    }

    fn check_inplace_operand(&self, op: &'static str, other: &Self) -> Result<Layout> {
        self.check_same_backend(op, other)?;
        self.check_same_dtype(op, other)?;
        other.layout().broadcast_to(self.shape()).map_err(|_| {
            crate::shape_err!(
                op,
                "cannot write {:?} into a tensor of shape {:?} in place",
                other.shape(),
                self.shape()
            )
        })
    }

    /// `x = op(x)` in place (PyTorch: `x.exp_()`, `x.mul_(c)`, ...).
    pub fn unary_(&mut self, op: UnaryOp) -> Result<()> {
        self.check_float("unary_")?;
        let backend = self.backend().clone();
        let (s, l) = self.storage_mut()?;
        let l = l.clone();
        backend.unary_inplace(op, s, &l)
    }

    /// `x = x * c` in place (PyTorch: `x.mul_(c)`).
    pub fn mul_scalar_(&mut self, c: f64) -> Result<()> {
        self.unary_(UnaryOp::Affine { mul: c, add: 0.0 })
    }

    /// `x = op(x, other)` in place, `other` broadcast to this shape (PyTorch: `x.add_(y)`).
    pub fn binary_(&mut self, op: BinaryOp, other: &Self) -> Result<()> {
        self.check_float("binary_")?;
        let ol = self.check_inplace_operand("binary_", other)?;
        let backend = self.backend().clone();
        // `other` may be a view of this very storage: then `make_unique` below must copy
        // (the storage is shared), so reading `other` while writing `self` is safe.
        let other_storage = other.storage().clone();
        let (s, l) = self.storage_mut()?;
        let l = l.clone();
        backend.binary_inplace(op, s, &l, &other_storage, &ol)
    }

    /// `x[window] = op(x[window], other)` in place, where `window` maps this tensor's layout
    /// to the layout of a part of it (a narrow, slice or select of it) and `other` has that
    /// part's shape (PyTorch: `x[i] += y`). Autograd adds the gradient of a view into the
    /// gradient of the tensor it was taken from this way, without a zero tensor of the whole
    /// shape per view.
    pub fn binary_in_window_(
        &mut self,
        op: BinaryOp,
        window: impl FnOnce(&Layout) -> Result<Layout>,
        other: &Self,
    ) -> Result<()> {
        let name = "binary_in_window_";
        self.check_float(name)?;
        self.check_same_backend(name, other)?;
        self.check_same_dtype(name, other)?;
        let backend = self.backend().clone();
        let other_storage = other.storage().clone();
        let (s, l) = self.storage_mut()?;
        let wl = window(l)?;
        wl.check_fits(name, s.len())?;
        if wl.shape() != other.shape() {
            return Err(crate::shape_err!(
                name,
                "the window is {:?} but the operand is {:?}",
                wl.shape(),
                other.shape()
            ));
        }
        backend.binary_inplace(op, s, &wl, &other_storage, other.layout())
    }

    /// Copies `src` (broadcast to this shape) into this tensor's elements (PyTorch:
    /// `x.copy_(src)`).
    pub fn assign_(&mut self, src: &Self) -> Result<()> {
        let sl = self.check_inplace_operand("assign_", src)?;
        let backend = self.backend().clone();
        let src_storage = src.storage().clone();
        let (s, l) = self.storage_mut()?;
        let l = l.clone();
        backend.copy_into(&src_storage, &sl, s, &l)
    }

    fn check_update_operand(&self, op: &'static str, what: &str, other: &Self) -> Result<()> {
        self.check_same_backend(op, other)?;
        self.check_same_dtype(op, other)?;
        if other.shape() != self.shape() {
            return Err(crate::shape_err!(
                op,
                "parameter {:?} but {what} {:?}",
                self.shape(),
                other.shape()
            ));
        }
        Ok(())
    }

    /// One fused AdamW step of this parameter, in place (see [`AdamWStep`]).
    pub fn adamw_update_(
        &mut self,
        grad: &Self,
        exp_avg: &mut Self,
        exp_avg_sq: &mut Self,
        step: &AdamWStep,
    ) -> Result<()> {
        let op = "adamw_update";
        self.check_float(op)?;
        self.check_update_operand(op, "gradient", grad)?;
        self.check_update_operand(op, "exp_avg", exp_avg)?;
        self.check_update_operand(op, "exp_avg_sq", exp_avg_sq)?;
        if step.step == 0 {
            return Err(crate::arg_err!(op, "step numbers start at 1"));
        }
        self.make_unique()?;
        exp_avg.make_unique()?;
        exp_avg_sq.make_unique()?;
        let backend = self.backend().clone();
        backend.adamw_update(self, grad, exp_avg, exp_avg_sq, step)
    }

    /// One fused SGD step of this parameter, in place (see [`SgdStep`]).
    pub fn sgd_update_(
        &mut self,
        grad: &Self,
        momentum_buffer: Option<&mut Self>,
        step: &SgdStep,
    ) -> Result<()> {
        let op = "sgd_update";
        self.check_float(op)?;
        self.check_update_operand(op, "gradient", grad)?;
        self.make_unique()?;
        let buf = match momentum_buffer {
            Some(b) => {
                self.check_update_operand(op, "momentum buffer", b)?;
                b.make_unique()?;
                Some(b)
            }
            None => None,
        };
        let backend = self.backend().clone();
        backend.sgd_update(self, grad, buf, step)
    }

    /// `self = momentum * self + (1 - momentum) * source`, in place (a teacher's EMA step).
    pub fn ema_update_(&mut self, source: &Self, momentum: f64) -> Result<()> {
        let op = "ema_update";
        self.check_float(op)?;
        self.check_update_operand(op, "source", source)?;
        self.make_unique()?;
        let backend = self.backend().clone();
        backend.ema_update(self, source, momentum)
    }
}
