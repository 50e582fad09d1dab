//! Elementwise functions of two inputs, comparisons and `where` (kernels: `kernels/binary.cu`).
//! CPU counterpart: `tensor/src/ops/binary/cpu.rs`.

use crate::driver::arg;
use crate::launch::{count, grid_stride, suffix, unsupported};
use crate::layout::KernelLayout;
use crate::storage::{check_view, CudaStorage};
use crate::Cuda;
use tessera_tensor::{BinaryOp, CmpOp, DType, Layout, Result};

const MODULE: &str = "binary";

fn binary_code(op: BinaryOp) -> i32 {
    match op {
        BinaryOp::Add => 0,
        BinaryOp::Sub => 1,
        BinaryOp::Mul => 2,
        BinaryOp::Div => 3,
        BinaryOp::Maximum => 4,
        BinaryOp::Minimum => 5,
        BinaryOp::Pow => 6,
    }
}

fn cmp_code(op: CmpOp) -> i32 {
    match op {
        CmpOp::Eq => 0,
        CmpOp::Ne => 1,
        CmpOp::Lt => 2,
        CmpOp::Le => 3,
        CmpOp::Gt => 4,
        CmpOp::Ge => 5,
    }
}

fn same_shape(op: &'static str, a: &Layout, b: &Layout) -> Result<()> {
    if a.shape() != b.shape() {
        return Err(tessera_tensor::shape_err!(
            op,
            "{:?} and {:?} differ",
            a.shape(),
            b.shape()
        ));
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn launch_binary(
    dev: &Cuda,
    op: BinaryOp,
    a: u64,
    al: &Layout,
    b: &CudaStorage,
    bl: &Layout,
    out: u64,
    ol: &Layout,
    dtype: DType,
) -> Result<()> {
    const OP: &str = "binary";
    let n = al.numel();
    if n == 0 {
        return Ok(());
    }
    let [ka, kb, ko] = KernelLayout::merged(OP, [al, bl, ol])?;
    let (bp, nn, c) = (b.base(), count(OP, n)?, binary_code(op));
    let kernel = format!("ts_binary_{}", suffix(dtype));
    // SAFETY: the callers checked every view against its storage.
    unsafe {
        dev.inner.launch(
            MODULE,
            &kernel,
            &grid_stride(dev, n),
            &mut [
                arg(&ka),
                arg(&a),
                arg(&kb),
                arg(&bp),
                arg(&ko),
                arg(&out),
                arg(&nn),
                arg(&c),
            ],
        )
    }
}

fn check_pair(
    dev: &Cuda,
    op: &'static str,
    a: &CudaStorage,
    al: &Layout,
    b: &CudaStorage,
    bl: &Layout,
) -> Result<()> {
    check_view(dev, op, a, al, None)?;
    check_view(dev, op, b, bl, Some(a.dtype()))?;
    same_shape(op, al, bl)
}

pub fn binary(
    dev: &Cuda,
    op: BinaryOp,
    a: &CudaStorage,
    al: &Layout,
    b: &CudaStorage,
    bl: &Layout,
) -> Result<CudaStorage> {
    check_pair(dev, "binary", a, al, b, bl)?;
    if !a.dtype().is_float() {
        return Err(unsupported(
            "binary",
            format!("{:?} is not a float dtype", a.dtype()),
        ));
    }
    let out = CudaStorage::uninit(dev, al.numel(), a.dtype())?;
    let ol = Layout::contiguous(al.shape());
    launch_binary(dev, op, a.base(), al, b, bl, out.base(), &ol, a.dtype())?;
    Ok(out)
}

pub fn binary_inplace(
    dev: &Cuda,
    op: BinaryOp,
    a: &mut CudaStorage,
    al: &Layout,
    b: &CudaStorage,
    bl: &Layout,
) -> Result<()> {
    check_pair(dev, "binary_inplace", a, al, b, bl)?;
    if !a.dtype().is_float() {
        return Err(unsupported(
            "binary_inplace",
            format!("{:?} is not a float dtype", a.dtype()),
        ));
    }
    if al.numel() > 1 && al.has_zero_stride() {
        return Err(tessera_tensor::arg_err!(
            "binary_inplace",
            "the destination view overlaps itself"
        ));
    }
    let p = a.base();
    launch_binary(dev, op, p, al, b, bl, p, al, a.dtype())
}

pub fn compare(
    dev: &Cuda,
    op: CmpOp,
    a: &CudaStorage,
    al: &Layout,
    b: &CudaStorage,
    bl: &Layout,
) -> Result<CudaStorage> {
    const OP: &str = "compare";
    check_pair(dev, OP, a, al, b, bl)?;
    let n = al.numel();
    let out = CudaStorage::uninit(dev, n, DType::U8)?;
    if n == 0 {
        return Ok(out);
    }
    let [ka, kb] = KernelLayout::merged(OP, [al, bl])?;
    let (ap, bp, outp, nn, c) = (a.base(), b.base(), out.base(), count(OP, n)?, cmp_code(op));
    let kernel = format!("ts_compare_{}", suffix(a.dtype()));
    // SAFETY: views checked above; the output holds `n` bytes.
    unsafe {
        dev.inner.launch(
            MODULE,
            &kernel,
            &grid_stride(dev, n),
            &mut [
                arg(&ka),
                arg(&ap),
                arg(&kb),
                arg(&bp),
                arg(&outp),
                arg(&nn),
                arg(&c),
            ],
        )?
    };
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
pub fn where_cond(
    dev: &Cuda,
    cond: &CudaStorage,
    cl: &Layout,
    a: &CudaStorage,
    al: &Layout,
    b: &CudaStorage,
    bl: &Layout,
) -> Result<CudaStorage> {
    const OP: &str = "where_cond";
    check_view(dev, OP, cond, cl, Some(DType::U8))?;
    check_pair(dev, OP, a, al, b, bl)?;
    same_shape(OP, cl, al)?;
    let n = al.numel();
    let out = CudaStorage::uninit(dev, n, a.dtype())?;
    if n == 0 {
        return Ok(out);
    }
    let [kc, ka, kb] = KernelLayout::merged(OP, [cl, al, bl])?;
    let (cp, ap, bp, outp, nn) = (cond.base(), a.base(), b.base(), out.base(), count(OP, n)?);
    let kernel = format!("ts_where_{}", suffix(a.dtype()));
    // SAFETY: views checked above; the output holds `n` elements.
    unsafe {
        dev.inner.launch(
            MODULE,
            &kernel,
            &grid_stride(dev, n),
            &mut [
                arg(&kc),
                arg(&cp),
                arg(&ka),
                arg(&ap),
                arg(&kb),
                arg(&bp),
                arg(&outp),
                arg(&nn),
            ],
        )?
    };
    Ok(out)
}
