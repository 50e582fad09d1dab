//! Fused GELU and its backward (kernels: `kernels/activation.cu`), one pass over strided
//! inputs into a new contiguous tensor. CPU counterpart: `gelu` / `gelu_backward` in
//! `tensor/src/ops/unary/cpu.rs` (f32/f64 there; here f16/bf16 too, computed in f32);
//! specification: `composite::gelu` / `composite::gelu_backward`.
//!
//! The tanh-approximate GELU (`gelu_tanh` / `gelu_tanh_backward`) has no fused kernel here:
//! the CUDA backend keeps the `Backend` trait's defaults, `composite::gelu_tanh` /
//! `composite::gelu_tanh_backward`, built from the elementwise kernels (tanh, mul, affine).

use crate::driver::arg;
use crate::launch::{count, grid_stride, suffix};
use crate::layout::KernelLayout;
use crate::storage::{check_view, CudaStorage};
use crate::Cuda;
use std::sync::Arc;
use tessera_tensor::backend::composite;
use tessera_tensor::{Layout, Result, Tensor};

const MODULE: &str = "activation";

/// `1 / sqrt(2π)` exactly as the composite and the CPU kernel compute it in f64.
const INV_SQRT_2PI: f64 =
    0.5 * core::f64::consts::FRAC_2_SQRT_PI * core::f64::consts::FRAC_1_SQRT_2;

pub fn gelu(dev: &Cuda, x: &Tensor<Cuda>) -> Result<Tensor<Cuda>> {
    const OP: &str = "gelu";
    if !x.dtype().is_float() {
        return composite::gelu(x); // reports the dtype error
    }
    let (xs, xl) = (&**x.storage(), x.layout());
    check_view(dev, OP, xs, xl, None)?;
    let ol = Layout::contiguous(x.shape());
    let n = ol.numel();
    let out = CudaStorage::uninit(dev, n, x.dtype())?;
    if n > 0 {
        let [kx, _] = KernelLayout::merged(OP, [xl, &ol])?;
        let flat = i32::from(xl.is_contiguous());
        let (xp, op, nn) = (xs.base(), out.base(), count(OP, n)?);
        let kernel = format!("ts_gelu_fwd_{}", suffix(x.dtype()));
        // SAFETY: the view was checked against its storage; `out` holds n elements.
        unsafe {
            dev.inner.launch(
                MODULE,
                &kernel,
                &grid_stride(dev, n),
                &mut [arg(&kx), arg(&xp), arg(&op), arg(&nn), arg(&flat)],
            )?;
        }
    }
    Tensor::from_parts(Arc::new(out), ol, dev.clone())
}

pub fn gelu_backward(dev: &Cuda, x: &Tensor<Cuda>, grad: &Tensor<Cuda>) -> Result<Tensor<Cuda>> {
    const OP: &str = "gelu_backward";
    if !x.dtype().is_float() || grad.dtype() != x.dtype() || grad.shape() != x.shape() {
        return composite::gelu_backward(x, grad); // reports the error
    }
    let (xs, xl) = (&**x.storage(), x.layout());
    let (gs, gl) = (&**grad.storage(), grad.layout());
    check_view(dev, OP, xs, xl, None)?;
    check_view(dev, OP, gs, gl, Some(x.dtype()))?;
    let ol = Layout::contiguous(x.shape());
    let n = ol.numel();
    let out = CudaStorage::uninit(dev, n, x.dtype())?;
    if n > 0 {
        let [kx, kg, _] = KernelLayout::merged(OP, [xl, gl, &ol])?;
        let flat = i32::from(xl.is_contiguous() && gl.is_contiguous());
        let (xp, gp, op, nn) = (xs.base(), gs.base(), out.base(), count(OP, n)?);
        let kernel = format!("ts_gelu_backward_{}", suffix(x.dtype()));
        // SAFETY: both views were checked against their storages; `out` holds n elements.
        unsafe {
            dev.inner.launch(
                MODULE,
                &kernel,
                &grid_stride(dev, n),
                &mut [
                    arg(&kx),
                    arg(&xp),
                    arg(&kg),
                    arg(&gp),
                    arg(&op),
                    arg(&nn),
                    arg(&flat),
                    arg(&INV_SQRT_2PI),
                ],
            )?;
        }
    }
    Tensor::from_parts(Arc::new(out), ol, dev.clone())
}
