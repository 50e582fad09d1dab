//! BYOL's projector and predictor: `Linear → BatchNorm1d → ReLU → Linear`, as DeepMind's `MLP`
//! in `byol/utils/networks.py` (whose last `hk.Linear` has `with_bias=False`). lucidrains'
//! `MLP` in `byol-pytorch` keeps a bias there; [`MlpHeadConfig::last_bias`] selects it.

use tessera_autograd::Var;
use tessera_nn::layers::{BatchNorm, Linear};
use tessera_nn::module::{join, Entry, EntryMut, Module};
use tessera_tensor::{arg_err, Backend, DType, Result, Rng};

/// Sizes of an [`MlpHead`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MlpHeadConfig {
    /// Input features (the backbone's 2048 for a ResNet-50 projector; the projection size for
    /// the predictor).
    pub in_dim: usize,
    /// Hidden width (4096).
    pub hidden_dim: usize,
    /// Output size, the projection size (256).
    pub out_dim: usize,
    /// Whether the last Linear has a bias. `false` in DeepMind's official code (`MLP` in
    /// `byol/utils/networks.py`), so its parameter layout loads strictly; `true` gives
    /// lucidrains' `byol-pytorch` layout (`net.3.bias`).
    pub last_bias: bool,
}

impl MlpHeadConfig {
    /// BYOL's sizes: hidden 4096, output 256, no bias in the last Linear (DeepMind's).
    pub fn new(in_dim: usize) -> Self {
        MlpHeadConfig {
            in_dim,
            hidden_dim: 4096,
            out_dim: 256,
            last_bias: false,
        }
    }
}

/// BYOL's projector / predictor MLP, `nn.Sequential(Linear(in, hidden), BatchNorm1d(hidden),
/// ReLU, Linear(hidden, out, bias=False))`, with its PyTorch names: `net.0.{weight,bias}`,
/// `net.1.{weight,bias,running_mean,running_var,num_batches_tracked}`, `net.3.weight` (plus
/// `net.3.bias` only with [`MlpHeadConfig::last_bias`]; the ReLU is `net.2`). PyTorch's default initialization (Linear: uniform ±1/√in; BatchNorm:
/// weight 1, bias 0, momentum 0.1, eps 1e-5).
///
/// The same struct serves as projector and predictor (BYOL's are the same shape); the online
/// network has both, the target network only a projector.
#[derive(Clone, Debug)]
pub struct MlpHead<B: Backend> {
    pub fc1: Linear<B>,
    pub bn: BatchNorm<B>,
    pub fc2: Linear<B>,
}

impl<B: Backend> MlpHead<B> {
    /// A freshly initialized head (in training mode).
    pub fn new(
        config: MlpHeadConfig,
        dtype: DType,
        rng: &mut Rng,
        backend: &B,
    ) -> tessera_nn::Result<Self> {
        let c = config;
        if c.in_dim == 0 || c.hidden_dim == 0 || c.out_dim == 0 {
            return Err(arg_err!("MlpHead::new", "every size must be positive: {c:?}").into());
        }
        let fc1 = Linear::new(c.in_dim, c.hidden_dim, true, dtype, rng, backend)?;
        let bn = BatchNorm::new_1d(c.hidden_dim, dtype, backend)?;
        let fc2 = Linear::new(c.hidden_dim, c.out_dim, c.last_bias, dtype, rng, backend)?;
        Ok(MlpHead { fc1, bn, fc2 })
    }

    /// `x [n, in] -> [n, out]`. In training mode the BatchNorm uses (and records) the batch
    /// statistics, hence `&mut self`.
    pub fn forward(&mut self, x: &Var<B>) -> Result<Var<B>> {
        let h = self.fc1.forward(x)?;
        let h = self.bn.forward(&h)?.relu()?;
        self.fc2.forward(&h)
    }
}

impl<B: Backend> Module<B> for MlpHead<B> {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_, B>)) {
        let net = join(prefix, "net");
        self.fc1.visit(&join(&net, "0"), f);
        self.bn.visit(&join(&net, "1"), f);
        self.fc2.visit(&join(&net, "3"), f);
    }

    fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, EntryMut<'_, B>)) {
        let net = join(prefix, "net");
        self.fc1.visit_mut(&join(&net, "0"), f);
        self.bn.visit_mut(&join(&net, "1"), f);
        self.fc2.visit_mut(&join(&net, "3"), f);
    }

    fn set_training(&mut self, training: bool) {
        self.fc1.set_training(training);
        self.bn.set_training(training);
        self.fc2.set_training(training);
    }
}
