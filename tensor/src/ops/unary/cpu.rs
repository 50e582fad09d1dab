//! CPU kernel for elementwise unary ops. f16/bf16 compute in f32.

use super::erf_f32;
#[cfg(all(feature = "std", target_arch = "x86_64"))]
use super::gelu_avx2;
use crate::backend::UnaryOp;
#[cfg(all(feature = "std", target_arch = "x86_64"))]
use crate::cpu::parallel;
use crate::cpu::strided;
use crate::dtype::Float;
use crate::layout::Layout;
use crate::{HostBuffer, Result};
use alloc::vec::Vec;
use core::convert::identity;
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
        UnaryOp::DivScalar(d) => x / c(d),
        UnaryOp::ScalarDiv(n) => c(n) / x,
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

/// `from(eval(op, to(x)))` over a view, with `op` matched once per call rather than per
/// element: each arm passes [`eval`] a constant op, so every op compiles to its own loop
/// (which the compiler can vectorize) and the arithmetic is exactly [`eval`]'s.
#[inline(always)]
fn map_op<S: Copy + Sync, U: Send, T: Float>(
    op: UnaryOp,
    src: &[S],
    layout: &Layout,
    to: impl Fn(S) -> T + Sync + Copy,
    from: impl Fn(T) -> U + Sync + Copy,
) -> Vec<U> {
    macro_rules! run {
        ($op:expr) => {
            strided::map(src, layout, move |a| from(eval($op, to(a))))
        };
    }
    match op {
        UnaryOp::Neg => run!(UnaryOp::Neg),
        UnaryOp::Abs => run!(UnaryOp::Abs),
        UnaryOp::Sign => run!(UnaryOp::Sign),
        UnaryOp::Exp => run!(UnaryOp::Exp),
        UnaryOp::Log => run!(UnaryOp::Log),
        UnaryOp::Sqrt => run!(UnaryOp::Sqrt),
        UnaryOp::Rsqrt => run!(UnaryOp::Rsqrt),
        UnaryOp::Recip => run!(UnaryOp::Recip),
        UnaryOp::Square => run!(UnaryOp::Square),
        UnaryOp::Tanh => run!(UnaryOp::Tanh),
        UnaryOp::Erf => run!(UnaryOp::Erf),
        UnaryOp::Sigmoid => run!(UnaryOp::Sigmoid),
        UnaryOp::Relu => run!(UnaryOp::Relu),
        UnaryOp::Powf(p) => run!(UnaryOp::Powf(p)),
        UnaryOp::DivScalar(d) => run!(UnaryOp::DivScalar(d)),
        UnaryOp::ScalarDiv(n) => run!(UnaryOp::ScalarDiv(n)),
        UnaryOp::Affine { mul, add } => run!(UnaryOp::Affine { mul, add }),
        UnaryOp::Clamp { min, max } => run!(UnaryOp::Clamp { min, max }),
    }
}

pub(crate) fn unary(op: UnaryOp, x: &HostBuffer, layout: &Layout) -> Result<HostBuffer> {
    Ok(match x {
        // The vectorizable erf; f16/bf16 keep libm's (their rounding hides the difference).
        HostBuffer::F32(v) if op == UnaryOp::Erf => {
            HostBuffer::F32(strided::map(v, layout, erf_f32::erf))
        }
        HostBuffer::F32(v) => HostBuffer::F32(map_op(op, v, layout, identity, identity)),
        HostBuffer::F64(v) => HostBuffer::F64(map_op(op, v, layout, identity, identity)),
        HostBuffer::F16(v) => {
            HostBuffer::F16(map_op(op, v, layout, |a: f16| a.to_f32(), f16::from_f32))
        }
        HostBuffer::BF16(v) => {
            HostBuffer::BF16(map_op(op, v, layout, |a: bf16| a.to_f32(), bf16::from_f32))
        }
        other => {
            return Err(crate::Error::DType {
                op: "unary",
                msg: crate::__format!("{op:?} needs a float tensor, got {}", other.dtype()),
            })
        }
    })
}

/// Exact GELU of one f32 with the branch-free erf, so that a loop over a slice vectorizes
/// (`gelu_avx2.rs` computes the same operations eight lanes at a time).
#[inline(always)]
pub(crate) fn gelu_f32(v: f32) -> f32 {
    v * 0.5 * (1.0 + erf_f32::erf(v * core::f32::consts::FRAC_1_SQRT_2))
}

/// `g * (Phi(v) + v * phi(v))` for one f32, with the branch-free erf and exp.
#[inline(always)]
pub(crate) fn gelu_backward_f32(v: f32, g: f32) -> f32 {
    let cdf = erf_f32::erf(v * core::f32::consts::FRAC_1_SQRT_2) * 0.5 + 0.5;
    let pdf = erf_f32::exp(v * v * -0.5) * erf_f32::INV_SQRT_2PI;
    g * (cdf + v * pdf)
}

/// Fused exact GELU, `x/2 * (1 + erf(x/sqrt(2)))`, for f32/f64 (`None` for other dtypes).
pub(crate) fn gelu(x: &HostBuffer, layout: &Layout) -> Option<HostBuffer> {
    fn g<T: Float>(v: T) -> T {
        let half = T::from_f64(0.5);
        v * half * (T::one() + (v * T::from_f64(core::f64::consts::FRAC_1_SQRT_2)).erf())
    }
    match x {
        #[cfg(all(feature = "std", target_arch = "x86_64"))]
        HostBuffer::F32(v) if layout.contiguous_range().is_some() && gelu_avx2::available() => {
            let src = &v[layout.contiguous_range()?];
            Some(HostBuffer::F32(parallel::collect(
                src.len(),
                1,
                src.len(),
                |r, out| {
                    // SAFETY: AVX2 is available (checked above); `gelu` writes all `r.len()`
                    // elements of the slice it is given.
                    unsafe { out.extend_with(r.len(), |dst| gelu_avx2::gelu(&src[r], dst)) }
                },
            )))
        }
        HostBuffer::F32(v) => Some(HostBuffer::F32(strided::map(v, layout, gelu_f32))),
        HostBuffer::F64(v) => Some(HostBuffer::F64(strided::map(v, layout, g))),
        _ => None,
    }
}

/// Fused `grad * (Phi(x) + x * phi(x))` for f32/f64 in one pass (`None`: use the composite).
/// The composite needs ten passes and temporaries; this is the same formula per element.
pub(crate) fn gelu_backward(
    x: &HostBuffer,
    xl: &Layout,
    grad: &HostBuffer,
    gl: &Layout,
) -> Option<HostBuffer> {
    fn d<T: Float>(v: T, g: T) -> T {
        let cdf = (v * T::from_f64(core::f64::consts::FRAC_1_SQRT_2)).erf() * T::from_f64(0.5)
            + T::from_f64(0.5);
        let inv_sqrt_2pi =
            0.5 * core::f64::consts::FRAC_2_SQRT_PI * core::f64::consts::FRAC_1_SQRT_2;
        let pdf = (v * v * T::from_f64(-0.5)).exp() * T::from_f64(inv_sqrt_2pi);
        g * (cdf + v * pdf)
    }
    match (x, grad) {
        #[cfg(all(feature = "std", target_arch = "x86_64"))]
        (HostBuffer::F32(v), HostBuffer::F32(g))
            if xl.contiguous_range().is_some()
                && gl.contiguous_range().is_some()
                && gelu_avx2::available() =>
        {
            let (v, g) = (&v[xl.contiguous_range()?], &g[gl.contiguous_range()?]);
            Some(HostBuffer::F32(parallel::collect(
                v.len(),
                1,
                2 * v.len(),
                |r, out| {
                    let (v, g) = (&v[r.clone()], &g[r]);
                    // SAFETY: AVX2 is available (checked above); `gelu_backward` writes all
                    // `v.len()` elements of the slice it is given.
                    unsafe { out.extend_with(v.len(), |dst| gelu_avx2::gelu_backward(v, g, dst)) }
                },
            )))
        }
        (HostBuffer::F32(v), HostBuffer::F32(g)) => Some(HostBuffer::F32(strided::zip(
            v,
            xl,
            g,
            gl,
            gelu_backward_f32,
        ))),
        (HostBuffer::F64(v), HostBuffer::F64(g)) => {
            Some(HostBuffer::F64(strided::zip(v, xl, g, gl, d)))
        }
        _ => None,
    }
}

/// `(sqrt(2/pi), sqrt(2/pi) * 0.044715)`: `u = x * (b + c x^2)` is the tanh argument of the
/// approximate GELU, the same grouping as `composite::gelu_tanh`.
fn gelu_tanh_consts<T: Float>() -> (T, T) {
    use crate::backend::composite::{GELU_TANH_BETA, GELU_TANH_KAPPA};
    (
        T::from_f64(GELU_TANH_BETA),
        T::from_f64(GELU_TANH_KAPPA * GELU_TANH_BETA),
    )
}

/// Fused tanh-approximate GELU, `x/2 * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))`, for
/// f32/f64 (`None` for other dtypes).
pub(crate) fn gelu_tanh(x: &HostBuffer, layout: &Layout) -> Option<HostBuffer> {
    fn g<T: Float>(v: T) -> T {
        let (b, c) = gelu_tanh_consts::<T>();
        let half = T::from_f64(0.5);
        let t = (v * (b + c * (v * v))).tanh();
        v * (t * half + half)
    }
    match x {
        HostBuffer::F32(v) => Some(HostBuffer::F32(strided::map(v, layout, g))),
        HostBuffer::F64(v) => Some(HostBuffer::F64(strided::map(v, layout, g))),
        _ => None,
    }
}

/// Fused gradient of the tanh-approximate GELU for f32/f64 in one pass (`None`: use the
/// composite): `grad * ((1 + t)/2 + x/2 * (1 - t^2) * (b + 3c x^2))`, `t = tanh(x (b + c x^2))`.
pub(crate) fn gelu_tanh_backward(
    x: &HostBuffer,
    xl: &Layout,
    grad: &HostBuffer,
    gl: &Layout,
) -> Option<HostBuffer> {
    fn d<T: Float>(v: T, g: T) -> T {
        let (b, c) = gelu_tanh_consts::<T>();
        let half = T::from_f64(0.5);
        let x2 = v * v;
        let t = (v * (b + c * x2)).tanh();
        let du = b + T::from_f64(3.0) * c * x2;
        let right = (T::one() - t * t) * du * v;
        g * (t * half + half + right * half)
    }
    match (x, grad) {
        (HostBuffer::F32(v), HostBuffer::F32(g)) => {
            Some(HostBuffer::F32(strided::zip(v, xl, g, gl, d)))
        }
        (HostBuffer::F64(v), HostBuffer::F64(g)) => {
            Some(HostBuffer::F64(strided::zip(v, xl, g, gl, d)))
        }
        _ => None,
    }
}
