//! Max, average and adaptive average pooling over NCHW (PyTorch: `F.max_pool2d`,
//! `F.avg_pool2d`, `F.adaptive_avg_pool2d`), with the adjoints their backward passes need.

pub(crate) mod cpu;

use crate::backend::Backend;
pub use crate::backend::PoolParams;
use crate::{Result, Tensor};

/// Kernel, stride, padding and dilation of a pooling window (PyTorch's keyword arguments;
/// floor mode). `count_include_pad` applies to average pooling only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool2dOptions {
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    pub dilation: [usize; 2],
    pub count_include_pad: bool,
}

impl Pool2dOptions {
    /// A square window: kernel `k`, stride `s`, padding `p`, dilation 1, padding counted.
    pub fn new(kernel: usize, stride: usize, padding: usize) -> Self {
        Pool2dOptions {
            kernel: [kernel; 2],
            stride: [stride; 2],
            padding: [padding; 2],
            dilation: [1, 1],
            count_include_pad: true,
        }
    }
}

impl<B: Backend> Tensor<B> {
    /// Validates a `[n, c, h, w]` input and builds the pooling geometry: positive kernel,
    /// stride and dilation, padding at most half the kernel (PyTorch's rule), an output of at
    /// least one pixel, and no window lying entirely in the padding (possible only with
    /// dilation; PyTorch would return -inf with an index outside the plane).
    pub fn pool2d_params(&self, o: &Pool2dOptions) -> Result<PoolParams> {
        let op = "pool2d";
        let in_hw = self.check_nchw_plane(op)?;
        let s = self.shape();
        let p = PoolParams {
            in_hw,
            kernel: o.kernel,
            stride: o.stride,
            padding: o.padding,
            dilation: o.dilation,
            count_include_pad: o.count_include_pad,
        };
        let out = p.out_hw()?;
        for (axis, &len) in out.iter().enumerate() {
            if let Some(at) = (0..len).find(|&i| !window_hits_input(&p, axis, i)) {
                return Err(crate::arg_err!(
                    op,
                    "for input {s:?}, the window at output {at} of dim {} covers only padding (kernel {:?}, padding {:?}, dilation {:?})",
                    axis + 2,
                    p.kernel,
                    p.padding,
                    p.dilation
                ));
            }
        }
        Ok(p)
    }

    /// Max pooling; returns `(values, indices)` where each index (I64) is the flat position
    /// `y*w + x` of the maximum in its input plane, as PyTorch's `return_indices=True`.
    /// Padding counts as -inf; a NaN in a window is its maximum.
    pub fn max_pool2d(&self, o: &Pool2dOptions) -> Result<(Self, Self)> {
        self.check_float("max_pool2d")?;
        let p = self.pool2d_params(o)?;
        let out = p.out_hw()?;
        let (v, i) = self
            .backend()
            .max_pool2d(self.storage(), self.layout(), &p)?;
        Ok((self.with_plane(v, out), self.with_plane(i, out)))
    }

    /// The input gradient of max pooling: `self` is the output gradient `[n, c, oh, ow]`,
    /// `indices` what [`Tensor::max_pool2d`] returned; routes each gradient to its maximum.
    ///
    /// A composite: a `scatter_add` of the gradient into zeros of shape `[n, c, h*w]` along
    /// the flattened plane (windows that overlap add up, as in PyTorch).
    pub fn max_pool2d_backward(&self, indices: &Self, in_hw: [usize; 2]) -> Result<Self> {
        let op = "max_pool2d_backward";
        self.check_float(op)?;
        self.check_rank(op, 4)?;
        indices.check_dtype(op, crate::DType::I64)?;
        self.check_same_backend(op, indices)?;
        if indices.shape() != self.shape() {
            return Err(crate::shape_err!(
                op,
                "gradient {:?} and indices {:?} differ in shape",
                self.shape(),
                indices.shape()
            ));
        }
        if in_hw.contains(&0) {
            return Err(crate::shape_err!(
                op,
                "input size {in_hw:?} must be non-zero (gradient {:?})",
                self.shape()
            ));
        }
        let s = self.shape();
        let (n, c, l) = (s[0], s[1], s[2] * s[3]);
        let zeros = Self::zeros(&[n, c, in_hw[0] * in_hw[1]], self.dtype(), self.backend())?;
        zeros
            .scatter_add(2, &indices.reshape(&[n, c, l])?, &self.reshape(&[n, c, l])?)?
            .reshape(&[n, c, in_hw[0], in_hw[1]])
    }

    /// Average pooling; padding adds zeros, counted in the divisor iff `count_include_pad`.
    /// Dilation must be 1 (PyTorch's `avg_pool2d` has none).
    pub fn avg_pool2d(&self, o: &Pool2dOptions) -> Result<Self> {
        let op = "avg_pool2d";
        self.check_float(op)?;
        if o.dilation != [1, 1] {
            return Err(crate::arg_err!(
                op,
                "dilation {:?} must be 1 (input {:?})",
                o.dilation,
                self.shape()
            ));
        }
        let p = self.pool2d_params(o)?;
        let out = p.out_hw()?;
        let y = self
            .backend()
            .avg_pool2d(self.storage(), self.layout(), &p)?;
        Ok(self.with_plane(y, out))
    }

    /// The input gradient of average pooling: `self` is the output gradient `[n, c, oh, ow]`
    /// for the geometry `p` (from [`Tensor::pool2d_params`]); returns `[n, c, h, w]`.
    pub fn avg_pool2d_backward(&self, p: &PoolParams) -> Result<Self> {
        let op = "avg_pool2d_backward";
        self.check_float(op)?;
        self.check_rank(op, 4)?;
        if p.dilation != [1, 1] || p.in_hw.contains(&0) {
            return Err(crate::arg_err!(
                op,
                "needs dilation 1 and a non-empty input, got dilation {:?}, input size {:?}",
                p.dilation,
                p.in_hw
            ));
        }
        let out = p.out_hw()?;
        let s = self.shape();
        if s[2..] != out {
            return Err(crate::shape_err!(
                op,
                "gradient {s:?} does not match the pooled size {out:?} of input size {:?}",
                p.in_hw
            ));
        }
        let g = self
            .backend()
            .avg_pool2d_backward(self.storage(), self.layout(), p)?;
        Ok(self.with_plane(g, p.in_hw))
    }

    /// Adaptive average pooling to `out_hw` (ResNet's global pool is `[1, 1]`). Output pixel
    /// `i` averages input rows `floor(i*h/oh)..ceil((i+1)*h/oh)` (likewise for columns).
    pub fn adaptive_avg_pool2d(&self, out_hw: [usize; 2]) -> Result<Self> {
        let op = "adaptive_avg_pool2d";
        self.check_float(op)?;
        self.check_rank(op, 4)?;
        let s = self.shape();
        check_adaptive(op, [s[2], s[3]], out_hw)?;
        let y = self
            .backend()
            .adaptive_avg_pool2d(self.storage(), self.layout(), out_hw)?;
        Ok(self.with_plane(y, out_hw))
    }

    /// The input gradient of adaptive average pooling: `self` is the output gradient
    /// `[n, c, oh, ow]`; returns `[n, c, in_hw[0], in_hw[1]]`.
    pub fn adaptive_avg_pool2d_backward(&self, in_hw: [usize; 2]) -> Result<Self> {
        let op = "adaptive_avg_pool2d_backward";
        self.check_float(op)?;
        self.check_rank(op, 4)?;
        let s = self.shape();
        check_adaptive(op, in_hw, [s[2], s[3]])?;
        let g =
            self.backend()
                .adaptive_avg_pool2d_backward(self.storage(), self.layout(), in_hw)?;
        Ok(self.with_plane(g, in_hw))
    }
}

/// True if the window of output position `o` along `axis` has a tap inside the input.
fn window_hits_input(p: &PoolParams, axis: usize, o: usize) -> bool {
    let (k, d) = (p.kernel[axis], p.dilation[axis]);
    let start = (o * p.stride[axis]) as isize - p.padding[axis] as isize;
    // The first tap at or after 0, then whether it is still in the window and the input.
    let first = if start >= 0 {
        0
    } else {
        ((-start) as usize).div_ceil(d)
    };
    first < k && start + ((first * d) as isize) < p.in_hw[axis] as isize
}

/// Adaptive pooling needs non-empty input and output planes (an empty bin has no average).
/// The CPU kernel checks it too, against direct backend calls.
fn check_adaptive(op: &'static str, in_hw: [usize; 2], out_hw: [usize; 2]) -> Result<()> {
    if in_hw.contains(&0) || out_hw.contains(&0) {
        return Err(crate::shape_err!(
            op,
            "input size {in_hw:?} and output size {out_hw:?} must be non-zero"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! Front-end behavior: views, adjoint identities and errors. Values against PyTorch are
    //! in `cpu.rs`.
    use super::*;
    use crate::testing::{dot, random};
    use crate::{Cpu, DType, Error};

    /// `<A x, y> == <x, A^T y>` for random `x` and `y`.
    fn check_adjoint(
        in_shape: &[usize],
        fwd: impl Fn(&Tensor<Cpu>) -> Tensor<Cpu>,
        bwd: impl Fn(&Tensor<Cpu>) -> Tensor<Cpu>,
    ) {
        let x = random(in_shape, 1);
        let ax = fwd(&x);
        let y = random(ax.shape(), 2);
        let aty = bwd(&y);
        assert_eq!(aty.shape(), in_shape);
        let (l, r) = (dot(&ax, &y), dot(&x, &aty));
        assert!((l - r).abs() < 1e-12 * l.abs().max(1.0), "{l} vs {r}");
    }

    /// `[1, 2, 5, 6]` as a permuted view of a `[6, 2, 5, 1]` storage, and its contiguous copy.
    fn permuted() -> (Tensor<Cpu>, Tensor<Cpu>) {
        let v = random(&[6, 2, 5, 1], 3).permute(&[3, 1, 2, 0]).unwrap();
        assert!(!v.is_contiguous());
        let c = v.contiguous().unwrap();
        (v, c)
    }

    #[test]
    fn views_equal_contiguous() {
        let (v, c) = permuted();
        let o = Pool2dOptions::new(3, 2, 1);
        let (mv, mi) = v.max_pool2d(&o).unwrap();
        let (cv, ci) = c.max_pool2d(&o).unwrap();
        assert_eq!(mv.to_f64_vec().unwrap(), cv.to_f64_vec().unwrap());
        assert_eq!(mi.to_vec::<i64>().unwrap(), ci.to_vec::<i64>().unwrap());
        let (a, b) = (v.avg_pool2d(&o).unwrap(), c.avg_pool2d(&o).unwrap());
        assert_eq!(a.to_f64_vec().unwrap(), b.to_f64_vec().unwrap());
        let (a, b) = (
            v.adaptive_avg_pool2d([3, 4]).unwrap(),
            c.adaptive_avg_pool2d([3, 4]).unwrap(),
        );
        assert_eq!(a.to_f64_vec().unwrap(), b.to_f64_vec().unwrap());
        // Gradients given as views (a transposed and a sliced storage).
        let p = c.pool2d_params(&o).unwrap();
        let g = random(&[1, 2, 3, 3], 4).transpose(2, 3).unwrap();
        let gc = g.contiguous().unwrap();
        let (a, b) = (
            g.avg_pool2d_backward(&p).unwrap(),
            gc.avg_pool2d_backward(&p).unwrap(),
        );
        assert_eq!(a.to_f64_vec().unwrap(), b.to_f64_vec().unwrap());
        let g = random(&[1, 2, 3, 8], 5).slice(3, 1, 8, 2).unwrap();
        let gc = g.contiguous().unwrap();
        let (a, b) = (
            g.adaptive_avg_pool2d_backward([5, 6]).unwrap(),
            gc.adaptive_avg_pool2d_backward([5, 6]).unwrap(),
        );
        assert_eq!(a.to_f64_vec().unwrap(), b.to_f64_vec().unwrap());
    }

    #[test]
    fn backward_is_the_adjoint() {
        for (k, s, pad, cip) in [
            (3, 2, 1, true),
            (3, 2, 1, false),
            (2, 1, 1, false),
            (4, 3, 2, true),
        ] {
            let mut o = Pool2dOptions::new(k, s, pad);
            o.count_include_pad = cip;
            let shape = [2, 3, 7, 6];
            let p = random(&shape, 0).pool2d_params(&o).unwrap();
            check_adjoint(
                &shape,
                |x| x.avg_pool2d(&o).unwrap(),
                |y| y.avg_pool2d_backward(&p).unwrap(),
            );
        }
        for (inp, out) in [([7, 6], [3, 4]), ([3, 5], [4, 7]), ([5, 5], [1, 1])] {
            check_adjoint(
                &[2, 2, inp[0], inp[1]],
                |x| x.adaptive_avg_pool2d(out).unwrap(),
                |y| y.adaptive_avg_pool2d_backward(inp).unwrap(),
            );
        }
    }

    #[test]
    fn half_precision_tracks_f32() {
        let x = random(&[1, 2, 5, 6], 6);
        let o = Pool2dOptions::new(3, 2, 1);
        for dt in [DType::F16, DType::BF16] {
            let xh = x.to_dtype(dt).unwrap();
            let want = xh.to_dtype(DType::F32).unwrap().avg_pool2d(&o).unwrap();
            let got = xh.avg_pool2d(&o).unwrap();
            assert_eq!(got.dtype(), dt);
            // One rounding of the f32 result.
            let want_h = want.to_dtype(dt).unwrap().to_f64_vec().unwrap();
            assert_eq!(got.to_f64_vec().unwrap(), want_h);
            let got = xh.adaptive_avg_pool2d([2, 2]).unwrap();
            assert_eq!(got.dtype(), dt);
        }
    }

    #[test]
    fn max_pool_nan_and_half() {
        // A NaN is the maximum of its window (PyTorch's `val > max || isnan(val)`).
        let mut v = alloc::vec![0.0f32; 16];
        v[5] = f32::NAN;
        let x = Tensor::from_vec(v, &[1, 1, 4, 4], &Cpu).unwrap();
        let (y, i) = x.max_pool2d(&Pool2dOptions::new(2, 2, 0)).unwrap();
        let y = y.to_vec::<f32>().unwrap();
        assert!(y[0].is_nan() && y[1..] == [0.0; 3]);
        assert_eq!(i.to_vec::<i64>().unwrap(), [5, 2, 8, 10]);
        // f16 runs through f32 and gives the same (exactly representable) maxima.
        let x = random(&[1, 2, 5, 6], 10).to_dtype(DType::F16).unwrap();
        let o = Pool2dOptions::new(3, 2, 1);
        let (y16, i16) = x.max_pool2d(&o).unwrap();
        let (y, i) = x.to_dtype(DType::F32).unwrap().max_pool2d(&o).unwrap();
        assert_eq!(y16.dtype(), DType::F16);
        assert_eq!(y16.to_f64_vec().unwrap(), y.to_f64_vec().unwrap());
        assert_eq!(i16.to_vec::<i64>().unwrap(), i.to_vec::<i64>().unwrap());
    }

    #[test]
    fn errors() {
        let x = random(&[1, 1, 4, 4], 7);
        let o = Pool2dOptions::new(2, 2, 0);
        let is_shape = |e: Error| matches!(e, Error::Shape { .. });
        let is_arg = |e: Error| matches!(e, Error::Argument { .. });
        assert!(is_shape(random(&[1, 4, 4], 0).max_pool2d(&o).unwrap_err()));
        assert!(is_shape(
            random(&[1, 1, 0, 4], 0).avg_pool2d(&o).unwrap_err()
        ));
        let ints = Tensor::<Cpu>::zeros(&[1, 1, 4, 4], DType::I64, &Cpu).unwrap();
        assert!(matches!(ints.max_pool2d(&o), Err(Error::DType { .. })));
        assert!(matches!(
            ints.adaptive_avg_pool2d([1, 1]),
            Err(Error::DType { .. })
        ));
        // Padding above half the kernel, zero stride, a kernel larger than the input.
        assert!(is_arg(
            x.max_pool2d(&Pool2dOptions::new(3, 1, 2)).unwrap_err()
        ));
        assert!(is_arg(
            x.avg_pool2d(&Pool2dOptions::new(2, 0, 0)).unwrap_err()
        ));
        assert!(is_shape(
            x.max_pool2d(&Pool2dOptions::new(5, 1, 0)).unwrap_err()
        ));
        // Average pooling has no dilation.
        let mut d = o;
        d.dilation = [2, 2];
        assert!(is_arg(x.avg_pool2d(&d).unwrap_err()));
        // A dilated window made of padding only (taps at -1 and 2 of a 2-pixel input).
        let small = random(&[1, 1, 2, 2], 8);
        let bad = Pool2dOptions {
            dilation: [3, 3],
            ..Pool2dOptions::new(2, 1, 1)
        };
        let e = small.max_pool2d(&bad).unwrap_err();
        assert!(is_arg(e.clone()), "{e}");
        assert!(alloc::format!("{e}").contains("only padding"), "{e}");
        // Backward shapes.
        let p = x.pool2d_params(&o).unwrap();
        assert!(is_shape(
            random(&[1, 1, 3, 2], 0)
                .avg_pool2d_backward(&p)
                .unwrap_err()
        ));
        assert!(is_shape(x.adaptive_avg_pool2d([0, 1]).unwrap_err()));
        assert!(is_shape(
            x.adaptive_avg_pool2d_backward([3, 0]).unwrap_err()
        ));
        let (_, idx) = x.max_pool2d(&o).unwrap();
        let g = random(&[1, 1, 2, 2], 9);
        assert!(is_shape(
            g.max_pool2d_backward(&idx.reshape(&[1, 1, 4, 1]).unwrap(), [4, 4])
                .unwrap_err()
        ));
        assert!(matches!(
            g.max_pool2d_backward(&g, [4, 4]),
            Err(Error::DType { .. })
        ));
        assert!(is_shape(g.max_pool2d_backward(&idx, [0, 4]).unwrap_err()));
    }
}
