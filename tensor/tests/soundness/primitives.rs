//! `Cpu` backend methods called directly (no `Tensor` front end) with random and adversarial
//! layouts, shapes, index values and parameters: each call gives the reference's result or
//! an `Err`, and it must not be an `Err` when the inputs are in fact valid.

use crate::naive::{self, indices, strides_for, Naive, Raw};
use crate::{cases, limit, serial};
use proptest::prelude::*;
use tessera_tensor::{
    Backend, BinaryOp, Conv2dParams, Cpu, CpuStorage, HostBuffer, Layout, ReduceOp, UnaryOp,
};

/// The view's elements (f64 data of `len` elements), or why there are none to compare.
fn vals(raw: &Raw, len: usize) -> Result<Vec<f64>, Naive> {
    let d = naive::data(len);
    match naive::offsets(raw, len) {
        Naive::Offsets(o) => Ok(o.iter().map(|&i| d[i]).collect()),
        other => Err(other),
    }
}

fn layout(raw: &Raw) -> Option<Layout> {
    Layout::try_from_parts(&raw.shape, &raw.strides, raw.offset).ok()
}

fn f64s(b: CpuStorage) -> Vec<f64> {
    b.to_f64_vec()
}

fn close(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| (x - y).abs() <= 1e-9 * (1.0 + y.abs()))
}

/// A raw layout of exactly this shape.
fn shaped(shape: impl Strategy<Value = Vec<usize>>) -> impl Strategy<Value = Raw> {
    shape.prop_flat_map(strides_for)
}

/// Checks one call: `Ok` must match `want`; `Err` is only allowed when the reference says
/// the inputs are out of bounds or unknown, or `valid` is false.
fn judge(
    got: tessera_tensor::Result<Vec<f64>>,
    want: Result<Vec<f64>, bool>,
) -> Result<(), TestCaseError> {
    match (got, want) {
        (Ok(g), Ok(w)) => prop_assert!(close(&g, &w), "got {:?}, want {:?}", g, w),
        (Ok(g), Err(true)) => prop_assert!(false, "accepted invalid inputs, gave {:?}", g),
        (Err(e), Ok(_)) => prop_assert!(false, "rejected valid inputs: {}", e),
        _ => {}
    }
    Ok(())
}

/// `Ok(elements)` if the view is known valid, `Err(true)` if known invalid, `Err(false)` if
/// the reference cannot tell (too large to enumerate).
fn expect(raw: &Raw, len: usize) -> Result<Vec<f64>, bool> {
    vals(raw, len).map_err(|n| n == Naive::OutOfBounds)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(256)))]

    #[test]
    fn unary(raw in naive::raw(), len in 0usize..48) {
        let _g = serial();
        let _l = limit(1 << 20);
        let Some(l) = layout(&raw) else { return Ok(()) };
        let got = Cpu.unary(UnaryOp::Neg, &CpuStorage::from(HostBuffer::F64(naive::data(len))), &l).map(f64s);
        judge(got, expect(&raw, len).map(|v| v.iter().map(|x| -x).collect()))?;
    }

    #[test]
    fn binary(a in naive::raw(), b in naive::raw(), same in any::<bool>(), len in 0usize..48) {
        let _g = serial();
        let _l = limit(1 << 20);
        // Half the time both views have one shape, so that valid pairs are common.
        let b = if same { Raw { shape: a.shape.clone(), ..b } } else { b };
        let b = Raw { strides: b.strides.iter().copied().cycle().take(b.shape.len()).collect(), ..b };
        let (Some(al), Some(bl)) = (layout(&a), layout(&b)) else { return Ok(()) };
        let buf = CpuStorage::from(HostBuffer::F64(naive::data(len)));
        let got = Cpu.binary(BinaryOp::Add, &buf, &al, &buf, &bl).map(f64s);
        let want = match (expect(&a, len), expect(&b, len)) {
            (Ok(x), Ok(y)) if a.shape == b.shape => Ok(x.iter().zip(&y).map(|(p, q)| p + q).collect()),
            (Ok(_), Ok(_)) => Err(true),
            (Err(e), _) | (_, Err(e)) => Err(e),
        };
        judge(got, want)?;
    }

    #[test]
    fn reduce(raw in naive::raw(), len in 0usize..48, axes in prop::collection::vec(0usize..5, 0..3),
              max in any::<bool>()) {
        let _g = serial();
        let _l = limit(1 << 20);
        let Some(l) = layout(&raw) else { return Ok(()) };
        let op = if max { ReduceOp::Max } else { ReduceOp::Sum };
        let got = Cpu.reduce(op, &CpuStorage::from(HostBuffer::F64(naive::data(len))), &l, &axes).map(f64s);
        let r = raw.shape.len();
        let axes_ok = axes.windows(2).all(|w| w[0] < w[1]) && axes.iter().all(|&a| a < r);
        let want = expect(&raw, len).and_then(|v| {
            if !axes_ok || (max && axes.iter().any(|&a| raw.shape[a] == 0)) {
                return Err(true);
            }
            let out: Vec<usize> = (0..r).map(|d| if axes.contains(&d) { 1 } else { raw.shape[d] }).collect();
            let pos = |i: &[usize]| (0..r).fold(0, |acc, d| acc * out[d] + if axes.contains(&d) { 0 } else { i[d] });
            let n: usize = out.iter().product();
            if n > naive::MAX_ENUM {
                return Err(false); // an empty input, a huge output: the memory limit decides
            }
            let mut acc = vec![if max { f64::NEG_INFINITY } else { 0.0 }; n];
            for (i, x) in indices(&raw.shape).iter().zip(&v) {
                let p = pos(i);
                acc[p] = if max { acc[p].max(*x) } else { acc[p] + x };
            }
            Ok(acc)
        });
        judge(got, want)?;
    }

    #[test]
    fn matmul((a, b, shapes_ok) in matmul_case(), len in 0usize..64) {
        let _g = serial();
        let _l = limit(1 << 20);
        let (Some(al), Some(bl)) = (layout(&a), layout(&b)) else { return Ok(()) };
        let buf = CpuStorage::from(HostBuffer::F64(naive::data(len)));
        let got = Cpu.matmul(&buf, &al, &buf, &bl).map(f64s);
        let want = match (expect(&a, len), expect(&b, len)) {
            (Ok(x), Ok(y)) if shapes_ok => {
                let r = a.shape.len();
                let (m, k, n) = (a.shape[r - 2], a.shape[r - 1], b.shape[r - 1]);
                let bs: usize = a.shape[..r - 2].iter().product();
                let mut out = vec![0.0; bs * m * n];
                for e in 0..bs {
                    for i in 0..m {
                        for j in 0..n {
                            for t in 0..k {
                                out[(e * m + i) * n + j] +=
                                    x[(e * m + i) * k + t] * y[(e * k + t) * n + j];
                            }
                        }
                    }
                }
                Ok(out)
            }
            (Ok(_), Ok(_)) => Err(true),
            (Err(e), _) | (_, Err(e)) => Err(e),
        };
        judge(got, want)?;
    }

    #[test]
    fn copy_into(src in naive::raw(), dst in naive::raw(), same in any::<bool>(),
                 slen in 0usize..48, dlen in 0usize..48) {
        let _g = serial();
        let _l = limit(1 << 20);
        let dst = if same { Raw { shape: src.shape.clone(), ..dst } } else { dst };
        let dst = Raw { strides: dst.strides.iter().copied().cycle().take(dst.shape.len()).collect(), ..dst };
        let (Some(sl), Some(dl)) = (layout(&src), layout(&dst)) else { return Ok(()) };
        if sl.numel() > 1 << 16 {
            return Ok(()); // a valid copy of a huge broadcast view: correct, but slow
        }
        let mut out = CpuStorage::from(HostBuffer::F64(vec![-1.0; dlen]));
        let got = Cpu.copy_into(&CpuStorage::from(HostBuffer::F64(naive::data(slen))), &sl, &mut out, &dl);
        let want = match (expect(&src, slen), naive::offsets(&dst, dlen)) {
            (Ok(v), Naive::Offsets(o)) if src.shape == dst.shape => {
                let mut w = vec![-1.0; dlen];
                for (&i, x) in o.iter().zip(&v) {
                    w[i] = *x; // row-major order: a later write to the same place wins
                }
                Ok(w)
            }
            (Err(e), _) => Err(e),
            (_, Naive::Unknown) => Err(false),
            _ => Err(true),
        };
        judge(got.map(|()| f64s(out)), want)?;
    }

    #[test]
    fn index_select(raw in naive::raw(), len in 0usize..48, axis in 0usize..5,
                    idx in prop::collection::vec(prop_oneof![
                        8 => 0i64..3,
                        1 => prop::sample::select(vec![-1i64, 3, i64::MAX, i64::MIN]),
                    ], 0..4)) {
        let _g = serial();
        let _l = limit(1 << 20);
        let Some(l) = layout(&raw) else { return Ok(()) };
        let ibuf = CpuStorage::from(HostBuffer::I64(idx.clone()));
        let il = Layout::contiguous(&[idx.len()]);
        let got = Cpu.index_select(&CpuStorage::from(HostBuffer::F64(naive::data(len))), &l, axis, &ibuf, &il).map(f64s);
        let want = expect(&raw, len).and_then(|v| {
            let r = raw.shape.len();
            if axis >= r || idx.iter().any(|&i| i < 0 || i as u64 >= raw.shape[axis] as u64) {
                return Err(true);
            }
            let mut out_shape = raw.shape.clone();
            out_shape[axis] = idx.len();
            if !naive::valid_shape(&out_shape) {
                return Err(true); // an empty input, an output shape too large to describe
            }
            let flat = |i: &[usize]| (0..r).fold(0, |acc, d| acc * raw.shape[d] + i[d]);
            Ok(indices(&out_shape).iter().map(|i| {
                let mut j = i.clone();
                j[axis] = idx[i[axis]] as usize;
                v[flat(&j)]
            }).collect())
        });
        judge(got, want)?;
    }

    #[test]
    fn im2col(raw in shaped(prop::collection::vec(naive::dim(), 4)), len in 0usize..64,
              p in conv_params(), consistent in any::<bool>()) {
        let _g = serial();
        let _l = limit(1 << 20);
        let Some(l) = layout(&raw) else { return Ok(()) };
        // Half the time the parameters describe the input (else they likely contradict it).
        let p = if consistent {
            Conv2dParams { in_channels: raw.shape[1], in_hw: [raw.shape[2], raw.shape[3]], ..p }
        } else { p };
        let got = Cpu.im2col(&CpuStorage::from(HostBuffer::F64(naive::data(len))), &l, &p).map(f64s);
        let want = expect(&raw, len).and_then(|v| naive_im2col(&raw.shape, &v, &p).ok_or(true));
        judge(got, want)?;
    }
}

/// `[batch.., m, k]` and `[batch.., k', n]` layouts; mostly agreeing (the flag), sometimes
/// with differing inner dims or ranks.
fn matmul_case() -> impl Strategy<Value = (Raw, Raw, bool)> {
    (
        prop::collection::vec(0usize..3, 0..=1),
        (0usize..4, 0usize..4, 0usize..4),
        prop::option::weighted(0.2, 0usize..4),
        0usize..5,
    )
        .prop_flat_map(|(batch, (m, k, n), k2, drop)| {
            let k2 = k2.unwrap_or(k);
            let mut sa = batch.clone();
            sa.extend([m, k]);
            let mut sb = batch;
            sb.extend([k2, n]);
            if drop == 0 {
                sb.remove(0); // a rank mismatch, or a rank-1 operand
            }
            let ok = k2 == k && drop != 0;
            (strides_for(sa), strides_for(sb), Just(ok))
        })
}

fn conv_params() -> impl Strategy<Value = Conv2dParams> {
    let small = || prop_oneof![12 => 1usize..3, 1 => Just(0), 1 => Just(usize::MAX / 2), 1 => Just(1 << 40)];
    (
        small(),
        [small(), small()],
        [small(), small()],
        [small(), small()],
        [small(), small()],
        [small(), small()],
    )
        .prop_map(
            |(c, in_hw, kernel, stride, padding, dilation)| Conv2dParams {
                in_channels: c,
                in_hw,
                kernel,
                stride,
                padding,
                dilation,
                groups: 1,
            },
        )
}

/// im2col element by element with signed arithmetic; `None` if the parameters do not
/// describe the input or give no output.
fn naive_im2col(shape: &[usize], x: &[f64], p: &Conv2dParams) -> Option<Vec<f64>> {
    let [n, c, h, w] = shape.try_into().ok()?;
    if c != p.in_channels || [h, w] != p.in_hw {
        return None;
    }
    let out = |a: usize| -> Option<usize> {
        let (k, s, pd, d) = (
            p.kernel[a] as i128,
            p.stride[a] as i128,
            p.padding[a] as i128,
            p.dilation[a] as i128,
        );
        if k == 0 || s == 0 || d == 0 {
            return None;
        }
        let span = d * (k - 1) + 1;
        let padded = p.in_hw[a] as i128 + 2 * pd;
        if padded < span || padded > isize::MAX as i128 {
            return None;
        }
        usize::try_from((padded - span) / s + 1).ok()
    };
    let (oh, ow) = (out(0)?, out(1)?);
    let [kh, kw] = p.kernel;
    // The output [n, c*kh*kw, oh*ow] must be a valid shape: its non-zero factors' product
    // fits (as every layout's must), even when it has no elements.
    let dims = [n, c, kh, kw, oh, ow];
    dims.iter()
        .filter(|&&d| d != 0)
        .try_fold(1usize, |a, &d| a.checked_mul(d))?;
    let total = dims.iter().product::<usize>();
    if total > naive::MAX_ENUM {
        return None; // too many to enumerate (and, at the limit the tests set, to allocate)
    }
    let mut v = Vec::with_capacity(total);
    for b in 0..n {
        for ci in 0..c {
            for ki in 0..kh {
                for kj in 0..kw {
                    for oy in 0..oh {
                        for ox in 0..ow {
                            let iy = (oy * p.stride[0] + ki * p.dilation[0]) as i128
                                - p.padding[0] as i128;
                            let ix = (ox * p.stride[1] + kj * p.dilation[1]) as i128
                                - p.padding[1] as i128;
                            let inside =
                                (0..h as i128).contains(&iy) && (0..w as i128).contains(&ix);
                            v.push(if inside {
                                x[((b * c + ci) * h + iy as usize) * w + ix as usize]
                            } else {
                                0.0
                            });
                        }
                    }
                }
            }
        }
    }
    Some(v)
}
