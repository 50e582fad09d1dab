//! The transformer MLP (DINO / timm `Mlp`: `fc1`, GELU, `fc2`) and the stateless activation
//! helpers [`gelu`] and [`relu`] (PyTorch: `nn.GELU()`, `nn.ReLU()`; they have no state, so
//! they are free functions).

use super::Linear;
use crate::module::{join, Entry, EntryMut, Module};
use crate::Result;
use tessera_autograd::Var;
use tessera_tensor::{Backend, DType, Rng};

/// Exact (erf) GELU, `x/2 · (1 + erf(x/√2))` (PyTorch: `nn.GELU()`, `approximate='none'`).
pub fn gelu<B: Backend>(x: &Var<B>) -> tessera_tensor::Result<Var<B>> {
    x.gelu()
}

/// `max(x, 0)` (PyTorch: `nn.ReLU()`).
pub fn relu<B: Backend>(x: &Var<B>) -> tessera_tensor::Result<Var<B>> {
    x.relu()
}

/// `fc2(gelu(fc1(x)))`; DINO's ViT uses `hidden = 4 · dim` and no dropout.
#[derive(Clone, Debug)]
pub struct Mlp<B: Backend> {
    pub fc1: Linear<B>,
    pub fc2: Linear<B>,
}

impl<B: Backend> Mlp<B> {
    /// `in -> hidden -> out`, both layers with bias and PyTorch's default init.
    pub fn new(
        in_features: usize,
        hidden_features: usize,
        out_features: usize,
        dtype: DType,
        rng: &mut Rng,
        backend: &B,
    ) -> Result<Self> {
        Ok(Mlp {
            fc1: Linear::new(in_features, hidden_features, true, dtype, rng, backend)?,
            fc2: Linear::new(hidden_features, out_features, true, dtype, rng, backend)?,
        })
    }

    /// `x [.., in] -> [.., out]`.
    pub fn forward(&self, x: &Var<B>) -> tessera_tensor::Result<Var<B>> {
        self.fc2.forward(&gelu(&self.fc1.forward(x)?)?)
    }
}

impl<B: Backend> Module<B> for Mlp<B> {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_, B>)) {
        self.fc1.visit(&join(prefix, "fc1"), f);
        self.fc2.visit(&join(prefix, "fc2"), f);
    }

    fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, EntryMut<'_, B>)) {
        self.fc1.visit_mut(&join(prefix, "fc1"), f);
        self.fc2.visit_mut(&join(prefix, "fc2"), f);
    }

    fn set_training(&mut self, _training: bool) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::module::ModuleExt;
    use tessera_tensor::{Cpu, Tensor};

    #[test]
    fn names_and_shapes() {
        let mlp = Mlp::new(4, 16, 3, DType::F32, &mut Rng::new(0), &Cpu).unwrap();
        let names: alloc::vec::Vec<_> = mlp.named_params().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]);
        let x = Var::constant(Tensor::ones(&[2, 5, 4], DType::F32, &Cpu).unwrap());
        assert_eq!(mlp.forward(&x).unwrap().shape(), [2, 5, 3]);
        let g = gelu(&Var::constant(
            Tensor::from_vec(vec![1.0f64], &[1], &Cpu).unwrap(),
        ));
        let g = g.unwrap().value().to_vec::<f64>().unwrap()[0];
        assert!((g - 0.841_344_746_068_542_9).abs() < 1e-12, "{g}");
    }
}
