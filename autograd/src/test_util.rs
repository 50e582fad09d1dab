//! Helpers for the unit tests: seeded F64 inputs and a gradcheck that panics with its report.

use crate::gradcheck::SplitMix;
use crate::{gradcheck, GradcheckOptions, Var};
use alloc::vec::Vec;
use tessera_tensor::{Cpu, Result, Tensor};

fn uniform(shape: &[usize], seed: u64, lo: f64, hi: f64) -> Tensor<Cpu> {
    let mut rng = SplitMix(seed.wrapping_mul(0x2545_f491_4f6c_dd1d));
    let n = shape.iter().product();
    let v: Vec<f64> = (0..n).map(|_| rng.uniform(lo, hi)).collect();
    Tensor::from_vec(v, shape, &Cpu).expect("test tensor")
}

/// Uniform in `[-1, 1)`.
pub fn rand(shape: &[usize], seed: u64) -> Tensor<Cpu> {
    uniform(shape, seed, -1.0, 1.0)
}

/// Uniform in `[0.5, 2)`: for log, sqrt, division, pow bases.
pub fn pos(shape: &[usize], seed: u64) -> Tensor<Cpu> {
    uniform(shape, seed, 0.5, 2.0)
}

/// Gradcheck with the default options; panics with the failure report.
pub fn check<F>(f: F, inputs: &[Tensor<Cpu>])
where
    F: Fn(&[Var<Cpu>]) -> Result<Var<Cpu>>,
{
    check_with("function", f, inputs)
}

/// [`check`] that names the function in the panic message.
pub fn check_with<F>(name: &str, f: F, inputs: &[Tensor<Cpu>])
where
    F: Fn(&[Var<Cpu>]) -> Result<Var<Cpu>>,
{
    if let Err(e) = gradcheck(f, inputs, &GradcheckOptions::default()) {
        panic!("{name}: {e}");
    }
}
