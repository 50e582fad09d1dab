//! CPU bicubic interpolation (stub, being written).
use crate::backend::ResizeParams;
use crate::layout::Layout;
use crate::{HostBuffer, Result};

fn todo(op: &'static str) -> crate::Error {
    crate::Error::Unsupported {
        op,
        backend: "cpu",
        msg: "not yet implemented".into(),
    }
}
pub(crate) fn upsample_bicubic2d(
    _x: &HostBuffer,
    _l: &Layout,
    _p: &ResizeParams,
) -> Result<HostBuffer> {
    Err(todo("upsample_bicubic2d"))
}
pub(crate) fn upsample_bicubic2d_backward(
    _x: &HostBuffer,
    _l: &Layout,
    _p: &ResizeParams,
) -> Result<HostBuffer> {
    Err(todo("upsample_bicubic2d_backward"))
}
