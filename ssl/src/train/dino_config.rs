//! DINO's hyper-parameters ([`DinoConfig`], `main_dino.py`'s arguments) and the schedules
//! measured in steps ([`StepSchedule`]), with the head's and the loss's configurations
//! derived from them.

use crate::dino::{DinoHeadConfig, DinoLossConfig};

/// DINO's hyper-parameters (the arguments of `main_dino.py`). [`DinoConfig::new`] gives
/// DINO's defaults, except where noted.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DinoConfig {
    /// `K`, the head's output dimension (`--out_dim`, 65536).
    pub out_dim: usize,
    /// Fix the last layer's `g` at 1 (`--norm_last_layer`, true).
    pub norm_last_layer: bool,
    /// Linear layers of the head's MLP (3).
    pub head_nlayers: usize,
    /// Hidden width of the head's MLP (2048).
    pub head_hidden_dim: usize,
    /// Bottleneck width of the head (256).
    pub head_bottleneck_dim: usize,
    /// Base teacher EMA momentum, raised to 1 by a cosine schedule (`--momentum_teacher`,
    /// 0.996).
    pub momentum_teacher: f64,
    /// Initial teacher temperature (`--warmup_teacher_temp`, 0.04).
    pub warmup_teacher_temp: f64,
    /// Teacher temperature after the warm-up (`--teacher_temp`, 0.04).
    pub teacher_temp: f64,
    /// Epochs of the teacher-temperature warm-up (`--warmup_teacher_temp_epochs`: DINO's
    /// default is 30, which needs `epochs >= 30`; [`DinoConfig::new`] uses 0 so that short
    /// runs work, which with the default temperatures 0.04 → 0.04 changes nothing).
    pub warmup_teacher_temp_epochs: usize,
    /// Student temperature (0.1).
    pub student_temp: f64,
    /// Momentum of the center's EMA (0.9).
    pub center_momentum: f64,
    /// Weight decay at the start of the cosine schedule (`--weight_decay`, 0.04).
    pub weight_decay: f64,
    /// Weight decay at the end (`--weight_decay_end`, 0.4).
    pub weight_decay_end: f64,
    /// Per-parameter gradient clipping norm (`--clip_grad`, 3.0); 0 disables it as in DINO.
    pub clip_grad: f64,
    /// Epochs during which the head's last layer gets no update (`--freeze_last_layer`, 1).
    pub freeze_last_layer: usize,
    /// Base learning rate for a batch of 256 (`--lr`, 0.0005): the peak is
    /// `lr · batch_size / 256`.
    pub lr: f64,
    /// Images per batch (`--batch_size_per_gpu` × GPUs, 64 on one GPU), to scale `lr`.
    pub batch_size: usize,
    /// Final learning rate of the cosine schedule (`--min_lr`, 1e-6).
    pub min_lr: f64,
    /// Linear learning-rate warm-up from 0 (`--warmup_epochs`, 10).
    pub warmup_epochs: usize,
    /// Training epochs (`--epochs`, 100).
    pub epochs: usize,
    /// Local crops per image (`--local_crops_number`, 8).
    pub local_crops_number: usize,
    /// Side of the global crops (224).
    pub global_crops_size: usize,
    /// Side of the local crops (96).
    pub local_crops_size: usize,
    /// Warm-ups and the frozen last layer measured in steps instead of epochs (`None`, the
    /// default: DINO's epochs). The run still lasts `epochs` epochs.
    pub step_schedule: Option<StepSchedule>,
}

/// The lengths of DINO's warm-ups and of the frozen last layer in optimizer steps, for runs
/// of a few epochs: DINO's ImageNet run has ~1,250 steps per epoch, so its 10 warm-up epochs
/// and 1 frozen epoch are a small part of 100 epochs; a short run on a small dataset that
/// counted them in epochs would spend itself warming up. With a step schedule the learning
/// rate, weight decay and momentum schedules are built by [`cosine_schedule_steps`] over
/// `epochs · niter_per_epoch` steps, the teacher temperature has one value per step, and the
/// last layer is frozen while `iteration < freeze_last_layer`.
///
/// [`cosine_schedule_steps`]: tessera_nn::schedule::cosine_schedule_steps
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StepSchedule {
    /// Steps of the linear learning-rate warm-up (replaces `warmup_epochs`).
    pub warmup: usize,
    /// Steps of the teacher-temperature warm-up (replaces `warmup_teacher_temp_epochs`).
    pub warmup_teacher_temp: usize,
    /// Steps during which the head's last layer gets no update (replaces
    /// `freeze_last_layer`).
    pub freeze_last_layer: usize,
}

impl DinoConfig {
    /// DINO's defaults (`main_dino.py`), with `warmup_teacher_temp_epochs = 0` (see the field).
    pub fn new(out_dim: usize, epochs: usize) -> Self {
        DinoConfig {
            out_dim,
            norm_last_layer: true,
            head_nlayers: 3,
            head_hidden_dim: 2048,
            head_bottleneck_dim: 256,
            momentum_teacher: 0.996,
            warmup_teacher_temp: 0.04,
            teacher_temp: 0.04,
            warmup_teacher_temp_epochs: 0,
            student_temp: 0.1,
            center_momentum: 0.9,
            weight_decay: 0.04,
            weight_decay_end: 0.4,
            clip_grad: 3.0,
            freeze_last_layer: 1,
            lr: 0.0005,
            batch_size: 64,
            min_lr: 1e-6,
            warmup_epochs: 10,
            epochs,
            local_crops_number: 8,
            global_crops_size: 224,
            local_crops_size: 96,
            step_schedule: None,
        }
    }

    /// The peak learning rate, `lr · batch_size / 256` (DINO's linear scaling rule).
    pub fn scaled_lr(&self) -> f64 {
        self.lr * self.batch_size as f64 / 256.0
    }

    /// The head's configuration.
    pub fn head_config(&self, in_dim: usize) -> DinoHeadConfig {
        DinoHeadConfig {
            in_dim,
            out_dim: self.out_dim,
            norm_last_layer: self.norm_last_layer,
            nlayers: self.head_nlayers,
            hidden_dim: self.head_hidden_dim,
            bottleneck_dim: self.head_bottleneck_dim,
        }
    }

    /// The loss's configuration for a run of `niter_per_epoch` steps per epoch (`ncrops = 2 +
    /// local_crops_number`). With a [`StepSchedule`] the loss's temperature schedule has one
    /// entry per step (its "epochs" are steps); otherwise one per epoch, as in DINO.
    pub fn loss_config(&self, niter_per_epoch: usize) -> DinoLossConfig {
        let (warmup, len) = match self.step_schedule {
            Some(s) => (
                s.warmup_teacher_temp,
                self.epochs.saturating_mul(niter_per_epoch),
            ),
            None => (self.warmup_teacher_temp_epochs, self.epochs),
        };
        DinoLossConfig {
            out_dim: self.out_dim,
            ncrops: 2 + self.local_crops_number,
            warmup_teacher_temp: self.warmup_teacher_temp,
            teacher_temp: self.teacher_temp,
            warmup_teacher_temp_epochs: warmup,
            nepochs: len,
            student_temp: self.student_temp,
            center_momentum: self.center_momentum,
        }
    }
}
