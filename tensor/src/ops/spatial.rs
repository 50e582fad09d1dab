//! Front-end pieces shared by the ops on the spatial plane of NCHW tensors (pooling and
//! interpolation): the input check and the output's construction. Plus, for their unit
//! tests, deterministic inputs and a dot product for adjoint checks.

use crate::backend::Backend;
use crate::{Result, Tensor};

impl<B: Backend> Tensor<B> {
    /// Checks `self` is `[n, c, h, w]` with a non-empty `h × w` plane; returns `[h, w]`.
    pub(crate) fn check_nchw_plane(&self, op: &'static str) -> Result<[usize; 2]> {
        self.check_rank(op, 4)?;
        let s = self.shape();
        if s[2] == 0 || s[3] == 0 {
            return Err(crate::shape_err!(
                op,
                "input {s:?} has an empty spatial dim"
            ));
        }
        Ok([s[2], s[3]])
    }

    /// The `[n, c, hw[0], hw[1]]` tensor in `storage`, with `n` and `c` from `self` (rank 4),
    /// on `self`'s backend.
    pub(crate) fn with_plane(&self, storage: B::Storage, hw: [usize; 2]) -> Self {
        let s = self.shape();
        Self::from_storage(storage, &[s[0], s[1], hw[0], hw[1]], self.backend())
    }
}

#[cfg(test)]
pub(crate) mod testing {
    use crate::{Cpu, Tensor};
    use alloc::vec::Vec;

    /// Deterministic values in [-1, 1) (a 64-bit LCG; the crate's `Rng` is separate work).
    pub(crate) fn random(shape: &[usize], seed: u64) -> Tensor<Cpu> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let n: usize = shape.iter().product();
        let v: Vec<f64> = (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                (s >> 11) as f64 / (1u64 << 52) as f64 - 1.0
            })
            .collect();
        Tensor::from_vec(v, shape, &Cpu).unwrap()
    }

    /// `<a, b>` over all elements, in f64.
    pub(crate) fn dot(a: &Tensor<Cpu>, b: &Tensor<Cpu>) -> f64 {
        let (a, b) = (a.to_f64_vec().unwrap(), b.to_f64_vec().unwrap());
        assert_eq!(a.len(), b.len());
        a.iter().zip(&b).map(|(x, y)| x * y).sum()
    }
}
