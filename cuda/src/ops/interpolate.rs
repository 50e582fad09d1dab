//! Bicubic resampling and its adjoint (kernels: `kernels/interpolate.cu`).
//! CPU counterpart: `tensor/src/ops/interpolate/`. The backward pass is a gather (one thread
//! per input pixel), so it is deterministic.

use crate::driver::arg;
use crate::launch::{count, grid_stride, suffix};
use crate::layout::KernelLayout;
use crate::storage::{check_view, CudaStorage};
use crate::Cuda;
use tessera_tensor::{arg_err, shape_err, Error, Layout, ResizeParams, Result};

const MODULE: &str = "interpolate";

/// `TsResizeGeom` of interpolate.cu.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct Geom {
    c: i64,
    h: i64,
    w: i64,
    oh: i64,
    ow: i64,
    rh: f64,
    rw: f64,
    align_corners: i64,
}

/// Checks a `[n, c, have]` float view for a resize of `p`; returns the planes' shape and the
/// kernel geometry.
fn check(
    dev: &Cuda,
    op: &'static str,
    x: &CudaStorage,
    l: &Layout,
    p: &ResizeParams,
    have: [usize; 2],
) -> Result<([usize; 2], Geom)> {
    check_view(dev, op, x, l, None)?;
    if !x.dtype().is_float() {
        return Err(Error::DType {
            op,
            msg: format!("needs a float tensor, got {}", x.dtype()),
        });
    }
    let s = l.shape();
    if s.len() != 4 || s[2..] != have || p.in_hw.contains(&0) || p.out_hw.contains(&0) {
        return Err(shape_err!(
            op,
            "got {s:?} for a resize from {:?} to {:?} (sizes must be non-zero)",
            p.in_hw,
            p.out_hw
        ));
    }
    if p.in_hw
        .iter()
        .chain(&p.out_hw)
        .any(|&d| d > isize::MAX as usize)
    {
        return Err(arg_err!(op, "sizes {p:?} are too large"));
    }
    let g = Geom {
        c: count(op, s[1])?,
        h: count(op, p.in_hw[0])?,
        w: count(op, p.in_hw[1])?,
        oh: count(op, p.out_hw[0])?,
        ow: count(op, p.out_hw[1])?,
        rh: p.ratio(0),
        rw: p.ratio(1),
        align_corners: i64::from(p.align_corners),
    };
    Ok(([s[0], s[1]], g))
}

fn launch(
    dev: &Cuda,
    name: &str,
    l: &Layout,
    src: &CudaStorage,
    make: [usize; 2],
    nc: [usize; 2],
    g: &Geom,
) -> Result<CudaStorage> {
    let n = Layout::try_contiguous(name_op(name), &[nc[0], nc[1], make[0], make[1]])?.numel();
    let out = CudaStorage::uninit(dev, n, src.dtype())?;
    if n == 0 {
        return Ok(out);
    }
    let kl = KernelLayout::exact(name_op(name), l)?;
    let (sp, op, nn) = (src.base(), out.base(), count(name_op(name), n)?);
    let kernel = format!("ts_{name}_{}", suffix(src.dtype()));
    // SAFETY: `check` validated the rank-4 view against its storage and the geometry; taps
    // are clamped to the image and the kernel writes `n` output elements.
    unsafe {
        dev.inner.launch(
            MODULE,
            &kernel,
            &grid_stride(dev, n),
            &mut [arg(&kl), arg(&sp), arg(&op), arg(&nn), arg(g)],
        )?
    };
    Ok(out)
}

fn name_op(name: &str) -> &'static str {
    if name == "bicubic" {
        "upsample_bicubic2d"
    } else {
        "upsample_bicubic2d_backward"
    }
}

pub fn upsample_bicubic2d(
    dev: &Cuda,
    x: &CudaStorage,
    l: &Layout,
    p: &ResizeParams,
) -> Result<CudaStorage> {
    let (nc, g) = check(dev, "upsample_bicubic2d", x, l, p, p.in_hw)?;
    launch(dev, "bicubic", l, x, p.out_hw, nc, &g)
}

pub fn upsample_bicubic2d_backward(
    dev: &Cuda,
    g: &CudaStorage,
    l: &Layout,
    p: &ResizeParams,
) -> Result<CudaStorage> {
    let (nc, geom) = check(dev, "upsample_bicubic2d_backward", g, l, p, p.out_hw)?;
    launch(dev, "bicubic_backward", l, g, p.in_hw, nc, &geom)
}
