//! Elementwise functions of one input (kernels: `kernels/unary.cu`).
//! CPU counterpart: `tensor/src/ops/unary/cpu.rs`.

use crate::driver::arg;
use crate::launch::{count, grid_stride, suffix, unsupported};
use crate::layout::KernelLayout;
use crate::storage::{check_view, CudaStorage};
use crate::Cuda;
use tessera_tensor::{Layout, Result, UnaryOp};

const MODULE: &str = "unary";

/// The kernel's op code (the enum in unary.cu) and its two scalars.
fn code(op: UnaryOp) -> (i32, f64, f64) {
    match op {
        UnaryOp::Neg => (0, 0.0, 0.0),
        UnaryOp::Abs => (1, 0.0, 0.0),
        UnaryOp::Sign => (2, 0.0, 0.0),
        UnaryOp::Exp => (3, 0.0, 0.0),
        UnaryOp::Log => (4, 0.0, 0.0),
        UnaryOp::Sqrt => (5, 0.0, 0.0),
        UnaryOp::Rsqrt => (6, 0.0, 0.0),
        UnaryOp::Recip => (7, 0.0, 0.0),
        UnaryOp::Square => (8, 0.0, 0.0),
        UnaryOp::Tanh => (9, 0.0, 0.0),
        UnaryOp::Erf => (10, 0.0, 0.0),
        UnaryOp::Sigmoid => (11, 0.0, 0.0),
        UnaryOp::Relu => (12, 0.0, 0.0),
        UnaryOp::Powf(p) => (13, p, 0.0),
        UnaryOp::DivScalar(d) => (14, d, 0.0),
        UnaryOp::ScalarDiv(c) => (15, c, 0.0),
        UnaryOp::Affine { mul, add } => (16, mul, add),
        UnaryOp::Clamp { min, max } => (17, min, max),
    }
}

fn launch(
    dev: &Cuda,
    op: UnaryOp,
    x: &CudaStorage,
    xl: &Layout,
    out_ptr: u64,
    ol: &Layout,
) -> Result<()> {
    const OP: &str = "unary";
    let n = xl.numel();
    if n == 0 {
        return Ok(());
    }
    let [kx, ko] = KernelLayout::merged(OP, [xl, ol])?;
    let (xp, nn) = (x.base(), count(OP, n)?);
    let (c, p0, p1) = code(op);
    let kernel = format!("ts_unary_{}", suffix(x.dtype()));
    // SAFETY: both views were checked against their storages by the callers.
    unsafe {
        dev.inner.launch(
            MODULE,
            &kernel,
            &grid_stride(dev, n),
            &mut [
                arg(&kx),
                arg(&xp),
                arg(&ko),
                arg(&out_ptr),
                arg(&nn),
                arg(&c),
                arg(&p0),
                arg(&p1),
            ],
        )
    }
}

fn check_float(op: &'static str, x: &CudaStorage) -> Result<()> {
    if !x.dtype().is_float() {
        return Err(unsupported(
            op,
            format!("{:?} is not a float dtype", x.dtype()),
        ));
    }
    Ok(())
}

pub fn unary(dev: &Cuda, op: UnaryOp, x: &CudaStorage, l: &Layout) -> Result<CudaStorage> {
    check_view(dev, "unary", x, l, None)?;
    check_float("unary", x)?;
    let out = CudaStorage::uninit(dev, l.numel(), x.dtype())?;
    launch(dev, op, x, l, out.base(), &Layout::contiguous(l.shape()))?;
    Ok(out)
}

pub fn unary_inplace(dev: &Cuda, op: UnaryOp, x: &mut CudaStorage, l: &Layout) -> Result<()> {
    check_view(dev, "unary_inplace", x, l, None)?;
    check_float("unary_inplace", x)?;
    if l.numel() > 1 && l.has_zero_stride() {
        return Err(tessera_tensor::arg_err!(
            "unary_inplace",
            "the view overlaps itself"
        ));
    }
    let p = x.base();
    launch(dev, op, x, l, p, l)
}
