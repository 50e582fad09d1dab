//! DINO (Caron et al. 2021, *Emerging Properties in Self-Supervised Vision Transformers*):
//! self-distillation with no labels. The objective, its head, and the pieces of
//! `main_dino.py` around them.
//!
//! # The method, next to the paper's equations
//!
//! A student network `g_θs` and a teacher `g_θt` of the same architecture (backbone +
//! [`DinoHead`]) map a view `x` to `K` logits. Their probabilities over `K` dimensions are
//! softmaxes at temperatures `τ_s` and `τ_t` (paper, eq. 1):
//!
//! ```text
//! P_s(x)[k] = exp(g_θs(x)[k] / τ_s) / Σ_j exp(g_θs(x)[j] / τ_s)
//! P_t(x)[k] = exp((g_θt(x)[k] − c[k]) / τ_t) / Σ_j exp((g_θt(x)[j] − c[j]) / τ_t)
//! ```
//!
//! Each image gives 2 global views `x₁ᵍ, x₂ᵍ` and several local ones (multi-crop). Only the
//! global views go through the teacher; all views go through the student, and the student
//! learns to match the teacher across *different* views (eq. 3):
//!
//! ```text
//! min_θs  Σ_{x ∈ {x₁ᵍ, x₂ᵍ}}  Σ_{x' ∈ V, x' ≠ x}  H(P_t(x), P_s(x')),     H(a, b) = −a·log b
//! ```
//!
//! [`DinoLoss`] computes exactly `main_dino.py`'s version of it: the mean of `H` over the
//! `2·(ncrops − 1)` pairs and over the batch. The teacher is a constant in the loss
//! (stop-gradient); it is not trained by backpropagation but is an exponential moving
//! average of the student, `θt ← λθt + (1 − λ)θs` with `λ` following a cosine schedule from
//! 0.996 to 1 ([`crate::ema::ema_update`], [`crate::ema::dino_momentum_schedule`]).
//!
//! # Centering and sharpening: why they avoid collapse
//!
//! With a moving-average teacher and no contrastive negatives, two trivial solutions
//! minimize `H`: every image gives the same one-hot distribution (*one dimension dominates*),
//! or every image gives the uniform distribution. DINO's teacher applies two opposite
//! operations:
//!
//! - **Centering** subtracts `c`, a moving average of the teacher's raw outputs over batches
//!   (eq. 4: `c ← m·c + (1 − m)·(1/B)·Σᵢ g_θt(xᵢ)`, `m = 0.9`; updated after the loss, see
//!   [`DinoLoss::update_center`]). A dimension that is large for *every* image is large in `c`
//!   too and is cancelled, so no dimension can dominate; but centering alone pushes the
//!   teacher toward the uniform distribution.
//! - **Sharpening** uses a low teacher temperature `τ_t` (0.04 → 0.07, warmed up linearly
//!   over the first epochs; the student uses `τ_s = 0.1`), which makes the teacher's
//!   distributions peaked, pushing *away* from uniform; alone it would favour the one-hot
//!   collapse.
//!
//! Balanced, centering prevents the collapse to one dimension and sharpening the collapse to
//! uniform: the teacher's targets stay both confident per image and diverse across images.
//! The paper measures this by splitting `H(P_t, P_s) = h(P_t) + KL(P_t ‖ P_s)`: a collapsed
//! run has `KL → 0` (constant outputs); with centering only, `h(P_t)` goes to its maximum
//! `log K` (uniform), with sharpening only to 0 (one-hot).
//!
//! # Pieces
//!
//! | Tessera | `facebookresearch/dino` |
//! |---|---|
//! | [`DinoLoss`], [`DinoLossConfig`] | `main_dino.py` `DINOLoss` (center buffer, teacher temperature schedule) |
//! | [`DinoHead`], [`DinoHeadConfig`] | `vision_transformer.py` `DINOHead` |
//! | [`tessera_nn::layers::WeightNormLinear`] (the head's `last_layer`) | `nn.utils.weight_norm(nn.Linear(.., bias=False))` |
//! | [`l2_normalize`] | `F.normalize(x, dim=-1, p=2)` |
//! | [`cancel_gradients_last_layer`] | `utils.cancel_gradients_last_layer` |
//! | [`multi_crop_forward`], [`crop_groups`] | `utils.MultiCropWrapper.forward` |
//! | [`crate::ema::ema_update`] | the teacher update in `train_one_epoch` |
//!
//! # One training step
//!
//! ```
//! use tessera_autograd::Var;
//! use tessera_nn::ModuleExt;
//! use tessera_ssl::dino::{cancel_gradients_last_layer, DinoHead, DinoHeadConfig, DinoLoss, DinoLossConfig};
//! use tessera_ssl::ema::ema_update;
//! use tessera_tensor::{Cpu, DType, Rng, Tensor};
//! # fn main() -> Result<(), tessera_nn::Error> {
//! let (batch, ncrops, k) = (2, 4, 16);
//! let mut rng = Rng::new(0);
//! let head_cfg = DinoHeadConfig { hidden_dim: 32, bottleneck_dim: 8, ..DinoHeadConfig::new(12, k) };
//! let student = DinoHead::new(head_cfg, DType::F32, &mut rng, &Cpu)?;
//! let mut teacher = student.clone();
//! teacher.set_frozen("", true); // the teacher is never trained by backprop
//! let loss_cfg = DinoLossConfig { warmup_teacher_temp_epochs: 2, ..DinoLossConfig::new(k, ncrops, 10) };
//! let mut dino_loss = DinoLoss::new(loss_cfg, DType::F32, &Cpu)?;
//!
//! // Backbone features of all views, view-major: [ncrops * batch, 12]; the teacher sees the
//! // two global views only (the first 2 * batch rows).
//! let feats = Tensor::randn(&[ncrops * batch, 12], 0.0, 1.0, DType::F32, &mut rng, &Cpu)?;
//! let s = student.forward(&Var::constant(feats.clone()))?;
//! let t = teacher.forward(&Var::constant(feats.narrow(0, 0, 2 * batch)?))?;
//! let loss = dino_loss.forward(&s, t.value(), 0)?; // also updates the center
//! let mut grads = student.grads_by_name(&loss.backward()?);
//! cancel_gradients_last_layer(0, &mut grads, 1); // the last layer is frozen in epoch 0
//! assert!(!grads.contains_key("last_layer.weight_v"));
//! // ... optimizer step on the student, then the teacher EMA:
//! ema_update(&mut teacher, &student, 0.996)?;
//! # Ok(()) }
//! ```

mod head;
mod loss;

pub use head::{
    cancel_gradients_last_layer, cancel_gradients_last_layer_of, crop_groups, l2_normalize,
    last_layer_frozen, multi_crop_forward, DinoHead, DinoHeadConfig,
};
pub use loss::{DinoLoss, DinoLossConfig};
