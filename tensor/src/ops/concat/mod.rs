//! Joining and splitting along an axis (PyTorch: `torch.cat`, `torch.stack`, `split`, `chunk`).

use crate::backend::Backend;
use crate::{Result, Tensor};
use alloc::vec::Vec;

impl<B: Backend> Tensor<B> {
    /// Concatenates along `axis`; all other dims must match (PyTorch: `torch.cat`).
    pub fn cat(tensors: &[Self], axis: isize) -> Result<Self> {
        let _ = (tensors, axis);
        Err(crate::Error::Unsupported {
            op: "cat",
            backend: "any",
            msg: "being written".into(),
        })
    }

    /// Stacks equal-shaped tensors along a new `axis` (PyTorch: `torch.stack`).
    pub fn stack(tensors: &[Self], axis: isize) -> Result<Self> {
        let _ = (tensors, axis);
        Err(crate::Error::Unsupported {
            op: "stack",
            backend: "any",
            msg: "being written".into(),
        })
    }

    /// Views of consecutive pieces of `size` along `axis`; the last may be smaller
    /// (PyTorch: `split(int)`).
    pub fn split(&self, size: usize, axis: isize) -> Result<Vec<Self>> {
        let _ = (size, axis);
        Err(crate::Error::Unsupported {
            op: "split",
            backend: "any",
            msg: "being written".into(),
        })
    }

    /// Views of pieces with the given sizes along `axis` (PyTorch: `split(list)`).
    pub fn split_sizes(&self, sizes: &[usize], axis: isize) -> Result<Vec<Self>> {
        let _ = (sizes, axis);
        Err(crate::Error::Unsupported {
            op: "split",
            backend: "any",
            msg: "being written".into(),
        })
    }

    /// `n` nearly equal views along `axis` (PyTorch: `chunk`).
    pub fn chunk(&self, n: usize, axis: isize) -> Result<Vec<Self>> {
        let _ = (n, axis);
        Err(crate::Error::Unsupported {
            op: "chunk",
            backend: "any",
            msg: "being written".into(),
        })
    }
}
