//! Whole training steps: a tiny DINO ViT and a tiny BYOL ResNet built with identical weights
//! and inputs on the [`Cpu`] and on the backend, one forward + backward + optimizer step on
//! each, and the loss, the gradients and every tensor of the trainer's state afterwards
//! (student/online and teacher/target parameters, optimizer state, DINO's center) compared
//! within the table's [`OpFamily::WholeStep`] cell for F32.
//!
//! The weights are drawn once on the CPU and copied to the backend through the trainers'
//! state dicts (`to_host` / `from_host`), so the check does not depend on the backend's
//! random-number path.

use crate::compare::{compare_tensors, compare_values, to_backend, Failure};
use crate::props::{Input, View};
use crate::tolerance::{OpFamily, Tolerance, ToleranceTable};
use tessera_autograd::Var;
use tessera_nn::models::resnet::{BlockKind, ResNet, ResNetConfig};
use tessera_nn::models::vit::{VisionTransformer, VitConfig};
use tessera_nn::{ModuleExt, StateDict};
use tessera_ssl::byol::byol_loss;
use tessera_ssl::train::{ByolConfig, ByolTrainer, DinoConfig, DinoTrainer};
use tessera_tensor::{Backend, Cpu, DType, Rng, Tensor};

type R = Result<(), Failure>;

/// The dtype the whole-step checks train in.
pub const STEP_DTYPE: DType = DType::F32;

/// `$e?` with its error turned into a [`Failure`] of `$what`.
macro_rules! t {
    ($what:expr, $e:expr) => {
        $e.map_err(|e| Failure::error(&$what, e))?
    };
}

/// A state dict moved to `dev`.
pub fn state_dict_to<B: Backend>(
    sd: &StateDict<Cpu>,
    dev: &B,
) -> tessera_tensor::Result<StateDict<B>> {
    sd.iter()
        .map(|(k, t)| Ok((k.clone(), to_backend(t, dev)?)))
        .collect()
}

/// `tol` with its absolute part scaled by the tensor's largest magnitude (when above 1).
///
/// A whole step's rounding error in an element is a multiple of the largest terms summed into
/// it, not of the element itself: a small gradient that is the difference of large ones has an
/// error of the large ones' size. Measured on the tiny BYOL check: the CPU's own f32 gradient
/// of the first conv (largest element 13.2) differs from the f64 one by 1.18 × the unscaled
/// bound, so no f32 backend could meet it; scaled, it uses about a tenth of the bound.
fn scaled_to(expected: &Tensor<Cpu>, tol: Tolerance) -> Tolerance {
    let largest = expected
        .to_f64_vec()
        .map(|v| {
            v.iter()
                .filter(|x| x.is_finite())
                .fold(0.0f64, |m, x| m.max(x.abs()))
        })
        .unwrap_or(1.0);
    Tolerance::new(tol.atol * largest.max(1.0), tol.rtol)
}

/// Compares two state dicts: the same names, then every tensor within `tol`, whose absolute
/// part is scaled by each tensor's largest magnitude (see `scaled_to`).
pub fn compare_state_dicts<B: Backend>(
    what: &str,
    expected: &StateDict<Cpu>,
    actual: &StateDict<B>,
    tol: Tolerance,
) -> R {
    let (ek, ak): (Vec<_>, Vec<_>) = (expected.keys().collect(), actual.keys().collect());
    if ek != ak {
        return Err(Failure::new(
            what,
            format!("names differ: expected {ek:?}, actual {ak:?}"),
        ));
    }
    for (k, e) in expected {
        compare_tensors(&format!("{what}/{k}"), e, &actual[k], scaled_to(e, tol))?;
    }
    Ok(())
}

fn compare_loss(what: &str, expected: f64, actual: f64, tol: Tolerance) -> R {
    compare_values(what, &[], &[expected], &[actual], tol)
}

fn images<B: Backend>(dev: &B, shape: &[usize], seed: u64) -> tessera_tensor::Result<Tensor<B>> {
    Input {
        shape: shape.to_vec(),
        dtype: STEP_DTYPE,
        view: View::Contiguous,
        seed,
    }
    .build(dev)
}

/// How large a whole-step check is: the tiny models (seconds, for every backend's CI) or the
/// papers' models (ViT-S/16 with 2 × 224-px + 10 × 96-px crops; ResNet-50 at 224 px), for a
/// device that can afford them (the GPU session).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepSize {
    /// The tiny models of [`check_dino_vit_step`] and [`check_byol_resnet_step`].
    Tiny,
    /// The papers' backbones and crops, at this batch size.
    Paper {
        /// Images per step.
        batch: usize,
    },
}

fn vit_for<B: Backend>(dev: &B, size: StepSize) -> tessera_nn::Result<VisionTransformer<B>> {
    let cfg = match size {
        StepSize::Tiny => VitConfig {
            img_size: 16,
            in_chans: 3,
            embed_dim: 16,
            depth: 2,
            num_heads: 2,
            ..VitConfig::tiny(4)
        },
        StepSize::Paper { .. } => VitConfig::small(16),
    };
    VisionTransformer::new(cfg, STEP_DTYPE, &mut Rng::new(11), dev)
}

fn dino_config_for(size: StepSize) -> DinoConfig {
    match size {
        StepSize::Tiny => dino_config(),
        StepSize::Paper { batch } => DinoConfig {
            out_dim: 65536,
            batch_size: batch,
            warmup_epochs: 0,
            local_crops_number: 10,
            ..DinoConfig::new(65536, 100)
        },
    }
}

fn dino_config() -> DinoConfig {
    DinoConfig {
        head_hidden_dim: 12,
        head_bottleneck_dim: 6,
        lr: 0.1,
        batch_size: 2,
        warmup_epochs: 0,
        teacher_temp: 0.07,
        warmup_teacher_temp_epochs: 1,
        clip_grad: 0.3,
        local_crops_number: 2,
        global_crops_size: 16,
        local_crops_size: 8,
        ..DinoConfig::new(8, 2)
    }
}

fn dino_trainer<B: Backend>(
    dev: &B,
    size: StepSize,
) -> tessera_nn::Result<DinoTrainer<B, VisionTransformer<B>>> {
    let mut t = DinoTrainer::new(
        vit_for(dev, size)?,
        vit_for(dev, size)?,
        dino_config_for(size),
        1,
        &mut Rng::new(12),
    )?;
    t.record_gradients = true;
    Ok(t)
}

/// One DINO step (ViT with 16-px images, patch 4, embed 16, depth 2, 2 heads; DINO head
/// 12-6-8; 2 global crops of 16 px and 2 local crops of 8 px per image, batch 2; AdamW,
/// gradient clipping) on `dev` and on the CPU from identical weights and crops; compares
/// the loss, the gradients before and after clipping, and the trainer's whole state after
/// the step (student, teacher, AdamW moments, center) within `tol`'s whole-step F32 cell.
pub fn check_dino_vit_step<B: Backend>(dev: &B, tol: &ToleranceTable) -> R {
    check_dino_vit_step_sized(dev, tol, StepSize::Tiny)
}

/// [`check_dino_vit_step`] at either [`StepSize`]. `Paper` is DINO's ViT-S/16 recipe (head
/// 2048-256-65536, 2 global crops of 224 px and 10 local crops of 96 px per image).
pub fn check_dino_vit_step_sized<B: Backend>(dev: &B, tol: &ToleranceTable, size: StepSize) -> R {
    let what = format!("steps/dino_vit ({size:?}) on {}", dev.name());
    let tol = tol.get(STEP_DTYPE, OpFamily::WholeStep);
    let mut cpu = t!(what, dino_trainer(&Cpu, size));
    let mut other = t!(what, dino_trainer(dev, size));
    let init = t!(what, cpu.state_dict());
    t!(
        what,
        other.load_state_dict(&t!(what, state_dict_to(&init, dev)))
    );
    let cfg = dino_config_for(size);
    let b = cfg.batch_size;
    let global = [2 * b, 3, cfg.global_crops_size, cfg.global_crops_size];
    let local = [
        cfg.local_crops_number * b,
        3,
        cfg.local_crops_size,
        cfg.local_crops_size,
    ];
    let groups = |d: &B| -> tessera_tensor::Result<[Tensor<B>; 2]> {
        Ok([images(d, &global, 1)?, images(d, &local, 2)?])
    };
    let cpu_groups = [
        t!(what, images(&Cpu, &global, 1)),
        t!(what, images(&Cpu, &local, 2)),
    ];
    let want = t!(what, cpu.train_step(&cpu_groups, 0));
    let got = t!(what, other.train_step(&t!(what, groups(dev)), 0));
    compare_loss(&format!("{what}/loss"), want.loss, got.loss, tol)?;
    let (wr, wc) = cpu.last_gradients().expect("recorded gradients");
    let (gr, gc) = other.last_gradients().expect("recorded gradients");
    compare_state_dicts(&format!("{what}/grad before clipping"), wr, gr, tol)?;
    compare_state_dicts(&format!("{what}/grad after clipping"), wc, gc, tol)?;
    compare_state_dicts(
        &format!("{what}/state after the step"),
        &t!(what, cpu.state_dict()),
        &t!(what, other.state_dict()),
        tol,
    )
}

fn resnet_for<B: Backend>(dev: &B, size: StepSize) -> tessera_nn::Result<ResNet<B>> {
    let cfg = match size {
        StepSize::Tiny => ResNetConfig {
            block: BlockKind::Basic,
            layers: [1, 1, 1, 1],
            num_classes: 0,
            in_channels: 3,
            small_stem: true,
            zero_init_residual: false,
            base_channels: 64,
            conv_init: tessera_nn::models::resnet::ConvInit::Torchvision,
        },
        StepSize::Paper { .. } => ResNetConfig::resnet50(0),
    };
    ResNet::new(cfg, STEP_DTYPE, &mut Rng::new(21), dev)
}

fn byol_config_for(size: StepSize) -> ByolConfig {
    match size {
        StepSize::Tiny => ByolConfig {
            projector_hidden_dim: 16,
            projection_dim: 8,
            batch_size: 4,
            warmup_epochs: 0,
            ..ByolConfig::new(2)
        },
        StepSize::Paper { batch } => ByolConfig {
            batch_size: batch,
            warmup_epochs: 0,
            ..ByolConfig::new(300)
        },
    }
}

fn byol_trainer<B: Backend>(
    dev: &B,
    size: StepSize,
) -> tessera_nn::Result<ByolTrainer<B, ResNet<B>>> {
    ByolTrainer::new(
        resnet_for(dev, size)?,
        resnet_for(dev, size)?,
        byol_config_for(size),
        1,
        &mut Rng::new(22),
    )
}

/// The BYOL loss of the trainer's current networks on `v1`, `v2` and the online network's
/// gradients by name (what `train_step` computes before the LARS step).
fn byol_grads<B: Backend>(
    t: &ByolTrainer<B, ResNet<B>>,
    v1: &Tensor<B>,
    v2: &Tensor<B>,
) -> tessera_tensor::Result<(f64, StateDict<B>)> {
    let mut online = t.online().clone();
    let mut target = t.target().clone();
    let (v1, v2) = (Var::constant(v1.clone()), Var::constant(v2.clone()));
    let p1 = online.predictor.forward(&online.net.forward(&v1)?)?;
    let p2 = online.predictor.forward(&online.net.forward(&v2)?)?;
    let z1 = target.forward(&v1)?.value().clone();
    let z2 = target.forward(&v2)?.value().clone();
    let loss = byol_loss(&p1, &p2, &z1, &z2)?;
    let grads = loss.backward()?;
    Ok((loss.value().item()?, online.grads_by_name(&grads)))
}

/// One BYOL step (ResNet with one basic block per stage and the small stem, 8-px images,
/// batch 4; projector and predictor 512-16-8; LARS) on `dev` and on the CPU from identical
/// weights and views; compares the loss, the online network's gradients (BatchNorm in
/// training mode, per view) and the trainer's whole state after the step (online and target
/// parameters, BatchNorm running statistics, LARS momentum) within `tol`'s whole-step F32
/// cell.
pub fn check_byol_resnet_step<B: Backend>(dev: &B, tol: &ToleranceTable) -> R {
    check_byol_resnet_step_sized(dev, tol, StepSize::Tiny)
}

/// [`check_byol_resnet_step`] at either [`StepSize`]. `Paper` is torchvision's ResNet-50 with
/// BYOL's 4096-256 projector and predictor, on 224-px views.
pub fn check_byol_resnet_step_sized<B: Backend>(
    dev: &B,
    tol: &ToleranceTable,
    size: StepSize,
) -> R {
    let what = format!("steps/byol_resnet ({size:?}) on {}", dev.name());
    let tol = tol.get(STEP_DTYPE, OpFamily::WholeStep);
    let mut cpu = t!(what, byol_trainer(&Cpu, size));
    let mut other = t!(what, byol_trainer(dev, size));
    let init = t!(what, cpu.state_dict());
    t!(
        what,
        other.load_state_dict(&t!(what, state_dict_to(&init, dev)))
    );
    let shape = match size {
        StepSize::Tiny => [4, 3, 8, 8],
        StepSize::Paper { batch } => [batch, 3, 224, 224],
    };
    let views = |seed| -> tessera_tensor::Result<_> {
        Ok((images(&Cpu, &shape, seed)?, images(dev, &shape, seed)?))
    };
    let ((c1, d1), (c2, d2)) = (t!(what, views(3)), t!(what, views(4)));
    let (wl, wg) = t!(what, byol_grads(&cpu, &c1, &c2));
    let (gl, gg) = t!(what, byol_grads(&other, &d1, &d2));
    compare_loss(&format!("{what}/loss"), wl, gl, tol)?;
    compare_state_dicts(&format!("{what}/grad"), &wg, &gg, tol)?;
    let want = t!(what, cpu.train_step(&c1, &c2));
    let got = t!(what, other.train_step(&d1, &d2));
    compare_loss(&format!("{what}/step loss"), want.loss, got.loss, tol)?;
    compare_state_dicts(
        &format!("{what}/state after the step"),
        &t!(what, cpu.state_dict()),
        &t!(what, other.state_dict()),
        tol,
    )
}
