//! CPU kernels for binary ops, comparisons and `where`. f16/bf16 compute in f32.

use crate::backend::{BinaryOp, CmpOp};
use crate::cpu::strided;
use crate::dtype::{Element, Float};
use crate::layout::Layout;
use crate::{Error, HostBuffer, Result};
use half::{bf16, f16};

#[inline(always)]
fn eval<T: Float>(op: BinaryOp, a: T, b: T) -> T {
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

pub(crate) fn binary(
    op: BinaryOp,
    a: &HostBuffer,
    al: &Layout,
    b: &HostBuffer,
    bl: &Layout,
) -> Result<HostBuffer> {
    Ok(match (a, b) {
        (HostBuffer::F32(x), HostBuffer::F32(y)) => {
            HostBuffer::F32(strided::zip(x, al, y, bl, |p, q| eval(op, p, q)))
        }
        (HostBuffer::F64(x), HostBuffer::F64(y)) => {
            HostBuffer::F64(strided::zip(x, al, y, bl, |p, q| eval(op, p, q)))
        }
        (HostBuffer::F16(x), HostBuffer::F16(y)) => {
            HostBuffer::F16(strided::zip(x, al, y, bl, |p, q| {
                f16::from_f32(eval(op, p.to_f32(), q.to_f32()))
            }))
        }
        (HostBuffer::BF16(x), HostBuffer::BF16(y)) => {
            HostBuffer::BF16(strided::zip(x, al, y, bl, |p, q| {
                bf16::from_f32(eval(op, p.to_f32(), q.to_f32()))
            }))
        }
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
        let picked = strided::zip(x, al, y, bl, |p, q| (p, q));
        cond.iter()
            .zip(picked)
            .map(|(&c, (p, q))| if c != 0 { p } else { q })
            .collect()
    }
    Ok(match (a, b) {
        (HostBuffer::F32(x), HostBuffer::F32(y)) => HostBuffer::F32(go(&cond, x, al, y, bl)),
        (HostBuffer::F64(x), HostBuffer::F64(y)) => HostBuffer::F64(go(&cond, x, al, y, bl)),
        (HostBuffer::F16(x), HostBuffer::F16(y)) => HostBuffer::F16(go(&cond, x, al, y, bl)),
        (HostBuffer::BF16(x), HostBuffer::BF16(y)) => HostBuffer::BF16(go(&cond, x, al, y, bl)),
        (HostBuffer::I64(x), HostBuffer::I64(y)) => HostBuffer::I64(go(&cond, x, al, y, bl)),
        (HostBuffer::U8(x), HostBuffer::U8(y)) => HostBuffer::U8(go(&cond, x, al, y, bl)),
        _ => return Err(mismatch("where", a, b)),
    })
}
