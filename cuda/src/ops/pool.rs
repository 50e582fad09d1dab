//! Max, average and adaptive average pooling (kernels: `kernels/pool.cu`).
//! CPU counterpart: `tensor/src/ops/pool/`. The backward passes are gathers (one thread per
//! input pixel), so they are deterministic and equal to the CPU's sums bit for bit.

use crate::driver::arg;
use crate::launch::{count, grid_stride, suffix};
use crate::layout::KernelLayout;
use crate::storage::{check_view, CudaStorage};
use crate::Cuda;
use tessera_tensor::{arg_err, shape_err, DType, Error, Layout, PoolParams, Result};

const MODULE: &str = "pool";

/// `TsPoolGeom` of pool.cu.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct Geom {
    c: i64,
    h: i64,
    w: i64,
    oh: i64,
    ow: i64,
    kh: i64,
    kw: i64,
    sh: i64,
    sw: i64,
    ph: i64,
    pw: i64,
    dh: i64,
    dw: i64,
    count_include_pad: i64,
}

impl Geom {
    fn sizes(op: &'static str, c: usize, [h, w]: [usize; 2], [oh, ow]: [usize; 2]) -> Result<Self> {
        Ok(Geom {
            c: count(op, c)?,
            h: count(op, h)?,
            w: count(op, w)?,
            oh: count(op, oh)?,
            ow: count(op, ow)?,
            ..Default::default()
        })
    }

    fn pool(op: &'static str, c: usize, p: &PoolParams) -> Result<Self> {
        let g = Geom::sizes(op, c, p.in_hw, p.out_hw()?)?;
        let k = |v: usize| count(op, v);
        Ok(Geom {
            kh: k(p.kernel[0])?,
            kw: k(p.kernel[1])?,
            sh: k(p.stride[0])?,
            sw: k(p.stride[1])?,
            ph: k(p.padding[0])?,
            pw: k(p.padding[1])?,
            dh: k(p.dilation[0])?,
            dw: k(p.dilation[1])?,
            count_include_pad: i64::from(p.count_include_pad),
            ..g
        })
    }
}

/// A float view of shape `[n, c, hw]` on this device; returns `(n, c)`.
fn nchw(
    dev: &Cuda,
    op: &'static str,
    x: &CudaStorage,
    l: &Layout,
    hw: [usize; 2],
) -> Result<(usize, usize)> {
    check_view(dev, op, x, l, None)?;
    if !x.dtype().is_float() {
        return Err(Error::DType {
            op,
            msg: format!("needs a float tensor, got {}", x.dtype()),
        });
    }
    let s = l.shape();
    if s.len() != 4 || s[2..] != hw {
        return Err(shape_err!(
            op,
            "expected [n, c, {}, {}], got {s:?}",
            hw[0],
            hw[1]
        ));
    }
    Ok((s[0], s[1]))
}

/// The CPU kernels' parameter checks: a non-empty input and (average pooling) dilation 1.
fn check_params(op: &'static str, p: &PoolParams, avg: bool) -> Result<[usize; 2]> {
    if p.in_hw.contains(&0) {
        return Err(shape_err!(op, "input size {:?} must be non-zero", p.in_hw));
    }
    if avg && p.dilation != [1, 1] {
        return Err(arg_err!(op, "dilation {:?} must be 1", p.dilation));
    }
    p.out_hw()
}

fn check_adaptive(op: &'static str, in_hw: [usize; 2], out_hw: [usize; 2]) -> Result<()> {
    if in_hw.contains(&0) || out_hw.contains(&0) {
        return Err(shape_err!(
            op,
            "input size {in_hw:?} and output size {out_hw:?} must be non-zero"
        ));
    }
    // The bins compute `o * len`.
    for (&i, &o) in in_hw.iter().zip(&out_hw) {
        Layout::try_contiguous(op, &[i, o, 2])?;
    }
    Ok(())
}

/// Output elements of `[n, c, hw]`, with the product checked.
fn numel(op: &'static str, n: usize, c: usize, hw: [usize; 2]) -> Result<usize> {
    Ok(Layout::try_contiguous(op, &[n, c, hw[0], hw[1]])?.numel())
}

/// Launches `ts_<name>_<dtype>(layout, src, out, [idx,] n, geom, [adaptive])`.
#[allow(clippy::too_many_arguments)]
fn launch(
    dev: &Cuda,
    name: &str,
    l: &Layout,
    src: &CudaStorage,
    out: &CudaStorage,
    idx: Option<&CudaStorage>,
    n: usize,
    g: &Geom,
    adaptive: Option<i32>,
) -> Result<()> {
    let kl = KernelLayout::exact("pool", l)?;
    let (sp, op, nn) = (src.base(), out.base(), count("pool", n)?);
    let ip = idx.map(|i| i.base());
    let mut args = vec![arg(&kl), arg(&sp), arg(&op)];
    if let Some(ip) = &ip {
        args.push(arg(ip));
    }
    args.push(arg(&nn));
    args.push(arg(g));
    if let Some(a) = &adaptive {
        args.push(arg(a));
    }
    let kernel = format!("ts_{name}_{}", suffix(src.dtype()));
    // SAFETY: the callers checked the rank-4 view against its storage and its spatial size
    // against the geometry; the kernel reads only in-image positions and writes `n` outputs.
    unsafe {
        dev.inner
            .launch(MODULE, &kernel, &grid_stride(dev, n), &mut args)
    }
}

pub fn max_pool2d(
    dev: &Cuda,
    x: &CudaStorage,
    l: &Layout,
    p: &PoolParams,
) -> Result<(CudaStorage, CudaStorage)> {
    const OP: &str = "max_pool2d";
    let (n, c) = nchw(dev, OP, x, l, p.in_hw)?;
    let out_hw = check_params(OP, p, false)?;
    let g = Geom::pool(OP, c, p)?;
    let m = numel(OP, n, c, out_hw)?;
    let vals = CudaStorage::uninit(dev, m, x.dtype())?;
    let idx = CudaStorage::uninit(dev, m, DType::I64)?;
    if m > 0 {
        launch(dev, "max_pool2d", l, x, &vals, Some(&idx), m, &g, None)?;
    }
    Ok((vals, idx))
}

pub fn avg_pool2d(dev: &Cuda, x: &CudaStorage, l: &Layout, p: &PoolParams) -> Result<CudaStorage> {
    const OP: &str = "avg_pool2d";
    let (n, c) = nchw(dev, OP, x, l, p.in_hw)?;
    let out_hw = check_params(OP, p, true)?;
    let g = Geom::pool(OP, c, p)?;
    let m = numel(OP, n, c, out_hw)?;
    let out = CudaStorage::uninit(dev, m, x.dtype())?;
    if m > 0 {
        launch(dev, "avg_pool2d", l, x, &out, None, m, &g, Some(0))?;
    }
    Ok(out)
}

pub fn avg_pool2d_backward(
    dev: &Cuda,
    g: &CudaStorage,
    l: &Layout,
    p: &PoolParams,
) -> Result<CudaStorage> {
    const OP: &str = "avg_pool2d_backward";
    let out_hw = check_params(OP, p, true)?;
    let (n, c) = nchw(dev, OP, g, l, out_hw)?;
    let geom = Geom::pool(OP, c, p)?;
    let m = numel(OP, n, c, p.in_hw)?;
    let out = CudaStorage::uninit(dev, m, g.dtype())?;
    if m > 0 {
        launch(
            dev,
            "avg_pool2d_backward",
            l,
            g,
            &out,
            None,
            m,
            &geom,
            Some(0),
        )?;
    }
    Ok(out)
}

/// `[n, c, h, w]`'s spatial size, or `[0, 0]` when the rank is wrong (then `nchw` errs).
fn spatial(l: &Layout) -> [usize; 2] {
    let s = l.shape();
    if s.len() == 4 {
        [s[2], s[3]]
    } else {
        [0, 0]
    }
}

pub fn adaptive_avg_pool2d(
    dev: &Cuda,
    x: &CudaStorage,
    l: &Layout,
    out_hw: [usize; 2],
) -> Result<CudaStorage> {
    const OP: &str = "adaptive_avg_pool2d";
    let in_hw = spatial(l);
    let (n, c) = nchw(dev, OP, x, l, in_hw)?;
    check_adaptive(OP, in_hw, out_hw)?;
    let g = Geom::sizes(OP, c, in_hw, out_hw)?;
    let m = numel(OP, n, c, out_hw)?;
    let out = CudaStorage::uninit(dev, m, x.dtype())?;
    if m > 0 {
        launch(dev, "avg_pool2d", l, x, &out, None, m, &g, Some(1))?;
    }
    Ok(out)
}

pub fn adaptive_avg_pool2d_backward(
    dev: &Cuda,
    g: &CudaStorage,
    l: &Layout,
    in_hw: [usize; 2],
) -> Result<CudaStorage> {
    const OP: &str = "adaptive_avg_pool2d_backward";
    let out_hw = spatial(l);
    let (n, c) = nchw(dev, OP, g, l, out_hw)?;
    check_adaptive(OP, in_hw, out_hw)?;
    let geom = Geom::sizes(OP, c, in_hw, out_hw)?;
    let m = numel(OP, n, c, in_hw)?;
    let out = CudaStorage::uninit(dev, m, g.dtype())?;
    if m > 0 {
        launch(
            dev,
            "avg_pool2d_backward",
            l,
            g,
            &out,
            None,
            m,
            &geom,
            Some(1),
        )?;
    }
    Ok(out)
}
