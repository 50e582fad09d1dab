//! index_select, gather and scatter_add (kernels: `kernels/index.cu`).
//! CPU counterpart: `tensor/src/ops/index/`.
//!
//! The kernels bounds-check every index and skip a bad one (never touching memory outside a
//! view), setting a flag in a 4-byte device buffer. The flag is read back after each launch,
//! so an out-of-range index is the CPU's `Error::Index` on this backend too (the front end's
//! host-side check only runs with `debug_checks` on, and the conformance kit expects the
//! error either way). Only when the flag is set is the index read to the host, to name the
//! first bad value exactly as the CPU does.

use crate::driver::arg;
use crate::launch::{count, grid_stride, suffix};
use crate::layout::KernelLayout;
use crate::ops::copy;
use crate::storage::{check_view, CudaStorage};
use crate::Cuda;
use tessera_tensor::{shape_err, DType, Error, HostBuffer, Layout, Result};

const MODULE: &str = "index";

/// The device flag the kernels set on a bad index.
struct BadIndexFlag(CudaStorage);

impl BadIndexFlag {
    fn new(dev: &Cuda) -> Result<Self> {
        let s = CudaStorage::uninit(dev, 1, DType::I64)?;
        // SAFETY: the storage holds exactly `s.bytes()` bytes.
        unsafe { dev.inner.driver.memset_d8(s.base(), 0, s.bytes())? };
        Ok(BadIndexFlag(s))
    }

    fn ptr(&self) -> u64 {
        self.0.base()
    }

    /// After the launch: `Err(Error::Index)` naming the first bad value if the flag is set.
    fn check(
        self,
        dev: &Cuda,
        op: &'static str,
        idx: &CudaStorage,
        il: &Layout,
        axis: usize,
        dim: usize,
    ) -> Result<()> {
        let mut word = [0u8; 4];
        // SAFETY: the storage holds 8 bytes; the kernel wrote the first 4 as an unsigned int.
        unsafe { dev.inner.driver.copy_dtoh(&mut word, self.ptr())? };
        if u32::from_ne_bytes(word) == 0 {
            return Ok(());
        }
        first_bad(dev, op, idx, il, axis, dim)?;
        // Unreachable unless the index changed meanwhile: still an error, never a silent skip.
        Err(Error::Index {
            op,
            msg: format!("an index is out of range for dim {axis} of size {dim}"),
        })
    }
}

/// `Err(Error::Index)` naming the first out-of-range value of the index (in row-major
/// order, as the CPU), if there is one; reads the index to the host.
fn first_bad(
    dev: &Cuda,
    op: &'static str,
    idx: &CudaStorage,
    il: &Layout,
    axis: usize,
    dim: usize,
) -> Result<()> {
    let HostBuffer::I64(v) = copy::to_host(dev, idx, il)? else {
        return Ok(()); // checked I64 before
    };
    match v
        .into_iter()
        .find(|&i| !matches!(usize::try_from(i), Ok(u) if u < dim))
    {
        None => Ok(()),
        Some(i) => Err(Error::Index {
            op,
            msg: format!("index {i} is out of range for dim {axis} of size {dim}"),
        }),
    }
}

/// `layout` re-described with `shape` and a zero stride on `axis` (see index.cu).
fn base_layout(layout: &Layout, shape: &[usize], axis: usize) -> Layout {
    let mut strides = layout.strides().to_vec();
    strides[axis] = 0;
    Layout::from_parts(shape, &strides, layout.offset())
}

fn check_index(dev: &Cuda, op: &'static str, idx: &CudaStorage, il: &Layout) -> Result<()> {
    check_view(dev, op, idx, il, Some(DType::I64))
}

fn check_rank(op: &'static str, l: &Layout, il: &Layout, axis: usize) -> Result<()> {
    if axis >= l.rank() || il.rank() != l.rank() {
        return Err(shape_err!(
            op,
            "axis {axis} and index {:?} do not fit input {:?}",
            il.shape(),
            l.shape()
        ));
    }
    Ok(())
}

/// `l`'s axis stride as the kernels' `long long`.
fn axis_stride(op: &'static str, l: &Layout, axis: usize) -> Result<i64> {
    count(op, l.strides()[axis])
}

pub fn index_select(
    dev: &Cuda,
    x: &CudaStorage,
    l: &Layout,
    axis: usize,
    index: &CudaStorage,
    il: &Layout,
) -> Result<CudaStorage> {
    const OP: &str = "index_select";
    check_view(dev, OP, x, l, None)?;
    check_index(dev, OP, index, il)?;
    if axis >= l.rank() || il.rank() != 1 {
        return Err(shape_err!(
            OP,
            "needs a 1-D index and an axis of {:?}, got index {:?} and axis {axis}",
            l.shape(),
            il.shape()
        ));
    }
    let mut shape = l.shape().to_vec();
    shape[axis] = il.shape()[0];
    let n = tessera_tensor::Layout::try_contiguous(OP, &shape)?.numel();
    let out = CudaStorage::uninit(dev, n, x.dtype())?;
    let dim = l.shape()[axis];
    if n == 0 {
        // No kernel runs, but the CPU still rejects bad values in a non-empty index.
        first_bad(dev, OP, index, il, axis, dim)?;
        return Ok(out);
    }
    let base = base_layout(l, &shape, axis);
    let [kb] = KernelLayout::merged(OP, [&base])?;
    let ki = KernelLayout::exact(OP, il)?;
    let inner: usize = shape[axis + 1..].iter().product();
    let flag = BadIndexFlag::new(dev)?;
    let (xp, stride, ip, op, nn) = (
        x.base(),
        axis_stride(OP, l, axis)?,
        index.base(),
        out.base(),
        count(OP, n)?,
    );
    let (inner, nidx, d, fp) = (
        count(OP, inner)?,
        count(OP, shape[axis])?,
        count(OP, dim)?,
        flag.ptr(),
    );
    let kernel = format!("ts_index_select_{}", suffix(x.dtype()));
    // SAFETY: the views were checked; `base` stays inside `l` for every output position
    // with axis coordinate 0, and the kernel adds only checked indices `< dim` times `stride`.
    unsafe {
        dev.inner.launch(
            MODULE,
            &kernel,
            &grid_stride(dev, n),
            &mut [
                arg(&kb),
                arg(&xp),
                arg(&stride),
                arg(&ki),
                arg(&ip),
                arg(&op),
                arg(&nn),
                arg(&inner),
                arg(&nidx),
                arg(&d),
                arg(&fp),
            ],
        )?
    };
    flag.check(dev, OP, index, il, axis, dim)?;
    Ok(out)
}

pub fn gather(
    dev: &Cuda,
    x: &CudaStorage,
    l: &Layout,
    axis: usize,
    index: &CudaStorage,
    il: &Layout,
) -> Result<CudaStorage> {
    const OP: &str = "gather";
    check_view(dev, OP, x, l, None)?;
    check_index(dev, OP, index, il)?;
    check_rank(OP, l, il, axis)?;
    if (0..l.rank()).any(|d| d != axis && il.shape()[d] > l.shape()[d]) {
        return Err(shape_err!(
            OP,
            "index {:?} is larger than input {:?} outside dim {axis}",
            il.shape(),
            l.shape()
        ));
    }
    let n = il.numel();
    let out = CudaStorage::uninit(dev, n, x.dtype())?;
    if n == 0 {
        return Ok(out);
    }
    let dim = l.shape()[axis];
    let base = base_layout(l, il.shape(), axis);
    let [kb, ki] = KernelLayout::merged(OP, [&base, il])?;
    let flag = BadIndexFlag::new(dev)?;
    let (xp, stride, ip, op, nn) = (
        x.base(),
        axis_stride(OP, l, axis)?,
        index.base(),
        out.base(),
        count(OP, n)?,
    );
    let (d, fp) = (count(OP, dim)?, flag.ptr());
    let kernel = format!("ts_gather_{}", suffix(x.dtype()));
    // SAFETY: as in `index_select`; the index is no larger than `l` outside `axis`.
    unsafe {
        dev.inner.launch(
            MODULE,
            &kernel,
            &grid_stride(dev, n),
            &mut [
                arg(&kb),
                arg(&xp),
                arg(&stride),
                arg(&ki),
                arg(&ip),
                arg(&op),
                arg(&nn),
                arg(&d),
                arg(&fp),
            ],
        )?
    };
    flag.check(dev, OP, index, il, axis, dim)?;
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
pub fn scatter_add(
    dev: &Cuda,
    dst: &mut CudaStorage,
    dst_shape: &[usize],
    axis: usize,
    index: &CudaStorage,
    il: &Layout,
    src: &CudaStorage,
    sl: &Layout,
) -> Result<()> {
    const OP: &str = "scatter_add";
    let dl = Layout::try_contiguous(OP, dst_shape)?;
    check_view(dev, OP, dst, &dl, None)?;
    check_index(dev, OP, index, il)?;
    check_view(dev, OP, src, sl, Some(dst.dtype()))?;
    check_rank(OP, &dl, il, axis)?;
    let fits = (0..dl.rank()).all(|d| d == axis || il.shape()[d] <= dst_shape[d]);
    if !fits || sl.shape() != il.shape() {
        return Err(shape_err!(
            OP,
            "index {:?} and source {:?} do not fit destination {dst_shape:?} along dim {axis}",
            il.shape(),
            sl.shape()
        ));
    }
    let n = il.numel();
    if n == 0 {
        return Ok(());
    }
    let dtype = dst.dtype();
    // f16/bf16 accumulate in an f32 copy and round once at the end, as the CPU does.
    let half = matches!(dtype, DType::F16 | DType::BF16);
    let acc = if half {
        Some(copy::cast(dev, dst, &dl, DType::F32)?)
    } else {
        None
    };
    let dim = dst_shape[axis];
    let base = base_layout(&dl, il.shape(), axis);
    let [kb, ki, ks] = KernelLayout::merged(OP, [&base, il, sl])?;
    let flag = BadIndexFlag::new(dev)?;
    let accp = acc.as_ref().map_or(dst.base(), |a| a.base());
    let (stride, ip, sp, nn) = (
        axis_stride(OP, &dl, axis)?,
        index.base(),
        src.base(),
        count(OP, n)?,
    );
    let (d, fp) = (count(OP, dim)?, flag.ptr());
    let kernel = format!("ts_scatter_add_{}", suffix(dtype));
    // SAFETY: `dst` (or its f32 copy) holds the contiguous `dst_shape`; the index is no
    // larger outside `axis`, so `base` stays inside it, and only indices `< dim` are added.
    unsafe {
        dev.inner.launch(
            MODULE,
            &kernel,
            &grid_stride(dev, n),
            &mut [
                arg(&kb),
                arg(&accp),
                arg(&stride),
                arg(&ki),
                arg(&ip),
                arg(&ks),
                arg(&sp),
                arg(&nn),
                arg(&d),
                arg(&fp),
            ],
        )?
    };
    flag.check(dev, OP, index, il, axis, dim)?;
    if let Some(acc) = acc {
        let rounded = copy::cast(dev, &acc, &dl, dtype)?;
        copy::copy_into(dev, &rounded, &dl, dst, &dl)?;
    }
    Ok(())
}
