//! Per-iteration schedules of DINO and BYOL, computed exactly as their reference code does
//! (same formulas, same order of floating-point operations, so the values agree with NumPy's
//! to the last bit or within a few units in the last place where `cos` rounds differently).
//!
//! | Tessera | Reference |
//! |---|---|
//! | [`linspace`] | `np.linspace(start, stop, num)` |
//! | [`cosine_scheduler`] | DINO `utils.cosine_scheduler` (learning rate, weight decay, teacher momentum) |
//! | [`cosine_schedule_steps`] | the same with its lengths in steps (for runs of a few epochs) |
//! | [`warmup_then_constant`] | DINO's teacher temperature schedule in `DINOLoss.__init__` |
//! | [`byol_lr_schedule`] | BYOL's `learning_schedule` (warm-up `k·peak/W`, then cosine) |
//! | [`byol_target_ema`] | BYOL's `target_ema` (`τ_k = 1 − (1 − τ_base)(cos(πk/K) + 1)/2`) |

use crate::Result;
use alloc::vec::Vec;
use core::f64::consts::PI;
use tessera_tensor::arg_err;

/// `np.linspace(start, stop, num)` (endpoint included), with NumPy's arithmetic:
/// `step = (stop − start)/(num − 1)`, element `i` is `i·step + start` (or `(i/(num−1))·delta +
/// start` when `step` is 0), and the last element is exactly `stop`. `num = 1` gives
/// `[start]`; `num = 0` gives `[]`.
pub fn linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    let delta = stop - start;
    let mut y: Vec<f64> = (0..num).map(|i| i as f64).collect();
    if num > 1 {
        let div = (num - 1) as f64;
        let step = delta / div;
        for v in y.iter_mut() {
            *v = if step == 0.0 {
                (*v / div) * delta
            } else {
                *v * step
            };
        }
    } else {
        for v in y.iter_mut() {
            *v *= delta;
        }
    }
    for v in y.iter_mut() {
        *v += start;
    }
    if num > 1 {
        y[num - 1] = stop;
    }
    y
}

/// DINO's `utils.cosine_scheduler(base_value, final_value, epochs, niter_per_ep,
/// warmup_epochs, start_warmup_value)`: one value per iteration, `epochs · niter_per_ep` in
/// all.
///
/// The first `W = warmup_epochs · niter_per_ep` values are `linspace(start_warmup_value,
/// base_value, W)` (so the warm-up ends *at* `base_value`). The remaining `L` iterations
/// `i = 0..L` follow `final + 0.5·(base − final)·(1 + cos(π·i/L))`: it starts at `base` and
/// never reaches `final` (the last value is one step short of it), exactly as in DINO.
///
/// DINO uses it for the learning rate (`lr·batch/256 → min_lr`, warm-up from 0), the weight
/// decay (0.04 → 0.4, no warm-up) and the teacher momentum (0.996 → 1, no warm-up). Errors if
/// the warm-up is longer than the schedule (DINO's `assert`).
pub fn cosine_scheduler(
    base_value: f64,
    final_value: f64,
    epochs: usize,
    niter_per_ep: usize,
    warmup_epochs: usize,
    start_warmup_value: f64,
) -> Result<Vec<f64>> {
    let op = "cosine_scheduler";
    let total = epochs
        .checked_mul(niter_per_ep)
        .ok_or_else(|| arg_err!(op, "{epochs} epochs x {niter_per_ep} iterations overflows"))?;
    let warmup_iters = warmup_epochs.saturating_mul(niter_per_ep);
    if warmup_iters > total {
        return Err(arg_err!(
            op,
            "{warmup_epochs} warm-up epochs do not fit in {epochs} epochs"
        )
        .into());
    }
    cosine_schedule_steps(
        base_value,
        final_value,
        total,
        warmup_iters,
        start_warmup_value,
    )
}

/// [`cosine_scheduler`] with its lengths in steps rather than epochs: `total_steps` values,
/// the first `warmup_steps` of them `linspace(start_warmup_value, base_value, warmup_steps)`,
/// the rest DINO's cosine from `base_value` towards `final_value`. With `total_steps =
/// epochs · niter_per_ep` and `warmup_steps = warmup_epochs · niter_per_ep` it is exactly
/// DINO's schedule; short runs use it so that a warm-up is a fraction of the run rather than
/// a whole epoch. Errors if the warm-up is longer than the schedule.
pub fn cosine_schedule_steps(
    base_value: f64,
    final_value: f64,
    total_steps: usize,
    warmup_steps: usize,
    start_warmup_value: f64,
) -> Result<Vec<f64>> {
    if warmup_steps > total_steps {
        return Err(arg_err!(
            "cosine_schedule_steps",
            "{warmup_steps} warm-up steps do not fit in {total_steps} steps"
        )
        .into());
    }
    let mut schedule = linspace(start_warmup_value, base_value, warmup_steps);
    let len = total_steps - warmup_steps;
    let half_range = 0.5 * (base_value - final_value);
    schedule.extend((0..len).map(|i| {
        let angle = (PI * i as f64) / len as f64;
        final_value + half_range * (1.0 + libm::cos(angle))
    }));
    Ok(schedule)
}

/// A linear warm-up of a scalar, then constant, one value per epoch: DINO's teacher
/// temperature, `np.concatenate((np.linspace(warmup_value, value, warmup_epochs),
/// np.ones(nepochs - warmup_epochs) * value))` (0.04 → 0.07 over 30 epochs by default; the
/// warm-up's last value is already `value`). Errors if `warmup_epochs > nepochs`.
pub fn warmup_then_constant(
    warmup_value: f64,
    value: f64,
    warmup_epochs: usize,
    nepochs: usize,
) -> Result<Vec<f64>> {
    if warmup_epochs > nepochs {
        return Err(arg_err!(
            "warmup_then_constant",
            "{warmup_epochs} warm-up epochs do not fit in {nepochs} epochs"
        )
        .into());
    }
    let mut s = linspace(warmup_value, value, warmup_epochs);
    s.resize(nepochs, value);
    Ok(s)
}

/// BYOL's target-network EMA rate at training step `step` of `max_steps` (BYOL's
/// `target_ema`): `τ = 1 − (1 − τ_base)·(0.5·(1 + cos(π·k/K)))` with `k = min(step, K)`.
/// It rises from `τ_base` (0.996 in BYOL) to exactly 1 at the end. `max_steps = 0` gives 1.
pub fn byol_target_ema(base_ema: f64, step: u64, max_steps: u64) -> f64 {
    if max_steps == 0 {
        return 1.0;
    }
    let k = step.min(max_steps) as f64;
    let decay = 0.5 * (1.0 + libm::cos((PI * k) / max_steps as f64));
    1.0 - (1.0 - base_ema) * decay
}

/// BYOL's learning rate at every step of a `total_steps` run (DeepMind's
/// `learning_schedule` in `byol/utils/schedules.py`, with the batch scaling already in
/// `peak`): a linear warm-up `k·peak/W` for steps `k < W = warmup_steps`, so step 0 is 0 and
/// the peak is first reached at step `W`, the first step after the warm-up; then
/// `peak·0.5·(1 + cos(π·(k − W)/(total − W)))`.
///
/// DINO's warm-up ([`cosine_scheduler`]) is `linspace(0, peak, W)`, i.e. `k·peak/(W − 1)`,
/// which reaches the peak one step earlier; each method keeps its own. Errors if the warm-up
/// is longer than the run.
pub fn byol_lr_schedule(peak: f64, total_steps: usize, warmup_steps: usize) -> Result<Vec<f64>> {
    if warmup_steps > total_steps {
        return Err(arg_err!(
            "byol_lr_schedule",
            "{warmup_steps} warm-up steps do not fit in {total_steps} steps"
        )
        .into());
    }
    let decay_steps = (total_steps - warmup_steps) as f64;
    Ok((0..total_steps)
        .map(|k| {
            if k < warmup_steps {
                k as f64 / warmup_steps as f64 * peak
            } else {
                let angle = PI * (k - warmup_steps) as f64 / decay_steps;
                peak * 0.5 * (1.0 + libm::cos(angle))
            }
        })
        .collect())
}
