//! Training steps exactly as the official code does them: one DINO iteration
//! ([`DinoTrainer::train_step`], `main_dino.py`'s `train_one_epoch` body) and one BYOL
//! iteration ([`ByolTrainer::train_step`]), with the schedules, optimizer parameter groups,
//! gradient clipping, teacher/target EMA and checkpointable state (`state_dict` /
//! `load_state_dict`) that make a run resumable exactly.
//!
//! The backbone is anything implementing [`Backbone`]: [`VisionTransformer`] (its CLS output)
//! and [`ResNet`] (its pooled features, `fc` removed) are provided.
//!
//! Errors are [`tessera_nn::Error`] (tensor errors, configuration errors and state-dict
//! mismatches), as for the models and optimizers these trainers own.
//!
//! [`VisionTransformer`]: tessera_nn::models::vit::VisionTransformer
//! [`ResNet`]: tessera_nn::models::resnet::ResNet

mod backbone;
mod byol;
mod byol_optim;
mod common;
mod dino;
mod dino_config;

pub use backbone::Backbone;
pub use byol::{ByolConfig, ByolNet, ByolOnline, ByolStepStats, ByolTrainer};
pub use byol_optim::ByolOptimizer;
pub use dino::{DinoStepStats, DinoStudent, DinoTrainer};
pub use dino_config::{DinoConfig, StepSchedule};
