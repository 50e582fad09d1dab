//! im2col / col2im and the convolution entry points (kernels: `kernels/conv.cu`).
//! CPU counterpart: `tensor/src/ops/conv/`. conv2d and its gradients stay on the composite
//! (im2col + batched GEMM), which runs on these kernels and the matmul kernels.

use crate::driver::arg;
use crate::launch::{count, grid_stride, suffix};
use crate::layout::KernelLayout;
use crate::storage::{check_view, CudaStorage};
use crate::Cuda;
use tessera_tensor::backend::composite;
use tessera_tensor::{shape_err, Conv2dParams, Error, Layout, Result, Tensor};

const MODULE: &str = "conv";

/// `TsConvGeom` of conv.cu.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct Geom {
    c: i64,
    h: i64,
    w: i64,
    kh: i64,
    kw: i64,
    oh: i64,
    ow: i64,
    sh: i64,
    sw: i64,
    ph: i64,
    pw: i64,
    dh: i64,
    dw: i64,
}

impl Geom {
    fn new(op: &'static str, p: &Conv2dParams) -> Result<Self> {
        let [oh, ow] = p.out_hw()?;
        let c = |v: usize| count(op, v);
        Ok(Geom {
            c: c(p.in_channels)?,
            h: c(p.in_hw[0])?,
            w: c(p.in_hw[1])?,
            kh: c(p.kernel[0])?,
            kw: c(p.kernel[1])?,
            oh: c(oh)?,
            ow: c(ow)?,
            sh: c(p.stride[0])?,
            sw: c(p.stride[1])?,
            ph: c(p.padding[0])?,
            pw: c(p.padding[1])?,
            dh: c(p.dilation[0])?,
            dw: c(p.dilation[1])?,
        })
    }
}

fn check_float(op: &'static str, x: &CudaStorage) -> Result<()> {
    if !x.dtype().is_float() {
        return Err(Error::DType {
            op,
            msg: format!("needs a float tensor, got {}", x.dtype()),
        });
    }
    Ok(())
}

/// Output elements of `shape`, with the product checked.
fn numel(op: &'static str, shape: &[usize]) -> Result<usize> {
    Ok(Layout::try_contiguous(op, shape)?.numel())
}

fn launch(
    dev: &Cuda,
    name: &str,
    l: &KernelLayout,
    src: &CudaStorage,
    out: &CudaStorage,
    n: usize,
    g: &Geom,
) -> Result<()> {
    let (sp, op, nn) = (src.base(), out.base(), count("conv", n)?);
    let kernel = format!("ts_{name}_{}", suffix(src.dtype()));
    // SAFETY: the callers checked the view against its storage and its shape against the
    // geometry; the kernel reads only in-image positions and writes `n` output elements.
    unsafe {
        dev.inner.launch(
            MODULE,
            &kernel,
            &grid_stride(dev, n),
            &mut [arg(l), arg(&sp), arg(&op), arg(&nn), arg(g)],
        )
    }
}

pub fn im2col(dev: &Cuda, x: &CudaStorage, l: &Layout, p: &Conv2dParams) -> Result<CudaStorage> {
    const OP: &str = "im2col";
    check_view(dev, OP, x, l, None)?;
    check_float(OP, x)?;
    let s = l.shape();
    if s.len() != 4 || s[1] != p.in_channels || s[2..] != p.in_hw {
        return Err(shape_err!(
            OP,
            "expected [n, {}, {}, {}], got {s:?}",
            p.in_channels,
            p.in_hw[0],
            p.in_hw[1]
        ));
    }
    let g = Geom::new(OP, p)?;
    let [oh, ow] = p.out_hw()?;
    let n = numel(OP, &[s[0], p.in_channels, p.kernel[0], p.kernel[1], oh, ow])?;
    let out = CudaStorage::uninit(dev, n, x.dtype())?;
    if n == 0 {
        return Ok(out);
    }
    launch(dev, "im2col", &KernelLayout::exact(OP, l)?, x, &out, n, &g)?;
    Ok(out)
}

pub fn col2im(dev: &Cuda, cols: &CudaStorage, l: &Layout, p: &Conv2dParams) -> Result<CudaStorage> {
    const OP: &str = "col2im";
    check_view(dev, OP, cols, l, None)?;
    check_float(OP, cols)?;
    let g = Geom::new(OP, p)?;
    let [oh, ow] = p.out_hw()?;
    let (c, [kh, kw], [h, w]) = (p.in_channels, p.kernel, p.in_hw);
    let want = [numel(OP, &[c, kh, kw])?, numel(OP, &[oh, ow])?];
    let s = l.shape();
    if s.len() != 3 || s[1..] != want {
        return Err(shape_err!(
            OP,
            "expected [n, {}, {}] for {p:?}, got {s:?}",
            want[0],
            want[1]
        ));
    }
    let n = numel(OP, &[s[0], c, h, w])?;
    let out = CudaStorage::uninit(dev, n, cols.dtype())?;
    if n == 0 {
        return Ok(out);
    }
    launch(
        dev,
        "col2im",
        &KernelLayout::exact(OP, l)?,
        cols,
        &out,
        n,
        &g,
    )?;
    Ok(out)
}

pub fn conv2d(
    _dev: &Cuda,
    x: &Tensor<Cuda>,
    w: &Tensor<Cuda>,
    p: &Conv2dParams,
) -> Result<Tensor<Cuda>> {
    composite::conv2d(x, w, p)
}

pub fn conv2d_backward_input(
    _dev: &Cuda,
    grad: &Tensor<Cuda>,
    w: &Tensor<Cuda>,
    p: &Conv2dParams,
) -> Result<Tensor<Cuda>> {
    composite::conv2d_backward_input(grad, w, p)
}

pub fn conv2d_backward_weight(
    _dev: &Cuda,
    x: &Tensor<Cuda>,
    grad: &Tensor<Cuda>,
    p: &Conv2dParams,
) -> Result<Tensor<Cuda>> {
    composite::conv2d_backward_weight(x, grad, p)
}
