//! [`Tensor`]: a shared storage on some backend plus a [`Layout`] describing a view of it.

use crate::backend::{Backend, BackendStorage};
use crate::buffer::{HostBuffer, HostElement};
use crate::dtype::DType;
use crate::layout::Layout;
use crate::shape::{numel, try_numel};
use crate::{Error, Result};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;

/// An n-dimensional array on backend `B` (PyTorch: `torch.Tensor`).
///
/// Cloning is cheap: the storage is reference counted and views share it. Ops return new
/// tensors; the in-place methods (`binary_`, `assign_`, the fused `adamw_update_`, ...) write
/// into a tensor's own storage, copying it first if another tensor shares it (see
/// `ops::inplace`), so a value held elsewhere never changes.
pub struct Tensor<B: Backend> {
    storage: Arc<B::Storage>,
    layout: Layout,
    backend: B,
}

impl<B: Backend> Clone for Tensor<B> {
    fn clone(&self) -> Self {
        Tensor {
            storage: self.storage.clone(),
            layout: self.layout.clone(),
            backend: self.backend.clone(),
        }
    }
}

impl<B: Backend> fmt::Debug for Tensor<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Tensor[{:?}, {}, {}]",
            self.shape(),
            self.dtype(),
            self.backend.device_name()
        )
    }
}

impl<B: Backend> Tensor<B> {
    // ------------------------------------------------------------------ construction

    /// Wraps a storage and a layout. For backend authors and layers above (autograd); the
    /// layout must fit inside the storage.
    pub fn from_parts(storage: Arc<B::Storage>, layout: Layout, backend: B) -> Result<Self> {
        // Validity (overflow-checked) and fit: kernels index storages through this layout.
        layout.check_fits("from_parts", storage.len())?;
        Ok(Tensor {
            storage,
            layout,
            backend,
        })
    }

    /// A contiguous tensor from a fresh storage of exactly `shape`'s size.
    pub(crate) fn from_storage(storage: B::Storage, shape: &[usize], backend: &B) -> Self {
        debug_assert_eq!(
            storage.len(),
            numel(shape),
            "backend returned a storage of the wrong size"
        );
        Tensor {
            storage: Arc::new(storage),
            layout: Layout::contiguous(shape),
            backend: backend.clone(),
        }
    }

    /// The storage handle and layout, for the in-place ops (`ops/inplace`).
    pub(crate) fn parts_mut(&mut self) -> (&mut Arc<B::Storage>, &Layout) {
        (&mut self.storage, &self.layout)
    }

    /// A view sharing this tensor's storage.
    pub(crate) fn with_layout(&self, layout: Layout) -> Self {
        Tensor {
            storage: self.storage.clone(),
            layout,
            backend: self.backend.clone(),
        }
    }

    /// Copies a host buffer to `backend` as a tensor of `shape`.
    pub fn from_host(data: HostBuffer, shape: &[usize], backend: &B) -> Result<Self> {
        // Checked: a wrapped element count could match `data.len()` by accident.
        Layout::try_contiguous("from_host", shape)?;
        if data.len() != numel(shape) {
            return Err(crate::shape_err!(
                "from_host",
                "{} elements do not fill shape {shape:?} ({} elements)",
                data.len(),
                numel(shape)
            ));
        }
        Ok(Self::from_storage(backend.from_host(data)?, shape, backend))
    }

    /// A tensor from a vector in row-major order (PyTorch: `torch.tensor(data).reshape(shape)`).
    pub fn from_vec<T: HostElement>(data: Vec<T>, shape: &[usize], backend: &B) -> Result<Self> {
        Self::from_host(HostBuffer::from_vec(data), shape, backend)
    }

    /// A tensor from a slice (copied).
    pub fn from_slice<T: HostElement>(data: &[T], shape: &[usize], backend: &B) -> Result<Self> {
        Self::from_vec(data.to_vec(), shape, backend)
    }

    /// A tensor of `shape` filled with `value`.
    pub fn full(shape: &[usize], value: f64, dtype: DType, backend: &B) -> Result<Self> {
        // Size checks before any backend sees the request: an overflowing shape or one over
        // the memory budget is an error, not a wrapped (tiny) or aborting allocation.
        Layout::try_contiguous("full", shape)?;
        let n = try_numel("full", shape)?;
        crate::memory::check_alloc("full", n, dtype)?;
        Ok(Self::from_storage(
            backend.full(n, value, dtype)?,
            shape,
            backend,
        ))
    }

    /// Zeros (PyTorch: `torch.zeros`).
    pub fn zeros(shape: &[usize], dtype: DType, backend: &B) -> Result<Self> {
        Self::full(shape, 0.0, dtype, backend)
    }

    /// Ones (PyTorch: `torch.ones`).
    pub fn ones(shape: &[usize], dtype: DType, backend: &B) -> Result<Self> {
        Self::full(shape, 1.0, dtype, backend)
    }

    /// A rank-0 tensor holding `value`.
    pub fn scalar(value: f64, dtype: DType, backend: &B) -> Result<Self> {
        Self::full(&[], value, dtype, backend)
    }

    /// `0, 1, .., n-1` (PyTorch: `torch.arange(n)`).
    pub fn arange(n: usize, dtype: DType, backend: &B) -> Result<Self> {
        // The f64 staging buffer is the larger of the two allocations.
        crate::memory::check_alloc("arange", n, DType::F64)?;
        let v: Vec<f64> = (0..n).map(|i| i as f64).collect();
        Self::from_host(HostBuffer::F64(v).cast(dtype), &[n], backend)
    }

    /// Zeros with this tensor's shape, dtype and backend.
    pub fn zeros_like(&self) -> Result<Self> {
        Self::zeros(self.shape(), self.dtype(), &self.backend)
    }

    /// Ones with this tensor's shape, dtype and backend.
    pub fn ones_like(&self) -> Result<Self> {
        Self::ones(self.shape(), self.dtype(), &self.backend)
    }

    /// `value` with this tensor's shape, dtype and backend.
    pub fn full_like(&self, value: f64) -> Result<Self> {
        Self::full(self.shape(), value, self.dtype(), &self.backend)
    }

    // ------------------------------------------------------------------ inspection

    pub fn shape(&self) -> &[usize] {
        self.layout.shape()
    }
    /// The size of one dim (negative axes count from the end).
    pub fn dim(&self, axis: isize) -> Result<usize> {
        Ok(self.shape()[crate::shape::normalize_axis("dim", axis, self.rank())?])
    }
    pub fn rank(&self) -> usize {
        self.layout.rank()
    }
    pub fn numel(&self) -> usize {
        self.layout.numel()
    }
    pub fn dtype(&self) -> DType {
        self.storage.dtype()
    }
    pub fn layout(&self) -> &Layout {
        &self.layout
    }
    pub fn backend(&self) -> &B {
        &self.backend
    }
    /// The shared storage (for backend authors and autograd).
    pub fn storage(&self) -> &Arc<B::Storage> {
        &self.storage
    }
    /// True if the elements are row-major without gaps.
    pub fn is_contiguous(&self) -> bool {
        self.layout.is_contiguous()
    }
    /// True if two tensors are views of the same storage.
    pub fn shares_storage_with(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.storage, &other.storage)
    }

    // ------------------------------------------------------------------ host copies

    /// Copies the elements to the host, row-major.
    pub fn to_host(&self) -> Result<HostBuffer> {
        self.backend.to_host(&self.storage, &self.layout)
    }

    /// Copies the elements into a `Vec<T>`; `T` must match the dtype (see [`Tensor::to_dtype`]).
    pub fn to_vec<T: HostElement>(&self) -> Result<Vec<T>> {
        if T::DTYPE != self.dtype() {
            return Err(Error::DType {
                op: "to_vec",
                msg: crate::__format!(
                    "tensor {:?} has dtype {}, asked for {}",
                    self.shape(),
                    self.dtype(),
                    T::DTYPE
                ),
            });
        }
        self.to_host()?.into_vec()
    }

    /// Every element as f64, whatever the dtype (convenient for tests and printing).
    pub fn to_f64_vec(&self) -> Result<Vec<f64>> {
        Ok(self.to_host()?.to_f64_vec())
    }

    /// The single element of a one-element tensor, as f64 (PyTorch: `item()`).
    pub fn item(&self) -> Result<f64> {
        if self.numel() != 1 {
            return Err(crate::shape_err!(
                "item",
                "tensor of shape {:?} has {} elements, not 1",
                self.shape(),
                self.numel()
            ));
        }
        Ok(self.to_f64_vec()?[0])
    }

    // ------------------------------------------------------------------ argument checks

    pub(crate) fn check_same_backend(&self, op: &'static str, other: &Self) -> Result<()> {
        if self.backend != other.backend {
            return Err(Error::Backend {
                op,
                msg: crate::__format!(
                    "inputs live on {} and {}",
                    self.backend.device_name(),
                    other.backend.device_name()
                ),
            });
        }
        Ok(())
    }

    pub(crate) fn check_same_dtype(&self, op: &'static str, other: &Self) -> Result<()> {
        if self.dtype() != other.dtype() {
            return Err(Error::DType {
                op,
                msg: crate::__format!(
                    "inputs {:?} and {:?} have dtypes {} and {} (cast one with to_dtype)",
                    self.shape(),
                    other.shape(),
                    self.dtype(),
                    other.dtype()
                ),
            });
        }
        Ok(())
    }

    pub(crate) fn check_float(&self, op: &'static str) -> Result<()> {
        if !self.dtype().is_float() {
            return Err(Error::DType {
                op,
                msg: crate::__format!(
                    "needs a float tensor, got {} {:?}",
                    self.dtype(),
                    self.shape()
                ),
            });
        }
        Ok(())
    }

    pub(crate) fn check_dtype(&self, op: &'static str, dtype: DType) -> Result<()> {
        if self.dtype() != dtype {
            return Err(Error::DType {
                op,
                msg: crate::__format!("needs {dtype}, got {} {:?}", self.dtype(), self.shape()),
            });
        }
        Ok(())
    }

    pub(crate) fn check_rank(&self, op: &'static str, rank: usize) -> Result<()> {
        if self.rank() != rank {
            return Err(crate::shape_err!(
                op,
                "needs a rank-{rank} tensor, got shape {:?}",
                self.shape()
            ));
        }
        Ok(())
    }
}
