//! The tiny DINO run shared by `tests/dino_matches_cpu.rs` and `examples/count_dino_step.rs`:
//! the configuration of the conformance kit's whole-step check (`tessera_testkit::steps`:
//! a ViT with 16-px images, patch 4, embed 16, depth 2, 2 heads; DINO head 12-6-8; per image
//! 2 global crops of 16 px and 2 local crops of 8 px; batch 2; AdamW, clipping at 0.3, teacher
//! EMA, centering), run for [`STEPS`] steps (2 epochs of 2 iterations, so the last layer is
//! frozen in the first epoch and trained in the second).
//!
//! The weights are drawn once on the CPU and copied to the other backend through the
//! trainer's state dict (`to_host` / `from_host`); the crops are drawn on the host from a
//! fixed seed per step and uploaded to each backend. So both backends start from the same
//! bits and see the same inputs.

#![allow(dead_code)] // each includer uses a part

use std::collections::BTreeMap;
use tessera_nn::models::vit::{VisionTransformer, VitConfig};
use tessera_nn::StateDict;
use tessera_ssl::train::{DinoConfig, DinoTrainer};
use tessera_tensor::{Backend, Cpu, DType, Rng, Tensor};

/// Iterations per epoch.
pub const ITERS_PER_EPOCH: usize = 2;
/// Epochs; the run is `EPOCHS * ITERS_PER_EPOCH` steps.
pub const EPOCHS: usize = 2;
/// Steps of the run.
pub const STEPS: usize = EPOCHS * ITERS_PER_EPOCH;

/// The trainer type on backend `B`.
pub type Trainer<B> = DinoTrainer<B, VisionTransformer<B>>;

/// The backbone: the kit's tiny ViT.
pub fn vit_config() -> VitConfig {
    VitConfig {
        img_size: 16,
        in_chans: 3,
        embed_dim: 16,
        depth: 2,
        num_heads: 2,
        ..VitConfig::tiny(4)
    }
}

/// DINO's configuration: the kit's, over [`EPOCHS`] epochs.
pub fn dino_config() -> DinoConfig {
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
        ..DinoConfig::new(8, EPOCHS)
    }
}

fn trainer_on<B: Backend>(dev: &B) -> tessera_nn::Result<Trainer<B>> {
    let student = VisionTransformer::new(vit_config(), DType::F32, &mut Rng::new(11), dev)?;
    let teacher = VisionTransformer::new(vit_config(), DType::F32, &mut Rng::new(11), dev)?;
    DinoTrainer::new(
        student,
        teacher,
        dino_config(),
        ITERS_PER_EPOCH,
        &mut Rng::new(12),
    )
}

/// A trainer on `dev` whose whole state (student, teacher, optimizer, center) is that of the
/// CPU trainer drawn from the fixed seeds.
pub fn trainer<B: Backend>(dev: &B) -> tessera_nn::Result<Trainer<B>> {
    let init = trainer_on(&Cpu)?.state_dict()?;
    let mut t = trainer_on(dev)?;
    let moved: StateDict<B> = init
        .iter()
        .map(|(k, v)| Ok((k.clone(), Tensor::from_host(v.to_host()?, v.shape(), dev)?)))
        .collect::<tessera_tensor::Result<_>>()?;
    t.load_state_dict(&moved)?;
    Ok(t)
}

/// `n` values in [-1, 1) from a 64-bit LCG (Knuth's MMIX constants) seeded with `seed`.
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// The crops of step `step` on `dev`: `[global [2b, 3, 16, 16], local [2b, 3, 8, 8]]`.
pub fn crops<B: Backend>(dev: &B, step: usize) -> tessera_tensor::Result<[Tensor<B>; 2]> {
    let c = dino_config();
    let b = c.batch_size;
    let g = [2 * b, 3, c.global_crops_size, c.global_crops_size];
    let l = [
        c.local_crops_number * b,
        3,
        c.local_crops_size,
        c.local_crops_size,
    ];
    let seed = 1000 + 2 * step as u64;
    Ok([
        Tensor::from_slice(&values(g.iter().product(), seed), &g, dev)?,
        Tensor::from_slice(&values(l.iter().product(), seed + 1), &l, dev)?,
    ])
}

/// One step (`step` counts from 0) of `t` on `dev`; returns the loss.
pub fn step<B: Backend>(t: &mut Trainer<B>, dev: &B, step: usize) -> tessera_nn::Result<f64> {
    let groups = crops(dev, step)?;
    Ok(t.train_step(&groups, step / ITERS_PER_EPOCH)?.loss)
}

/// What a run produced: the loss of every step and the trainer's whole state afterwards.
#[derive(Debug)]
pub struct Run {
    /// The loss of each step.
    pub losses: Vec<f64>,
    /// Every tensor of the trainer's state after the last step, on the host.
    pub state: BTreeMap<String, Vec<f64>>,
}

/// [`STEPS`] steps on `dev` from the common starting point.
pub fn run<B: Backend>(dev: &B) -> tessera_nn::Result<Run> {
    let mut t = trainer(dev)?;
    let losses = (0..STEPS)
        .map(|s| step(&mut t, dev, s))
        .collect::<tessera_nn::Result<Vec<f64>>>()?;
    let state = t
        .state_dict()?
        .iter()
        .map(|(k, v)| Ok((k.clone(), v.to_f64_vec()?)))
        .collect::<tessera_tensor::Result<_>>()?;
    Ok(Run { losses, state })
}
