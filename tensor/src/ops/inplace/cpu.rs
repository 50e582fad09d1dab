//! CPU kernels for the in-place primitives and the fused parameter updates. Each element is
//! computed by the same `eval` functions as the out-of-place ops, in the same order as the
//! default compositions (`backend/update.rs`), so the fused kernels give the same bits in
//! one pass over memory instead of ten.
//!
//! They cover contiguous f32/f64 destinations, which is every parameter and optimizer state;
//! anything else returns `None` and the caller takes the default composition. The fused
//! updates split a large parameter into one contiguous part per thread ([`in_parts`]): every
//! element is still computed by the same code, so the bits do not depend on the thread count.

use crate::backend::{AdamWStep, BinaryOp, UnaryOp};
use crate::cpu::parallel;
use crate::dtype::Float;
use crate::layout::Layout;
use crate::ops::binary::cpu::eval as bin;
use crate::ops::unary::cpu::eval as un;
use crate::{DType, HostBuffer, HostElement};
use alloc::vec::Vec;

/// Runs `f` on matching contiguous parts of the `N` equally long slices `mutable` and of
/// `read`, one part per thread when the `len * ops_per_element` element-operations are worth
/// it: a fused update is one pass over several parameter-sized buffers, which one core's
/// loads and stores cannot saturate memory with (the teacher EMA of the default DINO step
/// took 6.0 ms on one thread of a 2-core Xeon).
fn in_parts<T: Send + Sync, const N: usize>(
    mutable: [&mut [T]; N],
    read: &[T],
    ops_per_element: usize,
    f: impl Fn([&mut [T]; N], &[T]) + Sync,
) {
    let len = read.len();
    let parts = parallel::num_threads().max(1);
    if parts == 1 || len.saturating_mul(ops_per_element) < parallel::MIN_PAR_WORK {
        return f(mutable, read);
    }
    let size = len.div_ceil(parts);
    let mut chunks: [_; N] = mutable.map(|m| m.chunks_mut(size));
    let mut jobs: Vec<([&mut [T]; N], &[T])> = Vec::with_capacity(parts);
    for r in read.chunks(size) {
        let m = chunks
            .each_mut()
            .map(|c| c.next().expect("slices of equal length"));
        jobs.push((m, r));
    }
    parallel::for_each_chunk_mut(&mut jobs, 1, len * ops_per_element, |_, part| {
        for (m, r) in part.iter_mut() {
            let m = m.each_mut().map(|s| &mut **s);
            f(m, r);
        }
    });
}

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

fn binary_slice<T: Float + Send + Sync>(
    op: BinaryOp,
    a: &mut [T],
    b: &[T],
    bl: &Layout,
) -> Option<()> {
    if bl.numel() == a.len() && !a.is_empty() && bl.strides().iter().all(|&s| s == 0) {
        // One value broadcast over all of `a` (`g.mul_(coef)` with a rank-0 coefficient, as
        // gradient clipping scales): read it once rather than gather a copy of `a`'s size.
        let y = *b.get(bl.offset())?;
        // A product with exactly 1 is exact, so `x * 1` is `x` for every value (NaN stays
        // NaN): the clip's `g.mul_(coef)` when `coef` was clamped to 1, which PyTorch skips
        // on the host (`if clip_coef < 1`). Skipping the pass over `g` saves a read and a
        // write of every gradient left unclipped: DINO's per-parameter clip of the default
        // model, 2 threads, Intel Xeon: 6.7-7.1 -> 1.7 ms hot, 8.3-8.5 -> 4.6-4.9 cold.
        if op == BinaryOp::Mul && y == T::one() {
            return Some(());
        }
        let n = a.len();
        crate::cpu::parallel::for_each_chunk_mut(a, 1, n, |_, a| {
            apply(op, a, core::iter::repeat(y))
        });
        return Some(());
    }
    let gathered;
    let b = match bl.contiguous_range() {
        Some(r) => b.get(r)?,
        None => {
            // A strided or broadcast operand (a transposed gradient added into its input's
            // pending one): gathered once by the tiled strided copy, then the same vectorized
            // loop. Walking its offsets one element at a time was ~3% of the default DINO step.
            bl.check_fits("binary_", b.len()).ok()?;
            gathered = crate::cpu::strided::view(b, bl);
            &gathered[..]
        }
    };
    if b.len() != a.len() {
        return None;
    }
    // Contiguous chunks on the threads; each element the same operation on any.
    let n = a.len();
    crate::cpu::parallel::for_each_chunk_mut(a, 1, n, |range, a| {
        apply(op, a, b[range].iter().copied())
    });
    Some(())
}

/// `x = op(x, y)` for each `x` of `a` and the next `y` of `ys`, the op matched once so that
/// the common ones compile to their own vectorized loops.
#[inline(always)]
fn apply<T: Float>(op: BinaryOp, a: &mut [T], ys: impl Iterator<Item = T>) {
    macro_rules! run {
        ($op:expr) => {
            a.iter_mut().zip(ys).for_each(|(x, y)| *x = bin($op, *x, y))
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

/// The elements of a contiguous view of `T`s, or `None` (another dtype, or strided).
fn view_of<'a, T: HostElement>(b: &'a HostBuffer, l: &Layout) -> Option<&'a [T]> {
    b.as_slice::<T>()?.get(range(l)?)
}

/// [`view_of`] for writing.
fn view_of_mut<'a, T: HostElement>(b: &'a mut HostBuffer, l: &Layout) -> Option<&'a mut [T]> {
    let r = range(l)?;
    b.as_mut_slice::<T>()?.get_mut(r)
}

/// One AdamW step over contiguous f32/f64 parameter, gradient and moments.
pub(crate) fn adamw(
    (p, pl): (&mut HostBuffer, &Layout),
    (g, gl): (&HostBuffer, &Layout),
    (m, ml): (&mut HostBuffer, &Layout),
    (v, vl): (&mut HostBuffer, &Layout),
    s: &AdamWStep,
) -> Option<()> {
    fn go<T: Float + HostElement + Send + Sync>(
        p: &mut [T],
        g: &[T],
        m: &mut [T],
        v: &mut [T],
        s: &AdamWStep,
    ) -> Option<()> {
        let n = p.len();
        (g.len() == n && m.len() == n && v.len() == n)
            .then(|| in_parts([p, m, v], g, 16, |[p, m, v], g| adamw_slice(p, g, m, v, s)))
    }
    match g.dtype() {
        DType::F32 => go::<f32>(
            view_of_mut(p, pl)?,
            view_of(g, gl)?,
            view_of_mut(m, ml)?,
            view_of_mut(v, vl)?,
            s,
        ),
        DType::F64 => go::<f64>(
            view_of_mut(p, pl)?,
            view_of(g, gl)?,
            view_of_mut(m, ml)?,
            view_of_mut(v, vl)?,
            s,
        ),
        _ => None,
    }
}

/// `t = m·t + (1 − m)·s` over contiguous f32/f64 views.
pub(crate) fn ema(
    (t, tl): (&mut HostBuffer, &Layout),
    (s, sl): (&HostBuffer, &Layout),
    momentum: f64,
) -> Option<()> {
    fn go<T: Float + Send + Sync>(t: &mut [T], s: &[T], momentum: f64) {
        in_parts([t], s, 4, |[t], s| slice(t, s, momentum));
    }
    fn slice<T: Float>(t: &mut [T], s: &[T], momentum: f64) {
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

#[cfg(test)]
mod tests {
    use crate::backend::{update, AdamWStep};
    use crate::{Cpu, Tensor};
    use alloc::vec::Vec;

    fn t(seed: u32, n: usize) -> Tensor<Cpu> {
        let v: Vec<f32> = (0..n)
            .map(|i| ((i as u32).wrapping_mul(2_654_435_761) ^ seed) % 1000)
            .map(|k| k as f32 / 250.0 - 2.0)
            .collect();
        Tensor::from_vec(v, &[n], &Cpu).unwrap()
    }

    /// `binary_` with a transposed, a stepped and a broadcast operand (gathered, then the
    /// contiguous loop) and a single broadcast value equals the out-of-place op, on one
    /// thread and on two.
    #[test]
    fn binary_inplace_with_strided_operands_is_the_out_of_place_op() {
        use crate::cpu::parallel::tests::with_threads;
        use crate::BinaryOp;
        let (r, c) = (300, 257); // above the parallel threshold, odd sizes
        let x = t(5, r * c).reshape(&[r, c]).unwrap();
        let transposed = t(6, r * c).reshape(&[c, r]).unwrap().t().unwrap();
        let stepped = t(7, 2 * r * c)
            .reshape(&[r, 2 * c])
            .unwrap()
            .slice(1, 0, 2 * c, 2)
            .unwrap();
        let column = t(8, r)
            .reshape(&[r, 1])
            .unwrap()
            .broadcast_to(&[r, c])
            .unwrap();
        // One value (a slice of a larger storage, at an offset), broadcast over all of `x`.
        let single = t(9, 5).slice(0, 3, 4, 1).unwrap().reshape(&[]).unwrap();
        let single = single.broadcast_to(&[r, c]).unwrap();
        for other in [&transposed, &stepped, &column, &single] {
            assert!(!other.is_contiguous());
            for op in [BinaryOp::Add, BinaryOp::Mul, BinaryOp::Maximum] {
                for threads in [1, 2] {
                    with_threads(threads, || {
                        let mut y = x.copy().unwrap();
                        y.binary_(op, other).unwrap();
                        let want = x.binary(op, other).unwrap();
                        assert_eq!(y.to_vec::<f32>().unwrap(), want.to_vec::<f32>().unwrap());
                    });
                }
            }
        }
    }

    /// Multiplying in place by a broadcast 1 (skipped) leaves every value's bits as they
    /// were, signed zeros, infinities and NaN included; any other factor still scales.
    #[test]
    fn multiplying_in_place_by_one_keeps_every_value() {
        use crate::BinaryOp;
        let n = 40_001; // above the parallel threshold
        let mut v: Vec<f32> = t(11, n).to_vec::<f32>().unwrap();
        v[..4].copy_from_slice(&[-0.0, f32::INFINITY, f32::NAN, f32::MIN_POSITIVE / 4.0]);
        for factor in [1.0f32, 0.5] {
            let mut x = Tensor::from_vec(v.clone(), &[n], &Cpu).unwrap();
            let coef = Tensor::from_vec(vec![factor], &[], &Cpu).unwrap();
            x.binary_(BinaryOp::Mul, &coef).unwrap();
            let got = x.to_vec::<f32>().unwrap();
            for (g, w) in got.iter().zip(&v) {
                assert_eq!(g.to_bits(), (w * factor).to_bits(), "x {w} times {factor}");
            }
        }
    }

    /// The fused kernels give exactly the bits of the default compositions they replace, on
    /// one thread and split over two and three (40 001 values: above the parallel threshold,
    /// and not a multiple of the part count).
    #[test]
    fn fused_updates_match_the_default_compositions_bit_for_bit() {
        use crate::cpu::parallel::tests::with_threads;
        for (n, threads) in [(37, 1), (40_001, 1), (40_001, 2), (40_001, 3)] {
            with_threads(threads, || {
                for beta1 in [0.9, 0.3] {
                    let s = AdamWStep {
                        lr: 1e-3,
                        weight_decay: 0.04,
                        beta1,
                        beta2: 0.999,
                        eps: 1e-8,
                        step: 3,
                    };
                    let g = t(1, n);
                    let (mut p1, mut m1, mut v1) = (t(2, n), t(3, n), t(4, n).square().unwrap());
                    let (mut p2, mut m2, mut v2) =
                        (p1.copy().unwrap(), m1.copy().unwrap(), v1.copy().unwrap());
                    p1.adamw_update_(&g, &mut m1, &mut v1, &s).unwrap();
                    update::adamw(&mut p2, &g, &mut m2, &mut v2, &s).unwrap();
                    for (a, b) in [(p1, p2), (m1, m2), (v1, v2)] {
                        assert_eq!(a.to_vec::<f32>().unwrap(), b.to_vec::<f32>().unwrap());
                    }
                }
                let (mut a, src) = (t(5, n), t(6, n));
                let mut b = a.copy().unwrap();
                a.ema_update_(&src, 0.996).unwrap();
                update::ema(&mut b, &src, 0.996).unwrap();
                assert_eq!(a.to_vec::<f32>().unwrap(), b.to_vec::<f32>().unwrap());
            });
        }
    }
}
