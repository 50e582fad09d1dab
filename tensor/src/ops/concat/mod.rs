//! Joining and splitting along an axis (PyTorch: `torch.cat`, `torch.stack`, `split`, `chunk`).
//!
//! `cat` and `stack` are composites of two primitives: the output is allocated with
//! [`Backend::full`] and each input is written into its slot with [`Backend::copy_into`]
//! through a narrowed layout of the output, so a backend needs no concat kernel. The split
//! family returns views that share the input's storage.

use crate::backend::Backend;
use crate::layout::Layout;
use crate::shape::{normalize_axis, numel};
use crate::{Result, Tensor};
use alloc::vec::Vec;

impl<B: Backend> Tensor<B> {
    /// Concatenates along `axis`; all other dims must match (PyTorch: `torch.cat`).
    /// Tensors may be empty along `axis`; scalars cannot be concatenated.
    pub fn cat(tensors: &[Self], axis: isize) -> Result<Self> {
        let op = "cat";
        let Some(first) = tensors.first() else {
            return Err(crate::arg_err!(op, "needs at least one tensor, got none"));
        };
        if first.rank() == 0 {
            return Err(crate::shape_err!(
                op,
                "cannot concatenate scalars (use stack)"
            ));
        }
        let a = normalize_axis(op, axis, first.rank())?;
        let mut total = 0usize;
        for (k, t) in tensors.iter().enumerate() {
            first.check_same_backend(op, t)?;
            first.check_same_dtype(op, t)?;
            let same = t.rank() == first.rank()
                && (0..t.rank()).all(|d| d == a || t.shape()[d] == first.shape()[d]);
            if !same {
                return Err(crate::shape_err!(
                    op,
                    "tensor {k} has shape {:?}, incompatible with {:?} outside dim {a}",
                    t.shape(),
                    first.shape()
                ));
            }
            total = total
                .checked_add(t.shape()[a])
                .ok_or_else(|| crate::shape_err!(op, "the concatenated dim {a} overflows usize"))?;
        }
        let mut shape = first.shape().to_vec();
        shape[a] = total;
        // A shape too large to describe is an error here, before any allocation.
        Layout::try_contiguous(op, &shape)?;
        let b = first.backend();
        // The fill value is never observed: every element is overwritten below.
        let mut out = b.full(numel(&shape), 0.0, first.dtype())?;
        let out_layout = Layout::contiguous(&shape);
        let mut start = 0;
        for t in tensors {
            let len = t.shape()[a];
            if len > 0 {
                let dst = out_layout.narrow(a, start, len)?;
                b.copy_into(t.storage(), t.layout(), &mut out, &dst)?;
            }
            start += len;
        }
        Ok(Self::from_storage(out, &shape, b))
    }

    /// Stacks equal-shaped tensors along a new `axis` in `-(rank+1)..=rank`
    /// (PyTorch: `torch.stack`).
    pub fn stack(tensors: &[Self], axis: isize) -> Result<Self> {
        let op = "stack";
        let Some(first) = tensors.first() else {
            return Err(crate::arg_err!(op, "needs at least one tensor, got none"));
        };
        let a = normalize_axis(op, axis, first.rank() + 1)?;
        let mut expanded = Vec::with_capacity(tensors.len());
        for (k, t) in tensors.iter().enumerate() {
            if t.shape() != first.shape() {
                return Err(crate::shape_err!(
                    op,
                    "tensor {k} has shape {:?}, expected {:?} like tensor 0",
                    t.shape(),
                    first.shape()
                ));
            }
            expanded.push(t.unsqueeze(a as isize)?);
        }
        Self::cat(&expanded, a as isize).map_err(|e| rename(e, op))
    }

    /// Views of consecutive pieces of `size` along `axis`; the last may be smaller
    /// (PyTorch: `split(int)`). A dim of size 0 gives one empty piece; `size` may be 0 only
    /// then.
    pub fn split(&self, size: usize, axis: isize) -> Result<Vec<Self>> {
        let op = "split";
        let a = normalize_axis(op, axis, self.rank())?;
        let dim = self.shape()[a];
        if size == 0 && dim > 0 {
            return Err(crate::arg_err!(
                op,
                "split size can only be 0 if the dim is empty, but dim {a} of {:?} has size {dim}",
                self.shape()
            ));
        }
        if dim == 0 {
            return Ok(alloc::vec![self.clone()]);
        }
        (0..dim)
            .step_by(size)
            .map(|start| self.narrow(a as isize, start, size.min(dim - start)))
            .collect()
    }

    /// Views of pieces with the given sizes along `axis`; the sizes must sum to the dim
    /// (PyTorch: `split(list)`).
    pub fn split_sizes(&self, sizes: &[usize], axis: isize) -> Result<Vec<Self>> {
        let op = "split";
        let a = normalize_axis(op, axis, self.rank())?;
        let dim = self.shape()[a];
        let sum = sizes.iter().try_fold(0usize, |acc, &s| acc.checked_add(s));
        if sum != Some(dim) {
            return Err(crate::shape_err!(
                op,
                "sizes {sizes:?} do not sum to dim {a} of {:?} (size {dim})",
                self.shape()
            ));
        }
        let mut start = 0;
        let mut out = Vec::with_capacity(sizes.len());
        for &s in sizes {
            out.push(self.narrow(a as isize, start, s)?);
            start += s;
        }
        Ok(out)
    }

    /// Up to `n` views along `axis`, each of `ceil(dim / n)` elements but the last (PyTorch:
    /// `chunk`; like it, this may return fewer than `n` pieces, e.g. 5 elements in 4 chunks
    /// gives sizes 2, 2, 1). An empty dim gives `n` empty pieces.
    pub fn chunk(&self, n: usize, axis: isize) -> Result<Vec<Self>> {
        let op = "chunk";
        if n == 0 {
            return Err(crate::arg_err!(op, "the number of chunks must be positive"));
        }
        let a = normalize_axis(op, axis, self.rank())?;
        let dim = self.shape()[a];
        if dim == 0 {
            return Ok(alloc::vec![self.clone(); n]);
        }
        self.split(dim.div_ceil(n), axis)
    }
}

/// Reports an error of the inner `cat` under the caller's op name.
fn rename(e: crate::Error, op: &'static str) -> crate::Error {
    use crate::Error;
    match e {
        Error::Shape { msg, .. } => Error::Shape { op, msg },
        Error::DType { msg, .. } => Error::DType { op, msg },
        Error::Backend { msg, .. } => Error::Backend { op, msg },
        Error::Argument { msg, .. } => Error::Argument { op, msg },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use crate::{Cpu, DType, Error, Tensor};
    use alloc::format;
    use alloc::vec;
    use alloc::vec::Vec;

    fn arange(n: usize, shape: &[usize]) -> Tensor<Cpu> {
        Tensor::arange(n, DType::F32, &Cpu)
            .unwrap()
            .reshape(shape)
            .unwrap()
    }
    fn vals(t: &Tensor<Cpu>) -> Vec<f64> {
        t.to_f64_vec().unwrap()
    }

    #[test]
    fn cat_along_each_axis() {
        let a = arange(4, &[2, 2]);
        let b = arange(2, &[1, 2]).affine(1.0, 10.0).unwrap();
        let r = Tensor::cat(&[a.clone(), b], 0).unwrap();
        assert_eq!(r.shape(), &[3, 2]);
        assert_eq!(vals(&r), vec![0., 1., 2., 3., 10., 11.]);
        let c = arange(2, &[2, 1]).affine(1.0, 20.0).unwrap();
        let r = Tensor::cat(&[a.clone(), c], -1).unwrap();
        assert_eq!(vals(&r), vec![0., 1., 20., 2., 3., 21.]);
        // Empty pieces along the axis are allowed.
        let e = Tensor::zeros(&[0, 2], DType::F32, &Cpu).unwrap();
        let r = Tensor::cat(&[e.clone(), a.clone(), e], 0).unwrap();
        assert_eq!(vals(&r), vals(&a));
    }

    #[test]
    fn cat_of_views() {
        // Transposed, broadcast and sliced inputs, in I64.
        let a = arange(6, &[2, 3]).t().unwrap(); // [[0,3],[1,4],[2,5]]
        let b = arange(2, &[1, 2]).broadcast_to(&[2, 2]).unwrap();
        let c = arange(8, &[4, 2]).slice(0, 1, 4, 2).unwrap(); // rows 1 and 3
        let to_i = |t: Tensor<Cpu>| t.to_dtype(DType::I64).unwrap();
        let r = Tensor::cat(&[a, b, c], 0).unwrap();
        assert_eq!(
            to_i(r).to_vec::<i64>().unwrap(),
            vec![0, 3, 1, 4, 2, 5, 0, 1, 0, 1, 2, 3, 6, 7]
        );
    }

    #[test]
    fn stack_inserts_a_dim() {
        let a = arange(3, &[3]);
        let b = arange(3, &[3]).affine(1.0, 10.0).unwrap();
        let r = Tensor::stack(&[a.clone(), b.clone()], 0).unwrap();
        assert_eq!(r.shape(), &[2, 3]);
        assert_eq!(vals(&r), vec![0., 1., 2., 10., 11., 12.]);
        let r = Tensor::stack(&[a.clone(), b.clone()], -1).unwrap();
        assert_eq!(r.shape(), &[3, 2]);
        assert_eq!(vals(&r), vec![0., 10., 1., 11., 2., 12.]);
        // Scalars stack into a vector.
        let s = Tensor::scalar(5.0, DType::F64, &Cpu).unwrap();
        let r = Tensor::stack(&[s.clone(), s], 0).unwrap();
        assert_eq!(r.shape(), &[2]);
        let e = Tensor::stack(&[a.clone(), arange(2, &[2])], 0).unwrap_err();
        assert!(format!("{e}").starts_with("stack: shape error: tensor 1 has shape [2]"));
        assert!(matches!(
            Tensor::stack(&[a], 2).unwrap_err(),
            Error::Axis { .. }
        ));
    }

    #[test]
    fn cat_errors() {
        let a = arange(4, &[2, 2]);
        let e = Tensor::<Cpu>::cat(&[], 0).unwrap_err();
        assert!(matches!(e, Error::Argument { op: "cat", .. }));
        let e = Tensor::cat(&[a.clone(), arange(3, &[1, 3])], 0).unwrap_err();
        assert!(format!("{e}").contains("tensor 1 has shape [1, 3]"));
        let e = Tensor::cat(&[a.clone(), arange(2, &[2])], 0).unwrap_err();
        assert!(matches!(e, Error::Shape { .. }));
        let f64a = a.to_dtype(DType::F64).unwrap();
        let e = Tensor::cat(&[a.clone(), f64a], 0).unwrap_err();
        assert!(matches!(e, Error::DType { op: "cat", .. }));
        assert!(matches!(
            Tensor::cat(core::slice::from_ref(&a), 2).unwrap_err(),
            Error::Axis { .. }
        ));
        let s = Tensor::scalar(1.0, DType::F32, &Cpu).unwrap();
        assert!(Tensor::cat(&[s], 0).is_err());
    }

    #[test]
    fn split_and_chunk_are_views() {
        let x = arange(10, &[5, 2]);
        let parts = x.split(2, 0).unwrap();
        let shapes: Vec<&[usize]> = parts.iter().map(|p| p.shape()).collect();
        assert_eq!(shapes, vec![&[2, 2][..], &[2, 2], &[1, 2]]);
        assert!(parts.iter().all(|p| p.shares_storage_with(&x)));
        assert_eq!(vals(&parts[2]), vec![8., 9.]);
        let parts = x.split_sizes(&[1, 0, 4], 0).unwrap();
        assert_eq!(parts[1].shape(), &[0, 2]);
        assert_eq!(vals(&parts[2]), vec![2., 3., 4., 5., 6., 7., 8., 9.]);
        // torch.arange(5).chunk(4) has sizes 2, 2, 1; arange(6).chunk(4) has 2, 2, 2.
        let sizes = |n: usize, k: usize| -> Vec<usize> {
            arange(n, &[n])
                .chunk(k, 0)
                .unwrap()
                .iter()
                .map(|p| p.shape()[0])
                .collect()
        };
        assert_eq!(sizes(5, 4), vec![2, 2, 1]);
        assert_eq!(sizes(6, 4), vec![2, 2, 2]);
        assert_eq!(sizes(3, 5), vec![1, 1, 1]);
        assert_eq!(sizes(0, 3), vec![0, 0, 0]);
        // Splitting a transposed view along its last axis.
        let cols = x.t().unwrap().chunk(2, -1).unwrap();
        assert_eq!(cols[1].shape(), &[2, 2]);
        assert_eq!(vals(&cols[1]), vec![6., 8., 7., 9.]);
        // Round trip: cat(split(x)) == x.
        let back = Tensor::cat(&x.split(3, 1).unwrap(), 1).unwrap();
        assert_eq!(vals(&back), vals(&x));
    }

    #[test]
    fn split_errors_and_empty_dims() {
        let x = arange(6, &[6]);
        assert!(matches!(
            x.split(0, 0).unwrap_err(),
            Error::Argument { op: "split", .. }
        ));
        let e = x.split_sizes(&[2, 3], 0).unwrap_err();
        assert!(format!("{e}").contains("do not sum to dim 0"));
        assert!(x.split_sizes(&[usize::MAX, 7], 0).is_err());
        assert!(matches!(x.chunk(0, 0).unwrap_err(), Error::Argument { .. }));
        assert!(matches!(x.split(1, 1).unwrap_err(), Error::Axis { .. }));
        let e = Tensor::zeros(&[0], DType::F32, &Cpu).unwrap();
        assert_eq!(e.split(0, 0).unwrap().len(), 1);
        assert_eq!(e.split(2, 0).unwrap().len(), 1);
    }
}
