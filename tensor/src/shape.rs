//! Shapes, axis normalization and NumPy broadcasting.

use crate::{Error, Result};
use alloc::vec::Vec;
use smallvec::SmallVec;

/// Small inline vector for dims and strides: tensors in this project have rank <= 6, so no
/// shape ever allocates.
pub type Dims = SmallVec<[usize; 6]>;

/// Number of elements of a shape (1 for a scalar of rank 0). Saturates at `usize::MAX`
/// instead of wrapping or panicking; every [`Layout`](crate::Layout) has a count that fits
/// (it is checked when the layout is built), and code handling a shape a caller passed
/// checks it with [`try_numel`] first.
pub fn numel(shape: &[usize]) -> usize {
    if shape.contains(&0) {
        return 0;
    }
    shape.iter().fold(1usize, |acc, &d| acc.saturating_mul(d))
}

/// Number of elements of a shape, or `None` if the shape is too large: the product of its
/// non-zero dims must fit in `usize`. That rule (not just "the element count fits") is what
/// every [`Layout`](crate::Layout) guarantees, so that no partial product a kernel computes
/// over any subset of the dims can overflow, even for an empty shape like `[2^40, 2^40, 0]`.
pub fn checked_numel(shape: &[usize]) -> Option<usize> {
    let nonzero = shape
        .iter()
        .filter(|&&d| d != 0)
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))?;
    Some(if shape.contains(&0) { 0 } else { nonzero })
}

/// [`checked_numel`] as a shape error naming `op`, for shapes that come from a caller.
pub fn try_numel(op: &'static str, shape: &[usize]) -> Result<usize> {
    checked_numel(shape).ok_or_else(|| {
        crate::shape_err!(op, "shape {shape:?} has more elements than fit in a usize")
    })
}

/// Row-major (C-order) strides of a contiguous tensor of this shape.
pub fn contiguous_strides(shape: &[usize]) -> Dims {
    let mut strides: Dims = SmallVec::from_elem(0, shape.len());
    let mut acc: usize = 1;
    for i in (0..shape.len()).rev() {
        strides[i] = acc;
        // Saturating: only a shape with a zero dim can overflow here without its element
        // count overflowing too, and such a view reads nothing, so its strides never matter.
        acc = acc.saturating_mul(shape[i]);
    }
    strides
}

/// Maps a possibly negative axis (`-1` = last) to `0..rank`, as PyTorch does.
pub fn normalize_axis(op: &'static str, axis: isize, rank: usize) -> Result<usize> {
    let r = rank as isize;
    let a = if axis < 0 { axis + r } else { axis };
    if a < 0 || a >= r {
        return Err(Error::Axis { op, axis, rank });
    }
    Ok(a as usize)
}

/// Normalizes a set of axes, rejecting duplicates; returns them sorted.
pub fn normalize_axes(op: &'static str, axes: &[isize], rank: usize) -> Result<Dims> {
    let mut out: Dims = SmallVec::new();
    for &a in axes {
        let n = normalize_axis(op, a, rank)?;
        if out.contains(&n) {
            return Err(crate::arg_err!(op, "axis {a} given twice in {axes:?}"));
        }
        out.push(n);
    }
    out.sort_unstable();
    Ok(out)
}

/// The broadcast shape of two shapes under NumPy rules (align right, 1 stretches).
pub fn broadcast_shapes(op: &'static str, a: &[usize], b: &[usize]) -> Result<Dims> {
    let rank = a.len().max(b.len());
    let mut out: Dims = SmallVec::from_elem(0, rank);
    for i in 0..rank {
        let da = if i + a.len() >= rank {
            a[i + a.len() - rank]
        } else {
            1
        };
        let db = if i + b.len() >= rank {
            b[i + b.len() - rank]
        } else {
            1
        };
        out[i] = if da == db || db == 1 {
            da
        } else if da == 1 {
            db
        } else {
            return Err(crate::shape_err!(
                op,
                "shapes {a:?} and {b:?} cannot be broadcast together (dim {i}: {da} vs {db})"
            ));
        };
    }
    Ok(out)
}

/// The axes along which `from` was stretched to become `to` (the axes a gradient must be
/// summed over to undo broadcasting), and whether `from` had fewer dims. Used by autograd.
pub fn broadcast_reduction_axes(from: &[usize], to: &[usize]) -> Vec<usize> {
    let lead = to.len() - from.len();
    let mut axes: Vec<usize> = (0..lead).collect();
    for (i, &d) in from.iter().enumerate() {
        if d == 1 && to[lead + i] != 1 {
            axes.push(lead + i);
        }
    }
    axes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasting_follows_numpy() {
        assert_eq!(
            broadcast_shapes("t", &[3, 1, 5], &[4, 1])
                .unwrap()
                .as_slice(),
            &[3, 4, 5]
        );
        assert_eq!(
            broadcast_shapes("t", &[], &[2, 3]).unwrap().as_slice(),
            &[2, 3]
        );
        let e = broadcast_shapes("add", &[2, 3], &[4, 3]).unwrap_err();
        assert!(alloc::format!("{e}").contains("[2, 3] and [4, 3]"));
    }

    #[test]
    fn reduction_axes_undo_broadcast() {
        assert_eq!(
            broadcast_reduction_axes(&[3, 1], &[2, 3, 4]),
            alloc::vec![0, 2]
        );
        assert!(broadcast_reduction_axes(&[2, 3], &[2, 3]).is_empty());
    }

    #[test]
    fn negative_axes() {
        assert_eq!(normalize_axis("t", -1, 3).unwrap(), 2);
        assert!(normalize_axis("t", 3, 3).is_err());
        assert!(normalize_axes("t", &[0, -3], 3).is_err());
    }
}
