//! # tessera-autograd
//!
//! Reverse-mode automatic differentiation over [`tessera_tensor`], generic over any
//! [`Backend`](tessera_tensor::Backend): the backend computes values and knows nothing about
//! gradients; this crate records how values were made and replays the derivatives backward.
//!
//! ## How it works (read `graph.rs` first)
//!
//! A [`Var`] wraps a [`Tensor`](tessera_tensor::Tensor). Ops on `Var`s (`x.mul(&w)`,
//! `x.softmax(-1)`, ...) compute the value with the tensor op and, when an input requires a
//! gradient, remember their inputs and a small [`Backward`] struct holding what the
//! derivative needs. [`Var::backward`] then visits the recorded nodes newest-first (ids only
//! grow, so that is a topological order), hands each node its accumulated output gradient,
//! and sums what its `Backward` returns into the node's inputs. The result is a
//! [`Gradients`] map from each leaf to its gradient. `graph.rs` is the whole engine in about
//! 200 lines of code; `ops/` holds one file per op family, mirroring `tessera_tensor::ops`.
//!
//! ```
//! use tessera_autograd::Var;
//! use tessera_tensor::{Cpu, Tensor};
//! # fn main() -> tessera_tensor::Result<()> {
//! let x = Var::constant(Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[2, 2], &Cpu)?);
//! let w = Var::leaf(Tensor::from_vec(vec![0.5f32, -1.0], &[2, 1], &Cpu)?);
//! let loss = x.matmul(&w)?.square()?.mean(&[], false)?; // mean((x @ w)^2)
//! let grads = loss.backward()?;
//! let dw = grads.get(&w).expect("w is a leaf the loss depends on");
//! // dloss/dw = 2/2 * xᵀ (x @ w) = xᵀ [-1.5, -2.5]
//! assert_eq!(dw.to_vec::<f32>()?, vec![-9.0, -13.0]);
//! # Ok(()) }
//! ```
//!
//! ## PyTorch mapping
//!
//! | PyTorch | tessera-autograd |
//! |---|---|
//! | `torch.tensor(..., requires_grad=True)` | [`Var::leaf`] |
//! | a tensor without `requires_grad` | [`Var::constant`] |
//! | `x.requires_grad`, `x.is_leaf` | [`Var::requires_grad`], [`Var::is_leaf`] |
//! | `loss.backward()` / `y.backward(grad)` | [`Var::backward_consume`] / [`Var::backward_with`] |
//! | `loss.backward(retain_graph=True)` | [`Var::backward`] |
//! | `x.grad` | [`Gradients::get`] on the returned map (nothing is stored in the `Var`) |
//! | `x.detach()` | [`Var::detach`] |
//! | `with torch.no_grad():` | compute on [`Var::constant`]s or plain tensors: ops on constants record nothing |
//! | `torch.autograd.Function` | implement [`Backward`] and build the output with [`Var::from_op`] |
//! | `torch.autograd.gradcheck` | [`gradcheck()`] with [`GradcheckOptions`] |
//! | `torch.addmm(b, x, w.T)` (`F.linear`) | [`Var::matmul_bias`] (the CPU adds the bias inside the GEMM; the backward gets the weight and bias gradients from one `Tensor::matmul_row_sums`) |
//! | `F.cross_entropy` | [`cross_entropy`] (class indices), [`cross_entropy_probs`] (probabilities) |
//! | `torch.profiler` (`key_averages()` of the backward's nodes; `record_function`) | [`profile`]: time per backward op and per named phase of a step (`bench_steps --profile`) |
//!
//! Differences: `backward` keeps the graph (PyTorch's `retain_graph=True`), so it can run
//! again; [`Var::backward_consume`] is PyTorch's default, freeing each node's saved tensors
//! as soon as its derivative has run (training loops use it: lower peak memory). Otherwise
//! the graph is freed when the last `Var` that reaches it is dropped. As in PyTorch, the graph
//! keeps what the derivatives saved, not every intermediate: a value that no derivative needs
//! is freed when its last `Var` is dropped. Only leaves get gradients;
//! intermediate gradients are dropped as soon as they have been passed on.
//! The gradient of a view that selects part of a tensor (`select`, `narrow`, `slice`; the
//! q, k and v of attention are three of them) is added into that part of the tensor's pending
//! gradient in place when there is one ([`Backward::input_window`]), as PyTorch's
//! `unbind` backward writes its pieces into one buffer, rather than zero-padded to the whole
//! shape and summed.
//!
//! ## Checking gradients of your own function
//!
//! Write the function over a slice of `Var`s, give [`gradcheck()`] F64 inputs, and it
//! compares backward against finite differences (see the [`gradcheck`](mod@gradcheck)
//! module for everything it checks):
//!
//! ```
//! use tessera_autograd::{gradcheck, GradcheckOptions, Var};
//! use tessera_tensor::{Cpu, Tensor};
//! # fn main() -> tessera_tensor::Result<()> {
//! let x = Tensor::from_vec(vec![0.3f64, -0.2, 0.9, 0.1, 0.5, -0.7], &[2, 3], &Cpu)?;
//! let gamma = Tensor::from_vec(vec![1.0f64, 0.5, 2.0], &[3], &Cpu)?;
//! let f = |v: &[Var<Cpu>]| v[0].layer_norm(&[3], Some(&v[1]), None, 1e-5)?.gelu();
//! if let Err(failure) = gradcheck(f, &[x, gamma], &GradcheckOptions::default()) {
//!     panic!("{failure}"); // names the input, the element, analytic vs numeric
//! }
//! # Ok(()) }
//! ```
//!
//! Large functions: set `fast_mode: true` to compare one random projection per input.
#![cfg_attr(not(feature = "std"), no_std)]
#![warn(missing_debug_implementations)]

extern crate alloc;

pub mod gradcheck;
mod gradients;
mod graph;
mod loss;
pub mod ops;
pub mod profile;

#[cfg(test)]
mod test_util;

pub use gradcheck::{gradcheck, GradcheckFailure, GradcheckOptions};
pub use gradients::Gradients;
pub use graph::{Backward, Var};
pub use loss::{cross_entropy, cross_entropy_probs};
pub use ops::reduce_to_shape;
