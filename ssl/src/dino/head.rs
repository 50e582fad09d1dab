//! [`DinoHead`] (DINO's `DINOHead` in `vision_transformer.py`), the freezing of its last
//! layer during the first epochs (`utils.cancel_gradients_last_layer`) and the multi-crop
//! forward of `utils.MultiCropWrapper`.

use alloc::string::String;
use alloc::vec::Vec;
use core::ops::Range;
use tessera_autograd::{Gradients, Var};
use tessera_nn::checkpoint::StateDict;
use tessera_nn::init;
use tessera_nn::layers::{Linear, WeightNormLinear};
use tessera_nn::module::{join, Entry, EntryMut, Module, Param};
use tessera_tensor::{arg_err, Backend, DType, Result, Rng};

/// `F.normalize(x, p=2, dim=-1, eps)`: `x / max(‖x‖₂, eps)` over the last axis.
///
/// Computed as `x / sqrt(max(Σx², eps²))`: the same value, and for an all-zero row a finite
/// gradient (`grad / eps`, as PyTorch) where clamping after the `sqrt` would give `0·∞`.
/// `eps²` must be representable in the dtype (1e-24 is, in F32 and F64; not in F16).
pub fn l2_normalize<B: Backend>(x: &Var<B>, eps: f64) -> Result<Var<B>> {
    let sq = x.square()?.sum(&[-1], true)?;
    let norm = sq.clamp(eps * eps, f64::INFINITY)?.sqrt()?;
    x.div(&norm)
}

/// Hyper-parameters of [`DinoHead`] (the arguments of `DINOHead.__init__`; DINO's BatchNorm
/// option `use_bn`, off by default, is not provided).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DinoHeadConfig {
    /// Input features (the backbone's embedding size).
    pub in_dim: usize,
    /// `K`, the number of prototypes (65536 in DINO).
    pub out_dim: usize,
    /// Fix the last layer's `weight_g` at 1 (DINO's default, and its advice for stability).
    pub norm_last_layer: bool,
    /// Linear layers of the MLP (3); 0 counts as 1.
    pub nlayers: usize,
    /// Width of the hidden layers (2048).
    pub hidden_dim: usize,
    /// Width of the bottleneck before the L2 normalization (256).
    pub bottleneck_dim: usize,
}

impl DinoHeadConfig {
    /// DINO's defaults: 3 layers, hidden 2048, bottleneck 256, `norm_last_layer`.
    pub fn new(in_dim: usize, out_dim: usize) -> Self {
        DinoHeadConfig {
            in_dim,
            out_dim,
            norm_last_layer: true,
            nlayers: 3,
            hidden_dim: 2048,
            bottleneck_dim: 256,
        }
    }
}

/// DINO's projection head: an MLP with GELU to a bottleneck, L2 normalization, and a
/// weight-normalized linear layer to `K` logits.
///
/// Parameter names are PyTorch's: the MLP is an `nn.Sequential` whose Linears sit at even
/// indices (`mlp.0`, `mlp.2`, `mlp.4` for 3 layers; GELUs in between), or a single Linear
/// `mlp` for `nlayers = 1`; then `last_layer.weight_g` and `last_layer.weight_v`.
///
/// Initialization as DINO: MLP weights truncated normal (std 0.02, bounds ±2), biases 0; the
/// last layer keeps PyTorch's default Linear init for `v` and has `g = 1`, frozen when
/// `norm_last_layer` (a frozen parameter gets no gradient and should not be given to the
/// optimizer, as DINO's `get_params_groups` skips it).
#[derive(Clone, Debug)]
pub struct DinoHead<B: Backend> {
    /// The MLP's Linears in order (GELU between consecutive ones).
    pub mlp: Vec<Linear<B>>,
    /// `nn.utils.weight_norm(nn.Linear(bottleneck, out, bias=False))`.
    pub last_layer: WeightNormLinear<B>,
}

impl<B: Backend> DinoHead<B> {
    /// A freshly initialized head.
    pub fn new(
        config: DinoHeadConfig,
        dtype: DType,
        rng: &mut Rng,
        backend: &B,
    ) -> tessera_nn::Result<Self> {
        let c = config;
        if c.in_dim == 0 || c.out_dim == 0 || c.bottleneck_dim == 0 || c.hidden_dim == 0 {
            return Err(
                arg_err!("DinoHead::new", "every dimension must be positive: {c:?}").into(),
            );
        }
        let nlayers = c.nlayers.max(1);
        let mut dims = Vec::with_capacity(nlayers + 1);
        dims.push(c.in_dim);
        dims.extend(core::iter::repeat_n(c.hidden_dim, nlayers - 1));
        dims.push(c.bottleneck_dim);
        let mut mlp = Vec::with_capacity(nlayers);
        for w in dims.windows(2) {
            let weight = init::dino_trunc_normal(&[w[1], w[0]], dtype, rng, backend)?;
            let bias = init::zeros(&[w[1]], dtype, backend)?;
            mlp.push(Linear {
                weight: Param::new(weight),
                bias: Some(Param::new(bias)),
            });
        }
        // The last layer is created after DINO's `self.apply(self._init_weights)`, so it keeps
        // nn.Linear's default init; weight_norm then sets g = ‖v‖, which DINO overwrites with 1.
        let last_layer = WeightNormLinear::new(
            c.bottleneck_dim,
            c.out_dim,
            c.norm_last_layer,
            dtype,
            rng,
            backend,
        )?;
        Ok(DinoHead { mlp, last_layer })
    }

    /// The bottleneck features `x [n, in_dim] -> [n, bottleneck_dim]`: the MLP's output
    /// before the L2 normalization and the last layer (`self.mlp(x)` in DINO's
    /// `DINOHead.forward`), e.g. for a k-NN or a linear probe on the head's embedding.
    pub fn forward_bottleneck(&self, x: &Var<B>) -> Result<Var<B>> {
        let mut h = x.clone();
        for (i, lin) in self.mlp.iter().enumerate() {
            if i > 0 {
                h = h.gelu()?;
            }
            h = lin.forward(&h)?;
        }
        Ok(h)
    }

    /// `x [n, in_dim] -> [n, out_dim]`: MLP ([`DinoHead::forward_bottleneck`]),
    /// `F.normalize(dim=-1, eps=1e-12)`, last layer.
    pub fn forward(&self, x: &Var<B>) -> Result<Var<B>> {
        let h = l2_normalize(&self.forward_bottleneck(x)?, 1e-12)?;
        self.last_layer.forward(&h)
    }

    /// The MLP's `nn.Sequential` name of Linear `i`: `mlp.{2i}`, or `mlp` for a single layer.
    fn mlp_name(&self, prefix: &str, i: usize) -> String {
        let mlp = join(prefix, "mlp");
        if self.mlp.len() == 1 {
            mlp
        } else {
            join(&mlp, &alloc::format!("{}", 2 * i))
        }
    }
}

impl<B: Backend> Module<B> for DinoHead<B> {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_, B>)) {
        for (i, lin) in self.mlp.iter().enumerate() {
            lin.visit(&self.mlp_name(prefix, i), f);
        }
        self.last_layer.visit(&join(prefix, "last_layer"), f);
    }

    fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, EntryMut<'_, B>)) {
        for i in 0..self.mlp.len() {
            let name = self.mlp_name(prefix, i);
            self.mlp[i].visit_mut(&name, f);
        }
        self.last_layer.visit_mut(&join(prefix, "last_layer"), f);
    }

    fn set_training(&mut self, _training: bool) {}
}

/// True while DINO keeps the last layer frozen: `epoch < freeze_last_layer` (DINO default: 1,
/// the first epoch only).
pub fn last_layer_frozen(epoch: usize, freeze_last_layer: usize) -> bool {
    epoch < freeze_last_layer
}

/// DINO's `cancel_gradients_last_layer(epoch, model, freeze_last_layer)` on gradients by
/// name (as `ModuleExt::grads_by_name` returns them): during the first `freeze_last_layer`
/// epochs, drops the gradient of every parameter whose name contains `last_layer`. The
/// optimizers skip a parameter without a gradient (PyTorch's `p.grad = None`), so its value
/// *and* its optimizer state stay untouched. Returns the number of gradients dropped.
pub fn cancel_gradients_last_layer<B: Backend>(
    epoch: usize,
    grads: &mut StateDict<B>,
    freeze_last_layer: usize,
) -> usize {
    if !last_layer_frozen(epoch, freeze_last_layer) {
        return 0;
    }
    let before = grads.len();
    grads.retain(|name, _| !name.contains("last_layer"));
    before - grads.len()
}

/// The same on the [`Gradients`] of a backward pass, finding the last-layer parameters of
/// `model` by name. Returns the number of gradients dropped.
pub fn cancel_gradients_last_layer_of<B: Backend, M: Module<B> + ?Sized>(
    epoch: usize,
    model: &M,
    grads: &mut Gradients<B>,
    freeze_last_layer: usize,
) -> usize {
    if !last_layer_frozen(epoch, freeze_last_layer) {
        return 0;
    }
    let mut dropped = 0;
    model.visit("", &mut |name, e| {
        if let Entry::Param(p) = e {
            if name.contains("last_layer") && grads.remove(p.var()).is_some() {
                dropped += 1;
            }
        }
    });
    dropped
}

/// The groups of consecutive crops with the same per-sample shape (everything but the batch
/// axis), as index ranges: DINO's `MultiCropWrapper` groups consecutive inputs by
/// `unique_consecutive` of their last dimension (crops are square, so this is the same).
pub fn crop_groups<S: AsRef<[usize]>>(shapes: &[S]) -> Vec<Range<usize>> {
    let mut groups: Vec<Range<usize>> = Vec::new();
    for (i, s) in shapes.iter().enumerate() {
        let s = s.as_ref();
        let tail = s.get(1..).unwrap_or(&[]);
        match groups.last_mut() {
            Some(g) if shapes[g.start].as_ref().get(1..).unwrap_or(&[]) == tail => g.end = i + 1,
            _ => groups.push(i..i + 1),
        }
    }
    groups
}

/// DINO's `MultiCropWrapper.forward`: the crops (each `[B, ..]`, the global views first) are
/// grouped into runs of consecutive crops of the same size ([`crop_groups`]); each run is
/// concatenated along the batch axis and goes through `backbone` in one call; the features
/// of all runs are concatenated (in crop order) and go through `head` once. With DINO's 2
/// global + 8 local crops the backbone runs twice and the output rows are `[crop 0 of every
/// image, crop 1 of every image, ...]`, the layout [`DinoLoss`](super::DinoLoss) chunks.
pub fn multi_crop_forward<B, F, H>(crops: &[Var<B>], mut backbone: F, head: H) -> Result<Var<B>>
where
    B: Backend,
    F: FnMut(&Var<B>) -> Result<Var<B>>,
    H: FnOnce(&Var<B>) -> Result<Var<B>>,
{
    if crops.is_empty() {
        return Err(arg_err!("multi_crop_forward", "no crops"));
    }
    let shapes: Vec<&[usize]> = crops.iter().map(Var::shape).collect();
    let mut features = Vec::new();
    for g in crop_groups(&shapes) {
        let x = if g.len() == 1 {
            crops[g.start].clone()
        } else {
            Var::cat(&crops[g], 0)?
        };
        features.push(backbone(&x)?);
    }
    let features = if features.len() == 1 {
        features.pop().expect("one group")
    } else {
        Var::cat(&features, 0)?
    };
    head(&features)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_nn::ModuleExt;
    use tessera_tensor::{Cpu, Tensor};

    #[test]
    fn names_shapes_and_frozen_g() {
        let mut rng = Rng::new(0);
        let mut c = DinoHeadConfig::new(6, 7);
        c.hidden_dim = 5;
        c.bottleneck_dim = 4;
        let head = DinoHead::new(c, DType::F64, &mut rng, &Cpu).unwrap();
        let names: Vec<String> = head.state_dict().into_keys().collect();
        assert_eq!(
            names,
            [
                "last_layer.weight_g",
                "last_layer.weight_v",
                "mlp.0.bias",
                "mlp.0.weight",
                "mlp.2.bias",
                "mlp.2.weight",
                "mlp.4.bias",
                "mlp.4.weight"
            ]
        );
        let x = Var::constant(Tensor::ones(&[3, 6], DType::F64, &Cpu).unwrap());
        let y = head.forward(&x).unwrap();
        assert_eq!(y.shape(), [3, 7]);
        let mut grads = y.sum_all().unwrap().backward().unwrap();
        let mut by_name = head.grads_by_name(&grads);
        assert!(!by_name.contains_key("last_layer.weight_g")); // frozen
        assert_eq!(by_name.len(), 7);
        assert_eq!(cancel_gradients_last_layer(0, &mut by_name, 1), 1);
        assert_eq!(cancel_gradients_last_layer(1, &mut by_name, 1), 0);
        assert_eq!(cancel_gradients_last_layer_of(2, &head, &mut grads, 2), 0);
        assert_eq!(cancel_gradients_last_layer_of(1, &head, &mut grads, 2), 1);
        assert_eq!(head.grads_by_name(&grads).len(), 6);
        c.nlayers = 1;
        let one = DinoHead::<Cpu>::new(c, DType::F64, &mut rng, &Cpu).unwrap();
        assert!(one.state_dict().contains_key("mlp.weight"));
    }

    #[test]
    fn groups_of_consecutive_sizes() {
        let s: [&[usize]; 5] = [
            &[2, 3, 8, 8],
            &[2, 3, 8, 8],
            &[2, 3, 4, 4],
            &[2, 3, 4, 4],
            &[2, 3, 8, 8],
        ];
        assert_eq!(crop_groups(&s), [0..2, 2..4, 4..5]);
        let x = |n: usize, hw: usize| {
            Var::constant(
                Tensor::ones(&[2, 1, hw, hw], DType::F64, &Cpu)
                    .unwrap()
                    .mul_scalar(n as f64)
                    .unwrap(),
            )
        };
        let crops = [x(1, 4), x(2, 4), x(3, 2)];
        let mut calls = Vec::new();
        let out = multi_crop_forward(
            &crops,
            |v| {
                calls.push(v.shape()[0]);
                v.mean(&[2, 3], false)
            },
            |f| Ok(f.clone()),
        )
        .unwrap();
        assert_eq!(calls, [4, 2]);
        assert_eq!(
            out.value().to_vec::<f64>().unwrap(),
            [1.0, 1.0, 2.0, 2.0, 3.0, 3.0]
        );
    }
}
