//! Differentiable ops on [`Var`], one file per op family, mirroring
//! `tessera_tensor::ops`. Each file pairs the `Var` methods (forward: the tensor op, then
//! [`Var::from_op`]) with the [`Backward`](crate::Backward) structs that
//! differentiate them. The helpers below are shared by all of them.

mod binary;
mod concat;
mod conv;
mod index;
mod interpolate;
mod matmul;
mod norm;
mod pad;
mod pool;
mod reduce;
mod softmax;
mod unary;
mod view;

use crate::Var;
use alloc::sync::Arc;
use alloc::vec::Vec;
use tessera_tensor::shape::{broadcast_reduction_axes, normalize_axes};
use tessera_tensor::{Backend, DType, Error, Layout, Result, Tensor};

/// Sums a gradient over the axes along which an input of `shape` was broadcast, giving it
/// that input's shape. This is the one place broadcasting is undone: every op whose inputs
/// broadcast (binary ops, `where`, matmul batch dims, `broadcast_to`) calls it.
pub fn reduce_to_shape<B: Backend>(grad: &Tensor<B>, shape: &[usize]) -> Result<Tensor<B>> {
    if grad.shape() == shape {
        return Ok(grad.clone());
    }
    if shape.len() > grad.rank() {
        return Err(Error::Shape {
            op: "reduce_to_shape",
            msg: alloc::format!(
                "gradient {:?} cannot come from broadcasting {shape:?}",
                grad.shape()
            ),
        });
    }
    let axes: Vec<isize> = broadcast_reduction_axes(shape, grad.shape())
        .into_iter()
        .map(|a| a as isize)
        .collect();
    let summed = if axes.is_empty() {
        grad.clone()
    } else {
        grad.sum(&axes, true)?
    };
    summed.reshape(shape)
}

/// Reduction axes as the tensor crate reads them: sorted, non-negative, all if empty.
pub(crate) fn reduced_axes(op: &'static str, axes: &[isize], rank: usize) -> Result<Vec<usize>> {
    if axes.is_empty() {
        return Ok((0..rank).collect());
    }
    Ok(normalize_axes(op, axes, rank)?.to_vec())
}

/// The gradient of a reduction's output, reshaped to keep the reduced dims as size 1 (so it
/// broadcasts against the input).
pub(crate) fn keepdim_grad<B: Backend>(
    grad: &Tensor<B>,
    in_shape: &[usize],
    axes: &[usize],
) -> Result<Tensor<B>> {
    let keep: Vec<usize> = in_shape
        .iter()
        .enumerate()
        .map(|(i, &d)| if axes.contains(&i) { 1 } else { d })
        .collect();
    grad.reshape(&keep)
}

/// A zero tensor of `shape` with `grad` written into the positions that `view` selects from a
/// contiguous layout of `shape`. The adjoint of every view that drops elements (narrow,
/// slice, select, the pieces of split).
pub(crate) fn embed<B: Backend>(
    grad: &Tensor<B>,
    shape: &[usize],
    view: impl FnOnce(&Layout) -> Result<Layout>,
) -> Result<Tensor<B>> {
    let backend = grad.backend();
    let full = Layout::contiguous(shape);
    let dst_layout = view(&full)?;
    if dst_layout.shape() != grad.shape() {
        return Err(Error::Shape {
            op: "embed",
            msg: alloc::format!(
                "gradient {:?} does not fit the view {:?} of {shape:?}",
                grad.shape(),
                dst_layout.shape()
            ),
        });
    }
    let mut storage = backend.full(full.numel(), 0.0, grad.dtype())?;
    backend.copy_into(grad.storage(), grad.layout(), &mut storage, &dst_layout)?;
    Tensor::from_parts(Arc::new(storage), full, backend.clone())
}

/// `grad` where `mask` (U8) is set, 0 elsewhere.
pub(crate) fn masked<B: Backend>(mask: &Tensor<B>, grad: &Tensor<B>) -> Result<Tensor<B>> {
    let zero = Tensor::scalar(0.0, grad.dtype(), grad.backend())?;
    mask.where_cond(grad, &zero)
}

/// A U8 mask as 0.0/1.0 in `dtype`.
pub(crate) fn mask_as<B: Backend>(mask: &Tensor<B>, dtype: DType) -> Result<Tensor<B>> {
    mask.to_dtype(dtype)
}

/// Whether input `i` needs a gradient (false past the end of `needs`).
pub(crate) fn need(needs: &[bool], i: usize) -> bool {
    needs.get(i).copied().unwrap_or(false)
}

/// Shortcuts to the value's metadata.
impl<B: Backend> Var<B> {
    /// The value's shape.
    pub fn shape(&self) -> &[usize] {
        self.value().shape()
    }
    /// The value's dtype.
    pub fn dtype(&self) -> DType {
        self.value().dtype()
    }
    /// The value's rank.
    pub fn rank(&self) -> usize {
        self.value().rank()
    }
    /// The value's element count.
    pub fn numel(&self) -> usize {
        self.value().numel()
    }
}
