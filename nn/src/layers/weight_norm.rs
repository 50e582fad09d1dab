//! `WeightNormLinear`: the last layer of DINO's head, `nn.utils.weight_norm(nn.Linear(in, out,
//! bias=False))`. Parameters `weight_g [out, 1]` and `weight_v [out, in]`; the effective
//! weight is `g · v / ‖v‖` with the norm taken per output row (`dim=0`), so each row of the
//! weight has norm `g`. DINO fills `g` with 1 and, with `norm_last_layer=True` (its default),
//! freezes it.

use crate::init;
use crate::module::{join, Entry, EntryMut, Module, Param};
use crate::Result;
use tessera_autograd::Var;
use tessera_tensor::{Backend, DType, Rng};

/// A weight-normalized linear layer without bias.
#[derive(Clone, Debug)]
pub struct WeightNormLinear<B: Backend> {
    pub weight_g: Param<B>,
    pub weight_v: Param<B>,
}

impl<B: Backend> WeightNormLinear<B> {
    /// `v` with PyTorch's default Linear init, `g = 1` (as DINO), frozen when
    /// `norm_last_layer`.
    pub fn new(
        in_features: usize,
        out_features: usize,
        norm_last_layer: bool,
        dtype: DType,
        rng: &mut Rng,
        backend: &B,
    ) -> Result<Self> {
        let v = init::default_weight(&[out_features, in_features], dtype, rng, backend)?;
        let mut weight_g = Param::new(init::ones(&[out_features, 1], dtype, backend)?);
        weight_g.set_frozen(norm_last_layer);
        Ok(WeightNormLinear {
            weight_g,
            weight_v: Param::new(v),
        })
    }

    /// The effective weight `g · v / ‖v‖_row`, `[out, in]`.
    pub fn weight(&self) -> tessera_tensor::Result<Var<B>> {
        let v = self.weight_v.var();
        let norm = v.square()?.sum(&[1], true)?.sqrt()?;
        v.mul(self.weight_g.var())?.div(&norm)
    }

    /// `x [.., in] -> [.., out]`.
    pub fn forward(&self, x: &Var<B>) -> tessera_tensor::Result<Var<B>> {
        x.matmul(&self.weight()?.t()?)
    }
}

impl<B: Backend> Module<B> for WeightNormLinear<B> {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_, B>)) {
        f(&join(prefix, "weight_g"), Entry::Param(&self.weight_g));
        f(&join(prefix, "weight_v"), Entry::Param(&self.weight_v));
    }

    fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, EntryMut<'_, B>)) {
        f(
            &join(prefix, "weight_g"),
            EntryMut::Param(&mut self.weight_g),
        );
        f(
            &join(prefix, "weight_v"),
            EntryMut::Param(&mut self.weight_v),
        );
    }

    fn set_training(&mut self, _training: bool) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::module::ModuleExt;
    use tessera_tensor::{Cpu, Tensor};

    #[test]
    fn unit_rows_and_frozen_g() {
        let mut rng = Rng::new(3);
        let l = WeightNormLinear::new(5, 4, true, DType::F64, &mut rng, &Cpu).unwrap();
        assert!(l.weight_g.is_frozen());
        let w = l.weight().unwrap().value().to_vec::<f64>().unwrap();
        for row in w.chunks(5) {
            let n: f64 = row.iter().map(|x| x * x).sum();
            assert!((n - 1.0).abs() < 1e-12);
        }
        let x = Tensor::randn(&[3, 5], 0.0, 1.0, DType::F64, &mut rng, &Cpu).unwrap();
        let grads = l
            .forward(&Var::constant(x))
            .unwrap()
            .sum_all()
            .unwrap()
            .backward();
        let names: alloc::vec::Vec<_> = l.grads_by_name(&grads.unwrap()).into_keys().collect();
        assert_eq!(names, ["weight_v"]);
        let free = WeightNormLinear::new(5, 4, false, DType::F64, &mut rng, &Cpu).unwrap();
        assert!(!free.weight_g.is_frozen());
    }
}
