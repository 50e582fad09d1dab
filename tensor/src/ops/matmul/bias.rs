//! `a @ b + bias` (PyTorch: `torch.addmm(bias, a, b)`, a linear layer's forward). The CPU
//! backend adds the bias inside its GEMM, to each tile of C while the tile is still in L1,
//! which saves the separate add's pass over the output (3.9% of the default DINO step's
//! main thread); other backends get the default, a matmul and a broadcast add. Both give the
//! same bits.

use crate::backend::Backend;
use crate::cpu::Cpu;
use crate::{DType, HostBuffer, Result, Tensor};
use alloc::vec::Vec;

impl<B: Backend> Tensor<B> {
    /// `self @ other + bias`: `self: [.., m, k]`, `other: [.., k, n]` (rank >= 2 each, batch
    /// dims broadcast as in [`Tensor::matmul`]), `bias: [n]`, added to every row of the
    /// product. Equal, bit for bit, to `self.matmul(other)?.add(bias)`.
    pub fn matmul_bias(&self, other: &Self, bias: &Self) -> Result<Self> {
        let op = "matmul_bias";
        self.check_same_backend(op, other)?;
        self.check_same_backend(op, bias)?;
        self.check_same_dtype(op, other)?;
        self.check_same_dtype(op, bias)?;
        self.check_float(op)?;
        if self.rank() < 2 || other.rank() < 2 {
            return Err(crate::shape_err!(
                op,
                "needs [.., m, k] @ [.., k, n] (rank >= 2 each), got {:?} and {:?}",
                self.shape(),
                other.shape()
            ));
        }
        let n = other.shape()[other.rank() - 1];
        if bias.shape() != [n] {
            return Err(crate::shape_err!(
                op,
                "bias must be [{n}] for a product with {n} columns, got {:?}",
                bias.shape()
            ));
        }
        self.backend().matmul_bias(self, other, bias)
    }
}

/// The default composition: the product, then the broadcast add.
pub fn matmul_bias_composite<B: Backend>(
    a: &Tensor<B>,
    b: &Tensor<B>,
    bias: &Tensor<B>,
) -> Result<Tensor<B>> {
    a.matmul(b)?.add(bias)
}

/// The CPU backend's `matmul_bias`: f32 products whose rows merge into one GEMM against a
/// single (broadcast) `b` (every linear layer) run with the bias inside the GEMM; anything
/// else takes the composition.
pub(crate) fn matmul_bias_cpu(
    a: &Tensor<Cpu>,
    b: &Tensor<Cpu>,
    bias: &Tensor<Cpu>,
) -> Result<Tensor<Cpu>> {
    let fused = a.dtype() == DType::F32 && b.rank() == 2 && bias.layout().strides() == [1];
    if !fused {
        return matmul_bias_composite(a, b, bias);
    }
    let r = a.rank();
    let (k, n) = (a.shape()[r - 1], b.shape()[1]);
    let mut b_shape: Vec<usize> = a.shape()[..r - 2].to_vec();
    b_shape.extend_from_slice(&[k, n]);
    let bl = b.layout().broadcast_to(&b_shape)?;
    let (sa, sb) = (&**a.storage(), &**b.storage());
    let (al, bl) = crate::cpu::checks::matmul(sa, a.layout(), sb, &bl)?;
    let Some((rows, rs)) = super::cpu::merged_rows(&al, &bl) else {
        return matmul_bias_composite(a, b, bias);
    };
    bias.layout()
        .check_fits("matmul_bias", bias.storage().len())?;
    let (HostBuffer::F32(x), HostBuffer::F32(y), HostBuffer::F32(v)) =
        (&**sa, &**sb, &***bias.storage())
    else {
        return matmul_bias_composite(a, b, bias);
    };
    let total = rows * n;
    let mut out: Vec<f32> = crate::cpu::pool::take_in_kernel(total);
    let precision = crate::cpu::gemm::float32_matmul_precision();
    let imp = crate::cpu::gemm::GemmImpl::for_precision(precision);
    let r2 = bl.rank();
    // SAFETY: `checks::matmul` checked both layouts fit their storages (so every element of
    // the merged `rows x k` view and the `k x n` view is in bounds, with strides <=
    // isize::MAX), the bias view of `n` contiguous values fits its storage, and `out` has room
    // for the `rows x n` elements of C, every one of which the GEMM writes (it never reads C
    // before its first `k` block) before `set_len` exposes them.
    unsafe {
        crate::cpu::gemm::sgemm_bias_with(
            imp,
            true,
            rows,
            k,
            n,
            x.as_ptr().add(al.offset()),
            rs as isize,
            al.strides()[r - 1] as isize,
            y.as_ptr().add(bl.offset()),
            bl.strides()[r2 - 2] as isize,
            bl.strides()[r2 - 1] as isize,
            v.as_ptr().add(bias.layout().offset()),
            out.as_mut_ptr(),
            n as isize,
            1,
        );
        out.set_len(total);
    }
    let mut out_shape: Vec<usize> = a.shape()[..r - 1].to_vec();
    out_shape.push(n);
    let storage = crate::cpu::CpuStorage::from(HostBuffer::F32(out));
    Ok(Tensor::from_storage(storage, &out_shape, &Cpu))
}

#[cfg(test)]
mod tests;
