//! ResNet (torchvision: `torchvision.models.resnet`), with torchvision's parameter names so
//! that a torchvision state dict loads as is:
//!
//! ```text
//! conv1.weight, bn1.{weight,bias,running_mean,running_var,num_batches_tracked}
//! layer{1..4}.{i}.conv{1,2[,3]}.weight, layer{1..4}.{i}.bn{1,2[,3]}.*
//! layer{1..4}.0.downsample.0.weight (1×1 conv), layer{1..4}.0.downsample.1.* (BN)
//! fc.weight, fc.bias
//! ```
//!
//! - [`BlockKind::Bottleneck`] (ResNet-50): 1×1 → 3×3 → 1×1 (×4 channels). This is ResNet
//!   **v1.5**: the stride sits on the 3×3 conv (`conv2`), not on the first 1×1.
//! - [`BlockKind::Basic`] (ResNet-18): 3×3 → 3×3, stride on `conv1`.
//! - A block gets `downsample` (1×1 conv with the block's stride, then BN) when its stride is
//!   not 1 or its input channels differ from its output channels.
//! - Initialization as torchvision: every conv `kaiming_normal_(mode="fan_out",
//!   nonlinearity="relu")` without bias, BN weight 1 and bias 0, `fc` PyTorch's default
//!   Linear init; with `zero_init_residual` the last BN of each block starts at weight 0.
//!   [`ConvInit::PyTorchDefault`] keeps `nn.Conv2d`'s own default instead
//!   (`kaiming_uniform_(a=sqrt(5))`), as the common CIFAR ResNets written from `nn.Conv2d`
//!   without an init loop do.
//! - [`ResNetConfig::small_stem`]: for 28–32 px inputs (CIFAR, Fashion-MNIST), `conv1` is a
//!   3×3 stride-1 conv (padding 1) and there is no max-pool, as in the SSL benchmarks'
//!   CIFAR ResNets; names are unchanged.
//! - [`ResNetConfig::num_classes`] = 0 means no `fc`: [`ResNet::forward`] then returns the
//!   pooled features (what DINO/BYOL do with `fc = nn.Identity()`). Setting `fc` to `None`
//!   later has the same effect.

use crate::init::{self, FanMode, Nonlinearity};
use crate::layers::{BatchNorm, Conv2d, Linear, MaxPool2d};
use crate::module::{join, Entry, EntryMut, Module, Param};
use crate::Result;
use alloc::format;
use alloc::vec::Vec;
use tessera_autograd::Var;
use tessera_tensor::{arg_err, Backend, ConvOptions, DType, Rng};

/// torchvision's two residual blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockKind {
    /// `BasicBlock` (expansion 1): ResNet-18/34.
    Basic,
    /// `Bottleneck` (expansion 4): ResNet-50/101/152.
    Bottleneck,
}

impl BlockKind {
    /// Output channels / `planes`.
    pub fn expansion(self) -> usize {
        match self {
            BlockKind::Basic => 1,
            BlockKind::Bottleneck => 4,
        }
    }
}

/// How the convolutions' weights are drawn.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ConvInit {
    /// torchvision's `kaiming_normal_(mode="fan_out", nonlinearity="relu")`: Normal(0,
    /// sqrt(2 / (out_channels · kh · kw))).
    #[default]
    Torchvision,
    /// `nn.Conv2d`'s default, `kaiming_uniform_(a=sqrt(5))`: Uniform(±1/sqrt(in_channels ·
    /// kh · kw)), about 2.4 times narrower than torchvision's at a 3×3 conv with as many
    /// inputs as outputs. What a ResNet built from `nn.Conv2d` without torchvision's init
    /// loop starts from (the usual CIFAR ResNets).
    PyTorchDefault,
}

/// The architecture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResNetConfig {
    pub block: BlockKind,
    /// Blocks per stage (`[2, 2, 2, 2]` for ResNet-18, `[3, 4, 6, 3]` for ResNet-50).
    pub layers: [usize; 4],
    /// Outputs of `fc`; 0 means no `fc` (the model returns its features).
    pub num_classes: usize,
    /// Input channels of `conv1` (3 for RGB, 1 for grayscale).
    pub in_channels: usize,
    /// 3×3 stride-1 `conv1` and no max-pool, for small images.
    pub small_stem: bool,
    /// Start the last BN of every block at weight 0 (the block is then the identity).
    pub zero_init_residual: bool,
    /// Channels of `conv1` and the `planes` of `layer1` (64 in torchvision); stage `i` has
    /// `base_channels · 2^i` planes. Smaller values make the narrow ResNets of small-image
    /// recipes (e.g. 16 for a 0.7M-parameter ResNet-18 layout).
    pub base_channels: usize,
    /// How the conv weights are drawn (torchvision's init unless set).
    pub conv_init: ConvInit,
}

impl ResNetConfig {
    /// torchvision's `resnet18(num_classes=...)`.
    pub fn resnet18(num_classes: usize) -> Self {
        ResNetConfig {
            block: BlockKind::Basic,
            layers: [2, 2, 2, 2],
            num_classes,
            in_channels: 3,
            small_stem: false,
            zero_init_residual: false,
            base_channels: 64,
            conv_init: ConvInit::Torchvision,
        }
    }

    /// torchvision's `resnet50(num_classes=...)`.
    pub fn resnet50(num_classes: usize) -> Self {
        ResNetConfig {
            block: BlockKind::Bottleneck,
            layers: [3, 4, 6, 3],
            ..Self::resnet18(num_classes)
        }
    }

    /// Width of the pooled features (`fc.in_features`): `8 · base_channels · expansion`
    /// (512 · expansion at torchvision's width).
    pub fn feature_dim(&self) -> usize {
        8 * self.base_channels * self.block.expansion()
    }
}

/// A conv without bias, initialized as `init` says, or zeros without an `rng` (a model about
/// to be overwritten by a checkpoint).
fn conv<B: Backend>(
    shape: [usize; 4],
    opts: ConvOptions,
    init: ConvInit,
    dtype: DType,
    rng: Option<&mut Rng>,
    backend: &B,
) -> Result<Conv2d<B>> {
    let w = match (rng, init) {
        (Some(rng), ConvInit::Torchvision) => init::kaiming_normal(
            &shape,
            FanMode::FanOut,
            Nonlinearity::Relu,
            dtype,
            rng,
            backend,
        )?,
        (Some(rng), ConvInit::PyTorchDefault) => init::default_weight(&shape, dtype, rng, backend)?,
        (None, _) => init::zeros(&shape, dtype, backend)?,
    };
    Conv2d::from_tensors(w, None, opts)
}

/// One residual block (`BasicBlock` or `Bottleneck`): `convs[i]`/`bns[i]` are `conv{i+1}` /
/// `bn{i+1}`, `downsample` is `(downsample.0, downsample.1)`.
#[derive(Clone, Debug)]
pub struct Block<B: Backend> {
    pub kind: BlockKind,
    pub convs: Vec<Conv2d<B>>,
    pub bns: Vec<BatchNorm<B>>,
    pub downsample: Option<(Conv2d<B>, BatchNorm<B>)>,
}

impl<B: Backend> Block<B> {
    /// torchvision's `block(inplanes, planes, stride, downsample)` with its init.
    pub fn new(
        kind: BlockKind,
        inplanes: usize,
        planes: usize,
        stride: usize,
        dtype: DType,
        rng: &mut Rng,
        backend: &B,
    ) -> Result<Self> {
        let init = ConvInit::Torchvision;
        Self::build(
            kind,
            inplanes,
            planes,
            stride,
            init,
            dtype,
            Some(rng),
            backend,
        )
    }

    /// [`Block::new`] with conv weights drawn as `init` says, or zero when `rng` is `None`.
    #[allow(clippy::too_many_arguments)]
    fn build(
        kind: BlockKind,
        inplanes: usize,
        planes: usize,
        stride: usize,
        init: ConvInit,
        dtype: DType,
        mut rng: Option<&mut Rng>,
        backend: &B,
    ) -> Result<Self> {
        let out = planes * kind.expansion();
        let specs: Vec<([usize; 4], ConvOptions)> = match kind {
            BlockKind::Basic => alloc::vec![
                ([planes, inplanes, 3, 3], ConvOptions::new(stride, 1)),
                ([planes, planes, 3, 3], ConvOptions::new(1, 1)),
            ],
            BlockKind::Bottleneck => alloc::vec![
                ([planes, inplanes, 1, 1], ConvOptions::new(1, 0)),
                ([planes, planes, 3, 3], ConvOptions::new(stride, 1)),
                ([out, planes, 1, 1], ConvOptions::new(1, 0)),
            ],
        };
        let mut convs = Vec::with_capacity(specs.len());
        let mut bns = Vec::with_capacity(specs.len());
        for (shape, opts) in specs {
            convs.push(conv(shape, opts, init, dtype, rng.as_deref_mut(), backend)?);
            bns.push(BatchNorm::new_2d(shape[0], dtype, backend)?);
        }
        let downsample = if stride != 1 || inplanes != out {
            let c = conv(
                [out, inplanes, 1, 1],
                ConvOptions::new(stride, 0),
                init,
                dtype,
                rng,
                backend,
            )?;
            Some((c, BatchNorm::new_2d(out, dtype, backend)?))
        } else {
            None
        };
        Ok(Block {
            kind,
            convs,
            bns,
            downsample,
        })
    }

    /// `relu(bn_k(conv_k(... relu(bn1(conv1(x))))) + identity)`, where identity is `x` or
    /// `downsample(x)`.
    pub fn forward(&mut self, x: &Var<B>) -> tessera_tensor::Result<Var<B>> {
        let mut out = x.clone();
        let last = self.convs.len().saturating_sub(1);
        for (i, (c, bn)) in self.convs.iter().zip(self.bns.iter_mut()).enumerate() {
            out = bn.forward(&c.forward(&out)?)?;
            if i < last {
                out = out.relu()?;
            }
        }
        let identity = match &mut self.downsample {
            Some((c, bn)) => bn.forward(&c.forward(x)?)?,
            None => x.clone(),
        };
        out.add(&identity)?.relu()
    }

    /// [`Block::forward`] in eval mode through `&self` (see [`BatchNorm::forward_eval`]).
    pub fn forward_eval(&self, x: &Var<B>) -> tessera_tensor::Result<Var<B>> {
        let mut out = x.clone();
        let last = self.convs.len().saturating_sub(1);
        for (i, (c, bn)) in self.convs.iter().zip(&self.bns).enumerate() {
            out = bn.forward_eval(&c.forward(&out)?)?;
            if i < last {
                out = out.relu()?;
            }
        }
        let identity = match &self.downsample {
            Some((c, bn)) => bn.forward_eval(&c.forward(x)?)?,
            None => x.clone(),
        };
        out.add(&identity)?.relu()
    }
}

impl<B: Backend> Module<B> for Block<B> {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_, B>)) {
        for (i, (c, bn)) in self.convs.iter().zip(&self.bns).enumerate() {
            c.visit(&join(prefix, &format!("conv{}", i + 1)), f);
            bn.visit(&join(prefix, &format!("bn{}", i + 1)), f);
        }
        if let Some((c, bn)) = &self.downsample {
            c.visit(&join(prefix, "downsample.0"), f);
            bn.visit(&join(prefix, "downsample.1"), f);
        }
    }

    fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, EntryMut<'_, B>)) {
        for (i, (c, bn)) in self.convs.iter_mut().zip(&mut self.bns).enumerate() {
            c.visit_mut(&join(prefix, &format!("conv{}", i + 1)), f);
            bn.visit_mut(&join(prefix, &format!("bn{}", i + 1)), f);
        }
        if let Some((c, bn)) = &mut self.downsample {
            c.visit_mut(&join(prefix, "downsample.0"), f);
            bn.visit_mut(&join(prefix, "downsample.1"), f);
        }
    }

    fn set_training(&mut self, training: bool) {
        self.bns.iter_mut().for_each(|b| b.set_training(training));
        if let Some((_, bn)) = &mut self.downsample {
            bn.set_training(training);
        }
    }
}

/// torchvision's `ResNet`.
#[derive(Clone, Debug)]
pub struct ResNet<B: Backend> {
    pub conv1: Conv2d<B>,
    pub bn1: BatchNorm<B>,
    /// `None` with the small stem.
    pub maxpool: Option<MaxPool2d>,
    /// `layer1` .. `layer4`.
    pub layers: [Vec<Block<B>>; 4],
    /// `None`: no classifier, [`ResNet::forward`] returns the features.
    pub fc: Option<Linear<B>>,
    pub config: ResNetConfig,
}

impl<B: Backend> ResNet<B> {
    /// Builds and initializes the model (in training mode, as PyTorch).
    pub fn new(config: ResNetConfig, dtype: DType, rng: &mut Rng, backend: &B) -> Result<Self> {
        Self::build(config, dtype, Some(rng), backend)
    }

    /// The same model with every parameter zero (BatchNorm weights 1, running statistics
    /// as PyTorch's fresh ones) and no random draws: the cheap start for
    /// `load_state_dict` from a checkpoint, which overwrites every tensor.
    pub fn zeros(config: ResNetConfig, dtype: DType, backend: &B) -> Result<Self> {
        Self::build(config, dtype, None, backend)
    }

    fn build(
        config: ResNetConfig,
        dtype: DType,
        mut rng: Option<&mut Rng>,
        backend: &B,
    ) -> Result<Self> {
        if config.in_channels == 0 || config.layers.contains(&0) || config.base_channels == 0 {
            return Err(arg_err!(
                "ResNet",
                "needs in_channels > 0, base_channels > 0 and at least one block per stage, \
                 got {config:?}"
            )
            .into());
        }
        let (k, opts) = match config.small_stem {
            true => (3, ConvOptions::new(1, 1)),
            false => (7, ConvOptions::new(2, 3)),
        };
        let base = config.base_channels;
        let conv1 = conv(
            [base, config.in_channels, k, k],
            opts,
            config.conv_init,
            dtype,
            rng.as_deref_mut(),
            backend,
        )?;
        let bn1 = BatchNorm::new_2d(base, dtype, backend)?;
        let maxpool = (!config.small_stem).then(|| MaxPool2d::new(3, 2, 1));
        let kind = config.block;
        let mut inplanes = base;
        let mut layers: [Vec<Block<B>>; 4] = Default::default();
        for (stage, blocks) in layers.iter_mut().enumerate() {
            let planes = base << stage;
            for i in 0..config.layers[stage] {
                let stride = if stage > 0 && i == 0 { 2 } else { 1 };
                blocks.push(Block::build(
                    kind,
                    inplanes,
                    planes,
                    stride,
                    config.conv_init,
                    dtype,
                    rng.as_deref_mut(),
                    backend,
                )?);
                inplanes = planes * kind.expansion();
            }
        }
        let fc = match config.num_classes {
            0 => None,
            n => Some(match rng {
                Some(rng) => Linear::new(inplanes, n, true, dtype, rng, backend)?,
                None => Linear {
                    weight: Param::new(init::zeros(&[n, inplanes], dtype, backend)?),
                    bias: Some(Param::new(init::zeros(&[n], dtype, backend)?)),
                },
            }),
        };
        let mut model = ResNet {
            conv1,
            bn1,
            maxpool,
            layers,
            fc,
            config,
        };
        if config.zero_init_residual {
            for block in model.layers.iter_mut().flatten() {
                if let Some(w) = block.bns.last_mut().and_then(|bn| bn.weight.as_mut()) {
                    w.set(init::zeros(w.value().shape(), dtype, backend)?)?;
                }
            }
        }
        Ok(model)
    }

    /// Width of [`ResNet::forward_features`]'s output.
    pub fn feature_dim(&self) -> usize {
        self.config.feature_dim()
    }

    /// `x [n, in_channels, h, w]` -> pooled features `[n, 512 · expansion]` (after the global
    /// average pool, before `fc`): what self-supervised methods use.
    pub fn forward_features(&mut self, x: &Var<B>) -> tessera_tensor::Result<Var<B>> {
        let mut h = self.bn1.forward(&self.conv1.forward(x)?)?.relu()?;
        if let Some(pool) = &self.maxpool {
            h = pool.forward(&h)?;
        }
        for block in self.layers.iter_mut().flatten() {
            h = block.forward(&h)?;
        }
        h.adaptive_avg_pool2d([1, 1])?.flatten(1, 3)
    }

    /// Logits `[n, num_classes]`, or the features when there is no `fc`.
    pub fn forward(&mut self, x: &Var<B>) -> tessera_tensor::Result<Var<B>> {
        let h = self.forward_features(x)?;
        match &self.fc {
            Some(fc) => fc.forward(&h),
            None => Ok(h),
        }
    }

    /// [`ResNet::forward_features`] in eval mode through `&self` (PyTorch: `model.eval()`
    /// then the same call): BatchNorm uses its running statistics and updates nothing,
    /// whatever mode the model is in.
    pub fn forward_features_eval(&self, x: &Var<B>) -> tessera_tensor::Result<Var<B>> {
        let mut h = self.bn1.forward_eval(&self.conv1.forward(x)?)?.relu()?;
        if let Some(pool) = &self.maxpool {
            h = pool.forward(&h)?;
        }
        for block in self.layers.iter().flatten() {
            h = block.forward_eval(&h)?;
        }
        h.adaptive_avg_pool2d([1, 1])?.flatten(1, 3)
    }

    /// [`ResNet::forward`] in eval mode through `&self`.
    pub fn forward_eval(&self, x: &Var<B>) -> tessera_tensor::Result<Var<B>> {
        let h = self.forward_features_eval(x)?;
        match &self.fc {
            Some(fc) => fc.forward(&h),
            None => Ok(h),
        }
    }
}

impl<B: Backend> Module<B> for ResNet<B> {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_, B>)) {
        self.conv1.visit(&join(prefix, "conv1"), f);
        self.bn1.visit(&join(prefix, "bn1"), f);
        for (stage, blocks) in self.layers.iter().enumerate() {
            for (i, block) in blocks.iter().enumerate() {
                block.visit(&join(prefix, &format!("layer{}.{i}", stage + 1)), f);
            }
        }
        if let Some(fc) = &self.fc {
            fc.visit(&join(prefix, "fc"), f);
        }
    }

    fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, EntryMut<'_, B>)) {
        self.conv1.visit_mut(&join(prefix, "conv1"), f);
        self.bn1.visit_mut(&join(prefix, "bn1"), f);
        for (stage, blocks) in self.layers.iter_mut().enumerate() {
            for (i, block) in blocks.iter_mut().enumerate() {
                block.visit_mut(&join(prefix, &format!("layer{}.{i}", stage + 1)), f);
            }
        }
        if let Some(fc) = &mut self.fc {
            fc.visit_mut(&join(prefix, "fc"), f);
        }
    }

    fn set_training(&mut self, training: bool) {
        self.bn1.set_training(training);
        for block in self.layers.iter_mut().flatten() {
            block.set_training(training);
        }
    }
}

/// torchvision's `resnet50(num_classes=num_classes)` (25.6M parameters with 1000 classes).
pub fn resnet50<B: Backend>(
    num_classes: usize,
    dtype: DType,
    rng: &mut Rng,
    backend: &B,
) -> Result<ResNet<B>> {
    ResNet::new(ResNetConfig::resnet50(num_classes), dtype, rng, backend)
}

/// torchvision's `resnet18(num_classes=num_classes)` (11.7M parameters with 1000 classes).
pub fn resnet18<B: Backend>(
    num_classes: usize,
    dtype: DType,
    rng: &mut Rng,
    backend: &B,
) -> Result<ResNet<B>> {
    ResNet::new(ResNetConfig::resnet18(num_classes), dtype, rng, backend)
}

#[cfg(test)]
mod tests;
