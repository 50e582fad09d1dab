//! Helpers the shim test files share (each test file is its own crate and includes this with
//! `mod common;`; not every file uses every helper).
#![allow(dead_code)]

use tessera_cuda::Cuda;
use tessera_tensor::{Backend, DType, Tensor};

/// The float dtypes every kernel supports.
pub const FLOATS: [DType; 4] = [DType::F32, DType::F64, DType::F16, DType::BF16];

/// The shim device (one per process).
pub fn dev() -> Cuda {
    Cuda::sim().expect("the SIMT shim device")
}

/// A deterministic stream of 31-bit numbers from `seed` (a 64-bit LCG's high bits): the
/// tests' inputs are reproducible without a random-number dependency.
pub fn lcg(seed: u64) -> impl Iterator<Item = u64> {
    const A: u64 = 6364136223846793005;
    const C: u64 = 1442695040888963407;
    let mut s = seed.wrapping_mul(A).wrapping_add(C);
    core::iter::repeat_with(move || {
        s = s.wrapping_mul(A).wrapping_add(C);
        s >> 33
    })
}

/// `v` as a tensor of `shape` and dtype `dt` on `b` (through f64, so the same values on every
/// backend).
pub fn make<B: Backend>(v: &[f64], shape: &[usize], dt: DType, b: &B) -> Tensor<B> {
    Tensor::from_vec(v.to_vec(), shape, b)
        .unwrap()
        .to_dtype(dt)
        .unwrap()
}
