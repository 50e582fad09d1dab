//! Two full DINO iterations against PyTorch (scripts/gen_dino_step_fixture.py, F64): loss,
//! gradients before and after per-parameter clipping and the last-layer cancellation,
//! student parameters after AdamW, teacher parameters after the EMA, and the center.

use std::path::PathBuf;
use tessera_nn::checkpoint::select_prefix;
use tessera_nn::models::vit::{VisionTransformer, VitConfig};
use tessera_nn::{Checkpoint, ModuleExt, StateDict};
use tessera_ssl::train::{DinoConfig, DinoTrainer};
use tessera_tensor::{Cpu, DType, Rng, Tensor};

fn fixture() -> StateDict<Cpu> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/ssl_dino_step.safetensors");
    Checkpoint::load(&path, &Cpu).expect("fixture file").tensors
}

fn vit() -> VisionTransformer<Cpu> {
    let cfg = VitConfig {
        img_size: 16,
        in_chans: 3,
        embed_dim: 16,
        depth: 1,
        num_heads: 2,
        ..VitConfig::tiny(4)
    };
    VisionTransformer::zeroed(cfg, DType::F64, &Cpu).unwrap()
}

fn config() -> DinoConfig {
    DinoConfig {
        head_hidden_dim: 12,
        head_bottleneck_dim: 6,
        lr: 0.1,
        batch_size: 2,
        warmup_epochs: 0,
        teacher_temp: 0.07,
        warmup_teacher_temp_epochs: 2,
        clip_grad: 0.3,
        local_crops_number: 2,
        global_crops_size: 16,
        local_crops_size: 8,
        ..DinoConfig::new(8, 3)
    }
}

/// Max |a − b| over elements, checked against `tol = 1e-10·max|ref| + 1e-12` (F64).
fn assert_close(what: &str, got: &Tensor<Cpu>, want: &Tensor<Cpu>) {
    assert_eq!(got.shape(), want.shape(), "{what}: shape");
    let (g, w) = (got.to_f64_vec().unwrap(), want.to_f64_vec().unwrap());
    let scale = w.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let err = g
        .iter()
        .zip(&w)
        .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
    let tol = 1e-10 * scale + 1e-12;
    assert!(
        err <= tol,
        "{what}: max error {err:e} > {tol:e} (max |ref| {scale:e})"
    );
}

fn assert_dict(what: &str, got: &StateDict<Cpu>, want: &StateDict<Cpu>) {
    let gk: Vec<_> = got.keys().collect();
    let wk: Vec<_> = want.keys().collect();
    assert_eq!(gk, wk, "{what}: names");
    for (k, w) in want {
        assert_close(&format!("{what} {k}"), &got[k], w);
    }
}

/// Same names, shapes and bit-identical values.
fn assert_same(a: &StateDict<Cpu>, b: &StateDict<Cpu>) {
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (k, t) in a {
        assert_eq!(t.shape(), b[k].shape(), "{k}");
        assert_eq!(t.to_f64_vec().unwrap(), b[k].to_f64_vec().unwrap(), "{k}");
    }
}

#[test]
fn two_dino_steps_match_pytorch() {
    let fx = fixture();
    let mut rng = Rng::new(0);
    let mut trainer = DinoTrainer::new(vit(), vit(), config(), 1, &mut rng).unwrap();
    trainer.record_gradients = true;
    let init = select_prefix(&fx, "init.");
    trainer.student_mut().load_state_dict(&init).unwrap();
    trainer.teacher_mut().load_state_dict(&init).unwrap();
    assert!(trainer
        .teacher()
        .named_params()
        .iter()
        .all(|(_, p)| p.is_frozen()));
    for (step, epoch) in [(0usize, 0usize), (1, 1)] {
        let s = format!("step{step}.");
        let groups = [
            fx[&format!("{s}global")].clone(),
            fx[&format!("{s}local")].clone(),
        ];
        let stats = trainer.train_step(&groups, epoch).unwrap();
        let loss = fx[&format!("{s}loss")].item().unwrap();
        assert!(
            (stats.loss - loss).abs() <= 1e-12 * loss.abs().max(1.0),
            "{s} loss {} vs {loss}",
            stats.loss
        );
        assert_eq!(stats.iteration, step as u64);
        let (raw, clipped) = trainer.last_gradients().unwrap();
        assert_dict(
            &format!("{s}grad_raw"),
            raw,
            &select_prefix(&fx, &format!("{s}grad_raw.")),
        );
        assert_dict(
            &format!("{s}grad"),
            clipped,
            &select_prefix(&fx, &format!("{s}grad.")),
        );
        // The norms DINO logs are those before clipping.
        for (k, g) in raw {
            let n = tessera_nn::optim::l2_norm(g).unwrap();
            assert!((stats.grad_norms[k] - n).abs() <= 1e-12 * n.max(1.0));
        }
        assert_dict(
            &format!("{s}student"),
            &trainer.student().state_dict(),
            &select_prefix(&fx, &format!("{s}student.")),
        );
        assert_dict(
            &format!("{s}teacher"),
            &trainer.teacher().state_dict(),
            &select_prefix(&fx, &format!("{s}teacher.")),
        );
        assert_close(
            &format!("{s}center"),
            trainer.dino_loss().center(),
            &fx[&format!("{s}center")],
        );
    }
    assert_eq!(trainer.iteration(), 2);
}

#[test]
fn resume_from_state_dict_is_exact() {
    let fx = fixture();
    let init = select_prefix(&fx, "init.");
    let make = || {
        let mut t = DinoTrainer::new(vit(), vit(), config(), 1, &mut Rng::new(0)).unwrap();
        t.student_mut().load_state_dict(&init).unwrap();
        t.teacher_mut().load_state_dict(&init).unwrap();
        t
    };
    let groups = |s: usize| {
        [
            fx[&format!("step{s}.global")].clone(),
            fx[&format!("step{s}.local")].clone(),
        ]
    };
    let mut a = make();
    a.train_step(&groups(0), 0).unwrap();
    let sd = a.state_dict().unwrap();
    for prefix in ["student.", "teacher.", "optimizer."] {
        assert!(sd.keys().any(|k| k.starts_with(prefix)), "{prefix}");
    }
    assert!(sd.contains_key("dino_loss.center") && sd.contains_key("iteration"));
    let mut b = make();
    b.load_state_dict(&sd).unwrap();
    assert_eq!(b.iteration(), 1);
    let sa = a.train_step(&groups(1), 1).unwrap();
    let sb = b.train_step(&groups(1), 1).unwrap();
    assert_eq!(sa, sb);
    assert_same(&a.state_dict().unwrap(), &b.state_dict().unwrap());
    // A bad key is an error and changes nothing.
    let mut bad = sd.clone();
    bad.insert("bogus".into(), fx["step0.center"].clone());
    assert!(b.load_state_dict(&bad).is_err());
    assert_eq!(b.iteration(), 2);
    // Bad input shapes are errors, not panics, and leave the trainer unchanged.
    let before = b.state_dict().unwrap();
    assert!(b.train_step(&[], 2).is_err());
    assert!(b.train_step(&[fx["step0.local"].clone()], 2).is_err());
    assert!(b.train_step(&groups(0)[..1], 2).is_err());
    assert_same(&b.state_dict().unwrap(), &before);
    // Past the schedule (3 epochs × 1 iteration).
    b.train_step(&groups(0), 2).unwrap();
    assert!(b.train_step(&groups(0), 2).is_err());
}
