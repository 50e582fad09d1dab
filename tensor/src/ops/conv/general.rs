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
//! over the rows themselves, so in chunks it would be a sum of the chunks' products, other
//! bits than one product's; it stays one product over the whole batch (chunking it measured
//! at most 5% on the narrow ResNet's step and lowered ResNet-50's peak memory by 6%: a
//! candidate once the runs it would change are measured again).

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

/// The weight gradient of [`conv2d`]: one product over the whole batch (see the module
/// docs).
pub(crate) fn conv2d_backward_weight(
    x: &Tensor<Cpu>,
    grad: &Tensor<Cpu>,
    p: &Conv2dParams,
) -> Result<Tensor<Cpu>> {
    let oc = grad.shape()[1];
    let [kh, kw] = p.kernel;
    grad_rows(grad, p)?
        .t()?
        .matmul(&patch_rows(&channels_last(x, p)?, p)?)?
        .reshape(&[oc, kh, kw, p.in_channels])?
        .permute(&[0, 3, 1, 2])?
        .copy()
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

    /// In every chunk size, the forward product and the input gradient equal the im2col
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
