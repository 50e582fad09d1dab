//! `Dropout` (PyTorch: `nn.Dropout`) and `DropPath` (stochastic depth, timm / DINO
//! `drop_path`). Neither has parameters.
//!
//! # Randomness
//!
//! Each layer **owns** its [`Rng`], seeded at construction (`Rng::new(seed)`; models hand each
//! layer a [`Rng::fork`] of their construction generator), so `forward` takes `&self` like
//! every other layer and a model built from the same seed drops the same elements in the same
//! order. The generator sits in a `RefCell` and advances by one draw per sample (DropPath) or
//! per element (Dropout) in every training-mode forward with `p > 0`; [`Dropout::reseed`] /
//! [`DropPath::reseed`] restart it. In eval mode, or with `p = 0`, forward is the identity
//! and draws nothing. Like PyTorch modules, both start in training mode.
//!
//! # Semantics
//!
//! - Dropout: each element is kept with probability `1 - p` and scaled by `1 / (1 - p)`.
//! - DropPath: each *sample* (index along dim 0) is kept or zeroed as a whole. As timm, the
//!   mask is `floor(keep + u)` with `keep = 1 - p` and `u = rng.next_f64()` uniform in
//!   `[0, 1)`, and the output is `x / keep * mask`.

use crate::module::{Entry, EntryMut, Module};
use alloc::vec::Vec;
use core::cell::RefCell;
use tessera_autograd::Var;
use tessera_tensor::{arg_err, Backend, HostBuffer, Rng, Tensor};

fn check_p(op: &'static str, p: f64) -> crate::Result<()> {
    if (0.0..1.0).contains(&p) {
        Ok(())
    } else {
        Err(arg_err!(op, "drop probability must be in [0, 1), got {p}").into())
    }
}

/// `x * mask` where `mask [shape]` holds `floor(keep + u) / keep` per entry.
fn apply_mask<B: Backend>(
    x: &Var<B>,
    mask_shape: &[usize],
    p: f64,
    rng: &RefCell<Rng>,
) -> tessera_tensor::Result<Var<B>> {
    let keep = 1.0 - p;
    let n: usize = mask_shape.iter().product();
    let mut rng = rng.borrow_mut();
    let m: Vec<f64> = (0..n)
        .map(|_| libm::floor(keep + rng.next_f64()) / keep)
        .collect();
    let mask = Tensor::from_host(
        HostBuffer::F64(m).cast(x.dtype()),
        mask_shape,
        x.value().backend(),
    )?;
    x.mul(&Var::constant(mask))
}

/// Element-wise dropout (PyTorch: `nn.Dropout(p)`).
#[derive(Clone, Debug)]
pub struct Dropout {
    /// Probability of zeroing an element, in `[0, 1)`.
    pub p: f64,
    pub training: bool,
    rng: RefCell<Rng>,
}

impl Dropout {
    /// Dropout with probability `p` in `[0, 1)`, drawing from `Rng::new(seed)`.
    pub fn new(p: f64, seed: u64) -> crate::Result<Self> {
        check_p("Dropout::new", p)?;
        Ok(Dropout {
            p,
            training: true,
            rng: RefCell::new(Rng::new(seed)),
        })
    }

    /// Restarts the random stream at `Rng::new(seed)`.
    pub fn reseed(&self, seed: u64) {
        *self.rng.borrow_mut() = Rng::new(seed);
    }

    /// Identity in eval mode or with `p = 0`.
    pub fn forward<B: Backend>(&self, x: &Var<B>) -> tessera_tensor::Result<Var<B>> {
        if !self.training || self.p == 0.0 {
            return Ok(x.clone());
        }
        apply_mask(x, x.shape(), self.p, &self.rng)
    }
}

/// Stochastic depth per sample (timm / DINO: `DropPath(drop_prob)`).
#[derive(Clone, Debug)]
pub struct DropPath {
    /// Probability of dropping a sample's residual branch, in `[0, 1)`.
    pub p: f64,
    pub training: bool,
    rng: RefCell<Rng>,
}

impl DropPath {
    /// DropPath with probability `p` in `[0, 1)`, drawing from `Rng::new(seed)`.
    pub fn new(p: f64, seed: u64) -> crate::Result<Self> {
        check_p("DropPath::new", p)?;
        Ok(DropPath {
            p,
            training: true,
            rng: RefCell::new(Rng::new(seed)),
        })
    }

    /// Restarts the random stream at `Rng::new(seed)`.
    pub fn reseed(&self, seed: u64) {
        *self.rng.borrow_mut() = Rng::new(seed);
    }

    /// `x [b, ..]`: identity in eval mode or with `p = 0`; otherwise one draw per sample.
    pub fn forward<B: Backend>(&self, x: &Var<B>) -> tessera_tensor::Result<Var<B>> {
        if !self.training || self.p == 0.0 {
            return Ok(x.clone());
        }
        if x.rank() == 0 {
            return Err(arg_err!("DropPath", "needs a batch dim, got a scalar"));
        }
        let mut shape = alloc::vec![1usize; x.rank()];
        shape[0] = x.shape()[0];
        apply_mask(x, &shape, self.p, &self.rng)
    }
}

macro_rules! stateless_module {
    ($t:ty) => {
        impl<B: Backend> Module<B> for $t {
            fn visit(&self, _prefix: &str, _f: &mut dyn FnMut(&str, Entry<'_, B>)) {}
            fn visit_mut(&mut self, _prefix: &str, _f: &mut dyn FnMut(&str, EntryMut<'_, B>)) {}
            fn set_training(&mut self, training: bool) {
                self.training = training;
            }
        }
    };
}
stateless_module!(Dropout);
stateless_module!(DropPath);

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_tensor::{Cpu, DType};

    fn ones(shape: &[usize]) -> Var<Cpu> {
        Var::constant(Tensor::ones(shape, DType::F64, &Cpu).unwrap())
    }

    #[test]
    fn drop_path_per_sample_and_scaled() {
        let dp = DropPath::new(0.5, 7).unwrap();
        let y = dp
            .forward(&ones(&[64, 3, 2]))
            .unwrap()
            .value()
            .to_vec::<f64>()
            .unwrap();
        let mut kept = 0;
        for s in y.chunks(6) {
            assert!(s.iter().all(|&v| v == s[0]), "whole sample kept or dropped");
            assert!(s[0] == 0.0 || s[0] == 2.0);
            kept += usize::from(s[0] == 2.0);
        }
        assert!((16..=48).contains(&kept), "{kept}");
        // The same seed replays the same mask; reseeding restarts the stream.
        let again = DropPath::new(0.5, 7).unwrap();
        let y2 = again.forward(&ones(&[64, 3, 2])).unwrap();
        assert_eq!(y, y2.value().to_vec::<f64>().unwrap());
        dp.reseed(7);
        assert_eq!(
            y,
            dp.forward(&ones(&[64, 3, 2]))
                .unwrap()
                .value()
                .to_vec::<f64>()
                .unwrap()
        );
    }

    #[test]
    fn identity_in_eval_or_zero_p() {
        let mut dp = DropPath::new(0.3, 1).unwrap();
        Module::<Cpu>::set_training(&mut dp, false);
        let x = ones(&[4, 2]);
        assert_eq!(dp.forward(&x).unwrap().id(), x.id());
        let d0 = Dropout::new(0.0, 1).unwrap();
        assert_eq!(d0.forward(&x).unwrap().id(), x.id());
        assert!(Dropout::new(1.0, 0).is_err() && DropPath::new(-0.1, 0).is_err());
    }

    #[test]
    fn dropout_elementwise_mean_preserved() {
        let d = Dropout::new(0.25, 3).unwrap();
        let y = d
            .forward(&ones(&[4000]))
            .unwrap()
            .value()
            .to_vec::<f64>()
            .unwrap();
        assert!(y
            .iter()
            .all(|&v| v == 0.0 || (v - 1.0 / 0.75).abs() < 1e-12));
        let mean = y.iter().sum::<f64>() / 4000.0;
        assert!((mean - 1.0).abs() < 0.05, "{mean}");
    }
}
