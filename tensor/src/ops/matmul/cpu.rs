//! CPU batched GEMM through `matrixmultiply`, which takes row and column strides, so
//! transposed views multiply without a copy. f16/bf16 are upcast to f32.

use crate::layout::Layout;
use crate::shape::{contiguous_strides, numel};
use crate::{HostBuffer, Result};
use alloc::vec;
use alloc::vec::Vec;

/// Visits the storage offsets of every batch entry of `a` and `b` (the leading dims).
fn for_each_batch(al: &Layout, bl: &Layout, mut f: impl FnMut(usize, usize, usize)) {
    let r = al.rank();
    let batch_shape = &al.shape()[..r - 2];
    let n = numel(batch_shape);
    let cs = contiguous_strides(batch_shape);
    for i in 0..n {
        let (mut oa, mut ob) = (al.offset(), bl.offset());
        let mut rem = i;
        for d in 0..batch_shape.len() {
            let idx = rem / cs[d];
            rem %= cs[d];
            oa += idx * al.strides()[d];
            ob += idx * bl.strides()[d];
        }
        f(i, oa, ob);
    }
}

macro_rules! gemm_batched {
    ($gemm:path, $t:ty, $a:expr, $al:expr, $b:expr, $bl:expr) => {{
        let (a, al, b, bl): (&[$t], &Layout, &[$t], &Layout) = ($a, $al, $b, $bl);
        let r = al.rank();
        let (m, k, n) = (al.shape()[r - 2], al.shape()[r - 1], bl.shape()[r - 1]);
        let (rsa, csa) = (al.strides()[r - 2] as isize, al.strides()[r - 1] as isize);
        let (rsb, csb) = (bl.strides()[r - 2] as isize, bl.strides()[r - 1] as isize);
        let batches = numel(&al.shape()[..r - 2]);
        let mut out: Vec<$t> = vec![0.0; batches * m * n];
        if m * n > 0 {
            for_each_batch(al, bl, |i, oa, ob| {
                let c = &mut out[i * m * n..(i + 1) * m * n];
                // SAFETY: the layouts were checked to fit their storages, so every element
                // of the m×k and k×n views addressed with these strides is in bounds; `c` is
                // an exclusively borrowed m×n row-major block.
                unsafe {
                    $gemm(
                        m,
                        k,
                        n,
                        1.0,
                        a.as_ptr().add(oa),
                        rsa,
                        csa,
                        b.as_ptr().add(ob),
                        rsb,
                        csb,
                        0.0,
                        c.as_mut_ptr(),
                        n as isize,
                        1,
                    );
                }
            });
        }
        out
    }};
}

/// `[batch.., m, k] x [batch.., k, n]` for f32 slices.
pub fn matmul_f32(a: &[f32], al: &Layout, b: &[f32], bl: &Layout) -> Vec<f32> {
    gemm_batched!(matrixmultiply::sgemm, f32, a, al, b, bl)
}

/// `[batch.., m, k] x [batch.., k, n]` for f64 slices.
pub fn matmul_f64(a: &[f64], al: &Layout, b: &[f64], bl: &Layout) -> Vec<f64> {
    gemm_batched!(matrixmultiply::dgemm, f64, a, al, b, bl)
}

pub(crate) fn matmul(
    a: &HostBuffer,
    al: &Layout,
    b: &HostBuffer,
    bl: &Layout,
) -> Result<HostBuffer> {
    al.check_fits("matmul", a.len())?;
    bl.check_fits("matmul", b.len())?;
    Ok(match (a, b) {
        (HostBuffer::F32(x), HostBuffer::F32(y)) => HostBuffer::F32(matmul_f32(x, al, y, bl)),
        (HostBuffer::F64(x), HostBuffer::F64(y)) => HostBuffer::F64(matmul_f64(x, al, y, bl)),
        (HostBuffer::F16(_), HostBuffer::F16(_)) | (HostBuffer::BF16(_), HostBuffer::BF16(_)) => {
            let dtype = a.dtype();
            let (x, y) = (
                crate::cpu::strided::gather_view(a, al).cast(crate::DType::F32),
                crate::cpu::strided::gather_view(b, bl).cast(crate::DType::F32),
            );
            let (cal, cbl) = (
                Layout::contiguous(al.shape()),
                Layout::contiguous(bl.shape()),
            );
            let out = matmul_f32(
                x.as_slice().expect("f32"),
                &cal,
                y.as_slice().expect("f32"),
                &cbl,
            );
            HostBuffer::F32(out).cast(dtype)
        }
        _ => {
            return Err(crate::Error::DType {
                op: "matmul",
                msg: crate::__format!(
                    "needs two float tensors of one dtype, got {} and {}",
                    a.dtype(),
                    b.dtype()
                ),
            })
        }
    })
}
