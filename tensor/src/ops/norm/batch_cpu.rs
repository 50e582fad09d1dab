//! Fused CPU batch-norm apply: `(x - mean) * rstd * weight + bias` per channel of an
//! `[n, c, ..]` input in one pass over contiguous per-(image, channel) runs, instead of the
//! composite's four broadcast passes, each with its own output (those passes and their
//! broadcasting loops were ~18% of a ResNet-50 BYOL step on the CPU). The same four f32 (or
//! f64) operations in the same order per element, so the result is the composite's, bit for
//! bit. f32 and f64; other dtypes, and parameters of the wrong size, take the composite
//! (which reports the error).

use super::cpu::optional_elements;
use crate::backend::composite;
use crate::buffer::HostElement;
use crate::cpu::strided::elements;
use crate::cpu::{parallel, Cpu};
use crate::dtype::Float;
use crate::{DType, HostBuffer, Result, Tensor};
use alloc::vec::Vec;

/// `(x - mean) * rstd (* weight) (+ bias)` per channel; see the module docs.
pub(crate) fn batch_norm_apply(
    x: &Tensor<Cpu>,
    mean: &Tensor<Cpu>,
    rstd: &Tensor<Cpu>,
    weight: Option<&Tensor<Cpu>>,
    bias: Option<&Tensor<Cpu>>,
) -> Result<Tensor<Cpu>> {
    let out = match x.dtype() {
        DType::F32 => typed::<f32>(x, mean, rstd, weight, bias).map(HostBuffer::F32),
        DType::F64 => typed::<f64>(x, mean, rstd, weight, bias).map(HostBuffer::F64),
        _ => None,
    };
    match out {
        Some(y) => crate::cpu::kernel_output(y, x.shape()),
        None => composite::batch_norm_apply(x, mean, rstd, weight, bias),
    }
}

/// The fused pass on `T` operands; `None` if an operand is not a `T` or not `[c]`-sized.
fn typed<T: Float + HostElement + Send + Sync>(
    x: &Tensor<Cpu>,
    mean: &Tensor<Cpu>,
    rstd: &Tensor<Cpu>,
    weight: Option<&Tensor<Cpu>>,
    bias: Option<&Tensor<Cpu>>,
) -> Option<Vec<T>> {
    let shape = x.shape();
    if shape.len() < 2 {
        return None;
    }
    let (n, c) = (shape[0], shape[1]);
    let inner: usize = shape[2..].iter().product();
    let (xv, mv, rv) = (
        elements::<T>(x)?,
        elements::<T>(mean)?,
        elements::<T>(rstd)?,
    );
    let (wv, bv) = (
        optional_elements::<T>(weight)?,
        optional_elements::<T>(bias)?,
    );
    let sized = |v: &[T]| v.len() == c;
    if !sized(&mv)
        || !sized(&rv)
        || !wv.as_deref().is_none_or(sized)
        || !bv.as_deref().is_none_or(sized)
    {
        return None;
    }
    let (wv, bv) = (wv.as_deref(), bv.as_deref());
    // One unit per (image, channel) run of `inner` contiguous values; each run is computed by
    // the same code on any thread.
    Some(parallel::collect(
        n * c,
        inner,
        4 * n * c * inner,
        |units, sink| {
            for u in units {
                let ch = u % c;
                let run = &xv[u * inner..(u + 1) * inner];
                let (m, r) = (mv[ch], rv[ch]);
                match (wv.map(|w| w[ch]), bv.map(|b| b[ch])) {
                    (Some(w), Some(b)) => sink.extend_map(run, &|v: T| (v - m) * r * w + b),
                    (Some(w), None) => sink.extend_map(run, &|v: T| (v - m) * r * w),
                    (None, Some(b)) => sink.extend_map(run, &|v: T| (v - m) * r + b),
                    (None, None) => sink.extend_map(run, &|v: T| (v - m) * r),
                }
            }
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fused_apply_is_the_composite_bit_for_bit() {
        let v: Vec<f64> = (0..2 * 3 * 5 * 4)
            .map(|i| ((i * 37 % 23) as f64 - 11.0) * 0.37)
            .collect();
        let per_c = |s: f64| Tensor::from_vec(alloc::vec![0.3 * s, -1.1, 2.5 * s], &[3], &Cpu);
        for dtype in [DType::F32, DType::F64] {
            let x = Tensor::from_vec(v.clone(), &[2, 3, 5, 4], &Cpu)
                .unwrap()
                .to_dtype(dtype)
                .unwrap();
            // A non-contiguous view too (its runs are gathered first).
            let xt = x.transpose(2, 3).unwrap();
            let p = |s| per_c(s).unwrap().to_dtype(dtype).unwrap();
            let (m, r, w, b) = (p(1.0), p(0.5).abs().unwrap(), p(2.0), p(-1.0));
            for x in [&x, &xt] {
                for (w, b) in [
                    (Some(&w), Some(&b)),
                    (Some(&w), None),
                    (None, Some(&b)),
                    (None, None),
                ] {
                    let fused = batch_norm_apply(x, &m, &r, w, b).unwrap();
                    let composite = composite::batch_norm_apply(x, &m, &r, w, b).unwrap();
                    assert_eq!(fused.shape(), composite.shape());
                    let (f, c) = (fused.to_f64_vec().unwrap(), composite.to_f64_vec().unwrap());
                    assert!(f.iter().zip(&c).all(|(a, b)| a.to_bits() == b.to_bits()));
                }
            }
        }
    }

    #[test]
    fn wrong_sized_parameters_are_the_composites_error() {
        let x = Tensor::from_vec(alloc::vec![1.0f32; 12], &[2, 3, 2], &Cpu).unwrap();
        let bad = Tensor::from_vec(alloc::vec![1.0f32; 2], &[2], &Cpu).unwrap();
        assert!(batch_norm_apply(&x, &bad, &bad, None, None).is_err());
    }
}
