//! The trainers name their steps' phases for `tessera_autograd::profile`: one DINO and one
//! BYOL step with the profile on record every phase once, in order, and the backward's ops.
//! (Its own test binary: the profile is process-wide, and no other test turns it on here.)

use tessera_autograd::profile;
use tessera_nn::models::vit::VisionTransformer;
use tessera_ssl::train::{ByolConfig, ByolTrainer, DinoConfig, DinoTrainer};
use tessera_tensor::{Cpu, DType, Rng, Tensor};

mod common;

/// ViT with embed 16, depth 1, heads 2, patch 7, 14 px grayscale inputs.
fn tiny_vit(seed: u64) -> VisionTransformer<Cpu> {
    common::tiny_vit(14, 16, 1, seed)
}

fn crops(n: usize, seed: u64) -> Tensor<Cpu> {
    Tensor::randn(
        &[n, 1, 14, 14],
        0.0,
        1.0,
        DType::F32,
        &mut Rng::new(seed),
        &Cpu,
    )
    .unwrap()
}

/// The phases' names in order, each recorded exactly once.
fn phases_once(p: &profile::Profile) -> Vec<&'static str> {
    for e in &p.phases {
        assert_eq!(e.calls, 1, "{}", e.name);
    }
    p.phases.iter().map(|e| e.name).collect()
}

#[test]
fn dino_and_byol_steps_record_their_phases_and_backward_ops() {
    let cfg = DinoConfig {
        head_hidden_dim: 16,
        head_bottleneck_dim: 8,
        batch_size: 2,
        local_crops_number: 0,
        global_crops_size: 14,
        local_crops_size: 14,
        ..DinoConfig::new(8, 40)
    };
    let mut dino = DinoTrainer::new(tiny_vit(1), tiny_vit(2), cfg, 2, &mut Rng::new(3)).unwrap();
    let cfg = ByolConfig {
        projector_hidden_dim: 16,
        projection_dim: 8,
        batch_size: 2,
        ..ByolConfig::new(40)
    };
    let mut byol = ByolTrainer::new(tiny_vit(4), tiny_vit(5), cfg, 2, &mut Rng::new(6)).unwrap();

    // Off: a step records nothing.
    profile::take();
    dino.train_step(&[crops(4, 7)], 0).unwrap();
    assert_eq!(profile::take(), profile::Profile::default());

    profile::enable();
    dino.train_step(&[crops(4, 8)], 0).unwrap();
    let p = profile::take();
    byol.train_step(&crops(2, 9), &crops(2, 10)).unwrap();
    let q = profile::take();
    profile::disable();

    let dino_phases = [
        "teacher forward",
        "student forward",
        "loss",
        "backward",
        "clip",
        "optimizer",
        "teacher EMA",
    ];
    assert_eq!(phases_once(&p), dino_phases);
    let byol_phases = [
        "online forward",
        "target forward",
        "loss",
        "backward",
        "optimizer",
        "target EMA",
    ];
    assert_eq!(phases_once(&q), byol_phases);
    for r in [&p, &q] {
        let ops: Vec<&str> = r.backward_ops.iter().map(|e| e.name).collect();
        for op in ["matmul_bias", "layer_norm", "softmax", "gelu"] {
            assert!(ops.contains(&op), "{op} in {ops:?}");
        }
        // Longest first, and inside the backward phase.
        assert!(r.backward_ops.windows(2).all(|w| w[0].total >= w[1].total));
        let backward = r.phases.iter().find(|e| e.name == "backward").unwrap();
        let ops_total: std::time::Duration = r.backward_ops.iter().map(|e| e.total).sum();
        assert!(ops_total <= backward.total, "{r}");
    }
}
