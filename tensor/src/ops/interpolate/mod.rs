//! Bicubic resizing of NCHW tensors with PyTorch's semantics (`F.interpolate(mode="bicubic")`),
//! which DINO uses to resize positional embeddings to another input size.

pub(crate) mod cpu;

use crate::backend::Backend;
pub use crate::backend::ResizeParams;
use crate::{Result, Tensor};

impl<B: Backend> Tensor<B> {
    /// Builds the geometry from either an output `size` or a `scale_factor` (exactly one;
    /// with a scale, the output size is `floor(in * scale)` and the scale itself drives the
    /// coordinate mapping, as in PyTorch without `recompute_scale_factor`).
    pub fn resize_params(
        &self,
        size: Option<[usize; 2]>,
        scale_factor: Option<[f64; 2]>,
        align_corners: bool,
    ) -> Result<ResizeParams> {
        let _ = (size, scale_factor, align_corners);
        Err(crate::Error::Unsupported {
            op: "interpolate_bicubic",
            backend: "any",
            msg: "being written".into(),
        })
    }

    /// Bicubic interpolation (cubic coefficient -0.75, borders clamped).
    pub fn interpolate_bicubic(
        &self,
        size: Option<[usize; 2]>,
        scale_factor: Option<[f64; 2]>,
        align_corners: bool,
    ) -> Result<Self> {
        let _ = (size, scale_factor, align_corners);
        Err(crate::Error::Unsupported {
            op: "interpolate_bicubic",
            backend: "any",
            msg: "being written".into(),
        })
    }

    /// The input gradient of bicubic interpolation: `self` is the output gradient.
    pub fn interpolate_bicubic_backward(&self, p: &ResizeParams) -> Result<Self> {
        let _ = p;
        Err(crate::Error::Unsupported {
            op: "interpolate_bicubic_backward",
            backend: "any",
            msg: "being written".into(),
        })
    }
}
