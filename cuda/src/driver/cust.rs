//! The GPU driver (feature `cuda`): the CUDA driver API through `cust` 0.3.2.
//!
//! One [`CustDriver`] per device: the device's primary context, one non-blocking stream that
//! every copy, memset and launch is ordered on, and the kernel modules (`kernels/<stem>.cu`,
//! compiled by build/nvcc.rs into fatbins embedded in the library) loaded on first use, with
//! their functions cached by name.
//!
//! `cust` initialises the driver and retains the primary context. The calls on the hot path
//! (alloc, copies, launch, synchronize) and module loading go through the small `extern "C"`
//! block below, which reads the driver's status as a plain `i32`: cust's `CUresult` enum is
//! frozen at CUDA 11.4, and a newer error code (the driver here is CUDA 13) must not be read
//! into it. Error messages carry the driver's own name and text for the code
//! (`cuGetErrorName`/`cuGetErrorString`).
//!
//! Threads: the context is made current on the calling thread at the start of every call
//! (`cuCtxGetCurrent` is a thread-local read in the driver), so any thread may use the driver.
//!
//! Asynchronous errors (an illegal address inside a kernel) surface at the next synchronizing
//! call (`copy_dtoh`, `synchronize`); that error names the last kernel launched, and
//! `CUDA_LAUNCH_BLOCKING=1` makes every launch synchronous so the failing one reports itself.

use core::ffi::{c_char, c_int, c_uint, c_void};
use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::sync::{Arc, Mutex};

use ::cust::device::{Device, DeviceAttribute};
use ::cust::sys::{CUcontext, CUdeviceptr, CUfunction, CUmodule, CUstream};
use ::cust::{context::Context, CudaFlags};
use tessera_tensor::{Error, Result};

use super::{Driver, LaunchConfig};

// The kernel modules: `pub static FATBINS: &[(&str, &[u8])]`, written by build/nvcc.rs.
include!(concat!(env!("OUT_DIR"), "/fatbins.rs"));

/// Every out-of-memory error's message starts with this (the caching allocator can check
/// `msg.starts_with(OUT_OF_MEMORY)`, free its cache and retry).
pub const OUT_OF_MEMORY: &str = "CUDA out of memory";

const CUDA_SUCCESS: c_int = 0;
const CUDA_ERROR_OUT_OF_MEMORY: c_int = 2;
const CU_STREAM_NON_BLOCKING: c_uint = 1;
const CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES: c_int = 8;
/// Dynamic shared memory a kernel may use without opting in.
const DEFAULT_SHARED_LIMIT: u32 = 48 * 1024;

#[allow(non_snake_case)]
#[link(name = "cuda")]
extern "C" {
    fn cuGetErrorName(error: c_int, name: *mut *const c_char) -> c_int;
    fn cuGetErrorString(error: c_int, text: *mut *const c_char) -> c_int;
    fn cuCtxGetCurrent(ctx: *mut CUcontext) -> c_int;
    fn cuCtxSetCurrent(ctx: CUcontext) -> c_int;
    fn cuStreamCreate(stream: *mut CUstream, flags: c_uint) -> c_int;
    fn cuStreamDestroy_v2(stream: CUstream) -> c_int;
    fn cuStreamSynchronize(stream: CUstream) -> c_int;
    fn cuMemAlloc_v2(ptr: *mut CUdeviceptr, bytes: usize) -> c_int;
    fn cuMemFree_v2(ptr: CUdeviceptr) -> c_int;
    fn cuMemGetInfo_v2(free: *mut usize, total: *mut usize) -> c_int;
    fn cuMemcpyHtoDAsync_v2(
        dst: CUdeviceptr,
        src: *const c_void,
        bytes: usize,
        stream: CUstream,
    ) -> c_int;
    fn cuMemcpyDtoHAsync_v2(
        dst: *mut c_void,
        src: CUdeviceptr,
        bytes: usize,
        stream: CUstream,
    ) -> c_int;
    fn cuMemsetD8Async(dst: CUdeviceptr, value: u8, bytes: usize, stream: CUstream) -> c_int;
    fn cuModuleLoadData(module: *mut CUmodule, image: *const c_void) -> c_int;
    fn cuModuleUnload(module: CUmodule) -> c_int;
    fn cuModuleGetFunction(f: *mut CUfunction, module: CUmodule, name: *const c_char) -> c_int;
    fn cuFuncSetAttribute(f: CUfunction, attribute: c_int, value: c_int) -> c_int;
    #[allow(clippy::too_many_arguments)]
    fn cuLaunchKernel(
        f: CUfunction,
        grid_x: c_uint,
        grid_y: c_uint,
        grid_z: c_uint,
        block_x: c_uint,
        block_y: c_uint,
        block_z: c_uint,
        shared_bytes: c_uint,
        stream: CUstream,
        params: *mut *mut c_void,
        extra: *mut *mut c_void,
    ) -> c_int;
}

/// `CUDA_ERROR_OUT_OF_MEMORY (2): out of memory`, from the driver's own tables.
fn describe_code(code: c_int) -> String {
    let mut name: *const c_char = core::ptr::null();
    let mut text: *const c_char = core::ptr::null();
    // SAFETY: both calls only write a pointer to a static string (or leave it null).
    let (rn, rt) = unsafe {
        (
            cuGetErrorName(code, &mut name),
            cuGetErrorString(code, &mut text),
        )
    };
    let read = |ok: bool, p: *const c_char| {
        // SAFETY: the driver returns NUL-terminated static strings.
        (ok && !p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
    };
    match (
        read(rn == CUDA_SUCCESS, name),
        read(rt == CUDA_SUCCESS, text),
    ) {
        (Some(n), Some(t)) => format!("{n} ({code}): {t}"),
        (Some(n), None) => format!("{n} ({code})"),
        _ => format!("CUDA driver error {code}"),
    }
}

fn device_error(msg: String) -> Error {
    Error::Device { msg }
}

/// `Ok` for `CUDA_SUCCESS`, else an error whose message is `what: <driver's error>`.
fn check(code: c_int, what: impl FnOnce() -> String) -> Result<()> {
    if code == CUDA_SUCCESS {
        Ok(())
    } else {
        Err(device_error(format!("{}: {}", what(), describe_code(code))))
    }
}

fn gib(bytes: usize) -> String {
    format!("{:.2} GiB", bytes as f64 / (1u64 << 30) as f64)
}

/// A loaded function and its `module::kernel` name (for messages).
#[derive(Clone)]
struct Func {
    raw: CUfunction,
    name: Arc<str>,
}

struct LoadedModule {
    raw: CUmodule,
    functions: HashMap<String, Func>,
}

#[derive(Default)]
struct State {
    modules: HashMap<&'static str, LoadedModule>,
    /// The last kernel launched, named in asynchronous errors.
    last_launch: Option<Arc<str>>,
}

/// The CUDA driver for one device. See the module docs.
pub struct CustDriver {
    ordinal: usize,
    name: String,
    compute_capability: (i32, i32),
    total_memory: usize,
    modules: &'static [(&'static str, &'static [u8])],
    state: Mutex<State>,
    stream: CUstream,
    ctx_raw: CUcontext,
    /// Declared last: released after the stream and modules (see `Drop`).
    _ctx: Context,
}

// SAFETY: the raw handles (context, stream, modules, functions) are driver objects that may be
// used from any thread once the context is current, which every method ensures first; the
// mutable state is behind a mutex.
unsafe impl Send for CustDriver {}
unsafe impl Sync for CustDriver {}

impl core::fmt::Debug for CustDriver {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("CustDriver")
            .field("ordinal", &self.ordinal)
            .field("device", &self.describe())
            .finish_non_exhaustive()
    }
}

impl CustDriver {
    /// Opens device `ordinal` with the kernels built into this library.
    ///
    /// Fails with `no CUDA device found: ...` when the driver finds no device (or no driver
    /// is installed behind `libcuda.so.1`), with the driver's message.
    pub fn new(ordinal: usize) -> Result<Self> {
        Self::with_modules(ordinal, FATBINS)
    }

    /// Opens device `ordinal` with another table of `(module stem, fatbin/cubin/PTX image)`.
    pub fn with_modules(
        ordinal: usize,
        modules: &'static [(&'static str, &'static [u8])],
    ) -> Result<Self> {
        if let Err(e) = ::cust::init(CudaFlags::empty()) {
            return Err(device_error(format!(
                "no CUDA device found: cuInit failed: {e} ({e:?})"
            )));
        }
        let count = Device::num_devices().map_err(|e| {
            device_error(format!(
                "no CUDA device found: cuDeviceGetCount failed: {e}"
            ))
        })?;
        if count == 0 {
            return Err(device_error(
                "no CUDA device found: the driver reports 0 devices".into(),
            ));
        }
        if ordinal >= count as usize {
            return Err(device_error(format!(
                "CUDA device {ordinal} not found: the driver reports {count} device(s)"
            )));
        }
        let fail = |what: &str, e: ::cust::error::CudaError| {
            device_error(format!("CUDA device {ordinal}: {what}: {e} ({e:?})"))
        };
        let device = Device::get_device(ordinal as u32).map_err(|e| fail("cuDeviceGet", e))?;
        let name = device.name().map_err(|e| fail("cuDeviceGetName", e))?;
        let major = device
            .get_attribute(DeviceAttribute::ComputeCapabilityMajor)
            .map_err(|e| fail("compute capability", e))?;
        let minor = device
            .get_attribute(DeviceAttribute::ComputeCapabilityMinor)
            .map_err(|e| fail("compute capability", e))?;
        let total_memory = device
            .total_memory()
            .map_err(|e| fail("cuDeviceTotalMem", e))?;
        // Retains the device's primary context (shared with any other user of the device in
        // this process) and makes it current on this thread.
        let ctx = Context::new(device).map_err(|e| fail("cuDevicePrimaryCtxRetain", e))?;
        let ctx_raw = ctx.as_raw();
        // SAFETY: ctx_raw is a live context; the handle is written by the driver.
        check(unsafe { cuCtxSetCurrent(ctx_raw) }, || {
            format!("CUDA device {ordinal}: cuCtxSetCurrent")
        })?;
        // Our own stream rather than cust's `Stream`, which drops the NON_BLOCKING flag: the
        // stream must not synchronize with the legacy default stream.
        let mut stream: CUstream = core::ptr::null_mut();
        // SAFETY: out-pointer to a local.
        check(
            unsafe { cuStreamCreate(&mut stream, CU_STREAM_NON_BLOCKING) },
            || format!("CUDA device {ordinal}: cuStreamCreate"),
        )?;
        Ok(Self {
            ordinal,
            name,
            compute_capability: (major, minor),
            total_memory,
            modules,
            state: Mutex::new(State::default()),
            stream,
            ctx_raw,
            _ctx: ctx,
        })
    }

    /// The device ordinal.
    pub fn ordinal(&self) -> usize {
        self.ordinal
    }

    /// (major, minor) compute capability, e.g. (9, 0) for an H100/H200.
    pub fn compute_capability(&self) -> (i32, i32) {
        self.compute_capability
    }

    /// The raw stream every operation is ordered on (for interop and events).
    pub fn raw_stream(&self) -> CUstream {
        self.stream
    }

    /// Makes this device's context current on the calling thread.
    fn bind(&self) -> Result<()> {
        let mut current: CUcontext = core::ptr::null_mut();
        // SAFETY: out-pointer to a local.
        let code = unsafe { cuCtxGetCurrent(&mut current) };
        if code == CUDA_SUCCESS && current == self.ctx_raw {
            return Ok(());
        }
        // SAFETY: the context lives as long as `self`.
        check(unsafe { cuCtxSetCurrent(self.ctx_raw) }, || {
            format!("CUDA device {}: cuCtxSetCurrent", self.ordinal)
        })
    }

    /// The function `kernel` of `module`, loading the module on first use.
    fn function(&self, module: &'static str, kernel: &str) -> Result<Func> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if !state.modules.contains_key(module) {
            let raw = self.load_module(module)?;
            state.modules.insert(
                module,
                LoadedModule {
                    raw,
                    functions: HashMap::new(),
                },
            );
        }
        let loaded = state.modules.get_mut(module).expect("inserted above");
        if let Some(f) = loaded.functions.get(kernel) {
            return Ok(f.clone());
        }
        let cname = CString::new(kernel)
            .map_err(|_| device_error(format!("kernel name {kernel:?} contains a NUL byte")))?;
        let mut raw: CUfunction = core::ptr::null_mut();
        // SAFETY: the module is loaded; the name is NUL-terminated.
        let code = unsafe { cuModuleGetFunction(&mut raw, loaded.raw, cname.as_ptr()) };
        check(code, || {
            format!("kernel {kernel:?} not found in CUDA module {module:?} (kernels/{module}.cu)")
        })?;
        let f = Func {
            raw,
            name: format!("{module}::{kernel}").into(),
        };
        loaded.functions.insert(kernel.to_string(), f.clone());
        Ok(f)
    }

    fn load_module(&self, module: &'static str) -> Result<CUmodule> {
        let Some((_, image)) = self.modules.iter().find(|(stem, _)| *stem == module) else {
            let known: Vec<&str> = self.modules.iter().map(|(s, _)| *s).collect();
            return Err(device_error(format!(
                "no CUDA module {module:?} (kernels/{module}.cu) in this build; modules: {known:?}"
            )));
        };
        // The driver reads the fatbin header as 8-byte words: give it an aligned copy
        // (include_bytes! only guarantees byte alignment). A trailing NUL keeps a PTX image
        // NUL-terminated too.
        let mut aligned = vec![0u64; image.len() / 8 + 1];
        // SAFETY: `aligned` has at least image.len() + 1 bytes.
        unsafe {
            core::ptr::copy_nonoverlapping(
                image.as_ptr(),
                aligned.as_mut_ptr().cast::<u8>(),
                image.len(),
            );
        }
        let mut raw: CUmodule = core::ptr::null_mut();
        // SAFETY: the image is a complete fatbin in memory; the driver copies what it keeps.
        let code = unsafe { cuModuleLoadData(&mut raw, aligned.as_ptr().cast()) };
        check(code, || {
            format!(
                "loading CUDA module {module:?} ({} bytes of fatbin: sm_80/sm_90 SASS, \
                 compute_80 PTX) on {}",
                image.len(),
                self.describe()
            )
        })?;
        Ok(raw)
    }

    fn last_launch(&self) -> String {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match &state.last_launch {
            Some(name) => format!(
                "the last kernel launched was {name}; rerun with CUDA_LAUNCH_BLOCKING=1 to \
                 attribute the error"
            ),
            None => "no kernel launched yet".into(),
        }
    }

    fn sync_stream(&self, what: &str) -> Result<()> {
        // SAFETY: the stream lives as long as `self`.
        let code = unsafe { cuStreamSynchronize(self.stream) };
        check(code, || {
            format!(
                "CUDA device {}: {what}: an asynchronous error ({})",
                self.ordinal,
                self.last_launch()
            )
        })
    }
}

impl Driver for CustDriver {
    fn describe(&self) -> String {
        let (major, minor) = self.compute_capability;
        format!(
            "{} (sm_{major}{minor}, {} GiB)",
            self.name,
            (self.total_memory as f64 / (1u64 << 30) as f64).round()
        )
    }

    /// Zero bytes give the null pointer (which `free` ignores).
    fn alloc(&self, bytes: usize) -> Result<u64> {
        if bytes == 0 {
            return Ok(0);
        }
        self.bind()?;
        let mut ptr: CUdeviceptr = 0;
        // SAFETY: out-pointer to a local.
        let code = unsafe { cuMemAlloc_v2(&mut ptr, bytes) };
        if code == CUDA_SUCCESS {
            return Ok(ptr);
        }
        if code == CUDA_ERROR_OUT_OF_MEMORY {
            let info = match self.mem_info() {
                Ok((free, total)) => format!(
                    "{free} bytes ({}) free of {total} ({}) (cuMemGetInfo)",
                    gib(free),
                    gib(total)
                ),
                Err(e) => format!("free memory unknown: {e}"),
            };
            return Err(device_error(format!(
                "{OUT_OF_MEMORY}: cuMemAlloc of {bytes} bytes ({}) on device {} ({}) failed; {info}",
                gib(bytes),
                self.ordinal,
                self.name
            )));
        }
        check(code, || {
            format!("CUDA device {}: cuMemAlloc of {bytes} bytes", self.ordinal)
        })?;
        unreachable!("check() fails for a non-success code")
    }

    unsafe fn free(&self, ptr: u64) {
        if ptr == 0 || self.bind().is_err() {
            return;
        }
        // A failure here is an earlier asynchronous error; the next synchronizing call
        // reports it.
        // SAFETY: the caller passes a pointer from `alloc` that nothing uses any more.
        let _ = unsafe { cuMemFree_v2(ptr) };
    }

    /// Ordered on the stream; `src` is pageable host memory, which the driver stages before
    /// returning, so the caller may reuse it at once.
    unsafe fn copy_htod(&self, dst: u64, src: &[u8]) -> Result<()> {
        if src.is_empty() {
            return Ok(());
        }
        self.bind()?;
        // SAFETY: the caller guarantees `dst` holds src.len() bytes.
        let code =
            unsafe { cuMemcpyHtoDAsync_v2(dst, src.as_ptr().cast(), src.len(), self.stream) };
        check(code, || {
            format!(
                "CUDA device {}: copy of {} bytes host -> device {dst:#x}",
                self.ordinal,
                src.len()
            )
        })
    }

    /// Ordered after everything queued on the stream; returns when `dst` holds the data.
    unsafe fn copy_dtoh(&self, dst: &mut [u8], src: u64) -> Result<()> {
        self.bind()?;
        if dst.is_empty() {
            return self.sync_stream("synchronize before an empty device -> host copy");
        }
        // SAFETY: the caller guarantees `src` holds dst.len() bytes.
        let code =
            unsafe { cuMemcpyDtoHAsync_v2(dst.as_mut_ptr().cast(), src, dst.len(), self.stream) };
        let len = dst.len();
        if code != CUDA_SUCCESS {
            // Usually an earlier kernel's error; name it.
            return check(code, || {
                format!(
                    "CUDA device {}: copy of {len} bytes device {src:#x} -> host ({})",
                    self.ordinal,
                    self.last_launch()
                )
            });
        }
        self.sync_stream(&format!("copy of {len} bytes device {src:#x} -> host"))
    }

    unsafe fn memset_d8(&self, dst: u64, value: u8, bytes: usize) -> Result<()> {
        if bytes == 0 {
            return Ok(());
        }
        self.bind()?;
        // SAFETY: the caller guarantees `dst` holds `bytes` bytes.
        let code = unsafe { cuMemsetD8Async(dst, value, bytes, self.stream) };
        check(code, || {
            format!(
                "CUDA device {}: memset of {bytes} bytes at {dst:#x} to {value}",
                self.ordinal
            )
        })
    }

    unsafe fn launch(
        &self,
        module: &'static str,
        kernel: &str,
        cfg: &LaunchConfig,
        args: &mut [*mut c_void],
    ) -> Result<()> {
        self.bind()?;
        let f = self.function(module, kernel)?;
        let nargs = args.len();
        let describe_launch = || {
            format!(
                "launch of CUDA kernel {} (grid {:?}, block {:?}, {} bytes dynamic shared \
                 memory, {} args) on device {}",
                f.name, cfg.grid, cfg.block, cfg.shared_bytes, nargs, self.ordinal
            )
        };
        if cfg.shared_bytes > DEFAULT_SHARED_LIMIT {
            // Opt in to more than 48 KiB of dynamic shared memory (sm_80: up to 163 KiB).
            // SAFETY: a loaded function; the driver validates the value.
            let code = unsafe {
                cuFuncSetAttribute(
                    f.raw,
                    CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                    cfg.shared_bytes as c_int,
                )
            };
            check(code, || {
                format!("{}: shared memory opt-in", describe_launch())
            })?;
        }
        {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            state.last_launch = Some(f.name.clone());
        }
        // SAFETY: the caller passes one pointer per kernel parameter, each to a value of the
        // parameter's type; the driver copies the values before returning.
        let code = unsafe {
            cuLaunchKernel(
                f.raw,
                cfg.grid[0],
                cfg.grid[1],
                cfg.grid[2],
                cfg.block[0],
                cfg.block[1],
                cfg.block[2],
                cfg.shared_bytes,
                self.stream,
                args.as_mut_ptr(),
                core::ptr::null_mut(),
            )
        };
        check(code, describe_launch)
    }

    fn synchronize(&self) -> Result<()> {
        self.bind()?;
        self.sync_stream("stream synchronize")
    }

    fn mem_info(&self) -> Result<(usize, usize)> {
        self.bind()?;
        let (mut free, mut total) = (0usize, 0usize);
        // SAFETY: out-pointers to locals.
        let code = unsafe { cuMemGetInfo_v2(&mut free, &mut total) };
        check(code, || {
            format!("CUDA device {}: cuMemGetInfo", self.ordinal)
        })?;
        Ok((free, total))
    }
}

impl Drop for CustDriver {
    fn drop(&mut self) {
        if self.bind().is_err() {
            return;
        }
        // SAFETY: nothing uses the stream or the modules after this; errors are ignored
        // (there is no one left to report them to).
        unsafe {
            let _ = cuStreamSynchronize(self.stream);
            let state = self.state.get_mut().unwrap_or_else(|p| p.into_inner());
            for (_, m) in state.modules.drain() {
                let _ = cuModuleUnload(m.raw);
            }
            let _ = cuStreamDestroy_v2(self.stream);
        }
        // `_ctx` drops next and releases the primary context.
    }
}
