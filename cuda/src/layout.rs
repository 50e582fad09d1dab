//! The layout a kernel sees: `TsLayout` of `kernels/common.cuh`, with the same field order
//! (`#[repr(C)]`), built from a [`Layout`].
//!
//! Elementwise kernels index every operand with the same row-major position, so dims can be
//! merged when they are contiguous with each other *in every operand* (a contiguous tensor
//! becomes rank 1, a transposed matrix stays rank 2). Merging keeps views of any rank within
//! the kernels' fixed [`MAX_DIMS`].

use tessera_tensor::{Error, Layout, Result};

/// The most dims a kernel layout holds (`TS_MAX_DIMS`).
pub const MAX_DIMS: usize = 8;

/// A strided view as the kernels read it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelLayout {
    rank: i32,
    pad: i32,
    offset: i64,
    shape: [i64; MAX_DIMS],
    strides: [i64; MAX_DIMS],
}

fn too_big(op: &'static str, what: &str) -> Error {
    Error::Unsupported {
        op,
        backend: "cuda",
        msg: format!("{what} does not fit the kernels' 64-bit signed index arithmetic"),
    }
}

impl KernelLayout {
    /// The layout dim for dim (no merging); at most [`MAX_DIMS`] dims.
    pub fn exact(op: &'static str, l: &Layout) -> Result<Self> {
        Self::from_dims(op, l.shape(), l.strides(), l.offset())
    }

    fn from_dims(
        op: &'static str,
        shape: &[usize],
        strides: &[usize],
        offset: usize,
    ) -> Result<Self> {
        if shape.len() > MAX_DIMS {
            return Err(Error::Unsupported {
                op,
                backend: "cuda",
                msg: format!(
                    "a view of rank {} that cannot be merged to {MAX_DIMS} dims",
                    shape.len()
                ),
            });
        }
        let mut k = KernelLayout {
            rank: shape.len() as i32,
            pad: 0,
            offset: i64::try_from(offset).map_err(|_| too_big(op, "the offset"))?,
            shape: [1; MAX_DIMS],
            strides: [0; MAX_DIMS],
        };
        for (d, (&n, &s)) in shape.iter().zip(strides).enumerate() {
            k.shape[d] = i64::try_from(n).map_err(|_| too_big(op, "a dim"))?;
            k.strides[d] = i64::try_from(s).map_err(|_| too_big(op, "a stride"))?;
        }
        Ok(k)
    }

    /// Kernel layouts of views that share one shape, with dims merged where every view allows.
    pub fn merged<const N: usize>(op: &'static str, ls: [&Layout; N]) -> Result<[Self; N]> {
        let shape = ls[0].shape();
        let mut dims: Vec<usize> = Vec::with_capacity(shape.len());
        let mut strides: [Vec<usize>; N] = core::array::from_fn(|_| Vec::new());
        for (d, &n) in shape.iter().enumerate() {
            if n == 1 {
                continue; // a size-1 dim never moves the index
            }
            let mergeable = !dims.is_empty()
                && strides.iter().zip(&ls).all(|(s, l)| {
                    let prev = *s.last().expect("same length as dims");
                    Some(prev) == l.strides()[d].checked_mul(n)
                });
            if mergeable {
                *dims.last_mut().expect("non-empty") *= n;
                for (s, l) in strides.iter_mut().zip(&ls) {
                    *s.last_mut().expect("non-empty") = l.strides()[d];
                }
            } else {
                dims.push(n);
                for (s, l) in strides.iter_mut().zip(&ls) {
                    s.push(l.strides()[d]);
                }
            }
        }
        let mut out = [KernelLayout::from_dims(op, &[], &[], 0)?; N];
        for ((o, s), l) in out.iter_mut().zip(&strides).zip(&ls) {
            *o = Self::from_dims(op, &dims, s, l.offset())?;
        }
        Ok(out)
    }

    /// A contiguous layout of `numel` elements (rank 1).
    pub fn flat(op: &'static str, numel: usize) -> Result<Self> {
        Self::from_dims(op, &[numel], &[1], 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contiguous_views_merge_to_one_dim_and_transposes_do_not() {
        let c = Layout::contiguous(&[2, 3, 4]);
        let [k] = KernelLayout::merged("t", [&c]).unwrap();
        assert_eq!((k.rank, k.shape[0], k.strides[0]), (1, 24, 1));
        let t = Layout::contiguous(&[3, 4]).transpose(0, 1);
        let [a, b] = KernelLayout::merged("t", [&t, &Layout::contiguous(&[4, 3])]).unwrap();
        assert_eq!((a.rank, b.rank), (2, 2));
        assert_eq!(&a.strides[..2], &[1, 4]);
        assert_eq!(&b.strides[..2], &[3, 1]);
        // broadcast (stride 0) over the leading dim, contiguous rows: stays 2-D
        let bc = Layout::contiguous(&[1, 5]).broadcast_to(&[4, 5]).unwrap();
        let [x, y] = KernelLayout::merged("t", [&bc, &Layout::contiguous(&[4, 5])]).unwrap();
        assert_eq!((x.rank, y.rank), (2, 2));
        assert_eq!(&x.strides[..2], &[0, 1]);
    }

    #[test]
    fn too_many_unmergeable_dims_is_an_error_not_a_truncation() {
        let shape = [2usize; 9];
        let l = Layout::contiguous(&shape)
            .permute(&[8, 7, 6, 5, 4, 3, 2, 1, 0])
            .unwrap();
        assert!(KernelLayout::merged("t", [&l]).is_err());
    }
}
