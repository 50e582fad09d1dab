//! [`Layout`]: how a tensor's logical elements map to positions in its storage.
//!
//! Element `(i0, i1, ..)` lives at `offset + i0*strides[0] + i1*strides[1] + ..`. Views
//! (transpose, narrow, broadcast, ...) only compute a new layout over the same storage, so they
//! are free; every kernel therefore accepts arbitrary layouts (PyTorch: `tensor.stride()`,
//! `tensor.storage_offset()`).
//!
//! # Validity
//!
//! Kernels do unchecked index arithmetic over layouts, so every layout this module builds
//! satisfies, in release builds too (see [`Layout::try_from_parts`]):
//! - shape and strides have the same rank;
//! - the product of the non-zero dims fits in `usize` (so no element count overflows);
//! - if it has elements, `offset + sum((shape[d] - 1) * strides[d])`, its largest offset,
//!   fits in `usize`. Kernels walk views without ever stepping past the last index of a dim,
//!   so no offset they compute exceeds it; a size-1 dim's stride is never followed, so it may
//!   be anything (as in PyTorch).
//!
//! Whether a layout fits a particular storage is a separate check, [`Layout::check_fits`].

use crate::shape::{checked_numel, contiguous_strides, numel, Dims};
use crate::{Error, Result};
use smallvec::SmallVec;

/// Shape, strides (in elements) and starting offset of a view into a storage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    shape: Dims,
    strides: Dims,
    offset: usize,
}

impl Layout {
    /// A row-major layout of `shape` starting at offset 0. The shape must be valid (see the
    /// module docs), as the shape of every existing tensor is; for a shape a caller passed,
    /// use [`Layout::try_contiguous`].
    pub fn contiguous(shape: &[usize]) -> Self {
        Layout {
            shape: SmallVec::from_slice(shape),
            strides: contiguous_strides(shape),
            offset: 0,
        }
    }

    /// A row-major layout of `shape`, or an error if the shape is too large to be a valid
    /// layout (see the module docs). For shapes that come from a caller.
    pub fn try_contiguous(op: &'static str, shape: &[usize]) -> Result<Self> {
        crate::shape::try_numel(op, shape)?;
        let l = Self::contiguous(shape);
        l.validate(op)?;
        Ok(l)
    }

    /// A layout from raw parts, checked to be valid (see the module docs) with overflow-checked
    /// arithmetic. Whether it fits a storage is checked separately ([`Layout::check_fits`]).
    pub fn try_from_parts(shape: &[usize], strides: &[usize], offset: usize) -> Result<Self> {
        let l = Layout {
            shape: SmallVec::from_slice(shape),
            strides: SmallVec::from_slice(strides),
            offset,
        };
        l.validate("layout")?;
        Ok(l)
    }

    /// A layout from raw parts. The caller guarantees every element lies inside the storage.
    ///
    /// # Panics
    /// If the parts do not make a valid layout (see [`Layout::try_from_parts`], which returns
    /// the error instead). A panic, not a wrapped offset that a kernel would later follow.
    pub fn from_parts(shape: &[usize], strides: &[usize], offset: usize) -> Self {
        match Self::try_from_parts(shape, strides, offset) {
            Ok(l) => l,
            Err(e) => panic!("Layout::from_parts: {e}"),
        }
    }

    /// Checks the validity rules of the module docs; the error names `op`.
    pub fn validate(&self, op: &'static str) -> Result<()> {
        if self.shape.len() != self.strides.len() {
            return Err(crate::shape_err!(
                op,
                "shape {:?} and strides {:?} differ in rank",
                self.shape,
                self.strides
            ));
        }
        if checked_numel(&self.shape).is_none() || self.checked_required_len().is_none() {
            return Err(crate::shape_err!(
                op,
                "layout {:?} / {:?} + {} addresses more elements than fit in a usize",
                self.shape,
                self.strides,
                self.offset
            ));
        }
        Ok(())
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
    pub fn strides(&self) -> &[usize] {
        &self.strides
    }
    pub fn offset(&self) -> usize {
        self.offset
    }
    pub fn rank(&self) -> usize {
        self.shape.len()
    }
    pub fn numel(&self) -> usize {
        numel(&self.shape)
    }

    /// True if the elements are laid out row-major without gaps (size-1 dims may have any
    /// stride, as in PyTorch).
    pub fn is_contiguous(&self) -> bool {
        let mut acc = 1;
        for i in (0..self.shape.len()).rev() {
            if self.shape[i] != 1 && self.strides[i] != acc {
                return false;
            }
            acc *= self.shape[i];
        }
        true
    }

    /// If contiguous, the storage range `offset..offset+numel` holding the elements in order
    /// (`0..0` for a view with no elements, whose offset need not lie inside the storage).
    pub fn contiguous_range(&self) -> Option<core::ops::Range<usize>> {
        if self.numel() == 0 {
            return Some(0..0);
        }
        self.is_contiguous()
            .then(|| self.offset..self.offset + self.numel())
    }

    /// One past the largest storage index this layout touches (0 if it has no elements):
    /// the storage length a view needs. `usize::MAX` if that overflows (never for a valid
    /// layout; the saturated value fits no storage, so [`Layout::check_fits`] rejects it).
    pub fn required_len(&self) -> usize {
        self.checked_required_len().unwrap_or(usize::MAX)
    }

    /// [`Layout::required_len`] with overflow-checked arithmetic: `None` if it overflows.
    pub fn checked_required_len(&self) -> Option<usize> {
        if checked_numel(&self.shape)? == 0 {
            return Some(0);
        }
        self.shape
            .iter()
            .zip(&self.strides)
            .try_fold(self.offset, |acc, (&d, &s)| {
                acc.checked_add((d - 1).checked_mul(s)?)
            })?
            .checked_add(1)
    }

    /// True if some dim of size > 1 has stride 0 (a broadcast view: one element, many places).
    pub fn has_zero_stride(&self) -> bool {
        self.shape
            .iter()
            .zip(&self.strides)
            .any(|(&d, &s)| d > 1 && s == 0)
    }

    /// Reorders the dims (PyTorch: `permute`). `perm` must be a permutation of `0..rank`.
    pub fn permute(&self, perm: &[usize]) -> Result<Layout> {
        let r = self.rank();
        let mut seen: SmallVec<[bool; 6]> = SmallVec::from_elem(false, r);
        if perm.len() != r {
            return Err(crate::shape_err!(
                "permute",
                "{perm:?} is not a permutation of the {r} dims of {:?}",
                self.shape
            ));
        }
        for &p in perm {
            if p >= r || seen[p] {
                return Err(crate::shape_err!(
                    "permute",
                    "{perm:?} is not a permutation of the {r} dims of {:?}",
                    self.shape
                ));
            }
            seen[p] = true;
        }
        Ok(Layout {
            shape: perm.iter().map(|&p| self.shape[p]).collect(),
            strides: perm.iter().map(|&p| self.strides[p]).collect(),
            offset: self.offset,
        })
    }

    /// Swaps two dims (normalized axes).
    pub fn transpose(&self, a: usize, b: usize) -> Layout {
        let mut l = self.clone();
        l.shape.swap(a, b);
        l.strides.swap(a, b);
        l
    }

    /// Keeps `len` elements of `axis` starting at `start` (PyTorch: `narrow`).
    pub fn narrow(&self, axis: usize, start: usize, len: usize) -> Result<Layout> {
        let d = self.shape[axis];
        if start.checked_add(len).is_none_or(|end| end > d) {
            return Err(crate::shape_err!(
                "narrow",
                "range {start}..{} is out of bounds for dim {axis} of size {d} (shape {:?})",
                start.saturating_add(len),
                self.shape
            ));
        }
        let mut l = self.clone();
        if len > 0 {
            // Checked: an empty layout's strides and offset are unconstrained.
            l.offset = start
                .checked_mul(self.strides[axis])
                .and_then(|o| o.checked_add(self.offset))
                .ok_or_else(|| crate::shape_err!("narrow", "offset of {self:?} overflows"))?;
        }
        l.shape[axis] = len;
        Ok(l)
    }

    /// Takes every `step`-th element of `axis` in `start..end` (PyTorch: `x[start:end:step]`).
    pub fn slice(&self, axis: usize, start: usize, end: usize, step: usize) -> Result<Layout> {
        if step == 0 {
            return Err(crate::arg_err!("slice", "step must be positive"));
        }
        let end = end.min(self.shape[axis]);
        let start = start.min(end);
        let len = (end - start).div_ceil(step);
        let mut l = self.narrow(axis, start, end - start)?;
        l.shape[axis] = len;
        // A dim of 0 or 1 elements never steps, so its stride is kept rather than
        // multiplied by a possibly huge `step`; otherwise the result is checked.
        if len > 1 {
            l.strides[axis] = l.strides[axis]
                .checked_mul(step)
                .ok_or_else(|| crate::shape_err!("slice", "stride of {self:?} overflows"))?;
        }
        l.validate("slice")?;
        Ok(l)
    }

    /// A view of this layout stretched to `shape` (NumPy broadcasting; new leading dims and
    /// size-1 dims get stride 0). PyTorch: `expand`.
    pub fn broadcast_to(&self, shape: &[usize]) -> Result<Layout> {
        let (r, nr) = (self.rank(), shape.len());
        let err = || {
            crate::shape_err!(
                "broadcast_to",
                "cannot broadcast {:?} to {shape:?}",
                self.shape
            )
        };
        if nr < r {
            return Err(err());
        }
        let mut strides: Dims = SmallVec::from_elem(0, nr);
        for i in 0..nr {
            if i < nr - r {
                continue;
            }
            let j = i - (nr - r);
            if self.shape[j] == shape[i] {
                strides[i] = self.strides[j];
            } else if self.shape[j] == 1 {
                strides[i] = 0;
            } else {
                return Err(err());
            }
        }
        let l = Layout {
            shape: SmallVec::from_slice(shape),
            strides,
            offset: self.offset,
        };
        l.validate("broadcast_to")?;
        Ok(l)
    }

    /// A layout of a new shape over the same elements, if one exists without copying
    /// (PyTorch: `view`); `None` when the elements would have to move (then `reshape` copies).
    pub fn reshape(&self, shape: &[usize]) -> Option<Layout> {
        if checked_numel(shape) != Some(self.numel()) {
            return None;
        }
        if self.is_contiguous() || self.numel() == 0 {
            return Some(Layout {
                shape: SmallVec::from_slice(shape),
                strides: contiguous_strides(shape),
                offset: self.offset,
            });
        }
        // General case (as in PyTorch's computeStride): split the old shape into chunks of
        // dims that are contiguous with each other; each new dim must fall inside one chunk.
        let old: Dims = self.shape.iter().copied().filter(|&d| d != 1).collect();
        let old_st: Dims = self
            .shape
            .iter()
            .zip(&self.strides)
            .filter(|(d, _)| **d != 1)
            .map(|(_, s)| *s)
            .collect();
        let mut new_strides: Dims = SmallVec::from_elem(0, shape.len());
        let (mut oi, mut ni) = (0usize, 0usize);
        while ni < shape.len() {
            if shape[ni] == 1 {
                new_strides[ni] = 1;
                ni += 1;
                continue;
            }
            if oi >= old.len() {
                return None;
            }
            // Gather a chunk of old dims that is contiguous within itself.
            let mut chunk_size = old[oi];
            while oi + 1 < old.len() && old_st[oi] == old_st[oi + 1] * old[oi + 1] {
                oi += 1;
                chunk_size *= old[oi];
            }
            let chunk_inner_stride = old_st[oi];
            oi += 1;
            // Lay new dims over this chunk, row-major.
            let mut remaining = chunk_size;
            while remaining > 1 {
                if ni >= shape.len() {
                    return None;
                }
                let d = shape[ni];
                if d == 1 {
                    new_strides[ni] = 1;
                    ni += 1;
                    continue;
                }
                if remaining % d != 0 {
                    return None;
                }
                remaining /= d;
                new_strides[ni] = remaining * chunk_inner_stride;
                ni += 1;
            }
        }
        if oi != old.len() {
            return None;
        }
        Some(Layout {
            shape: SmallVec::from_slice(shape),
            strides: new_strides,
            offset: self.offset,
        })
    }

    /// Removes a size-1 dim.
    pub fn squeeze(&self, axis: usize) -> Result<Layout> {
        if self.shape[axis] != 1 {
            return Err(crate::shape_err!(
                "squeeze",
                "dim {axis} of {:?} has size {}, not 1",
                self.shape,
                self.shape[axis]
            ));
        }
        let mut l = self.clone();
        l.shape.remove(axis);
        l.strides.remove(axis);
        Ok(l)
    }

    /// Inserts a size-1 dim at `axis` (`0..=rank`).
    pub fn unsqueeze(&self, axis: usize) -> Layout {
        let mut l = self.clone();
        let stride = if axis < self.rank() {
            self.strides[axis].checked_mul(self.shape[axis])
        } else {
            Some(1)
        };
        l.shape.insert(axis, 1);
        l.strides.insert(axis, stride.unwrap_or(0));
        // The new dim has one element, so its stride is never followed: PyTorch's choice is
        // kept unless it overflows (only on an empty view), then 0 is as good.
        l
    }

    /// Iterates the storage offsets of all elements in row-major (logical) order.
    pub fn offsets(&self) -> StridedOffsets<'_> {
        StridedOffsets::new(self)
    }

    /// Checks that this layout is valid (see the module docs) and fits in a storage of `len`
    /// elements; an error, never a wrapped length, if the arithmetic overflows.
    pub fn check_fits(&self, op: &'static str, len: usize) -> Result<()> {
        self.validate(op)?;
        match self.checked_required_len() {
            Some(need) if need <= len => Ok(()),
            need => Err(Error::Index {
                op,
                msg: crate::__format!(
                    "layout {self:?} needs {} elements, storage has {len}",
                    need.map_or_else(
                        || "more than usize::MAX".into(),
                        |n| crate::__format!("{n}")
                    )
                ),
            }),
        }
    }
}

/// Iterator over the storage offsets of a [`Layout`], in row-major order (an odometer over the
/// multi-index). Kernels use it for non-contiguous inputs; contiguous ones take a fast path.
#[derive(Debug)]
pub struct StridedOffsets<'a> {
    layout: &'a Layout,
    index: Dims,
    next: Option<usize>,
}

impl<'a> StridedOffsets<'a> {
    fn new(layout: &'a Layout) -> Self {
        let next = (layout.numel() > 0).then_some(layout.offset);
        StridedOffsets {
            layout,
            index: SmallVec::from_elem(0, layout.rank()),
            next,
        }
    }
}

impl Iterator for StridedOffsets<'_> {
    type Item = usize;

    #[inline]
    fn next(&mut self) -> Option<usize> {
        let current = self.next?;
        let (shape, strides) = (&self.layout.shape, &self.layout.strides);
        let mut off = current;
        let mut d = shape.len();
        loop {
            if d == 0 {
                self.next = None;
                break;
            }
            d -= 1;
            self.index[d] += 1;
            if self.index[d] < shape[d] {
                off += strides[d];
                self.next = Some(off);
                break;
            }
            off -= (shape[d] - 1) * strides[d];
            self.index[d] = 0;
        }
        Some(current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    #[test]
    fn transpose_offsets() {
        let l = Layout::contiguous(&[2, 3]).transpose(0, 1);
        assert_eq!(l.offsets().collect::<Vec<_>>(), [0, 3, 1, 4, 2, 5]);
        assert!(!l.is_contiguous());
    }

    #[test]
    fn reshape_of_views() {
        let l = Layout::contiguous(&[4, 6]).narrow(1, 0, 3).unwrap();
        // [4, 3] with strides [6, 1]: splitting dim 0 is fine, merging the dims is not.
        let r = l.reshape(&[2, 2, 3]).unwrap();
        assert_eq!(r.strides(), &[12, 6, 1]);
        assert!(l.reshape(&[12]).is_none());
        let t = Layout::contiguous(&[2, 3, 4]).permute(&[2, 0, 1]).unwrap();
        assert!(t.reshape(&[4, 6]).is_some());
        assert!(t.reshape(&[8, 3]).is_none());
    }

    #[test]
    fn slices_with_steps() {
        let l = Layout::contiguous(&[10]).slice(0, 1, 10, 3).unwrap();
        assert_eq!(l.offsets().collect::<Vec<_>>(), [1, 4, 7]);
    }

    #[test]
    fn broadcast_and_unsqueeze() {
        let l = Layout::contiguous(&[3]).broadcast_to(&[2, 3]).unwrap();
        assert_eq!(l.offsets().collect::<Vec<_>>(), [0, 1, 2, 0, 1, 2]);
        assert!(l.has_zero_stride());
        assert!(Layout::contiguous(&[3]).broadcast_to(&[2, 4]).is_err());
        assert_eq!(Layout::contiguous(&[2, 3]).unsqueeze(1).shape(), &[2, 1, 3]);
    }
}
