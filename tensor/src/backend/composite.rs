//! Default implementations of the composite ops, written with tensor ops only. They are the
//! specification: a backend's fused override is tested against them, and a backend can call
//! them as the fallback for cases its kernel does not cover.

use super::{Backend, Conv2dParams};
use crate::{BatchNormGrads, BatchNormNeeds, Result, Tensor};
use alloc::vec::Vec;

pub fn softmax<B: Backend>(x: &Tensor<B>, axis: usize) -> Result<Tensor<B>> {
    let a = axis as isize;
    let shifted = x.sub(&x.max(&[a], true)?)?;
    let e = shifted.exp()?;
    e.div(&e.sum(&[a], true)?)
}

pub fn log_softmax<B: Backend>(x: &Tensor<B>, axis: usize) -> Result<Tensor<B>> {
    let a = axis as isize;
    let shifted = x.sub(&x.max(&[a], true)?)?;
    let lse = shifted.exp()?.sum(&[a], true)?.log()?;
    shifted.sub(&lse)
}

pub fn gelu<B: Backend>(x: &Tensor<B>) -> Result<Tensor<B>> {
    let phi = x
        .mul_scalar(core::f64::consts::FRAC_1_SQRT_2)?
        .erf()?
        .affine(0.5, 0.5)?;
    x.mul(&phi)
}

/// `grad * d gelu(x)/dx = grad * (Phi(x) + x * phi(x))`, with `Phi` the standard normal CDF
/// and `phi` its density (PyTorch: `gelu_backward` with `approximate='none'`).
pub fn gelu_backward<B: Backend>(x: &Tensor<B>, grad: &Tensor<B>) -> Result<Tensor<B>> {
    let cdf = x
        .mul_scalar(core::f64::consts::FRAC_1_SQRT_2)?
        .erf()?
        .affine(0.5, 0.5)?;
    let inv_sqrt_2pi = 0.5 * core::f64::consts::FRAC_2_SQRT_PI * core::f64::consts::FRAC_1_SQRT_2;
    let pdf = x
        .square()?
        .mul_scalar(-0.5)?
        .exp()?
        .mul_scalar(inv_sqrt_2pi)?;
    grad.mul(&cdf.add(&x.mul(&pdf)?)?)
}

/// `sqrt(2/pi)`, the scale inside the tanh of the approximate GELU.
pub const GELU_TANH_BETA: f64 = core::f64::consts::SQRT_2 * core::f64::consts::FRAC_2_SQRT_PI * 0.5;
/// The cubic coefficient inside the tanh of the approximate GELU.
pub const GELU_TANH_KAPPA: f64 = 0.044715;

/// `x/2 * (1 + tanh(u))` with `u = sqrt(2/pi) * (x + 0.044715 x^3)`, computed as
/// `u = x * (sqrt(2/pi) * (1 + 0.044715 x^2))` (PyTorch: `gelu` with `approximate='tanh'`).
pub fn gelu_tanh<B: Backend>(x: &Tensor<B>) -> Result<Tensor<B>> {
    let u = x.mul(
        &x.square()?
            .affine(GELU_TANH_KAPPA * GELU_TANH_BETA, GELU_TANH_BETA)?,
    )?;
    x.mul(&u.tanh()?.affine(0.5, 0.5)?)
}

/// `grad * d gelu_tanh(x)/dx = grad * ((1 + t)/2 + x/2 * (1 - t^2) * sqrt(2/pi) *
/// (1 + 3 * 0.044715 x^2))` with `t = tanh(u)` (PyTorch: `gelu_backward` with
/// `approximate='tanh'`).
pub fn gelu_tanh_backward<B: Backend>(x: &Tensor<B>, grad: &Tensor<B>) -> Result<Tensor<B>> {
    let x2 = x.square()?;
    let u = x.mul(&x2.affine(GELU_TANH_KAPPA * GELU_TANH_BETA, GELU_TANH_BETA)?)?;
    let t = u.tanh()?;
    let du = x2.affine(3.0 * GELU_TANH_KAPPA * GELU_TANH_BETA, GELU_TANH_BETA)?;
    let right = t.square()?.affine(-1.0, 1.0)?.mul(&du)?.mul(x)?;
    grad.mul(&t.affine(0.5, 0.5)?.add(&right.mul_scalar(0.5)?)?)
}

pub fn layer_norm<B: Backend>(
    x: &Tensor<B>,
    weight: Option<&Tensor<B>>,
    bias: Option<&Tensor<B>>,
    normalized_rank: usize,
    eps: f64,
) -> Result<(Tensor<B>, Tensor<B>, Tensor<B>)> {
    let r = x.rank() as isize;
    let axes: Vec<isize> = (r - normalized_rank as isize..r).collect();
    let mean = x.mean(&axes, true)?;
    let centered = x.sub(&mean)?;
    let var = centered.square()?.mean(&axes, true)?;
    let rstd = var.add_scalar(eps)?.rsqrt()?;
    let mut y = centered.mul(&rstd)?;
    if let Some(w) = weight {
        y = y.mul(w)?;
    }
    if let Some(b) = bias {
        y = y.add(b)?;
    }
    Ok((y, mean, rstd))
}

/// `[c]` to `[1, c, 1, ..]` so that it broadcasts over an `[n, c, ..]` input.
pub(crate) fn per_channel<B: Backend>(t: &Tensor<B>, rank: usize) -> Result<Tensor<B>> {
    let mut shape = alloc::vec![1usize; rank];
    shape[1] = t.numel();
    t.reshape(&shape)
}

pub fn batch_norm_apply<B: Backend>(
    x: &Tensor<B>,
    mean: &Tensor<B>,
    rstd: &Tensor<B>,
    weight: Option<&Tensor<B>>,
    bias: Option<&Tensor<B>>,
) -> Result<Tensor<B>> {
    let r = x.rank();
    let mut y = x.sub(&per_channel(mean, r)?)?.mul(&per_channel(rstd, r)?)?;
    if let Some(w) = weight {
        y = y.mul(&per_channel(w, r)?)?;
    }
    if let Some(b) = bias {
        y = y.add(&per_channel(b, r)?)?;
    }
    Ok(y)
}

/// Per-channel mean and biased variance of `[n, c, ..]` over every axis but 1, each `[c]`.
pub fn batch_norm_stats<B: Backend>(x: &Tensor<B>) -> Result<(Tensor<B>, Tensor<B>)> {
    let axes: Vec<isize> = (0..x.rank() as isize).filter(|&a| a != 1).collect();
    Ok((x.mean(&axes, false)?, x.var(&axes, 0, false)?))
}

/// The gradients of training-mode batch norm, `[dx, dweight, dbias]` where `needs` asks for
/// them (`dweight` only with a weight): with `x̂ = (x - mean) * rstd`, `ĝ = grad * weight`
/// and means over every axis but 1, `dx = rstd * (ĝ - mean(ĝ) - x̂ * mean(ĝ x̂))` (the batch
/// statistics depend on x, hence the two correction terms), `dweight = Σ grad x̂`,
/// `dbias = Σ grad`. `mean`, `rstd` and `weight` are `[c]`.
pub fn batch_norm_backward<B: Backend>(
    x: &Tensor<B>,
    mean: &Tensor<B>,
    rstd: &Tensor<B>,
    weight: Option<&Tensor<B>>,
    grad: &Tensor<B>,
    needs: BatchNormNeeds,
) -> Result<BatchNormGrads<B>> {
    let (need_x, need_w, need_b) = (needs.input, needs.weight, needs.bias);
    let r = x.rank();
    let axes: Vec<isize> = (0..r as isize).filter(|&a| a != 1).collect();
    let (m, rs) = (per_channel(mean, r)?, per_channel(rstd, r)?);
    let w = weight.map(|w| per_channel(w, r)).transpose()?;
    let xhat = || x.sub(&m)?.mul(&rs);
    let dx = match need_x {
        true => {
            let gh = match &w {
                Some(w) => grad.mul(w)?,
                None => grad.clone(),
            };
            let xhat = xhat()?;
            let m1 = gh.mean(&axes, true)?;
            let m2 = gh.mul(&xhat)?.mean(&axes, true)?;
            Some(gh.sub(&m1)?.sub(&xhat.mul(&m2)?)?.mul(&rs)?)
        }
        false => None,
    };
    let dw = match (need_w, weight) {
        (true, Some(_)) => Some(grad.mul(&xhat()?)?.sum(&axes, false)?),
        _ => None,
    };
    let db = match need_b {
        true => Some(grad.sum(&axes, false)?.contiguous()?),
        false => None,
    };
    Ok(BatchNormGrads {
        input: dx,
        weight: dw,
        bias: db,
    })
}

/// The input as im2col columns `[n, groups, c/g*kh*kw, oh*ow]`.
fn columns<B: Backend>(x: &Tensor<B>, p: &Conv2dParams) -> Result<Tensor<B>> {
    let n = x.shape()[0];
    let [oh, ow] = p.out_hw()?;
    let g = p.groups;
    let cols = if p.is_pointwise() {
        x.clone()
    } else {
        let s = x.backend().im2col(x.storage(), x.layout(), p)?;
        Tensor::from_storage(s, &[n, p.col_rows(), oh * ow], x.backend())
    };
    cols.reshape(&[n, g, p.col_rows() / g, oh * ow])
}

pub fn conv2d<B: Backend>(x: &Tensor<B>, w: &Tensor<B>, p: &Conv2dParams) -> Result<Tensor<B>> {
    let (n, oc, g) = (x.shape()[0], w.shape()[0], p.groups);
    let [oh, ow] = p.out_hw()?;
    let cols = columns(x, p)?;
    // [1, g, oc/g, k] @ [n, g, k, l] -> [n, g, oc/g, l]
    let wm = w.reshape(&[1, g, oc / g, p.col_rows() / g])?;
    wm.matmul(&cols)?.reshape(&[n, oc, oh, ow])
}

pub fn conv2d_backward_input<B: Backend>(
    grad: &Tensor<B>,
    w: &Tensor<B>,
    p: &Conv2dParams,
) -> Result<Tensor<B>> {
    let (n, oc, g) = (grad.shape()[0], w.shape()[0], p.groups);
    let [oh, ow] = p.out_hw()?;
    let gm = grad.reshape(&[n, g, oc / g, oh * ow])?;
    // [1, g, k, oc/g] @ [n, g, oc/g, l] -> [n, g, k, l]
    let wt = w.reshape(&[1, g, oc / g, p.col_rows() / g])?.t()?;
    let cols = wt.matmul(&gm)?.reshape(&[n, p.col_rows(), oh * ow])?;
    let [h, wd] = p.in_hw;
    if p.is_pointwise() {
        return cols.reshape(&[n, p.in_channels, h, wd]);
    }
    let s = grad.backend().col2im(cols.storage(), cols.layout(), p)?;
    Ok(Tensor::from_storage(
        s,
        &[n, p.in_channels, h, wd],
        grad.backend(),
    ))
}

pub fn conv2d_backward_weight<B: Backend>(
    x: &Tensor<B>,
    grad: &Tensor<B>,
    p: &Conv2dParams,
) -> Result<Tensor<B>> {
    let (n, oc, g) = (grad.shape()[0], grad.shape()[1], p.groups);
    let [oh, ow] = p.out_hw()?;
    let cols = columns(x, p)?;
    let gm = grad.reshape(&[n, g, oc / g, oh * ow])?;
    // [n, g, oc/g, l] @ [n, g, l, k] -> [n, g, oc/g, k], summed over the batch.
    let gw = gm.matmul(&cols.t()?)?.sum(&[0], false)?;
    gw.reshape(&[oc, p.in_channels / g, p.kernel[0], p.kernel[1]])
}

/// `y * (grad - sum(grad * y))` along `axis`: the softmax gradient from its output.
pub fn softmax_backward<B: Backend>(
    y: &Tensor<B>,
    grad: &Tensor<B>,
    axis: usize,
) -> Result<Tensor<B>> {
    let a = [axis as isize];
    y.mul(&grad.sub(&grad.mul(y)?.sum(&a, true)?)?)
}

/// `grad - exp(y) * sum(grad)` along `axis`: the log-softmax gradient from its output.
pub fn log_softmax_backward<B: Backend>(
    y: &Tensor<B>,
    grad: &Tensor<B>,
    axis: usize,
) -> Result<Tensor<B>> {
    let a = [axis as isize];
    grad.sub(&y.exp()?.mul(&grad.sum(&a, true)?)?)
}

/// The input gradient of layer norm over the last `normalized_rank` dims:
/// `rstd * (ĝ - mean(ĝ) - x̂ * mean(ĝ * x̂))`, `ĝ = grad * weight`, `x̂ = (x - mean) * rstd`.
pub fn layer_norm_backward<B: Backend>(
    x: &Tensor<B>,
    mean: &Tensor<B>,
    rstd: &Tensor<B>,
    weight: Option<&Tensor<B>>,
    grad: &Tensor<B>,
    normalized_rank: usize,
) -> Result<Tensor<B>> {
    let r = x.rank() as isize;
    let axes: Vec<isize> = (r - normalized_rank as isize..r).collect();
    let xhat = x.sub(mean)?.mul(rstd)?;
    let gh = match weight {
        Some(w) => grad.mul(w)?,
        None => grad.clone(),
    };
    let m1 = gh.mean(&axes, true)?;
    let m2 = gh.mul(&xhat)?.mean(&axes, true)?;
    gh.sub(&m1)?.sub(&xhat.mul(&m2)?)?.mul(rstd)
}

/// The gradients of layer norm's weight and bias, `Σ grad * x̂` and `Σ grad` over the leading
/// `x.rank() - normalized_rank` dims (`x̂ = (x - mean) * rstd`), each if `needs` asks for it.
pub fn layer_norm_param_backward<B: Backend>(
    x: &Tensor<B>,
    mean: &Tensor<B>,
    rstd: &Tensor<B>,
    grad: &Tensor<B>,
    normalized_rank: usize,
    (need_weight, need_bias): (bool, bool),
) -> Result<crate::NormParamGrads<B>> {
    let lead = x.rank().checked_sub(normalized_rank).ok_or_else(|| {
        crate::shape_err!(
            "layer_norm_param_backward",
            "{normalized_rank} normalized dims but the input is {:?}",
            x.shape()
        )
    })?;
    let axes: Vec<isize> = (0..lead as isize).collect();
    let sum = |t: Tensor<B>| match axes.is_empty() {
        true => Ok(t),
        false => t.sum(&axes, false),
    };
    let dw = match need_weight {
        true => Some(sum(grad.mul(&x.sub(mean)?.mul(rstd)?)?)?),
        false => None,
    };
    let db = match need_bias {
        true => Some(sum(grad.clone())?),
        false => None,
    };
    Ok((dw, db))
}

/// All three of layer norm's gradients through the backend's two calls
/// ([`Backend::layer_norm_backward`] and [`Backend::layer_norm_param_backward`], its
/// overrides where it has them), each only where `needs` (input, weight, bias) asks for it.
#[allow(clippy::too_many_arguments)]
pub fn layer_norm_grads<B: Backend>(
    x: &Tensor<B>,
    mean: &Tensor<B>,
    rstd: &Tensor<B>,
    weight: Option<&Tensor<B>>,
    grad: &Tensor<B>,
    normalized_rank: usize,
    needs: (bool, bool, bool),
) -> Result<crate::LayerNormGrads<B>> {
    let (backend, k) = (x.backend(), normalized_rank);
    let dx = match needs.0 {
        true => Some(backend.layer_norm_backward(x, mean, rstd, weight, grad, k)?),
        false => None,
    };
    let (dw, db) = match (needs.1, needs.2) {
        (false, false) => (None, None),
        params => backend.layer_norm_param_backward(x, mean, rstd, grad, k, params)?,
    };
    Ok((dx, dw, db))
}
