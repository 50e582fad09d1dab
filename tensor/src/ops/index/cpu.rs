//! CPU kernels for index_select, gather and scatter_add (stub, being written).
use crate::layout::Layout;
use crate::{HostBuffer, Result};

fn todo(op: &'static str) -> crate::Error {
    crate::Error::Unsupported {
        op,
        backend: "cpu",
        msg: "not yet implemented".into(),
    }
}
pub(crate) fn index_select(
    _x: &HostBuffer,
    _l: &Layout,
    _axis: usize,
    _i: &HostBuffer,
    _il: &Layout,
) -> Result<HostBuffer> {
    Err(todo("index_select"))
}
pub(crate) fn gather(
    _x: &HostBuffer,
    _l: &Layout,
    _axis: usize,
    _i: &HostBuffer,
    _il: &Layout,
) -> Result<HostBuffer> {
    Err(todo("gather"))
}
pub(crate) fn scatter_add(
    _d: &mut HostBuffer,
    _ds: &[usize],
    _axis: usize,
    _i: &HostBuffer,
    _il: &Layout,
    _s: &HostBuffer,
    _sl: &Layout,
) -> Result<()> {
    Err(todo("scatter_add"))
}
