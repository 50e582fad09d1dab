//! Strided-access helpers shared by the CPU kernels: read a view in row-major order, map and
//! zip views into fresh contiguous vectors, and write through a view.

use crate::buffer::HostElement;
use crate::layout::Layout;
use crate::{with_buffer, HostBuffer, Result};
use alloc::vec::Vec;

/// The elements of a view, row-major, in a new vector.
pub(crate) fn gather<T: Copy>(src: &[T], layout: &Layout) -> Vec<T> {
    match layout.contiguous_range() {
        Some(r) => src[r].to_vec(),
        None => layout.offsets().map(|o| src[o]).collect(),
    }
}

/// [`gather`] for a whole buffer.
pub(crate) fn gather_view(src: &HostBuffer, layout: &Layout) -> HostBuffer {
    with_buffer!(src, v => HostElement::into_buffer(gather(v, layout)))
}

/// The elements of a view, borrowed if contiguous, else gathered.
pub(crate) fn view<'a, T: Copy>(src: &'a [T], layout: &Layout) -> alloc::borrow::Cow<'a, [T]>
where
    [T]: alloc::borrow::ToOwned<Owned = Vec<T>>,
{
    match layout.contiguous_range() {
        Some(r) => alloc::borrow::Cow::Borrowed(&src[r]),
        None => alloc::borrow::Cow::Owned(layout.offsets().map(|o| src[o]).collect()),
    }
}

/// `f(x)` for every element of a view, row-major.
#[inline]
pub(crate) fn map<T: Copy, U>(src: &[T], layout: &Layout, f: impl Fn(T) -> U) -> Vec<U> {
    match layout.contiguous_range() {
        Some(r) => src[r].iter().map(|&x| f(x)).collect(),
        None => layout.offsets().map(|o| f(src[o])).collect(),
    }
}

/// `f(a, b)` for two views of the same shape, row-major.
#[inline]
pub(crate) fn zip<T: Copy, S: Copy, U>(
    a: &[T],
    al: &Layout,
    b: &[S],
    bl: &Layout,
    f: impl Fn(T, S) -> U,
) -> Vec<U> {
    debug_assert_eq!(al.shape(), bl.shape());
    match (al.contiguous_range(), bl.contiguous_range()) {
        (Some(ra), Some(rb)) => a[ra].iter().zip(&b[rb]).map(|(&x, &y)| f(x, y)).collect(),
        (Some(ra), None) => a[ra]
            .iter()
            .zip(bl.offsets())
            .map(|(&x, ob)| f(x, b[ob]))
            .collect(),
        (None, Some(rb)) => al
            .offsets()
            .zip(&b[rb])
            .map(|(oa, &y)| f(a[oa], y))
            .collect(),
        (None, None) => al
            .offsets()
            .zip(bl.offsets())
            .map(|(oa, ob)| f(a[oa], b[ob]))
            .collect(),
    }
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
            (Some(rs), Some(rd)) => d[rd].copy_from_slice(&src[rs]),
            _ => {
                for (os, od) in sl.offsets().zip(dl.offsets()) {
                    d[od] = src[os];
                }
            }
        }
    }
    dl.check_fits("copy_into", dst.len())?;
    with_buffer!(src, v => typed(v, sl, dst, dl));
    Ok(())
}
