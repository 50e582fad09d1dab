//! Layers (PyTorch: `torch.nn`). Each file is one layer: its parameters with PyTorch's names,
//! its initialization, and its forward pass on autograd [`Var`](tessera_autograd::Var)s.

mod linear;

pub use linear::Linear;
