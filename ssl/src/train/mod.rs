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
mod dino;

pub use backbone::Backbone;
pub use byol::{ByolConfig, ByolNet, ByolOnline, ByolStepStats, ByolTrainer};
pub use dino::{DinoConfig, DinoStepStats, DinoStudent, DinoTrainer};

use alloc::string::String;
use tessera_nn::checkpoint::StateDict;
use tessera_nn::module::{EntryMut, Module};
use tessera_nn::ModuleExt;
use tessera_tensor::{arg_err, Backend, DType, Tensor};

/// The named values of a module's trainable (not frozen) parameters.
pub(crate) fn trainable_params<B: Backend, M: Module<B> + ?Sized>(m: &M) -> StateDict<B> {
    m.named_params()
        .into_iter()
        .filter(|(_, p)| !p.is_frozen())
        .map(|(n, p)| (n, p.value().clone()))
        .collect()
}

/// Freezes every parameter of `m` (a teacher / target network).
pub(crate) fn freeze_all<B: Backend, M: Module<B> + ?Sized>(m: &mut M) {
    m.visit_mut("", &mut |_, e| {
        if let EntryMut::Param(p) = e {
            p.set_frozen(true);
        }
    });
}

/// The dtype and backend of a module's first parameter or buffer.
pub(crate) fn dtype_backend<B: Backend, M: Module<B> + ?Sized>(
    m: &M,
    op: &'static str,
) -> tessera_nn::Result<(DType, B)> {
    let sd = m.state_dict();
    let t = sd
        .values()
        .next()
        .ok_or_else(|| arg_err!(op, "the backbone has no parameters"))?;
    Ok((t.dtype(), t.backend().clone()))
}

/// Reads a rank-0 counter saved as an F64 tensor under `key`.
pub(crate) fn read_counter<B: Backend>(
    sd: &StateDict<B>,
    key: &str,
    op: &'static str,
) -> tessera_nn::Result<u64> {
    let t = sd
        .get(key)
        .ok_or_else(|| arg_err!(op, "state dict lacks \"{key}\""))?;
    let v = t.item()?;
    if !(v >= 0.0 && libm::floor(v) == v && v < 9.0e15) {
        return Err(arg_err!(op, "\"{key}\" must be a non-negative integer, got {v}").into());
    }
    Ok(v as u64)
}

/// A rank-0 F64 tensor holding a counter.
pub(crate) fn counter_tensor<B: Backend>(v: u64, backend: &B) -> tessera_nn::Result<Tensor<B>> {
    Ok(Tensor::scalar(v as f64, DType::F64, backend)?)
}

/// Keys of `sd` that start with none of `prefixes` and are not in `exact`.
pub(crate) fn unexpected_keys<B: Backend>(
    sd: &StateDict<B>,
    prefixes: &[&str],
    exact: &[&str],
) -> alloc::vec::Vec<String> {
    sd.keys()
        .filter(|k| !prefixes.iter().any(|p| k.starts_with(p)) && !exact.contains(&k.as_str()))
        .cloned()
        .collect()
}
