//! Indexing by tensors of I64 indices (PyTorch: `index_select`, `gather`, `scatter_add`).
//!
//! Shapes follow PyTorch's rules. Index values are checked here, on the host, for every
//! backend: an out-of-range or negative index is an [`Error::Index`](crate::Error::Index)
//! naming the op, the value and the dim size. PyTorch's CUDA kernels instead trip an
//! asynchronous device assert; reading the (small) index tensor back costs one transfer but
//! keeps errors as values on every device. Negative indices are errors, not wrapped.

pub(crate) mod cpu;

use crate::backend::Backend;
use crate::dtype::DType;
use crate::shape::normalize_axis;
use crate::{Result, Tensor};
use alloc::vec::Vec;

impl<B: Backend> Tensor<B> {
    /// The checks every indexing op shares: I64 index on the same backend, a data tensor of
    /// rank >= 1, and a normalized axis.
    fn index_args(&self, op: &'static str, axis: isize, index: &Self) -> Result<usize> {
        self.check_same_backend(op, index)?;
        index.check_dtype(op, DType::I64)?;
        if self.rank() == 0 {
            return Err(crate::shape_err!(
                op,
                "needs an input of rank >= 1, got a scalar (reshape it to [1])"
            ));
        }
        normalize_axis(op, axis, self.rank())
    }

    /// With [`debug_checks`](crate::debug_checks) on, reads the index to the host and checks
    /// every value against `dim`, so the error names the op before any kernel runs. Off by
    /// default: the read would stall a device, and every backend checks the index values
    /// itself (the CPU kernels return the same error).
    fn check_index_values(&self, op: &'static str, index: &Self, axis: usize) -> Result<()> {
        if !crate::debug_checks() {
            return Ok(());
        }
        let dim = self.shape()[axis];
        let values: Vec<i64> = index.to_vec()?;
        for &i in &values {
            cpu::checked_index(op, i, axis, dim)?;
        }
        Ok(())
    }

    /// `out[.., i, ..] = self[.., index[i], ..]` along `axis`; `index` is 1-D (or 0-D) I64
    /// (PyTorch: `index_select`). Out-of-range indices are an error.
    pub fn index_select(&self, axis: isize, index: &Self) -> Result<Self> {
        let op = "index_select";
        let a = self.index_args(op, axis, index)?;
        let index = match index.rank() {
            0 => index.reshape(&[1])?,
            1 => index.clone(),
            _ => {
                return Err(crate::shape_err!(
                    op,
                    "index must be 1-D, got shape {:?} (input {:?})",
                    index.shape(),
                    self.shape()
                ))
            }
        };
        self.check_index_values(op, &index, a)?;
        let mut shape = self.shape().to_vec();
        shape[a] = index.numel();
        let s = self.backend().index_select(
            self.storage(),
            self.layout(),
            a,
            index.storage(),
            index.layout(),
        )?;
        Ok(Self::from_storage(s, &shape, self.backend()))
    }

    /// `out[p] = self[p with p[axis] = index[p]]`; `index` is I64 of the same rank as `self`,
    /// no larger than `self` outside `axis`, and the output has its shape (PyTorch:
    /// `torch.gather`).
    pub fn gather(&self, axis: isize, index: &Self) -> Result<Self> {
        let op = "gather";
        let a = self.index_args(op, axis, index)?;
        let fits = index.rank() == self.rank()
            && (0..self.rank()).all(|d| d == a || index.shape()[d] <= self.shape()[d]);
        if !fits {
            return Err(crate::shape_err!(
                op,
                "index {:?} must have the rank of input {:?} and be no larger outside dim {a}",
                index.shape(),
                self.shape()
            ));
        }
        self.check_index_values(op, index, a)?;
        let s = self.backend().gather(
            self.storage(),
            self.layout(),
            a,
            index.storage(),
            index.layout(),
        )?;
        Ok(Self::from_storage(s, index.shape(), self.backend()))
    }

    /// A copy of `self` with `src[p]` added at `p with p[axis] = index[p]` for every position
    /// `p` of `index` (PyTorch: `self.scatter_add(axis, index, src)`, out of place). `index`,
    /// `src` and `self` have one rank; `index` is no larger than `src` in any dim and no
    /// larger than `self` outside `axis`. Only the leading `index`-shaped block of `src` is
    /// read, as in PyTorch.
    pub fn scatter_add(&self, axis: isize, index: &Self, src: &Self) -> Result<Self> {
        let op = "scatter_add";
        let a = self.index_args(op, axis, index)?;
        self.check_same_backend(op, src)?;
        self.check_same_dtype(op, src)?;
        let r = self.rank();
        let fits = index.rank() == r
            && src.rank() == r
            && (0..r).all(|d| {
                index.shape()[d] <= src.shape()[d]
                    && (d == a || index.shape()[d] <= self.shape()[d])
            });
        if !fits {
            return Err(crate::shape_err!(
                op,
                "index {:?} must have the rank of input {:?} and source {:?}, be no larger \
                 than the source, and no larger than the input outside dim {a}",
                index.shape(),
                self.shape(),
                src.shape()
            ));
        }
        self.check_index_values(op, index, a)?;
        // The kernel reads src through a view with exactly the index's shape.
        let mut src_layout = src.layout().clone();
        for (d, &n) in index.shape().iter().enumerate() {
            src_layout = src_layout.narrow(d, 0, n)?;
        }
        let b = self.backend();
        let mut out = b.cast(self.storage(), self.layout(), self.dtype())?;
        b.scatter_add(
            &mut out,
            self.shape(),
            a,
            index.storage(),
            index.layout(),
            src.storage(),
            &src_layout,
        )?;
        Ok(Self::from_storage(out, self.shape(), b))
    }
}

#[cfg(test)]
mod tests {
    use crate::{Cpu, DType, Error, Tensor};
    use alloc::vec;

    fn t(v: &[f32], shape: &[usize]) -> Tensor<Cpu> {
        Tensor::from_slice(v, shape, &Cpu).unwrap()
    }
    fn idx(v: &[i64], shape: &[usize]) -> Tensor<Cpu> {
        Tensor::from_slice(v, shape, &Cpu).unwrap()
    }
    fn arange(n: usize, shape: &[usize]) -> Tensor<Cpu> {
        Tensor::arange(n, DType::F32, &Cpu)
            .unwrap()
            .reshape(shape)
            .unwrap()
    }

    #[test]
    fn index_select_rows_and_columns() {
        let x = arange(6, &[2, 3]);
        let r = x.index_select(1, &idx(&[2, 0, 2], &[3])).unwrap();
        assert_eq!(r.shape(), &[2, 3]);
        assert_eq!(r.to_vec::<f32>().unwrap(), vec![2., 0., 2., 5., 3., 5.]);
        let r = x.index_select(-2, &idx(&[1], &[1])).unwrap();
        assert_eq!(r.to_vec::<f32>().unwrap(), vec![3., 4., 5.]);
        // A 0-d index keeps the dim with size 1, as in PyTorch.
        let r = x.index_select(1, &idx(&[1], &[])).unwrap();
        assert_eq!(r.shape(), &[2, 1]);
        let r = x.index_select(0, &idx(&[], &[0])).unwrap();
        assert_eq!(r.shape(), &[0, 3]);
    }

    #[test]
    fn index_select_views_and_dtypes() {
        // Transposed input, strided index (every other element of a longer index).
        let x = arange(6, &[2, 3]).t().unwrap(); // [[0,3],[1,4],[2,5]]
        let i = idx(&[2, 9, 0, 9], &[4]).slice(0, 0, 4, 2).unwrap();
        let r = x.index_select(0, &i).unwrap();
        assert_eq!(r.to_vec::<f32>().unwrap(), vec![2., 5., 0., 3.]);
        // Broadcast index (stride 0) and I64 / U8 / F16 data.
        let i = idx(&[1], &[1]).broadcast_to(&[3]).unwrap();
        let xi = idx(&[7, 8], &[2]);
        assert_eq!(
            xi.index_select(0, &i).unwrap().to_vec::<i64>().unwrap(),
            vec![8, 8, 8]
        );
        let xu = Tensor::from_slice(&[3u8, 4], &[2], &Cpu).unwrap();
        assert_eq!(
            xu.index_select(0, &i).unwrap().to_vec::<u8>().unwrap(),
            vec![4, 4, 4]
        );
        let xh = arange(2, &[2]).to_dtype(DType::F16).unwrap();
        let r = xh.index_select(0, &i).unwrap();
        assert_eq!(r.dtype(), DType::F16);
        assert_eq!(r.to_f64_vec().unwrap(), vec![1., 1., 1.]);
    }

    #[test]
    fn gather_matches_torch() {
        // torch.gather(tensor([[1,2],[3,4]]), 1, tensor([[0,0],[1,0]])) == [[1,1],[4,3]]
        let x = t(&[1., 2., 3., 4.], &[2, 2]);
        let r = x.gather(1, &idx(&[0, 0, 1, 0], &[2, 2])).unwrap();
        assert_eq!(r.to_vec::<f32>().unwrap(), vec![1., 1., 4., 3.]);
        // Index smaller than the input outside the axis, and larger along it.
        let x = arange(12, &[3, 4]);
        let r = x.gather(0, &idx(&[2, 0, 1, 2, 0, 0], &[3, 2])).unwrap();
        assert_eq!(r.shape(), &[3, 2]);
        assert_eq!(r.to_vec::<f32>().unwrap(), vec![8., 1., 4., 9., 0., 1.]);
        // Transposed input and transposed index: x.t() is [[0,4,8],[1,5,9],[2,6,10],[3,7,11]].
        let xt = x.t().unwrap();
        let it = idx(&[0, 2, 1, 1], &[2, 2]).t().unwrap(); // [[0,1],[2,1]]
        let r = xt.gather(1, &it).unwrap();
        assert_eq!(r.to_vec::<f32>().unwrap(), vec![0., 4., 9., 5.]);
        // F64 data through a broadcast input.
        let xb = arange(3, &[1, 3])
            .to_dtype(DType::F64)
            .unwrap()
            .broadcast_to(&[2, 3])
            .unwrap();
        let r = xb.gather(1, &idx(&[2, 1], &[2, 1])).unwrap();
        assert_eq!(r.to_vec::<f64>().unwrap(), vec![2., 1.]);
    }

    #[test]
    fn scatter_add_accumulates_duplicates() {
        // torch.zeros(2,3).scatter_add(1, tensor([[0,0,2],[1,1,1]]), ones(2,3))
        let z = Tensor::zeros(&[2, 3], DType::F32, &Cpu).unwrap();
        let i = idx(&[0, 0, 2, 1, 1, 1], &[2, 3]);
        let ones = Tensor::ones(&[2, 3], DType::F32, &Cpu).unwrap();
        let r = z.scatter_add(1, &i, &ones).unwrap();
        assert_eq!(r.to_vec::<f32>().unwrap(), vec![2., 0., 1., 0., 3., 0.]);
        // The input is untouched (out of place).
        assert_eq!(z.to_vec::<f32>().unwrap(), vec![0.; 6]);
    }

    #[test]
    fn scatter_add_views_and_dtypes() {
        // Transposed self, broadcast src, index smaller than src (only its block is read).
        let base = arange(6, &[3, 2]).t().unwrap(); // [[0,2,4],[1,3,5]]
        let src = t(&[10., 20., 30.], &[1, 3]).broadcast_to(&[2, 3]).unwrap();
        let i = idx(&[1, 0], &[1, 2]);
        let r = base.scatter_add(0, &i, &src).unwrap();
        assert_eq!(r.to_vec::<f32>().unwrap(), vec![0., 22., 4., 11., 3., 5.]);
        // Broadcast index along dim 0: every src row lands in column 1.
        let i = idx(&[1], &[1, 1]).broadcast_to(&[2, 2]).unwrap();
        let src = arange(4, &[2, 2]).to_dtype(DType::BF16).unwrap();
        let z = Tensor::zeros(&[2, 3], DType::BF16, &Cpu).unwrap();
        let r = z.scatter_add(1, &i, &src).unwrap();
        assert_eq!(r.dtype(), DType::BF16);
        assert_eq!(r.to_f64_vec().unwrap(), vec![0., 1., 0., 0., 5., 0.]);
        // Integer counting (a histogram).
        let counts = Tensor::zeros(&[3], DType::I64, &Cpu).unwrap();
        let r = counts
            .scatter_add(0, &idx(&[2, 0, 2, 2], &[4]), &idx(&[1, 1, 1, 1], &[4]))
            .unwrap();
        assert_eq!(r.to_vec::<i64>().unwrap(), vec![1, 0, 3]);
        // f16 accumulates in f32: 2048 + 1 + 1 rounds once (to 2050), not twice (to 2048).
        let h = Tensor::full(&[1], 2048.0, DType::F16, &Cpu).unwrap();
        let src = Tensor::ones(&[2], DType::F16, &Cpu).unwrap();
        let r = h.scatter_add(0, &idx(&[0, 0], &[2]), &src).unwrap();
        assert_eq!(r.to_f64_vec().unwrap(), vec![2050.0]);
    }

    fn msg(e: Error) -> alloc::string::String {
        alloc::format!("{e}")
    }

    #[test]
    fn out_of_range_and_negative_indices_are_errors() {
        let x = arange(6, &[2, 3]);
        let e = x.index_select(1, &idx(&[0, 3], &[2])).unwrap_err();
        assert!(matches!(
            e,
            Error::Index {
                op: "index_select",
                ..
            }
        ));
        assert!(msg(e).contains("index 3 is out of range for dim 1 of size 3"));
        let e = x.gather(0, &idx(&[-1, 0], &[1, 2])).unwrap_err();
        assert!(msg(e).contains("gather: index error: index -1"));
        let e = x
            .scatter_add(0, &idx(&[2], &[1, 1]), &arange(1, &[1, 1]))
            .unwrap_err();
        assert!(msg(e).contains("scatter_add: index error: index 2 is out of range"));
        // The kernels check too, for callers that bypass the front end.
        let e = cpu_kernel_oob();
        assert!(matches!(e, Error::Index { op: "gather", .. }));
    }

    fn cpu_kernel_oob() -> Error {
        use crate::Backend;
        let x = arange(2, &[2]);
        let i = idx(&[5], &[1]);
        Cpu.gather(x.storage(), x.layout(), 0, i.storage(), i.layout())
            .unwrap_err()
    }

    #[test]
    fn shape_dtype_and_axis_errors() {
        let x = arange(6, &[2, 3]);
        // Index dtype.
        let fi = t(&[0.], &[1]);
        assert!(matches!(
            x.index_select(0, &fi).unwrap_err(),
            Error::DType { .. }
        ));
        // Index rank.
        let e = x.index_select(0, &idx(&[0, 0], &[1, 2])).unwrap_err();
        assert!(msg(e).contains("index must be 1-D"));
        let e = x.gather(0, &idx(&[0], &[1])).unwrap_err();
        assert!(msg(e).contains("gather: shape error"));
        // Index larger than the input outside the axis.
        let e = x.gather(0, &idx(&[0; 4], &[1, 4])).unwrap_err();
        assert!(msg(e).contains("[1, 4]"));
        // Axis out of range, scalar input.
        assert!(matches!(
            x.gather(2, &idx(&[0; 6], &[2, 3])).unwrap_err(),
            Error::Axis { .. }
        ));
        let s = Tensor::scalar(1.0, DType::F32, &Cpu).unwrap();
        assert!(s.index_select(0, &idx(&[0], &[1])).is_err());
        // scatter_add: src dtype and src smaller than index.
        let i = idx(&[0; 6], &[2, 3]);
        let src64 = x.to_dtype(DType::F64).unwrap();
        assert!(matches!(
            x.scatter_add(0, &i, &src64).unwrap_err(),
            Error::DType { .. }
        ));
        let e = x.scatter_add(0, &i, &arange(4, &[2, 2])).unwrap_err();
        assert!(msg(e).contains("scatter_add: shape error"));
    }
}
