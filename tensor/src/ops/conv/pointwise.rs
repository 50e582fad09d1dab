//! 1×1 stride-1 convolutions on the CPU without layout changes.
//!
//! A pointwise convolution of NCHW images is a matrix product per image,
//! `y_b [oc, h*w] = W [oc, c] · x_b [c, h*w]`, on the NCHW memory as it lies. The general
//! path ([`super::rows`]) instead transposes the input to channels-last and the product back
//! (and, in the backward pass, the output gradient and the input gradient): four full passes
//! over the activations for a GEMM whose `k` is only `c`. In ResNet's early stages, where the
//! maps are large and the weights small, those transposes cost more than the products.
//!
//! - forward and input gradient: one product per image (a batched `matmul`, the weight
//!   broadcast), taken when packing the weight once per image moves less memory than the two
//!   transposes would (`oc * c <= (oc + c) * h*w`); ResNet's last stages, with 7×7 maps and
//!   2048 channels, keep the general path;
//! - weight gradient: `dW = G · Xᵀ` over the whole batch, with `G [oc, n*h*w]` and
//!   `X [c, n*h*w]` gathered from NCHW in runs of `h*w` contiguous values (copies, not
//!   transposes), always.
//!
//! Every output element is the same `k`-ordered sum of the same products as on the general
//! path (`k = c`, or `k = (image, pixel)` for the weight gradient), so the results agree with
//! it to the last bit, which the tests check.

use crate::backend::Conv2dParams;
use crate::cpu::Cpu;
use crate::{Result, Tensor};

/// `(n, c, h*w, oc)` of a pointwise convolution, or `None` if it is not one.
fn dims(x_shape: &[usize], oc: usize, p: &Conv2dParams) -> Option<(usize, usize, usize, usize)> {
    (p.is_pointwise() && x_shape.len() == 4).then(|| {
        let [h, w] = p.in_hw;
        (x_shape[0], p.in_channels, h * w, oc)
    })
}

/// Whether the forward product and the input gradient go per image (see the module docs).
fn per_image(c: usize, l: usize, oc: usize) -> bool {
    oc.saturating_mul(c) <= (oc + c).saturating_mul(l)
}

/// The forward product, or `None` where the general path is better.
pub(super) fn conv2d(
    x: &Tensor<Cpu>,
    w: &Tensor<Cpu>,
    p: &Conv2dParams,
) -> Option<Result<Tensor<Cpu>>> {
    let (n, c, l, oc) = dims(x.shape(), w.shape()[0], p)?;
    per_image(c, l, oc).then(|| {
        let [h, wd] = p.in_hw;
        w.reshape(&[oc, c])?
            .matmul(&x.reshape(&[n, c, l])?)?
            .reshape(&[n, oc, h, wd])
    })
}

/// The input gradient, or `None` where the general path is better.
pub(super) fn conv2d_backward_input(
    grad: &Tensor<Cpu>,
    w: &Tensor<Cpu>,
    p: &Conv2dParams,
) -> Option<Result<Tensor<Cpu>>> {
    let n = *grad.shape().first()?;
    let (_, c, l, oc) = dims(&[n, p.in_channels, p.in_hw[0], p.in_hw[1]], w.shape()[0], p)?;
    if grad.shape() != [n, oc, p.in_hw[0], p.in_hw[1]] {
        return None; // the general path reports it
    }
    per_image(c, l, oc).then(|| {
        let [h, wd] = p.in_hw;
        w.reshape(&[oc, c])?
            .t()?
            .matmul(&grad.reshape(&[n, oc, l])?)?
            .reshape(&[n, c, h, wd])
    })
}

/// The weight gradient of a pointwise convolution (`None` for other convolutions).
pub(super) fn conv2d_backward_weight(
    x: &Tensor<Cpu>,
    grad: &Tensor<Cpu>,
    p: &Conv2dParams,
) -> Option<Result<Tensor<Cpu>>> {
    let oc = *grad.shape().get(1)?;
    let (n, c, l, _) = dims(x.shape(), oc, p)?;
    if grad.shape() != [n, oc, p.in_hw[0], p.in_hw[1]] {
        return None;
    }
    // `[n, ch, l]` → `[ch, n*l]`: runs of `l` contiguous values, copied.
    let batch_last = |t: &Tensor<Cpu>, ch: usize| -> Result<Tensor<Cpu>> {
        t.reshape(&[n, ch, l])?
            .permute(&[1, 0, 2])?
            .reshape(&[ch, n * l])
    };
    Some((|| {
        batch_last(grad, oc)?
            .matmul(&batch_last(x, c)?.t()?)?
            .reshape(&[oc, c, 1, 1])
    })())
}

#[cfg(test)]
mod tests {
    use super::super::rows;
    use super::*;
    use crate::{ConvOptions, DType, Rng};

    /// Shape and bit patterns, so a mismatch in either fails the comparison.
    fn bits(t: &Tensor<Cpu>) -> (Vec<usize>, Vec<u64>) {
        (t.shape().to_vec(), crate::testing::bits(t))
    }

    /// The per-image products and the run-copy weight gradient equal the general
    /// (channels-last) path bit for bit, for shapes on both sides of the per-image rule.
    #[test]
    fn pointwise_is_the_general_path_bit_for_bit() {
        let mut rng = Rng::new(3);
        // (n, c, h, w, oc): per image, per image, general path (forward and input gradient).
        for (n, c, h, w, oc) in [(3, 16, 9, 11, 24), (2, 40, 8, 8, 8), (4, 96, 3, 3, 80)] {
            let x = Tensor::randn(&[n, c, h, w], 0.0, 1.0, DType::F32, &mut rng, &Cpu).unwrap();
            let wt = Tensor::randn(&[oc, c, 1, 1], 0.0, 1.0, DType::F32, &mut rng, &Cpu).unwrap();
            let p = x
                .conv2d_params(wt.shape(), &ConvOptions::new(1, 0))
                .unwrap();
            let g = Tensor::randn(&[n, oc, h, w], 0.0, 1.0, DType::F32, &mut rng, &Cpu).unwrap();
            let expect_per_image = per_image(c, h * w, oc);
            assert_eq!(conv2d(&x, &wt, &p).is_some(), expect_per_image);
            let general = [
                super::super::general::conv2d(&x, &wt, &p).unwrap(),
                super::super::general::conv2d_backward_input(&g, &wt, &p).unwrap(),
                super::super::general::conv2d_backward_weight(&x, &g, &p).unwrap(),
            ];
            let fast = [
                rows::conv2d(&x, &wt, &p).unwrap(),
                rows::conv2d_backward_input(&g, &wt, &p).unwrap(),
                conv2d_backward_weight(&x, &g, &p).unwrap().unwrap(),
            ];
            for (k, (a, b)) in fast.iter().zip(&general).enumerate() {
                assert_eq!(bits(a), bits(b), "{:?} product {k}", (n, c, h, w, oc));
            }
        }
    }

    /// Strided or padded 1×1 convolutions and larger kernels are not pointwise here.
    #[test]
    fn only_stride_one_unpadded_1x1() {
        let mut rng = Rng::new(4);
        let x = Tensor::randn(&[2, 4, 6, 6], 0.0, 1.0, DType::F32, &mut rng, &Cpu).unwrap();
        for (k, s) in [(1, 2), (3, 1)] {
            let wt = Tensor::randn(&[4, 4, k, k], 0.0, 1.0, DType::F32, &mut rng, &Cpu).unwrap();
            let p = x
                .conv2d_params(wt.shape(), &ConvOptions::new(s, 0))
                .unwrap();
            assert!(conv2d(&x, &wt, &p).is_none());
        }
    }
}
