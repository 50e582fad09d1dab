//! Fused CPU layer-norm input gradient (`Backend::layer_norm_backward`): per row, one pass
//! for the two sums `Σ ĝ` and `Σ ĝ·x̂` (in f64) and one to write
//! `dx = rstd * (ĝ - mean(ĝ) - x̂ * mean(ĝ·x̂))`, `ĝ = grad * weight`, `x̂ = (x - mean) * rstd`.
//! The elementwise terms are rounded in the tensor's dtype as the composite rounds them, so
//! the two differ only in how the sums are ordered. The composite default takes seven passes
//! over the input and four temporaries the size of it.

use super::cpu::{lane_sum, GradOperands, LANES};
use crate::backend::composite;
use crate::buffer::HostElement;
use crate::cpu::simd::with_avx2;
use crate::cpu::{parallel, Cpu};
use crate::dtype::{Element, Float};
use crate::{HostBuffer, Result, Tensor};
use alloc::vec::Vec;

/// One row's `mean(ĝ)` and `mean(ĝ·x̂)`, from f64 lane sums (`ĝ·x̂` rounded as
/// `(g·w)·x̂`, the composite's order).
#[inline(always)]
pub(super) fn row_means<T: Float>(xr: &[T], gr: &[T], m: T, rs: T, w: Option<&[T]>) -> (T, T) {
    let inv_d = 1.0 / xr.len() as f64;
    let xhat = |x: T| (x - m) * rs;
    let (mut s1, mut s2) = ([0.0f64; LANES], [0.0f64; LANES]);
    match w {
        Some(w) => {
            lane_sum(&mut s1, (gr, w, w), |g, w, _| Element::to_f64(g * w));
            lane_sum(&mut s2, (gr, w, xr), |g, w, x| {
                Element::to_f64(g * w * xhat(x))
            });
        }
        None => {
            lane_sum(&mut s1, (gr, gr, gr), |g, _, _| Element::to_f64(g));
            lane_sum(&mut s2, (gr, xr, xr), |g, x, _| {
                Element::to_f64(g * xhat(x))
            });
        }
    }
    let m1 = T::from_f64(s1.iter().sum::<f64>() * inv_d);
    let m2 = T::from_f64(s2.iter().sum::<f64>() * inv_d);
    (m1, m2)
}

/// `dx` for contiguous rows of `d` values; `mean`/`rstd` hold one value per row.
fn rows<T: Float>(x: &[T], g: &[T], mean: &[T], rstd: &[T], w: Option<&[T]>, d: usize) -> Vec<T> {
    let n = x.len() / d;
    parallel::collect(n, d, 3 * x.len(), |r, s| {
        for row in r {
            let (xr, gr) = (&x[row * d..][..d], &g[row * d..][..d]);
            let (m, rs) = (mean[row], rstd[row]);
            let (m1, m2) = with_avx2(|| row_means(xr, gr, m, rs, w));
            let xhat = |x: T| (x - m) * rs;
            match w {
                Some(w) => s.extend_zip3(gr, w, xr, &|g, w, x| (g * w - m1 - xhat(x) * m2) * rs),
                None => s.extend_zip(gr, xr, &|g, x| (g - m1 - xhat(x) * m2) * rs),
            }
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
    let Some((_, d)) = fused_dims(x, mean, rstd, weight, grad, k) else {
        return composite();
    };
    let (shape, dtype) = (x.shape(), x.dtype());
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

/// The rows and columns `(n, d)` of layer norm's gradients when the fused CPU kernels take
/// them: f32 or f64 operands of the shapes the forward produced (`k` normalized dims, one
/// mean and rstd per row, a weight of `d` values if any); `None` otherwise.
pub(super) fn fused_dims(
    x: &Tensor<Cpu>,
    mean: &Tensor<Cpu>,
    rstd: &Tensor<Cpu>,
    weight: Option<&Tensor<Cpu>>,
    grad: &Tensor<Cpu>,
    k: usize,
) -> Option<(usize, usize)> {
    let shape = x.shape();
    if k == 0 || k > shape.len() || grad.shape() != shape {
        return None;
    }
    let d: usize = shape[shape.len() - k..].iter().product();
    let n = x.numel().checked_div(d).unwrap_or(0);
    let dtype = x.dtype();
    let fits = |t: &Tensor<Cpu>, len: usize| t.numel() == len && t.dtype() == dtype;
    let fused = d > 0
        && matches!(dtype, crate::DType::F32 | crate::DType::F64)
        && fits(grad, x.numel())
        && fits(mean, n)
        && fits(rstd, n)
        && weight.is_none_or(|w| fits(w, d));
    fused.then_some((n, d))
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
    let o = GradOperands::<T>::open(x, grad, mean, rstd, weight)?;
    Some(rows(&o.x, &o.g, &o.mean, &o.rstd, o.w.as_deref(), d))
}

#[cfg(test)]
mod tests {
    use crate::{Cpu, DType, Tensor};

    /// A plain scalar model of both kernels: element `j` of a row goes to f64 lane `j % 8`,
    /// the lanes are summed in order, and the elementwise terms are rounded in f32 in the
    /// composite's order. Returns (y, mean, rstd, dx).
    fn model(x: &[f32], g: &[f32], w: Option<&[f32]>, b: &[f32], d: usize) -> [Vec<f32>; 4] {
        let lanes = |f: &dyn Fn(usize) -> f64| {
            let mut acc = [0.0f64; 8];
            (0..d).for_each(|j| acc[j % 8] += f(j));
            acc.iter().sum::<f64>()
        };
        let w = |j: usize| w.map_or(1.0, |w| w[j]);
        let [mut y, mut mean, mut rstd, mut dx] = [vec![], vec![], vec![], vec![]];
        for (xr, gr) in x.chunks(d).zip(g.chunks(d)) {
            let m = lanes(&|j| xr[j] as f64) / d as f64;
            let var = lanes(&|j| (xr[j] as f64 - m) * (xr[j] as f64 - m)) / d as f64;
            let (mt, rt) = (m as f32, (1.0 / (var + 1e-6).sqrt()) as f32);
            y.extend((0..d).map(|j| (xr[j] - mt) * rt * w(j) + b[j]));
            let xhat = |j: usize| (xr[j] - mt) * rt;
            let m1 = (lanes(&|j| (gr[j] * w(j)) as f64) / d as f64) as f32;
            let m2 = (lanes(&|j| (gr[j] * w(j) * xhat(j)) as f64) / d as f64) as f32;
            dx.extend((0..d).map(|j| (gr[j] * w(j) - m1 - xhat(j) * m2) * rt));
            mean.push(mt);
            rstd.push(rt);
        }
        [y, mean, rstd, dx]
    }

    /// The fused forward and input gradient (AVX2 where the CPU has it) give the model's
    /// bits, on rows shorter than, equal to and longer than the lanes, with and without a
    /// weight. The values span 2^-40..2^40, so any change in the order of the f64 sums
    /// shows in the bits.
    #[test]
    fn fused_kernels_match_the_scalar_model_bit_for_bit() {
        let vals = |n: usize, s: usize| -> Vec<f32> {
            (0..n)
                .map(|i| ((i * s % 97) as f32 - 48.0) * 2f32.powi((i * 7 % 81) as i32 - 40))
                .collect()
        };
        for d in [5usize, 8, 37, 192] {
            let rows = 6;
            let (mut x, mut g) = (vals(rows * d, 31), vals(rows * d, 53));
            // In row 0, 2^60 - 2^60 + 1 is 1 in this order and 0 in any other (2^60 + 1
            // rounds to 2^60 in f64): placed in the tail where the row has one, else in
            // the first lanes, so a change in which lane takes which element shows.
            let at = if d % 8 >= 3 { d - d % 8 } else { 0 };
            for v in [&mut x, &mut g] {
                v[at..at + 3].copy_from_slice(&[2f32.powi(60), -(2f32.powi(60)), 1.0]);
            }
            let (w, b) = (vals(d, 11), vals(d, 17));
            for weight in [Some(&w[..]), None] {
                let t =
                    |v: &[f32], shape: &[usize]| Tensor::from_vec(v.to_vec(), shape, &Cpu).unwrap();
                let wt = weight.map(|w| t(w, &[d]));
                let bias = t(&b, &[d]);
                let xt = t(&x, &[rows, d]);
                let (y, mean, rstd) = xt
                    .layer_norm_with_stats(&[d], wt.as_ref(), Some(&bias), 1e-6)
                    .unwrap();
                let dx = super::layer_norm_backward(
                    &xt,
                    &mean,
                    &rstd,
                    wt.as_ref(),
                    &t(&g, &[rows, d]),
                    1,
                )
                .unwrap();
                let want = model(&x, &g, weight, &b, d);
                for (name, got, want) in [
                    ("y", y, &want[0]),
                    ("mean", mean, &want[1]),
                    ("rstd", rstd, &want[2]),
                    ("dx", dx, &want[3]),
                ] {
                    let got = got.to_vec::<f32>().unwrap();
                    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    assert_eq!(
                        bits(&got),
                        bits(want),
                        "{name}, d {d}, weight {}",
                        weight.is_some()
                    );
                }
            }
        }
    }

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
