//! [`Cuda`]: the backend handle (PyTorch: `torch.device("cuda:0")`), one per device per
//! process, sharing that device's driver, stream and caching allocator.

use crate::alloc::{AllocStats, CachingAllocator};
use crate::driver::{DevicePtr, Driver, LaunchConfig};
use core::ffi::c_void;
use std::sync::{Arc, Mutex, MutexGuard};
use tessera_tensor::Result;

/// Which implementation runs the kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeviceKind {
    /// A GPU through the CUDA driver, by ordinal.
    Gpu(usize),
    /// The CPU SIMT shim: the same kernels on the host (CI, no GPU needed).
    Sim,
}

pub(crate) struct DeviceInner {
    pub(crate) kind: DeviceKind,
    pub(crate) driver: Arc<dyn Driver>,
    allocator: Mutex<CachingAllocator>,
}

impl DeviceInner {
    pub(crate) fn allocator(&self) -> MutexGuard<'_, CachingAllocator> {
        self.allocator.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Launches a kernel on this device's stream.
    ///
    /// # Safety
    /// As [`Driver::launch`]: the arguments match the kernel's parameters and keep it in bounds.
    pub(crate) unsafe fn launch(
        &self,
        module: &'static str,
        kernel: &str,
        cfg: &LaunchConfig,
        args: &mut [*mut c_void],
    ) -> Result<()> {
        self.driver.launch(module, kernel, cfg, args)
    }
}

/// The CUDA backend: a handle to one device (cheap to clone; equal when the device is).
#[derive(Clone)]
pub struct Cuda {
    pub(crate) inner: Arc<DeviceInner>,
}

impl core::fmt::Debug for Cuda {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Cuda({:?})", self.inner.kind)
    }
}

impl PartialEq for Cuda {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

/// Devices opened so far: one context, stream and cache per device for the whole process.
#[cfg(any(feature = "cuda", feature = "sim"))]
static DEVICES: Mutex<Vec<(DeviceKind, Arc<DeviceInner>)>> = Mutex::new(Vec::new());

#[cfg(any(feature = "cuda", feature = "sim"))]
fn open(kind: DeviceKind, make: impl FnOnce() -> Result<Arc<dyn Driver>>) -> Result<Cuda> {
    let mut devices = DEVICES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, inner)) = devices.iter().find(|(k, _)| *k == kind) {
        return Ok(Cuda {
            inner: inner.clone(),
        });
    }
    let driver = make()?;
    let inner = Arc::new(DeviceInner {
        kind,
        allocator: Mutex::new(CachingAllocator::new(driver.clone())),
        driver,
    });
    devices.push((kind, inner.clone()));
    Ok(Cuda { inner })
}

impl Cuda {
    /// The GPU with this ordinal (PyTorch: `torch.device("cuda", ordinal)`). Errors: "no CUDA
    /// device found" without a GPU, or "built without CUDA support" without the `cuda` feature.
    pub fn new(ordinal: usize) -> Result<Cuda> {
        #[cfg(feature = "cuda")]
        {
            open(DeviceKind::Gpu(ordinal), || {
                Ok(Arc::new(crate::driver::cust::CustDriver::new(ordinal)?) as Arc<dyn Driver>)
            })
        }
        #[cfg(not(feature = "cuda"))]
        {
            let _ = ordinal;
            Err(tessera_tensor::Error::Device {
                msg: String::from("built without CUDA support (rebuild with --features cuda)"),
            })
        }
    }

    /// The CPU SIMT shim as a device: every kernel of this crate runs on the host, with 8 GiB
    /// of host memory standing in for device memory. Needs the `sim` feature.
    pub fn sim() -> Result<Cuda> {
        #[cfg(feature = "sim")]
        {
            open(DeviceKind::Sim, || {
                Ok(Arc::new(crate::driver::sim::SimDriver::new(8 << 30)) as Arc<dyn Driver>)
            })
        }
        #[cfg(not(feature = "sim"))]
        {
            Err(tessera_tensor::Error::Device {
                msg: String::from("built without the SIMT shim (rebuild with --features sim)"),
            })
        }
    }

    /// Which implementation this handle drives.
    pub fn kind(&self) -> DeviceKind {
        self.inner.kind
    }

    /// The device in words (`"NVIDIA H200 (sm_90, 139 GiB)"`).
    pub fn describe(&self) -> String {
        self.inner.driver.describe()
    }

    /// The caching allocator's counters.
    pub fn memory_stats(&self) -> AllocStats {
        self.inner.allocator().stats()
    }

    /// Restarts the allocator's fresh/reused counters and its peak.
    pub fn reset_memory_stats(&self) {
        self.inner.allocator().reset_stats()
    }

    pub(crate) fn alloc_bytes(&self, bytes: usize) -> Result<(DevicePtr, usize)> {
        self.inner.allocator().alloc(bytes)
    }
}
