//! # Tessera
//!
//! Self-supervised vision (DINO, BYOL) with ViT and ResNet-50 backbones, on a tensor stack
//! written from scratch in Rust. This root crate re-exports the layers:
//!
//! | layer | crate | PyTorch analogue |
//! |---|---|---|
//! | [`tensor`] | `tessera-tensor` | `torch.Tensor`, ATen kernels, the CPU backend |
//! | [`autograd`] | `tessera-autograd` | `torch.autograd`, `torch.autograd.gradcheck` |
//! | [`nn`] | `tessera-nn` | `torch.nn`, `torch.optim`, `timm` models |
//! | [`ssl`] | `tessera-ssl` | the official DINO and BYOL training code |
//! | [`cuda`] | `tessera-cuda` | the CUDA backend |
#![cfg_attr(not(feature = "std"), no_std)]

pub use tessera_autograd as autograd;
pub use tessera_cuda as cuda;
pub use tessera_nn as nn;
pub use tessera_ssl as ssl;
pub use tessera_tensor as tensor;

#[cfg(feature = "std")]
pub mod run;
