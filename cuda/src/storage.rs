//! [`CudaStorage`]: one allocation in device memory. Dropping it returns the block to the
//! device's caching allocator (not to the driver).

use crate::device::{Cuda, DeviceInner};
use crate::driver::DevicePtr;
use std::sync::Arc;
use tessera_tensor::{BackendStorage, DType, Error, Layout, Result};

/// A contiguous run of `len` elements of `dtype` in one device's memory.
pub struct CudaStorage {
    pub(crate) ptr: DevicePtr,
    len: usize,
    dtype: DType,
    block: usize,
    device: Arc<DeviceInner>,
}

impl core::fmt::Debug for CudaStorage {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "CudaStorage({:?}, {} x {:?} at {:#x})",
            self.device.kind, self.len, self.dtype, self.ptr
        )
    }
}

impl BackendStorage for CudaStorage {
    fn dtype(&self) -> DType {
        self.dtype
    }
    fn len(&self) -> usize {
        self.len
    }
}

impl CudaStorage {
    /// The dtype of the elements (also [`BackendStorage::dtype`]).
    pub fn dtype(&self) -> DType {
        self.dtype
    }
    /// The number of elements (also [`BackendStorage::len`]).
    pub fn len(&self) -> usize {
        self.len
    }
    /// True if no element is allocated.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Drop for CudaStorage {
    fn drop(&mut self) {
        self.device.allocator().free(self.ptr, self.block);
    }
}

impl CudaStorage {
    /// Uninitialized storage for `len` elements (callers overwrite all of it).
    pub(crate) fn uninit(dev: &Cuda, len: usize, dtype: DType) -> Result<Self> {
        tessera_tensor::check_alloc("cuda alloc", len, dtype)?;
        let bytes = len
            .checked_mul(dtype.size_in_bytes())
            .ok_or_else(|| Error::Device {
                msg: format!("{len} elements of {dtype:?} overflow a byte count"),
            })?;
        let (ptr, block) = dev.alloc_bytes(bytes)?;
        Ok(CudaStorage {
            ptr,
            len,
            dtype,
            block,
            device: dev.inner.clone(),
        })
    }

    /// The device pointer of element `0`, typed for a kernel argument.
    pub(crate) fn base(&self) -> u64 {
        self.ptr
    }

    /// Bytes in use (len × element size).
    pub(crate) fn bytes(&self) -> usize {
        self.len * self.dtype.size_in_bytes()
    }

    /// True if this storage lives on `dev`.
    pub(crate) fn on(&self, dev: &Cuda) -> bool {
        Arc::ptr_eq(&self.device, &dev.inner)
    }
}

/// Checks what every kernel relies on before it is launched: the storage is on this device,
/// has the dtype the op expects, and the view stays inside it (in release builds too).
pub(crate) fn check_view(
    dev: &Cuda,
    op: &'static str,
    s: &CudaStorage,
    l: &Layout,
    dtype: Option<DType>,
) -> Result<()> {
    if !s.on(dev) {
        return Err(Error::Backend {
            op,
            msg: format!("a storage of {:?} used on {:?}", s.device.kind, dev.kind()),
        });
    }
    if let Some(d) = dtype {
        if s.dtype() != d {
            return Err(Error::DType {
                op,
                msg: format!("expected {d:?}, got {:?}", s.dtype()),
            });
        }
    }
    l.validate(op)?;
    l.check_fits(op, s.len())
}
