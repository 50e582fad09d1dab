//! The memory model and the sync rule, measured on whole training steps (issue: backend
//! contract). After two warm-up steps, one step of the default `dino_vit_s` recipe (ViT-S/7
//! at 28 px, batch 32, 2 global + 4 local crops, out_dim 4096) and one step of the default
//! `byol_resnet50` `--preset resnet50` recipe (ResNet-50, 28 px, batch 16) must
//!
//! - take almost no memory from the system: fresh allocations ≤ 1% of the storages the step
//!   makes (every storage before the buffer cache was a fresh allocation);
//! - read from the device once (the loss) and upload only the input batch.
//!
//! The CPU backend counts storages, cache misses and transfers (`cpu::pool::stats`); these
//! counters are process-wide, so this file is its own test binary and runs its steps one
//! after the other in a single test.

use tessera::nn::models::resnet::{ResNet, ResNetConfig};
use tessera::nn::models::vit::{VisionTransformer, VitConfig};
use tessera::ssl::train::{ByolConfig, ByolTrainer, DinoConfig, DinoTrainer};
use tessera::tensor::cpu::pool::{self, PoolStats};
use tessera::tensor::{Cpu, DType, Rng, Tensor};

fn random(shape: &[usize], rng: &mut Rng) -> Tensor<Cpu> {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.normal() as f32).collect();
    Tensor::from_vec(v, shape, &Cpu).unwrap()
}

/// Runs `step` three times and returns the counters of the last run.
fn measure(name: &str, mut step: impl FnMut()) -> PoolStats {
    for _ in 0..2 {
        step();
    }
    pool::reset_stats();
    step();
    let s = pool::stats();
    eprintln!(
        "{name}: {} storages, {} fresh allocations, {} reused, {} uploads, {} downloads, \
         {:.1} MB cached",
        s.storages,
        s.fresh_allocations,
        s.reused,
        s.uploads,
        s.downloads,
        s.cached_bytes as f64 / 1e6
    );
    s
}

fn check(name: &str, s: PoolStats, inputs: usize) {
    assert!(
        s.fresh_allocations * 100 <= s.storages,
        "{name}: {} fresh allocations for {} storages (more than 1%)",
        s.fresh_allocations,
        s.storages
    );
    assert!(s.downloads <= 1, "{name}: {} device reads", s.downloads);
    assert_eq!(s.uploads, inputs, "{name}: uploads besides the input batch");
}

#[test]
fn default_training_steps_allocate_nothing_new_and_read_only_the_loss() {
    // DINO, the default dino_vit_s recipe.
    let mut rng = Rng::new(0);
    let vit = VitConfig {
        img_size: 28,
        in_chans: 1,
        ..VitConfig::small(7)
    };
    let student = VisionTransformer::new(vit, DType::F32, &mut rng, &Cpu).unwrap();
    let teacher = student.clone();
    let cfg = DinoConfig {
        batch_size: 32,
        warmup_epochs: 1,
        local_crops_number: 4,
        global_crops_size: 28,
        local_crops_size: 14,
        ..DinoConfig::new(4096, 2)
    };
    let mut dino = DinoTrainer::new(student, teacher, cfg, 16, &mut rng).unwrap();
    let mut data = Rng::new(1);
    let s = measure("DINO ViT-S/7 step", || {
        let groups = [
            random(&[64, 1, 28, 28], &mut data),
            random(&[128, 1, 14, 14], &mut data),
        ];
        let stats = dino.train_step(&groups, 0).unwrap();
        assert!(stats.loss.is_finite());
    });
    // The two crop groups are uploaded inside `measure` by `random`.
    check("DINO", s, 2);
    drop(dino);

    // BYOL, byol_resnet50's `--preset resnet50` recipe.
    let rcfg = ResNetConfig {
        in_channels: 1,
        ..ResNetConfig::resnet50(0)
    };
    let online = ResNet::new(rcfg, DType::F32, &mut rng, &Cpu).unwrap();
    let target = online.clone();
    let bcfg = ByolConfig {
        base_lr: 0.2,
        batch_size: 16,
        base_tau: 0.99,
        warmup_epochs: 0,
        ..ByolConfig::new(2)
    };
    let mut byol = ByolTrainer::new(online, target, bcfg, 4, &mut rng).unwrap();
    let s = measure("BYOL ResNet-50 step", || {
        let v1 = random(&[16, 1, 28, 28], &mut data);
        let v2 = random(&[16, 1, 28, 28], &mut data);
        let stats = byol.train_step(&v1, &v2).unwrap();
        assert!(stats.loss.is_finite());
    });
    check("BYOL", s, 2);
}
