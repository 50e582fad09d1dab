//! # tessera-nn
//!
//! Layers, models and training machinery, generic over any
//! [`Backend`](tessera_tensor::Backend): the [`Module`] abstraction (named parameters and
//! buffers with PyTorch's dotted names), layers ([`layers`]), the DINO ViT and torchvision
//! ResNets ([`models`]), optimizers, gradient clipping, DINO/BYOL schedules, parameter
//! initializers and safetensors checkpoints. Forward passes run on autograd
//! [`Var`](tessera_autograd::Var)s; a [`Param`] is an autograd leaf, and optimizers take the
//! parameter values and their gradients by name ([`ModuleExt::grads_by_name`]).
//!
//! `no_std` + `alloc` with default features off; the `std` feature (on by default) adds
//! checkpoint file I/O and `std::error::Error`.
//!
//! | Tessera | PyTorch / reference code |
//! |---|---|
//! | [`Module`], [`Param`], [`ModuleExt::state_dict`] | `nn.Module`, `nn.Parameter`, `state_dict()` / `load_state_dict()` |
//! | [`layers::Linear`], [`layers`] | `nn.Linear`, `nn.Conv2d`, `nn.BatchNorm1d/2d`, `nn.LayerNorm`, timm's `Attention`, `Mlp`, `DropPath` |
//! | [`models::vit`] | DINO's `vision_transformer.py` (`vit_tiny/small/base`), same parameter names |
//! | [`models::resnet`] | `torchvision.models.resnet50` / `resnet18`, same parameter names |
//! | [`optim::Sgd`] | `torch.optim.SGD` (momentum, dampening, Nesterov, coupled weight decay) |
//! | [`optim::AdamW`] | `torch.optim.AdamW` (DINO's optimizer) |
//! | [`optim::Lars`] | BYOL's LARS (`byol/utils/optimizers.py`) |
//! | [`optim::ParamGroup`], [`optim::split_decay_groups`] | `optimizer.param_groups`, DINO `utils.get_params_groups` |
//! | [`optim::clip_grad_per_param`] | DINO `utils.clip_gradients` |
//! | [`optim::clip_grad_norm`] | `torch.nn.utils.clip_grad_norm_` |
//! | [`schedule::cosine_scheduler`] | DINO `utils.cosine_scheduler` |
//! | [`schedule::warmup_then_constant`] | DINO's teacher-temperature schedule |
//! | [`schedule::byol_target_ema`] | BYOL's target EMA rate |
//! | [`init`] | `torch.nn.init.*` and the default `nn.Linear` / `nn.Conv2d` init |
//! | [`checkpoint::StateDict`], [`checkpoint::Checkpoint`] | `state_dict()`, `torch.save` / `torch.load` (as safetensors), `load_state_dict` |
//!
//! One AdamW step on a parameter `w` with gradient `g` (lr 0.1, no weight decay): Adam's
//! first step moves every element by about `lr` against the sign of its gradient.
//!
//! ```
//! use tessera_nn::optim::{AdamW, AdamWConfig, Optimizer, ParamGroup};
//! use tessera_tensor::{Cpu, Tensor};
//! # fn main() -> tessera_nn::Result<()> {
//! let mut params = vec![Tensor::from_vec(vec![1.0f64, -2.0], &[2], &Cpu)?];
//! let grads = vec![Tensor::from_vec(vec![0.5f64, -3.0], &[2], &Cpu)?];
//! let mut opt = AdamW::new(vec![ParamGroup::new(["w"], 0.1)], AdamWConfig::default())?;
//! opt.step(&mut params, &grads)?;
//! let w = params[0].to_vec::<f64>()?;
//! assert!((w[0] - 0.9).abs() < 1e-6 && (w[1] + 1.9).abs() < 1e-6);
//! // The state is named tensors, ready for a checkpoint.
//! assert!(opt.state_dict().contains_key("w.exp_avg_sq"));
//! # Ok(()) }
//! ```
#![cfg_attr(not(feature = "std"), no_std)]
#![warn(missing_debug_implementations)]

extern crate alloc;

pub mod checkpoint;
mod error;
pub mod init;
pub mod layers;
pub mod models;
pub mod module;
pub mod optim;
pub mod schedule;

pub use checkpoint::{Checkpoint, Metadata, StateDict};
pub use error::{Error, Result};
pub use module::{Entry, EntryMut, Module, ModuleExt, Param};
