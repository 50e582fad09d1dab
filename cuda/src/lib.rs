//! # tessera-cuda: the CUDA backend
//!
//! [`Cuda`] implements [`tessera_tensor::Backend`] with kernels written in CUDA C
//! (`kernels/*.cu`, one file per op family, beside the Rust that launches it in `src/ops/`).
//! The same kernel sources run two ways:
//!
//! | feature | what runs the kernels | needs |
//! |---|---|---|
//! | `cuda` | a GPU: nvcc 13.0 fatbins (sm_80, sm_90, compute_80 PTX) launched through `cust` | the CUDA toolkit to build (`scripts/setup_cuda.sh`), a driver to run |
//! | `sim` | the CPU: the kernels compiled by g++ against the SIMT shim (`sim/simt.h`) | a C++ compiler |
//!
//! The `sim` device is how CI runs every kernel without a GPU; see `DESIGN.md` and
//! `sim/README.md` for the contract and what the shim can and cannot catch.
//!
//! | PyTorch | Tessera |
//! |---|---|
//! | `torch.device("cuda:0")` | [`Cuda::new(0)`](Cuda::new) |
//! | `torch.cuda.synchronize()` | [`Backend::synchronize`](tessera_tensor::Backend::synchronize) |
//! | `torch.cuda.empty_cache()` | [`Backend::empty_cache`](tessera_tensor::Backend::empty_cache) |
//! | `torch.cuda.memory_stats()` | [`Cuda::memory_stats`] |
//!
//! ```no_run
//! use tessera_cuda::Cuda;
//! use tessera_tensor::{DType, Tensor};
//!
//! # fn main() -> tessera_tensor::Result<()> {
//! let dev = Cuda::new(0)?; // or Cuda::sim()? with the `sim` feature
//! let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0], &[3], &dev)?;
//! let y = x.exp()?.sum(&[0], false)?;
//! println!("{}", y.item()?);
//! # let _ = DType::F32;
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

pub mod alloc;
mod backend;
mod device;
pub mod driver;
pub mod launch;
pub mod layout;
#[allow(missing_docs)]
pub mod ops;
mod storage;

pub use device::{Cuda, DeviceKind};
pub use storage::CudaStorage;
