//! CPU kernels for binary ops, comparisons and `where`. f16/bf16 compute in f32.

use crate::backend::{BinaryOp, CmpOp};
use crate::cpu::strided;
use crate::dtype::{Element, Float};
use crate::layout::Layout;
use crate::{Error, HostBuffer, Result};
use alloc::vec::Vec;
use core::convert::identity;
use half::{bf16, f16};

#[inline(always)]
pub(crate) fn eval<T: Float>(op: BinaryOp, a: T, b: T) -> T {
    match op {
        BinaryOp::Add => a + b,
        BinaryOp::Sub => a - b,
        BinaryOp::Mul => a * b,
        BinaryOp::Div => a / b,
        BinaryOp::Maximum => {
            if a.is_nan() || b.is_nan() {
                T::nan()
            } else if a >= b {
                a
            } else {
                b
            }
        }
        BinaryOp::Minimum => {
            if a.is_nan() || b.is_nan() {
                T::nan()
            } else if a <= b {
                a
            } else {
                b
            }
        }
        BinaryOp::Pow => a.powf(b),
    }
}

fn mismatch(op: &'static str, a: &HostBuffer, b: &HostBuffer) -> Error {
    Error::DType {
        op,
        msg: crate::__format!("inputs have dtypes {} and {}", a.dtype(), b.dtype()),
    }
}

/// `from(eval(op, to(a), to(b)))` over two views, with `op` matched once per call rather
/// than per element, so each op compiles to its own (vectorizable) loop; the arithmetic is
/// exactly [`eval`]'s.
#[inline(always)]
fn zip_op<S: Copy + Sync, U: Send, T: Float>(
    op: BinaryOp,
    (a, al): (&[S], &Layout),
    (b, bl): (&[S], &Layout),
    to: impl Fn(S) -> T + Sync + Copy,
    from: impl Fn(T) -> U + Sync + Copy,
) -> Vec<U> {
    macro_rules! run {
        ($op:expr) => {
            strided::zip(a, al, b, bl, move |p, q| from(eval($op, to(p), to(q))))
        };
    }
    match op {
        BinaryOp::Add => run!(BinaryOp::Add),
        BinaryOp::Sub => run!(BinaryOp::Sub),
        BinaryOp::Mul => run!(BinaryOp::Mul),
        BinaryOp::Div => run!(BinaryOp::Div),
        BinaryOp::Maximum => run!(BinaryOp::Maximum),
        BinaryOp::Minimum => run!(BinaryOp::Minimum),
        BinaryOp::Pow => run!(BinaryOp::Pow),
    }
}

pub(crate) fn binary(
    op: BinaryOp,
    a: &HostBuffer,
    al: &Layout,
    b: &HostBuffer,
    bl: &Layout,
) -> Result<HostBuffer> {
    Ok(match (a, b) {
        (HostBuffer::F32(x), HostBuffer::F32(y)) => {
            HostBuffer::F32(zip_op(op, (x, al), (y, bl), identity, identity))
        }
        (HostBuffer::F64(x), HostBuffer::F64(y)) => {
            HostBuffer::F64(zip_op(op, (x, al), (y, bl), identity, identity))
        }
        (HostBuffer::F16(x), HostBuffer::F16(y)) => HostBuffer::F16(zip_op(
            op,
            (x, al),
            (y, bl),
            |v: f16| v.to_f32(),
            f16::from_f32,
        )),
        (HostBuffer::BF16(x), HostBuffer::BF16(y)) => HostBuffer::BF16(zip_op(
            op,
            (x, al),
            (y, bl),
            |v: bf16| v.to_f32(),
            bf16::from_f32,
        )),
        _ => return Err(mismatch("binary", a, b)),
    })
}

#[inline(always)]
fn cmp<T: PartialOrd>(op: CmpOp, a: T, b: T) -> u8 {
    (match op {
        CmpOp::Eq => a == b,
        CmpOp::Ne => a != b,
        CmpOp::Lt => a < b,
        CmpOp::Le => a <= b,
        CmpOp::Gt => a > b,
        CmpOp::Ge => a >= b,
    }) as u8
}

pub(crate) fn compare(
    op: CmpOp,
    a: &HostBuffer,
    al: &Layout,
    b: &HostBuffer,
    bl: &Layout,
) -> Result<HostBuffer> {
    fn go<T: Element>(op: CmpOp, x: &[T], al: &Layout, y: &[T], bl: &Layout) -> HostBuffer {
        HostBuffer::U8(strided::zip(x, al, y, bl, |p, q| cmp(op, p, q)))
    }
    Ok(match (a, b) {
        (HostBuffer::F32(x), HostBuffer::F32(y)) => go(op, x, al, y, bl),
        (HostBuffer::F64(x), HostBuffer::F64(y)) => go(op, x, al, y, bl),
        (HostBuffer::F16(x), HostBuffer::F16(y)) => go(op, x, al, y, bl),
        (HostBuffer::BF16(x), HostBuffer::BF16(y)) => go(op, x, al, y, bl),
        (HostBuffer::I64(x), HostBuffer::I64(y)) => go(op, x, al, y, bl),
        (HostBuffer::U8(x), HostBuffer::U8(y)) => go(op, x, al, y, bl),
        _ => return Err(mismatch("compare", a, b)),
    })
}

pub(crate) fn where_cond(
    c: &HostBuffer,
    cl: &Layout,
    a: &HostBuffer,
    al: &Layout,
    b: &HostBuffer,
    bl: &Layout,
) -> Result<HostBuffer> {
    let cond = match c {
        HostBuffer::U8(v) => strided::gather(v, cl),
        other => {
            return Err(Error::DType {
                op: "where",
                msg: crate::__format!("condition must be U8, got {}", other.dtype()),
            })
        }
    };
    fn go<T: Copy + Send + Sync>(
        cond: &[u8],
        x: &[T],
        al: &Layout,
        y: &[T],
        bl: &Layout,
    ) -> alloc::vec::Vec<T> {
        if let (Some(ra), Some(rb)) = (al.contiguous_range(), bl.contiguous_range()) {
            // One pass over the three, in contiguous chunks on the threads.
            let (x, y) = (&x[ra], &y[rb]);
            let n = cond.len();
            return crate::cpu::parallel::collect(n, 1, n, |r, sink| {
                sink.extend(
                    cond[r.clone()]
                        .iter()
                        .zip(&x[r.clone()])
                        .zip(&y[r])
                        .map(|((&c, &p), &q)| if c != 0 { p } else { q }),
                )
            });
        }
        let picked = strided::zip(x, al, y, bl, |p, q| (p, q));
        let mut out = crate::cpu::pool::take_in_kernel(picked.len());
        out.extend(
            cond.iter()
                .zip(&picked)
                .map(|(&c, &(p, q))| if c != 0 { p } else { q }),
        );
        crate::cpu::pool::give(picked);
        out
    }
    let out = match (a, b) {
        (HostBuffer::F32(x), HostBuffer::F32(y)) => HostBuffer::F32(go(&cond, x, al, y, bl)),
        (HostBuffer::F64(x), HostBuffer::F64(y)) => HostBuffer::F64(go(&cond, x, al, y, bl)),
        (HostBuffer::F16(x), HostBuffer::F16(y)) => HostBuffer::F16(go(&cond, x, al, y, bl)),
        (HostBuffer::BF16(x), HostBuffer::BF16(y)) => HostBuffer::BF16(go(&cond, x, al, y, bl)),
        (HostBuffer::I64(x), HostBuffer::I64(y)) => HostBuffer::I64(go(&cond, x, al, y, bl)),
        (HostBuffer::U8(x), HostBuffer::U8(y)) => HostBuffer::U8(go(&cond, x, al, y, bl)),
        _ => return Err(mismatch("where", a, b)),
    };
    crate::cpu::pool::give(cond);
    Ok(out)
}
