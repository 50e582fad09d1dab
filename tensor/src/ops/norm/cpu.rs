//! Fused CPU layer norm: per row of the normalized dims, one pass for the mean, one for the
//! variance (two-pass, accumulated in f64, as accurate as the composite), one to write, all
//! three while the row is in L1.
//! f32 and f64 on any layout (contiguous inputs are read in place, others gathered first);
//! other dtypes use the composite default. The input gradient's kernel is in
//! `cpu_backward.rs`.

use crate::backend::composite;
use crate::buffer::HostElement;
use crate::cpu::simd::with_avx2;
use crate::cpu::strided::ViewBuf;
use crate::cpu::{parallel, pool, strided, Cpu};
use crate::dtype::{Element, Float};
use crate::{DType, HostBuffer, Result, Tensor};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

/// Independent f64 partial sums per row: a single running sum is a chain of dependent
/// additions (one per element, each waiting on the last), which made the row sums the slowest
/// part of the kernel; `LANES` of them vectorise. Element `j` goes to lane `j % LANES`.
pub(super) const LANES: usize = 8;

/// Adds `f(a[j], b[j], c[j])` into `acc[j % LANES]` for every `j`, in increasing `j` (the
/// three have the same length). Whole groups of lanes are a loop over fixed-size chunks,
/// which vectorizes; an index closure (`f(j)`) did not, for its bounds checks.
#[inline(always)]
pub(super) fn lane_sum<T: Copy>(
    acc: &mut [f64; LANES],
    (a, b, c): (&[T], &[T], &[T]),
    f: impl Fn(T, T, T) -> f64,
) {
    assert!(a.len() == b.len() && b.len() == c.len());
    let (ac, bc, cc) = (
        a.chunks_exact(LANES),
        b.chunks_exact(LANES),
        c.chunks_exact(LANES),
    );
    let tails = ac
        .remainder()
        .iter()
        .zip(bc.remainder())
        .zip(cc.remainder());
    for ((a8, b8), c8) in ac.zip(bc).zip(cc) {
        for l in 0..LANES {
            acc[l] += f(a8[l], b8[l], c8[l]);
        }
    }
    for (s, ((&x, &y), &z)) in acc.iter_mut().zip(tails) {
        *s += f(x, y, z);
    }
}

/// One row's mean and `1 / sqrt(var + eps)`: two passes over the row, in f64 lanes.
#[inline(always)]
fn row_stats<T: Float>(row: &[T], eps: f64) -> (T, T) {
    let d = row.len() as f64;
    let (mut s1, mut s2) = ([0.0f64; LANES], [0.0f64; LANES]);
    lane_sum(&mut s1, (row, row, row), |x, _, _| Element::to_f64(x));
    let mean = s1.iter().sum::<f64>() / d;
    lane_sum(&mut s2, (row, row, row), |x, _, _| {
        let c = Element::to_f64(x) - mean;
        c * c
    });
    let var = s2.iter().sum::<f64>() / d;
    let rstd = 1.0 / libm::sqrt(var + eps);
    (T::from_f64(mean), T::from_f64(rstd))
}

fn rows<T: Float>(
    x: &[T],
    d: usize,
    w: Option<&[T]>,
    b: Option<&[T]>,
    eps: f64,
) -> (Vec<T>, Vec<T>, Vec<T>) {
    let n = x.len() / d;
    // One parallel pass over rows: each row's statistics, then its output while the row is
    // still in L1 (two passes over `x` read a tall input from memory twice). A row is computed
    // by the same code on any thread. The statistics leave the threads as f64 bits (exact for
    // f32 and f64), which safe code can store from several threads.
    let stats: Vec<[AtomicU64; 2]> = (0..n).map(|_| Default::default()).collect();
    let y = parallel::collect(n, d, 3 * x.len(), |r, s| {
        let rows = x[r.start * d..r.end * d].chunks_exact(d);
        for (row, slot) in rows.zip(&stats[r]) {
            // The row four on (a hint: never faults). In a step `x` comes from memory:
            // `[256, 17, 192]` f32 cold, 2 threads: 0.48-0.51 -> 0.41-0.46 ms.
            crate::cpu::simd::prefetch_lines(row.as_ptr().wrapping_add(4 * d), d);
            let (mt, rt) = with_avx2(|| row_stats(row, eps));
            slot[0].store(Element::to_f64(mt).to_bits(), Ordering::Relaxed);
            slot[1].store(Element::to_f64(rt).to_bits(), Ordering::Relaxed);
            // One loop per affine case, so each is a plain vectorisable zip (same rounding
            // order: normalise, scale, shift).
            let norm = |v: T| (v - mt) * rt;
            match (w, b) {
                (Some(w), Some(b)) => s.extend_zip3(row, w, b, &|v, w, b| norm(v) * w + b),
                (Some(w), None) => s.extend_zip(row, w, &|v, w| norm(v) * w),
                (None, Some(b)) => s.extend_zip(row, b, &|v, b| norm(v) + b),
                (None, None) => s.extend_map(row, &norm),
            }
        }
    });
    let (mut means, mut rstds) = (pool::take_in_kernel(n), pool::take_in_kernel(n));
    let stat = |a: &AtomicU64| T::from_f64(f64::from_bits(a.load(Ordering::Relaxed)));
    for [m, r] in &stats {
        means.push(stat(m));
        rstds.push(stat(r));
    }
    (y, means, rstds)
}

type Norm = (Tensor<Cpu>, Tensor<Cpu>, Tensor<Cpu>);

/// A norm backward's operands as `T` slices, each borrowed where it is contiguous: the
/// input, the output gradient, the saved statistics and the optional weight.
pub(super) struct GradOperands<'a, T> {
    pub(super) x: ViewBuf<'a, T>,
    pub(super) g: ViewBuf<'a, T>,
    pub(super) mean: ViewBuf<'a, T>,
    pub(super) rstd: ViewBuf<'a, T>,
    pub(super) w: Option<ViewBuf<'a, T>>,
}

impl<'a, T: HostElement + Copy + Send + Sync> GradOperands<'a, T> {
    /// `None` if any operand is not a `T` (not the kernel's case).
    pub(super) fn open(
        x: &'a Tensor<Cpu>,
        grad: &'a Tensor<Cpu>,
        mean: &'a Tensor<Cpu>,
        rstd: &'a Tensor<Cpu>,
        weight: Option<&'a Tensor<Cpu>>,
    ) -> Option<Self> {
        Some(Self {
            x: strided::elements(x)?,
            g: strided::elements(grad)?,
            mean: strided::elements(mean)?,
            rstd: strided::elements(rstd)?,
            w: optional_elements(weight)?,
        })
    }
}

/// [`elements`](strided::elements) of an optional parameter: `Some(None)` when absent, `None` when present
/// but not a `T` (not the kernel's case).
pub(super) fn optional_elements<T: HostElement + Copy + Send + Sync>(
    t: Option<&Tensor<Cpu>>,
) -> Option<Option<ViewBuf<'_, T>>> {
    match t {
        Some(t) => strided::elements(t).map(Some),
        None => Some(None),
    }
}

/// [`rows`] on `T` operands; `None` if any operand is not a `T`.
fn typed<T: Float + HostElement + Send + Sync>(
    x: &Tensor<Cpu>,
    weight: Option<&Tensor<Cpu>>,
    bias: Option<&Tensor<Cpu>>,
    d: usize,
    eps: f64,
) -> Option<(Vec<T>, Vec<T>, Vec<T>)> {
    let xv = strided::elements::<T>(x)?;
    let (wv, bv) = (
        optional_elements::<T>(weight)?,
        optional_elements::<T>(bias)?,
    );
    Some(rows(&xv, d, wv.as_deref(), bv.as_deref(), eps))
}

pub(crate) fn layer_norm(
    x: &Tensor<Cpu>,
    weight: Option<&Tensor<Cpu>>,
    bias: Option<&Tensor<Cpu>>,
    k: usize,
    eps: f64,
) -> Result<Norm> {
    let shape = x.shape().to_vec();
    let d: usize = shape[shape.len() - k..].iter().product();
    let mut stat_shape = shape.clone();
    stat_shape[shape.len() - k..]
        .iter_mut()
        .for_each(|s| *s = 1);
    if d == 0 {
        return composite::layer_norm(x, weight, bias, k, eps);
    }
    let (y, m, r) = match x.dtype() {
        DType::F32 => match typed::<f32>(x, weight, bias, d, eps) {
            Some((y, m, r)) => (HostBuffer::F32(y), HostBuffer::F32(m), HostBuffer::F32(r)),
            None => return composite::layer_norm(x, weight, bias, k, eps),
        },
        DType::F64 => match typed::<f64>(x, weight, bias, d, eps) {
            Some((y, m, r)) => (HostBuffer::F64(y), HostBuffer::F64(m), HostBuffer::F64(r)),
            None => return composite::layer_norm(x, weight, bias, k, eps),
        },
        _ => return composite::layer_norm(x, weight, bias, k, eps),
    };
    Ok((
        crate::cpu::kernel_output(y, &shape)?,
        crate::cpu::kernel_output(m, &stat_shape)?,
        crate::cpu::kernel_output(r, &stat_shape)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DType;

    #[test]
    fn fused_matches_composite() {
        let v: Vec<f64> = (0..60)
            .map(|i| ((i * 37 % 17) as f64 - 8.0) * 0.3)
            .collect();
        let w: Vec<f64> = (0..20).map(|i| 1.0 + i as f64 * 0.1).collect();
        let b: Vec<f64> = (0..20).map(|i| i as f64 * -0.05).collect();
        for dtype in [DType::F64, DType::F32] {
            let x = Tensor::from_vec(v.clone(), &[3, 4, 5], &Cpu)
                .unwrap()
                .to_dtype(dtype)
                .unwrap();
            let x = x.transpose(0, 2).unwrap(); // non-contiguous [5, 4, 3]
            let wt = Tensor::from_vec(w[..12].to_vec(), &[4, 3], &Cpu)
                .unwrap()
                .to_dtype(dtype)
                .unwrap();
            let bt = Tensor::from_vec(b[..12].to_vec(), &[4, 3], &Cpu)
                .unwrap()
                .to_dtype(dtype)
                .unwrap();
            let tol = if dtype == DType::F64 { 1e-13 } else { 1e-5 };
            for (wo, bo) in [(None, None), (Some(&wt), Some(&bt))] {
                let f = layer_norm(&x, wo, bo, 2, 1e-6).unwrap();
                let c = composite::layer_norm(&x, wo, bo, 2, 1e-6).unwrap();
                for (p, q) in [(&f.0, &c.0), (&f.1, &c.1), (&f.2, &c.2)] {
                    assert_eq!(p.shape(), q.shape());
                    for (a, e) in p.to_f64_vec().unwrap().iter().zip(q.to_f64_vec().unwrap()) {
                        assert!((a - e).abs() <= tol * (1.0 + e.abs()), "{a} vs {e}");
                    }
                }
            }
        }
    }
}
