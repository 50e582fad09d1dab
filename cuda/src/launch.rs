//! Launch helpers shared by the op files: grid sizes, kernel names by dtype, and the
//! "not written yet" error.

use crate::device::{Cuda, DeviceKind};
use crate::driver::LaunchConfig;
use tessera_tensor::{DType, Error};

/// Threads per block of the elementwise kernels.
pub const BLOCK: u32 = 256;

/// The kernel name suffix of a dtype (`ts_unary_f32`).
pub fn suffix(dtype: DType) -> &'static str {
    match dtype {
        DType::F16 => "f16",
        DType::BF16 => "bf16",
        DType::F32 => "f32",
        DType::F64 => "f64",
        DType::I64 => "i64",
        DType::U8 => "u8",
    }
}

/// A 1-D launch for a grid-stride loop over `n` elements. On a GPU, enough blocks to fill it;
/// under the shim, few blocks (each block's threads are fibers on one worker thread, so more
/// blocks than workers only add scheduling).
pub fn grid_stride(dev: &Cuda, n: usize) -> LaunchConfig {
    let cap: usize = match dev.kind() {
        DeviceKind::Gpu(_) => 65_535,
        DeviceKind::Sim => 8,
    };
    let blocks = n.div_ceil(BLOCK as usize).clamp(1, cap) as u32;
    LaunchConfig {
        grid: [blocks, 1, 1],
        block: [BLOCK, 1, 1],
        shared_bytes: 0,
    }
}

/// `n` as the kernels' `long long`.
pub fn count(op: &'static str, n: usize) -> Result<i64, Error> {
    i64::try_from(n).map_err(|_| Error::Unsupported {
        op,
        backend: "cuda",
        msg: format!("{n} elements exceed the kernels' 64-bit signed counts"),
    })
}

/// The error of an op whose kernel does not exist (yet) for these arguments.
pub fn unsupported(op: &'static str, msg: impl Into<String>) -> Error {
    Error::Unsupported {
        op,
        backend: "cuda",
        msg: msg.into(),
    }
}
