//! Indexing by tensors of I64 indices (PyTorch: `index_select`, `gather`, `scatter_add`).

pub(crate) mod cpu;

use crate::backend::Backend;
use crate::{Result, Tensor};

impl<B: Backend> Tensor<B> {
    /// `out[.., i, ..] = self[.., index[i], ..]` along `axis`; `index` is 1-D I64
    /// (PyTorch: `index_select`). Out-of-range indices are an error.
    pub fn index_select(&self, axis: isize, index: &Self) -> Result<Self> {
        let _ = (axis, index);
        Err(crate::Error::Unsupported {
            op: "index_select",
            backend: "any",
            msg: "being written".into(),
        })
    }

    /// `out[p] = self[p with p[axis] = index[p]]`; `index` is I64 of the same rank as `self`
    /// and the output has its shape (PyTorch: `torch.gather`).
    pub fn gather(&self, axis: isize, index: &Self) -> Result<Self> {
        let _ = (axis, index);
        Err(crate::Error::Unsupported {
            op: "gather",
            backend: "any",
            msg: "being written".into(),
        })
    }

    /// A copy of `self` with `src[p]` added at `p with p[axis] = index[p]` for every position
    /// `p` of `index` (PyTorch: `self.scatter_add(axis, index, src)`, out of place).
    pub fn scatter_add(&self, axis: isize, index: &Self, src: &Self) -> Result<Self> {
        let _ = (axis, index, src);
        Err(crate::Error::Unsupported {
            op: "scatter_add",
            backend: "any",
            msg: "being written".into(),
        })
    }
}
