//! CPU kernels for index_select, gather and scatter_add.
//!
//! All three share one trick: the data view is re-described by a layout whose `axis` stride
//! is 0 and whose shape is the *output's* (or the index's) shape. Walking that layout gives,
//! for every output position `p`, the storage offset of `p` with `p[axis] = 0`; adding
//! `index * stride[axis]` then lands on the selected element. This works for any strides
//! (transposed, sliced, broadcast) without copying the data first.
//!
//! Every index is checked before any element is touched, so a bad index is an
//! [`Error::Index`] and never a panic, even if a caller skips the front end.

use crate::buffer::HostElement;
use crate::cpu::strided;
use crate::layout::Layout;
use crate::shape::contiguous_strides;
use crate::{with_buffer, Error, HostBuffer, Result};
use alloc::vec::Vec;
use half::{bf16, f16};

/// Converts one index to a position along a dim of size `dim`, or the error the front ends
/// also use (negative indices are rejected, not wrapped: PyTorch's gather rejects them too).
pub(crate) fn checked_index(op: &'static str, i: i64, axis: usize, dim: usize) -> Result<usize> {
    match usize::try_from(i) {
        Ok(u) if u < dim => Ok(u),
        _ => Err(Error::Index {
            op,
            msg: crate::__format!("index {i} is out of range for dim {axis} of size {dim}"),
        }),
    }
}

/// The indices of an I64 view in row-major order, each checked against `dim`.
fn read_indices(
    op: &'static str,
    idx: &HostBuffer,
    il: &Layout,
    axis: usize,
    dim: usize,
) -> Result<Vec<usize>> {
    let HostBuffer::I64(v) = idx else {
        return Err(Error::DType {
            op,
            msg: crate::__format!("index must be I64, got {}", idx.dtype()),
        });
    };
    il.check_fits(op, v.len())?;
    strided::map(v, il, |i| i)
        .into_iter()
        .map(|i| checked_index(op, i, axis, dim))
        .collect()
}

/// `layout` re-described with `shape` and a zero stride on `axis` (see the module docs). The
/// caller guarantees `shape[d] <= layout.shape()[d]` for every `d != axis`.
fn base_layout(layout: &Layout, shape: &[usize], axis: usize) -> Layout {
    let mut strides: Vec<usize> = layout.strides().to_vec();
    strides[axis] = 0;
    Layout::from_parts(shape, &strides, layout.offset())
}

fn check_rank(op: &'static str, l: &Layout, il: &Layout, axis: usize) -> Result<()> {
    if axis >= l.rank() || il.rank() != l.rank() {
        return Err(crate::shape_err!(
            op,
            "axis {axis} and index {:?} do not fit input {:?}",
            il.shape(),
            l.shape()
        ));
    }
    Ok(())
}

pub(crate) fn index_select(
    x: &HostBuffer,
    l: &Layout,
    axis: usize,
    idx: &HostBuffer,
    il: &Layout,
) -> Result<HostBuffer> {
    let op = "index_select";
    if axis >= l.rank() || il.rank() != 1 {
        return Err(crate::shape_err!(
            op,
            "needs a 1-D index and an axis of {:?}, got index {:?} and axis {axis}",
            l.shape(),
            il.shape()
        ));
    }
    l.check_fits(op, x.len())?;
    let index = read_indices(op, idx, il, axis, l.shape()[axis])?;
    let mut out_shape = l.shape().to_vec();
    out_shape[axis] = index.len();
    let base = base_layout(l, &out_shape, axis);
    // Row-major position t of the output has axis coordinate (t / inner) % n.
    let inner: usize = out_shape[axis + 1..].iter().product();
    let (n, stride) = (index.len(), l.strides()[axis]);
    fn go<T: HostElement>(
        v: &[T],
        base: &Layout,
        index: &[usize],
        inner: usize,
        n: usize,
        stride: usize,
    ) -> HostBuffer {
        let mut out: Vec<T> = crate::cpu::pool::take_in_kernel(base.numel());
        out.extend(
            base.offsets()
                .enumerate()
                .map(|(t, o)| v[o + index[(t / inner) % n] * stride]),
        );
        T::into_buffer(out)
    }
    Ok(with_buffer!(x, v => go(v, &base, &index, inner, n, stride)))
}

pub(crate) fn gather(
    x: &HostBuffer,
    l: &Layout,
    axis: usize,
    idx: &HostBuffer,
    il: &Layout,
) -> Result<HostBuffer> {
    let op = "gather";
    check_rank(op, l, il, axis)?;
    if (0..l.rank()).any(|d| d != axis && il.shape()[d] > l.shape()[d]) {
        return Err(crate::shape_err!(
            op,
            "index {:?} is larger than input {:?} outside dim {axis}",
            il.shape(),
            l.shape()
        ));
    }
    l.check_fits(op, x.len())?;
    let index = read_indices(op, idx, il, axis, l.shape()[axis])?;
    let base = base_layout(l, il.shape(), axis);
    let stride = l.strides()[axis];
    fn go<T: HostElement>(v: &[T], base: &Layout, index: &[usize], stride: usize) -> HostBuffer {
        let mut out: Vec<T> = crate::cpu::pool::take_in_kernel(base.numel());
        out.extend(base.offsets().zip(index).map(|(o, &i)| v[o + i * stride]));
        T::into_buffer(out)
    }
    Ok(with_buffer!(x, v => go(v, &base, &index, stride)))
}

/// `dst[targets[k]] = add(dst[targets[k]], src[k])` in order.
fn accumulate<T: Copy>(dst: &mut [T], targets: &[usize], src: &[T], add: impl Fn(T, T) -> T) {
    for (&t, &s) in targets.iter().zip(src) {
        dst[t] = add(dst[t], s);
    }
}

pub(crate) fn scatter_add(
    dst: &mut HostBuffer,
    dst_shape: &[usize],
    axis: usize,
    idx: &HostBuffer,
    il: &Layout,
    src: &HostBuffer,
    sl: &Layout,
) -> Result<()> {
    let op = "scatter_add";
    let dl = Layout::contiguous(dst_shape);
    check_rank(op, &dl, il, axis)?;
    let fits = (0..dl.rank()).all(|d| d == axis || il.shape()[d] <= dst_shape[d]);
    if !fits || sl.shape() != il.shape() {
        return Err(crate::shape_err!(
            op,
            "index {:?} and source {:?} do not fit destination {dst_shape:?} along dim {axis}",
            il.shape(),
            sl.shape()
        ));
    }
    let dtypes = (dst.dtype(), src.dtype());
    dl.check_fits(op, dst.len())?;
    sl.check_fits(op, src.len())?;
    let index = read_indices(op, idx, il, axis, dst_shape[axis])?;
    let stride = contiguous_strides(dst_shape)[axis];
    let targets: Vec<usize> = base_layout(&dl, il.shape(), axis)
        .offsets()
        .zip(&index)
        .map(|(o, &i)| o + i * stride)
        .collect();
    match (dst, src) {
        (HostBuffer::F32(d), HostBuffer::F32(s)) => {
            accumulate(d, &targets, &strided::view(s, sl), |a, b| a + b)
        }
        (HostBuffer::F64(d), HostBuffer::F64(s)) => {
            accumulate(d, &targets, &strided::view(s, sl), |a, b| a + b)
        }
        // Half precision accumulates in f32 and rounds once at the end, so that many small
        // contributions to one element are not each lost to rounding (as col2im does).
        (HostBuffer::F16(d), HostBuffer::F16(s)) => {
            let mut acc: Vec<f32> = d.iter().map(|x| x.to_f32()).collect();
            let s32 = strided::map(s, sl, f16::to_f32);
            accumulate(&mut acc, &targets, &s32, |a, b| a + b);
            d.iter_mut()
                .zip(acc)
                .for_each(|(x, a)| *x = f16::from_f32(a));
        }
        (HostBuffer::BF16(d), HostBuffer::BF16(s)) => {
            let mut acc: Vec<f32> = d.iter().map(|x| x.to_f32()).collect();
            let s32 = strided::map(s, sl, bf16::to_f32);
            accumulate(&mut acc, &targets, &s32, |a, b| a + b);
            d.iter_mut()
                .zip(acc)
                .for_each(|(x, a)| *x = bf16::from_f32(a));
        }
        // Integers wrap on overflow, as PyTorch's integer adds do.
        (HostBuffer::I64(d), HostBuffer::I64(s)) => {
            accumulate(d, &targets, &strided::view(s, sl), i64::wrapping_add)
        }
        (HostBuffer::U8(d), HostBuffer::U8(s)) => {
            accumulate(d, &targets, &strided::view(s, sl), u8::wrapping_add)
        }
        _ => {
            return Err(Error::DType {
                op,
                msg: crate::__format!("destination is {}, source is {}", dtypes.0, dtypes.1),
            })
        }
    }
    Ok(())
}
