//! # tessera-tensor
//!
//! N-dimensional strided tensors, a backend abstraction, and the CPU reference backend.
//! `no_std` + `alloc` by default-features-off; the `std` feature (on by default) adds
//! multi-threaded GEMM, multi-threaded elementwise/row/reduction kernels, and
//! `std::error::Error`. The unit tests run in both configurations (`cargo test -p
//! tessera-tensor --no-default-features --lib` takes the no_std paths: one thread,
//! `matrixmultiply` for every GEMM).
//!
//! ## Threads
//! With `std`, f32 GEMM ([`cpu::gemm`]) splits blocks of C over the threads, f64 GEMM uses
//! `matrixmultiply`'s threads (`MATMUL_NUM_THREADS`), and large elementwise ops, gathers,
//! reductions, softmax and layer norm (over ~64K elements) split their output into
//! contiguous chunks computed on scoped threads. The thread count is
//! `std::thread::available_parallelism()`, overridden by the environment variable
//! `TESSERA_NUM_THREADS` (read once; `1` disables it). Results are bit-identical for every
//! thread count: each output element is computed by the same operations on any thread. See
//! [`cpu::parallel::num_threads`].
//!
//! | Tessera | PyTorch |
//! |---|---|
//! | [`Tensor<B>`](Tensor) | `torch.Tensor` |
//! | [`DType`] | `torch.dtype` (f16, bf16, f32, f64, plus i64 indices and u8 masks) |
//! | [`Layout`] (shape, strides, offset) | `size()`, `stride()`, `storage_offset()` |
//! | [`Backend`], [`Cpu`] | a device and its kernels (`device="cpu"`) |
//! | [`Tensor::reshape`], [`Tensor::permute`], [`Tensor::narrow`], [`Tensor::broadcast_to`] | the same names (`expand` for the last) |
//! | [`Tensor::binary_`], [`Tensor::assign_`], [`Tensor::adamw_update_`] | `x.add_(y)`, `x.copy_(y)`, `AdamW(fused=True)` |
//! | [`Backend::synchronize`], [`Backend::empty_cache`] | `torch.cuda.synchronize()`, `torch.cuda.empty_cache()` |
//! | [`set_float32_matmul_precision`]\([`MatmulPrecision::Highest`] \| [`MatmulPrecision::Bf16`]) | `torch.set_float32_matmul_precision("highest" \| "medium")` (CPU f32 matmul; bf16 products on AMX tiles or AVX512_BF16 where available, see [`cpu::gemm`]) |
//! | [`cpu::pool::stats`] | `torch.cuda.memory_stats()` (here for the CPU's buffer cache) |
//! | [`Rng`] | `torch.Generator` (a different algorithm: see its docs) |
//! | `Result<Tensor>` | exceptions: shape and dtype errors are values here |
//!
//! ```
//! use tessera_tensor::{Cpu, Tensor};
//! # fn main() -> tessera_tensor::Result<()> {
//! let a = Tensor::from_vec(vec![1.0f32, 2., 3., 4., 5., 6.], &[2, 3], &Cpu)?;
//! let b = a.t()?; // a view: no copy
//! let c = a.matmul(&b)?; // [2, 3] @ [3, 2]
//! assert_eq!(c.to_vec::<f32>()?, vec![14., 32., 32., 77.]);
//! let p = c.softmax(-1)?;
//! assert!((p.sum(&[-1], false)?.to_vec::<f32>()?[0] - 1.0).abs() < 1e-6);
//! # Ok(()) }
//! ```
//!
//! ## Soundness and memory
//! Safe code never reads or writes out of bounds: every [`Layout`] is checked with
//! overflow-checked arithmetic when it is built, and every [`Cpu`] backend method checks its
//! layouts, shapes, parameters and index values itself (an `Err`, never a panic), so direct
//! backend calls are as safe as the [`Tensor`] front end. Allocations whose size comes from a
//! caller go through [`memory::check_alloc`]: a request beyond `isize::MAX` bytes, or beyond
//! the process-wide memory budget ([`set_memory_limit`], else `TESSERA_MEMORY_LIMIT`, else the
//! machine's physical memory; see [`memory`]), is an [`Error::Device`], not an abort, and the
//! CPU backend's allocations themselves are fallible. Other large buffers (decoded images,
//! decompressed files) are checked with [`check_bytes`].
//!
//! ## Memory model
//! Ops return new tensors, drawn from the backend's cache of freed buffers (on the CPU,
//! [`cpu::pool`]): a training step that repeats the same shapes allocates nothing new after
//! its first iterations. Parameters, gradients and optimizer state are updated in place
//! (`ops/inplace`), after a copy only if another tensor shares the storage, so no value held
//! elsewhere ever changes. Scalars travel as op arguments, never as uploaded tensors.
//!
//! ## Where to read
//! - `layout.rs`: how views work (every op accepts any strides).
//! - `backend/mod.rs`: the contract a device implements; `backend/composite.rs`: the composite
//!   ops written from primitives.
//! - `ops/<op>/mod.rs`: an op's front end; `ops/<op>/cpu.rs`: its CPU kernel.
// Unit tests link the standard library whatever the features (the test harness needs it), so
// they get its prelude too; the no_std build itself is proved by `nostd-check` in CI.
#![cfg_attr(not(any(feature = "std", test)), no_std)]
#![warn(missing_debug_implementations)]

extern crate alloc;

pub mod backend;
mod buffer;
pub mod cpu;
mod dtype;
mod error;
pub mod layout;
pub mod memory;
pub mod ops;
pub mod rng;
pub mod shape;
mod tensor;
#[cfg(test)]
mod testing;
mod view;

pub use backend::{
    AdamWStep, Backend, BackendStorage, BinaryOp, CmpOp, Conv2dParams, PoolParams, ReduceOp,
    ResizeParams, SgdStep, UnaryOp,
};
pub use buffer::{HostBuffer, HostElement};
pub use cpu::gemm::{float32_matmul_precision, set_float32_matmul_precision, MatmulPrecision};
pub use cpu::{Cpu, CpuStorage};
pub use dtype::{DType, Element, Float};
pub use error::{Error, Result};
pub use layout::Layout;
pub use memory::{check_alloc, check_bytes, memory_limit, set_memory_limit};
pub use ops::conv::ConvOptions;
pub use ops::norm::{
    BatchNormGrads, BatchNormNeeds, BatchNormOutput, LayerNormGrads, NormParamGrads,
};
pub use ops::pool::Pool2dOptions;
pub use ops::unary::GeluApproximate;
pub use rng::Rng;
pub use tensor::Tensor;

pub use half::{bf16, f16};

static DEBUG_CHECKS: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Turns on checks that read tensor data to the host before an op runs (index values of
/// gather/scatter/index_select), for clearer errors while debugging. Off by default, since
/// each such read stalls a device pipeline; backends check index values themselves either way.
pub fn set_debug_checks(on: bool) {
    DEBUG_CHECKS.store(on, core::sync::atomic::Ordering::Relaxed);
}

/// Whether [`set_debug_checks`] is on.
pub fn debug_checks() -> bool {
    DEBUG_CHECKS.load(core::sync::atomic::Ordering::Relaxed)
}

#[doc(hidden)]
pub use alloc::format as __format;
