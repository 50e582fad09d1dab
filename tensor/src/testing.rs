//! Helpers shared by the crate's unit tests: deterministic inputs, a dot product for
//! adjoint checks, and bit patterns for "same bits" assertions.

use crate::{Cpu, HostBuffer, Tensor};
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

/// The element bit patterns of `t` in its own dtype (widened to `u64`), so two results
/// compare equal only when every bit matches; `-0.0 != 0.0` and NaN payloads count.
pub(crate) fn bits(t: &Tensor<Cpu>) -> Vec<u64> {
    match t.to_host().unwrap() {
        HostBuffer::F32(v) => v.iter().map(|x| x.to_bits() as u64).collect(),
        HostBuffer::F64(v) => v.iter().map(|x| x.to_bits()).collect(),
        HostBuffer::F16(v) => v.iter().map(|x| x.to_bits() as u64).collect(),
        HostBuffer::BF16(v) => v.iter().map(|x| x.to_bits() as u64).collect(),
        HostBuffer::I64(v) => v.iter().map(|&x| x as u64).collect(),
        HostBuffer::U8(v) => v.iter().map(|&x| x as u64).collect(),
    }
}
