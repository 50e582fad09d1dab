//! The SIMT-shim driver: device memory is host memory, a launch calls the kernel's launcher
//! compiled from the same `.cu` file against `sim/simt.h`, and runs to completion (so the
//! queue is always empty and [`Driver::synchronize`] has nothing to wait for).

use super::{DevicePtr, Driver, LaunchConfig};
use core::ffi::{c_char, c_int, c_void, CStr};
use std::alloc::{alloc, dealloc, Layout};
use std::collections::HashMap;
use std::ffi::CString;
use std::sync::Mutex;
use tessera_tensor::{Error, Result};

include!(concat!(env!("OUT_DIR"), "/sim_anchors.rs"));

#[repr(C)]
struct SimtLaunchCfg {
    grid: [u32; 3],
    block: [u32; 3],
    shared_bytes: u32,
    reserved: u32,
}

type Launcher = unsafe extern "C" fn(*const SimtLaunchCfg, *mut *mut c_void) -> c_int;

extern "C" {
    fn simt_find_kernel(name: *const c_char) -> Option<Launcher>;
    fn simt_last_error() -> *const c_char;
    fn simt_set_schedule(order: c_int);
}

/// How the shim orders the threads of a block and the blocks of a grid. Running kernels in
/// each order and comparing exposes a missing `__syncthreads`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Schedule {
    /// Thread 0 first.
    Forward,
    /// The last thread first.
    Reverse,
    /// A fixed pseudo-random order.
    Shuffled,
}

/// Sets the shim's schedule for every later launch in this process.
pub fn set_schedule(s: Schedule) {
    let order = match s {
        Schedule::Forward => 0,
        Schedule::Reverse => 1,
        Schedule::Shuffled => 2,
    };
    unsafe { simt_set_schedule(order) }
}

const ALIGN: usize = 256;

/// The shim as a device with `capacity` bytes of "device memory".
pub struct SimDriver {
    capacity: usize,
    state: Mutex<SimState>,
}

struct SimState {
    allocated: usize,
    sizes: HashMap<DevicePtr, usize>,
    launchers: HashMap<String, Launcher>,
}

impl SimDriver {
    /// A shim device that refuses allocations past `capacity` bytes in all.
    pub fn new(capacity: usize) -> Self {
        anchor_all_kernels();
        SimDriver {
            capacity,
            state: Mutex::new(SimState {
                allocated: 0,
                sizes: HashMap::new(),
                launchers: HashMap::new(),
            }),
        }
    }

    fn launcher(&self, kernel: &str) -> Result<Launcher> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(l) = st.launchers.get(kernel) {
            return Ok(*l);
        }
        let name = CString::new(kernel).map_err(|_| Error::Device {
            msg: format!("kernel name {kernel:?} contains a NUL byte"),
        })?;
        let l = unsafe { simt_find_kernel(name.as_ptr()) }.ok_or_else(|| Error::Device {
            msg: format!("SIMT shim: no kernel named {kernel}"),
        })?;
        st.launchers.insert(kernel.to_string(), l);
        Ok(l)
    }
}

impl Driver for SimDriver {
    fn describe(&self) -> String {
        format!(
            "SIMT shim on the CPU ({} GiB of host memory as device memory)",
            self.capacity >> 30
        )
    }

    fn alloc(&self, bytes: usize) -> Result<DevicePtr> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let free = self.capacity - st.allocated;
        if bytes > free {
            return Err(Error::Device {
                msg: format!(
                    "out of memory on the SIMT shim device: asked for {bytes} bytes, {free} of {} free",
                    self.capacity
                ),
            });
        }
        let layout = Layout::from_size_align(bytes.max(1), ALIGN).map_err(|_| Error::Device {
            msg: format!("allocation of {bytes} bytes is too large"),
        })?;
        // SAFETY: the layout has a non-zero size.
        let p = unsafe { alloc(layout) };
        if p.is_null() {
            return Err(Error::Device {
                msg: format!("out of host memory for {bytes} bytes of shim device memory"),
            });
        }
        st.allocated += bytes;
        st.sizes.insert(p as DevicePtr, bytes);
        Ok(p as DevicePtr)
    }

    unsafe fn free(&self, ptr: DevicePtr) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(bytes) = st.sizes.remove(&ptr) {
            st.allocated -= bytes;
            // SAFETY: allocated with this layout in `alloc`.
            dealloc(
                ptr as *mut u8,
                Layout::from_size_align_unchecked(bytes.max(1), ALIGN),
            );
        }
    }

    unsafe fn copy_htod(&self, dst: DevicePtr, src: &[u8]) -> Result<()> {
        core::ptr::copy_nonoverlapping(src.as_ptr(), dst as *mut u8, src.len());
        Ok(())
    }

    unsafe fn copy_dtoh(&self, dst: &mut [u8], src: DevicePtr) -> Result<()> {
        core::ptr::copy_nonoverlapping(src as *const u8, dst.as_mut_ptr(), dst.len());
        Ok(())
    }

    unsafe fn memset_d8(&self, dst: DevicePtr, value: u8, bytes: usize) -> Result<()> {
        core::ptr::write_bytes(dst as *mut u8, value, bytes);
        Ok(())
    }

    unsafe fn launch(
        &self,
        _module: &'static str,
        kernel: &str,
        cfg: &LaunchConfig,
        args: &mut [*mut c_void],
    ) -> Result<()> {
        let launcher = self.launcher(kernel)?;
        let c = SimtLaunchCfg {
            grid: cfg.grid,
            block: cfg.block,
            shared_bytes: cfg.shared_bytes,
            reserved: 0,
        };
        if launcher(&c, args.as_mut_ptr()) != 0 {
            let msg = CStr::from_ptr(simt_last_error()).to_string_lossy();
            return Err(Error::Device {
                msg: format!("kernel {kernel} failed on the SIMT shim: {msg}"),
            });
        }
        Ok(())
    }

    fn synchronize(&self) -> Result<()> {
        Ok(())
    }

    fn mem_info(&self) -> Result<(usize, usize)> {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        Ok((self.capacity - st.allocated, self.capacity))
    }
}

impl Drop for SimDriver {
    fn drop(&mut self) {
        let st = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        for (&p, &bytes) in &st.sizes {
            // SAFETY: every entry is a live allocation of this driver.
            unsafe {
                dealloc(
                    p as *mut u8,
                    Layout::from_size_align_unchecked(bytes.max(1), ALIGN),
                )
            };
        }
    }
}
