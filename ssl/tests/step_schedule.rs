//! DINO with its warm-ups and frozen last layer measured in steps ([`StepSchedule`]): the
//! schedules have the lengths and values the step counts give, and the trainer follows the
//! step counter (not the epoch) for the teacher temperature and the last layer.

use tessera_nn::models::vit::VisionTransformer;
use tessera_nn::schedule::{cosine_schedule_steps, cosine_scheduler};
use tessera_nn::ModuleExt;
use tessera_ssl::train::{DinoConfig, DinoTrainer, StepSchedule};
use tessera_tensor::{Cpu, Rng, Tensor};

const NITER: usize = 4;
const EPOCHS: usize = 2;

mod common;

/// ViT with embed 16, depth 1, heads 2, patch 7, 14 px grayscale inputs.
fn tiny_vit(seed: u64) -> VisionTransformer<Cpu> {
    common::tiny_vit(14, 16, 1, seed)
}

fn config(steps: Option<StepSchedule>) -> DinoConfig {
    DinoConfig {
        head_hidden_dim: 16,
        head_bottleneck_dim: 8,
        batch_size: 2,
        lr: 0.01,
        warmup_epochs: 1,
        warmup_teacher_temp: 0.04,
        teacher_temp: 0.07,
        warmup_teacher_temp_epochs: 1,
        local_crops_number: 0,
        global_crops_size: 14,
        local_crops_size: 14,
        step_schedule: steps,
        ..DinoConfig::new(8, EPOCHS)
    }
}

fn last_layer(t: &DinoTrainer<Cpu, VisionTransformer<Cpu>>) -> Vec<f32> {
    let sd = t.student().state_dict();
    let v = sd
        .iter()
        .find(|(k, _)| k.contains("last_layer") && k.ends_with("weight_v"))
        .map(|(_, v)| v.clone())
        .expect("the head's last layer");
    v.to_vec::<f32>().unwrap()
}

#[test]
fn schedules_are_measured_in_steps() {
    let steps = StepSchedule {
        warmup: 3,
        warmup_teacher_temp: 2,
        freeze_last_layer: 2,
    };
    let cfg = config(Some(steps));
    let t = DinoTrainer::new(tiny_vit(1), tiny_vit(2), cfg, NITER, &mut Rng::new(3)).unwrap();
    let peak = cfg.scaled_lr();
    let total = EPOCHS * NITER;
    assert_eq!(t.lr_schedule().len(), total);
    assert_eq!(
        t.lr_schedule(),
        cosine_schedule_steps(peak, cfg.min_lr, total, 3, 0.0).unwrap()
    );
    // The warm-up ends at the peak on its last step (DINO's linspace), whatever the epochs.
    assert_eq!(t.lr_schedule()[0], 0.0);
    assert_eq!(t.lr_schedule()[2], peak);
    // Epoch-based, the warm-up would have been the whole first epoch (4 steps).
    let by_epoch = cosine_scheduler(peak, cfg.min_lr, EPOCHS, NITER, 1, 0.0).unwrap();
    assert_ne!(t.lr_schedule(), by_epoch.as_slice());
    // One teacher temperature per step, warmed up over 2 steps.
    let temps = t.dino_loss().teacher_temp_schedule();
    assert_eq!(temps.len(), total);
    assert_eq!(temps[0], 0.04);
    assert!(temps[1..].iter().all(|&x| x == 0.07), "{temps:?}");
    // The steps form of the epoch schedule is the epoch schedule.
    assert_eq!(
        cosine_schedule_steps(peak, cfg.min_lr, total, NITER, 0.0).unwrap(),
        by_epoch
    );
    assert!(cosine_schedule_steps(1.0, 0.0, 3, 4, 0.0).is_err());
}

#[test]
fn the_last_layer_and_the_temperature_follow_the_step_counter() {
    let steps = StepSchedule {
        warmup: 1,
        warmup_teacher_temp: 2,
        freeze_last_layer: 2,
    };
    let mut t = DinoTrainer::new(
        tiny_vit(1),
        tiny_vit(2),
        config(Some(steps)),
        NITER,
        &mut Rng::new(3),
    )
    .unwrap();
    // Two global views of 2 images: [2b, c, h, w].
    let mut rng = Rng::new(6);
    let mut batch = || {
        let x: Vec<f32> = (0..4 * 14 * 14).map(|_| rng.normal() as f32).collect();
        Tensor::from_vec(x, &[4, 1, 14, 14], &Cpu).unwrap()
    };
    let before = last_layer(&t);
    // Steps 0 and 1 (all in epoch 0): frozen, temperature warming up.
    let s0 = t.train_step(&[batch()], 0).unwrap();
    let s1 = t.train_step(&[batch()], 0).unwrap();
    assert_eq!(last_layer(&t), before, "frozen for the first 2 steps");
    assert_eq!((s0.teacher_temp, s1.teacher_temp), (0.04, 0.07));
    // Step 2, still epoch 0: the last layer moves (epoch-based freezing would hold it for
    // the whole epoch).
    t.train_step(&[batch()], 0).unwrap();
    assert_ne!(last_layer(&t), before, "updated from step 2 on");

    // The same steps with DINO's epochs: the first epoch keeps the layer frozen throughout.
    let mut e = DinoTrainer::new(
        tiny_vit(1),
        tiny_vit(2),
        config(None),
        NITER,
        &mut Rng::new(3),
    )
    .unwrap();
    let before = last_layer(&e);
    for _ in 0..3 {
        let s = e.train_step(&[batch()], 0).unwrap();
        assert_eq!(s.teacher_temp, 0.04);
    }
    assert_eq!(last_layer(&e), before);
}
