//! Strided-access helpers shared by the CPU kernels: read a view in row-major order, map and
//! zip views into fresh contiguous vectors, and write through a view.

use crate::buffer::HostElement;
use crate::cpu::parallel;
use crate::layout::Layout;
use crate::{with_buffer, HostBuffer, Result};
use alloc::vec::Vec;

/// Visits the innermost rows of two same-shape layouts in row-major order: calls
/// `f(start_a, start_b)` with the storage offsets of each row's first element. Every row has
/// [`row_len`] elements, `stride_a`/`stride_b` apart (the last dim's strides). Kernels loop
/// over a row with plain index arithmetic, so the odometer runs once per row, not per element.
#[inline]
pub(crate) fn rows2(al: &Layout, bl: &Layout, f: impl FnMut(usize, usize)) {
    rows2_range(al, bl, 0..row_count(al), f)
}

/// The number of rows [`rows2`] visits (1 for a scalar, 0 for an empty view).
#[inline]
pub(crate) fn row_count(l: &Layout) -> usize {
    match l.rank() {
        0 => 1,
        r => l.shape()[..r - 1].iter().product::<usize>() * usize::from(l.shape()[r - 1] > 0),
    }
}

/// [`rows2`] restricted to the rows `rows` (row-major numbering).
pub(crate) fn rows2_range(
    al: &Layout,
    bl: &Layout,
    rows: core::ops::Range<usize>,
    mut f: impl FnMut(usize, usize),
) {
    let r = al.rank();
    if r == 0 {
        if !rows.is_empty() {
            f(al.offset(), bl.offset());
        }
        return;
    }
    let outer = &al.shape()[..r - 1];
    if al.numel() == 0 || rows.is_empty() {
        return;
    }
    let (sa, sb) = (al.strides(), bl.strides());
    let mut idx: crate::shape::Dims = smallvec::SmallVec::from_elem(0, r - 1);
    let (mut oa, mut ob) = (al.offset(), bl.offset());
    let mut rem = rows.start;
    for d in (0..r - 1).rev() {
        idx[d] = rem % outer[d];
        rem /= outer[d];
        oa += idx[d] * sa[d];
        ob += idx[d] * sb[d];
    }
    let mut left = rows.len();
    loop {
        f(oa, ob);
        left -= 1;
        if left == 0 {
            return;
        }
        let mut d = r - 1;
        loop {
            if d == 0 {
                return;
            }
            d -= 1;
            idx[d] += 1;
            // Step only within the dim, never one past its end: a valid layout bounds the
            // offsets of its elements, not `offset + shape * stride` (a size-1 dim may have
            // any stride), so stepping past the end could overflow.
            if idx[d] < outer[d] {
                oa += sa[d];
                ob += sb[d];
                break;
            }
            oa -= (outer[d] - 1) * sa[d];
            ob -= (outer[d] - 1) * sb[d];
            idx[d] = 0;
        }
    }
}

/// Length and stride of the innermost rows visited by [`rows2`] (1 and 0 for a scalar).
#[inline]
pub(crate) fn row_len(l: &Layout) -> (usize, usize) {
    match l.rank() {
        0 => (1, 0),
        r => (l.shape()[r - 1], l.strides()[r - 1]),
    }
}

/// The elements of a view, row-major, in a new vector.
/// Views that are a batch of transposes (NCHW ↔ NHWC, `xᵀ`) are copied in cache tiles
/// ([`super::transpose`]).
pub(crate) fn gather<T: Copy + Send + Sync>(src: &[T], layout: &Layout) -> Vec<T> {
    if let Some(v) = super::transpose::gather(src, layout) {
        return v;
    }
    map(src, layout, |x| x)
}

/// [`gather`] for a whole buffer.
pub(crate) fn gather_view(src: &HostBuffer, layout: &Layout) -> HostBuffer {
    with_buffer!(src, v => HostElement::into_buffer(gather(v, layout)))
}

/// The elements of a view, borrowed if contiguous, else gathered into a scratch buffer
/// that goes back to the buffer cache when dropped.
pub(crate) fn view<'a, T: Copy + Send + Sync>(src: &'a [T], layout: &Layout) -> ViewBuf<'a, T> {
    match layout.contiguous_range() {
        Some(r) => ViewBuf::Borrowed(&src[r]),
        None => ViewBuf::Owned(gather(src, layout)),
    }
}

/// A CPU tensor's elements as one contiguous slice: [`view`] of its storage. `None` if `T`
/// is not its dtype.
pub(crate) fn elements<T: HostElement + Copy + Send + Sync>(
    t: &crate::Tensor<crate::cpu::Cpu>,
) -> Option<ViewBuf<'_, T>> {
    Some(view(t.storage().as_slice::<T>()?, t.layout()))
}

/// What [`view`] returns: a slice, borrowed or in a cached scratch buffer.
pub(crate) enum ViewBuf<'a, T> {
    Borrowed(&'a [T]),
    Owned(Vec<T>),
}

impl<T> core::ops::Deref for ViewBuf<'_, T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        match self {
            ViewBuf::Borrowed(s) => s,
            ViewBuf::Owned(v) => v,
        }
    }
}

impl<T> Drop for ViewBuf<'_, T> {
    fn drop(&mut self) {
        if let ViewBuf::Owned(v) = self {
            super::pool::give(core::mem::take(v));
        }
    }
}

/// `f(x)` for every element of a view, row-major. Large views are computed in parallel
/// (see [`parallel`]), each element by the same code as on one thread.
#[inline]
pub(crate) fn map<T: Copy + Sync, U: Send>(
    src: &[T],
    layout: &Layout,
    f: impl Fn(T) -> U + Sync,
) -> Vec<U> {
    let numel = layout.numel();
    if let Some(r) = layout.contiguous_range() {
        let src = &src[r];
        return parallel::collect(numel, 1, numel, |range, out| {
            out.extend_map(&src[range], &f)
        });
    }
    let (n, s) = row_len(layout);
    parallel::collect(row_count(layout), n, numel, |rows, out| {
        rows2_range(layout, layout, rows, |o, _| {
            if s == 1 {
                out.extend_map(&src[o..o + n], &f);
            } else {
                out.extend((0..n).map(|i| f(src[o + i * s])));
            }
        })
    })
}

/// `f(a, b)` for two views of the same shape, row-major. Large views are computed in
/// parallel (see [`parallel`]), each element by the same code as on one thread.
#[inline]
pub(crate) fn zip<T: Copy + Sync, S: Copy + Sync, U: Send>(
    a: &[T],
    al: &Layout,
    b: &[S],
    bl: &Layout,
    f: impl Fn(T, S) -> U + Sync,
) -> Vec<U> {
    debug_assert_eq!(al.shape(), bl.shape());
    let numel = al.numel();
    if let (Some(ra), Some(rb)) = (al.contiguous_range(), bl.contiguous_range()) {
        let (a, b) = (&a[ra], &b[rb]);
        return parallel::collect(numel, 1, numel, |r, out| {
            out.extend_zip(&a[r.clone()], &b[r], &f)
        });
    }
    let ((n, sa), (_, sb)) = (row_len(al), row_len(bl));
    parallel::collect(row_count(al), n, numel, |rows, out| {
        rows2_range(al, bl, rows, |oa, ob| match (sa, sb) {
            (1, 1) => out.extend_zip(&a[oa..oa + n], &b[ob..ob + n], &f),
            (1, 0) => {
                let y = b[ob];
                out.extend_map(&a[oa..oa + n], &|x| f(x, y))
            }
            (0, 1) => {
                let x = a[oa];
                out.extend_map(&b[ob..ob + n], &|y| f(x, y))
            }
            _ => out.extend((0..n).map(|i| f(a[oa + i * sa], b[ob + i * sb]))),
        })
    })
}

/// Copies a view of `src` into the positions of a view of `dst` (same shape and dtype).
pub(crate) fn copy_into(
    src: &HostBuffer,
    sl: &Layout,
    dst: &mut HostBuffer,
    dl: &Layout,
) -> Result<()> {
    if src.dtype() != dst.dtype() {
        return Err(crate::Error::DType {
            op: "copy_into",
            msg: crate::__format!("source is {}, destination is {}", src.dtype(), dst.dtype()),
        });
    }
    if sl.shape() != dl.shape() {
        return Err(crate::shape_err!(
            "copy_into",
            "source {:?} and destination {:?} differ",
            sl.shape(),
            dl.shape()
        ));
    }
    fn typed<T: HostElement>(src: &[T], sl: &Layout, dst: &mut HostBuffer, dl: &Layout) {
        let d = dst
            .as_mut_slice::<T>()
            .expect("dtype checked by the caller");
        match (sl.contiguous_range(), dl.contiguous_range()) {
            (Some(rs), Some(rd)) => {
                let src = &src[rs];
                let n = src.len();
                parallel::for_each_chunk_mut(&mut d[rd], 1, n, |r, out| {
                    out.copy_from_slice(&src[r])
                });
            }
            _ => {
                let ((n, ss), (_, ds)) = (row_len(sl), row_len(dl));
                rows2(sl, dl, |os, od| {
                    for i in 0..n {
                        d[od + i * ds] = src[os + i * ss];
                    }
                });
            }
        }
    }
    dl.check_fits("copy_into", dst.len())?;
    with_buffer!(src, v => typed(v, sl, dst, dl));
    Ok(())
}
