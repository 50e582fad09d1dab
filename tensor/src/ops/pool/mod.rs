//! Max, average and adaptive average pooling over NCHW (PyTorch: `F.max_pool2d`,
//! `F.avg_pool2d`, `F.adaptive_avg_pool2d`), with the adjoints their backward passes need.

pub(crate) mod cpu;

use crate::backend::Backend;
pub use crate::backend::PoolParams;
use crate::{Result, Tensor};

/// Kernel, stride, padding and dilation of a pooling window (PyTorch's keyword arguments;
/// floor mode). `count_include_pad` applies to average pooling only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool2dOptions {
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    pub dilation: [usize; 2],
    pub count_include_pad: bool,
}

impl Pool2dOptions {
    /// A square window: kernel `k`, stride `s`, padding `p`, dilation 1, padding counted.
    pub fn new(kernel: usize, stride: usize, padding: usize) -> Self {
        Pool2dOptions {
            kernel: [kernel; 2],
            stride: [stride; 2],
            padding: [padding; 2],
            dilation: [1, 1],
            count_include_pad: true,
        }
    }
}

impl<B: Backend> Tensor<B> {
    /// Validates a `[n, c, h, w]` input and builds the pooling geometry.
    pub fn pool2d_params(&self, o: &Pool2dOptions) -> Result<PoolParams> {
        let _ = o;
        Err(crate::Error::Unsupported {
            op: "pool2d",
            backend: "any",
            msg: "being written".into(),
        })
    }

    /// Max pooling; returns `(values, indices)` where each index (I64) is the flat position
    /// `y*w + x` of the maximum in its input plane, as PyTorch's `return_indices=True`.
    pub fn max_pool2d(&self, o: &Pool2dOptions) -> Result<(Self, Self)> {
        let _ = o;
        Err(crate::Error::Unsupported {
            op: "max_pool2d",
            backend: "any",
            msg: "being written".into(),
        })
    }

    /// The input gradient of max pooling: `self` is the output gradient `[n, c, oh, ow]`,
    /// `indices` what [`Tensor::max_pool2d`] returned; routes each gradient to its maximum.
    pub fn max_pool2d_backward(&self, indices: &Self, in_hw: [usize; 2]) -> Result<Self> {
        let _ = (indices, in_hw);
        Err(crate::Error::Unsupported {
            op: "max_pool2d_backward",
            backend: "any",
            msg: "being written".into(),
        })
    }

    /// Average pooling.
    pub fn avg_pool2d(&self, o: &Pool2dOptions) -> Result<Self> {
        let _ = o;
        Err(crate::Error::Unsupported {
            op: "avg_pool2d",
            backend: "any",
            msg: "being written".into(),
        })
    }

    /// The input gradient of average pooling: `self` is the output gradient.
    pub fn avg_pool2d_backward(&self, p: &PoolParams) -> Result<Self> {
        let _ = p;
        Err(crate::Error::Unsupported {
            op: "avg_pool2d_backward",
            backend: "any",
            msg: "being written".into(),
        })
    }

    /// Adaptive average pooling to `out_hw` (ResNet's global pool is `[1, 1]`).
    pub fn adaptive_avg_pool2d(&self, out_hw: [usize; 2]) -> Result<Self> {
        let _ = out_hw;
        Err(crate::Error::Unsupported {
            op: "adaptive_avg_pool2d",
            backend: "any",
            msg: "being written".into(),
        })
    }

    /// The input gradient of adaptive average pooling: `self` is the output gradient.
    pub fn adaptive_avg_pool2d_backward(&self, in_hw: [usize; 2]) -> Result<Self> {
        let _ = in_hw;
        Err(crate::Error::Unsupported {
            op: "adaptive_avg_pool2d_backward",
            backend: "any",
            msg: "being written".into(),
        })
    }
}
