//! CPU kernels for the in-place primitives and the fused parameter updates. Each element is
//! computed by the same `eval` functions as the out-of-place ops, in the same order as the
//! default compositions (`backend/update.rs`), so the fused kernels give the same bits in
//! one pass over memory instead of ten.
//!
//! They cover contiguous f32/f64 destinations, which is every parameter and optimizer state;
//! anything else returns `None` and the caller takes the default composition.

use crate::backend::{AdamWStep, BinaryOp, UnaryOp};
use crate::dtype::Float;
use crate::layout::Layout;
use crate::ops::binary::cpu::eval as bin;
use crate::ops::unary::cpu::eval as un;
use crate::HostBuffer;

/// The contiguous range of a layout, if any.
fn range(l: &Layout) -> Option<core::ops::Range<usize>> {
    l.contiguous_range()
}

fn unary_slice<T: Float>(op: UnaryOp, x: &mut [T]) {
    macro_rules! run {
        ($op:expr) => {
            x.iter_mut().for_each(|v| *v = un($op, *v))
        };
    }
    // Matched once per call so each op compiles to its own loop (see ops/unary/cpu.rs).
    match op {
        UnaryOp::Affine { mul, add } => run!(UnaryOp::Affine { mul, add }),
        UnaryOp::DivScalar(d) => run!(UnaryOp::DivScalar(d)),
        other => run!(other),
    }
}

/// `x = op(x)` for a contiguous float view; `None` if not covered.
pub(crate) fn unary_inplace(op: UnaryOp, x: &mut HostBuffer, l: &Layout) -> Option<()> {
    let r = range(l)?;
    match x {
        HostBuffer::F32(v) => unary_slice(op, v.get_mut(r)?),
        HostBuffer::F64(v) => unary_slice(op, v.get_mut(r)?),
        _ => return None,
    }
    Some(())
}

fn binary_slice<T: Float>(op: BinaryOp, a: &mut [T], b: &[T], bl: &Layout) -> Option<()> {
    match bl.contiguous_range() {
        Some(r) => {
            let b = b.get(r)?;
            if b.len() != a.len() {
                return None;
            }
            macro_rules! run {
                ($op:expr) => {
                    a.iter_mut().zip(b).for_each(|(x, &y)| *x = bin($op, *x, y))
                };
            }
            match op {
                BinaryOp::Add => run!(BinaryOp::Add),
                BinaryOp::Sub => run!(BinaryOp::Sub),
                BinaryOp::Mul => run!(BinaryOp::Mul),
                BinaryOp::Div => run!(BinaryOp::Div),
                other => run!(other),
            }
        }
        None => {
            // Broadcast or strided operand: walk its offsets (bounds-checked reads).
            for (x, o) in a.iter_mut().zip(bl.offsets()) {
                *x = bin(op, *x, *b.get(o)?);
            }
        }
    }
    Some(())
}

/// `a = op(a, b)` for a contiguous float destination; `None` if not covered.
pub(crate) fn binary_inplace(
    op: BinaryOp,
    a: &mut HostBuffer,
    al: &Layout,
    b: &HostBuffer,
    bl: &Layout,
) -> Option<()> {
    let r = range(al)?;
    if bl.shape() != al.shape() {
        return None;
    }
    match (a, b) {
        (HostBuffer::F32(x), HostBuffer::F32(y)) => binary_slice(op, x.get_mut(r)?, y, bl),
        (HostBuffer::F64(x), HostBuffer::F64(y)) => binary_slice(op, x.get_mut(r)?, y, bl),
        _ => None,
    }
}

fn adamw_slice<T: Float>(p: &mut [T], g: &[T], m: &mut [T], v: &mut [T], s: &AdamWStep) {
    let decay = UnaryOp::Affine {
        mul: 1.0 - s.lr * s.weight_decay,
        add: 0.0,
    };
    let w = 1.0 - s.beta1;
    let lerp_small = w < 0.5;
    let scale_diff = UnaryOp::Affine {
        mul: if lerp_small { w } else { 1.0 - w },
        add: 0.0,
    };
    let beta2 = UnaryOp::Affine {
        mul: s.beta2,
        add: 0.0,
    };
    let one_minus_beta2 = UnaryOp::Affine {
        mul: 1.0 - s.beta2,
        add: 0.0,
    };
    let bc2 = UnaryOp::DivScalar(s.bias_correction2_sqrt());
    let eps = UnaryOp::Affine {
        mul: 1.0,
        add: s.eps,
    };
    let step_size = UnaryOp::Affine {
        mul: s.step_size(),
        add: 0.0,
    };
    for i in 0..p.len() {
        let (gi, mi, vi) = (g[i], m[i], v[i]);
        let pi = un(decay, p[i]);
        let diff = gi - mi;
        let mi = if lerp_small {
            mi + un(scale_diff, diff)
        } else {
            gi - un(scale_diff, diff)
        };
        let vi = un(beta2, vi) + un(one_minus_beta2, gi * gi);
        let denom = un(eps, un(bc2, vi.sqrt()));
        p[i] = pi - un(step_size, mi / denom);
        m[i] = mi;
        v[i] = vi;
    }
}

/// Borrows the contiguous f32 or f64 data of a tensor's storage, or gives up.
macro_rules! slices {
    ($t:ident, $($buf:expr, $l:expr),+) => {
        ($(match ($buf, range($l)) {
            (HostBuffer::$t(v), Some(r)) => v.get(r)?,
            _ => return None,
        }),+)
    };
}

/// One AdamW step over contiguous f32/f64 parameter, gradient and moments.
pub(crate) fn adamw(
    (p, pl): (&mut HostBuffer, &Layout),
    (g, gl): (&HostBuffer, &Layout),
    (m, ml): (&mut HostBuffer, &Layout),
    (v, vl): (&mut HostBuffer, &Layout),
    s: &AdamWStep,
) -> Option<()> {
    macro_rules! go {
        ($t:ident) => {{
            let g = slices!($t, g, gl);
            let (p, m, v) = (
                match (p, range(pl)) {
                    (HostBuffer::$t(x), Some(r)) => x.get_mut(r)?,
                    _ => return None,
                },
                match (m, range(ml)) {
                    (HostBuffer::$t(x), Some(r)) => x.get_mut(r)?,
                    _ => return None,
                },
                match (v, range(vl)) {
                    (HostBuffer::$t(x), Some(r)) => x.get_mut(r)?,
                    _ => return None,
                },
            );
            if g.len() != p.len() || m.len() != p.len() || v.len() != p.len() {
                return None;
            }
            adamw_slice(p, g, m, v, s);
            Some(())
        }};
    }
    match g {
        HostBuffer::F32(_) => go!(F32),
        HostBuffer::F64(_) => go!(F64),
        _ => None,
    }
}

/// `t = m·t + (1 − m)·s` over contiguous f32/f64 views.
pub(crate) fn ema(
    (t, tl): (&mut HostBuffer, &Layout),
    (s, sl): (&HostBuffer, &Layout),
    momentum: f64,
) -> Option<()> {
    fn go<T: Float>(t: &mut [T], s: &[T], momentum: f64) {
        let keep = UnaryOp::Affine {
            mul: momentum,
            add: 0.0,
        };
        let take = UnaryOp::Affine {
            mul: 1.0 - momentum,
            add: 0.0,
        };
        for (x, &y) in t.iter_mut().zip(s) {
            *x = un(keep, *x) + un(take, y);
        }
    }
    let (tr, sr) = (range(tl)?, range(sl)?);
    if tr.len() != sr.len() {
        return None;
    }
    match (t, s) {
        (HostBuffer::F32(a), HostBuffer::F32(b)) => go(a.get_mut(tr)?, b.get(sr)?, momentum),
        (HostBuffer::F64(a), HostBuffer::F64(b)) => go(a.get_mut(tr)?, b.get(sr)?, momentum),
        _ => return None,
    }
    Some(())
}
