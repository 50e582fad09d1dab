//! Transfers, strided copies, casts and fills (kernels: `kernels/copy.cu`).
//! PyTorch: `tensor.to("cuda")`, `.cpu()`, `.contiguous()`, `.to(dtype)`, `torch.full`.

use crate::driver::arg;
use crate::launch::{count, grid_stride, suffix};
use crate::layout::KernelLayout;
use crate::storage::{check_view, CudaStorage};
use crate::Cuda;
use tessera_tensor::{DType, HostBuffer, Layout, Result};

const MODULE: &str = "copy";

/// The bytes of a host buffer (every element type is plain old data).
fn host_bytes(b: &HostBuffer) -> &[u8] {
    fn bytes<T>(v: &[T]) -> &[u8] {
        // SAFETY: the element types (f16, bf16, f32, f64, i64, u8) have no padding or
        // invalid bit patterns as bytes.
        unsafe { core::slice::from_raw_parts(v.as_ptr() as *const u8, core::mem::size_of_val(v)) }
    }
    match b {
        HostBuffer::F16(v) => bytes(v),
        HostBuffer::BF16(v) => bytes(v),
        HostBuffer::F32(v) => bytes(v),
        HostBuffer::F64(v) => bytes(v),
        HostBuffer::I64(v) => bytes(v),
        HostBuffer::U8(v) => bytes(v),
    }
}

fn host_bytes_mut(b: &mut HostBuffer) -> &mut [u8] {
    fn bytes<T>(v: &mut [T]) -> &mut [u8] {
        // SAFETY: as in `host_bytes`; every byte pattern is a valid element.
        unsafe {
            core::slice::from_raw_parts_mut(v.as_mut_ptr() as *mut u8, core::mem::size_of_val(v))
        }
    }
    match b {
        HostBuffer::F16(v) => bytes(v),
        HostBuffer::BF16(v) => bytes(v),
        HostBuffer::F32(v) => bytes(v),
        HostBuffer::F64(v) => bytes(v),
        HostBuffer::I64(v) => bytes(v),
        HostBuffer::U8(v) => bytes(v),
    }
}

pub fn from_host(dev: &Cuda, data: HostBuffer) -> Result<CudaStorage> {
    let s = CudaStorage::uninit(dev, data.len(), data.dtype())?;
    let bytes = host_bytes(&data);
    if !bytes.is_empty() {
        // SAFETY: the storage holds exactly `bytes.len()` bytes.
        unsafe { dev.inner.driver.copy_htod(s.base(), bytes)? };
    }
    Ok(s)
}

pub fn to_host(dev: &Cuda, s: &CudaStorage, l: &Layout) -> Result<HostBuffer> {
    check_view(dev, "to_host", s, l, None)?;
    let n = l.numel();
    let mut out = HostBuffer::zeros(s.dtype(), n);
    if n == 0 {
        return Ok(out);
    }
    let es = s.dtype().size_in_bytes();
    match l.contiguous_range() {
        Some(r) => {
            let src = s.base() + (r.start * es) as u64;
            // SAFETY: `check_view` proved the range lies inside the storage.
            unsafe { dev.inner.driver.copy_dtoh(host_bytes_mut(&mut out), src)? };
        }
        None => {
            let c = contiguous(dev, s, l)?;
            // SAFETY: `c` holds exactly `n` elements.
            unsafe {
                dev.inner
                    .driver
                    .copy_dtoh(host_bytes_mut(&mut out), c.base())?
            };
        }
    }
    Ok(out)
}

/// A contiguous copy of a view.
pub fn contiguous(dev: &Cuda, s: &CudaStorage, l: &Layout) -> Result<CudaStorage> {
    let mut out = CudaStorage::uninit(dev, l.numel(), s.dtype())?;
    copy_into(dev, s, l, &mut out, &Layout::contiguous(l.shape()))?;
    Ok(out)
}

pub fn copy_into(
    dev: &Cuda,
    src: &CudaStorage,
    src_layout: &Layout,
    dst: &mut CudaStorage,
    dst_layout: &Layout,
) -> Result<()> {
    const OP: &str = "copy_into";
    check_view(dev, OP, src, src_layout, None)?;
    check_view(dev, OP, dst, dst_layout, Some(src.dtype()))?;
    if src_layout.shape() != dst_layout.shape() {
        return Err(tessera_tensor::shape_err!(
            OP,
            "source {:?} and destination {:?} differ",
            src_layout.shape(),
            dst_layout.shape()
        ));
    }
    if dst_layout.numel() > 1 && dst_layout.has_zero_stride() {
        return Err(tessera_tensor::arg_err!(
            OP,
            "the destination view overlaps itself"
        ));
    }
    let n = src_layout.numel();
    if n == 0 {
        return Ok(());
    }
    let [sl, dl] = KernelLayout::merged(OP, [src_layout, dst_layout])?;
    let (sp, dp, nn) = (src.base(), dst.base(), count(OP, n)?);
    let kernel = format!("ts_copy_{}", suffix(src.dtype()));
    // SAFETY: both views were checked against their storages; the kernel reads and writes
    // exactly the positions of the views.
    unsafe {
        dev.inner.launch(
            MODULE,
            &kernel,
            &grid_stride(dev, n),
            &mut [arg(&sl), arg(&sp), arg(&dl), arg(&dp), arg(&nn)],
        )
    }
}

pub fn cast(dev: &Cuda, s: &CudaStorage, l: &Layout, dtype: DType) -> Result<CudaStorage> {
    const OP: &str = "cast";
    check_view(dev, OP, s, l, None)?;
    if s.dtype() == dtype {
        return contiguous(dev, s, l);
    }
    let n = l.numel();
    let out = CudaStorage::uninit(dev, n, dtype)?;
    if n == 0 {
        return Ok(out);
    }
    let [sl] = KernelLayout::merged(OP, [l])?;
    let (sp, op, nn) = (s.base(), out.base(), count(OP, n)?);
    let kernel = format!("ts_cast_{}_{}", suffix(s.dtype()), suffix(dtype));
    // SAFETY: the view was checked; the output holds `n` elements of `dtype`.
    unsafe {
        dev.inner.launch(
            MODULE,
            &kernel,
            &grid_stride(dev, n),
            &mut [arg(&sl), arg(&sp), arg(&op), arg(&nn)],
        )?
    };
    Ok(out)
}

pub fn full(dev: &Cuda, len: usize, value: f64, dtype: DType) -> Result<CudaStorage> {
    const OP: &str = "full";
    let out = CudaStorage::uninit(dev, len, dtype)?;
    if len == 0 {
        return Ok(out);
    }
    if value == 0.0 && value.is_sign_positive() {
        // SAFETY: the storage holds exactly this many bytes.
        unsafe { dev.inner.driver.memset_d8(out.base(), 0, out.bytes())? };
        return Ok(out);
    }
    let (op, nn) = (out.base(), count(OP, len)?);
    let kernel = format!("ts_fill_{}", suffix(dtype));
    // SAFETY: the output holds `len` elements of `dtype`.
    unsafe {
        dev.inner.launch(
            MODULE,
            &kernel,
            &grid_stride(dev, len),
            &mut [arg(&op), arg(&nn), arg(&value)],
        )?
    };
    Ok(out)
}
