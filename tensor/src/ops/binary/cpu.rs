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

/// One operand of [`where_cond`]'s fast path: its contiguous elements, or a broadcast scalar.
enum Operand<'a, T> {
    Slice(&'a [T]),
    Scalar(T),
}

impl<'a, T: Copy> Operand<'a, T> {
    fn of(v: &'a [T], l: &Layout) -> Option<Self> {
        if let Some(r) = l.contiguous_range() {
            return Some(Operand::Slice(&v[r]));
        }
        let scalar = l.strides().iter().all(|&s| s == 0) && l.numel() > 0;
        scalar.then(|| Operand::Scalar(v[l.offset()]))
    }
}

/// `p` where the condition byte is set, else `q`.
#[inline(always)]
fn select<T: Copy>(c: u8, p: T, q: T) -> T {
    if c != 0 {
        p
    } else {
        q
    }
}

pub(crate) fn where_cond(
    c: &HostBuffer,
    cl: &Layout,
    a: &HostBuffer,
    al: &Layout,
    b: &HostBuffer,
    bl: &Layout,
) -> Result<HostBuffer> {
    // Borrowed when contiguous (a mask made for this op): no copy of the condition.
    let cond = match c {
        HostBuffer::U8(v) => strided::view(v, cl),
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
        // Contiguous operands, or one of them a broadcast scalar (the zeros of a masked
        // gradient): one pass over the three, in contiguous chunks on the threads.
        if let (Some(x), Some(y)) = (Operand::of(x, al), Operand::of(y, bl)) {
            let n = cond.len();
            // The slice loops of `Sink::extend_*` vectorize (a select per lane); a generic
            // iterator into `Sink::extend` ran one element at a time, and this op is every
            // ReLU's backward.
            return crate::cpu::parallel::collect(n, 1, n, |r, sink| {
                let c = &cond[r.clone()];
                match (&x, &y) {
                    (Operand::Slice(x), Operand::Slice(y)) => {
                        sink.extend_zip3(c, &x[r.clone()], &y[r], &|c: u8, p: T, q: T| {
                            select(c, p, q)
                        })
                    }
                    (Operand::Slice(x), Operand::Scalar(q)) => {
                        let q = *q;
                        sink.extend_zip(c, &x[r], &move |c: u8, p: T| select(c, p, q))
                    }
                    (Operand::Scalar(p), Operand::Slice(y)) => {
                        let p = *p;
                        sink.extend_zip(c, &y[r], &move |c: u8, q: T| select(c, p, q))
                    }
                    (Operand::Scalar(p), Operand::Scalar(q)) => {
                        let (p, q) = (*p, *q);
                        sink.extend_map(c, &move |c: u8| select(c, p, q))
                    }
                }
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
    Ok(out)
}

#[cfg(test)]
mod tests {
    use crate::cpu::{parallel::tests::with_threads, Cpu};
    use crate::{DType, Tensor};

    /// The one-pass paths (contiguous operands, a broadcast scalar on either side) pick the
    /// same elements as the definition, on one thread and on several.
    #[test]
    fn where_fast_paths_match_the_definition() {
        let n = 100_003;
        let x: Vec<f32> = (0..n).map(|i| i as f32).collect();
        let y: Vec<f32> = (0..n).map(|i| -(i as f32)).collect();
        let m: Vec<u8> = (0..n).map(|i| u8::from(i % 3 == 0)).collect();
        let t = |v: &[f32]| Tensor::from_slice(v, &[n], &Cpu).unwrap();
        let (xt, yt) = (t(&x), t(&y));
        let mt = Tensor::from_slice(&m, &[n], &Cpu).unwrap();
        let zero = Tensor::scalar(0.5, DType::F32, &Cpu).unwrap();
        let two = Tensor::scalar(2.0, DType::F32, &Cpu).unwrap();
        for threads in [1, 2] {
            with_threads(threads, || {
                let pick = |a: &Tensor<Cpu>, b: &Tensor<Cpu>| {
                    mt.where_cond(a, b).unwrap().to_vec::<f32>().unwrap()
                };
                let want = |f: &dyn Fn(usize) -> f32| (0..n).map(f).collect::<Vec<f32>>();
                let sel = |i: usize| m[i] != 0;
                assert_eq!(pick(&xt, &yt), want(&|i| if sel(i) { x[i] } else { y[i] }));
                assert_eq!(pick(&xt, &zero), want(&|i| if sel(i) { x[i] } else { 0.5 }));
                assert_eq!(pick(&zero, &yt), want(&|i| if sel(i) { 0.5 } else { y[i] }));
                assert_eq!(pick(&zero, &two), want(&|i| if sel(i) { 0.5 } else { 2.0 }));
            });
        }
    }
}
