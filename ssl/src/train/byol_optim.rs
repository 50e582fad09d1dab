//! The optimizer of BYOL's online network: LARS, as the paper, or SGD with momentum, which
//! small-image BYOL recipes (CIFAR-style ResNets at batch 128–512) commonly use instead.

use tessera_nn::checkpoint::StateDict;
use tessera_nn::optim::{Lars, LarsConfig, Optimizer, ParamGroup, Sgd, SgdConfig};
use tessera_tensor::{Backend, Tensor};

/// Which optimizer [`ByolTrainer`](super::ByolTrainer) builds. Both get the same two
/// parameter groups: weights with `weight_decay`, biases and BatchNorm parameters without (for
/// LARS also without the trust-ratio adaptation).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ByolOptimizer {
    /// LARS as deepmind-research's BYOL (`add_weight_decay → scale_by_lars → scale(-lr)`).
    Lars(LarsConfig),
    /// `torch.optim.SGD` (coupled weight decay, momentum buffer).
    Sgd(SgdConfig),
}

impl Default for ByolOptimizer {
    /// BYOL's: LARS with momentum 0.9 and trust coefficient 1e-3.
    fn default() -> Self {
        ByolOptimizer::Lars(LarsConfig::default())
    }
}

impl ByolOptimizer {
    /// The optimizer over `groups`.
    pub(crate) fn build<B: Backend>(
        self,
        groups: alloc::vec::Vec<ParamGroup>,
    ) -> tessera_nn::Result<OnlineOptimizer<B>> {
        Ok(match self {
            ByolOptimizer::Lars(c) => OnlineOptimizer::Lars(Lars::new(groups, c)?),
            ByolOptimizer::Sgd(c) => OnlineOptimizer::Sgd(Sgd::new(groups, c)?),
        })
    }
}

/// The built optimizer: one of the two, behind the [`Optimizer`] trait.
#[derive(Clone, Debug)]
pub(crate) enum OnlineOptimizer<B: Backend> {
    Lars(Lars<B>),
    Sgd(Sgd<B>),
}

impl<B: Backend> OnlineOptimizer<B> {
    fn inner(&self) -> &dyn Optimizer<B> {
        match self {
            OnlineOptimizer::Lars(o) => o,
            OnlineOptimizer::Sgd(o) => o,
        }
    }

    fn inner_mut(&mut self) -> &mut dyn Optimizer<B> {
        match self {
            OnlineOptimizer::Lars(o) => o,
            OnlineOptimizer::Sgd(o) => o,
        }
    }
}

impl<B: Backend> Optimizer<B> for OnlineOptimizer<B> {
    fn groups(&self) -> &[ParamGroup] {
        self.inner().groups()
    }

    fn groups_mut(&mut self) -> &mut [ParamGroup] {
        self.inner_mut().groups_mut()
    }

    fn step_some(
        &mut self,
        params: &mut [Tensor<B>],
        grads: &[Option<Tensor<B>>],
    ) -> tessera_nn::Result<()> {
        self.inner_mut().step_some(params, grads)
    }

    fn state_dict(&self) -> StateDict<B> {
        self.inner().state_dict()
    }

    fn load_state_dict(&mut self, state: &StateDict<B>) -> tessera_nn::Result<()> {
        self.inner_mut().load_state_dict(state)
    }
}
