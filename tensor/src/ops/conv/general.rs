//! The channels-last products ([`super::rows`]) for every convolution they apply to, a few
//! images at a time.
//!
//! The patch matrix is `kh*kw` times the size of the input: for ResNet-50's first stage at
//! batch 16 it is 115 MB, which `im2row` wrote to memory and the GEMM's packing read back.
//! Taken in chunks of about [`CHUNK_BYTES`] of patch rows, the rows are still in cache when
//! the GEMM packs them, and so are the products that the layout changes around the GEMM copy;
//! the weight is packed once per chunk instead of once.
//!
//! The forward product and the input gradient give the same bits in chunks as in one piece:
//! their GEMMs sum over `k` (a patch, or the output channels), which chunking the rows leaves
//! whole, and `row2im` adds each image's terms in the same order. The weight gradient sums
//! over the rows themselves. The GEMM already adds that sum to C one block of `k` (a few
//! hundred rows) at a time, so parts of the rows that are whole numbers of those blocks,
//! each added to C in order, give the bits of one product too
//! ([`KSplit`](crate::cpu::gemm::KSplit)): the rows are made and multiplied a part at a
//! time, and the whole batch's patch matrix is never built (ResNet-50's step peaks 7% lower).
//! Other dtypes and CPUs without the packed GEMM keep one product.

use super::rows::{channels_last, check_grad, grad_rows, patch_rows, row2im, weight_rows};
use crate::backend::Conv2dParams;
use crate::buffer::HostElement;
use crate::cpu::{kernel_output, pool, strided, Cpu};
use crate::{DType, HostBuffer, Result, Tensor};
use alloc::vec::Vec;

/// Patch rows per chunk, in bytes: a few MB, which the L2 and L3 caches of the machines
/// measured hold (the whole batch's rows are 30-115 MB in the default runs). Tuned on
/// ResNet-50's and the narrow BYOL ResNet's 3×3 convolutions (BENCHMARKS.md, sixteenth round).
pub(super) const CHUNK_BYTES: usize = 4 << 20;

/// `(first image, images)` of each chunk of `n` images: as many images per chunk as keep its
/// patch rows within `chunk_bytes`, at least one; a single `(0, 0)` chunk when `n == 0`.
/// The whole batch is one chunk when the weight (`oc` rows of the patch width) is more than
/// half a chunk's rows: packing it again for every chunk (or, for the weight gradient,
/// adding a product of its size) would then cost about what the cached rows save
/// (ResNet-50's last two stages).
fn chunks(
    n: usize,
    oc: usize,
    p: &Conv2dParams,
    dtype: DType,
    chunk_bytes: usize,
) -> Result<Vec<(usize, usize)>> {
    let [oh, ow] = p.out_hw()?;
    let row_bytes = p.col_rows().saturating_mul(dtype.size_in_bytes());
    let per_image = (oh * ow).saturating_mul(row_bytes);
    let mut size = (chunk_bytes / per_image.max(1)).clamp(1, n.max(1));
    if oc.saturating_mul(row_bytes).saturating_mul(2) > size.saturating_mul(per_image) {
        size = n.max(1);
    }
    Ok((0..n.max(1))
        .step_by(size)
        .map(|b0| (b0, size.min(n - b0)))
        .collect())
}

/// Runs `part(first image, images)` for each chunk and returns the results in one tensor of
/// `shape`, batch axis first. With several chunks each result is copied into the output as
/// soon as it is made (collecting them for a concatenation would hold the output twice).
fn assemble(
    chunks: &[(usize, usize)],
    shape: &[usize],
    mut part: impl FnMut(usize, usize) -> Result<Tensor<Cpu>>,
) -> Result<Tensor<Cpu>> {
    let numel = crate::shape::try_numel("conv2d", shape)?;
    let mut parts = chunks.iter().map(|&(b0, m)| part(b0, m));
    let first = parts
        .next()
        .ok_or_else(|| crate::shape_err!("conv2d", "no chunks"))??;
    if chunks.len() == 1 {
        return first.reshape(shape);
    }
    let buf = match first.dtype() {
        DType::F32 => HostBuffer::F32(concatenate(numel, first, parts)?),
        DType::F64 => HostBuffer::F64(concatenate(numel, first, parts)?),
        other => return Err(super::rows::dtype_err("conv2d", other)),
    };
    kernel_output(buf, shape)
}

/// `numel` values: the elements of `first` and then of each of `rest`, in order.
fn concatenate<T: HostElement>(
    numel: usize,
    first: Tensor<Cpu>,
    rest: impl Iterator<Item = Result<Tensor<Cpu>>>,
) -> Result<Vec<T>> {
    let mut out: Vec<T> = pool::take("conv2d chunks", numel)?;
    for t in core::iter::once(Ok(first)).chain(rest) {
        let t = t?;
        let values = t
            .storage()
            .buffer()
            .as_slice::<T>()
            .map(|v| strided::view(v, t.layout()));
        match values {
            Some(v) if out.len() + v.len() <= numel => out.extend_from_slice(&v),
            _ => {
                return Err(crate::shape_err!(
                    "conv2d",
                    "chunk results overrun {numel} values"
                ))
            }
        }
    }
    if out.len() != numel {
        return Err(crate::shape_err!(
            "conv2d",
            "chunk results fill {} of {numel} values",
            out.len()
        ));
    }
    Ok(out)
}

/// `x [n, c, h, w]` ⋆ `w [oc, c, kh, kw]` → `[n, oc, oh, ow]`, groups 1
/// ([`super::rows::applies`]).
pub(crate) fn conv2d(x: &Tensor<Cpu>, w: &Tensor<Cpu>, p: &Conv2dParams) -> Result<Tensor<Cpu>> {
    conv2d_in(x, w, p, CHUNK_BYTES)
}

/// [`conv2d`] in chunks of at most `chunk_bytes` of patch rows.
pub(super) fn conv2d_in(
    x: &Tensor<Cpu>,
    w: &Tensor<Cpu>,
    p: &Conv2dParams,
    chunk_bytes: usize,
) -> Result<Tensor<Cpu>> {
    let (n, oc) = (x.shape()[0], w.shape()[0]);
    let [oh, ow] = p.out_hw()?;
    let nhwc = channels_last(x, p)?;
    let wt = weight_rows(w, p)?.t()?;
    let chunks = chunks(n, oc, p, x.dtype(), chunk_bytes)?;
    assemble(&chunks, &[n, oc, oh, ow], |b0, m| {
        patch_rows(&nhwc.narrow(0, b0, m)?, p)?
            .matmul(&wt)?
            .reshape(&[m, oh * ow, oc])?
            .permute(&[0, 2, 1])?
            .copy()
    })
}

/// The input gradient of [`conv2d`].
pub(crate) fn conv2d_backward_input(
    grad: &Tensor<Cpu>,
    w: &Tensor<Cpu>,
    p: &Conv2dParams,
) -> Result<Tensor<Cpu>> {
    conv2d_backward_input_in(grad, w, p, CHUNK_BYTES)
}

/// [`conv2d_backward_input`] in chunks of at most `chunk_bytes` of patch rows.
pub(super) fn conv2d_backward_input_in(
    grad: &Tensor<Cpu>,
    w: &Tensor<Cpu>,
    p: &Conv2dParams,
    chunk_bytes: usize,
) -> Result<Tensor<Cpu>> {
    check_grad(grad, p)?;
    let (n, oc) = (grad.shape()[0], grad.shape()[1]);
    let [h, wd] = p.in_hw;
    let wr = weight_rows(w, p)?;
    let chunks = chunks(n, oc, p, grad.dtype(), chunk_bytes)?;
    assemble(&chunks, &[n, p.in_channels, h, wd], |b0, m| {
        row2im(&grad_rows(&grad.narrow(0, b0, m)?, p)?.matmul(&wr)?, m, p)
    })
}

/// The weight gradient of [`conv2d`], `dYᵀ · rows` summed over the batch's patch rows: in
/// parts of about [`CHUNK_BYTES`] of rows where the parts can keep one product's bits (see
/// the module docs), else one product.
pub(crate) fn conv2d_backward_weight(
    x: &Tensor<Cpu>,
    grad: &Tensor<Cpu>,
    p: &Conv2dParams,
) -> Result<Tensor<Cpu>> {
    conv2d_backward_weight_in(x, grad, p, CHUNK_BYTES)
}

/// [`conv2d_backward_weight`] in parts of at most `chunk_bytes` of patch rows (or one
/// block of the GEMM's `k`, if that is more).
pub(super) fn conv2d_backward_weight_in(
    x: &Tensor<Cpu>,
    grad: &Tensor<Cpu>,
    p: &Conv2dParams,
    chunk_bytes: usize,
) -> Result<Tensor<Cpu>> {
    let oc = grad.shape()[1];
    let [kh, kw] = p.kernel;
    let dy = grad_rows(grad, p)?;
    let nhwc = channels_last(x, p)?;
    let dw = match weight_grad_in_parts(&dy, &nhwc, p, chunk_bytes) {
        Some(dw) => dw?,
        None => dy.t()?.matmul(&patch_rows(&nhwc, p)?)?,
    };
    dw.reshape(&[oc, kh, kw, p.in_channels])?
        .permute(&[0, 3, 1, 2])?
        .copy()
}

/// `dyᵀ · patch_rows(nhwc)` (`[oc, kh*kw*c]`, f32) with the patch rows made and multiplied a
/// part at a time, each part a whole number of the one product's `k` blocks
/// ([`KSplit`](crate::cpu::gemm::KSplit)), so that C gets that product's bits. `None` where
/// that product would not run on the packed GEMM, or fits in one part.
#[cfg(all(feature = "std", target_arch = "x86_64"))]
fn weight_grad_in_parts(
    dy: &Tensor<Cpu>,
    nhwc: &Tensor<Cpu>,
    p: &Conv2dParams,
    chunk_bytes: usize,
) -> Option<Result<Tensor<Cpu>>> {
    use crate::cpu::gemm::KSplit;
    let (rows, oc) = (dy.shape()[0], dy.shape()[1]);
    let k = p.col_rows();
    if dy.dtype() != DType::F32 || nhwc.dtype() != DType::F32 || p.is_pointwise() {
        return None;
    }
    let split = KSplit::of(oc, rows, k)?;
    let per_part = (chunk_bytes / (k * 4).max(1) / split.step()).max(1) * split.step();
    if per_part >= rows {
        return None;
    }
    Some(weight_grad_parts(dy, nhwc, p, split, per_part))
}

/// [`weight_grad_in_parts`] once it has found the split and the part size (`per_part` rows, a
/// multiple of `split.step()`).
#[cfg(all(feature = "std", target_arch = "x86_64"))]
fn weight_grad_parts(
    dy: &Tensor<Cpu>,
    nhwc: &Tensor<Cpu>,
    p: &Conv2dParams,
    split: crate::cpu::gemm::KSplit,
    per_part: usize,
) -> Result<Tensor<Cpu>> {
    use super::rows::patch_row_range;
    use crate::cpu::gemm::sgemm_k_part;
    let (rows, oc, k) = (dy.shape()[0], dy.shape()[1], p.col_rows());
    let dy_values = f32_values(dy, "output gradient rows")?;
    let mut dw: Vec<f32> = pool::take("conv2d weight gradient", oc * k)?;
    for r0 in (0..rows).step_by(per_part) {
        let part = patch_row_range(nhwc, p, r0..rows.min(r0 + per_part))?;
        let m = part.shape()[0];
        let values = f32_values(&part, "patch rows")?;
        // SAFETY: A is `dy`'s rows `r0..r0 + m` read transposed (`oc x m`, element
        // `(i, r)` at `(r0 + r) * oc + i`), B the part's `m x k` rows, C `dw`'s `oc x k`
        // capacity, which the first part overwrites whole before later parts add to it;
        // all three are distinct live buffers of those sizes. The parts go in order, each
        // `per_part` rows (a multiple of the split's step) but the last.
        unsafe {
            sgemm_k_part(
                split,
                r0 == 0,
                oc,
                m,
                k,
                dy_values[r0 * oc..].as_ptr(),
                1,
                oc,
                values.as_ptr(),
                k,
                1,
                dw.as_mut_ptr(),
                k,
                1,
            );
        }
    }
    // SAFETY: the first part's GEMM wrote all `oc * k` elements.
    unsafe { dw.set_len(oc * k) };
    kernel_output(HostBuffer::F32(dw), &[oc, k])
}

/// The f32 values of `t` in row-major order, borrowed where `t` is contiguous (as the
/// gradient rows and patch rows are).
#[cfg(all(feature = "std", target_arch = "x86_64"))]
fn f32_values<'a>(t: &'a Tensor<Cpu>, what: &str) -> Result<strided::ViewBuf<'a, f32>> {
    let values = t.storage().buffer().as_slice::<f32>().ok_or_else(|| {
        crate::shape_err!("conv2d backward", "{what} are not f32, got {}", t.dtype())
    })?;
    Ok(strided::view(values, t.layout()))
}

/// Without the packed GEMM the weight gradient is one product.
#[cfg(not(all(feature = "std", target_arch = "x86_64")))]
fn weight_grad_in_parts(
    _: &Tensor<Cpu>,
    _: &Tensor<Cpu>,
    _: &Conv2dParams,
    _: usize,
) -> Option<Result<Tensor<Cpu>>> {
    None
}

#[cfg(test)]
mod tests {
    use super::super::rows::tests::assert_close;
    use super::*;
    use crate::backend::composite;
    use crate::cpu::parallel::tests::with_threads;
    use crate::testing::bits;
    use crate::{ConvOptions, Rng};

    /// `(n, c, h, w, oc, kh, kw, stride, padding, dilation)`: padding, strides, dilation,
    /// a rectangular kernel and a 1×1 stride-2 convolution, with enough images to chunk.
    const CASES: [[usize; 10]; 5] = [
        [5, 3, 9, 7, 4, 3, 3, 1, 1, 1],
        [4, 2, 8, 8, 5, 3, 3, 2, 1, 1],
        [3, 4, 10, 9, 3, 2, 3, 1, 0, 2],
        [5, 3, 7, 7, 2, 1, 1, 2, 0, 1],
        [3, 8, 20, 20, 6, 3, 3, 1, 1, 1],
    ];

    fn setup(
        case: [usize; 10],
        dtype: DType,
    ) -> (Tensor<Cpu>, Tensor<Cpu>, Tensor<Cpu>, Conv2dParams) {
        let [n, c, h, w, oc, kh, kw, s, pad, d] = case;
        let mut rng = Rng::new(11);
        let x = Tensor::randn(&[n, c, h, w], 0.0, 1.0, dtype, &mut rng, &Cpu).unwrap();
        let wt = Tensor::randn(&[oc, c, kh, kw], 0.0, 1.0, dtype, &mut rng, &Cpu).unwrap();
        let mut o = ConvOptions::new(s, pad);
        o.dilation = [d, d];
        let p = x.conv2d_params(wt.shape(), &o).unwrap();
        let [oh, ow] = p.out_hw().unwrap();
        let g = Tensor::randn(&[n, oc, oh, ow], 0.0, 1.0, dtype, &mut rng, &Cpu).unwrap();
        (x, wt, g, p)
    }

    /// Chunk sizes of one image, two images, and the whole batch (the bytes of one image's
    /// patch rows, times 1 and 2; and no limit).
    fn chunk_sizes(p: &Conv2dParams) -> [usize; 3] {
        let [oh, ow] = p.out_hw().unwrap();
        let image = oh * ow * p.col_rows() * 4;
        [1, 2 * image, usize::MAX]
    }

    /// The forward product and the input gradient do not change a bit with the chunk size
    /// or the thread count (`row2im` splits the input rows among the threads).
    #[test]
    fn chunks_and_threads_change_no_bits() {
        for case in CASES {
            let (x, wt, g, p) = setup(case, DType::F32);
            let (n, oc) = (case[0], case[4]);
            assert_eq!(
                chunks(n, oc, &p, DType::F32, 1).unwrap().len(),
                n,
                "{case:?}"
            );
            let whole = (
                bits(&conv2d_in(&x, &wt, &p, usize::MAX).unwrap()),
                bits(&conv2d_backward_input_in(&g, &wt, &p, usize::MAX).unwrap()),
            );
            for bytes in chunk_sizes(&p) {
                for threads in [1, 2, 3] {
                    let got = with_threads(threads, || {
                        (
                            bits(&conv2d_in(&x, &wt, &p, bytes).unwrap()),
                            bits(&conv2d_backward_input_in(&g, &wt, &p, bytes).unwrap()),
                        )
                    });
                    assert!(got == whole, "{case:?}, {bytes} bytes, {threads} threads");
                }
            }
        }
    }

    /// In every chunk size, the forward product and both gradients equal the im2col
    /// composite's in f64 (where only the order of the sums differs).
    #[test]
    fn chunked_products_match_the_composite() {
        for case in CASES {
            let (x, wt, g, p) = setup(case, DType::F64);
            for bytes in chunk_sizes(&p) {
                let what = format!("{case:?}, {bytes} bytes");
                let y = conv2d_in(&x, &wt, &p, bytes).unwrap();
                assert_close(&what, &y, &composite::conv2d(&x, &wt, &p).unwrap());
                assert_close(
                    &format!("{what}: input gradient"),
                    &conv2d_backward_input_in(&g, &wt, &p, bytes).unwrap(),
                    &composite::conv2d_backward_input(&g, &wt, &p).unwrap(),
                );
                assert_close(
                    &format!("{what}: weight gradient"),
                    &conv2d_backward_weight_in(&x, &g, &p, bytes).unwrap(),
                    &composite::conv2d_backward_weight(&x, &g, &p).unwrap(),
                );
            }
        }
    }

    /// The weight gradient in parts keeps the one product's bits, on 1-3 threads, with parts
    /// of one and of two `k` blocks, short last parts (2000 rows in blocks of 334, 800 in
    /// blocks of 268), a stride, and a narrow ResNet's 16 channels.
    #[test]
    fn weight_gradient_parts_keep_the_bits() {
        let cases = [
            [5, 3, 20, 20, 4, 3, 3, 1, 1, 1],
            [6, 16, 16, 16, 16, 3, 3, 1, 1, 1],
            [8, 8, 20, 20, 6, 3, 3, 2, 1, 1],
        ];
        for case in cases {
            let (x, _, g, p) = setup(case, DType::F32);
            let whole = bits(&conv2d_backward_weight_in(&x, &g, &p, usize::MAX).unwrap());
            let (dy, nhwc) = (grad_rows(&g, &p).unwrap(), channels_last(&x, &p).unwrap());
            let product = dy.t().unwrap().matmul(&patch_rows(&nhwc, &p).unwrap());
            let whole_product = bits(&product.unwrap());
            let rows = dy.shape()[0];
            #[cfg(all(feature = "std", target_arch = "x86_64"))]
            let split = crate::cpu::gemm::KSplit::of(case[4], rows, p.col_rows()).map(|s| s.step());
            #[cfg(not(all(feature = "std", target_arch = "x86_64")))]
            let split: Option<usize> = None;
            let step = split.unwrap_or(rows);
            for bytes in [1, 2 * step * p.col_rows() * 4] {
                for threads in [1, 2, 3] {
                    let what = format!("{case:?}, {bytes} bytes, {threads} threads");
                    let parts = with_threads(threads, || {
                        weight_grad_in_parts(&dy, &nhwc, &p, bytes).map(|t| bits(&t.unwrap()))
                    });
                    // Without the packed GEMM (no AVX-512F) there are no parts to check.
                    assert_eq!(parts.is_some(), split.is_some(), "{what}");
                    if let Some(parts) = parts {
                        assert!(parts == whole_product, "{what}: parts");
                    }
                    let got = with_threads(threads, || {
                        bits(&conv2d_backward_weight_in(&x, &g, &p, bytes).unwrap())
                    });
                    assert!(got == whole, "{what}");
                }
            }
        }
    }

    #[test]
    fn chunks_cover_the_batch_in_order() {
        let x = Tensor::zeros(&[7, 2, 5, 5], DType::F32, &Cpu).unwrap();
        let p = x
            .conv2d_params(&[3, 2, 3, 3], &ConvOptions::new(1, 1))
            .unwrap();
        let image = 25 * 18 * 4;
        assert_eq!(chunks(7, 3, &p, DType::F32, 1).unwrap().len(), 7);
        assert_eq!(
            chunks(7, 3, &p, DType::F32, 3 * image).unwrap(),
            [(0, 3), (3, 3), (6, 1)]
        );
        assert_eq!(chunks(7, 3, &p, DType::F32, usize::MAX).unwrap(), [(0, 7)]);
        assert_eq!(chunks(0, 3, &p, DType::F32, 1).unwrap(), [(0, 0)]);
        // A weight of more than half a chunk's rows: one chunk.
        assert_eq!(chunks(7, 12, &p, DType::F32, image).unwrap().len(), 7);
        assert_eq!(chunks(7, 13, &p, DType::F32, image).unwrap(), [(0, 7)]);
    }
}
