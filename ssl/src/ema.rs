//! The teacher / target network as an exponential moving average (EMA) of the student /
//! online network, matched parameter by parameter **by name**, and the momentum schedules of
//! DINO and BYOL.
//!
//! Both methods average *parameters only*:
//!
//! - DINO (`main_dino.py`): `param_k.data.mul_(m).add_((1 - m) * param_q.detach().data)` for
//!   every pair of student/teacher parameters, i.e. `teacher ← m·teacher + (1 − m)·student`,
//!   with `m` following a cosine schedule from 0.996 to 1 ([`dino_momentum_schedule`]).
//! - BYOL (the paper's `ξ ← τξ + (1 − τ)θ`; deepmind's `byol` updates the target's
//!   `params` only, and lucidrains' `update_moving_average` zips `parameters()` only), with
//!   `τ_k = 1 − (1 − τ_base)(cos(πk/K) + 1)/2` ([`byol_momentum`]).
//!
//! Buffers (BatchNorm running statistics, `num_batches_tracked`) are **not** averaged: the
//! teacher/target keeps its own, updated by its own forward passes. The teacher's parameters
//! are usually frozen (constants for autograd); [`ema_update`] keeps each parameter's frozen
//! state.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use tessera_nn::module::{Entry, EntryMut, Module};
use tessera_nn::schedule::{byol_target_ema, cosine_scheduler};
use tessera_tensor::{arg_err, Backend, Tensor};

/// `teacher ← m·teacher + (1 − m)·student` for every parameter of `teacher`, taking the
/// student's parameter of the same name (DINO's and BYOL's EMA update, see the
/// [module docs](self)); buffers are left alone.
///
/// The two modules must have the same parameter names with the same shapes: otherwise the
/// error (an invalid argument of `ema_update`) lists every name only the teacher has, every
/// name only the student has and every name whose shapes differ, with both shapes, and
/// nothing is changed. Dtypes must match as well. `momentum` must be in `[0, 1]`. These are
/// checked before any parameter changes; the update then runs in place (only a failure of
/// the backend itself can stop it midway).
pub fn ema_update<B, T, S>(teacher: &mut T, student: &S, momentum: f64) -> tessera_nn::Result<()>
where
    B: Backend,
    T: Module<B> + ?Sized,
    S: Module<B> + ?Sized,
{
    let op = "ema_update";
    if !(0.0..=1.0).contains(&momentum) {
        return Err(arg_err!(op, "momentum must be in [0, 1], got {momentum}").into());
    }
    let mut student_params: BTreeMap<String, Tensor<B>> = BTreeMap::new();
    student.visit("", &mut |name, e| {
        if let Entry::Param(p) = e {
            student_params.insert(String::from(name), p.value().clone());
        }
    });
    let mut teacher_params: Vec<(String, Tensor<B>)> = Vec::new();
    teacher.visit("", &mut |name, e| {
        if let Entry::Param(p) = e {
            teacher_params.push((String::from(name), p.value().clone()));
        }
    });
    let (mut missing, mut mismatched) = (Vec::new(), Vec::new());
    for (name, t) in &teacher_params {
        match student_params.get(name) {
            None => missing.push(name.clone()),
            Some(s) if s.shape() != t.shape() => {
                mismatched.push((name.clone(), s.shape().to_vec(), t.shape().to_vec()))
            }
            Some(s) if s.dtype() != t.dtype() => {
                return Err(arg_err!(
                    op,
                    "parameter \"{name}\" is {} in the student and {} in the teacher",
                    s.dtype(),
                    t.dtype()
                )
                .into())
            }
            Some(_) => {}
        }
    }
    let unexpected: Vec<String> = student_params
        .keys()
        .filter(|k| !teacher_params.iter().any(|(n, _)| n == *k))
        .cloned()
        .collect();
    if !missing.is_empty() || !unexpected.is_empty() || !mismatched.is_empty() {
        // Said in terms of the two networks: a state-dict error would speak of a checkpoint
        // and of "expected" shapes, which here is neither.
        return Err(arg_err!(
            op,
            "{}",
            mismatch_message(&missing, &unexpected, &mismatched)
        )
        .into());
    }
    // Everything a caller can get wrong was checked above; now one fused in-place pass per
    // parameter (`Backend::ema_update`), where the teacher's values already are.
    drop(teacher_params);
    let mut failure = None;
    teacher.visit_mut("", &mut |name, e| {
        if let (EntryMut::Param(p), Some(s)) = (e, student_params.get(name)) {
            if failure.is_none() {
                if let Err(err) = p.value_mut().ema_update_(s, momentum) {
                    failure = Some(err);
                }
            }
        }
    });
    failure.map_or(Ok(()), |e| Err(e.into()))
}

/// Why the student and the teacher cannot be averaged: the names only the teacher has, only
/// the student has, and those whose shapes differ.
fn mismatch_message(
    teacher_only: &[String],
    student_only: &[String],
    shapes: &[(String, Vec<usize>, Vec<usize>)],
) -> String {
    let quoted = |names: &[String]| {
        let q: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
        q.join(", ")
    };
    let mut parts = Vec::new();
    if !teacher_only.is_empty() {
        parts.push(format!(
            "parameter(s) of the teacher missing from the student: {}",
            quoted(teacher_only)
        ));
    }
    if !student_only.is_empty() {
        parts.push(format!(
            "parameter(s) of the student missing from the teacher: {}",
            quoted(student_only)
        ));
    }
    for (name, student, teacher) in shapes {
        parts.push(format!(
            "\"{name}\" has shape {student:?} in the student and {teacher:?} in the teacher"
        ));
    }
    format!(
        "the student and the teacher must have the same parameters; {}",
        parts.join("; ")
    )
}

/// DINO's teacher momentum, one value per iteration: `cosine_scheduler(base, final, epochs,
/// niter_per_ep)` without warm-up (DINO: `base = 0.996`, `final = 1`). Like DINO's, it
/// starts at `base` and ends one step short of `final`.
pub fn dino_momentum_schedule(
    base: f64,
    final_value: f64,
    epochs: usize,
    niter_per_ep: usize,
) -> tessera_nn::Result<Vec<f64>> {
    cosine_scheduler(base, final_value, epochs, niter_per_ep, 0, 0.0)
}

/// BYOL's target EMA rate at step `k` of `max_steps`: `1 − (1 − base)(cos(πk/K) + 1)/2`
/// (BYOL: `base = 0.996`, reaching exactly 1 at the last step).
pub fn byol_momentum(base: f64, step: u64, max_steps: u64) -> f64 {
    byol_target_ema(base, step, max_steps)
}
