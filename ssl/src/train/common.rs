//! What the DINO and BYOL trainers share: configuration checks, the frozen EMA copy of the
//! trained network, the optimizer's parameter groups, schedule look-ups and the pieces of
//! a strict, resumable state dict.

use super::Backbone;
use alloc::string::String;
use alloc::vec::Vec;
use tessera_nn::checkpoint::StateDict;
use tessera_nn::module::{EntryMut, Module};
use tessera_nn::optim::{split_decay_groups, ParamGroup};
use tessera_nn::ModuleExt;
use tessera_tensor::{arg_err, Backend, DType, Tensor};

/// Implements [`Module`] for a network `$t<B, M>` made of two parts, visited in order under
/// the names of their fields (`$a.*`, then `$b.*`), as DINO's `MultiCropWrapper` and BYOL's
/// online/target networks name them.
macro_rules! two_part_module {
    ($t:ident, $a:ident, $b:ident) => {
        impl<B: Backend, M: Module<B>> Module<B> for $t<B, M> {
            fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_, B>)) {
                self.$a.visit(&join(prefix, stringify!($a)), f);
                self.$b.visit(&join(prefix, stringify!($b)), f);
            }

            fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, EntryMut<'_, B>)) {
                self.$a.visit_mut(&join(prefix, stringify!($a)), f);
                self.$b.visit_mut(&join(prefix, stringify!($b)), f);
            }

            fn set_training(&mut self, training: bool) {
                self.$a.set_training(training);
                self.$b.set_training(training);
            }
        }
    };
}
pub(crate) use two_part_module;

/// Checks the run lengths every trainer schedules over.
pub(crate) fn check_run_lengths(
    op: &'static str,
    epochs: usize,
    niter_per_epoch: usize,
    batch_size: usize,
) -> tessera_nn::Result<()> {
    if niter_per_epoch == 0 || epochs == 0 || batch_size == 0 {
        return Err(arg_err!(
            op,
            "epochs, niter_per_epoch and batch_size must be positive, got {epochs}, \
             {niter_per_epoch} and {batch_size}"
        )
        .into());
    }
    Ok(())
}

/// Checks an EMA base rate (BYOL's `base_tau`, DINO's `momentum_teacher`): in `[0, 1]`.
pub(crate) fn check_ema_rate(op: &'static str, name: &str, v: f64) -> tessera_nn::Result<()> {
    if !(0.0..=1.0).contains(&v) {
        return Err(arg_err!(op, "{name} must be in [0, 1], got {v}").into());
    }
    Ok(())
}

/// The two backbones with their classifiers removed (see [`Backbone::remove_classifier`]).
pub(crate) fn without_classifiers<B: Backend, M: Backbone<B>>(mut a: M, mut b: M) -> (M, M) {
    a.remove_classifier();
    b.remove_classifier();
    (a, b)
}

/// Makes `target` a frozen copy of `online` (DINO's teacher, BYOL's target network).
pub(crate) fn init_frozen_copy<B: Backend, M: Module<B> + ?Sized>(
    online: &M,
    target: &mut M,
) -> tessera_nn::Result<()> {
    target.load_state_dict(&online.state_dict())?;
    freeze_all(target);
    Ok(())
}

/// [`split_decay_groups`](tessera_nn::optim::split_decay_groups) of `m`'s trainable (not frozen) parameters.
pub(crate) fn decay_groups<B: Backend, M: Module<B> + ?Sized>(
    m: &M,
    lr: f64,
    weight_decay: f64,
) -> Vec<ParamGroup> {
    let params = m.named_params();
    let trainable = params
        .iter()
        .filter(|(_, p)| !p.is_frozen())
        .map(|(n, p)| (n.as_str(), p.value().shape()));
    split_decay_groups(trainable, lr, weight_decay).to_vec()
}

/// The values of each of `schedules` at global iteration `it`; an error past their end.
pub(crate) fn scheduled<const N: usize>(
    op: &'static str,
    it: u64,
    schedules: [&[f64]; N],
) -> tessera_nn::Result<[f64; N]> {
    let idx = usize::try_from(it).unwrap_or(usize::MAX);
    let mut out = [0.0; N];
    for (o, s) in out.iter_mut().zip(schedules) {
        *o = *s.get(idx).ok_or_else(|| {
            arg_err!(
                op,
                "iteration {it} is past the schedule of {} iterations",
                s.len()
            )
        })?;
    }
    Ok(out)
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

/// A [`tessera_nn::Error::StateDict`] listing the keys of `sd` that start with none of
/// `prefixes` and are not in `exact`, if there are any.
pub(crate) fn check_no_unexpected<B: Backend>(
    sd: &StateDict<B>,
    prefixes: &[&str],
    exact: &[&str],
) -> tessera_nn::Result<()> {
    let unexpected: Vec<String> = sd
        .keys()
        .filter(|k| !prefixes.iter().any(|p| k.starts_with(p)) && !exact.contains(&k.as_str()))
        .cloned()
        .collect();
    if !unexpected.is_empty() {
        return Err(tessera_nn::Error::StateDict {
            missing: Vec::new(),
            unexpected,
            mismatched: Vec::new(),
        });
    }
    Ok(())
}
