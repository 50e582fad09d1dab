//! Fused CPU layer-norm input gradient (`Backend::layer_norm_backward`): per row, one pass
//! for the two sums `Σ ĝ` and `Σ ĝ·x̂` (in f64) and one to write
//! `dx = rstd * (ĝ - mean(ĝ) - x̂ * mean(ĝ·x̂))`, `ĝ = grad * weight`, `x̂ = (x - mean) * rstd`.
//! The elementwise terms are rounded in the tensor's dtype as the composite rounds them, so
//! the two differ only in how the sums are ordered. The composite default takes seven passes
//! over the input and four temporaries the size of it.

use super::cpu::{elements, lane_sum, optional_elements, LANES};
use crate::backend::composite;
use crate::buffer::HostElement;
use crate::cpu::{parallel, Cpu};
use crate::dtype::{Element, Float};
use crate::{HostBuffer, Result, Tensor};
use alloc::vec::Vec;

/// `dx` for contiguous rows of `d` values; `mean`/`rstd` hold one value per row.
fn rows<T: Float>(x: &[T], g: &[T], mean: &[T], rstd: &[T], w: Option<&[T]>, d: usize) -> Vec<T> {
    let n = x.len() / d;
    let inv_d = 1.0 / d as f64;
    let ghat = |gj: T, j: usize| match w {
        Some(w) => gj * w[j],
        None => gj,
    };
    parallel::collect(n, d, 3 * x.len(), |r, s| {
        for row in r {
            let (xr, gr) = (&x[row * d..][..d], &g[row * d..][..d]);
            let (m, rs) = (mean[row], rstd[row]);
            let xhat = |j: usize| (xr[j] - m) * rs;
            let (mut s1, mut s2) = ([0.0f64; LANES], [0.0f64; LANES]);
            lane_sum(d, &mut s1, |j| Element::to_f64(ghat(gr[j], j)));
            lane_sum(d, &mut s2, |j| Element::to_f64(ghat(gr[j], j) * xhat(j)));
            let m1 = T::from_f64(s1.iter().sum::<f64>() * inv_d);
            let m2 = T::from_f64(s2.iter().sum::<f64>() * inv_d);
            s.extend((0..d).map(|j| (ghat(gr[j], j) - m1 - xhat(j) * m2) * rs));
        }
    })
}

/// The CPU override of `Backend::layer_norm_backward`; anything but f32/f64 inputs of the
/// shapes the forward produced takes the composite.
pub(crate) fn layer_norm_backward(
    x: &Tensor<Cpu>,
    mean: &Tensor<Cpu>,
    rstd: &Tensor<Cpu>,
    weight: Option<&Tensor<Cpu>>,
    grad: &Tensor<Cpu>,
    k: usize,
) -> Result<Tensor<Cpu>> {
    let composite = || composite::layer_norm_backward(x, mean, rstd, weight, grad, k);
    let shape = x.shape();
    if k == 0 || k > shape.len() || grad.shape() != shape {
        return composite();
    }
    let d: usize = shape[shape.len() - k..].iter().product();
    let n = x.numel().checked_div(d).unwrap_or(0);
    let dtype = x.dtype();
    let fits = |t: &Tensor<Cpu>, len: usize| t.numel() == len && t.dtype() == dtype;
    if d == 0
        || !matches!(dtype, crate::DType::F32 | crate::DType::F64)
        || !fits(grad, x.numel())
        || !fits(mean, n)
        || !fits(rstd, n)
        || weight.is_some_and(|w| !fits(w, d))
    {
        return composite();
    }
    let dx = match dtype {
        crate::DType::F32 => typed::<f32>(x, grad, mean, rstd, weight, d).map(HostBuffer::F32),
        crate::DType::F64 => typed::<f64>(x, grad, mean, rstd, weight, d).map(HostBuffer::F64),
        _ => None,
    };
    match dx {
        Some(dx) => crate::cpu::kernel_output(dx, shape),
        None => composite(),
    }
}

/// [`rows`] on `T` operands, borrowed where contiguous; `None` if any is not a `T`.
fn typed<T: Float + HostElement + Send + Sync>(
    x: &Tensor<Cpu>,
    grad: &Tensor<Cpu>,
    mean: &Tensor<Cpu>,
    rstd: &Tensor<Cpu>,
    weight: Option<&Tensor<Cpu>>,
    d: usize,
) -> Option<Vec<T>> {
    let (xv, gv) = (elements::<T>(x)?, elements::<T>(grad)?);
    let (mv, rv) = (elements::<T>(mean)?, elements::<T>(rstd)?);
    let wv = optional_elements::<T>(weight)?;
    Some(rows(&xv, &gv, &mv, &rv, wv.as_deref(), d))
}

#[cfg(test)]
mod tests {
    use crate::{Cpu, DType, Tensor};

    /// The fused gradient against the composite on a non-contiguous f32 and an f64 input,
    /// with and without a weight.
    #[test]
    fn fused_matches_composite() {
        for dtype in [DType::F32, DType::F64] {
            let vals = |n: usize, s: f64| (0..n).map(move |i| ((i as f64) * s).sin() * 3.0 + 0.5);
            let x = Tensor::from_vec(vals(5 * 37, 0.71).collect(), &[37, 5], &Cpu)
                .unwrap()
                .to_dtype(dtype)
                .unwrap()
                .t()
                .unwrap(); // [5, 37], strided
            let g = Tensor::from_vec(vals(5 * 37, 1.3).collect(), &[5, 37], &Cpu)
                .unwrap()
                .to_dtype(dtype)
                .unwrap();
            let w = Tensor::from_vec(vals(37, 0.37).collect(), &[37], &Cpu)
                .unwrap()
                .to_dtype(dtype)
                .unwrap();
            let (_, mean, rstd) = x
                .layer_norm_with_stats(&[37], Some(&w), None, 1e-5)
                .unwrap();
            for weight in [Some(&w), None] {
                let fused = super::layer_norm_backward(&x, &mean, &rstd, weight, &g, 1).unwrap();
                let composite =
                    crate::backend::composite::layer_norm_backward(&x, &mean, &rstd, weight, &g, 1)
                        .unwrap();
                let host =
                    |t: Tensor<Cpu>| t.to_dtype(DType::F64).unwrap().to_vec::<f64>().unwrap();
                let (f, c) = (host(fused), host(composite));
                let tol = if dtype == DType::F32 { 2e-5 } else { 1e-12 };
                for (a, b) in f.iter().zip(&c) {
                    assert!(
                        (a - b).abs() <= tol * (1.0 + b.abs()),
                        "{dtype:?}: {a} vs {b}"
                    );
                }
            }
        }
    }
}
