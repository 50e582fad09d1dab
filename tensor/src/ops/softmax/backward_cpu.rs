//! Fused CPU softmax gradient (`Backend::softmax_backward`): per row along the last axis, one
//! pass for `s = Σ grad·y` and one to write `dx = y · (grad - s)`, instead of the composite's
//! four whole-tensor ops (`grad·y`, its sum, the subtraction, the product) and three
//! temporaries. The sum is the reduction's own (`RunSum`: f64 lanes in the order of
//! `sum_run`, each product rounded to the dtype first) and the elementwise terms are rounded
//! as the composite rounds them, so the result is the composite's to the bit.

use crate::backend::composite;
use crate::buffer::HostElement;
use crate::cpu::{parallel, strided, Cpu};
use crate::dtype::Float;
use crate::ops::reduce::run_sum::RunSum;
use crate::{DType, HostBuffer, Result, Tensor};
use alloc::vec::Vec;

/// The CPU override of `Backend::softmax_backward`: f32 and f64 along the last axis are
/// fused; anything else takes the composite.
pub(crate) fn softmax_backward(
    y: &Tensor<Cpu>,
    grad: &Tensor<Cpu>,
    axis: usize,
) -> Result<Tensor<Cpu>> {
    let composite = || composite::softmax_backward(y, grad, axis);
    let shape = y.shape();
    let n = match shape.last() {
        Some(&n) if n > 0 && axis + 1 == shape.len() => n,
        _ => return composite(),
    };
    if grad.shape() != shape || grad.dtype() != y.dtype() {
        return composite();
    }
    let dx = match y.dtype() {
        DType::F32 => typed::<f32>(y, grad, n).map(HostBuffer::F32),
        DType::F64 => typed::<f64>(y, grad, n).map(HostBuffer::F64),
        _ => None,
    };
    match dx {
        Some(dx) => crate::cpu::kernel_output(dx, shape),
        None => composite(),
    }
}

/// [`rows`] on `T` operands, borrowed where contiguous; `None` if either is not a `T`.
fn typed<T: Float + HostElement>(y: &Tensor<Cpu>, grad: &Tensor<Cpu>, n: usize) -> Option<Vec<T>> {
    let (yv, gv) = (strided::elements::<T>(y)?, strided::elements::<T>(grad)?);
    Some(rows(&yv, &gv, n))
}

/// `dx` for rows of `n` values, in parallel over rows.
fn rows<T: Float + HostElement>(y: &[T], g: &[T], n: usize) -> Vec<T> {
    parallel::collect(y.len() / n, n, 3 * y.len(), |r, sink| {
        for row in r {
            let (yr, gr) = (&y[row * n..][..n], &g[row * n..][..n]);
            let mut sum = RunSum::new(n);
            sum.feed_zip(gr, yr, |g, y| g * y);
            let s = T::from_f64(sum.finish());
            sink.extend_zip(yr, gr, &|y, g| y * (g - s));
        }
    })
}

#[cfg(test)]
mod tests {
    use crate::backend::composite;
    use crate::cpu::parallel::tests::with_threads;
    use crate::testing::{bits, random};
    use crate::{Backend, Cpu, DType};

    /// The fused rows give the composite's bits, f32 and f64, on rows with and without a
    /// tail past the sum's eight lanes and on any thread count; a non-contiguous gradient
    /// is read through a gather, and other axes take the composite.
    #[test]
    fn fused_gradient_is_the_composite_bit_for_bit() {
        for dtype in [DType::F32, DType::F64] {
            for shape in [
                [3usize, 5, 197],
                [2, 4, 17],
                [4, 2, 8],
                [5, 3, 1],
                [2, 6, 64],
                [40, 7, 197],
            ] {
                let x = random(&shape, 11).to_dtype(dtype).unwrap();
                let y = x.softmax(-1).unwrap();
                let g = random(&shape, 12).to_dtype(dtype).unwrap();
                let want = bits(&composite::softmax_backward(&y, &g, 2).unwrap());
                for threads in [1, 2, 3] {
                    let got = with_threads(threads, || Cpu.softmax_backward(&y, &g, 2).unwrap());
                    assert_eq!(bits(&got), want, "{dtype:?} {shape:?}, {threads} threads");
                }
                // The same gradient values in a transposed layout.
                let gt = g.transpose(0, 1).unwrap().contiguous().unwrap();
                let gt = gt.transpose(0, 1).unwrap();
                assert!(!gt.is_contiguous() || shape[0] == 1 || shape[1] == 1);
                assert_eq!(bits(&Cpu.softmax_backward(&y, &gt, 2).unwrap()), want);
                for axis in 0..2 {
                    let y = x.softmax(axis as isize).unwrap();
                    let want = bits(&composite::softmax_backward(&y, &g, axis).unwrap());
                    assert_eq!(bits(&Cpu.softmax_backward(&y, &g, axis).unwrap()), want);
                }
            }
        }
    }
}
