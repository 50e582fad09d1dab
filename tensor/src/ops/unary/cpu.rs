//! CPU kernel for elementwise unary ops. f16/bf16 compute in f32.

use crate::backend::UnaryOp;
use crate::cpu::strided;
use crate::dtype::Float;
use crate::layout::Layout;
use crate::{HostBuffer, Result};
use half::{bf16, f16};

/// `op(x)` in the precision of `T` (f32 or f64).
#[inline(always)]
pub(crate) fn eval<T: Float>(op: UnaryOp, x: T) -> T {
    let c = |v: f64| T::from_f64(v);
    match op {
        UnaryOp::Neg => -x,
        UnaryOp::Abs => x.abs(),
        UnaryOp::Sign => {
            if x > T::zero() {
                T::one()
            } else if x < T::zero() {
                -T::one()
            } else {
                x * T::zero()
            }
        }
        UnaryOp::Exp => x.exp(),
        UnaryOp::Log => x.ln(),
        UnaryOp::Sqrt => x.sqrt(),
        UnaryOp::Rsqrt => x.sqrt().recip(),
        UnaryOp::Recip => x.recip(),
        UnaryOp::Square => x * x,
        UnaryOp::Tanh => x.tanh(),
        UnaryOp::Erf => x.erf(),
        UnaryOp::Sigmoid => {
            // exp of a non-positive number never overflows.
            if x >= T::zero() {
                T::one() / (T::one() + (-x).exp())
            } else {
                let e = x.exp();
                e / (T::one() + e)
            }
        }
        UnaryOp::Relu => {
            if x > T::zero() {
                x
            } else {
                x * T::zero()
            }
        }
        UnaryOp::Powf(p) => x.powf(c(p)),
        UnaryOp::Affine { mul, add } => x * c(mul) + c(add),
        UnaryOp::Clamp { min, max } => {
            if x < c(min) {
                c(min)
            } else if x > c(max) {
                c(max)
            } else {
                x
            }
        }
    }
}

pub(crate) fn unary(op: UnaryOp, x: &HostBuffer, layout: &Layout) -> Result<HostBuffer> {
    Ok(match x {
        HostBuffer::F32(v) => HostBuffer::F32(strided::map(v, layout, |a| eval(op, a))),
        HostBuffer::F64(v) => HostBuffer::F64(strided::map(v, layout, |a| eval(op, a))),
        HostBuffer::F16(v) => HostBuffer::F16(strided::map(v, layout, |a| {
            f16::from_f32(eval(op, a.to_f32()))
        })),
        HostBuffer::BF16(v) => HostBuffer::BF16(strided::map(v, layout, |a| {
            bf16::from_f32(eval(op, a.to_f32()))
        })),
        other => {
            return Err(crate::Error::DType {
                op: "unary",
                msg: crate::__format!("{op:?} needs a float tensor, got {}", other.dtype()),
            })
        }
    })
}

/// Fused exact GELU, `x/2 * (1 + erf(x/sqrt(2)))`, for f32/f64 (`None` for other dtypes).
pub(crate) fn gelu(x: &HostBuffer, layout: &Layout) -> Option<HostBuffer> {
    fn g<T: Float>(v: T) -> T {
        let half = T::from_f64(0.5);
        v * half * (T::one() + (v * T::from_f64(core::f64::consts::FRAC_1_SQRT_2)).erf())
    }
    match x {
        HostBuffer::F32(v) => Some(HostBuffer::F32(strided::map(v, layout, g))),
        HostBuffer::F64(v) => Some(HostBuffer::F64(strided::map(v, layout, g))),
        _ => None,
    }
}
