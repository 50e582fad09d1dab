//! `Σ x²` over every element: the reduction inside an L2 norm (PyTorch: the squares' sum in
//! `torch.linalg.vector_norm`), for gradient clipping. The default squares into a temporary
//! and sums it; the CPU backend squares each element as it sums it, one read of `x` instead
//! of a read, a write and another read (DINO clips every gradient of every step).

use super::run_sum::RunSum;
use crate::backend::{Backend, UnaryOp};
use crate::cpu::{strided, Cpu};
use crate::dtype::Float;
use crate::ops::unary::cpu::eval as un;
use crate::{DType, HostElement, Result, Tensor};

impl<B: Backend> Tensor<B> {
    /// The sum of the squares of all elements, a rank-0 tensor in this tensor's dtype: the
    /// value of `self.square()?.sum_all()`, which is the default.
    ///
    /// ```
    /// use tessera_tensor::{Cpu, Tensor};
    /// let x = Tensor::from_vec(vec![3.0f32, -4.0], &[2], &Cpu)?;
    /// assert_eq!(x.sum_of_squares()?.item()?, 25.0);
    /// # Ok::<(), tessera_tensor::Error>(())
    /// ```
    pub fn sum_of_squares(&self) -> Result<Self> {
        self.check_float("sum_of_squares")?;
        self.backend().sum_of_squares(self)
    }
}

/// The default composition: the squares, then their sum.
pub fn sum_of_squares_composite<B: Backend>(x: &Tensor<B>) -> Result<Tensor<B>> {
    x.square()?.sum_all()
}

/// The CPU backend's `sum_of_squares`: f32 and f64 in one pass, each square rounded to the
/// element type and summed in the lane order of the sum over the stored squares
/// ([`RunSum::feed_map`]), so the bits are the composition's; other dtypes and empty
/// tensors take the composition.
pub(crate) fn sum_of_squares_cpu(x: &Tensor<Cpu>) -> Result<Tensor<Cpu>> {
    let fused = match x.dtype() {
        DType::F32 => fused::<f32>(x),
        DType::F64 => fused::<f64>(x),
        _ => None,
    };
    match fused {
        Some(sum) => sum,
        None => sum_of_squares_composite(x),
    }
}

fn fused<T: Float + HostElement + Send + Sync>(x: &Tensor<Cpu>) -> Option<Result<Tensor<Cpu>>> {
    if x.numel() == 0 {
        return None; // the composition's empty sum is +0.0; the lanes start at -0.0
    }
    let v = strided::elements::<T>(x)?;
    let mut sum = RunSum::new(v.len());
    sum.feed_map(&v, |e| un(UnaryOp::Square, e));
    // The backend's own memory, not an upload (`Tensor::from_vec` would count as one).
    let out = T::into_buffer(alloc::vec![T::from_f64(sum.finish())]);
    Some(crate::cpu::kernel_output(out, &[]))
}

#[cfg(test)]
mod tests {
    use crate::{Cpu, DType, Tensor};
    use alloc::vec::Vec;

    /// The fused sum is the composition's bits: contiguous (lengths around the lanes' groups),
    /// a transposed view, f64, bf16 (the composition), and an empty tensor.
    #[test]
    fn fused_sum_is_the_compositions_bits() {
        let wide = |n: usize| -> Tensor<Cpu> {
            let v: Vec<f32> = (0..n)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) * 2f32.powi((i * 13 % 41) as i32 - 20))
                .collect();
            Tensor::from_vec(v, &[n], &Cpu).unwrap()
        };
        let mut cases: Vec<Tensor<Cpu>> = [1, 7, 8, 9, 1000, 100_003].map(wide).into();
        cases.push(wide(600).reshape(&[20, 30]).unwrap().t().unwrap());
        cases.push(wide(1000).to_dtype(DType::F64).unwrap());
        cases.push(wide(1000).to_dtype(DType::BF16).unwrap());
        cases.push(wide(0));
        for x in cases {
            let got = x.sum_of_squares().unwrap();
            let want = x.square().unwrap().sum_all().unwrap();
            assert_eq!(got.shape(), [] as [usize; 0]);
            assert_eq!(got.dtype(), x.dtype());
            let (g, w) = (got.item().unwrap(), want.item().unwrap());
            assert_eq!(g.to_bits(), w.to_bits(), "{:?} {g} {w}", x.shape());
        }
        let ints = Tensor::from_vec(alloc::vec![1i64, 2], &[2], &Cpu).unwrap();
        assert!(ints.sum_of_squares().is_err());
    }
}
