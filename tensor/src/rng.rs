//! Seeded random numbers, reproducible across machines and platforms (being written).
//!
//! The generator is documented in full so that another implementation can reproduce its
//! streams. It is *not* PyTorch's generator: fixtures pass tensors explicitly instead.

use crate::backend::Backend;
use crate::dtype::DType;
use crate::{Result, Tensor};

/// A small, documented generator (PyTorch: `torch.Generator`).
#[derive(Clone, Debug)]
pub struct Rng {
    state: [u64; 4],
}

impl Rng {
    /// A generator seeded from one `u64`.
    pub fn new(seed: u64) -> Self {
        Rng {
            state: [seed, 0, 0, 0],
        }
    }
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        unimplemented!("being written")
    }
    /// Uniform in `[0, 1)` with 53 random bits.
    pub fn next_f64(&mut self) -> f64 {
        unimplemented!("being written")
    }
    /// Standard normal.
    pub fn normal(&mut self) -> f64 {
        unimplemented!("being written")
    }
    /// Uniform integer in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        unimplemented!("being written {n}")
    }
    /// A random permutation of `0..n` (Fisher-Yates).
    pub fn permutation(&mut self, n: usize) -> alloc::vec::Vec<usize> {
        unimplemented!("being written {n}")
    }
}

impl<B: Backend> Tensor<B> {
    /// Uniform samples in `[low, high)` (PyTorch: `torch.empty(shape).uniform_(low, high)`).
    pub fn rand_uniform(
        shape: &[usize],
        low: f64,
        high: f64,
        dtype: DType,
        rng: &mut Rng,
        backend: &B,
    ) -> Result<Self> {
        let _ = (shape, low, high, dtype, rng, backend);
        unimplemented!()
    }
    /// Normal samples (PyTorch: `torch.normal(mean, std, shape)`).
    pub fn randn(
        shape: &[usize],
        mean: f64,
        std: f64,
        dtype: DType,
        rng: &mut Rng,
        backend: &B,
    ) -> Result<Self> {
        let _ = (shape, mean, std, dtype, rng, backend);
        unimplemented!()
    }
    /// Normal samples truncated to `[a, b]` (absolute bounds, as `nn.init.trunc_normal_`).
    #[allow(clippy::too_many_arguments)]
    pub fn trunc_normal(
        shape: &[usize],
        mean: f64,
        std: f64,
        a: f64,
        b: f64,
        dtype: DType,
        rng: &mut Rng,
        backend: &B,
    ) -> Result<Self> {
        let _ = (shape, mean, std, a, b, dtype, rng, backend);
        unimplemented!()
    }
}
