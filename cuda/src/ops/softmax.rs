//! Fused softmax and log-softmax with their backward (kernels: `kernels/softmax.cu`).
//! CPU counterpart: `tensor/src/ops/softmax/cpu.rs` (forward) and the composite defaults
//! (`tensor/src/backend/composite.rs`), whose math the kernels follow.
//!
//! Each operand is seen as rows along `axis`: a kept layout (merged) plus the stride along the
//! axis. A warp handles rows of up to 1024 elements, a block longer ones, and one thread per
//! row serves the case where the axis is strided but the rows are contiguous with each other.
//! Anything the kernels do not take (a view that does not fit the kernel layouts, mixed
//! shapes or dtypes) goes to the composite default.

use crate::device::DeviceKind;
use crate::driver::{arg, LaunchConfig};
use crate::launch::{count, grid_stride, suffix};
use crate::layout::KernelLayout;
use crate::storage::{check_view, CudaStorage};
use crate::Cuda;
use std::sync::Arc;
use tessera_tensor::backend::composite;
use tessera_tensor::{Layout, Result, Tensor};

const MODULE: &str = "softmax";

/// A view as rows along `axis`: the kept dims' kernel layout (with the view's offset) and the
/// stride along the axis. `None` if the kept dims do not fit a kernel layout.
pub(crate) fn rows_along(op: &'static str, l: &Layout, axis: usize) -> Option<(KernelLayout, i64)> {
    let mut shape = l.shape().to_vec();
    let mut strides = l.strides().to_vec();
    shape.remove(axis);
    let s = strides.remove(axis);
    let kept = Layout::from_parts(&shape, &strides, l.offset());
    let [k] = KernelLayout::merged(op, [&kept]).ok()?;
    Some((k, i64::try_from(s).ok()?))
}

/// True if the rows of `l` along `axis` are better read one thread per row: the axis is
/// strided and the innermost kept dim (of size > 1) is contiguous.
pub(crate) fn by_column(l: &Layout, axis: usize) -> bool {
    let inner = (0..l.rank())
        .rev()
        .find(|&d| d != axis && l.shape()[d] > 1)
        .map(|d| l.strides()[d]);
    l.shape()[axis] > 1 && l.strides()[axis] != 1 && inner == Some(1)
}

/// The launch of a row kernel: its variant and configuration.
pub(crate) fn row_launch(
    dev: &Cuda,
    column: bool,
    rows: usize,
    n: usize,
) -> (&'static str, LaunchConfig) {
    let cap = match dev.kind() {
        DeviceKind::Gpu(_) => 65_535,
        DeviceKind::Sim => 8,
    };
    let cfg = |blocks: usize, threads: u32| LaunchConfig {
        grid: [blocks.clamp(1, cap) as u32, 1, 1],
        block: [threads, 1, 1],
        shared_bytes: 0,
    };
    if column {
        ("col", grid_stride(dev, rows))
    } else if n <= 1024 {
        ("warp", cfg(rows.div_ceil(8), 256))
    } else {
        ("block", cfg(rows, if n <= 4096 { 256 } else { 512 }))
    }
}

fn forward(dev: &Cuda, x: &Tensor<Cuda>, axis: usize, log: bool) -> Result<Option<Tensor<Cuda>>> {
    const OP: &str = "softmax";
    let (xs, l) = (x.storage(), x.layout());
    check_view(dev, OP, xs, l, None)?;
    if !x.dtype().is_float() || axis >= l.rank() {
        return Ok(None);
    }
    let out_l = Layout::contiguous(l.shape());
    let out = CudaStorage::uninit(dev, l.numel(), x.dtype())?;
    let n = l.shape()[axis];
    if l.numel() > 0 {
        let (Some((xk, xst)), Some((ok, ost))) =
            (rows_along(OP, l, axis), rows_along(OP, &out_l, axis))
        else {
            return Ok(None);
        };
        let rows = l.numel() / n;
        let (variant, cfg) = row_launch(dev, by_column(l, axis), rows, n);
        let (xp, op, nrows, nn, lm) = (
            xs.base(),
            out.base(),
            count(OP, rows)?,
            count(OP, n)?,
            log as i32,
        );
        // SAFETY: the view was checked against its storage; the output holds numel elements.
        unsafe {
            dev.inner.launch(
                MODULE,
                &format!("ts_softmax_{variant}_{}", suffix(x.dtype())),
                &cfg,
                &mut [
                    arg(&xk),
                    arg(&xst),
                    arg(&xp),
                    arg(&ok),
                    arg(&ost),
                    arg(&op),
                    arg(&nrows),
                    arg(&nn),
                    arg(&lm),
                ],
            )?;
        }
    }
    Ok(Some(Tensor::from_parts(Arc::new(out), out_l, dev.clone())?))
}

fn backward(
    dev: &Cuda,
    y: &Tensor<Cuda>,
    g: &Tensor<Cuda>,
    axis: usize,
    log: bool,
) -> Result<Option<Tensor<Cuda>>> {
    const OP: &str = "softmax_backward";
    let (ys, yl, gs, gl) = (y.storage(), y.layout(), g.storage(), g.layout());
    check_view(dev, OP, ys, yl, None)?;
    check_view(dev, OP, gs, gl, Some(y.dtype()))?;
    if !y.dtype().is_float() || axis >= yl.rank() || yl.shape() != gl.shape() {
        return Ok(None);
    }
    let out_l = Layout::contiguous(yl.shape());
    let out = CudaStorage::uninit(dev, yl.numel(), y.dtype())?;
    let n = yl.shape()[axis];
    if yl.numel() > 0 {
        let (Some((yk, yst)), Some((gk, gst)), Some((ok, ost))) = (
            rows_along(OP, yl, axis),
            rows_along(OP, gl, axis),
            rows_along(OP, &out_l, axis),
        ) else {
            return Ok(None);
        };
        let rows = yl.numel() / n;
        let (variant, cfg) = row_launch(dev, by_column(yl, axis), rows, n);
        let (yp, gp, op) = (ys.base(), gs.base(), out.base());
        let (nrows, nn, lm) = (count(OP, rows)?, count(OP, n)?, log as i32);
        // SAFETY: both views were checked against their storages; the output holds numel.
        unsafe {
            dev.inner.launch(
                MODULE,
                &format!("ts_softmax_bwd_{variant}_{}", suffix(y.dtype())),
                &cfg,
                &mut [
                    arg(&yk),
                    arg(&yst),
                    arg(&yp),
                    arg(&gk),
                    arg(&gst),
                    arg(&gp),
                    arg(&ok),
                    arg(&ost),
                    arg(&op),
                    arg(&nrows),
                    arg(&nn),
                    arg(&lm),
                ],
            )?;
        }
    }
    Ok(Some(Tensor::from_parts(Arc::new(out), out_l, dev.clone())?))
}

pub fn softmax(dev: &Cuda, x: &Tensor<Cuda>, axis: usize) -> Result<Tensor<Cuda>> {
    match forward(dev, x, axis, false)? {
        Some(t) => Ok(t),
        None => composite::softmax(x, axis),
    }
}

pub fn log_softmax(dev: &Cuda, x: &Tensor<Cuda>, axis: usize) -> Result<Tensor<Cuda>> {
    match forward(dev, x, axis, true)? {
        Some(t) => Ok(t),
        None => composite::log_softmax(x, axis),
    }
}

pub fn softmax_backward(
    dev: &Cuda,
    y: &Tensor<Cuda>,
    grad: &Tensor<Cuda>,
    axis: usize,
) -> Result<Tensor<Cuda>> {
    match backward(dev, y, grad, axis, false)? {
        Some(t) => Ok(t),
        None => composite::softmax_backward(y, grad, axis),
    }
}

pub fn log_softmax_backward(
    dev: &Cuda,
    y: &Tensor<Cuda>,
    grad: &Tensor<Cuda>,
    axis: usize,
) -> Result<Tensor<Cuda>> {
    match backward(dev, y, grad, axis, true)? {
        Some(t) => Ok(t),
        None => composite::log_softmax_backward(y, grad, axis),
    }
}
