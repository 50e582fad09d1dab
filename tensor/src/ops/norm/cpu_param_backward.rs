//! Fused CPU gradients of layer norm's weight and bias (`Backend::layer_norm_param_backward`):
//! one pass over `x` and the output gradient `g` that sums, for each normalized position
//! `j`, `dw[j] = Σᵢ g[i, j] · x̂[i, j]` and `db[j] = Σᵢ g[i, j]` over the rows `i`, with
//! `x̂ = (x - mean) · rstd`. The products are rounded in the tensor's dtype in the
//! composite's order and summed in f64 in row order from `-0.0`, as the composite's sum
//! (`ops/reduce/sum_contiguous.rs`) sums them: the same bits, without the composite's three
//! temporaries the size of `x` and its four passes over them.

use super::cpu::GradOperands;
use crate::backend::composite;
use crate::buffer::HostElement;
use crate::cpu::simd::with_avx2;
use crate::cpu::{parallel, pool, Cpu};
use crate::dtype::{Element, Float};
use crate::{DType, HostBuffer, Result, Tensor};
use alloc::vec::Vec;
use core::ops::Range;

/// The CPU override; anything but contiguous-or-gatherable f32/f64 operands of the forward's
/// shapes takes the composite.
pub(crate) fn layer_norm_param_backward(
    x: &Tensor<Cpu>,
    mean: &Tensor<Cpu>,
    rstd: &Tensor<Cpu>,
    grad: &Tensor<Cpu>,
    k: usize,
    needs: (bool, bool),
) -> Result<crate::NormParamGrads<Cpu>> {
    let composite = || composite::layer_norm_param_backward(x, mean, rstd, grad, k, needs);
    let shape = x.shape();
    if k == 0 || k > shape.len() || grad.shape() != shape || needs == (false, false) {
        return composite();
    }
    let d: usize = shape[shape.len() - k..].iter().product();
    let n = x.numel().checked_div(d).unwrap_or(0);
    let dtype = x.dtype();
    let fits = |t: &Tensor<Cpu>, len: usize| t.numel() == len && t.dtype() == dtype;
    if n == 0 || !fits(grad, x.numel()) || !fits(mean, n) || !fits(rstd, n) {
        return composite();
    }
    let sums = match dtype {
        DType::F32 => typed::<f32>(x, grad, mean, rstd, d, needs),
        DType::F64 => typed::<f64>(x, grad, mean, rstd, d, needs),
        _ => None,
    };
    let Some((dw, db)) = sums else {
        return composite();
    };
    let out = |b: HostBuffer| crate::cpu::kernel_output(b, &shape[shape.len() - k..]);
    Ok((
        needs.0.then(|| out(dw)).transpose()?,
        needs.1.then(|| out(db)).transpose()?,
    ))
}

/// The two sums as host buffers (one not asked for is zeros); `None` if an operand is not a `T`.
fn typed<T: Float + HostElement + Send + Sync>(
    x: &Tensor<Cpu>,
    grad: &Tensor<Cpu>,
    mean: &Tensor<Cpu>,
    rstd: &Tensor<Cpu>,
    d: usize,
    needs: (bool, bool),
) -> Option<(HostBuffer, HostBuffer)> {
    let o = GradOperands::<T>::open(x, grad, mean, rstd, None)?;
    // Parallel over the normalized positions: each thread sums its columns over every row,
    // and a column's sum does not depend on which thread computes it.
    let pairs: Vec<(T, T)> = parallel::collect(d, 1, 2 * o.x.len(), |cols, s| {
        let (w, b) = with_avx2(|| column_sums(&o.x, &o.g, &o.mean, &o.rstd, d, cols, needs));
        s.extend(
            w.iter()
                .zip(&b)
                .map(|(&w, &b)| (T::from_f64(w), T::from_f64(b))),
        );
    });
    let (mut dw, mut db) = (pool::take_in_kernel(d), pool::take_in_kernel(d));
    for &(w, b) in &pairs {
        dw.push(w);
        db.push(b);
    }
    pool::give(pairs);
    Some((T::into_buffer(dw), T::into_buffer(db)))
}

/// `Σᵢ g·x̂` and `Σᵢ g` (each if `needs` asks for it; else zeros) for the columns `cols` of
/// the `d`-wide rows, in f64, rows in order.
#[inline(always)]
fn column_sums<T: Float>(
    x: &[T],
    g: &[T],
    mean: &[T],
    rstd: &[T],
    d: usize,
    cols: Range<usize>,
    (need_weight, need_bias): (bool, bool),
) -> (Vec<f64>, Vec<f64>) {
    let (mut sw, mut sb) = (
        alloc::vec![-0.0f64; cols.len()],
        alloc::vec![-0.0f64; cols.len()],
    );
    for (i, (&m, &rs)) in mean.iter().zip(rstd).enumerate() {
        let (xr, gr) = (&x[i * d..][cols.clone()], &g[i * d..][cols.clone()]);
        add_row(&mut sw, &mut sb, xr, gr, m, rs, (need_weight, need_bias));
    }
    (sw, sb)
}

/// Adds one row's terms to the column sums: `g·x̂` (the product rounded in `T`) to `sw` and
/// `g` to `sb`, each if asked for. `xr` and `gr` are the row's values in the sums' columns.
#[inline(always)]
pub(super) fn add_row<T: Float>(
    sw: &mut [f64],
    sb: &mut [f64],
    xr: &[T],
    gr: &[T],
    m: T,
    rs: T,
    (need_weight, need_bias): (bool, bool),
) {
    if need_weight {
        for ((a, &xv), &gv) in sw.iter_mut().zip(xr).zip(gr) {
            *a += Element::to_f64(gv * ((xv - m) * rs));
        }
    }
    if need_bias {
        for (a, &gv) in sb.iter_mut().zip(gr) {
            *a += Element::to_f64(gv);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::backend::composite;
    use crate::{Backend, Cpu, DType, Tensor};

    /// The fused sums give the composite's bits: f32 and f64, a 3-d input normalized over
    /// its last one or two dims (rows over several leading dims), more columns than fit in
    /// one thread's share, values over 2^-40..2^40 (where the order of the f64 sums shows),
    /// and each of the two gradients alone.
    #[test]
    fn fused_matches_the_composite_bit_for_bit() {
        let vals = |n: usize, s: usize| -> Vec<f64> {
            (0..n)
                .map(|i| ((i * s % 97) as f64 - 48.0) * 2f64.powi((i * 7 % 81) as i32 - 40))
                .collect()
        };
        for dtype in [DType::F32, DType::F64] {
            for (shape, k) in [([3usize, 5, 7], 1usize), ([2, 9, 300], 1), ([4, 3, 5], 2)] {
                let numel: usize = shape.iter().product();
                let t = |v: Vec<f64>, s: &[usize]| {
                    Tensor::from_vec(v, s, &Cpu)
                        .unwrap()
                        .to_dtype(dtype)
                        .unwrap()
                };
                let (x, g) = (t(vals(numel, 31), &shape), t(vals(numel, 53), &shape));
                let norm = &shape[3 - k..];
                let (_, mean, rstd) = x.layer_norm_with_stats(norm, None, None, 1e-6).unwrap();
                for needs in [(true, true), (true, false), (false, true)] {
                    let fused = Cpu.layer_norm_param_backward(&x, &mean, &rstd, &g, k, needs);
                    let want = composite::layer_norm_param_backward(&x, &mean, &rstd, &g, k, needs);
                    let (fused, want) = (fused.unwrap(), want.unwrap());
                    for (f, w) in [(fused.0, want.0), (fused.1, want.1)] {
                        assert_eq!(f.is_some(), w.is_some());
                        let (Some(f), Some(w)) = (f, w) else { continue };
                        assert_eq!(f.shape(), norm);
                        assert_eq!(f.shape(), w.shape());
                        let bits = |t: Tensor<Cpu>| {
                            let v = t.to_dtype(DType::F64).unwrap().to_vec::<f64>().unwrap();
                            v.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
                        };
                        assert_eq!(bits(f), bits(w), "{dtype:?} {shape:?} k {k} {needs:?}");
                    }
                }
            }
        }
    }
}
