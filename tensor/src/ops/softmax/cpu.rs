//! Fused CPU softmax / log-softmax: one pass for the max, one for the sum of exponentials, one
//! to write, per row along the axis, instead of five full-tensor ops. f32 (vectorised rows in
//! `cpu_f32.rs`) and f64; other dtypes use the composite default.

use super::cpu_f32;
use crate::backend::composite;
use crate::cpu::{parallel, Cpu};
use crate::dtype::{Element, Float};
use crate::{HostBuffer, Result, Tensor};
use alloc::vec::Vec;
use core::mem::MaybeUninit;

/// Applies `row_fn` to every row along the last axis of a contiguous copy of `x` moved so that
/// `axis` is last, and moves the axis back.
fn along_axis(
    x: &Tensor<Cpu>,
    axis: usize,
    row_fn: fn(&mut [f64]),
    row_fn32: fn(&mut [f32]),
) -> Result<Option<Tensor<Cpu>>> {
    let rank = x.rank();
    let last = rank - 1;
    if axis == last {
        if let Some(out) = rows_of_contiguous(x, row_fn, row_fn32) {
            return out.map(Some);
        }
    }
    let moved = if axis == last {
        x.contiguous()?
    } else {
        x.transpose(axis as isize, last as isize)?.contiguous()?
    };
    let n = moved.shape()[last];
    // A private copy to compute in place (kernel scratch from the cache, not a host read).
    let mut data = crate::cpu::strided::gather_view(moved.storage(), moved.layout());
    let work = 4 * data.len();
    if n > 0 {
        match &mut data {
            // Parallel over rows: each row is computed by the same code on any thread.
            HostBuffer::F32(v) => parallel::for_each_chunk_mut(v, n, work, |_, c| {
                c.chunks_exact_mut(n).for_each(row_fn32)
            }),
            HostBuffer::F64(v) => parallel::for_each_chunk_mut(v, n, work, |_, c| {
                c.chunks_exact_mut(n).for_each(row_fn)
            }),
            _ => return Ok(None),
        }
    }
    let out = crate::cpu::kernel_output(data, moved.shape())?;
    Ok(Some(if axis == last {
        out
    } else {
        out.transpose(axis as isize, last as isize)?.contiguous()?
    }))
}

/// [`along_axis`] for the last axis of a contiguous f32 or f64 `x`: each row is copied
/// straight into its place in the output and computed there while it is in L1, instead of
/// first copying the whole tensor and then reading it back (one pass over memory fewer; the
/// same row functions, so the same bits). `None` for other inputs.
fn rows_of_contiguous(
    x: &Tensor<Cpu>,
    row_fn: fn(&mut [f64]),
    row_fn32: fn(&mut [f32]),
) -> Option<Result<Tensor<Cpu>>> {
    let range = x.layout().contiguous_range()?;
    let n = *x.shape().last()?;
    if n == 0 {
        return None;
    }
    let data = match x.storage().buffer() {
        HostBuffer::F32(v) => HostBuffer::F32(rows_into(&v[range], n, row_fn32)),
        HostBuffer::F64(v) => HostBuffer::F64(rows_into(&v[range], n, row_fn)),
        _ => return None,
    };
    Some(crate::cpu::kernel_output(data, x.shape()))
}

/// `row_fn` applied to a copy of each `n`-long row of `src`, in parallel over rows.
fn rows_into<T: Copy + Send + Sync>(src: &[T], n: usize, row_fn: fn(&mut [T])) -> Vec<T> {
    parallel::collect(src.len() / n, n, 4 * src.len(), |rows, sink| {
        for src_row in src[rows.start * n..rows.end * n].chunks_exact(n) {
            // SAFETY: every slot of the row is written from `src_row` before the row is
            // viewed as initialized values.
            unsafe {
                sink.extend_with(n, |slots| {
                    for (slot, &v) in slots.iter_mut().zip(src_row) {
                        slot.write(v);
                    }
                    row_fn(&mut *(slots as *mut [MaybeUninit<T>] as *mut [T]));
                })
            };
        }
    })
}

fn softmax_row<T: Float>(row: &mut [T]) {
    let max = row.iter().copied().fold(
        T::neg_infinity(),
        |m, v| if v > m || v.is_nan() { v } else { m },
    );
    if max == T::neg_infinity() {
        // All -inf: PyTorch returns NaN (0/0); keep that.
        row.iter_mut().for_each(|v| *v = T::nan());
        return;
    }
    let mut sum = 0.0f64;
    for v in row.iter_mut() {
        *v = (*v - max).exp();
        sum += Element::to_f64(*v);
    }
    let inv = T::from_f64(1.0 / sum);
    row.iter_mut().for_each(|v| *v = *v * inv);
}

fn log_softmax_row<T: Float>(row: &mut [T]) {
    let max = row.iter().copied().fold(
        T::neg_infinity(),
        |m, v| if v > m || v.is_nan() { v } else { m },
    );
    let sum: f64 = row.iter().map(|&v| Element::to_f64((v - max).exp())).sum();
    let lse = max + T::from_f64(libm::log(sum));
    row.iter_mut().for_each(|v| *v = *v - lse);
}

pub(crate) fn softmax(x: &Tensor<Cpu>, axis: usize) -> Result<Tensor<Cpu>> {
    match along_axis(x, axis, softmax_row::<f64>, cpu_f32::softmax_row)? {
        Some(t) => Ok(t),
        None => composite::softmax(x, axis),
    }
}

pub(crate) fn log_softmax(x: &Tensor<Cpu>, axis: usize) -> Result<Tensor<Cpu>> {
    match along_axis(x, axis, log_softmax_row::<f64>, cpu_f32::log_softmax_row)? {
        Some(t) => Ok(t),
        None => composite::log_softmax(x, axis),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DType;
    use alloc::vec::Vec;

    fn close(a: &[f64], b: &[f64], tol: f64) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() <= tol * (1.0 + y.abs()), "{x} vs {y}");
        }
    }

    /// The last axis of a contiguous input is computed row by row into the output; a
    /// transposed view of the same values takes the copy-then-compute path. Same bits.
    #[test]
    fn rows_in_place_match_the_copied_path() {
        for dtype in [DType::F32, DType::F64] {
            for shape in [[6usize, 197], [300, 17], [5, 1], [40, 9]] {
                let x = crate::testing::random(&shape, 3).to_dtype(dtype).unwrap();
                let copied = x.t().unwrap().contiguous().unwrap().t().unwrap();
                assert!(shape[1] == 1 || !copied.is_contiguous());
                for f in [softmax, log_softmax] {
                    let (a, b) = (f(&x, 1).unwrap(), f(&copied, 1).unwrap());
                    assert_eq!(crate::testing::bits(&a), crate::testing::bits(&b));
                }
            }
        }
    }

    #[test]
    fn fused_matches_composite_on_every_axis() {
        let v: Vec<f64> = (0..60)
            .map(|i| ((i * 37 % 17) as f64 - 8.0) * 0.7)
            .collect();
        for dtype in [DType::F64, DType::F32] {
            let x = Tensor::from_vec(v.clone(), &[3, 4, 5], &Cpu)
                .unwrap()
                .to_dtype(dtype)
                .unwrap();
            let tol = if dtype == DType::F64 { 1e-14 } else { 1e-6 };
            for axis in 0..3 {
                let a = softmax(&x, axis).unwrap().to_f64_vec().unwrap();
                let b = composite::softmax(&x, axis).unwrap().to_f64_vec().unwrap();
                close(&a, &b, tol);
                let a = log_softmax(&x, axis).unwrap().to_f64_vec().unwrap();
                let b = composite::log_softmax(&x, axis)
                    .unwrap()
                    .to_f64_vec()
                    .unwrap();
                close(&a, &b, tol);
            }
        }
    }

    #[test]
    fn vectorised_f32_rows_match_f64_on_long_rows() {
        // Rows longer than the 8 lanes, with a tail, one holding a NaN (NaN everywhere, as
        // PyTorch) and one fully masked (NaN, 0/0).
        let n = 37;
        let mut v: Vec<f64> = (0..4 * n)
            .map(|i| ((i * 29 % 41) as f64 - 20.0) * 0.9)
            .collect();
        v[n + 11] = f64::NAN;
        v[2 * n..3 * n]
            .iter_mut()
            .for_each(|x| *x = f64::NEG_INFINITY);
        let x64 = Tensor::from_vec(v, &[4, n], &Cpu).unwrap();
        let x32 = x64.to_dtype(DType::F32).unwrap();
        for f in [softmax, log_softmax] {
            let a = f(&x32, 1).unwrap().to_f64_vec().unwrap();
            let b = f(&x64, 1).unwrap().to_f64_vec().unwrap();
            for (i, (x, y)) in a.iter().zip(&b).enumerate() {
                if (n..3 * n).contains(&i) {
                    assert!(x.is_nan() && y.is_nan(), "{i}: {x} {y}");
                } else {
                    assert!((x - y).abs() <= 2e-6 * (1.0 + y.abs()), "{i}: {x} vs {y}");
                }
            }
        }
    }

    #[test]
    fn masked_rows_and_large_values() {
        let x = Tensor::from_vec(
            vec![1000.0f32, 1001.0, f32::NEG_INFINITY, 0.0],
            &[2, 2],
            &Cpu,
        )
        .unwrap();
        let s = softmax(&x, 1).unwrap().to_vec::<f32>().unwrap();
        assert!((s[0] - 0.268_941_43).abs() < 1e-6 && (s[1] - 0.731_058_6).abs() < 1e-6);
        assert_eq!(&s[2..], &[0.0, 1.0]);
    }
}
