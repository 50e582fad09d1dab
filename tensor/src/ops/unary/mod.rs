//! Elementwise functions of one tensor (PyTorch: `torch.exp`, `torch.relu`, `x * 2 + 1`, ...).

pub(crate) mod cpu;
pub(crate) mod erf_f32;
#[cfg(all(feature = "std", target_arch = "x86_64"))]
mod gelu_avx2;

use crate::backend::{Backend, UnaryOp};
use crate::{Result, Tensor};

/// Which GELU (PyTorch: the `approximate` argument of `F.gelu` / `nn.GELU`, `'none'` or
/// `'tanh'`). The default is the exact erf form, as PyTorch's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum GeluApproximate {
    /// `x/2 * (1 + erf(x/sqrt(2)))` (`approximate='none'`).
    #[default]
    None,
    /// `x/2 * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))` (`approximate='tanh'`).
    Tanh,
}

macro_rules! unary_methods {
    ($($(#[$doc:meta])* $name:ident => $op:expr;)*) => {
        impl<B: Backend> Tensor<B> {
            $(
                $(#[$doc])*
                pub fn $name(&self) -> Result<Self> {
                    self.unary($op)
                }
            )*
        }
    };
}

unary_methods! {
    /// `-x`
    neg => UnaryOp::Neg;
    /// `|x|`
    abs => UnaryOp::Abs;
    /// -1, 0 or 1.
    sign => UnaryOp::Sign;
    /// `e^x`
    exp => UnaryOp::Exp;
    /// Natural logarithm.
    log => UnaryOp::Log;
    /// Square root.
    sqrt => UnaryOp::Sqrt;
    /// `1/sqrt(x)`
    rsqrt => UnaryOp::Rsqrt;
    /// `1/x`
    recip => UnaryOp::Recip;
    /// `x*x`
    square => UnaryOp::Square;
    /// Hyperbolic tangent.
    tanh => UnaryOp::Tanh;
    /// The error function.
    erf => UnaryOp::Erf;
    /// Logistic sigmoid `1/(1+e^-x)`.
    sigmoid => UnaryOp::Sigmoid;
    /// `max(x, 0)`
    relu => UnaryOp::Relu;
}

impl<B: Backend> Tensor<B> {
    /// Applies any [`UnaryOp`] (float tensors only).
    pub fn unary(&self, op: UnaryOp) -> Result<Self> {
        self.check_float("unary")?;
        let s = self.backend().unary(op, self.storage(), self.layout())?;
        Ok(Self::from_storage(s, self.shape(), self.backend()))
    }

    /// `x^p` for a scalar exponent (PyTorch: `x.pow(p)` with a Python float).
    pub fn powf(&self, p: f64) -> Result<Self> {
        self.unary(UnaryOp::Powf(p))
    }

    /// `mul*x + add` in one pass.
    pub fn affine(&self, mul: f64, add: f64) -> Result<Self> {
        self.unary(UnaryOp::Affine { mul, add })
    }

    /// `x + c`
    pub fn add_scalar(&self, c: f64) -> Result<Self> {
        self.affine(1.0, c)
    }

    /// `x * c`
    pub fn mul_scalar(&self, c: f64) -> Result<Self> {
        self.affine(c, 0.0)
    }

    /// `x / c`
    pub fn div_scalar(&self, c: f64) -> Result<Self> {
        self.affine(1.0 / c, 0.0)
    }

    /// `min(max(x, min), max)` (PyTorch: `clamp`).
    pub fn clamp(&self, min: f64, max: f64) -> Result<Self> {
        if min > max {
            return Err(crate::arg_err!(
                "clamp",
                "min {min} is greater than max {max}"
            ));
        }
        self.unary(UnaryOp::Clamp { min, max })
    }

    /// GELU, exact erf form (PyTorch: `F.gelu(x)` with `approximate='none'`). A composite op:
    /// backends may fuse it.
    pub fn gelu(&self) -> Result<Self> {
        self.check_float("gelu")?;
        self.backend().gelu(self)
    }

    /// GELU in the form `approximate` selects (PyTorch: `F.gelu(x, approximate=...)`):
    /// [`GeluApproximate::None`] is [`Tensor::gelu`], [`GeluApproximate::Tanh`] is
    /// [`Tensor::gelu_tanh`].
    pub fn gelu_with(&self, approximate: GeluApproximate) -> Result<Self> {
        match approximate {
            GeluApproximate::None => self.gelu(),
            GeluApproximate::Tanh => self.gelu_tanh(),
        }
    }

    /// GELU, tanh approximation: `x/2 * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))`
    /// (PyTorch: `F.gelu(x, approximate='tanh')`). A composite op: backends may fuse it.
    pub fn gelu_tanh(&self) -> Result<Self> {
        self.check_float("gelu_tanh")?;
        self.backend().gelu_tanh(self)
    }

    /// The gradient of [`Tensor::gelu`] at `self` for an upstream gradient `grad` of the
    /// same shape and dtype (PyTorch: `torch.ops.aten.gelu_backward(grad, x)`). A composite
    /// op: backends may fuse it.
    pub fn gelu_backward(&self, grad: &Self) -> Result<Self> {
        self.check_float("gelu_backward")?;
        self.check_same_backend("gelu_backward", grad)?;
        self.check_same_dtype("gelu_backward", grad)?;
        if self.shape() != grad.shape() {
            return Err(crate::shape_err!(
                "gelu_backward",
                "x has shape {:?} but grad has shape {:?}",
                self.shape(),
                grad.shape()
            ));
        }
        self.backend().gelu_backward(self, grad)
    }

    /// The gradient of [`Tensor::gelu_with`] for `approximate` at `self` (PyTorch:
    /// `torch.ops.aten.gelu_backward(grad, x, approximate=...)`).
    pub fn gelu_backward_with(&self, grad: &Self, approximate: GeluApproximate) -> Result<Self> {
        match approximate {
            GeluApproximate::None => self.gelu_backward(grad),
            GeluApproximate::Tanh => self.gelu_tanh_backward(grad),
        }
    }

    /// The gradient of [`Tensor::gelu_tanh`] at `self` for an upstream gradient `grad` of the
    /// same shape and dtype (PyTorch: `torch.ops.aten.gelu_backward(grad, x,
    /// approximate='tanh')`). A composite op: backends may fuse it.
    pub fn gelu_tanh_backward(&self, grad: &Self) -> Result<Self> {
        self.check_float("gelu_tanh_backward")?;
        self.check_same_backend("gelu_tanh_backward", grad)?;
        self.check_same_dtype("gelu_tanh_backward", grad)?;
        if self.shape() != grad.shape() {
            return Err(crate::shape_err!(
                "gelu_tanh_backward",
                "x has shape {:?} but grad has shape {:?}",
                self.shape(),
                grad.shape()
            ));
        }
        self.backend().gelu_tanh_backward(self, grad)
    }
}

#[cfg(test)]
mod tests {
    use super::GeluApproximate;
    use crate::backend::composite;
    use crate::{Cpu, DType, Rng, Tensor};
    use alloc::vec::Vec;

    fn vals(t: &Tensor<Cpu>) -> Vec<f64> {
        t.to_dtype(DType::F64).unwrap().to_vec::<f64>().unwrap()
    }

    fn assert_close(a: &[f64], b: &[f64], tol: f64) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() <= tol * (1.0 + y.abs()), "{x} vs {y}");
        }
    }

    /// The CPU's fused tanh-GELU kernels (forward and backward, f32/f64, strided views) agree
    /// with the composite specification; f16 falls back to the composite.
    #[test]
    fn gelu_tanh_fused_matches_composite() {
        let mut rng = Rng::new(7);
        for (dtype, tol) in [(DType::F64, 1e-14), (DType::F32, 1e-6), (DType::F16, 0.0)] {
            let x = Tensor::randn(&[3, 5], 0.0, 3.0, DType::F64, &mut rng, &Cpu)
                .unwrap()
                .to_dtype(dtype)
                .unwrap();
            let g = Tensor::randn(&[5, 3], 0.0, 1.0, DType::F64, &mut rng, &Cpu)
                .unwrap()
                .to_dtype(dtype)
                .unwrap()
                .transpose(0, 1)
                .unwrap();
            let xt = x.transpose(0, 1).unwrap().contiguous().unwrap();
            let x = xt.transpose(0, 1).unwrap(); // strided view
            assert_close(
                &vals(&x.gelu_tanh().unwrap()),
                &vals(&composite::gelu_tanh(&x).unwrap()),
                tol,
            );
            assert_close(
                &vals(&x.gelu_tanh_backward(&g).unwrap()),
                &vals(&composite::gelu_tanh_backward(&x, &g).unwrap()),
                tol,
            );
        }
    }

    #[test]
    fn gelu_with_selects_the_form() {
        let x = Tensor::from_vec(alloc::vec![-1.5f64, 0.0, 1.0, 4.0], &[4], &Cpu).unwrap();
        let g = x.ones_like().unwrap();
        assert_eq!(
            vals(&x.gelu_with(GeluApproximate::None).unwrap()),
            vals(&x.gelu().unwrap())
        );
        assert_eq!(
            vals(&x.gelu_with(GeluApproximate::Tanh).unwrap()),
            vals(&x.gelu_tanh().unwrap())
        );
        assert_eq!(
            vals(&x.gelu_backward_with(&g, GeluApproximate::Tanh).unwrap()),
            vals(&x.gelu_tanh_backward(&g).unwrap())
        );
        assert_eq!(GeluApproximate::default(), GeluApproximate::None);
        // 0.5 · (1 + tanh(√(2/π) · 1.044715)) at x = 1; the forms differ by ~1.5e-4 there
        let y = vals(&x.gelu_tanh().unwrap());
        assert!((y[2] - 0.841_191_990_608_276_8).abs() < 1e-15, "{}", y[2]);
        assert_eq!(y[1], 0.0);
        // integer inputs and mismatched shapes are errors
        let i = Tensor::from_vec(alloc::vec![1i64, 2], &[2], &Cpu).unwrap();
        assert!(i.gelu_tanh().is_err());
        assert!(x.gelu_tanh_backward(&g.reshape(&[2, 2]).unwrap()).is_err());
    }
}
