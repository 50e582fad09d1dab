//! Constant padding (PyTorch: `F.pad(x, pads, value=v)`).
//!
//! A composite of two primitives, as `cat` is: [`Backend::full`] allocates the padded output
//! holding `value`, and [`Backend::copy_into`] writes the input into the interior through a
//! narrowed layout. Negative (cropping) pads are not supported; use `narrow` for that.

use crate::backend::Backend;
use crate::layout::Layout;
use crate::shape::numel;
use crate::{Result, Tensor};

impl<B: Backend> Tensor<B> {
    /// Pads with `value`. `pads` lists `(before, after)` pairs starting from the **last** dim,
    /// as PyTorch's `F.pad`: `[left, right, top, bottom]` pads the last two dims. `value` is
    /// converted to the tensor's dtype. The result is always a fresh contiguous tensor.
    pub fn pad(&self, pads: &[usize], value: f64) -> Result<Self> {
        let op = "pad";
        if pads.len() % 2 != 0 {
            return Err(crate::arg_err!(
                op,
                "pads {pads:?} must have an even length ((before, after) pairs)"
            ));
        }
        let r = self.rank();
        if pads.len() / 2 > r {
            return Err(crate::shape_err!(
                op,
                "pads {pads:?} cover {} dims but the input {:?} has {r}",
                pads.len() / 2,
                self.shape()
            ));
        }
        let mut shape = self.shape().to_vec();
        // Where the input starts in each output dim; pair k pads dim r-1-k.
        let mut starts = alloc::vec![0usize; r];
        for (k, pair) in pads.chunks_exact(2).enumerate() {
            let d = r - 1 - k;
            starts[d] = pair[0];
            shape[d] = shape[d]
                .checked_add(pair[0])
                .and_then(|s| s.checked_add(pair[1]))
                .ok_or_else(|| {
                    crate::shape_err!(op, "padding dim {d} of {:?} overflows", self.shape())
                })?;
        }
        // A shape too large to describe is an error here, before any allocation.
        Layout::try_contiguous(op, &shape)?;
        let b = self.backend();
        let mut out = b.full(numel(&shape), value, self.dtype())?;
        if self.numel() > 0 {
            let mut dst = Layout::contiguous(&shape);
            for (d, &start) in starts.iter().enumerate() {
                dst = dst.narrow(d, start, self.shape()[d])?;
            }
            b.copy_into(self.storage(), self.layout(), &mut out, &dst)?;
        }
        Ok(Self::from_storage(out, &shape, b))
    }
}

#[cfg(test)]
mod tests {
    use crate::{Cpu, DType, Error, Tensor};
    use alloc::format;
    use alloc::vec;

    fn arange(n: usize, shape: &[usize]) -> Tensor<Cpu> {
        Tensor::arange(n, DType::F32, &Cpu)
            .unwrap()
            .reshape(shape)
            .unwrap()
    }

    #[test]
    fn pads_last_dims_first() {
        // F.pad(arange(4).view(2,2), (1, 0, 0, 1), value=-1)
        let x = arange(4, &[2, 2]);
        let r = x.pad(&[1, 0, 0, 1], -1.0).unwrap();
        assert_eq!(r.shape(), &[3, 3]);
        assert_eq!(
            r.to_vec::<f32>().unwrap(),
            vec![-1., 0., 1., -1., 2., 3., -1., -1., -1.]
        );
        // Only the last dim.
        let r = x.pad(&[0, 2], 0.0).unwrap();
        assert_eq!(
            r.to_vec::<f32>().unwrap(),
            vec![0., 1., 0., 0., 2., 3., 0., 0.]
        );
        // Nothing to pad: an equal copy.
        assert_eq!(
            x.pad(&[], 0.0).unwrap().to_vec::<f32>().unwrap(),
            vec![0., 1., 2., 3.]
        );
    }

    #[test]
    fn pads_views_and_other_dtypes() {
        // A transposed I64 input padded in both dims: x.t() = [[0, 2], [1, 3]].
        let x = arange(4, &[2, 2])
            .to_dtype(DType::I64)
            .unwrap()
            .t()
            .unwrap();
        let r = x.pad(&[0, 1, 1, 0], 7.0).unwrap();
        assert_eq!(r.to_vec::<i64>().unwrap(), vec![7, 7, 7, 0, 2, 7, 1, 3, 7]);
        // A broadcast bf16 input of an NCHW shape, padded in H and W.
        let b = Tensor::ones(&[1, 1, 1, 2], DType::BF16, &Cpu)
            .unwrap()
            .broadcast_to(&[1, 2, 1, 2])
            .unwrap();
        let r = b.pad(&[1, 1, 1, 1], 0.5).unwrap();
        assert_eq!(r.shape(), &[1, 2, 3, 4]);
        assert_eq!(r.dtype(), DType::BF16);
        let v = r.to_f64_vec().unwrap();
        assert_eq!(
            &v[..12],
            &[0.5, 0.5, 0.5, 0.5, 0.5, 1., 1., 0.5, 0.5, 0.5, 0.5, 0.5]
        );
        // An empty input is all padding.
        let e = Tensor::zeros(&[0, 2], DType::F32, &Cpu).unwrap();
        let r = e.pad(&[0, 0, 1, 1], 3.0).unwrap();
        assert_eq!(r.to_vec::<f32>().unwrap(), vec![3.; 4]);
    }

    #[test]
    fn bad_pads_are_errors() {
        let x = arange(4, &[2, 2]);
        let e = x.pad(&[1, 1, 1], 0.0).unwrap_err();
        assert!(matches!(e, Error::Argument { op: "pad", .. }));
        let e = x.pad(&[1, 1, 1, 1, 1, 1], 0.0).unwrap_err();
        assert!(format!("{e}").contains("cover 3 dims but the input [2, 2] has 2"));
        assert!(x.pad(&[usize::MAX, 1], 0.0).is_err());
    }
}
