//! `Linear`: `y = x Wᵀ + b` (PyTorch: `nn.Linear`, parameters `weight [out, in]`, `bias [out]`).
//! The reference example of a layer: copy its shape when adding one.

use crate::init;
use crate::module::{join, Entry, EntryMut, Module, Param};
use crate::Result;
use tessera_autograd::Var;
use tessera_tensor::{Backend, DType, Rng};

/// A fully connected layer.
#[derive(Clone, Debug)]
pub struct Linear<B: Backend> {
    pub weight: Param<B>,
    pub bias: Option<Param<B>>,
}

impl<B: Backend> Linear<B> {
    /// PyTorch's default initialization: weight `kaiming_uniform_(a=√5)`, i.e.
    /// U(-1/√in, 1/√in), and the bias U(-1/√in, 1/√in).
    pub fn new(
        in_features: usize,
        out_features: usize,
        bias: bool,
        dtype: DType,
        rng: &mut Rng,
        backend: &B,
    ) -> Result<Self> {
        let shape = [out_features, in_features];
        let weight = Param::new(init::default_weight(&shape, dtype, rng, backend)?);
        let bias = if bias {
            Some(Param::new(init::default_bias(&shape, dtype, rng, backend)?))
        } else {
            None
        };
        Ok(Linear { weight, bias })
    }

    /// Input features.
    pub fn in_features(&self) -> usize {
        self.weight.value().shape()[1]
    }

    /// Output features.
    pub fn out_features(&self) -> usize {
        self.weight.value().shape()[0]
    }

    /// `x [.., in] -> [.., out]`.
    pub fn forward(&self, x: &Var<B>) -> tessera_tensor::Result<Var<B>> {
        let shape = x.value().shape().to_vec();
        if shape.len() <= 2 {
            return self.forward_2d(x);
        }
        // `[.., in]` runs as one `[rows, in]` GEMM, like torch's addmm path: the weight is
        // packed once, and its gradient is one `x^T dy` product instead of a batch of
        // products summed afterwards.
        let (lead, k) = shape.split_at(shape.len() - 1);
        let rows: usize = lead.iter().product();
        let y = self.forward_2d(&x.reshape(&[rows, k[0]])?)?;
        let mut out_shape = lead.to_vec();
        out_shape.push(y.value().shape()[1]);
        y.reshape(&out_shape)
    }

    fn forward_2d(&self, x: &Var<B>) -> tessera_tensor::Result<Var<B>> {
        let wt = self.weight.var().t()?;
        match &self.bias {
            // addmm: the CPU backend adds the bias inside the GEMM (same bits as `+ b`).
            Some(b) if x.rank() == 2 => x.matmul_bias(&wt, b.var()),
            Some(b) => x.matmul(&wt)?.add(b.var()),
            None => x.matmul(&wt),
        }
    }
}

impl<B: Backend> Module<B> for Linear<B> {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_, B>)) {
        f(&join(prefix, "weight"), Entry::Param(&self.weight));
        if let Some(b) = &self.bias {
            f(&join(prefix, "bias"), Entry::Param(b));
        }
    }

    fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, EntryMut<'_, B>)) {
        f(&join(prefix, "weight"), EntryMut::Param(&mut self.weight));
        if let Some(b) = &mut self.bias {
            f(&join(prefix, "bias"), EntryMut::Param(b));
        }
    }

    fn set_training(&mut self, _training: bool) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::module::ModuleExt;
    use tessera_tensor::{Cpu, Tensor};

    #[test]
    fn forward_names_and_grads() {
        let mut rng = Rng::new(0);
        let lin = Linear::new(3, 2, true, DType::F64, &mut rng, &Cpu).unwrap();
        let names: alloc::vec::Vec<_> = lin.named_params().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["weight", "bias"]);
        let x = Var::constant(Tensor::ones(&[4, 3], DType::F64, &Cpu).unwrap());
        let y = lin.forward(&x).unwrap().sum_all().unwrap();
        let grads = y.backward().unwrap();
        // d(sum)/d(bias) = number of rows.
        assert_eq!(
            lin.bias
                .as_ref()
                .unwrap()
                .grad(&grads)
                .unwrap()
                .to_vec::<f64>()
                .unwrap(),
            [4.0, 4.0]
        );
        assert_eq!(lin.grads_by_name(&grads).len(), 2);
    }
}
