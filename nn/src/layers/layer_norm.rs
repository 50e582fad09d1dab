//! `LayerNorm` over the last dim (PyTorch: `nn.LayerNorm(dim, eps)`, parameters `weight [dim]`
//! and `bias [dim]`, initialized to 1 and 0). DINO's ViT uses `eps = 1e-6`.

use crate::init;
use crate::module::{join, Entry, EntryMut, Module, Param};
use crate::Result;
use tessera_autograd::Var;
use tessera_tensor::{Backend, DType};

/// Layer normalization over the trailing dim, with an affine transform.
#[derive(Clone, Debug)]
pub struct LayerNorm<B: Backend> {
    pub weight: Param<B>,
    pub bias: Param<B>,
    /// Added to the variance before the square root.
    pub eps: f64,
}

impl<B: Backend> LayerNorm<B> {
    /// Weight 1, bias 0 (PyTorch's default and DINO's init).
    pub fn new(dim: usize, eps: f64, dtype: DType, backend: &B) -> Result<Self> {
        Ok(LayerNorm {
            weight: Param::new(init::ones(&[dim], dtype, backend)?),
            bias: Param::new(init::zeros(&[dim], dtype, backend)?),
            eps,
        })
    }

    /// The normalized dim.
    pub fn dim(&self) -> usize {
        self.weight.value().shape()[0]
    }

    /// `x [.., dim] -> [.., dim]`.
    pub fn forward(&self, x: &Var<B>) -> tessera_tensor::Result<Var<B>> {
        x.layer_norm(
            &[self.dim()],
            Some(self.weight.var()),
            Some(self.bias.var()),
            self.eps,
        )
    }
}

impl<B: Backend> Module<B> for LayerNorm<B> {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_, B>)) {
        f(&join(prefix, "weight"), Entry::Param(&self.weight));
        f(&join(prefix, "bias"), Entry::Param(&self.bias));
    }

    fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, EntryMut<'_, B>)) {
        f(&join(prefix, "weight"), EntryMut::Param(&mut self.weight));
        f(&join(prefix, "bias"), EntryMut::Param(&mut self.bias));
    }

    fn set_training(&mut self, _training: bool) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::module::ModuleExt;
    use tessera_tensor::{Cpu, Tensor};

    #[test]
    fn normalizes_last_dim() {
        let ln = LayerNorm::new(4, 1e-6, DType::F64, &Cpu).unwrap();
        let x = Tensor::from_vec(
            vec![1.0f64, 2.0, 3.0, 4.0, -1.0, -1.0, 1.0, 1.0],
            &[2, 4],
            &Cpu,
        )
        .unwrap();
        let y = ln
            .forward(&Var::constant(x))
            .unwrap()
            .value()
            .to_vec::<f64>()
            .unwrap();
        // Row 2: mean 0, variance 1 -> [-1, -1, 1, 1] (up to eps).
        for (a, b) in y[4..].iter().zip([-1.0, -1.0, 1.0, 1.0]) {
            assert!((a - b).abs() < 1e-5);
        }
        let s: f64 = y[..4].iter().sum();
        assert!(s.abs() < 1e-12);
        let names: alloc::vec::Vec<_> = ln.named_params().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["weight", "bias"]);
    }
}
