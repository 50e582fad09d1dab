//! The transformer MLP (DINO / timm `Mlp`: `fc1`, GELU, `fc2`) and the stateless activation
//! helpers [`gelu`], [`gelu_with`] and [`relu`] (PyTorch: `nn.GELU()`,
//! `nn.GELU(approximate='tanh')`, `nn.ReLU()`; they have no state, so they are free functions).

use super::Linear;
use crate::module::{join, Entry, EntryMut, Module};
use crate::Result;
use tessera_autograd::Var;
use tessera_tensor::{Backend, DType, GeluApproximate, Rng};

/// Exact (erf) GELU, `x/2 · (1 + erf(x/√2))` (PyTorch: `nn.GELU()`, `approximate='none'`).
pub fn gelu<B: Backend>(x: &Var<B>) -> tessera_tensor::Result<Var<B>> {
    x.gelu()
}

/// GELU in the form `approximate` selects (PyTorch: `nn.GELU(approximate=...)`):
/// [`GeluApproximate::None`] is [`gelu`], [`GeluApproximate::Tanh`] is
/// `x/2 · (1 + tanh(√(2/π) · (x + 0.044715 x³)))`.
pub fn gelu_with<B: Backend>(
    x: &Var<B>,
    approximate: GeluApproximate,
) -> tessera_tensor::Result<Var<B>> {
    x.gelu_with(approximate)
}

/// `max(x, 0)` (PyTorch: `nn.ReLU()`).
pub fn relu<B: Backend>(x: &Var<B>) -> tessera_tensor::Result<Var<B>> {
    x.relu()
}

/// `fc2(gelu(fc1(x)))`; DINO's ViT uses `hidden = 4 · dim`, no dropout and the exact GELU
/// (`gelu` = [`GeluApproximate::None`], the default; [`Mlp::with_gelu`] selects the tanh form).
#[derive(Clone, Debug)]
pub struct Mlp<B: Backend> {
    pub fc1: Linear<B>,
    pub fc2: Linear<B>,
    /// Which GELU sits between the layers (PyTorch: `act_layer=partial(nn.GELU,
    /// approximate=...)`). Not a parameter: checkpoints do not store it.
    pub gelu: GeluApproximate,
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
            gelu: GeluApproximate::None,
        })
    }

    /// The same MLP with the GELU form `approximate` (builder style).
    pub fn with_gelu(mut self, approximate: GeluApproximate) -> Self {
        self.gelu = approximate;
        self
    }

    /// `x [.., in] -> [.., out]`.
    pub fn forward(&self, x: &Var<B>) -> tessera_tensor::Result<Var<B>> {
        self.fc2
            .forward(&gelu_with(&self.fc1.forward(x)?, self.gelu)?)
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

    #[test]
    fn tanh_gelu_is_selectable() {
        let one = Var::constant(Tensor::from_vec(vec![1.0f64], &[1], &Cpu).unwrap());
        let g = gelu_with(&one, GeluApproximate::Tanh).unwrap();
        let g = g.value().to_vec::<f64>().unwrap()[0];
        // 0.5 · (1 + tanh(√(2/π) · 1.044715))
        assert!((g - 0.841_191_990_608_276_8).abs() < 1e-12, "{g}");
        let exact = Mlp::new(4, 16, 3, DType::F64, &mut Rng::new(0), &Cpu).unwrap();
        assert_eq!(exact.gelu, GeluApproximate::None);
        let approx = exact.clone().with_gelu(GeluApproximate::Tanh);
        let x = Var::constant(
            Tensor::randn(&[2, 4], 0.0, 2.0, DType::F64, &mut Rng::new(1), &Cpu).unwrap(),
        );
        let (ye, ya) = (exact.forward(&x).unwrap(), approx.forward(&x).unwrap());
        let by_hand = approx
            .fc2
            .forward(&approx.fc1.forward(&x).unwrap().gelu_tanh().unwrap())
            .unwrap();
        assert_eq!(
            ya.value().to_vec::<f64>().unwrap(),
            by_hand.value().to_vec::<f64>().unwrap()
        );
        assert_ne!(
            ye.value().to_vec::<f64>().unwrap(),
            ya.value().to_vec::<f64>().unwrap()
        );
    }
}
