//! BYOL (Grill et al. 2020, *Bootstrap Your Own Latent*): an online network learns to predict
//! a slowly moving target network's projection of another view of the same image.
//!
//! # The method, next to the paper's equations
//!
//! The **online** network (parameters `θ`) is an encoder `f_θ`, a projector `g_θ` and a
//! predictor `q_θ` ([`MlpHead`]s); the **target** network (parameters `ξ`) has an encoder and
//! a projector of the same shape, and no predictor. For two augmented views `v, v'` of an
//! image:
//!
//! ```text
//! online:  y_θ = f_θ(v),  z_θ = g_θ(y_θ),  p = q_θ(z_θ)
//! target:  y'_ξ = f_ξ(v'),  z'_ξ = g_ξ(y'_ξ)
//! L_θ,ξ = ‖ p/‖p‖₂ − z'_ξ/‖z'_ξ‖₂ ‖²₂ = 2 − 2·⟨p, z'_ξ⟩ / (‖p‖₂·‖z'_ξ‖₂)      (paper, eq. 2)
//! ```
//!
//! The loss is symmetrized by also feeding `v'` to the online and `v` to the target network
//! (`L̃`), and the total `L^BYOL = L + L̃` is minimized with respect to `θ` only: the target's
//! outputs are constants (stop-gradient). [`byol_loss`] computes `mean over the batch of
//! ℓ(p₁, z₂) + ℓ(p₂, z₁)` with [`byol_regression_loss`] `ℓ = 2 − 2·cos` (both vectors
//! L2-normalized with `F.normalize`'s eps 1e-12).
//!
//! The target is not trained: after each optimizer step on `θ`, it follows the online
//! network as an exponential moving average (paper, eq. 1),
//!
//! ```text
//! ξ ← τξ + (1 − τ)θ,    τ_k = 1 − (1 − τ_base)·(cos(πk/K) + 1)/2,   τ_base = 0.996
//! ```
//!
//! ([`crate::ema::ema_update`] over parameters only, matched by name, and
//! [`crate::ema::byol_momentum`]). The predictor, which the target lacks, and the slow
//! target are what keep BYOL from collapsing to a constant representation without negative
//! pairs.
//!
//! | Tessera | lucidrains `byol-pytorch` / deepmind `byol` |
//! |---|---|
//! | [`byol_regression_loss`] | `loss_fn(x, y)` / `regression_loss` |
//! | [`byol_loss`] | `loss_one + loss_two`, `.mean()` |
//! | [`MlpHead`] | `MLP(dim, projection_size, hidden_size)` (projector and predictor) |
//! | [`crate::ema::ema_update`] | `update_moving_average` / `target_params` update |
//!
//! ```
//! use tessera_autograd::Var;
//! use tessera_ssl::byol::{byol_loss, MlpHead, MlpHeadConfig};
//! use tessera_tensor::{Cpu, DType, Rng, Tensor};
//! # fn main() -> Result<(), tessera_nn::Error> {
//! let mut rng = Rng::new(0);
//! let proj_cfg = MlpHeadConfig { in_dim: 8, hidden_dim: 16, out_dim: 4, last_bias: false };
//! let pred_cfg = MlpHeadConfig { in_dim: 4, ..proj_cfg };
//! let mut projector = MlpHead::new(proj_cfg, DType::F32, &mut rng, &Cpu)?;
//! let mut predictor = MlpHead::new(pred_cfg, DType::F32, &mut rng, &Cpu)?;
//! // Encoder outputs of the two views (here random).
//! let y1 = Var::constant(Tensor::randn(&[5, 8], 0.0, 1.0, DType::F32, &mut rng, &Cpu)?);
//! let y2 = Var::constant(Tensor::randn(&[5, 8], 0.0, 1.0, DType::F32, &mut rng, &Cpu)?);
//! let p1 = predictor.forward(&projector.forward(&y1)?)?;
//! let p2 = predictor.forward(&projector.forward(&y2)?)?;
//! // Target projections: constants (computed by the target network without a graph).
//! let z1 = Tensor::randn(&[5, 4], 0.0, 1.0, DType::F32, &mut rng, &Cpu)?;
//! let z2 = Tensor::randn(&[5, 4], 0.0, 1.0, DType::F32, &mut rng, &Cpu)?;
//! let loss = byol_loss(&p1, &p2, &z1, &z2)?;
//! let v = loss.value().item()?;
//! assert!((0.0..=8.0).contains(&v)); // each term 2 − 2·cos is in [0, 4]
//! # Ok(()) }
//! ```

mod heads;
mod loss;

pub use heads::{MlpHead, MlpHeadConfig};
pub use loss::{byol_loss, byol_regression_loss};
