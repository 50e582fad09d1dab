//! `(a @ b, a's row sums)`: a linear layer's weight and bias gradients from one read of the
//! output gradient. With `a = dYᵀ` (`[out, rows]`, a transposed view) and `b = X`
//! (`[rows, in]`), the product is the weight gradient (in `wᵀ`'s transpose, `w`'s layout)
//! and the row sums of `dYᵀ` are the bias gradient, `dY.sum(0)` (PyTorch computes the two
//! apart in `addmm`'s backward; cuBLASLt fuses them as its `BGRADA` epilogue). The CPU adds
//! the sums up while its GEMM packs `dYᵀ` (`cpu/gemm/row_sums.rs`), which saves the bias
//! gradient's own pass over `dY`; other backends get the default, a product and a sum.

use crate::backend::Backend;
use crate::cpu::Cpu;
use crate::{Result, Tensor};

impl<B: Backend> Tensor<B> {
    /// `(self @ other, self.sum(&[1], false))` for a 2-D `self: [m, k]` and `other: [k, n]`:
    /// the product `[m, n]` and the sums `[m]` of `self`'s rows, in `self`'s dtype. The
    /// backward of a linear layer calls it with `self = dYᵀ`, `other = X` for the weight and
    /// bias gradients together.
    ///
    /// ```
    /// use tessera_tensor::{Cpu, Tensor};
    /// let a = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[2, 2], &Cpu)?;
    /// let b = Tensor::from_vec(vec![1.0f32, 0.0, 0.0, 1.0], &[2, 2], &Cpu)?;
    /// let (product, sums) = a.matmul_row_sums(&b)?;
    /// assert_eq!(product.to_vec::<f32>()?, [1.0, 2.0, 3.0, 4.0]);
    /// assert_eq!(sums.to_vec::<f32>()?, [3.0, 7.0]);
    /// # Ok::<(), tessera_tensor::Error>(())
    /// ```
    pub fn matmul_row_sums(&self, other: &Self) -> Result<(Self, Self)> {
        let op = "matmul_row_sums";
        self.check_same_backend(op, other)?;
        self.check_same_dtype(op, other)?;
        self.check_float(op)?;
        if self.rank() != 2 || other.rank() != 2 || self.shape()[1] != other.shape()[0] {
            return Err(crate::shape_err!(
                op,
                "needs [m, k] @ [k, n], got {:?} and {:?}",
                self.shape(),
                other.shape()
            ));
        }
        self.backend().matmul_row_sums(self, other)
    }
}

/// The default composition: the product, then the sums, taken as the column sums of `aᵀ`
/// (for the weight gradient's `a = dYᵀ` that is the sum over the rows of the contiguous
/// `dY` that a separate bias gradient runs, so a backend's default gives the bias gradient
/// it gave before this op existed).
pub fn matmul_row_sums_composite<B: Backend>(
    a: &Tensor<B>,
    b: &Tensor<B>,
) -> Result<(Tensor<B>, Tensor<B>)> {
    Ok((a.matmul(b)?, a.t()?.sum(&[0], false)?))
}

/// The CPU backend's `matmul_row_sums`: an f32 `a` stored column-major (the weight
/// gradient's `dYᵀ`) whose product takes the packed f32 GEMM is summed while it is packed,
/// with the bits of the composition (every sum in f64 from -0.0, row by row in order, then
/// rounded to f32); anything else takes the composition.
pub(crate) fn matmul_row_sums_cpu(
    a: &Tensor<Cpu>,
    b: &Tensor<Cpu>,
) -> Result<(Tensor<Cpu>, Tensor<Cpu>)> {
    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    if let Some(fused) = fused::matmul_row_sums(a, b)? {
        return Ok(fused);
    }
    matmul_row_sums_composite(a, b)
}

#[cfg(all(feature = "std", target_arch = "x86_64"))]
mod fused {
    use crate::cpu::gemm::{float32_matmul_precision, sgemm_row_sums_with, GemmImpl};
    use crate::cpu::{Cpu, CpuStorage};
    use crate::{DType, HostBuffer, Result, Tensor};
    use alloc::vec::Vec;

    type Pair = (Tensor<Cpu>, Tensor<Cpu>);

    /// The fused product and sums, or `None` where the GEMM cannot sum while it packs.
    pub(super) fn matmul_row_sums(a: &Tensor<Cpu>, b: &Tensor<Cpu>) -> Result<Option<Pair>> {
        if a.dtype() != DType::F32 {
            return Ok(None);
        }
        let (sa, sb) = (&**a.storage(), &**b.storage());
        let (al, bl) = crate::cpu::checks::matmul(sa, a.layout(), sb, b.layout())?;
        let (HostBuffer::F32(x), HostBuffer::F32(y)) = (&**sa, &**sb) else {
            return Ok(None);
        };
        let ([m, k], [_, n]) = (al.shape(), bl.shape()) else {
            return Ok(None);
        };
        let (m, k, n) = (*m, *k, *n);
        let ([rsa, csa], [rsb, csb]) = (al.strides(), bl.strides()) else {
            return Ok(None);
        };
        if *rsa != 1 {
            return Ok(None);
        }
        let mut out: Vec<f32> = crate::cpu::pool::take_in_kernel(m * n);
        let mut sums = alloc::vec![-0.0f64; m];
        let imp = GemmImpl::for_precision(float32_matmul_precision());
        // SAFETY: `checks::matmul` checked both layouts fit their storages (every element of
        // the `m x k` and `k x n` views is in bounds, strides non-negative and at most
        // isize::MAX); `out` has room for the `m x n` elements of C, which the GEMM writes
        // before `set_len` exposes them (only when it ran, `true`), and `sums` holds `m`.
        unsafe {
            let ran = sgemm_row_sums_with(
                imp,
                m,
                k,
                n,
                (x.as_ptr().add(al.offset()), 1, *csa),
                (y.as_ptr().add(bl.offset()), *rsb, *csb),
                (out.as_mut_ptr(), n, 1),
                sums.as_mut_ptr(),
            );
            if !ran {
                return Ok(None);
            }
            out.set_len(m * n);
        }
        let sums: Vec<f32> = sums.into_iter().map(|s| s as f32).collect();
        let product = CpuStorage::from(HostBuffer::F32(out));
        let sums = CpuStorage::from(HostBuffer::F32(sums));
        Ok(Some((
            Tensor::from_storage(product, &[m, n], &Cpu),
            Tensor::from_storage(sums, &[m], &Cpu),
        )))
    }
}

#[cfg(test)]
mod tests {
    use crate::cpu::parallel::tests::with_threads;
    use crate::{Cpu, Tensor};
    use alloc::vec::Vec;

    /// `rows x cols` values with magnitudes 2^-30..2^30 apart, so a sum in another order
    /// rounds differently.
    fn values(rows: usize, cols: usize, seed: usize) -> Tensor<Cpu> {
        let v: Vec<f32> = (0..rows * cols)
            .map(|i| {
                let h = (i + seed).wrapping_mul(2_654_435_761) % 10_007;
                (h as f32 / 5_003.5 - 1.0) * 2f32.powi((h % 61) as i32 - 30)
            })
            .collect();
        Tensor::from_vec(v, &[rows, cols], &Cpu).unwrap()
    }

    /// The weight gradient's operands, `dYᵀ` (a transposed view) and `X`, fused against the
    /// composition bit for bit, on 1, 2 and 3 threads. The shapes take each way the packed
    /// nest splits: threads over columns (every thread packs all of A, each sums its share
    /// of the rows), over rows, the C-resident order (`k` of several blocks, one narrow
    /// column panel), two column blocks of `NC` (A packed twice, summed once), one row panel
    /// shared by the threads (and, on 3 threads, two column panels whose tiles the threads
    /// share: each packs the same A), and a `k` of a single value. With 16 and 32 outputs the
    /// nest computes `Cᵀ = Xᵀ dY` (less padding), where `dY` is B and its columns are summed,
    /// also in the C-resident order and (48 outputs, 3 threads) packed by two threads at once.
    #[test]
    fn fused_sums_are_the_compositions_bits() {
        for (out, rows, inp) in [
            (192, 1000, 576),
            (770, 900, 192),
            (300, 2000, 32),
            (40, 50, 2100),
            (14, 3000, 32),
            (14, 500, 64),
            (16, 700, 200),
            (32, 3000, 40),
            (48, 3000, 14),
            (200, 1, 300),
        ] {
            let dy = values(rows, out, out);
            let x = values(rows, inp, inp + 1);
            let a = dy.t().unwrap();
            let want_product = a.matmul(&x).unwrap().to_vec::<f32>().unwrap();
            let want_sums = dy.sum(&[0], false).unwrap().to_vec::<f32>().unwrap();
            for threads in [1, 2, 3] {
                with_threads(threads, || {
                    // Where the packed f32 GEMM runs, the fused path must be the one taken.
                    #[cfg(all(feature = "std", target_arch = "x86_64"))]
                    if crate::cpu::gemm::GemmImpl::for_precision(
                        crate::cpu::gemm::MatmulPrecision::Highest,
                    ) == crate::cpu::gemm::GemmImpl::F32
                    {
                        let fused = super::fused::matmul_row_sums(&a, &x).unwrap();
                        assert!(fused.is_some(), "{out}x{rows}x{inp} not fused");
                    }
                    let (product, sums) = a.matmul_row_sums(&x).unwrap();
                    assert_eq!(product.shape(), [out, inp]);
                    assert_eq!(sums.shape(), [out]);
                    let (p, s) = (
                        product.to_vec::<f32>().unwrap(),
                        sums.to_vec::<f32>().unwrap(),
                    );
                    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    let at = (out, rows, inp, threads);
                    assert_eq!(bits(&p), bits(&want_product), "product {at:?}");
                    assert_eq!(bits(&s), bits(&want_sums), "sums {at:?}");
                });
            }
        }
    }

    /// Operands the GEMM cannot sum while packing (a row-major A, f64) take the composition;
    /// mismatched shapes are an error.
    #[test]
    fn other_operands_take_the_composition_and_bad_shapes_are_errors() {
        let (a, b) = (values(5, 7, 1), values(7, 3, 2));
        let (p, s) = a.matmul_row_sums(&b).unwrap();
        assert_eq!(
            p.to_vec::<f32>().unwrap(),
            a.matmul(&b).unwrap().to_vec::<f32>().unwrap()
        );
        let want = a.sum(&[1], false).unwrap().to_vec::<f32>().unwrap();
        assert_eq!(s.to_vec::<f32>().unwrap(), want);
        let (a64, b64) = (
            a.to_dtype(crate::DType::F64).unwrap(),
            b.to_dtype(crate::DType::F64).unwrap(),
        );
        let (p64, s64) = a64.t().unwrap().t().unwrap().matmul_row_sums(&b64).unwrap();
        assert_eq!(p64.shape(), [5, 3]);
        assert_eq!(s64.shape(), [5]);
        assert!(a.matmul_row_sums(&a).is_err());
        assert!(a.matmul_row_sums(&b.reshape(&[21]).unwrap()).is_err());
        assert!(a.matmul_row_sums(&b64).is_err());
    }
}
