//! Parameter initializers (PyTorch: `torch.nn.init`), returning fresh tensors drawn from a
//! [`Rng`]. The random streams are Tessera's own (see [`tessera_tensor::rng`]), so values differ
//! from PyTorch's; the distributions and their bounds are the same.
//!
//! # Fans
//!
//! [`fans`] follows `torch.nn.init._calculate_fan_in_and_fan_out` for a weight of shape
//! `[out, in, k_1, ..., k_n]` (rank ≥ 2):
//!
//! - receptive field `r = k_1 · ... · k_n` (1 for a Linear weight `[out, in]`);
//! - `fan_in = in · r`, `fan_out = out · r`.
//!
//! So a Conv2d weight `[64, 3, 7, 7]` has fan_in 147 and fan_out 3136; a Linear `[10, 20]`
//! has fan_in 20 and fan_out 10. Note that `fan_in` uses dim 1 of the *stored* weight, which is
//! PyTorch's layout `[out_features, in_features]`.
//!
//! | Tessera | PyTorch | used by |
//! |---|---|---|
//! | [`trunc_normal`] | `nn.init.trunc_normal_(w, std, a, b)` (absolute bounds) | DINO ViT (`std=0.02, a=-2, b=2`: [`dino_trunc_normal`]) |
//! | [`kaiming_normal`] | `nn.init.kaiming_normal_(w, mode, nonlinearity)` | torchvision ResNet convs (`fan_out`, `relu`) |
//! | [`kaiming_uniform`] | `nn.init.kaiming_uniform_(w, a)` (fan_in, leaky_relu) | PyTorch's default Linear/Conv2d weight (`a=sqrt(5)`) |
//! | [`default_weight`], [`default_bias`] | `nn.Linear` / `nn.Conv2d` `reset_parameters` | layers without a custom init |
//! | [`zeros`], [`ones`] | `nn.init.zeros_`, `nn.init.ones_` | biases, norm layers |

use crate::Result;
use tessera_tensor::{arg_err, Backend, DType, Rng, Tensor};

/// `(fan_in, fan_out)` of a weight shape (see the [module docs](self)); errors below rank 2,
/// as PyTorch does.
pub fn fans(shape: &[usize]) -> Result<(usize, usize)> {
    if shape.len() < 2 {
        return Err(arg_err!(
            "fans",
            "fan in and fan out need a weight of rank >= 2, got shape {shape:?}"
        )
        .into());
    }
    let receptive: usize = shape[2..].iter().product();
    Ok((shape[1] * receptive, shape[0] * receptive))
}

/// Which fan scales the variance (PyTorch's `mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FanMode {
    /// Preserves the variance of activations in the forward pass.
    FanIn,
    /// Preserves the variance of gradients in the backward pass (torchvision ResNet).
    FanOut,
}

/// The nonlinearity following the layer (PyTorch's `nonlinearity` for `calculate_gain`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Nonlinearity {
    /// Linear, identity, convolutions, sigmoid: gain 1.
    Linear,
    /// ReLU: gain √2.
    Relu,
    /// Leaky ReLU with this negative slope: gain √(2 / (1 + slope²)).
    LeakyRelu(f64),
    /// Tanh: gain 5/3.
    Tanh,
}

/// `torch.nn.init.calculate_gain`.
pub fn gain(nonlinearity: Nonlinearity) -> f64 {
    match nonlinearity {
        Nonlinearity::Linear => 1.0,
        Nonlinearity::Relu => libm::sqrt(2.0),
        Nonlinearity::LeakyRelu(a) => libm::sqrt(2.0 / (1.0 + a * a)),
        Nonlinearity::Tanh => 5.0 / 3.0,
    }
}

fn fan(op: &'static str, shape: &[usize], mode: FanMode) -> Result<f64> {
    let (fan_in, fan_out) = fans(shape)?;
    let f = match mode {
        FanMode::FanIn => fan_in,
        FanMode::FanOut => fan_out,
    };
    if f == 0 {
        return Err(arg_err!(op, "weight of shape {shape:?} has a zero fan").into());
    }
    Ok(f as f64)
}

/// Normal(mean 0, `std`) truncated to `[a, b]` (absolute bounds, not multiples of `std`:
/// `nn.init.trunc_normal_`).
pub fn trunc_normal<B: Backend>(
    shape: &[usize],
    std: f64,
    a: f64,
    b: f64,
    dtype: DType,
    rng: &mut Rng,
    backend: &B,
) -> Result<Tensor<B>> {
    let ordered = a < b && std > 0.0;
    if !ordered {
        return Err(arg_err!(
            "trunc_normal",
            "needs a < b and std > 0, got a={a}, b={b}, std={std}"
        )
        .into());
    }
    Ok(Tensor::trunc_normal(
        shape, 0.0, std, a, b, dtype, rng, backend,
    )?)
}

/// DINO's `trunc_normal_(w, std=.02)` for Linear weights, cls token and position embeddings:
/// std 0.02 truncated to `[-2, 2]` (absolute, so in practice untruncated).
pub fn dino_trunc_normal<B: Backend>(
    shape: &[usize],
    dtype: DType,
    rng: &mut Rng,
    backend: &B,
) -> Result<Tensor<B>> {
    trunc_normal(shape, 0.02, -2.0, 2.0, dtype, rng, backend)
}

/// `nn.init.kaiming_normal_(w, a=0, mode, nonlinearity)`: Normal(0, `gain / sqrt(fan)`).
/// torchvision's ResNet uses `FanMode::FanOut` with `Nonlinearity::Relu` for every conv:
/// std `sqrt(2 / (out_channels · kh · kw))`.
pub fn kaiming_normal<B: Backend>(
    shape: &[usize],
    mode: FanMode,
    nonlinearity: Nonlinearity,
    dtype: DType,
    rng: &mut Rng,
    backend: &B,
) -> Result<Tensor<B>> {
    let std = gain(nonlinearity) / libm::sqrt(fan("kaiming_normal", shape, mode)?);
    Ok(Tensor::randn(shape, 0.0, std, dtype, rng, backend)?)
}

/// `nn.init.kaiming_uniform_(w, a, mode='fan_in', nonlinearity='leaky_relu')`: Uniform(−bound,
/// bound) with `bound = sqrt(3) · gain / sqrt(fan_in)` and `gain = sqrt(2 / (1 + a²))`.
pub fn kaiming_uniform<B: Backend>(
    shape: &[usize],
    a: f64,
    dtype: DType,
    rng: &mut Rng,
    backend: &B,
) -> Result<Tensor<B>> {
    let std = gain(Nonlinearity::LeakyRelu(a))
        / libm::sqrt(fan("kaiming_uniform", shape, FanMode::FanIn)?);
    let bound = libm::sqrt(3.0) * std;
    Ok(Tensor::rand_uniform(
        shape, -bound, bound, dtype, rng, backend,
    )?)
}

/// PyTorch's default weight of `nn.Linear` and `nn.Conv2d`: `kaiming_uniform_(w, a=sqrt(5))`,
/// i.e. Uniform(−1/sqrt(fan_in), 1/sqrt(fan_in)) (up to rounding of the bound).
pub fn default_weight<B: Backend>(
    shape: &[usize],
    dtype: DType,
    rng: &mut Rng,
    backend: &B,
) -> Result<Tensor<B>> {
    kaiming_uniform(shape, libm::sqrt(5.0), dtype, rng, backend)
}

/// PyTorch's default bias of `nn.Linear` and `nn.Conv2d`, for a layer whose weight has shape
/// `weight_shape`: Uniform(−1/sqrt(fan_in), 1/sqrt(fan_in)) of shape `[out]`
/// (`weight_shape[0]`); all zeros if fan_in is 0, as PyTorch.
pub fn default_bias<B: Backend>(
    weight_shape: &[usize],
    dtype: DType,
    rng: &mut Rng,
    backend: &B,
) -> Result<Tensor<B>> {
    let (fan_in, _) = fans(weight_shape)?;
    if fan_in == 0 {
        return zeros(&weight_shape[..1], dtype, backend);
    }
    let bound = 1.0 / libm::sqrt(fan_in as f64);
    Ok(Tensor::rand_uniform(
        &weight_shape[..1],
        -bound,
        bound,
        dtype,
        rng,
        backend,
    )?)
}

/// All zeros (`nn.init.zeros_`): biases, LayerNorm bias.
pub fn zeros<B: Backend>(shape: &[usize], dtype: DType, backend: &B) -> Result<Tensor<B>> {
    Ok(Tensor::zeros(shape, dtype, backend)?)
}

/// All ones (`nn.init.ones_`): LayerNorm / BatchNorm weight.
pub fn ones<B: Backend>(shape: &[usize], dtype: DType, backend: &B) -> Result<Tensor<B>> {
    Ok(Tensor::ones(shape, dtype, backend)?)
}
