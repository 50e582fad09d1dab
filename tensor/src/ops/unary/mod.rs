//! Elementwise functions of one tensor (PyTorch: `torch.exp`, `torch.relu`, `x * 2 + 1`, ...).

pub(crate) mod cpu;

use crate::backend::{Backend, UnaryOp};
use crate::{Result, Tensor};

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
}
