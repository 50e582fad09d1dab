//! Elementwise functions of one input. One backward struct covers them all; each derivative
//! is written in terms of either the input `x` or the output `y` (whichever is cheaper), and
//! only that one tensor is saved.

use super::{masked, need};
use crate::{Backward, Var};
use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;
use tessera_tensor::{Backend, CmpOp, GeluApproximate, Result, Tensor, UnaryOp};

/// Which function was applied: the tensor crate's [`UnaryOp`] plus GELU in either form (a
/// composite op).
#[derive(Clone, Copy, Debug)]
enum Unary {
    Op(UnaryOp),
    Gelu(GeluApproximate),
}

/// Which tensor a derivative needs.
enum Needs {
    Input,
    Output,
    Nothing,
}

impl Unary {
    fn needs(self) -> Needs {
        use UnaryOp::*;
        match self {
            Unary::Gelu(_) => Needs::Input,
            Unary::Op(Neg | Sign | Affine { .. } | DivScalar(_)) => Needs::Nothing,
            Unary::Op(Exp | Sqrt | Rsqrt | Recip | Tanh | Sigmoid) => Needs::Output,
            Unary::Op(Abs | Log | Square | Erf | Relu | Powf(_) | Clamp { .. } | ScalarDiv(_)) => {
                Needs::Input
            }
        }
    }
}

struct UnaryBackward<B: Backend> {
    f: Unary,
    /// `x` or `y` as `f.needs()` says; `None` when the derivative needs neither.
    saved: Option<Tensor<B>>,
}

impl<B: Backend> UnaryBackward<B> {
    /// `dy/dx * g`, elementwise.
    fn grad(&self, g: &Tensor<B>) -> Result<Tensor<B>> {
        // Each arm reads only the tensor its op saved (`x` or `y`); for the ops that save
        // nothing, neither name is read and `g` is a harmless stand-in.
        let saved = self.saved.as_ref().unwrap_or(g);
        let (x, y) = (saved, saved);
        match self.f {
            Unary::Op(op) => match op {
                UnaryOp::Neg => g.neg(),
                // sign(0) = 0, as PyTorch's subgradient.
                UnaryOp::Abs => g.mul(&x.sign()?),
                UnaryOp::Sign => g.zeros_like(),
                UnaryOp::Exp => g.mul(y),
                UnaryOp::Log => g.div(x),
                UnaryOp::Sqrt => g.div(y)?.mul_scalar(0.5),
                // d x^-1/2 = -1/2 x^-3/2 = -1/2 y^3
                UnaryOp::Rsqrt => g.mul(&y.powf(3.0)?)?.mul_scalar(-0.5),
                UnaryOp::Recip => g.mul(&y.square()?)?.neg(),
                UnaryOp::Square => g.mul(x)?.mul_scalar(2.0),
                UnaryOp::Tanh => g.mul(&y.square()?.affine(-1.0, 1.0)?),
                // d erf = 2/sqrt(pi) e^{-x^2}
                UnaryOp::Erf => g.mul(
                    &x.square()?
                        .neg()?
                        .exp()?
                        .mul_scalar(core::f64::consts::FRAC_2_SQRT_PI)?,
                ),
                UnaryOp::Sigmoid => g.mul(&y.mul(&y.affine(-1.0, 1.0)?)?),
                UnaryOp::Relu => masked(&x.compare_scalar(CmpOp::Gt, 0.0)?, g),
                // PyTorch: a zero exponent has a zero gradient everywhere (even at x = 0).
                UnaryOp::Powf(0.0) => g.zeros_like(),
                UnaryOp::Powf(p) => g.mul(&x.powf(p - 1.0)?)?.mul_scalar(p),
                UnaryOp::Affine { mul, .. } => g.mul_scalar(mul),
                UnaryOp::DivScalar(d) => g.unary(UnaryOp::DivScalar(d)),
                // d(c/x) = -c/x² = -y²/c would divide by c = 0; use x.
                UnaryOp::ScalarDiv(c) => g.mul(&x.square()?.unary(UnaryOp::ScalarDiv(-c))?),
                // PyTorch passes the gradient where min <= x <= max (bounds included).
                UnaryOp::Clamp { min, max } => masked(
                    &x.compare_scalar(CmpOp::Ge, min)?,
                    &masked(&x.compare_scalar(CmpOp::Le, max)?, g)?,
                ),
            },
            // exact: d/dx x*Phi(x) = Phi(x) + x*phi(x), phi(x) = e^{-x^2/2}/sqrt(2 pi);
            // tanh: see `composite::gelu_tanh_backward` (composites that backends may fuse,
            // like the forward)
            Unary::Gelu(approximate) => x.gelu_backward_with(g, approximate),
        }
    }
}

impl<B: Backend> Backward<B> for UnaryBackward<B> {
    fn name(&self) -> &'static str {
        match self.f {
            Unary::Gelu(GeluApproximate::None) => "gelu",
            Unary::Gelu(GeluApproximate::Tanh) => "gelu_tanh",
            Unary::Op(_) => "unary",
        }
    }
    fn backward(&self, grad: &Tensor<B>, needs: &[bool]) -> Result<Vec<Option<Tensor<B>>>> {
        if !need(needs, 0) {
            return Ok(vec![None]);
        }
        Ok(vec![Some(self.grad(grad)?)])
    }
}

impl<B: Backend> Var<B> {
    fn unary_record(&self, f: Unary, y: Tensor<B>) -> Var<B> {
        let saved = match f.needs() {
            Needs::Input => Some(self.value().clone()),
            Needs::Output => Some(y.clone()),
            Needs::Nothing => None,
        };
        Var::from_op(
            y,
            core::slice::from_ref(self),
            Box::new(UnaryBackward { f, saved }),
        )
    }

    /// Applies any [`UnaryOp`], differentiably.
    pub fn unary(&self, op: UnaryOp) -> Result<Var<B>> {
        let y = self.value().unary(op)?;
        Ok(self.unary_record(Unary::Op(op), y))
    }

    /// GELU, exact erf form (PyTorch: `F.gelu`).
    pub fn gelu(&self) -> Result<Var<B>> {
        self.gelu_with(GeluApproximate::None)
    }

    /// GELU, tanh approximation (PyTorch: `F.gelu(x, approximate='tanh')`).
    pub fn gelu_tanh(&self) -> Result<Var<B>> {
        self.gelu_with(GeluApproximate::Tanh)
    }

    /// GELU in the form `approximate` selects (PyTorch: `F.gelu(x, approximate=...)`).
    pub fn gelu_with(&self, approximate: GeluApproximate) -> Result<Var<B>> {
        let y = self.value().gelu_with(approximate)?;
        Ok(self.unary_record(Unary::Gelu(approximate), y))
    }

    /// `x^p` for a scalar exponent.
    pub fn powf(&self, p: f64) -> Result<Var<B>> {
        self.unary(UnaryOp::Powf(p))
    }
    /// `mul*x + add` in one pass.
    pub fn affine(&self, mul: f64, add: f64) -> Result<Var<B>> {
        self.unary(UnaryOp::Affine { mul, add })
    }
    /// `x + c`
    pub fn add_scalar(&self, c: f64) -> Result<Var<B>> {
        self.affine(1.0, c)
    }
    /// `x * c`
    pub fn mul_scalar(&self, c: f64) -> Result<Var<B>> {
        self.affine(c, 0.0)
    }
    /// `x / c`
    pub fn div_scalar(&self, c: f64) -> Result<Var<B>> {
        self.affine(1.0 / c, 0.0)
    }
    /// `min(max(x, min), max)`; the gradient passes where `min <= x <= max`.
    pub fn clamp(&self, min: f64, max: f64) -> Result<Var<B>> {
        // The tensor op validates min <= max.
        let y = self.value().clamp(min, max)?;
        Ok(self.unary_record(Unary::Op(UnaryOp::Clamp { min, max }), y))
    }
}

macro_rules! unary_methods {
    ($($(#[$doc:meta])* $name:ident => $op:expr;)*) => {
        impl<B: Backend> Var<B> {
            $(
                $(#[$doc])*
                pub fn $name(&self) -> Result<Var<B>> {
                    self.unary($op)
                }
            )*
        }
    };
}

unary_methods! {
    /// `-x`
    neg => UnaryOp::Neg;
    /// `|x|` (gradient `sign(x)`, 0 at 0).
    abs => UnaryOp::Abs;
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
    /// Logistic sigmoid.
    sigmoid => UnaryOp::Sigmoid;
    /// `max(x, 0)` (gradient 0 at 0, as PyTorch).
    relu => UnaryOp::Relu;
}

#[cfg(test)]
mod tests {
    use crate::test_util::{check, check_with, pos, rand};
    use crate::Var;

    #[test]
    fn elementwise_functions() {
        let x = rand(&[2, 3], 1);
        type F = fn(&Var<tessera_tensor::Cpu>) -> tessera_tensor::Result<Var<tessera_tensor::Cpu>>;
        let fs: [(&str, F); 14] = [
            ("neg", |v| v.neg()),
            ("abs", |v| v.abs()),
            ("exp", |v| v.exp()),
            ("square", |v| v.square()),
            ("tanh", |v| v.tanh()),
            ("erf", |v| v.erf()),
            ("sigmoid", |v| v.sigmoid()),
            ("relu", |v| v.relu()),
            ("gelu", |v| v.gelu()),
            ("gelu_tanh", |v| v.gelu_tanh()),
            ("affine", |v| v.affine(-1.5, 2.0)),
            ("add_scalar", |v| v.add_scalar(3.0)),
            ("div_scalar", |v| v.div_scalar(4.0)),
            ("clamp", |v| v.clamp(-0.3, 0.4)),
        ];
        for (name, f) in fs {
            check_with(name, |xs| f(&xs[0]), core::slice::from_ref(&x));
        }
    }

    #[test]
    fn functions_of_positive_inputs() {
        let x = pos(&[3, 2], 2);
        check(|xs| xs[0].log(), core::slice::from_ref(&x));
        check(|xs| xs[0].sqrt(), core::slice::from_ref(&x));
        check(|xs| xs[0].rsqrt(), core::slice::from_ref(&x));
        check(|xs| xs[0].recip(), core::slice::from_ref(&x));
        check(|xs| xs[0].powf(2.5), core::slice::from_ref(&x));
        check(|xs| xs[0].powf(0.0), core::slice::from_ref(&x));
        check(|xs| xs[0].mul_scalar(-2.0)?.powf(3.0), &[x]);
    }

    #[test]
    fn ops_on_constants_record_nothing() {
        let c = Var::constant(rand(&[2], 3));
        let y = c.exp().unwrap().neg().unwrap();
        assert!(!y.requires_grad());
        assert!(y.backward_with(&rand(&[2], 4)).is_err());
    }
}
