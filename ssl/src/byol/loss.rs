//! BYOL's regression loss between the online network's predictions and the target network's
//! projections (`loss_fn` in lucidrains' `byol-pytorch`, `regression_loss` in deepmind's
//! `byol`).

use tessera_autograd::Var;
use tessera_tensor::{shape_err, Backend, Result, Tensor};

use crate::dino::l2_normalize;

/// `F.normalize`'s default `eps`.
const EPS: f64 = 1e-12;

/// Per sample, `2 − 2·cos(p, z) = ‖p/‖p‖ − z/‖z‖‖²`: both are L2-normalized over the last
/// axis (`F.normalize`, eps 1e-12), then `2 − 2·Σ p̂·ẑ`. `p` is `[B, D]` (gradients flow into
/// it); `z` is a constant of the same shape (stop-gradient). Returns `[B]`.
pub fn byol_regression_loss<B: Backend>(p: &Var<B>, z: &Tensor<B>) -> Result<Var<B>> {
    if p.shape() != z.shape() || p.rank() < 1 {
        return Err(shape_err!(
            "byol_loss",
            "prediction {:?} and target projection {:?} must have the same shape [B, D]",
            p.shape(),
            z.shape()
        ));
    }
    let p = l2_normalize(p, EPS)?;
    let z = l2_normalize(&Var::constant(z.clone()), EPS)?;
    // 2 − 2·s, computed as (−2)·s + 2: the same rounding (2·s is exact).
    p.mul(&z)?.sum(&[-1], false)?.affine(-2.0, 2.0)
}

/// BYOL's symmetric loss for one batch: the online predictions `p1`, `p2` of the two views
/// regress onto the target projections of the *other* view,
/// `mean_b(ℓ(p1, z2) + ℓ(p2, z1))` with `ℓ` = [`byol_regression_loss`] (lucidrains:
/// `(loss_one + loss_two).mean()`). The targets are constants: BYOL's stop-gradient on the
/// target network.
pub fn byol_loss<B: Backend>(
    p1: &Var<B>,
    p2: &Var<B>,
    z1: &Tensor<B>,
    z2: &Tensor<B>,
) -> Result<Var<B>> {
    let one = byol_regression_loss(p1, z2)?;
    let two = byol_regression_loss(p2, z1)?;
    one.add(&two)?.mean(&[], false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_tensor::{Cpu, DType};

    #[test]
    fn aligned_and_opposite() {
        let a = Tensor::from_vec(vec![1.0f64, 2.0, -3.0, 0.5], &[2, 2], &Cpu).unwrap();
        let p = Var::leaf(a.mul_scalar(3.0).unwrap());
        let same = byol_regression_loss(&p, &a)
            .unwrap()
            .value()
            .to_vec::<f64>()
            .unwrap();
        assert!(same.iter().all(|v| v.abs() < 1e-15), "{same:?}");
        let opp = byol_regression_loss(&p, &a.neg().unwrap()).unwrap();
        let opp = opp.value().to_vec::<f64>().unwrap();
        assert!(opp.iter().all(|v| (v - 4.0).abs() < 1e-15), "{opp:?}");
        let z = Tensor::zeros(&[3, 2], DType::F64, &Cpu).unwrap();
        assert!(byol_loss(&p, &p, &z, &z).is_err());
    }
}
