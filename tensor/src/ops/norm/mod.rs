//! Layer norm and batch norm (PyTorch: `F.layer_norm`, `F.batch_norm`).

pub(crate) mod batch_cpu;
pub(crate) mod batch_stats_cpu;
pub(crate) mod cpu;
pub(crate) mod cpu_backward;
pub(crate) mod cpu_grads;
pub(crate) mod cpu_param_backward;

use crate::backend::Backend;
use crate::{Result, Tensor};

/// What [`Tensor::batch_norm_train`] returns: the output and the batch statistics that the
/// backward pass and the running-average update need.
#[derive(Clone, Debug)]
pub struct BatchNormOutput<B: Backend> {
    /// The normalized, scaled and shifted input.
    pub output: Tensor<B>,
    /// Per-channel batch mean `[c]`.
    pub mean: Tensor<B>,
    /// Per-channel biased batch variance `[c]` (what normalizes the input).
    pub var: Tensor<B>,
    /// Per-channel `1/sqrt(var + eps)` `[c]`.
    pub rstd: Tensor<B>,
}

/// Which gradients [`Backend::batch_norm_backward`] computes (PyTorch's output mask).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchNormNeeds {
    /// The input's gradient.
    pub input: bool,
    /// The weight's (ignored without a weight).
    pub weight: bool,
    /// The bias's.
    pub bias: bool,
}

/// Layer norm's weight and bias gradients ([`Backend::layer_norm_param_backward`]), each
/// `None` where it was not asked for.
pub type NormParamGrads<B> = (Option<Tensor<B>>, Option<Tensor<B>>);

/// Layer norm's input, weight and bias gradients ([`Backend::layer_norm_grads`]), each
/// `None` where it was not asked for.
pub type LayerNormGrads<B> = (Option<Tensor<B>>, Option<Tensor<B>>, Option<Tensor<B>>);

/// The gradients [`Backend::batch_norm_backward`] returns; `None` where not asked for.
#[derive(Clone, Debug)]
pub struct BatchNormGrads<B: Backend> {
    /// `dx`, shaped like the input.
    pub input: Option<Tensor<B>>,
    /// `dweight`, `[c]`.
    pub weight: Option<Tensor<B>>,
    /// `dbias`, `[c]`.
    pub bias: Option<Tensor<B>>,
}

impl<B: Backend> Tensor<B> {
    /// Layer norm over the last `normalized_shape.len()` dims, which must equal
    /// `normalized_shape`; `weight` and `bias` have that shape. Biased variance, `eps` inside
    /// the square root (DINO's ViT uses eps = 1e-6).
    pub fn layer_norm(
        &self,
        normalized_shape: &[usize],
        weight: Option<&Self>,
        bias: Option<&Self>,
        eps: f64,
    ) -> Result<Self> {
        Ok(self
            .layer_norm_with_stats(normalized_shape, weight, bias, eps)?
            .0)
    }

    /// [`Tensor::layer_norm`] that also returns the mean and `1/sqrt(var+eps)` (kept dims).
    pub fn layer_norm_with_stats(
        &self,
        normalized_shape: &[usize],
        weight: Option<&Self>,
        bias: Option<&Self>,
        eps: f64,
    ) -> Result<(Self, Self, Self)> {
        let op = "layer_norm";
        self.check_float(op)?;
        let k = normalized_shape.len();
        if k == 0 || k > self.rank() || &self.shape()[self.rank() - k..] != normalized_shape {
            return Err(crate::shape_err!(
                op,
                "normalized shape {normalized_shape:?} is not a suffix of input {:?}",
                self.shape()
            ));
        }
        for (name, p) in [("weight", weight), ("bias", bias)] {
            if let Some(p) = p {
                self.check_same_dtype(op, p)?;
                if p.shape() != normalized_shape {
                    return Err(crate::shape_err!(
                        op,
                        "{name} has shape {:?}, expected {normalized_shape:?}",
                        p.shape()
                    ));
                }
            }
        }
        self.backend().layer_norm(self, weight, bias, k, eps)
    }

    fn check_batch_norm_args(
        &self,
        op: &'static str,
        params: &[(&str, Option<&Self>)],
    ) -> Result<usize> {
        self.check_float(op)?;
        if self.rank() < 2 {
            return Err(crate::shape_err!(
                op,
                "input needs shape [n, c, ..], got {:?}",
                self.shape()
            ));
        }
        let c = self.shape()[1];
        for (name, p) in params {
            if let Some(p) = p {
                self.check_same_dtype(op, p)?;
                if p.shape() != [c] {
                    return Err(crate::shape_err!(
                        op,
                        "{name} has shape {:?}, expected [{c}] for input {:?}",
                        p.shape(),
                        self.shape()
                    ));
                }
            }
        }
        Ok(c)
    }

    /// Batch norm in training mode: normalizes `[n, c, ..]` with the batch's per-channel mean
    /// and biased variance (PyTorch: `F.batch_norm(training=True)`). Updating running
    /// statistics (with the *unbiased* variance) is the layer's job; see `tessera-nn`.
    pub fn batch_norm_train(
        &self,
        weight: Option<&Self>,
        bias: Option<&Self>,
        eps: f64,
    ) -> Result<BatchNormOutput<B>> {
        self.check_batch_norm_args("batch_norm", &[("weight", weight), ("bias", bias)])?;
        let axes: alloc::vec::Vec<isize> = (0..self.rank() as isize).filter(|&a| a != 1).collect();
        if axes
            .iter()
            .map(|&a| self.shape()[a as usize])
            .product::<usize>()
            < 2
        {
            return Err(crate::shape_err!(
                "batch_norm",
                "training needs more than one value per channel, got input {:?}",
                self.shape()
            ));
        }
        let (mean, var) = self.backend().batch_norm_stats(self)?;
        let rstd = var.add_scalar(eps)?.rsqrt()?;
        let output = self
            .backend()
            .batch_norm_apply(self, &mean, &rstd, weight, bias)?;
        Ok(BatchNormOutput {
            output,
            mean,
            var,
            rstd,
        })
    }

    /// Batch norm in evaluation mode with running statistics `[c]` (PyTorch:
    /// `F.batch_norm(training=False)`).
    pub fn batch_norm_eval(
        &self,
        running_mean: &Self,
        running_var: &Self,
        weight: Option<&Self>,
        bias: Option<&Self>,
        eps: f64,
    ) -> Result<Self> {
        self.check_batch_norm_args(
            "batch_norm",
            &[
                ("running_mean", Some(running_mean)),
                ("running_var", Some(running_var)),
                ("weight", weight),
                ("bias", bias),
            ],
        )?;
        let rstd = running_var.add_scalar(eps)?.rsqrt()?;
        self.backend()
            .batch_norm_apply(self, running_mean, &rstd, weight, bias)
    }
}
