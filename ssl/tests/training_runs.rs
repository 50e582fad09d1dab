//! Short training runs on real images (the embedded Fashion-MNIST subset): DINO and BYOL
//! with a tiny ViT must lower their loss without collapsing. Each run prints its wall time.

use std::path::PathBuf;
use std::time::Instant;
use tessera_nn::models::vit::VisionTransformer;
use tessera_ssl::augment::{
    batch_by_resolution, stack_images, ByolAugConfig, ByolAugmentation, DataAugmentationDino,
    DinoAugConfig, Image, Normalize,
};
use tessera_ssl::data::Dataset;
use tessera_ssl::train::{ByolConfig, ByolTrainer, DinoConfig, DinoTrainer};
use tessera_tensor::{Cpu, Rng, Tensor};

const IMAGES: usize = 256;
const BATCH: usize = 32;
const NITER: usize = IMAGES / BATCH; // 8 iterations per epoch

fn images() -> Vec<Image> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data/fashion-mnist");
    let ds = Dataset::open(&dir).expect("embedded Fashion-MNIST");
    assert_eq!(ds.image_shape(), [1, 28, 28]);
    (0..IMAGES).map(|i| ds.image(i).unwrap()).collect()
}

mod common;

/// ViT with embed 32, depth 2, heads 2, patch 7, 28 px grayscale inputs.
fn tiny_vit(seed: u64) -> VisionTransformer<Cpu> {
    common::tiny_vit(28, 32, 2, seed)
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

#[test]
fn dino_learns_without_collapse() {
    let start = Instant::now();
    let imgs = images();
    // 3 epochs (24 steps) of a 6-epoch schedule.
    let (epochs, trained) = (6, 3);
    let cfg = DinoConfig {
        head_hidden_dim: 64,
        head_bottleneck_dim: 32,
        // Short run: scaled lr 1e-3 (DINO's 5e-4·32/256 = 6e-5 would barely move in 24
        // steps), one warm-up epoch, a faster teacher (0.99) and a sharper one (0.02): with
        // DINO's 0.04 a tiny freshly initialized ViT's outputs hardly depend on the input,
        // and the centering drives the teacher to uniform before the student learns.
        lr: 0.008,
        batch_size: BATCH,
        warmup_epochs: 1,
        momentum_teacher: 0.99,
        warmup_teacher_temp: 0.02,
        teacher_temp: 0.02,
        local_crops_number: 2,
        global_crops_size: 28,
        local_crops_size: 14,
        ..DinoConfig::new(64, epochs)
    };
    let mut trainer =
        DinoTrainer::new(tiny_vit(1), tiny_vit(2), cfg, NITER, &mut Rng::new(3)).unwrap();
    trainer.diagnostics = true;
    let aug_cfg = DinoAugConfig {
        local_crops_number: 2,
        // Fashion-MNIST's pixel mean and std.
        normalize: Some(Normalize::new(vec![0.286], vec![0.353]).unwrap()),
        ..DinoAugConfig::with_sizes(28, 14)
    };
    let aug = DataAugmentationDino::new(&aug_cfg).unwrap();
    let mut rng = Rng::new(4);
    let mut stats = Vec::new();
    for epoch in 0..trained {
        for it in 0..NITER {
            let views: Vec<Vec<Image>> = imgs[it * BATCH..(it + 1) * BATCH]
                .iter()
                .map(|img| aug.apply(img, &mut rng).unwrap())
                .collect();
            let groups: Vec<Tensor<Cpu>> = batch_by_resolution(&views, &Cpu)
                .unwrap()
                .into_iter()
                .map(|g| g.batch)
                .collect();
            stats.push(trainer.train_step(&groups, epoch).unwrap());
        }
    }
    let losses: Vec<f64> = stats.iter().map(|s| s.loss).collect();
    let last = stats.last().unwrap();
    let log_k = last.max_entropy;
    eprintln!(
        "DINO: {} steps in {:.1} s; loss {:.4} -> {:.4}; teacher entropy {:.3} (batch {:.3}) of ln K = {:.3}",
        stats.len(),
        start.elapsed().as_secs_f64(),
        mean(&losses[..5]),
        mean(&losses[losses.len() - 5..]),
        last.teacher_entropy.unwrap(),
        last.teacher_batch_entropy.unwrap(),
        log_k
    );
    for s in stats.iter().step_by(8) {
        eprintln!(
            "  it {:2} loss {:.4} H {:.3} Hb {:.3} lr {:.2e}",
            s.iteration,
            s.loss,
            s.teacher_entropy.unwrap(),
            s.teacher_batch_entropy.unwrap(),
            s.lr
        );
    }
    assert!(losses.iter().all(|l| l.is_finite()));
    assert!(
        mean(&losses[losses.len() - 5..]) < mean(&losses[..5]),
        "{losses:?}"
    );
    // No collapse: not one prototype for everything, not uniform.
    let (h, hb) = (
        last.teacher_entropy.unwrap(),
        last.teacher_batch_entropy.unwrap(),
    );
    assert!(h > 0.05 * log_k && h < 0.95 * log_k);
    assert!(hb > 0.2 * log_k);
}

#[test]
fn byol_learns_without_collapse() {
    let start = Instant::now();
    let imgs = images();
    let epochs = 5;
    let cfg = ByolConfig {
        projector_hidden_dim: 128,
        projection_dim: 32,
        // BYOL's paper uses 0.99 for short / small runs.
        base_tau: 0.99,
        // Scaled lr 1.0: LARS's trust ratio (eta 1e-3) makes the relative step lr·1e-3.
        base_lr: 8.0,
        batch_size: BATCH,
        warmup_epochs: 1,
        ..ByolConfig::new(epochs)
    };
    let mut trainer =
        ByolTrainer::new(tiny_vit(5), tiny_vit(6), cfg, NITER, &mut Rng::new(7)).unwrap();
    trainer.diagnostics = true;
    let aug = ByolAugmentation::new(&ByolAugConfig {
        // Fashion-MNIST's pixel mean and std.
        normalize: Some(Normalize::new(vec![0.286], vec![0.353]).unwrap()),
        ..ByolAugConfig::with_size(28)
    })
    .unwrap();
    let mut rng = Rng::new(8);
    let mut stats = Vec::new();
    for _ in 0..epochs {
        for it in 0..NITER {
            let pairs: Vec<[Image; 2]> = imgs[it * BATCH..(it + 1) * BATCH]
                .iter()
                .map(|img| aug.apply(img, &mut rng).unwrap())
                .collect();
            let v1: Vec<&Image> = pairs.iter().map(|p| &p[0]).collect();
            let v2: Vec<&Image> = pairs.iter().map(|p| &p[1]).collect();
            let (v1, v2) = (
                stack_images(&v1, &Cpu).unwrap(),
                stack_images(&v2, &Cpu).unwrap(),
            );
            stats.push(trainer.train_step(&v1, &v2).unwrap());
        }
    }
    let losses: Vec<f64> = stats.iter().map(|s| s.loss).collect();
    let last = stats.last().unwrap();
    let floor = 0.1 / (32f64).sqrt();
    eprintln!(
        "BYOL: {} steps in {:.1} s; loss {:.4} -> {:.4}; embedding std {:.4} (floor {:.4})",
        stats.len(),
        start.elapsed().as_secs_f64(),
        mean(&losses[..5]),
        mean(&losses[losses.len() - 5..]),
        last.embedding_std.unwrap(),
        floor
    );
    for s in stats.iter().step_by(8) {
        eprintln!(
            "  it {:2} loss {:.4} std {:.4} lr {:.2e} tau {:.4}",
            s.iteration,
            s.loss,
            s.embedding_std.unwrap(),
            s.lr,
            s.tau
        );
    }
    assert!(losses.iter().all(|l| l.is_finite()));
    assert!(
        mean(&losses[losses.len() - 5..]) < mean(&losses[..5]),
        "{losses:?}"
    );
    // No collapse at any step: the normalized projections stay spread across the batch.
    assert!(stats.iter().all(|s| s.embedding_std.unwrap() > floor));
}
