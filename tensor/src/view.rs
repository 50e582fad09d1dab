//! Zero-copy views: each returns a tensor sharing the storage with a new [`Layout`]
//! (PyTorch: `view`, `permute`, `transpose`, `narrow`, `expand`, `squeeze`, `unsqueeze`).
//! `reshape` and `contiguous` copy only when the layout requires it, as in PyTorch.

use crate::backend::Backend;
use crate::layout::Layout;
use crate::shape::normalize_axis;
use crate::{Result, Tensor};
use alloc::vec::Vec;

impl<B: Backend> Tensor<B> {
    /// A row-major copy if the view is not contiguous already; else a cheap clone.
    pub fn contiguous(&self) -> Result<Self> {
        if self.is_contiguous() {
            return Ok(self.clone());
        }
        self.copy()
    }

    /// Always copies into a fresh contiguous storage (PyTorch: `clone()`).
    pub fn copy(&self) -> Result<Self> {
        let s = self
            .backend()
            .cast(self.storage(), self.layout(), self.dtype())?;
        Ok(Self::from_storage(s, self.shape(), self.backend()))
    }

    /// Same elements in a new shape; one dim may be `usize::MAX` to be inferred (PyTorch's
    /// `-1`). A view when the layout allows it, else a copy (PyTorch: `reshape`).
    pub fn reshape(&self, shape: &[usize]) -> Result<Self> {
        let shape = self.infer_shape(shape)?;
        match self.layout().reshape(&shape) {
            Some(l) => Ok(self.with_layout(l)),
            None => self.copy()?.reshape(&shape),
        }
    }

    fn infer_shape(&self, shape: &[usize]) -> Result<Vec<usize>> {
        let mut out = shape.to_vec();
        let holes: Vec<usize> = (0..shape.len())
            .filter(|&i| shape[i] == usize::MAX)
            .collect();
        let err = || {
            crate::shape_err!(
                "reshape",
                "cannot reshape {:?} ({} elements) to {shape:?}",
                self.shape(),
                self.numel()
            )
        };
        match holes.as_slice() {
            [] => {}
            [i] => {
                let known: Vec<usize> =
                    shape.iter().copied().filter(|&d| d != usize::MAX).collect();
                let known = crate::shape::checked_numel(&known).ok_or_else(err)?;
                if known == 0 || self.numel() % known != 0 {
                    return Err(err());
                }
                out[*i] = self.numel() / known;
            }
            _ => return Err(err()),
        }
        if crate::shape::checked_numel(&out) != Some(self.numel()) {
            return Err(err());
        }
        Ok(out)
    }

    /// Merges dims `start..=end` into one (PyTorch: `flatten(start, end)`).
    pub fn flatten(&self, start: isize, end: isize) -> Result<Self> {
        let r = self.rank().max(1);
        let (s, e) = (
            normalize_axis("flatten", start, r)?,
            normalize_axis("flatten", end, r)?,
        );
        if self.rank() == 0 {
            return self.reshape(&[1]);
        }
        if s > e {
            return Err(crate::arg_err!(
                "flatten",
                "start {start} is after end {end} for shape {:?}",
                self.shape()
            ));
        }
        let sh = self.shape();
        let mut shape: Vec<usize> = sh[..s].to_vec();
        shape.push(sh[s..=e].iter().product());
        shape.extend_from_slice(&sh[e + 1..]);
        self.reshape(&shape)
    }

    /// Reorders dims (PyTorch: `permute`).
    pub fn permute(&self, perm: &[usize]) -> Result<Self> {
        Ok(self.with_layout(self.layout().permute(perm)?))
    }

    /// Swaps two dims (PyTorch: `transpose`).
    pub fn transpose(&self, a: isize, b: isize) -> Result<Self> {
        let r = self.rank();
        let (a, b) = (
            normalize_axis("transpose", a, r)?,
            normalize_axis("transpose", b, r)?,
        );
        Ok(self.with_layout(self.layout().transpose(a, b)))
    }

    /// Swaps the last two dims (PyTorch: `mT`).
    pub fn t(&self) -> Result<Self> {
        if self.rank() < 2 {
            return Err(crate::shape_err!(
                "t",
                "needs rank >= 2, got {:?}",
                self.shape()
            ));
        }
        self.transpose(-2, -1)
    }

    /// `len` elements of `axis` from `start` (PyTorch: `narrow`).
    pub fn narrow(&self, axis: isize, start: usize, len: usize) -> Result<Self> {
        let a = normalize_axis("narrow", axis, self.rank())?;
        Ok(self.with_layout(self.layout().narrow(a, start, len)?))
    }

    /// `x[.., start:end:step, ..]` along `axis`; `end` is clamped to the dim (PyTorch slicing).
    pub fn slice(&self, axis: isize, start: usize, end: usize, step: usize) -> Result<Self> {
        let a = normalize_axis("slice", axis, self.rank())?;
        Ok(self.with_layout(self.layout().slice(a, start, end, step)?))
    }

    /// The `index`-th entry along `axis`, dropping that dim (PyTorch: `select`, `x[i]`).
    pub fn select(&self, axis: isize, index: usize) -> Result<Self> {
        let a = normalize_axis("select", axis, self.rank())?;
        let l = self.layout().narrow(a, index, 1)?;
        Ok(self.with_layout(l.squeeze(a)?))
    }

    /// A view stretched to `shape` by broadcasting (PyTorch: `expand`). Stride-0 dims share
    /// one element: do not write through them.
    pub fn broadcast_to(&self, shape: &[usize]) -> Result<Self> {
        Ok(self.with_layout(self.layout().broadcast_to(shape)?))
    }

    /// Removes a size-1 dim.
    pub fn squeeze(&self, axis: isize) -> Result<Self> {
        let a = normalize_axis("squeeze", axis, self.rank())?;
        Ok(self.with_layout(self.layout().squeeze(a)?))
    }

    /// Inserts a size-1 dim; `axis` ranges over `-(rank+1)..=rank`.
    pub fn unsqueeze(&self, axis: isize) -> Result<Self> {
        let a = normalize_axis("unsqueeze", axis, self.rank() + 1)?;
        Ok(self.with_layout(self.layout().unsqueeze(a)))
    }

    /// A tensor with an explicit layout over this tensor's storage, checked to fit (PyTorch:
    /// `as_strided`).
    pub fn as_strided(&self, shape: &[usize], strides: &[usize], offset: usize) -> Result<Self> {
        if shape.len() != strides.len() {
            return Err(crate::shape_err!(
                "as_strided",
                "shape {shape:?} and strides {strides:?} differ in rank"
            ));
        }
        // try_from_parts: huge strides or shapes are an error here, not a wrapped offset that
        // a kernel (GEMM reads through raw pointers) would later follow.
        let l = Layout::try_from_parts(shape, strides, offset)?;
        l.check_fits(
            "as_strided",
            crate::backend::BackendStorage::len(&**self.storage()),
        )?;
        Ok(self.with_layout(l))
    }
}
