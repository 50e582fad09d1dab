//! Fused CPU batch-norm statistics and backward.
//!
//! The composites (`backend/composite.rs`) compute a training batch norm's statistics as
//! `mean` and `var` over axes `(0, 2, 3, ..)`, and its gradients as a dozen broadcast
//! passes: each allocates a full-size output, and each of their per-channel sums first
//! gathers the input into `[c, n, h*w]` order. On a ResNet-50 BYOL step these passes were a
//! quarter of the CPU time. Here each channel's values are read where they lie, one
//! contiguous `h*w` run per image:
//!
//! - statistics: two reads of `x` (the sum for the mean, then the sum of squared deviations);
//! - backward: the four per-channel sums (`Σĝ`, `Σĝx̂`, `Σg x̂`, `Σg`) read each image's runs of
//!   `x` and `grad` (from L1 after the first), computing `x̂` and `ĝ` as they go rather than
//!   storing them; one more pass writes `dx`.
//!
//! Every element goes through the same f32 (or f64) operations as in the composite, and every
//! sum adds the same values in the same order (`RunSum` is the reduction's lane order fed
//! one run at a time), so the results are the composite's bit for bit, on any thread count.
//! Other dtypes, and operands of other dtypes or sizes, take the composite.

use super::cpu::GradOperands;
use crate::backend::composite;
use crate::buffer::HostElement;
use crate::cpu::strided::elements;
use crate::cpu::{parallel, Cpu};
use crate::dtype::Float;
use crate::ops::reduce::run_sum::RunSum;
use crate::{BatchNormGrads, BatchNormNeeds, DType, Result, Tensor};
use alloc::vec::Vec;

/// `(n, c, inner)` of an `[n, c, ..]` input, or `None` below rank 2.
fn dims(x: &Tensor<Cpu>) -> Option<(usize, usize, usize)> {
    let s = x.shape();
    (s.len() >= 2).then(|| (s[0], s[1], s[2..].iter().product()))
}

/// Per-channel sums: for channel `ch`, `f(u, sums)` is called for each image's unit
/// `u = image * c + ch` (its contiguous run is `u * inner..`) in image order, to feed the
/// channel's `K` sums.
fn channel_sums<const K: usize>(
    (n, c, inner): (usize, usize, usize),
    f: impl Fn(usize, &mut [RunSum; K]) + Sync,
) -> Vec<[f64; K]> {
    parallel::collect(c, 1, K * n * c * inner, |channels, sink| {
        sink.extend(channels.map(|ch| {
            let mut sums: [RunSum; K] = core::array::from_fn(|_| RunSum::new(n * inner));
            for b in 0..n {
                f(b * c + ch, &mut sums);
            }
            sums.map(RunSum::finish)
        }))
    })
}

/// A `[c]` tensor of per-channel sums rounded to `T` as the reduction rounds them. Built in
/// the backend's own memory (a kernel output, not an upload: the step-budget test counts
/// uploads and reads).
fn per_channel<T: HostElement>(sums: impl ExactSizeIterator<Item = f64>) -> Result<Tensor<Cpu>> {
    let c = sums.len();
    let mut v: Vec<T> = crate::cpu::pool::take("batch_norm", c)?;
    v.extend(sums.map(T::from_f64));
    crate::cpu::kernel_output(T::into_buffer(v), &[c])
}

/// [`per_channel`] scaled by `1 / count` with the same `mul_scalar` as the composite's `mean`.
fn scaled<T: HostElement>(
    sums: impl ExactSizeIterator<Item = f64>,
    count: usize,
) -> Result<Tensor<Cpu>> {
    per_channel::<T>(sums)?.mul_scalar(1.0 / count as f64)
}

/// Per-channel mean and biased variance of `[n, c, ..]` over every axis but 1 (each `[c]`).
pub(crate) fn batch_norm_stats(x: &Tensor<Cpu>) -> Result<(Tensor<Cpu>, Tensor<Cpu>)> {
    let fused = match x.dtype() {
        DType::F32 => stats_typed::<f32>(x),
        DType::F64 => stats_typed::<f64>(x),
        _ => None,
    };
    match fused {
        Some(r) => r,
        None => composite::batch_norm_stats(x),
    }
}

fn stats_typed<T: Float + HostElement + Send + Sync>(
    x: &Tensor<Cpu>,
) -> Option<Result<(Tensor<Cpu>, Tensor<Cpu>)>> {
    let d @ (n, _, inner) = dims(x)?;
    let xv = elements::<T>(x)?;
    let count = n * inner;
    let run = |u: usize| &xv[u * inner..(u + 1) * inner];
    let sums = channel_sums(d, |u, [s]| s.feed(run(u)));
    let mean = match scaled::<T>(sums.iter().map(|s| s[0]), count) {
        Ok(m) => m,
        Err(e) => return Some(Err(e)),
    };
    crate::cpu::pool::give(sums);
    // The mean's values as the kernel's own memory (not a device read).
    let mv = elements::<T>(&mean)?;
    let sq = channel_sums(d, |u, [s]| {
        let m = mv[u % mv.len()];
        // (x - mean)² as the composite's `sub` then `square`, each rounded to T.
        s.feed_map(run(u), |v| {
            let d = v - m;
            d * d
        });
    });
    let var = scaled::<T>(sq.iter().map(|s| s[0]), count);
    crate::cpu::pool::give(sq);
    drop(mv);
    Some(var.map(|var| (mean, var)))
}

/// The gradients of training-mode batch norm (see `Backend::batch_norm_backward`).
pub(crate) fn batch_norm_backward(
    x: &Tensor<Cpu>,
    mean: &Tensor<Cpu>,
    rstd: &Tensor<Cpu>,
    weight: Option<&Tensor<Cpu>>,
    grad: &Tensor<Cpu>,
    needs: BatchNormNeeds,
) -> Result<BatchNormGrads<Cpu>> {
    let fused = match x.dtype() {
        DType::F32 => backward_typed::<f32>(x, mean, rstd, weight, grad, needs),
        DType::F64 => backward_typed::<f64>(x, mean, rstd, weight, grad, needs),
        _ => None,
    };
    match fused {
        Some(r) => r,
        None => composite::batch_norm_backward(x, mean, rstd, weight, grad, needs),
    }
}

/// Unit `u`'s contiguous run of `inner` values.
#[inline]
fn run<T>(v: &[T], u: usize, inner: usize) -> &[T] {
    &v[u * inner..(u + 1) * inner]
}

fn backward_typed<T: Float + HostElement + Send + Sync>(
    x: &Tensor<Cpu>,
    mean: &Tensor<Cpu>,
    rstd: &Tensor<Cpu>,
    weight: Option<&Tensor<Cpu>>,
    grad: &Tensor<Cpu>,
    needs: BatchNormNeeds,
) -> Option<Result<BatchNormGrads<Cpu>>> {
    let (need_x, need_w, need_b) = (needs.input, needs.weight, needs.bias);
    let d @ (n, c, inner) = dims(x)?;
    if grad.shape() != x.shape() {
        return None;
    }
    let GradOperands {
        x: xv,
        g: gv,
        mean: mv,
        rstd: rv,
        w: wv,
    } = GradOperands::<T>::open(x, grad, mean, rstd, weight)?;
    let sized = |v: &[T]| v.len() == c;
    if !sized(&mv) || !sized(&rv) || !wv.as_deref().is_none_or(sized) {
        return None;
    }
    let wv = wv.as_deref();
    let need_w = need_w && wv.is_some();
    // The composite's x̂ = (x - mean) * rstd and ĝ = g * weight, per element, rounded to T.
    let xhat = |ch: usize| {
        let (m, r) = (mv[ch], rv[ch]);
        move |x: T| (x - m) * r
    };
    let ghat = |ch: usize| {
        let w = wv.map(|w| w[ch]);
        move |g: T| match w {
            Some(w) => g * w,
            None => g,
        }
    };
    // [Σĝ, Σĝx̂, Σg x̂, Σg] per channel (each only when a requested gradient needs it), read
    // straight from x and g: each value summed is rounded to T as the composite's is.
    let sums = channel_sums(d, |u, [s_gh, s_ghx, s_gx, s_g]| {
        let (xhat, ghat) = (xhat(u % c), ghat(u % c));
        let (g, x) = (run(&gv, u, inner), run(&xv, u, inner));
        if need_x {
            s_gh.feed_map(g, ghat);
            s_ghx.feed_zip(g, x, |g, x| ghat(g) * xhat(x));
        }
        if need_w {
            s_gx.feed_zip(g, x, |g, x| g * xhat(x));
        }
        if need_b {
            s_g.feed(g);
        }
    });
    let count = n * inner;
    let per_channel = |k: usize| per_channel::<T>(sums.iter().map(|s| s[k]));
    let dw = match need_w {
        true => match per_channel(2) {
            Ok(t) => Some(t),
            Err(e) => return Some(Err(e)),
        },
        false => None,
    };
    let db = match need_b {
        true => match per_channel(3) {
            Ok(t) => Some(t),
            Err(e) => return Some(Err(e)),
        },
        false => None,
    };
    if !need_x {
        crate::cpu::pool::give(sums);
        return Some(Ok(BatchNormGrads {
            input: None,
            weight: dw,
            bias: db,
        }));
    }
    // The composite's mean(ĝ) and mean(ĝ x̂): the sums rounded to T, then `mul_scalar`.
    let means = (
        scaled::<T>(sums.iter().map(|s| s[0]), count),
        scaled::<T>(sums.iter().map(|s| s[1]), count),
    );
    crate::cpu::pool::give(sums);
    let (m1, m2) = match means {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return Some(Err(e)),
    };
    // Their values as the kernel's own memory (not device reads).
    let (m1, m2) = (elements::<T>(&m1)?, elements::<T>(&m2)?);
    // dx = ((ĝ - mean(ĝ)) - x̂ mean(ĝ x̂)) * rstd, one (image, channel) run per unit.
    let dx: Vec<T> = parallel::collect(n * c, inner, 6 * n * c * inner, |units, sink| {
        for u in units {
            let ch = u % c;
            let (a, b, r) = (m1[ch], m2[ch], rv[ch]);
            let (xhat, ghat) = (xhat(ch), ghat(ch));
            let (g, x) = (run(&gv, u, inner), run(&xv, u, inner));
            sink.extend(
                g.iter()
                    .zip(x)
                    .map(|(&g, &x)| ((ghat(g) - a) - xhat(x) * b) * r),
            );
        }
    });
    let dx = crate::cpu::kernel_output(T::into_buffer(dx), x.shape());
    Some(dx.map(|dx| BatchNormGrads {
        input: Some(dx),
        weight: dw,
        bias: db,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bits(t: &Option<Tensor<Cpu>>) -> Option<(Vec<usize>, Vec<u64>)> {
        t.as_ref()
            .map(|t| (t.shape().to_vec(), crate::testing::bits(t)))
    }

    fn input(shape: &[usize], seed: usize, dtype: DType) -> Tensor<Cpu> {
        let n: usize = shape.iter().product();
        let v: Vec<f64> = (0..n)
            .map(|i| (((i + seed) * 7919 % 997) as f64 - 498.0) * 3.1e-3 + 0.25)
            .collect();
        Tensor::from_vec(v, shape, &Cpu)
            .unwrap()
            .to_dtype(dtype)
            .unwrap()
    }

    /// Statistics and gradients equal the composites' bit for bit: f32 and f64, runs that are
    /// and are not multiples of the lane count, a rank-2 input, a non-contiguous input, with
    /// and without a weight, every subset of gradients, one and two threads.
    #[test]
    fn fused_batch_norm_is_the_composite_bit_for_bit() {
        for dtype in [DType::F32, DType::F64] {
            for shape in [
                &[4, 3, 7, 7][..],
                &[2, 5, 4, 4],
                &[6, 3],
                &[3, 2, 5, 9],
                &[8, 16, 30, 30],
            ] {
                let x = input(shape, 1, dtype);
                let xt;
                let x = if shape == [3, 2, 5, 9] {
                    xt = input(&[3, 2, 9, 5], 1, dtype).transpose(2, 3).unwrap();
                    &xt
                } else {
                    &x
                };
                let c = shape[1];
                let g = input(shape, 5, dtype);
                let w = input(&[c], 9, dtype);
                for threads in [1, 2] {
                    crate::cpu::parallel::tests::with_threads(threads, || {
                        let (m, v) = batch_norm_stats(x).unwrap();
                        let (cm, cv) = composite::batch_norm_stats(x).unwrap();
                        assert_eq!(bits(&Some(m.clone())), bits(&Some(cm)), "mean {shape:?}");
                        assert_eq!(bits(&Some(v.clone())), bits(&Some(cv)), "var {shape:?}");
                        let r = v.add_scalar(1e-5).unwrap().rsqrt().unwrap();
                        for weight in [Some(&w), None] {
                            for mask in 1..8u8 {
                                let needs = BatchNormNeeds {
                                    input: mask & 1 != 0,
                                    weight: mask & 2 != 0,
                                    bias: mask & 4 != 0,
                                };
                                let f = batch_norm_backward(x, &m, &r, weight, &g, needs).unwrap();
                                let cf =
                                    composite::batch_norm_backward(x, &m, &r, weight, &g, needs)
                                        .unwrap();
                                let pairs = [
                                    (&f.input, &cf.input),
                                    (&f.weight, &cf.weight),
                                    (&f.bias, &cf.bias),
                                ];
                                for (k, (a, b)) in pairs.into_iter().enumerate() {
                                    assert_eq!(
                                        bits(a),
                                        bits(b),
                                        "{dtype:?} {shape:?} weight {} needs {needs:?} grad {k}",
                                        weight.is_some()
                                    );
                                }
                            }
                        }
                    })
                }
            }
        }
    }
}
