//! Layers (PyTorch: `torch.nn`). Each file is one layer: its parameters with PyTorch's names,
//! its initialization, and its forward pass on autograd [`Var`](tessera_autograd::Var)s.

mod attention;
mod batch_norm;
mod conv;
mod dropout;
mod layer_norm;
mod linear;
mod mlp;
mod patch_embed;
mod pool;
mod weight_norm;

pub use attention::Attention;
pub use batch_norm::{BatchNorm, BatchNormConfig, BatchNormKind, RunningStats};
pub use conv::Conv2d;
pub use dropout::{DropPath, Dropout};
pub use layer_norm::LayerNorm;
pub use linear::Linear;
pub use mlp::{gelu, gelu_with, relu, Mlp};
pub use patch_embed::PatchEmbed;
pub use pool::{AdaptiveAvgPool2d, MaxPool2d};
pub use weight_norm::WeightNormLinear;
