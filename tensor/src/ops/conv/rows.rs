//! The CPU backend's convolution: one GEMM per chunk of images, with the patches as rows.
//!
//! The default composite (im2col, `backend/composite.rs`) multiplies the weight by each image's
//! `[c*kh*kw, oh*ow]` column matrix: one small GEMM per image, which packs the weight again for
//! every image and, where the maps are small (ResNet's last stages: 7×7 at 224 px, 4×4 or 1×1 at
//! 28 px), multiplies matrices a few columns wide. Here the patches of several images are the
//! rows of one `[n*oh*ow, c*kh*kw]` matrix ("im2row"), so each product is one large GEMM:
//!
//! ```text
//! forward          Y  [n*L, oc] = rows [n*L, k] · Wᵀ [k, oc]        then [n, L, oc] → [n, oc, L]
//! input gradient   dR [n*L, k]  = dY [n*L, oc] · W [oc, k]          then row2im (the adjoint)
//! weight gradient  dW [oc, k]   = dYᵀ [oc, n*L] · rows [n*L, k]     (the batch sum is the GEMM's)
//! ```
//!
//! with `L = oh*ow` and `k = kh*kw*c` in channels-last `(kh, kw, c)` order: the input is copied
//! to `[n, h, w, c]` first, so that each kernel tap of a patch is one contiguous run of `c`
//! channels (a 1×1 stride-1 convolution's patch matrix is that copy itself), and the weight is
//! permuted to match. The price is transposing copies of the input, the output (or the output
//! gradient) and the weight, each small next to the patch matrix. `n` is a chunk of the batch
//! small enough for the patch rows to stay in cache ([`super::general`], which drives these
//! kernels). Groups other than 1 and f16/bf16 keep the composite.

use crate::backend::Conv2dParams;
use crate::cpu::{checks, parallel, pool, strided, Cpu, CpuStorage};
use crate::dtype::Element;
use crate::{DType, HostBuffer, Result, Tensor};
use alloc::vec::Vec;
use core::mem::MaybeUninit;
use core::ops::Range;

/// Whether [`conv2d`] and its gradients handle this convolution (else the composite does).
pub(crate) fn applies(x: &Tensor<Cpu>, p: &Conv2dParams) -> bool {
    p.groups == 1 && matches!(x.dtype(), DType::F32 | DType::F64)
}

/// `x` in channels-last order `[n, h, w, c]` → `[n*oh*ow, kh*kw*c]`: row `(b, oy, ox)` holds
/// the patch under output pixel `(oy, ox)` of image `b`, column `(ki, kj, ci)` the input
/// `x[b, oy*s - p + ki*d, ox*s - p + kj*d, ci]`, or 0 in the padding. Channels-last makes every
/// `(ki, kj)` block of a row one contiguous run of `c` values, and without dilation the taps
/// `kj` of one `ki` are one run of `kw*c` (a single copy, not `kw`: at ResNet's 16 or 32
/// channels the copies are short enough that their count is the cost). Every element is
/// written once, so the buffer is not zeroed first. Rows are spread over the threads (not
/// images: [`super::general`] may ask for the rows of a single image). Only the rows
/// `rows` of the batch's matrix are made (the weight gradient takes them a few MB at a time,
/// not at image boundaries).
fn im2row_typed<T: Element>(x: &[T], rows: Range<usize>, p: &Conv2dParams) -> Result<Vec<T>> {
    let [h, w] = p.in_hw;
    let [oh, ow] = p.out_hw()?;
    let (c, [kh, kw]) = (p.in_channels, p.kernel);
    let (l, k) = (oh * ow, c * kh * kw);
    let numel = rows.len() * k;
    let mut out: Vec<T> = pool::take("im2row", numel)?;
    let slots = &mut out.spare_capacity_mut()[..numel];
    parallel::for_each_chunk_mut(slots, k, numel, |local, chunk| {
        for (r, row) in local.zip(chunk.chunks_exact_mut(k)) {
            let r = rows.start + r;
            let (b, pixel) = (r / l, r % l);
            let img = &x[b * h * w * c..][..h * w * c];
            let (oy, ox) = (pixel / ow, pixel % ow);
            for (ki, block) in row.chunks_exact_mut(kw * c).enumerate() {
                match tap(oy, ki, 0, h, p) {
                    Some(iy) => patch_line(block, &img[iy * w * c..][..w * c], ox, p),
                    None => fill_zero(block),
                }
            }
        }
    });
    // SAFETY: the chunks cover `0..numel` in whole rows, and `patch_line` or `fill_zero`
    // wrote every element of every `(ki)` block of every row.
    unsafe { out.set_len(numel) };
    Ok(out)
}

/// One `(ki)` block of a patch row (`kw*c` values) from input row `line` (`[w, c]`): the taps
/// `kj` of output column `ox`, zero in the padding.
fn patch_line<T: Element>(block: &mut [MaybeUninit<T>], line: &[T], ox: usize, p: &Conv2dParams) {
    let (c, w) = (p.in_channels, p.in_hw[1]);
    if p.dilation[1] != 1 {
        for (kj, tap_block) in block.chunks_exact_mut(c).enumerate() {
            match tap(ox, kj, 1, w, p) {
                Some(ix) => copy_run(tap_block, &line[ix * c..][..c]),
                None => fill_zero(tap_block),
            }
        }
        return;
    }
    let (kj0, kj1, first) = inside_taps(ox, p);
    let (left, rest) = block.split_at_mut(kj0 * c);
    let (inside, right) = rest.split_at_mut((kj1 - kj0) * c);
    fill_zero(left);
    if kj1 > kj0 {
        copy_run(inside, &line[first * c..][..(kj1 - kj0) * c]);
    }
    fill_zero(right);
}

/// Without dilation, the taps `kj0..kj1` of output column `ox` that fall inside the input
/// read the contiguous input columns `first..first + (kj1 - kj0)`; the other taps are padding.
/// Returns `(kj0, kj1, first)` (`kj0 == kj1` when every tap is padding).
#[inline]
fn inside_taps(ox: usize, p: &Conv2dParams) -> (usize, usize, usize) {
    let (kw, w) = (p.kernel[1], p.in_hw[1]);
    let (start, pad) = (ox * p.stride[1], p.padding[1]);
    let kj0 = pad.saturating_sub(start).min(kw);
    let kj1 = (w + pad).saturating_sub(start).clamp(kj0, kw);
    // Meaningful only when kj1 > kj0 (then start + kj0 >= pad); callers skip empty runs.
    let first = (start + kj0).saturating_sub(pad);
    (kj0, kj1, first)
}

#[inline]
fn copy_run<T: Copy>(dst: &mut [MaybeUninit<T>], src: &[T]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        d.write(s);
    }
}

#[inline]
fn fill_zero<T: Element>(dst: &mut [MaybeUninit<T>]) {
    for d in dst {
        d.write(T::default());
    }
}

/// The input coordinate that kernel tap `kt` of output coordinate `o` reads along spatial
/// dim `dim` (of size `size`), or `None` in the padding.
#[inline]
fn tap(o: usize, kt: usize, dim: usize, size: usize, p: &Conv2dParams) -> Option<usize> {
    let i = (o * p.stride[dim] + kt * p.dilation[dim]).checked_sub(p.padding[dim])?;
    (i < size).then_some(i)
}

/// The adjoint of [`im2row_typed`]: every row entry is added back to the pixel it was read
/// from, `[n*oh*ow, kh*kw*c]` → channels-last `[n, h, w, c]`. The threads take ranges of input
/// rows `(b, iy)`, each gathering the patch rows that read it. Every pixel receives its
/// terms in (output row, `ki`, `kj`) order whatever the split, so the sums do not depend on
/// the thread count: for a fixed `iy`, each output row `oy` reads it through one `ki` (found
/// by walking `ki` down, which walks `oy` up), and then the output columns go in order.
/// Without dilation the taps `kj` of one `ki` add one contiguous run, as in [`im2row_typed`].
fn row2im_typed<T: Element + core::ops::AddAssign>(
    rows: &[T],
    n: usize,
    p: &Conv2dParams,
) -> Result<Vec<T>> {
    let [h, w] = p.in_hw;
    let [oh, ow] = p.out_hw()?;
    let (c, [kh, kw]) = (p.in_channels, p.kernel);
    let (l, k) = (oh * ow, c * kh * kw);
    let (s, pad, d) = (p.stride[0], p.padding[0], p.dilation[0]);
    let mut out = pool::filled("row2im", n * h * w * c, T::default())?;
    parallel::for_each_chunk_mut(&mut out, w * c, n * l * k, |lines, chunk| {
        for (u, line) in lines.zip(chunk.chunks_exact_mut(w * c)) {
            let (b, iy) = (u / h, u % h);
            let image_rows = &rows[b * l * k..][..l * k];
            for ki in (0..kh).rev() {
                // The output row whose tap `ki` reads input row `iy`, if any.
                let Some(t) = (iy + pad).checked_sub(ki * d) else {
                    continue;
                };
                if t % s != 0 || t / s >= oh {
                    continue;
                }
                let oy = t / s;
                for ox in 0..ow {
                    let row = &image_rows[(oy * ow + ox) * k..][..k];
                    add_patch_line(line, &row[ki * kw * c..][..kw * c], ox, p);
                }
            }
        }
    });
    Ok(out)
}

/// The adjoint of [`patch_line`]: adds one `(ki)` block of a patch row into input row `line`.
fn add_patch_line<T: Element + core::ops::AddAssign>(
    line: &mut [T],
    block: &[T],
    ox: usize,
    p: &Conv2dParams,
) {
    let c = p.in_channels;
    let (kw, w) = (p.kernel[1], p.in_hw[1]);
    if p.dilation[1] == 1 {
        let (kj0, kj1, first) = inside_taps(ox, p);
        if kj1 > kj0 {
            let dst = &mut line[first * c..][..(kj1 - kj0) * c];
            for (d, &v) in dst.iter_mut().zip(&block[kj0 * c..kj1 * c]) {
                *d += v;
            }
        }
        return;
    }
    for kj in 0..kw {
        if let Some(ix) = tap(ox, kj, 1, w, p) {
            let dst = &mut line[ix * c..][..c];
            for (d, &v) in dst.iter_mut().zip(&block[kj * c..][..c]) {
                *d += v;
            }
        }
    }
}

/// `x [n, c, h, w]`, checked like im2col's input, copied to channels-last `[n, h, w, c]`, so
/// that each kernel tap of a patch is one contiguous run of channels.
pub(super) fn channels_last(x: &Tensor<Cpu>, p: &Conv2dParams) -> Result<Tensor<Cpu>> {
    checks::im2col(x.storage().buffer(), x.layout(), p)?;
    x.permute(&[0, 2, 3, 1])?.copy()
}

/// The patch matrix `[n*oh*ow, kh*kw*c]` of channels-last images `[n, h, w, c]` (a
/// [`channels_last`] copy or a range of its images).
pub(super) fn patch_rows(nhwc: &Tensor<Cpu>, p: &Conv2dParams) -> Result<Tensor<Cpu>> {
    let [oh, ow] = p.out_hw()?;
    patch_row_range(nhwc, p, 0..nhwc.shape()[0] * oh * ow)
}

/// The rows `rows` of [`patch_rows`], `[rows.len(), kh*kw*c]`.
pub(super) fn patch_row_range(
    nhwc: &Tensor<Cpu>,
    p: &Conv2dParams,
    rows: Range<usize>,
) -> Result<Tensor<Cpu>> {
    let [oh, ow] = p.out_hw()?;
    let all = nhwc.shape()[0] * oh * ow;
    if rows.start > rows.end || rows.end > all {
        return Err(crate::shape_err!(
            "im2row",
            "rows {rows:?} of a {all}-row patch matrix"
        ));
    }
    let (m, k) = (rows.len(), p.col_rows());
    if p.is_pointwise() {
        return nhwc.reshape(&[all, k])?.narrow(0, rows.start, m);
    }
    let l = nhwc.layout();
    let out = match nhwc.storage().buffer() {
        HostBuffer::F32(v) => HostBuffer::F32(im2row_typed(&strided::view(v, l), rows, p)?),
        HostBuffer::F64(v) => HostBuffer::F64(im2row_typed(&strided::view(v, l), rows, p)?),
        other => return Err(dtype_err("im2row", other.dtype())),
    };
    Ok(Tensor::from_storage(CpuStorage::from(out), &[m, k], &Cpu))
}

/// `[n*oh*ow, kh*kw*c]` rows summed back into `[n, c, h, w]`.
pub(super) fn row2im(rows: &Tensor<Cpu>, n: usize, p: &Conv2dParams) -> Result<Tensor<Cpu>> {
    let op = "row2im";
    let [oh, ow] = p.out_hw()?;
    let want = [
        crate::shape::try_numel(op, &[n, oh, ow])?,
        crate::shape::try_numel(op, &[p.in_channels, p.kernel[0], p.kernel[1]])?,
    ];
    if rows.shape() != want {
        return Err(crate::shape_err!(
            op,
            "expected [{}, {}] for {n} images and {p:?}, got {:?}",
            want[0],
            want[1],
            rows.shape()
        ));
    }
    let [h, w] = p.in_hw;
    let nhwc = if p.is_pointwise() {
        rows.reshape(&[n, h, w, p.in_channels])?
    } else {
        let (buf, l) = (rows.storage().buffer(), rows.layout());
        checks::output(op, &[n, p.in_channels, h, w], buf.dtype())?;
        let out = match buf {
            HostBuffer::F32(v) => HostBuffer::F32(row2im_typed(&strided::view(v, l), n, p)?),
            HostBuffer::F64(v) => HostBuffer::F64(row2im_typed(&strided::view(v, l), n, p)?),
            other => return Err(dtype_err(op, other.dtype())),
        };
        Tensor::from_storage(CpuStorage::from(out), &[n, h, w, p.in_channels], &Cpu)
    };
    nhwc.permute(&[0, 3, 1, 2])?.copy()
}

pub(super) fn dtype_err(op: &'static str, got: DType) -> crate::Error {
    crate::Error::DType {
        op,
        msg: crate::__format!("needs an f32 or f64 tensor, got {got}"),
    }
}

/// Checks that `grad` is an output gradient `[n, oc, oh, ow]` for `p`.
pub(super) fn check_grad(grad: &Tensor<Cpu>, p: &Conv2dParams) -> Result<()> {
    let s = grad.shape();
    if s.len() != 4 || s[2..] != p.out_hw()? {
        return Err(crate::shape_err!(
            "conv2d backward",
            "expected an output gradient [n, oc, {:?}] for {p:?}, got {s:?}",
            p.out_hw()?
        ));
    }
    Ok(())
}

/// The output gradient `[n, oc, oh, ow]` as rows `[n*oh*ow, oc]` (a transposing copy).
pub(super) fn grad_rows(grad: &Tensor<Cpu>, p: &Conv2dParams) -> Result<Tensor<Cpu>> {
    check_grad(grad, p)?;
    let s = grad.shape();
    let (n, oc, l) = (s[0], s[1], s[2] * s[3]);
    grad.reshape(&[n, oc, l])?
        .permute(&[0, 2, 1])?
        .copy()?
        .reshape(&[n * l, oc])
}

/// The weight `[oc, c, kh, kw]` as `[oc, kh*kw*c]`, the column order of [`rows`].
pub(super) fn weight_rows(w: &Tensor<Cpu>, p: &Conv2dParams) -> Result<Tensor<Cpu>> {
    let oc = w.shape().first().copied().unwrap_or(0);
    w.permute(&[0, 2, 3, 1])?
        .copy()?
        .reshape(&[oc, p.col_rows()])
}

/// `x [n, c, h, w]` ⋆ `w [oc, c, kh, kw]` → `[n, oc, oh, ow]`, groups 1 ([`applies`]).
/// Pointwise convolutions may skip the layout changes ([`super::pointwise`]).
pub(crate) fn conv2d(x: &Tensor<Cpu>, w: &Tensor<Cpu>, p: &Conv2dParams) -> Result<Tensor<Cpu>> {
    super::pointwise::conv2d(x, w, p).unwrap_or_else(|| super::general::conv2d(x, w, p))
}

/// The input gradient of [`conv2d`].
pub(crate) fn conv2d_backward_input(
    grad: &Tensor<Cpu>,
    w: &Tensor<Cpu>,
    p: &Conv2dParams,
) -> Result<Tensor<Cpu>> {
    super::pointwise::conv2d_backward_input(grad, w, p)
        .unwrap_or_else(|| super::general::conv2d_backward_input(grad, w, p))
}

/// The weight gradient of [`conv2d`].
pub(crate) fn conv2d_backward_weight(
    x: &Tensor<Cpu>,
    grad: &Tensor<Cpu>,
    p: &Conv2dParams,
) -> Result<Tensor<Cpu>> {
    super::pointwise::conv2d_backward_weight(x, grad, p)
        .unwrap_or_else(|| super::general::conv2d_backward_weight(x, grad, p))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::backend::composite;
    use crate::{ConvOptions, Rng};

    fn randn(shape: &[usize], rng: &mut Rng) -> Tensor<Cpu> {
        Tensor::randn(shape, 0.0, 1.0, DType::F64, rng, &Cpu).unwrap()
    }

    /// `a` and `b` have the same shape and agree to 1e-12 relative (f64 values summed in
    /// different orders).
    pub(in crate::ops::conv) fn assert_close(what: &str, a: &Tensor<Cpu>, b: &Tensor<Cpu>) {
        assert_eq!(a.shape(), b.shape(), "{what}");
        let (a, b) = (a.to_vec::<f64>().unwrap(), b.to_vec::<f64>().unwrap());
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            assert!(
                (x - y).abs() <= 1e-12 * (1.0 + y.abs()),
                "{what}[{i}]: {x} vs {y}"
            );
        }
    }

    /// The three products equal the im2col composite's (f64, so only the summation order
    /// differs) for strides, padding, dilation, rectangular kernels and 1×1 convolutions.
    #[test]
    fn rows_match_the_im2col_composite() {
        let mut rng = Rng::new(7);
        // (n, c, h, w, oc, kh, kw, stride, padding, dilation)
        let cases = [
            (2, 3, 9, 7, 4, 3, 3, 1, 1, 1),
            (3, 2, 8, 8, 5, 3, 3, 2, 1, 1),
            (1, 4, 10, 9, 3, 2, 3, 1, 0, 2),
            (2, 5, 6, 6, 7, 1, 1, 1, 0, 1),
            (2, 3, 7, 7, 2, 1, 1, 2, 0, 1),
            (1, 1, 5, 5, 2, 7, 7, 2, 3, 1),
            // Whole kernel rows and columns in the padding, a kernel wider than the input.
            (1, 2, 4, 5, 3, 3, 3, 3, 2, 1),
            (2, 1, 3, 2, 2, 3, 5, 1, 2, 1),
            (1, 3, 6, 6, 2, 2, 2, 1, 2, 1),
        ];
        for (n, c, h, w, oc, kh, kw, s, pad, d) in cases {
            let x = randn(&[n, c, h, w], &mut rng);
            let wt = randn(&[oc, c, kh, kw], &mut rng);
            let mut o = ConvOptions::new(s, pad);
            o.dilation = [d, d];
            let p = x.conv2d_params(wt.shape(), &o).unwrap();
            let what = format!("{:?}", (n, c, h, w, oc, kh, kw, s, pad, d));
            let y = conv2d(&x, &wt, &p).unwrap();
            assert_close(&what, &y, &composite::conv2d(&x, &wt, &p).unwrap());
            let g = randn(y.shape(), &mut rng);
            assert_close(
                &format!("{what} input grad"),
                &conv2d_backward_input(&g, &wt, &p).unwrap(),
                &composite::conv2d_backward_input(&g, &wt, &p).unwrap(),
            );
            assert_close(
                &format!("{what} weight grad"),
                &conv2d_backward_weight(&x, &g, &p).unwrap(),
                &composite::conv2d_backward_weight(&x, &g, &p).unwrap(),
            );
        }
    }

    /// `row2im` adds each pixel's terms in the order of a plain scatter over the rows
    /// (output pixel, then `ki`, then `kj`), bit for bit, whatever the thread count.
    #[test]
    fn row2im_adds_in_scatter_order() {
        let mut rng = Rng::new(3);
        // (n, c, h, w, kh, kw, stride, padding, dilation)
        let cases = [
            (3, 8, 20, 20, 3, 3, 1, 1, 1),
            (2, 4, 23, 21, 3, 3, 2, 1, 1),
            (2, 5, 19, 18, 3, 2, 1, 2, 2),
        ];
        for (n, c, h, w, kh, kw, s, pad, d) in cases {
            let x = Tensor::zeros(&[n, c, h, w], DType::F32, &Cpu).unwrap();
            let mut o = ConvOptions::new(s, pad);
            o.dilation = [d, d];
            let p = x.conv2d_params(&[1, c, kh, kw], &o).unwrap();
            let [oh, ow] = p.out_hw().unwrap();
            let (l, k) = (oh * ow, c * kh * kw);
            let rows = Tensor::randn(&[n * l, k], 0.0, 1.0, DType::F32, &mut rng, &Cpu).unwrap();
            let rows = rows.to_vec::<f32>().unwrap();
            let mut want = vec![0.0f32; n * h * w * c];
            for (r, row) in rows.chunks_exact(k).enumerate() {
                let (b, oy, ox) = (r / l, r % l / ow, r % ow);
                for (t, tap_values) in row.chunks_exact(c).enumerate() {
                    let (ki, kj) = (t / kw, t % kw);
                    let iy = (oy * s + ki * d).checked_sub(pad).filter(|&i| i < h);
                    let ix = (ox * s + kj * d).checked_sub(pad).filter(|&i| i < w);
                    if let (Some(iy), Some(ix)) = (iy, ix) {
                        let at = ((b * h + iy) * w + ix) * c;
                        for (o, v) in want[at..at + c].iter_mut().zip(tap_values) {
                            *o += v;
                        }
                    }
                }
            }
            for threads in [1, 2, 3] {
                let got = crate::cpu::parallel::tests::with_threads(threads, || {
                    row2im_typed(&rows, n, &p).unwrap()
                });
                let same = got
                    .iter()
                    .zip(&want)
                    .all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(
                    same,
                    "{:?}, {threads} threads",
                    (n, c, h, w, kh, kw, s, pad, d)
                );
            }
        }
    }

    /// A gradient of the wrong size is an error, not a read past the rows.
    #[test]
    fn wrong_gradient_shapes_are_errors() {
        let mut rng = Rng::new(1);
        let x = randn(&[2, 3, 6, 6], &mut rng);
        let wt = randn(&[4, 3, 3, 3], &mut rng);
        let p = x
            .conv2d_params(wt.shape(), &ConvOptions::new(1, 1))
            .unwrap();
        for shape in [&[2, 4, 5, 6][..], &[2, 4, 36], &[1, 4, 6, 7]] {
            let g = randn(shape, &mut rng);
            assert!(conv2d_backward_input(&g, &wt, &p).is_err(), "{shape:?}");
            assert!(conv2d_backward_weight(&x, &g, &p).is_err(), "{shape:?}");
        }
    }
}
