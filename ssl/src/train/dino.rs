//! One DINO iteration, as `main_dino.py`'s `train_one_epoch` does it.

use super::common::{
    check_ema_rate, check_no_unexpected, check_run_lengths, counter_tensor, decay_groups,
    dtype_backend, init_frozen_copy, read_counter, scheduled, two_part_module, without_classifiers,
};
use super::{Backbone, DinoConfig};
use crate::dino::{cancel_gradients_last_layer, last_layer_frozen, DinoHead, DinoLoss};
use crate::ema::{dino_momentum_schedule, ema_update};
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use tessera_autograd::{profile, Var};
use tessera_nn::checkpoint::{select_prefix, with_prefix, StateDict};
use tessera_nn::module::{join, Entry, EntryMut, Module};
use tessera_nn::optim::{clip_grad_per_param, AdamW, AdamWConfig, Optimizer};
use tessera_nn::schedule::{cosine_schedule_steps, cosine_scheduler};
use tessera_nn::ModuleExt;
use tessera_tensor::{arg_err, Backend, DType, Rng, Tensor};

/// DINO's `MultiCropWrapper(backbone, head)`: parameter names `backbone.*` and `head.*`, as
/// in DINO's checkpoints.
#[derive(Clone, Debug)]
pub struct DinoStudent<B: Backend, M> {
    pub backbone: M,
    pub head: DinoHead<B>,
}

impl<B: Backend, M: Backbone<B>> DinoStudent<B, M> {
    /// DINO's `MultiCropWrapper.forward` on crops grouped by resolution: each group through
    /// the backbone in one batch, the concatenated features through the head once.
    pub fn forward_groups(&mut self, groups: &[Var<B>]) -> tessera_tensor::Result<Var<B>> {
        let mut feats = Vec::with_capacity(groups.len());
        for g in groups {
            feats.push(self.backbone.forward_features(g)?);
        }
        let f = if feats.len() == 1 {
            feats
                .pop()
                .ok_or_else(|| arg_err!("DinoStudent", "no crops"))?
        } else {
            Var::cat(&feats, 0)?
        };
        self.head.forward(&f)
    }
}

two_part_module!(DinoStudent, backbone, head);

/// What one DINO iteration reports. The collapse monitors are the two entropies: a
/// collapse to one prototype sends both to 0; a collapse to the uniform distribution sends
/// `teacher_entropy` to `ln K`. Healthy training keeps `teacher_entropy` well below `ln K`
/// while `teacher_batch_entropy` stays well above 0.
#[derive(Clone, Debug, PartialEq)]
pub struct DinoStepStats {
    /// The DINO loss of this batch (before the update).
    pub loss: f64,
    /// Learning rate used (all groups).
    pub lr: f64,
    /// Weight decay used (the regularized group).
    pub weight_decay: f64,
    /// Teacher EMA momentum used.
    pub momentum: f64,
    /// Teacher temperature of this epoch.
    pub teacher_temp: f64,
    /// Mean over the teacher's rows of the entropy of `softmax((t − center)/τ_t)` (nats);
    /// `None` unless [`DinoTrainer::diagnostics`] is set.
    pub teacher_entropy: Option<f64>,
    /// Entropy of the batch mean of those distributions (nats): how many prototypes the
    /// teacher uses across the batch; `None` unless [`DinoTrainer::diagnostics`] is set.
    pub teacher_batch_entropy: Option<f64>,
    /// `ln K`, the entropy of the uniform distribution, for reference.
    pub max_entropy: f64,
    /// Each student gradient's L2 norm before clipping (DINO's `param_norms`), by name;
    /// empty unless [`DinoTrainer::diagnostics`] or [`DinoTrainer::record_gradients`] is set.
    pub grad_norms: BTreeMap<String, f64>,
    /// The global iteration this step used (the counter before the step).
    pub iteration: u64,
    /// Whether the head's last layer got no update in this step (`--freeze_last_layer`).
    pub last_layer_frozen: bool,
}

/// DINO's student/teacher pair with its loss, optimizer and schedules: see
/// [`DinoTrainer::train_step`].
#[derive(Debug)]
pub struct DinoTrainer<B: Backend, M> {
    student: DinoStudent<B, M>,
    teacher: DinoStudent<B, M>,
    loss: DinoLoss<B>,
    optimizer: AdamW<B>,
    config: DinoConfig,
    niter_per_epoch: usize,
    lr_schedule: Vec<f64>,
    wd_schedule: Vec<f64>,
    momentum_schedule: Vec<f64>,
    iteration: u64,
    /// Keep the gradients of the last step (before and after clipping) for inspection.
    pub record_gradients: bool,
    /// Compute the step's diagnostics (teacher entropies, per-parameter gradient norms),
    /// which read the device; off by default so that a step reads only its loss.
    pub diagnostics: bool,
    last_gradients: Option<(StateDict<B>, StateDict<B>)>,
}

impl<B: Backend, M: Backbone<B>> DinoTrainer<B, M> {
    /// Builds the student (`student_backbone` + a fresh [`DinoHead`] drawn from `rng`) and
    /// the teacher (`teacher_backbone` + a head of the same shape), copies the student's
    /// state into the teacher (DINO: `teacher.load_state_dict(student.state_dict())`) and
    /// freezes it, and sets up AdamW with DINO's two parameter groups
    /// ([`split_decay_groups`](tessera_nn::optim::split_decay_groups); frozen parameters such as the head's `weight_g` are left
    /// out) and the per-iteration schedules for `epochs × niter_per_epoch` iterations.
    pub fn new(
        student_backbone: M,
        teacher_backbone: M,
        cfg: DinoConfig,
        niter_per_epoch: usize,
        rng: &mut Rng,
    ) -> tessera_nn::Result<Self> {
        let op = "DinoTrainer::new";
        let (sb, tb) = without_classifiers(student_backbone, teacher_backbone);
        check_run_lengths(op, cfg.epochs, niter_per_epoch, cfg.batch_size)?;
        if cfg.clip_grad.is_nan() || cfg.clip_grad < 0.0 {
            return Err(arg_err!(op, "clip_grad must be >= 0, got {}", cfg.clip_grad).into());
        }
        check_ema_rate(op, "momentum_teacher", cfg.momentum_teacher)?;
        let (dtype, backend) = dtype_backend(&sb, op)?;
        let head_cfg = cfg.head_config(sb.embed_dim());
        let head = DinoHead::new(head_cfg, dtype, rng, &backend)?;
        let student = DinoStudent { backbone: sb, head };
        let mut teacher = DinoStudent {
            backbone: tb,
            head: student.head.clone(),
        };
        init_frozen_copy(&student, &mut teacher)?;
        let loss = DinoLoss::new(cfg.loss_config(niter_per_epoch), dtype, &backend)?;
        let lr = cfg.scaled_lr();
        let groups = decay_groups(&student, lr, cfg.weight_decay);
        let optimizer = AdamW::new(groups, AdamWConfig::default())?;
        let (e, n) = (cfg.epochs, niter_per_epoch);
        let lr_schedule = match cfg.step_schedule {
            Some(s) => {
                let total = e
                    .checked_mul(n)
                    .ok_or_else(|| arg_err!(op, "{e} epochs x {n} steps overflows"))?;
                cosine_schedule_steps(lr, cfg.min_lr, total, s.warmup, 0.0)?
            }
            None => cosine_scheduler(lr, cfg.min_lr, e, n, cfg.warmup_epochs, 0.0)?,
        };
        let wd_schedule = cosine_scheduler(cfg.weight_decay, cfg.weight_decay_end, e, n, 0, 0.0)?;
        let momentum_schedule = dino_momentum_schedule(cfg.momentum_teacher, 1.0, e, n)?;
        Ok(DinoTrainer {
            student,
            teacher,
            loss,
            optimizer,
            config: cfg,
            niter_per_epoch,
            lr_schedule,
            wd_schedule,
            momentum_schedule,
            iteration: 0,
            record_gradients: false,
            diagnostics: false,
            last_gradients: None,
        })
    }

    /// One DINO iteration (`train_one_epoch`'s loop body) at the next global iteration:
    ///
    /// 1. lr (all groups) and weight decay (regularized group) from the schedules;
    /// 2. teacher forward on the global crops (`groups[0]`, no graph);
    /// 3. student forward on every group (one backbone call per resolution, head once);
    /// 4. [`DinoLoss::forward`] (loss, then the center update), backward;
    /// 5. per-parameter gradient clipping at `clip_grad`, then the last layer's gradients
    ///    dropped while `epoch < freeze_last_layer`;
    /// 6. AdamW step; teacher EMA with the scheduled momentum; iteration counter + 1.
    ///
    /// `groups` are the crops grouped by resolution as
    /// [`batch_by_resolution`](crate::augment::batch_by_resolution) produces them: first the
    /// two global views `[2b, c, H, W]` (all view-0 crops, then all view-1 crops), then the
    /// local crops `[n_local·b, c, h, w]` (possibly in several groups). `epoch` selects the
    /// teacher temperature and the last-layer freezing; with a
    /// [`step_schedule`](DinoConfig::step_schedule) both follow the step counter instead.
    /// Errors (and changes nothing) on bad shapes or past the end of the schedules.
    pub fn train_step(
        &mut self,
        groups: &[Tensor<B>],
        epoch: usize,
    ) -> tessera_nn::Result<DinoStepStats> {
        let op = "DinoTrainer::train_step";
        let it = self.iteration;
        let [lr, wd, m] = scheduled(
            op,
            it,
            [
                &self.lr_schedule,
                &self.wd_schedule,
                &self.momentum_schedule,
            ],
        )?;
        let globals = groups
            .first()
            .ok_or_else(|| arg_err!(op, "no crops given"))?;
        if globals.rank() != 4 || globals.shape()[0] % 2 != 0 || globals.shape()[0] == 0 {
            return Err(arg_err!(
                op,
                "the first group must be the 2 global views [2b, c, h, w], got {:?}",
                globals.shape()
            )
            .into());
        }
        // The index into the temperature schedule and the freezing rule: the epoch, or the
        // step with a step schedule.
        let (unit, freeze) = match self.config.step_schedule {
            Some(s) => (
                usize::try_from(it).map_err(|_| arg_err!(op, "step {it} overflows usize"))?,
                s.freeze_last_layer,
            ),
            None => (epoch, self.config.freeze_last_layer),
        };
        let teacher_temp = self.loss.teacher_temp(unit)?;
        // The step's parts, timed when `tessera_autograd::profile` is on.
        let device = globals.backend();
        // Teacher: frozen parameters, constant input: no graph is recorded.
        let phase = profile::phase(device, "teacher forward");
        let teacher_out = self
            .teacher
            .forward_groups(&[Var::constant(globals.clone())])?
            .value()
            .clone();
        drop(phase);
        let phase = profile::phase(device, "student forward");
        let inputs: Vec<Var<B>> = groups.iter().cloned().map(Var::constant).collect();
        let student_out = self.student.forward_groups(&inputs)?;
        drop(phase);
        let phase = profile::phase(device, "loss");
        // Diagnostics read the device: only when asked for.
        let (teacher_entropy, teacher_batch_entropy) = if self.diagnostics {
            let (h, hb) = teacher_entropies(&teacher_out, self.loss.center(), teacher_temp)?;
            (Some(h), Some(hb))
        } else {
            (None, None)
        };
        // DinoLoss::forward, on a copy: the loss, then the center update.
        let loss = self.loss.loss(&student_out, &teacher_out, unit)?;
        let mut loss_fresh = self.loss.clone();
        loss_fresh.update_center(&teacher_out)?;
        let loss_value = loss.value().item()?;
        drop(phase);
        // Only the loss holds the graph now, so backward frees it layer by layer.
        drop((inputs, student_out));
        let phase = profile::phase(device, "backward");
        let grads = loss.backward_consume()?;
        let mut raw = self.student.grads_by_name(&grads);
        drop((grads, phase));
        let names: Vec<String> = raw.keys().cloned().collect();
        // Unless the raw gradients are kept, the clip gets the only handle on each, so it
        // scales them in place rather than copying them first.
        let mut flat: Vec<Tensor<B>> = if self.record_gradients {
            raw.values().cloned().collect()
        } else {
            core::mem::take(&mut raw).into_values().collect()
        };
        let mut grad_norms = BTreeMap::new();
        if self.config.clip_grad > 0.0 {
            let _phase = profile::phase(device, "clip");
            let norms = clip_grad_per_param(&mut flat, self.config.clip_grad)?;
            if self.diagnostics || self.record_gradients {
                for (n, t) in names.iter().zip(norms) {
                    grad_norms.insert(n.clone(), t.item()?);
                }
            }
        }
        let mut clipped: StateDict<B> = names.into_iter().zip(flat).collect();
        cancel_gradients_last_layer(unit, &mut clipped, freeze);
        // The updates run in place (no copy of the model or of the optimizer state): the
        // inputs were checked above, so only a failure of the backend can stop them midway.
        if !self.record_gradients {
            drop(raw);
            raw = StateDict::new();
        }
        for (i, g) in self.optimizer.groups_mut().iter_mut().enumerate() {
            g.lr = lr;
            if i == 0 {
                g.weight_decay = wd;
            }
        }
        let phase = profile::phase(device, "optimizer");
        self.optimizer.step_module(&mut self.student, &clipped)?;
        drop(phase);
        self.loss = loss_fresh;
        let phase = profile::phase(device, "teacher EMA");
        ema_update(&mut self.teacher, &self.student, m)?;
        drop(phase);
        self.iteration += 1;
        self.last_gradients = self.record_gradients.then_some((raw, clipped));
        Ok(DinoStepStats {
            loss: loss_value,
            lr,
            weight_decay: wd,
            momentum: m,
            teacher_temp,
            teacher_entropy,
            teacher_batch_entropy,
            max_entropy: libm::log(self.config.out_dim as f64),
            grad_norms,
            iteration: it,
            last_layer_frozen: last_layer_frozen(unit, freeze),
        })
    }

    /// The gradients of the last step by name, `(before clipping, after clipping and the
    /// last-layer cancellation)`, when [`DinoTrainer::record_gradients`] was set.
    pub fn last_gradients(&self) -> Option<&(StateDict<B>, StateDict<B>)> {
        self.last_gradients.as_ref()
    }

    /// Everything a resumed run needs: `student.*`, `teacher.*`, `optimizer.*` (AdamW's
    /// state), `dino_loss.center` and `iteration` (a rank-0 F64 tensor).
    pub fn state_dict(&self) -> tessera_nn::Result<StateDict<B>> {
        let mut sd = with_prefix(&self.student.state_dict(), "student.");
        sd.extend(with_prefix(&self.teacher.state_dict(), "teacher."));
        sd.extend(with_prefix(&self.optimizer.state_dict(), "optimizer."));
        sd.insert(String::from("dino_loss.center"), self.loss.center().clone());
        let backend = self.loss.center().backend().clone();
        sd.insert(
            String::from("iteration"),
            counter_tensor(self.iteration, &backend)?,
        );
        Ok(sd)
    }

    /// Restores a [`DinoTrainer::state_dict`] (strict: missing, unexpected or mis-shaped
    /// keys are errors). On error the trainer is unchanged.
    pub fn load_state_dict(&mut self, sd: &StateDict<B>) -> tessera_nn::Result<()> {
        let op = "DinoTrainer::load_state_dict";
        check_no_unexpected(
            sd,
            &["student.", "teacher.", "optimizer."],
            &["dino_loss.center", "iteration"],
        )?;
        let iteration = read_counter(sd, "iteration", op)?;
        let center = sd
            .get("dino_loss.center")
            .ok_or_else(|| arg_err!(op, "state dict lacks \"dino_loss.center\""))?;
        let (mut student, mut teacher) = (self.student.clone(), self.teacher.clone());
        let (mut optimizer, mut loss) = (self.optimizer.clone(), self.loss.clone());
        student.load_state_dict(&select_prefix(sd, "student."))?;
        teacher.load_state_dict(&select_prefix(sd, "teacher."))?;
        optimizer.load_state_dict(&select_prefix(sd, "optimizer."))?;
        loss.set_center(center.to_dtype(loss.center().dtype())?)?;
        self.student = student;
        self.teacher = teacher;
        self.optimizer = optimizer;
        self.loss = loss;
        self.iteration = iteration;
        Ok(())
    }
}

impl<B: Backend, M> DinoTrainer<B, M> {
    /// The student's backbone.
    pub fn student_backbone(&mut self) -> &mut M {
        &mut self.student.backbone
    }

    /// The teacher's backbone (what DINO evaluates and exports).
    pub fn teacher_backbone(&mut self) -> &mut M {
        &mut self.teacher.backbone
    }

    /// The student network (backbone and head).
    pub fn student(&self) -> &DinoStudent<B, M> {
        &self.student
    }

    /// The student network, mutable (e.g. to load weights before training).
    pub fn student_mut(&mut self) -> &mut DinoStudent<B, M> {
        &mut self.student
    }

    /// The teacher network (backbone and head).
    pub fn teacher(&self) -> &DinoStudent<B, M> {
        &self.teacher
    }

    /// The teacher network, mutable. Its parameters stay frozen only if what is written
    /// into them goes through `Param::set` (as `assign` / `load_state_dict` do).
    pub fn teacher_mut(&mut self) -> &mut DinoStudent<B, M> {
        &mut self.teacher
    }

    /// The loss, with its center.
    pub fn dino_loss(&self) -> &DinoLoss<B> {
        &self.loss
    }

    /// The optimizer.
    pub fn optimizer(&self) -> &AdamW<B> {
        &self.optimizer
    }

    /// The configuration.
    pub fn config(&self) -> &DinoConfig {
        &self.config
    }

    /// Iterations per epoch of the schedules.
    pub fn niter_per_epoch(&self) -> usize {
        self.niter_per_epoch
    }

    /// Steps taken so far (the next step's global iteration).
    pub fn iteration(&self) -> u64 {
        self.iteration
    }

    /// The learning-rate schedule, one value per iteration.
    pub fn lr_schedule(&self) -> &[f64] {
        &self.lr_schedule
    }

    /// The weight-decay schedule.
    pub fn wd_schedule(&self) -> &[f64] {
        &self.wd_schedule
    }

    /// The teacher-momentum schedule.
    pub fn momentum_schedule(&self) -> &[f64] {
        &self.momentum_schedule
    }
}

/// `(mean_rows H(q_row), H(mean_rows q))` for `q = softmax((t − center)/temp)`, in f64.
fn teacher_entropies<B: Backend>(
    teacher_out: &Tensor<B>,
    center: &Tensor<B>,
    temp: f64,
) -> tessera_nn::Result<(f64, f64)> {
    let (n, k) = (teacher_out.shape()[0], teacher_out.shape()[1]);
    let logits = teacher_out
        .sub(center)?
        .to_dtype(DType::F64)?
        .mul_scalar(1.0 / temp)?;
    let q = logits.softmax(-1)?.to_vec::<f64>()?;
    let ent = |p: &[f64]| -> f64 {
        p.iter()
            .filter(|&&x| x > 0.0)
            .map(|&x| -x * libm::log(x))
            .sum()
    };
    let mut mean = alloc::vec![0.0; k];
    let mut h = 0.0;
    for row in q.chunks(k) {
        h += ent(row);
        for (m, x) in mean.iter_mut().zip(row) {
            *m += x / n as f64;
        }
    }
    Ok((h / n as f64, ent(&mean)))
}
