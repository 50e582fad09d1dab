//! CPU reduction kernel: the view is permuted so that reduced axes come last, then each run
//! of `R` consecutive elements (R = product of reduced dims) reduces to one output. Sums
//! accumulate in f64 for every float dtype, which keeps f32 results within one ulp of a
//! correctly rounded sum for the sizes used here. Sums over consecutive axes of a
//! contiguous view skip the permute-and-gather (see `sum_contiguous.rs`).

use super::run_sum::sum_run;
use super::sum_contiguous::sum_middle;
use crate::backend::ReduceOp;
use crate::buffer::HostElement;
use crate::cpu::{parallel, strided};
use crate::layout::Layout;
use crate::{HostBuffer, Result};
use alloc::vec::Vec;
use half::{bf16, f16};

/// The view reordered as `[kept.., reduced..]`, and R.
fn reduced_last(layout: &Layout, axes: &[usize]) -> (Layout, usize) {
    let mut perm: Vec<usize> = (0..layout.rank()).filter(|a| !axes.contains(a)).collect();
    perm.extend_from_slice(axes);
    let r = axes.iter().map(|&a| layout.shape()[a]).product();
    (layout.permute(&perm).expect("valid permutation"), r)
}

/// NaN test that also compiles for integer elements (which are never NaN).
#[inline(always)]
fn is_nan<T: PartialOrd>(x: T) -> bool {
    x.partial_cmp(&x).is_none()
}

/// A sum over consecutive axes of a contiguous view, read in place (see
/// [`sum_contiguous`](super::sum_contiguous)); `None` for other cases.
fn sum_without_gather<T: HostElement>(
    v: &[T],
    layout: &Layout,
    axes: &[usize],
    out: &(impl Fn(f64) -> T + Sync),
) -> Option<Vec<T>> {
    let range = layout.contiguous_range()?;
    let (&first, &last) = (axes.first()?, axes.last()?);
    // Consecutive and increasing (so `first..=last` are exactly the reduced axes).
    if axes.windows(2).any(|w| w[1] != w[0] + 1) {
        return None;
    }
    let shape = layout.shape();
    let dims = (
        shape[..first].iter().product::<usize>(),
        shape[first..=last].iter().product::<usize>(),
        shape[last + 1..].iter().product::<usize>(),
    );
    if dims.1 == 0 || layout.numel() == 0 {
        return None; // the general path's empty cases
    }
    Some(sum_middle(&v[range], dims, out))
}

fn reduce_typed<T: HostElement>(
    op: ReduceOp,
    v: &[T],
    layout: &Layout,
    axes: &[usize],
    out: impl Fn(f64) -> T + Sync,
) -> HostBuffer {
    if op == ReduceOp::Sum {
        if let Some(res) = sum_without_gather(v, layout, axes, &out) {
            return T::into_buffer(res);
        }
    }
    let (perm, r) = reduced_last(layout, axes);
    let data = strided::view(v, &perm);
    let n_out: usize = layout
        .shape()
        .iter()
        .enumerate()
        .filter(|(i, _)| !axes.contains(i))
        .map(|(_, d)| *d)
        .product();
    // Parallel over output elements: each output is reduced by the same code on any thread.
    let each = |f: &(dyn Fn(&[T]) -> T + Sync)| -> Vec<T> {
        parallel::collect(n_out, 1, n_out * r, |o, s| {
            s.extend(data[o.start * r..o.end * r].chunks_exact(r).map(f))
        })
    };
    // The front end rejects max/min/arg* over empty dims, so only a sum can have r == 0.
    match op {
        ReduceOp::Sum => {
            let res: Vec<T> = if r == 0 {
                alloc::vec![out(0.0); n_out]
            } else {
                each(&|c| out(sum_run(c)))
            };
            T::into_buffer(res)
        }
        ReduceOp::Max | ReduceOp::Min => {
            let is_max = op == ReduceOp::Max;
            let res: Vec<T> = each(&|c| {
                let mut best = c[0];
                for &x in &c[1..] {
                    if is_nan(x) {
                        return x; // NaN propagates, as in PyTorch
                    }
                    if (is_max && x > best) || (!is_max && x < best) {
                        best = x;
                    }
                }
                best
            });
            T::into_buffer(res)
        }
        ReduceOp::ArgMax | ReduceOp::ArgMin => {
            let is_max = op == ReduceOp::ArgMax;
            let res: Vec<i64> = parallel::collect(n_out, 1, n_out * r, |o, s| {
                s.extend(data[o.start * r..o.end * r].chunks_exact(r).map(|c| {
                    let mut best = 0;
                    for (i, &x) in c.iter().enumerate().skip(1) {
                        let b = c[best];
                        if is_nan(b) {
                            break;
                        }
                        if is_nan(x) || (is_max && x > b) || (!is_max && x < b) {
                            best = i;
                        }
                    }
                    best as i64
                }))
            });
            HostBuffer::I64(res)
        }
    }
}

pub(crate) fn reduce(
    op: ReduceOp,
    x: &HostBuffer,
    layout: &Layout,
    axes: &[usize],
) -> Result<HostBuffer> {
    Ok(match x {
        HostBuffer::F32(v) => reduce_typed(op, v, layout, axes, |s| s as f32),
        HostBuffer::F64(v) => reduce_typed(op, v, layout, axes, |s| s),
        HostBuffer::F16(v) => reduce_typed(op, v, layout, axes, f16::from_f64),
        HostBuffer::BF16(v) => reduce_typed(op, v, layout, axes, bf16::from_f64),
        HostBuffer::I64(v) => reduce_typed(op, v, layout, axes, |s| s as i64),
        HostBuffer::U8(v) => reduce_typed(op, v, layout, axes, |s| s as u8),
    })
}
