//! The driver: the few device operations everything above it is written in (allocate, copy,
//! launch a kernel by name, wait). Two implementations with one interface, so that the backend
//! code above is the same on a GPU and in CI:
//!
//! - [`cust`](crate::driver) (feature `cuda`): the CUDA driver API through `cust`, kernels from
//!   the fatbins nvcc built, one stream per device that every call is ordered on;
//! - `sim` (feature `sim`): the same kernels compiled for the CPU against the SIMT shim
//!   (`sim/simt.h`), device memory in host memory, launches run to completion.

use core::ffi::c_void;
use tessera_tensor::Result;

#[cfg(feature = "cuda")]
pub mod cust;
#[cfg(feature = "sim")]
pub mod sim;

/// Grid, block and dynamic shared memory of one launch (CUDA's `<<<grid, block, shared>>>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LaunchConfig {
    /// Blocks in x, y, z.
    pub grid: [u32; 3],
    /// Threads per block in x, y, z.
    pub block: [u32; 3],
    /// Bytes of dynamic shared memory per block.
    pub shared_bytes: u32,
}

/// A device pointer: an address in the device's memory (a host address under the shim).
pub type DevicePtr = u64;

/// What a device must do for the backend. All work is ordered on one queue per device;
/// only [`Driver::copy_dtoh`] and [`Driver::synchronize`] wait for it.
pub trait Driver: Send + Sync + 'static {
    /// The device, for messages: `"NVIDIA H200 (sm_90, 139 GiB)"`.
    fn describe(&self) -> String;
    /// Allocates `bytes` (> 0) of device memory, 256-byte aligned. Out of memory is an error
    /// that says how much was asked for and how much is free.
    fn alloc(&self, bytes: usize) -> Result<DevicePtr>;
    /// Frees memory from [`Driver::alloc`].
    ///
    /// # Safety
    /// `ptr` came from `alloc` of this driver, is freed once, and no queued work uses it.
    unsafe fn free(&self, ptr: DevicePtr);
    /// Copies host bytes to the device.
    ///
    /// # Safety
    /// `dst .. dst + src.len()` lies inside one allocation of this driver.
    unsafe fn copy_htod(&self, dst: DevicePtr, src: &[u8]) -> Result<()>;
    /// Copies device bytes to the host, after all queued work.
    ///
    /// # Safety
    /// `src .. src + dst.len()` lies inside one allocation of this driver.
    unsafe fn copy_dtoh(&self, dst: &mut [u8], src: DevicePtr) -> Result<()>;
    /// Sets `bytes` bytes at `dst` to `value`.
    ///
    /// # Safety
    /// `dst .. dst + bytes` lies inside one allocation of this driver.
    unsafe fn memset_d8(&self, dst: DevicePtr, value: u8, bytes: usize) -> Result<()>;
    /// Launches kernel `kernel` of module `module` (the `.cu` file's stem).
    ///
    /// # Safety
    /// `args` points at one value per kernel parameter, of exactly the parameter's C type, and
    /// every pointer and layout among them keeps the kernel inside its allocations.
    unsafe fn launch(
        &self,
        module: &'static str,
        kernel: &str,
        cfg: &LaunchConfig,
        args: &mut [*mut c_void],
    ) -> Result<()>;
    /// Waits for all queued work.
    fn synchronize(&self) -> Result<()>;
    /// `(free, total)` bytes of device memory.
    fn mem_info(&self) -> Result<(usize, usize)>;
}

/// One kernel argument for [`Driver::launch`]: a pointer to the value (CUDA's `kernelParams`).
pub fn arg<T>(value: &T) -> *mut c_void {
    value as *const T as *mut c_void
}
