//! Losses built from differentiable ops, so they need no backward of their own.

use crate::Var;
use tessera_tensor::{Backend, DType, Error, Result, Tensor};

/// The class axis of PyTorch's loss inputs: `[C]` or `[N, C, d1, ..]`.
fn class_axis<B: Backend>(logits: &Var<B>) -> Result<isize> {
    match logits.value().rank() {
        0 => Err(Error::Shape {
            op: "cross_entropy",
            msg: "logits must have rank >= 1 ([C] or [N, C, ..]), got a scalar".into(),
        }),
        1 => Ok(0),
        _ => Ok(1),
    }
}

/// Mean cross-entropy of `logits` against class indices (PyTorch: `F.cross_entropy(logits,
/// targets)` with the default `reduction='mean'`). `logits` is `[N, C, d1, ..]` (or `[C]`)
/// and `targets` is I64 with the logits' shape minus the class dim. No class weights,
/// `ignore_index` or label smoothing; out-of-range targets are an error from `gather`.
pub fn cross_entropy<B: Backend>(logits: &Var<B>, targets: &Tensor<B>) -> Result<Var<B>> {
    let axis = class_axis(logits)?;
    let shape = logits.value().shape();
    let mut expected = shape.to_vec();
    expected.remove(axis as usize);
    if targets.dtype() != DType::I64 || targets.shape() != expected.as_slice() {
        return Err(Error::Shape {
            op: "cross_entropy",
            msg: alloc::format!(
                "targets must be I64 of shape {expected:?} for logits {shape:?}, got {} {:?}",
                targets.dtype(),
                targets.shape()
            ),
        });
    }
    let logp = logits.log_softmax(axis)?;
    let picked = logp.gather(axis, &targets.unsqueeze(axis)?)?;
    picked.mean(&[], false)?.neg()
}

/// Mean cross-entropy against class probabilities of the logits' shape: `-sum(p * log_softmax)`
/// over the class dim, averaged over the rest (PyTorch: `F.cross_entropy` with probability
/// targets; DINO's loss between teacher and student). Gradients flow into both arguments;
/// pass a detached or constant `probs` for a fixed target.
pub fn cross_entropy_probs<B: Backend>(logits: &Var<B>, probs: &Var<B>) -> Result<Var<B>> {
    let axis = class_axis(logits)?;
    if probs.value().shape() != logits.value().shape() {
        return Err(Error::Shape {
            op: "cross_entropy_probs",
            msg: alloc::format!(
                "probabilities {:?} must have the logits' shape {:?}",
                probs.value().shape(),
                logits.value().shape()
            ),
        });
    }
    let per_item = probs.mul(&logits.log_softmax(axis)?)?.sum(&[axis], false)?;
    per_item.mean(&[], false)?.neg()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{check, rand};
    use tessera_tensor::Cpu;

    #[test]
    fn probability_targets() {
        let p = rand(&[3, 4], 2).softmax(-1).unwrap();
        check(
            |v| cross_entropy_probs(&v[0], &v[1]),
            &[rand(&[3, 4], 1), p],
        );
    }

    #[test]
    fn bad_targets_are_errors() {
        let x = Var::leaf(rand(&[3, 4], 3));
        let t = Tensor::from_slice(&[0i64, 1], &[2], &Cpu).unwrap();
        let e = cross_entropy(&x, &t).unwrap_err();
        assert!(alloc::format!("{e}").contains("[3]"), "{e}");
    }

    // Needs the tensor crate's gather (being written in parallel).
    #[test]
    fn class_index_targets() {
        let t = Tensor::from_slice(&[3i64, 0, 2], &[3], &Cpu).unwrap();
        check(|v| cross_entropy(&v[0], &t), &[rand(&[3, 4], 4)]);
        // Value: -mean(log_softmax[i, t_i]).
        let x = rand(&[3, 4], 4);
        let ls = x.log_softmax(1).unwrap().to_vec::<f64>().unwrap();
        let want = -(ls[3] + ls[4] + ls[2 * 4 + 2]) / 3.0;
        let got = cross_entropy(&Var::constant(x), &t)
            .unwrap()
            .value()
            .item()
            .unwrap();
        assert!((got - want).abs() < 1e-12);
        let t2 = Tensor::from_slice(&[1i64, 2], &[2, 1, 1], &Cpu).unwrap();
        check(|v| cross_entropy(&v[0], &t2), &[rand(&[2, 3, 1, 1], 5)]);
    }
}
