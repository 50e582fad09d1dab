//! CPU pooling kernels (stub, being written).
use crate::backend::PoolParams;
use crate::layout::Layout;
use crate::{HostBuffer, Result};

fn todo(op: &'static str) -> crate::Error {
    crate::Error::Unsupported {
        op,
        backend: "cpu",
        msg: "not yet implemented".into(),
    }
}
pub(crate) fn max_pool2d(
    _x: &HostBuffer,
    _l: &Layout,
    _p: &PoolParams,
) -> Result<(HostBuffer, HostBuffer)> {
    Err(todo("max_pool2d"))
}
pub(crate) fn avg_pool2d(_x: &HostBuffer, _l: &Layout, _p: &PoolParams) -> Result<HostBuffer> {
    Err(todo("avg_pool2d"))
}
pub(crate) fn avg_pool2d_backward(
    _x: &HostBuffer,
    _l: &Layout,
    _p: &PoolParams,
) -> Result<HostBuffer> {
    Err(todo("avg_pool2d_backward"))
}
pub(crate) fn adaptive_avg_pool2d(
    _x: &HostBuffer,
    _l: &Layout,
    _o: [usize; 2],
) -> Result<HostBuffer> {
    Err(todo("adaptive_avg_pool2d"))
}
pub(crate) fn adaptive_avg_pool2d_backward(
    _x: &HostBuffer,
    _l: &Layout,
    _i: [usize; 2],
) -> Result<HostBuffer> {
    Err(todo("adaptive_avg_pool2d_backward"))
}
