//! CPU pooling kernels for NCHW, written after PyTorch's `cpu_max_pool`, `cpu_avg_pool` and
//! `cpu_adaptive_avg_pool` (same window bounds, summation order and divisors), so that
//! results agree with it to rounding (2e-6 relative in the f32 tests).
//!
//! Every kernel reads its input through `strided::view` (any layout) and works plane by plane
//! (`n*c` planes of `h*w`). f16/bf16 run in f32 and round once at the end, as PyTorch's
//! opmath types do.

use crate::backend::PoolParams;
use crate::cpu::{parallel, strided};
use crate::dtype::DType;
use crate::layout::Layout;
use crate::{HostBuffer, Result};
use alloc::vec::Vec;
use core::ops::AddAssign;
use num_traits::Float;

/// Binds `$v` to the view as a contiguous `&[f32]` or `&[f64]` (f16/bf16 widened to f32) and
/// evaluates `$body`, a `Result<(Vec<C>, X)>`; the `Vec<C>` comes back in the input's dtype.
/// A macro rather than a function because `$body` is generic over the compute type.
macro_rules! compute {
    ($op:expr, $x:expr, $layout:expr, $v:ident => $body:expr) => {
        match $x {
            HostBuffer::F32(src) => {
                let $v: &[f32] = &strided::view(src, $layout);
                let (out, extra) = $body?;
                (HostBuffer::F32(out), extra)
            }
            HostBuffer::F64(src) => {
                let $v: &[f64] = &strided::view(src, $layout);
                let (out, extra) = $body?;
                (HostBuffer::F64(out), extra)
            }
            HostBuffer::F16(_) | HostBuffer::BF16(_) => {
                let up = strided::gather_view($x, $layout).cast(DType::F32);
                let $v: &[f32] = up.as_slice::<f32>().unwrap_or(&[]);
                let (out, extra) = $body?;
                (HostBuffer::F32(out).cast($x.dtype()), extra)
            }
            other => {
                return Err(crate::Error::DType {
                    op: $op,
                    msg: crate::__format!(
                        "the CPU kernel needs a float tensor, got {}",
                        other.dtype()
                    ),
                })
            }
        }
    };
}

/// `(planes, [h, w])` of a rank-4 layout whose spatial dims must be `hw`. The front end
/// guarantees this; the check keeps a direct backend call from indexing out of bounds.
fn planes(op: &'static str, layout: &Layout, hw: [usize; 2]) -> Result<usize> {
    let s = layout.shape();
    if s.len() != 4 || s[2] != hw[0] || s[3] != hw[1] {
        return Err(crate::shape_err!(
            op,
            "expected [n, c, {}, {}], got {s:?}",
            hw[0],
            hw[1]
        ));
    }
    Ok(s[0] * s[1])
}

/// [`planes`] of a rank-4 layout of any spatial size, and that size.
fn planes_any_size(op: &'static str, layout: &Layout) -> Result<(usize, [usize; 2])> {
    let s = layout.shape();
    let hw = if s.len() == 4 { [s[2], s[3]] } else { [0, 0] };
    Ok((planes(op, layout, hw)?, hw))
}

/// Checks the input plane is not empty (`chunks_exact` needs a non-zero size) and, for
/// average pooling, that dilation is 1 (its window code assumes it); returns the output size.
fn out_hw(op: &'static str, p: &PoolParams, avg: bool) -> Result<[usize; 2]> {
    if p.in_hw.contains(&0) {
        return Err(crate::shape_err!(
            op,
            "input size {:?} must be non-zero",
            p.in_hw
        ));
    }
    if avg && p.dilation != [1, 1] {
        return Err(crate::arg_err!(op, "dilation {:?} must be 1", p.dilation));
    }
    p.out_hw()
}

/// The input rows (or columns) a pooling window at output position `o` covers along one
/// axis, as PyTorch computes them: `(first, end, step)` clipped to `0..len`.
fn window(o: usize, p: &PoolParams, axis: usize, len: usize) -> (usize, usize, usize) {
    let (k, s, pad, d) = (
        p.kernel[axis],
        p.stride[axis],
        p.padding[axis],
        p.dilation[axis],
    );
    let start = (o * s) as isize - pad as isize;
    let end = (start + ((k - 1) * d) as isize + 1).min(len as isize);
    let mut first = start;
    while first < 0 {
        first += d as isize; // the first tap inside the image
    }
    (first as usize, end.max(first) as usize, d)
}

/// Max pooling of `planes` planes: each output's maximum and its index in the plane. Planes
/// are spread over the threads (each output by the same code on any thread).
fn max_pool_typed<C: Float + Send + Sync>(
    x: &[C],
    planes: usize,
    p: &PoolParams,
) -> Result<(Vec<C>, Vec<i64>)> {
    let [h, w] = p.in_hw;
    let [oh, ow] = p.out_hw()?;
    let taps = p.kernel[0] * p.kernel[1];
    let rows: Vec<_> = (0..oh).map(|oy| window(oy, p, 0, h)).collect();
    let cols: Vec<_> = (0..ow).map(|ox| window(ox, p, 1, w)).collect();
    let pairs: Vec<(C, i64)> =
        parallel::collect(planes, oh * ow, planes * oh * ow * taps, |range, sink| {
            for plane in x.chunks_exact(h * w).skip(range.start).take(range.len()) {
                for &(y0, y1, dy) in &rows {
                    for &(x0, x1, dx) in &cols {
                        // PyTorch: -inf start, `>` keeps the first maximum, a NaN wins and
                        // sticks.
                        let mut best = C::neg_infinity();
                        let mut at = y0 * w + x0;
                        for iy in (y0..y1).step_by(dy) {
                            for ix in (x0..x1).step_by(dx) {
                                let v = plane[iy * w + ix];
                                if v > best || v.is_nan() {
                                    best = v;
                                    at = iy * w + ix;
                                }
                            }
                        }
                        sink.extend([(best, at as i64)]);
                    }
                }
            }
        });
    // Both outputs and the pairs' buffer go through the buffer cache, so a training step
    // reuses them instead of growing the cache by foreign allocations every step.
    let mut vals = crate::cpu::pool::take("max_pool2d", pairs.len())?;
    vals.extend(pairs.iter().map(|p| p.0));
    let mut idx = crate::cpu::pool::take("max_pool2d", pairs.len())?;
    idx.extend(pairs.iter().map(|p| p.1));
    crate::cpu::pool::give(pairs);
    Ok((vals, idx))
}

/// PyTorch's avg-pool window: the rows `y0..y1` summed and the divisor (dilation is 1).
/// `pool_size` counts padding (the window clipped to the padded image), the other does not.
fn avg_window(o: usize, p: &PoolParams, axis: usize, len: usize) -> (usize, usize, usize) {
    let (k, s, pad) = (p.kernel[axis], p.stride[axis], p.padding[axis]);
    let start = (o * s) as isize - pad as isize;
    let end = (start + k as isize).min((len + pad) as isize);
    let padded = (end - start) as usize;
    let (a, b) = (
        start.max(0) as usize,
        (end.min(len as isize)).max(0) as usize,
    );
    (a, b.max(a), padded)
}

fn divisor(p: &PoolParams, y: (usize, usize, usize), x: (usize, usize, usize)) -> usize {
    if p.count_include_pad {
        y.2 * x.2
    } else {
        (y.1 - y.0) * (x.1 - x.0)
    }
}

/// What one output pixel of an average pooling averages: input rows `rows.0..rows.1` and
/// columns `cols.0..cols.1`, and how their sum is divided.
#[derive(Clone, Copy)]
struct Window {
    rows: (usize, usize),
    cols: (usize, usize),
    div: Divisor,
}

#[derive(Clone, Copy)]
enum Divisor {
    /// One division (`avg_pool2d`: the window's size).
    Once(usize),
    /// Two divisions in this order (`adaptive_avg_pool2d`: the bin's height, then its
    /// width), as PyTorch does them, for bit-identical results.
    Twice(usize, usize),
}

impl Divisor {
    fn apply<C: Float>(self, v: C) -> C {
        match self {
            Divisor::Once(d) => v / cast(d),
            Divisor::Twice(a, b) => v / cast(a) / cast(b),
        }
    }
}

/// `avg_pool2d`'s windows; `None` for an empty one (its output stays 0, as in PyTorch).
fn avg_pool_windows(p: &PoolParams) -> impl Fn(usize, usize) -> Option<Window> + '_ {
    let [h, w] = p.in_hw;
    move |oy, ox| {
        let (wy, wx) = (avg_window(oy, p, 0, h), avg_window(ox, p, 1, w));
        let div = divisor(p, wy, wx);
        (div != 0).then_some(Window {
            rows: (wy.0, wy.1),
            cols: (wx.0, wx.1),
            div: Divisor::Once(div),
        })
    }
}

/// PyTorch's adaptive bin `floor(o*len/out)..ceil((o+1)*len/out)`.
fn bin(o: usize, out: usize, len: usize) -> (usize, usize) {
    (o * len / out, ((o + 1) * len).div_ceil(out))
}

/// `adaptive_avg_pool2d`'s bins (never empty: both sizes are checked non-zero).
fn adaptive_windows(
    [h, w]: [usize; 2],
    [oh, ow]: [usize; 2],
) -> impl Fn(usize, usize) -> Option<Window> {
    move |oy, ox| {
        let (rows, cols) = (bin(oy, oh, h), bin(ox, ow, w));
        Some(Window {
            rows,
            cols,
            div: Divisor::Twice(rows.1 - rows.0, cols.1 - cols.0),
        })
    }
}

/// Average pooling of `planes` planes `[h, w]` to `[oh, ow]`, output pixel `(oy, ox)`
/// averaging `window(oy, ox)` (rows summed in order, then divided).
fn mean_pool<C: Float + AddAssign>(
    x: &[C],
    planes: usize,
    [h, w]: [usize; 2],
    [oh, ow]: [usize; 2],
    window: impl Fn(usize, usize) -> Option<Window>,
) -> Result<(Vec<C>, ())> {
    let mut out = crate::cpu::pool::filled("avg_pool2d", planes * oh * ow, C::zero())?;
    for (plane, dst) in x.chunks_exact(h * w).zip(out.chunks_exact_mut(oh * ow)) {
        for oy in 0..oh {
            for ox in 0..ow {
                let Some(win) = window(oy, ox) else {
                    continue;
                };
                let mut sum = C::zero();
                for iy in win.rows.0..win.rows.1 {
                    for v in &plane[iy * w + win.cols.0..iy * w + win.cols.1] {
                        sum += *v;
                    }
                }
                dst[oy * ow + ox] = win.div.apply(sum);
            }
        }
    }
    Ok((out, ()))
}

/// The adjoint of [`mean_pool`]: each output gradient, divided, added to its window.
fn mean_pool_backward<C: Float + AddAssign>(
    g: &[C],
    planes: usize,
    [h, w]: [usize; 2],
    [oh, ow]: [usize; 2],
    window: impl Fn(usize, usize) -> Option<Window>,
) -> Result<(Vec<C>, ())> {
    let mut out = crate::cpu::pool::filled("avg_pool2d backward", planes * h * w, C::zero())?;
    for (src, plane) in g.chunks_exact(oh * ow).zip(out.chunks_exact_mut(h * w)) {
        for oy in 0..oh {
            for ox in 0..ow {
                let Some(win) = window(oy, ox) else {
                    continue;
                };
                let delta = win.div.apply(src[oy * ow + ox]);
                for iy in win.rows.0..win.rows.1 {
                    for v in &mut plane[iy * w + win.cols.0..iy * w + win.cols.1] {
                        *v += delta;
                    }
                }
            }
        }
    }
    Ok((out, ()))
}

/// A window size as the compute type (always representable: sizes are far below 2^24).
fn cast<C: Float>(n: usize) -> C {
    C::from(n).unwrap_or_else(C::nan)
}

pub(crate) fn max_pool2d(
    x: &HostBuffer,
    l: &Layout,
    p: &PoolParams,
) -> Result<(HostBuffer, HostBuffer)> {
    out_hw("max_pool2d", p, false)?;
    let n = planes("max_pool2d", l, p.in_hw)?;
    let (vals, idx) = compute!("max_pool2d", x, l, v => max_pool_typed(v, n, p));
    Ok((vals, HostBuffer::I64(idx)))
}

pub(crate) fn avg_pool2d(x: &HostBuffer, l: &Layout, p: &PoolParams) -> Result<HostBuffer> {
    let out = out_hw("avg_pool2d", p, true)?;
    let n = planes("avg_pool2d", l, p.in_hw)?;
    let windows = avg_pool_windows(p);
    Ok(compute!("avg_pool2d", x, l, v => mean_pool(v, n, p.in_hw, out, &windows)).0)
}

pub(crate) fn avg_pool2d_backward(
    g: &HostBuffer,
    l: &Layout,
    p: &PoolParams,
) -> Result<HostBuffer> {
    let op = "avg_pool2d_backward";
    let out = out_hw(op, p, true)?;
    let n = planes(op, l, out)?;
    let windows = avg_pool_windows(p);
    Ok(compute!(op, g, l, v => mean_pool_backward(v, n, p.in_hw, out, &windows)).0)
}

pub(crate) fn adaptive_avg_pool2d(
    x: &HostBuffer,
    l: &Layout,
    out_hw: [usize; 2],
) -> Result<HostBuffer> {
    let op = "adaptive_avg_pool2d";
    let (n, in_hw) = planes_any_size(op, l)?;
    super::check_adaptive(op, in_hw, out_hw)?;
    let windows = adaptive_windows(in_hw, out_hw);
    Ok(compute!(op, x, l, v => mean_pool(v, n, in_hw, out_hw, &windows)).0)
}

pub(crate) fn adaptive_avg_pool2d_backward(
    g: &HostBuffer,
    l: &Layout,
    in_hw: [usize; 2],
) -> Result<HostBuffer> {
    let op = "adaptive_avg_pool2d_backward";
    let (n, out_hw) = planes_any_size(op, l)?;
    super::check_adaptive(op, in_hw, out_hw)?;
    let windows = adaptive_windows(in_hw, out_hw);
    Ok(compute!(op, g, l, v => mean_pool_backward(v, n, in_hw, out_hw, &windows)).0)
}

#[cfg(test)]
mod tests {
    //! Expected values from PyTorch 2.9.1 on the CPU in float32: the input is
    //! `x[i] = ((i*37) % 23 - 11) / 4` and the output gradient `g[i] = ((i*13) % 11 - 5) / 2`
    //! (row-major), passed to `F.max_pool2d(x, k, s, p, dilation=d, return_indices=True)`,
    //! `F.avg_pool2d(x, k, s, p, count_include_pad=..)`, `F.adaptive_avg_pool2d(x, out)`,
    //! then `y.backward(g)` for the input gradients.
    use crate::{Cpu, DType, Pool2dOptions, Tensor};
    use alloc::vec::Vec;

    fn pattern(shape: &[usize], f: impl Fn(usize) -> f32) -> Tensor<Cpu> {
        let n = shape.iter().product();
        Tensor::from_vec((0..n).map(f).collect::<Vec<f32>>(), shape, &Cpu).unwrap()
    }
    fn input(shape: &[usize]) -> Tensor<Cpu> {
        pattern(shape, |i| ((i * 37) % 23) as f32 / 4.0 - 2.75)
    }
    fn grad(shape: &[usize]) -> Tensor<Cpu> {
        pattern(shape, |i| ((i * 13) % 11) as f32 / 2.0 - 2.5)
    }
    fn assert_close(got: &Tensor<Cpu>, want: &[f32]) {
        let got = got.to_vec::<f32>().unwrap();
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!((g - w).abs() <= 2e-6 * w.abs().max(1.0), "{i}: {g} vs {w}");
        }
    }
    fn opts(k: [usize; 2], s: [usize; 2], p: [usize; 2], d: [usize; 2]) -> Pool2dOptions {
        Pool2dOptions {
            kernel: k,
            stride: s,
            padding: p,
            dilation: d,
            count_include_pad: true,
        }
    }

    #[test]
    fn max_pool_matches_torch() {
        let x = input(&[1, 2, 5, 6]);
        let (v, i) = x.max_pool2d(&Pool2dOptions::new(3, 2, 1)).unwrap();
        assert_eq!(v.shape(), &[1, 2, 3, 3]);
        assert_eq!(i.dtype(), DType::I64);
        #[rustfmt::skip]
        assert_close(&v, &[1.0, 2.25, 2.0, 2.75, 2.5, 1.75, 2.75, 2.0, 1.75,
            2.5, 2.25, 2.75, 2.5, 2.0, 2.75, 2.25, 2.0, 2.5]);
        #[rustfmt::skip]
        assert_eq!(i.to_vec::<i64>().unwrap(), [6, 8, 3, 18, 13, 21, 18, 26, 21,
            6, 1, 11, 6, 19, 11, 24, 19, 29]);

        // Dilation 2 with padding: `F.max_pool2d(x, 2, 1, 1, dilation=2)`.
        let x = input(&[1, 1, 5, 6]);
        let (v, i) = x.max_pool2d(&opts([2, 2], [1, 1], [1, 1], [2, 2])).unwrap();
        assert_eq!(v.shape(), &[1, 1, 5, 6]);
        #[rustfmt::skip]
        assert_close(&v, &[-1.25, 2.25, 0.0, 2.25, 1.25, -2.25, 2.5, 0.25, 2.5, 1.5, 2.0, 1.5,
            0.5, 2.75, 1.75, 2.25, 1.75, -0.5, 2.5, 2.0, 2.5, 2.0, 1.0, 1.5,
            0.5, 2.75, 1.75, -0.5, 1.75, -0.5]);
        #[rustfmt::skip]
        assert_eq!(i.to_vec::<i64>().unwrap(), [7, 8, 9, 8, 11, 10, 13, 14, 13, 16, 3, 16,
            19, 18, 21, 8, 21, 22, 13, 26, 13, 26, 29, 16, 19, 18, 21, 22, 21, 22]);
    }

    #[test]
    fn max_pool_backward_matches_torch() {
        // `F.max_pool2d(x, (3, 2), (1, 2), (1, 0), dilation=(1, 2))`: overlapping windows
        // share maxima, whose gradients add up.
        let x = input(&[1, 1, 5, 6]);
        let (v, i) = x.max_pool2d(&opts([3, 2], [1, 2], [1, 0], [1, 2])).unwrap();
        assert_close(
            &v,
            &[2.25, 2.25, 2.25, 2.25, 2.75, 2.25, 2.75, 2.0, 2.75, 2.0],
        );
        assert_eq!(
            i.to_vec::<i64>().unwrap(),
            [8, 8, 8, 8, 18, 8, 18, 26, 18, 26]
        );
        let gx = grad(&[1, 1, 5, 2]).max_pool2d_backward(&i, [5, 6]).unwrap();
        let mut want = [0.0f32; 30];
        (want[8], want[18]) = (-1.5, -0.5);
        assert_close(&gx, &want);
    }

    #[test]
    fn avg_pool_matches_torch() {
        let x = input(&[1, 2, 5, 6]);
        let g = grad(&[1, 2, 3, 3]);
        let mut o = Pool2dOptions::new(3, 2, 1);
        let p = x.pool2d_params(&o).unwrap();
        #[rustfmt::skip]
        assert_close(&x.avg_pool2d(&o).unwrap(), &[-0.25, 0.25, -0.19444445, 0.5, 0.25,
            -0.41666666, 0.2777778, 0.083333336, -0.3611111, 0.41666666, -0.027777778,
            0.16666667, 0.22222222, -0.16666667, -0.19444445, 0.30555555, -0.19444445, 0.0]);
        #[rustfmt::skip]
        assert_close(&g.avg_pool2d_backward(&p).unwrap(), &[-0.2777778, -0.44444448,
            -0.16666667, -0.22222222, -0.055555556, -0.055555556, -0.22222224, -0.22222225,
            0.0, 0.22222224, 0.22222224, 0.22222224, 0.055555556, 0.22222222, 0.16666667,
            0.44444448, 0.2777778, 0.2777778, -0.16666667, -0.11111111, 0.05555556, 0.33333337,
            0.2777778, 0.2777778, -0.22222222, -0.33333334, -0.11111111, -0.11111111, 0.0, 0.0,
            0.11111111, 0.33333334, 0.22222222, -0.055555567, -0.2777778, -0.2777778,
            -0.05555556, 0.11111112, 0.16666667, -0.055555563, -0.22222224, -0.22222224,
            -0.16666667, -0.22222222, -0.055555556, 0.0, 0.055555556, 0.055555556, 0.0,
            0.22222224, 0.22222224, 0.055555567, -0.16666667, -0.16666667, 0.16666667,
            0.44444448, 0.2777778, 0.055555567, -0.22222222, -0.22222222]);

        o.count_include_pad = false;
        let p = x.pool2d_params(&o).unwrap();
        #[rustfmt::skip]
        assert_close(&x.avg_pool2d(&o).unwrap(), &[-0.5625, 0.375, -0.29166666, 0.75, 0.25,
            -0.41666666, 0.625, 0.125, -0.5416667, 0.9375, -0.041666668, 0.25, 0.33333334,
            -0.16666667, -0.19444445, 0.6875, -0.29166666, 0.0]);
        #[rustfmt::skip]
        assert_close(&g.avg_pool2d_backward(&p).unwrap(), &[-0.625, -0.875, -0.25,
            -0.33333334, -0.083333336, -0.083333336, -0.5416667, -0.625, -0.08333333,
            0.11111112, 0.19444445, 0.19444445, 0.083333336, 0.25, 0.16666667, 0.44444448,
            0.2777778, 0.2777778, -0.41666666, -0.4166667, 0.0, 0.2777778, 0.2777778,
            0.2777778, -0.5, -0.6666667, -0.16666667, -0.16666667, 0.0, 0.0, 0.25, 0.5833334,
            0.33333334, -0.08333331, -0.41666666, -0.41666666, 0.0, 0.27777782, 0.2777778,
            -0.08333331, -0.3611111, -0.3611111, -0.25, -0.30555555, -0.055555556, 0.0,
            0.055555556, 0.055555556, 0.125, 0.4861111, 0.3611111, 0.08333331, -0.2777778,
            -0.2777778, 0.375, 0.7916666, 0.41666666, 0.08333331, -0.33333334, -0.33333334]);

        // Rectangular window, stride and padding: `F.avg_pool2d(x, (2, 3), (2, 1), (1, 1),
        // count_include_pad=False)`.
        let x = input(&[1, 1, 5, 6]);
        let mut o = opts([2, 3], [2, 1], [1, 1], [1, 1]);
        o.count_include_pad = false;
        let p = x.pool2d_params(&o).unwrap();
        #[rustfmt::skip]
        assert_close(&x.avg_pool2d(&o).unwrap(), &[-1.0, -1.1666666, 0.41666666, 0.083333336,
            -0.25, -1.375, 0.3125, 0.625, 0.29166666, -0.041666668, -0.375, -0.0625, 0.625,
            0.45833334, 0.125, -0.20833333, -0.5416667, -1.1875]);
        #[rustfmt::skip]
        assert_close(&grad(&[1, 1, 3, 6]).avg_pool2d_backward(&p).unwrap(), &[-1.75,
            -1.9166666, -0.5, 0.5, 1.9166667, 1.75, -0.6666667, -0.6666667, 0.0, 0.5, -0.125,
            -0.29166666, -0.6666667, -0.6666667, 0.0, 0.5, -0.125, -0.29166666, -0.45833334,
            -0.375, 0.25, 0.75, 0.16666663, -0.08333334, -0.45833334, -0.375, 0.25, 0.75,
            0.16666663, -0.08333334]);
    }

    #[test]
    fn adaptive_avg_pool_matches_torch() {
        // Overlapping bins: 5x7 to 3x4.
        let x = input(&[1, 2, 5, 7]);
        #[rustfmt::skip]
        assert_close(&x.adaptive_avg_pool2d([3, 4]).unwrap(), &[-0.25, 0.20833333,
            -0.45833334, 0.0, 0.083333336, -0.41666666, 0.19444443, 0.33333334, -0.0625,
            -0.083333336, 0.20833333, 0.1875, 0.0625, 0.041666668, -0.625, 0.3125,
            -0.083333336, 0.055555556, 0.027777778, 0.16666667, 0.25, 0.7083333, 0.041666668,
            -0.9375]);
        #[rustfmt::skip]
        assert_close(&grad(&[1, 2, 3, 4]).adaptive_avg_pool2d_backward([5, 7]).unwrap(), &[
            -0.625, -0.875, -0.25, -0.33333334, -0.083333336, 0.041666664, 0.125, -0.375,
            -0.34722224, 0.027777761, -0.2777778, -0.30555555, -0.3472222, -0.04166667, 0.25,
            0.5277778, 0.27777776, 0.055555537, -0.22222222, -0.3888889, -0.16666667, 0.25,
            0.6944445, 0.44444442, 0.5555556, 0.11111112, -0.6805556, -0.7916667, 0.0,
            0.16666667, 0.16666667, 0.5, 0.33333334, -0.29166666, -0.625, -0.375, -0.45833334,
            -0.083333336, 0.0, 0.083333336, 0.45833334, 0.375, 0.041666657, -0.2638889,
            -0.30555555, -0.33333334, -0.027777776, 0.34722224, 0.375, 0.41666666, 0.19444443,
            -0.22222222, -0.33333334, -0.11111111, -0.11111111, 0.0, 0.6666666, 0.7777778,
            0.11111112, -0.41666666, -0.5277778, -0.9027778, -0.375, 0.25, 0.5833334,
            0.33333334, -0.08333331, -0.41666666, -0.7916666, -0.375]);
        // Output larger than the input: 3x2 to 4x5.
        let x = input(&[1, 1, 3, 2]);
        #[rustfmt::skip]
        assert_close(&x.adaptive_avg_pool2d([4, 5]).unwrap(), &[-2.75, -2.75, -1.0, 0.75,
            0.75, -2.125, -2.125, -0.375, 1.375, 1.375, -0.875, -0.875, -0.5625, -0.25, -0.25,
            -0.25, -0.25, -1.375, -2.5, -2.5]);
        let gx = grad(&[1, 1, 4, 5]).adaptive_avg_pool2d_backward([3, 2]);
        assert_close(&gx.unwrap(), &[-4.25, 2.0, -0.625, -0.125, 2.375, -2.375]);
        // ResNet's global pool.
        let y = x.adaptive_avg_pool2d([1, 1]).unwrap();
        assert_close(
            &y,
            &[x.mean(&[-1, -2], false).unwrap().item().unwrap() as f32],
        );
    }
}
