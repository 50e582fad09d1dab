//! One BYOL iteration (Grill et al. 2020): online network regresses the target network's
//! projection of the other view; the target is an EMA of the online network.

use super::byol_optim::{ByolOptimizer, OnlineOptimizer};
use super::common::{
    check_ema_rate, check_no_unexpected, check_run_lengths, counter_tensor, decay_groups,
    dtype_backend, init_frozen_copy, read_counter, scheduled, two_part_module, without_classifiers,
};
use super::Backbone;
use crate::byol::{byol_loss, MlpHead, MlpHeadConfig};
use crate::dino::l2_normalize;
use crate::ema::{byol_momentum, ema_update};
use alloc::string::String;
use alloc::vec::Vec;
use tessera_autograd::{profile, Var};
use tessera_nn::checkpoint::{select_prefix, with_prefix, StateDict};
use tessera_nn::module::{join, Entry, EntryMut, Module};
use tessera_nn::optim::Optimizer;
use tessera_nn::schedule::byol_lr_schedule;
use tessera_nn::ModuleExt;
use tessera_tensor::{arg_err, Backend, DType, Rng, Tensor};

/// BYOL's hyper-parameters. [`ByolConfig::new`] gives the paper's ImageNet values, except
/// where noted.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ByolConfig {
    /// Projector (and predictor) hidden width (4096).
    pub projector_hidden_dim: usize,
    /// Projection size (256).
    pub projection_dim: usize,
    /// Base target EMA rate `τ_base`, raised to 1 by BYOL's cosine (0.996 for ImageNet; the
    /// paper's small-batch / short runs use 0.99, which moves the target faster).
    pub base_tau: f64,
    /// Base learning rate for a batch of 256 (0.2): the peak is `base_lr · batch_size / 256`.
    pub base_lr: f64,
    /// Images per batch, to scale the learning rate.
    pub batch_size: usize,
    /// Weight decay (1.5e-6), not applied to biases and BatchNorm parameters.
    pub weight_decay: f64,
    /// The online network's optimizer: BYOL's LARS (momentum 0.9, trust coefficient 1e-3) by
    /// default, or SGD.
    pub optimizer: ByolOptimizer,
    /// Linear warm-up of the learning rate from 0 (10 epochs), then cosine decay to 0, as
    /// BYOL's `learning_schedule`: step `k` of `W` warm-up steps gets `k·peak/W`
    /// ([`tessera_nn::schedule::byol_lr_schedule`]).
    pub warmup_epochs: usize,
    /// Training epochs (300 in BYOL; 1000 for the best results).
    pub epochs: usize,
}

impl ByolConfig {
    /// BYOL's ImageNet setup: projector 4096 → 256, `τ_base` 0.996, LARS with base lr 0.2,
    /// weight decay 1.5e-6, 10 warm-up epochs, batch 4096.
    pub fn new(epochs: usize) -> Self {
        ByolConfig {
            projector_hidden_dim: 4096,
            projection_dim: 256,
            base_tau: 0.996,
            base_lr: 0.2,
            batch_size: 4096,
            weight_decay: 1.5e-6,
            optimizer: ByolOptimizer::default(),
            warmup_epochs: 10,
            epochs,
        }
    }

    /// The peak learning rate `base_lr · batch_size / 256`.
    pub fn scaled_lr(&self) -> f64 {
        self.base_lr * self.batch_size as f64 / 256.0
    }
}

/// Backbone and projector: the target network, and the part of the online network it
/// tracks. Names `backbone.*`, `projector.*`.
#[derive(Clone, Debug)]
pub struct ByolNet<B: Backend, M> {
    pub backbone: M,
    pub projector: MlpHead<B>,
}

impl<B: Backend, M: Backbone<B>> ByolNet<B, M> {
    /// The projection `[b, projection_dim]` of images `[b, c, h, w]`.
    pub fn forward(&mut self, x: &Var<B>) -> tessera_tensor::Result<Var<B>> {
        let f = self.backbone.forward_features(x)?;
        self.projector.forward(&f)
    }
}

two_part_module!(ByolNet, backbone, projector);

/// The online network: [`ByolNet`] plus the predictor (names `backbone.*`, `projector.*`,
/// `predictor.*`).
#[derive(Clone, Debug)]
pub struct ByolOnline<B: Backend, M> {
    pub net: ByolNet<B, M>,
    pub predictor: MlpHead<B>,
}

impl<B: Backend, M: Module<B>> Module<B> for ByolOnline<B, M> {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_, B>)) {
        self.net.visit(prefix, f);
        self.predictor.visit(&join(prefix, "predictor"), f);
    }

    fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, EntryMut<'_, B>)) {
        self.net.visit_mut(prefix, f);
        self.predictor.visit_mut(&join(prefix, "predictor"), f);
    }

    fn set_training(&mut self, training: bool) {
        self.net.set_training(training);
        self.predictor.set_training(training);
    }
}

/// What one BYOL iteration reports.
#[derive(Clone, Debug, PartialEq)]
pub struct ByolStepStats {
    /// The symmetric loss `mean_b(ℓ(p1, z2) + ℓ(p2, z1))`, in `[0, 8]`.
    pub loss: f64,
    /// Learning rate used.
    pub lr: f64,
    /// Target EMA rate used.
    pub tau: f64,
    /// Collapse monitor: the standard deviation across the batch of the L2-normalized online
    /// projection of view 1, averaged over dimensions. A collapsed (constant) output gives
    /// 0; well-spread outputs give about `1/sqrt(projection_dim)`. `None` unless
    /// [`ByolTrainer::diagnostics`] is set (it reads the device).
    pub embedding_std: Option<f64>,
    /// The global iteration this step used.
    pub iteration: u64,
}

/// BYOL's online/target pair, optimizer (LARS or SGD) and schedules: see [`ByolTrainer::train_step`].
#[derive(Debug)]
pub struct ByolTrainer<B: Backend, M> {
    online: ByolOnline<B, M>,
    target: ByolNet<B, M>,
    optimizer: OnlineOptimizer<B>,
    config: ByolConfig,
    lr_schedule: Vec<f64>,
    iteration: u64,
    /// Compute the step's collapse monitor (`embedding_std`), which reads the device; off by
    /// default so that a step reads only its loss.
    pub diagnostics: bool,
}

impl<B: Backend, M: Backbone<B>> ByolTrainer<B, M> {
    /// Builds the online network (`online_backbone`, a projector and a predictor drawn from
    /// `rng`) and the target (`target_backbone` + a projector) as a frozen copy of the online
    /// backbone and projector; `cfg.optimizer` (LARS by default) with two groups
    /// ([`split_decay_groups`](tessera_nn::optim::split_decay_groups): weights with weight
    /// decay (and LARS's trust-ratio adaptation), biases and BatchNorm parameters without);
    /// learning rate warm-up then cosine to 0 over `epochs × niter_per_epoch` iterations.
    pub fn new(
        online_backbone: M,
        target_backbone: M,
        cfg: ByolConfig,
        niter_per_epoch: usize,
        rng: &mut Rng,
    ) -> tessera_nn::Result<Self> {
        let op = "ByolTrainer::new";
        let (ob, tb) = without_classifiers(online_backbone, target_backbone);
        check_run_lengths(op, cfg.epochs, niter_per_epoch, cfg.batch_size)?;
        check_ema_rate(op, "base_tau", cfg.base_tau)?;
        let (dtype, backend) = dtype_backend(&ob, op)?;
        let proj_cfg = MlpHeadConfig {
            in_dim: ob.embed_dim(),
            hidden_dim: cfg.projector_hidden_dim,
            out_dim: cfg.projection_dim,
            last_bias: false, // DeepMind's `MLP`: no bias in the last Linear
        };
        let projector = MlpHead::new(proj_cfg, dtype, rng, &backend)?;
        let pred_cfg = MlpHeadConfig {
            in_dim: cfg.projection_dim,
            ..proj_cfg
        };
        let predictor = MlpHead::new(pred_cfg, dtype, rng, &backend)?;
        let online = ByolOnline {
            net: ByolNet {
                backbone: ob,
                projector,
            },
            predictor,
        };
        let mut target = ByolNet {
            backbone: tb,
            projector: online.net.projector.clone(),
        };
        init_frozen_copy(&online.net, &mut target)?;
        let lr = cfg.scaled_lr();
        let optimizer = cfg
            .optimizer
            .build(decay_groups(&online, lr, cfg.weight_decay))?;
        // BYOL's own warm-up, `k·peak/W` (not DINO's `linspace`, which peaks a step early).
        let total = cfg.epochs.checked_mul(niter_per_epoch).ok_or_else(|| {
            arg_err!(
                op,
                "{} epochs x {niter_per_epoch} steps overflows",
                cfg.epochs
            )
        })?;
        let lr_schedule =
            byol_lr_schedule(lr, total, cfg.warmup_epochs.saturating_mul(niter_per_epoch))?;
        Ok(ByolTrainer {
            online,
            target,
            optimizer,
            config: cfg,
            lr_schedule,
            iteration: 0,
            diagnostics: false,
        })
    }

    /// One BYOL iteration on two augmented views `[b, c, h, w]` of the same images: the
    /// scheduled learning rate; online projections and predictions of each view (one forward
    /// per view, so BatchNorm normalizes each view on its own as in BYOL); target projections
    /// (no graph); [`byol_loss`]; backward; optimizer step; target EMA with
    /// `τ = 1 − (1 − τ_base)(cos(πk/K) + 1)/2`; iteration counter + 1.
    pub fn train_step(
        &mut self,
        view1: &Tensor<B>,
        view2: &Tensor<B>,
    ) -> tessera_nn::Result<ByolStepStats> {
        let op = "ByolTrainer::train_step";
        let it = self.iteration;
        let total = self.lr_schedule.len() as u64;
        let [lr] = scheduled(op, it, [&self.lr_schedule])?;
        if view1.shape() != view2.shape() || view1.rank() != 4 || view1.shape()[0] < 2 {
            return Err(arg_err!(
                op,
                "the views must have the same shape [b >= 2, c, h, w], got {:?} and {:?}",
                view1.shape(),
                view2.shape()
            )
            .into());
        }
        let tau = byol_momentum(self.config.base_tau, it, total);
        // The step runs in place on the trainer's networks and optimizer state (no copy of
        // the model per step): the inputs were checked above, so only a failure of the
        // backend itself can stop it midway.
        let (online, target) = (&mut self.online, &mut self.target);
        // The step's parts, timed when `tessera_autograd::profile` is on.
        let device = view1.backend();
        let phase = profile::phase(device, "online forward");
        let (v1, v2) = (Var::constant(view1.clone()), Var::constant(view2.clone()));
        let z1_online = online.net.forward(&v1)?;
        let z2_online = online.net.forward(&v2)?;
        let p1 = online.predictor.forward(&z1_online)?;
        let p2 = online.predictor.forward(&z2_online)?;
        drop(phase);
        let phase = profile::phase(device, "target forward");
        let z1 = target.forward(&v1)?.value().clone();
        let z2 = target.forward(&v2)?.value().clone();
        drop(phase);
        let phase = profile::phase(device, "loss");
        let loss = byol_loss(&p1, &p2, &z1, &z2)?;
        let loss_value = loss.value().item()?;
        let embedding_std = match self.diagnostics {
            true => Some(embedding_std(z1_online.value())?),
            false => None,
        };
        drop(phase);
        // Only the loss holds the graph now, so backward frees it layer by layer.
        drop((z1_online, z2_online, p1, p2, v1, v2));
        let phase = profile::phase(device, "backward");
        let grads = loss.backward_consume()?;
        let grads = online.grads_by_name(&grads);
        drop(phase);
        let phase = profile::phase(device, "optimizer");
        self.optimizer.set_lr(lr);
        self.optimizer.step_module(online, &grads)?;
        drop((grads, phase));
        let phase = profile::phase(device, "target EMA");
        ema_update(target, &online.net, tau)?;
        drop(phase);
        self.iteration += 1;
        Ok(ByolStepStats {
            loss: loss_value,
            lr,
            tau,
            embedding_std,
            iteration: it,
        })
    }

    /// Everything a resumed run needs: `online.*`, `target.*`, `optimizer.*` (the momentum
    /// buffers) and `iteration` (a rank-0 F64 tensor).
    pub fn state_dict(&self) -> tessera_nn::Result<StateDict<B>> {
        let online = self.online.state_dict();
        let backend = online
            .values()
            .next()
            .map(|t| t.backend().clone())
            .ok_or_else(|| arg_err!("ByolTrainer::state_dict", "no parameters"))?;
        let mut sd = with_prefix(&online, "online.");
        sd.extend(with_prefix(&self.target.state_dict(), "target."));
        sd.extend(with_prefix(&self.optimizer.state_dict(), "optimizer."));
        sd.insert(
            String::from("iteration"),
            counter_tensor(self.iteration, &backend)?,
        );
        Ok(sd)
    }

    /// Restores a [`ByolTrainer::state_dict`] (strict). On error the trainer is unchanged.
    pub fn load_state_dict(&mut self, sd: &StateDict<B>) -> tessera_nn::Result<()> {
        check_no_unexpected(sd, &["online.", "target.", "optimizer."], &["iteration"])?;
        let iteration = read_counter(sd, "iteration", "ByolTrainer::load_state_dict")?;
        let (mut online, mut target) = (self.online.clone(), self.target.clone());
        let mut optimizer = self.optimizer.clone();
        online.load_state_dict(&select_prefix(sd, "online."))?;
        target.load_state_dict(&select_prefix(sd, "target."))?;
        optimizer.load_state_dict(&select_prefix(sd, "optimizer."))?;
        self.online = online;
        self.target = target;
        self.optimizer = optimizer;
        self.iteration = iteration;
        Ok(())
    }
}

impl<B: Backend, M> ByolTrainer<B, M> {
    /// The online backbone (what BYOL evaluates).
    pub fn online_backbone(&mut self) -> &mut M {
        &mut self.online.net.backbone
    }

    /// The target backbone.
    pub fn target_backbone(&mut self) -> &mut M {
        &mut self.target.backbone
    }

    /// The online network.
    pub fn online(&self) -> &ByolOnline<B, M> {
        &self.online
    }

    /// The target network.
    pub fn target(&self) -> &ByolNet<B, M> {
        &self.target
    }

    /// The configuration.
    pub fn config(&self) -> &ByolConfig {
        &self.config
    }

    /// Steps taken so far.
    pub fn iteration(&self) -> u64 {
        self.iteration
    }

    /// The learning-rate schedule, one value per iteration.
    pub fn lr_schedule(&self) -> &[f64] {
        &self.lr_schedule
    }
}

/// Std across rows (biased) of the L2-normalized rows, averaged over columns, in f64.
fn embedding_std<B: Backend>(z: &Tensor<B>) -> tessera_nn::Result<f64> {
    let z = l2_normalize(&Var::constant(z.to_dtype(DType::F64)?), 1e-12)?;
    let v = z.value().var(&[0], 0, false)?.sqrt()?.mean(&[], false)?;
    Ok(v.item()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_nn::models::vit::{VisionTransformer, VitConfig};
    use tessera_tensor::Cpu;

    fn vit(seed: u64) -> VisionTransformer<Cpu> {
        let cfg = VitConfig {
            img_size: 8,
            in_chans: 1,
            embed_dim: 8,
            depth: 1,
            num_heads: 2,
            ..VitConfig::tiny(4)
        };
        VisionTransformer::new(cfg, DType::F64, &mut Rng::new(seed), &Cpu).unwrap()
    }

    fn trainer() -> ByolTrainer<Cpu, VisionTransformer<Cpu>> {
        let cfg = ByolConfig {
            projector_hidden_dim: 16,
            projection_dim: 4,
            batch_size: 4,
            warmup_epochs: 0,
            ..ByolConfig::new(2)
        };
        ByolTrainer::new(vit(1), vit(2), cfg, 2, &mut Rng::new(3)).unwrap()
    }

    fn same(a: &StateDict<Cpu>, b: &StateDict<Cpu>) -> bool {
        a.len() == b.len()
            && a.iter().all(|(k, t)| {
                b.get(k).map(|u| u.to_f64_vec().unwrap()) == Some(t.to_f64_vec().unwrap())
            })
    }

    #[test]
    fn target_starts_as_copy_and_resume_is_exact() {
        let mut rng = Rng::new(9);
        let mut view =
            || Tensor::randn(&[4, 1, 8, 8], 0.0, 1.0, DType::F64, &mut rng, &Cpu).unwrap();
        let (v1, v2, v3, v4) = (view(), view(), view(), view());
        let mut a = trainer();
        assert!(same(&a.target().state_dict(), &a.online().net.state_dict()));
        assert!(a.target().named_params().iter().all(|(_, p)| p.is_frozen()));
        let s0 = a.train_step(&v1, &v2).unwrap();
        assert!(s0.loss.is_finite() && s0.loss >= 0.0 && s0.loss <= 8.0);
        assert_eq!(s0.tau, 0.996);
        let sd = a.state_dict().unwrap();
        let mut b = trainer();
        b.load_state_dict(&sd).unwrap();
        assert_eq!(b.iteration(), 1);
        let (sa, sb) = (
            a.train_step(&v3, &v4).unwrap(),
            b.train_step(&v3, &v4).unwrap(),
        );
        assert_eq!(sa, sb);
        assert!(same(&a.state_dict().unwrap(), &b.state_dict().unwrap()));
        // Bad inputs are errors and change nothing; so is running past the schedule.
        let before = b.state_dict().unwrap();
        let small = Tensor::zeros(&[4, 1, 4, 4], DType::F64, &Cpu).unwrap();
        assert!(b.train_step(&v1, &small).is_err());
        assert!(same(&b.state_dict().unwrap(), &before));
        b.train_step(&v1, &v2).unwrap();
        b.train_step(&v1, &v2).unwrap();
        assert!(b.train_step(&v1, &v2).is_err());
        let mut bad = sd.clone();
        bad.insert(String::from("extra"), small);
        assert!(b.load_state_dict(&bad).is_err());
    }
}
