//! Layer norm and batch norm. Both normalize `x̂ = (x - mean) * rstd` over some axes and
//! then scale and shift per feature, so one backward serves both:
//!
//! - `dx = rstd * (ĝ - mean(ĝ) - x̂ * mean(ĝ * x̂))` with `ĝ = g * weight` and means over the
//!   normalized axes (the mean and variance depend on x, hence the two correction terms); in
//!   eval mode the statistics are constants and `dx = ĝ * rstd`;
//! - `dweight = sum(g * x̂)`, `dbias = sum(g)` over the axes the parameters broadcast along.
//!
//! The forward's saved statistics (`layer_norm_with_stats`, `batch_norm_train`) are reused.

use crate::{Backward, Var};
use alloc::boxed::Box;
use alloc::vec::Vec;
use tessera_tensor::{Backend, BatchNormNeeds, BatchNormOutput, Result, Tensor};

struct NormBackward<B: Backend> {
    name: &'static str,
    x: Tensor<B>,
    /// Mean and rstd, shaped to broadcast against `x`.
    mean: Tensor<B>,
    rstd: Tensor<B>,
    /// The weight shaped to broadcast against `x`, and its own shape.
    weight: Option<(Tensor<B>, Vec<usize>)>,
    has_bias: bool,
    /// Axes the statistics were computed over; `None` in eval mode (constant statistics).
    stat_axes: Option<Vec<isize>>,
    /// Axes the weight and bias broadcast along.
    param_axes: Vec<isize>,
}

/// Sums over `axes` (dropping them); no axes means nothing to sum, not "all axes".
fn sum_over<B: Backend>(t: &Tensor<B>, axes: &[isize]) -> Result<Tensor<B>> {
    if axes.is_empty() {
        return Ok(t.clone());
    }
    t.sum(axes, false)
}

impl<B: Backend> Backward<B> for NormBackward<B> {
    fn name(&self) -> &'static str {
        self.name
    }
    fn backward(&self, g: &Tensor<B>, needs: &[bool]) -> Result<Vec<Option<Tensor<B>>>> {
        let xhat = || self.x.sub(&self.mean)?.mul(&self.rstd);
        let ghat = || match &self.weight {
            Some((w, _)) => g.mul(w),
            None => Ok(g.clone()),
        };
        if self.name == "batch_norm" {
            return self.batch_norm_train_backward(g, needs);
        }
        if let (Some(axes), "layer_norm") = (&self.stat_axes, self.name) {
            return self.layer_norm_backward(g, needs, axes.len());
        }
        let mut out = Vec::with_capacity(3);
        if needs.first().copied().unwrap_or(false) {
            let dx = match &self.stat_axes {
                Some(axes) => {
                    let (gh, xhat) = (ghat()?, xhat()?);
                    let m1 = gh.mean(axes, true)?;
                    let m2 = gh.mul(&xhat)?.mean(axes, true)?;
                    gh.sub(&m1)?.sub(&xhat.mul(&m2)?)?.mul(&self.rstd)?
                }
                None => ghat()?.mul(&self.rstd)?,
            };
            out.push(Some(dx));
        } else {
            out.push(None);
        }
        let mut next = 1;
        if let Some((_, shape)) = &self.weight {
            out.push(match needs.get(next).copied().unwrap_or(false) {
                true => Some(sum_over(&g.mul(&xhat()?)?, &self.param_axes)?.reshape(shape)?),
                false => None,
            });
            next += 1;
        }
        if self.has_bias {
            out.push(match needs.get(next).copied().unwrap_or(false) {
                true => Some(sum_over(g, &self.param_axes)?.contiguous()?),
                false => None,
            });
        }
        Ok(out)
    }
}

impl<B: Backend> NormBackward<B> {
    /// Layer norm over its last `k` dims: the backend's (possibly fused) gradients, all three
    /// in one call.
    fn layer_norm_backward(
        &self,
        g: &Tensor<B>,
        needs: &[bool],
        k: usize,
    ) -> Result<Vec<Option<Tensor<B>>>> {
        let needs_x = needs.first().copied().unwrap_or(false);
        let needs_w = self.weight.is_some() && needs.get(1).copied().unwrap_or(false);
        let needs_b = self.has_bias
            && needs
                .get(1 + usize::from(self.weight.is_some()))
                .copied()
                .unwrap_or(false);
        let weight = self.weight.as_ref().map(|(w, _)| w);
        let (dx, dw, db) = g.backend().layer_norm_grads(
            &self.x,
            &self.mean,
            &self.rstd,
            weight,
            g,
            k,
            (needs_x, needs_w, needs_b),
        )?;
        let mut out = alloc::vec![dx];
        if let Some((_, shape)) = &self.weight {
            out.push(dw.map(|dw| dw.reshape(shape)).transpose()?);
        }
        if self.has_bias {
            out.push(db);
        }
        Ok(out)
    }

    /// Training-mode batch norm: the backend's (possibly fused) gradients, all three at once.
    fn batch_norm_train_backward(
        &self,
        g: &Tensor<B>,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor<B>>>> {
        let need = |i: usize| needs.get(i).copied().unwrap_or(false);
        let c = [self.mean.numel()];
        let weight = match &self.weight {
            Some((w, _)) => Some(w.reshape(&c)?),
            None => None,
        };
        let bias_at = 1 + usize::from(weight.is_some());
        let needs = BatchNormNeeds {
            input: need(0),
            weight: weight.is_some() && need(1),
            bias: self.has_bias && need(bias_at),
        };
        let grads = g.backend().batch_norm_backward(
            &self.x,
            &self.mean.reshape(&c)?,
            &self.rstd.reshape(&c)?,
            weight.as_ref(),
            g,
            needs,
        )?;
        let mut out = alloc::vec![grads.input];
        if let Some((_, shape)) = &self.weight {
            out.push(grads.weight.map(|d| d.reshape(shape)).transpose()?);
        }
        if self.has_bias {
            out.push(grads.bias);
        }
        Ok(out)
    }
}

/// The inputs of a norm op in `Var::from_op` order: x, then weight and bias when present.
fn norm_inputs<B: Backend>(x: &Var<B>, w: Option<&Var<B>>, b: Option<&Var<B>>) -> Vec<Var<B>> {
    let mut v = alloc::vec![x.clone()];
    v.extend(w.cloned());
    v.extend(b.cloned());
    v
}

/// `[c]` to `[1, c, 1, ..]` so that it broadcasts over an `[n, c, ..]` input.
fn per_channel<B: Backend>(t: &Tensor<B>, rank: usize) -> Result<Tensor<B>> {
    let mut shape = alloc::vec![1usize; rank];
    shape[1] = t.numel();
    t.reshape(&shape)
}

impl<B: Backend> Var<B> {
    /// Layer norm over the trailing `normalized_shape` (PyTorch: `F.layer_norm`).
    pub fn layer_norm(
        &self,
        normalized_shape: &[usize],
        weight: Option<&Var<B>>,
        bias: Option<&Var<B>>,
        eps: f64,
    ) -> Result<Var<B>> {
        let x = self.value();
        let (y, mean, rstd) = x.layer_norm_with_stats(
            normalized_shape,
            weight.map(Var::value),
            bias.map(Var::value),
            eps,
        )?;
        let (r, k) = (x.rank() as isize, normalized_shape.len() as isize);
        let bw = NormBackward {
            name: "layer_norm",
            x: x.clone(),
            mean,
            rstd,
            weight: weight.map(|w| (w.value().clone(), w.value().shape().to_vec())),
            has_bias: bias.is_some(),
            stat_axes: Some((r - k..r).collect()),
            param_axes: (0..r - k).collect(),
        };
        let inputs = norm_inputs(self, weight, bias);
        Ok(Var::from_op(y, &inputs, Box::new(bw)))
    }

    fn batch_norm_record(
        &self,
        y: Tensor<B>,
        stats: (&Tensor<B>, &Tensor<B>),
        weight: Option<&Var<B>>,
        bias: Option<&Var<B>>,
        train: bool,
    ) -> Result<Var<B>> {
        let x = self.value();
        let r = x.rank();
        let axes: Vec<isize> = (0..r as isize).filter(|&a| a != 1).collect();
        let saved_weight = match weight {
            Some(w) => Some((per_channel(w.value(), r)?, w.value().shape().to_vec())),
            None => None,
        };
        let bw = NormBackward {
            name: if train {
                "batch_norm"
            } else {
                "batch_norm_eval"
            },
            x: x.clone(),
            mean: per_channel(stats.0, r)?,
            rstd: per_channel(stats.1, r)?,
            weight: saved_weight,
            has_bias: bias.is_some(),
            stat_axes: train.then(|| axes.clone()),
            param_axes: axes,
        };
        let inputs = norm_inputs(self, weight, bias);
        Ok(Var::from_op(y, &inputs, Box::new(bw)))
    }

    /// Batch norm in training mode over `[n, c, ..]` (PyTorch: `F.batch_norm(training=True)`).
    /// Also returns the batch statistics (constants) for the running-average update.
    pub fn batch_norm_train(
        &self,
        weight: Option<&Var<B>>,
        bias: Option<&Var<B>>,
        eps: f64,
    ) -> Result<(Var<B>, BatchNormOutput<B>)> {
        let stats =
            self.value()
                .batch_norm_train(weight.map(Var::value), bias.map(Var::value), eps)?;
        let y = stats.output.clone();
        let out = self.batch_norm_record(y, (&stats.mean, &stats.rstd), weight, bias, true)?;
        Ok((out, stats))
    }

    /// Batch norm in evaluation mode with running statistics `[c]` (constants).
    pub fn batch_norm_eval(
        &self,
        running_mean: &Tensor<B>,
        running_var: &Tensor<B>,
        weight: Option<&Var<B>>,
        bias: Option<&Var<B>>,
        eps: f64,
    ) -> Result<Var<B>> {
        let y = self.value().batch_norm_eval(
            running_mean,
            running_var,
            weight.map(Var::value),
            bias.map(Var::value),
            eps,
        )?;
        let rstd = running_var.add_scalar(eps)?.rsqrt()?;
        self.batch_norm_record(y, (running_mean, &rstd), weight, bias, false)
    }
}

#[cfg(test)]
mod tests {
    use crate::test_util::{check, pos, rand};
    use crate::Var;

    #[test]
    fn layer_norm_with_and_without_affine() {
        let x = rand(&[2, 3, 4], 1);
        let (w, b) = (rand(&[4], 2), rand(&[4], 3));
        let ln = |v: &[Var<_>]| v[0].layer_norm(&[4], Some(&v[1]), Some(&v[2]), 1e-5);
        check(ln, &[x.clone(), w, b]);
        check(
            |v| v[0].layer_norm(&[3, 4], None, None, 1e-5),
            core::slice::from_ref(&x),
        );
        let w2 = rand(&[2, 3, 4], 4);
        check(
            |v| v[0].layer_norm(&[2, 3, 4], Some(&v[1]), None, 1e-5),
            &[x, w2],
        );
    }

    #[test]
    fn batch_norm_train_and_eval() {
        let x = rand(&[3, 2, 2, 2], 5);
        let (w, b) = (rand(&[2], 6), rand(&[2], 7));
        let bn = |v: &[Var<_>]| Ok(v[0].batch_norm_train(Some(&v[1]), Some(&v[2]), 1e-5)?.0);
        check(bn, &[x.clone(), w.clone(), b.clone()]);
        check(
            |v| Ok(v[0].batch_norm_train(None, None, 1e-5)?.0),
            &[rand(&[4, 3], 8)],
        );
        let (rm, rv) = (rand(&[2], 9), pos(&[2], 10));
        let ev = |v: &[Var<_>]| v[0].batch_norm_eval(&rm, &rv, Some(&v[1]), Some(&v[2]), 1e-5);
        check(ev, &[x, w, b]);
    }
}
