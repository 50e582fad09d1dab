//! [`CpuStorage`]: the CPU backend's storage, a [`HostBuffer`] whose allocation goes back to
//! the buffer cache ([`super::pool`]) when the last tensor viewing it is dropped.

use super::pool;
use crate::backend::BackendStorage;
use crate::dtype::DType;
use crate::HostBuffer;
use core::ops::{Deref, DerefMut};

/// A host buffer owned by the CPU backend. It dereferences to the [`HostBuffer`], so kernels
/// read and write it as one; dropping it recycles the allocation.
#[derive(Debug, PartialEq)]
pub struct CpuStorage(HostBuffer);

impl CpuStorage {
    /// The buffer, borrowed.
    pub fn buffer(&self) -> &HostBuffer {
        &self.0
    }

    /// Takes the buffer out (its allocation then leaves the cache's care).
    pub fn into_buffer(mut self) -> HostBuffer {
        core::mem::replace(&mut self.0, HostBuffer::U8(alloc::vec::Vec::new()))
    }
}

impl From<HostBuffer> for CpuStorage {
    fn from(b: HostBuffer) -> Self {
        pool::count_storage();
        CpuStorage(b)
    }
}

impl Deref for CpuStorage {
    type Target = HostBuffer;
    fn deref(&self) -> &HostBuffer {
        &self.0
    }
}

impl DerefMut for CpuStorage {
    fn deref_mut(&mut self) -> &mut HostBuffer {
        &mut self.0
    }
}

impl Drop for CpuStorage {
    fn drop(&mut self) {
        let b = core::mem::replace(&mut self.0, HostBuffer::U8(alloc::vec::Vec::new()));
        pool::give_buffer(b);
    }
}

impl BackendStorage for CpuStorage {
    fn dtype(&self) -> DType {
        self.0.dtype()
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}
