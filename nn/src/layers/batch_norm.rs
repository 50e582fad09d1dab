//! `BatchNorm`: batch normalization (PyTorch: `nn.BatchNorm1d` for `[n, c]` and `[n, c, l]`
//! inputs, `nn.BatchNorm2d` for `[n, c, h, w]`).
//!
//! Parameters `weight [c]` (1) and `bias [c]` (0); buffers `running_mean [c]` (0),
//! `running_var [c]` (1) and `num_batches_tracked` (an I64 scalar, as PyTorch stores it).
//!
//! In training mode the input is normalized with the batch's per-channel mean and **biased**
//! variance, and the running statistics are updated with the **unbiased** variance:
//!
//! ```text
//! num_batches_tracked += 1
//! f = momentum, or 1 / num_batches_tracked when momentum is None (cumulative average)
//! running_mean = (1 - f) · running_mean + f · mean
//! running_var  = (1 - f) · running_var  + f · var · m / (m - 1)   (m values per channel)
//! ```
//!
//! The update is computed on plain tensors, outside the autograd graph. In evaluation mode the
//! running statistics normalize (constants for autograd).

use crate::init;
use crate::module::{join, Entry, EntryMut, Module, Param};
use crate::Result;
use alloc::format;
use tessera_autograd::Var;
use tessera_tensor::{arg_err, Backend, DType, Tensor};

/// Which PyTorch class, i.e. which input ranks are accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchNormKind {
    /// `nn.BatchNorm1d`: `[n, c]` or `[n, c, l]`.
    D1,
    /// `nn.BatchNorm2d`: `[n, c, h, w]`.
    D2,
}

/// PyTorch's constructor arguments; [`Default`] is PyTorch's default.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchNormConfig {
    /// Added to the variance inside the square root (1e-5).
    pub eps: f64,
    /// Weight of the new batch in the running averages (0.1); `None` is a cumulative average.
    pub momentum: Option<f64>,
    /// Learnable `weight` and `bias` (true).
    pub affine: bool,
    /// Keep running statistics (true); without them batch statistics are used in both modes.
    pub track_running_stats: bool,
}

impl Default for BatchNormConfig {
    fn default() -> Self {
        BatchNormConfig {
            eps: 1e-5,
            momentum: Some(0.1),
            affine: true,
            track_running_stats: true,
        }
    }
}

/// The running statistics (buffers).
#[derive(Clone, Debug)]
pub struct RunningStats<B: Backend> {
    pub mean: Tensor<B>,
    pub var: Tensor<B>,
    /// I64 scalar.
    pub num_batches_tracked: Tensor<B>,
}

/// Batch normalization over the channel axis 1.
///
/// Training mode normalizes with the batch's mean and biased variance and then updates
/// (outside the autograd graph): `num_batches_tracked += 1`, `f = momentum` (or
/// `1 / num_batches_tracked` when `momentum` is `None`), `running_mean = (1 - f) ·
/// running_mean + f · mean`, `running_var = (1 - f) · running_var + f · var · m / (m - 1)`
/// with `m` values per channel (the unbiased variance). Eval mode normalizes with the running
/// statistics.
#[derive(Clone, Debug)]
pub struct BatchNorm<B: Backend> {
    pub weight: Option<Param<B>>,
    pub bias: Option<Param<B>>,
    /// `None` when `track_running_stats` is false.
    pub running: Option<RunningStats<B>>,
    pub kind: BatchNormKind,
    pub eps: f64,
    pub momentum: Option<f64>,
    num_features: usize,
    training: bool,
    /// A host copy of `num_batches_tracked` and the tensor it was written to: the count is
    /// read from the device only when that tensor was replaced (a checkpoint load), so a
    /// training step does not stall on it.
    tracked: Option<(u64, Tensor<B>)>,
}

impl<B: Backend> BatchNorm<B> {
    /// A batch norm over `num_features` channels, in training mode, initialized as PyTorch.
    pub fn new(
        num_features: usize,
        kind: BatchNormKind,
        config: BatchNormConfig,
        dtype: DType,
        backend: &B,
    ) -> Result<Self> {
        let momentum_ok = config.momentum.is_none_or(|m| (0.0..=1.0).contains(&m));
        let eps_ok = config.eps.is_finite() && config.eps >= 0.0;
        if num_features == 0 || !eps_ok || !momentum_ok {
            return Err(arg_err!(
                "BatchNorm",
                "needs num_features > 0, eps >= 0 and momentum in [0, 1]; got {num_features}, \
                 {config:?}"
            )
            .into());
        }
        if !dtype.is_float() {
            return Err(arg_err!("BatchNorm", "needs a float dtype, got {dtype}").into());
        }
        let c = [num_features];
        let (weight, bias) = match config.affine {
            true => (
                Some(Param::new(init::ones(&c, dtype, backend)?)),
                Some(Param::new(init::zeros(&c, dtype, backend)?)),
            ),
            false => (None, None),
        };
        let running = match config.track_running_stats {
            true => Some(RunningStats {
                mean: init::zeros(&c, dtype, backend)?,
                var: init::ones(&c, dtype, backend)?,
                num_batches_tracked: Tensor::scalar(0.0, DType::I64, backend)?,
            }),
            false => None,
        };
        Ok(BatchNorm {
            weight,
            bias,
            running,
            kind,
            eps: config.eps,
            momentum: config.momentum,
            num_features,
            training: true,
            tracked: None,
        })
    }

    /// `nn.BatchNorm1d(num_features)` with PyTorch's defaults.
    pub fn new_1d(num_features: usize, dtype: DType, backend: &B) -> Result<Self> {
        Self::new(
            num_features,
            BatchNormKind::D1,
            BatchNormConfig::default(),
            dtype,
            backend,
        )
    }

    /// `nn.BatchNorm2d(num_features)` with PyTorch's defaults.
    pub fn new_2d(num_features: usize, dtype: DType, backend: &B) -> Result<Self> {
        Self::new(
            num_features,
            BatchNormKind::D2,
            BatchNormConfig::default(),
            dtype,
            backend,
        )
    }

    /// Number of channels `c`.
    pub fn num_features(&self) -> usize {
        self.num_features
    }

    /// True in training mode.
    pub fn is_training(&self) -> bool {
        self.training
    }

    /// Normalizes `x` (see [`BatchNorm`]); in training mode also updates the running
    /// statistics.
    pub fn forward(&mut self, x: &Var<B>) -> tessera_tensor::Result<Var<B>> {
        let (w, b) = (self.weight.clone(), self.bias.clone());
        self.forward_with(x, w.as_ref().map(Param::var), b.as_ref().map(Param::var))
    }

    /// The eval-mode forward through `&self` (PyTorch: `bn.eval(); bn(x)`), whatever mode the
    /// layer is in: normalizes with the running statistics (with the batch's when
    /// `track_running_stats` is off, as PyTorch does) and updates nothing. Lets a shared,
    /// frozen model be evaluated without `&mut`.
    pub fn forward_eval(&self, x: &Var<B>) -> tessera_tensor::Result<Var<B>> {
        self.check_input(x.value())?;
        let w = self.weight.as_ref().map(Param::var);
        let b = self.bias.as_ref().map(Param::var);
        match &self.running {
            Some(r) => x.batch_norm_eval(&r.mean, &r.var, w, b, self.eps),
            None => Ok(x.batch_norm_train(w, b, self.eps)?.0),
        }
    }

    /// The functional form: this layer's mode, statistics and configuration with explicit
    /// affine parameters (for gradient checks and functional calls).
    pub fn forward_with(
        &mut self,
        x: &Var<B>,
        weight: Option<&Var<B>>,
        bias: Option<&Var<B>>,
    ) -> tessera_tensor::Result<Var<B>> {
        self.check_input(x.value())?;
        let running = match &self.running {
            Some(r) if !self.training => r,
            _ => {
                let (y, stats) = x.batch_norm_train(weight, bias, self.eps)?;
                if self.training {
                    self.update_running(x.value(), &stats.mean, &stats.var)?;
                }
                return Ok(y);
            }
        };
        x.batch_norm_eval(&running.mean, &running.var, weight, bias, self.eps)
    }

    fn check_input(&self, x: &Tensor<B>) -> tessera_tensor::Result<()> {
        let rank_ok = match self.kind {
            BatchNormKind::D1 => matches!(x.rank(), 2 | 3),
            BatchNormKind::D2 => x.rank() == 4,
        };
        let c = self.num_features();
        if !rank_ok || x.shape()[1] != c {
            let want = match self.kind {
                BatchNormKind::D1 => format!("[n, {c}] or [n, {c}, l]"),
                BatchNormKind::D2 => format!("[n, {c}, h, w]"),
            };
            return Err(tessera_tensor::Error::Shape {
                op: "BatchNorm",
                msg: format!("expected input {want}, got {:?}", x.shape()),
            });
        }
        Ok(())
    }

    /// The running-average update with the batch's mean and biased variance (plain tensors:
    /// no autograd). Nothing changes if any step fails.
    fn update_running(
        &mut self,
        x: &Tensor<B>,
        mean: &Tensor<B>,
        var: &Tensor<B>,
    ) -> tessera_tensor::Result<()> {
        let Some(r) = &self.running else {
            return Ok(());
        };
        let m = x.numel() / x.shape()[1].max(1);
        let known = match &self.tracked {
            Some((n, t)) if t.shares_storage_with(&r.num_batches_tracked) => *n,
            _ => r.num_batches_tracked.item()? as u64,
        };
        let count = (known + 1) as f64;
        let f = self.momentum.unwrap_or(1.0 / count);
        let dtype = r.mean.dtype();
        let unbiased = var.mul_scalar(m as f64 / (m as f64 - 1.0))?;
        let blend = |old: &Tensor<B>, new: &Tensor<B>| {
            old.mul_scalar(1.0 - f)?
                .add(&new.to_dtype(dtype)?.mul_scalar(f)?)
        };
        let new = RunningStats {
            mean: blend(&r.mean, mean)?,
            var: blend(&r.var, &unbiased)?,
            num_batches_tracked: Tensor::scalar(count, DType::I64, x.backend())?,
        };
        self.tracked = Some((known + 1, new.num_batches_tracked.clone()));
        self.running = Some(new);
        Ok(())
    }
}

impl<B: Backend> Module<B> for BatchNorm<B> {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_, B>)) {
        if let (Some(w), Some(b)) = (&self.weight, &self.bias) {
            f(&join(prefix, "weight"), Entry::Param(w));
            f(&join(prefix, "bias"), Entry::Param(b));
        }
        if let Some(r) = &self.running {
            f(&join(prefix, "running_mean"), Entry::Buffer(&r.mean));
            f(&join(prefix, "running_var"), Entry::Buffer(&r.var));
            let n = &r.num_batches_tracked;
            f(&join(prefix, "num_batches_tracked"), Entry::Buffer(n));
        }
    }

    fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, EntryMut<'_, B>)) {
        if let (Some(w), Some(b)) = (&mut self.weight, &mut self.bias) {
            f(&join(prefix, "weight"), EntryMut::Param(w));
            f(&join(prefix, "bias"), EntryMut::Param(b));
        }
        if let Some(r) = &mut self.running {
            f(&join(prefix, "running_mean"), EntryMut::Buffer(&mut r.mean));
            f(&join(prefix, "running_var"), EntryMut::Buffer(&mut r.var));
            let n = &mut r.num_batches_tracked;
            f(&join(prefix, "num_batches_tracked"), EntryMut::Buffer(n));
        }
    }

    fn set_training(&mut self, training: bool) {
        self.training = training;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::module::ModuleExt;
    use tessera_tensor::Cpu;

    #[test]
    fn names_modes_and_errors() {
        let mut bn = BatchNorm::new_2d(2, DType::F64, &Cpu).unwrap();
        let names: alloc::vec::Vec<_> = bn.state_dict().into_keys().collect();
        assert_eq!(
            names,
            [
                "bias",
                "num_batches_tracked",
                "running_mean",
                "running_var",
                "weight"
            ]
        );
        let x = Tensor::from_vec((0..8).map(f64::from).collect(), &[2, 2, 2, 1], &Cpu);
        let x = Var::constant(x.unwrap());
        bn.forward(&x).unwrap();
        let r = bn.running.as_ref().unwrap();
        assert_eq!(r.num_batches_tracked.to_vec::<i64>().unwrap(), [1]);
        // Channel 0 holds 0, 1, 4, 5: mean 2.5, unbiased var 17/3.
        let rm = r.mean.to_vec::<f64>().unwrap();
        let rv = r.var.to_vec::<f64>().unwrap();
        assert!((rm[0] - 0.25).abs() < 1e-12 && (rv[0] - (0.9 + 1.7 / 3.0)).abs() < 1e-12);
        bn.set_training(false);
        let y = bn.forward(&x).unwrap();
        assert_eq!(y.value().shape(), [2, 2, 2, 1]);
        let flat = Var::constant(Tensor::ones(&[2, 2], DType::F64, &Cpu).unwrap());
        assert!(bn.forward(&flat).is_err());
        // Neither affine nor tracking: batch statistics in both modes, no state.
        let cfg = BatchNormConfig {
            affine: false,
            track_running_stats: false,
            ..Default::default()
        };
        let mut plain = BatchNorm::new(2, BatchNormKind::D1, cfg, DType::F64, &Cpu).unwrap();
        plain.set_training(false);
        let y = plain.forward(&Var::constant(x.value().reshape(&[2, 2, 2]).unwrap()));
        assert_eq!(y.unwrap().value().shape(), [2, 2, 2]);
        assert!(plain.state_dict().is_empty());
        assert!(BatchNorm::<Cpu>::new_2d(0, DType::F64, &Cpu).is_err());
    }
}
