//! Issue 15's parity items and API edges, on the nn side: BYOL's and DINO's warm-ups, a
//! ResNet without random init, and eval-mode forwards through `&self`.

use tessera_autograd::Var;
use tessera_nn::layers::BatchNorm;
use tessera_nn::models::resnet::{ResNet, ResNetConfig};
use tessera_nn::models::vit::{VisionTransformer, VitConfig};
use tessera_nn::module::Module;
use tessera_nn::schedule::{byol_lr_schedule, cosine_scheduler};
use tessera_nn::ModuleExt;
use tessera_tensor::{Cpu, DType, Rng, Tensor};

#[test]
fn byol_and_dino_warm_ups_differ_by_one_step() {
    let (peak, w, total) = (0.4, 4, 10);
    // BYOL (`learning_schedule`): k·peak/W for k < W, the peak first at step W.
    let byol = byol_lr_schedule(peak, total, w).unwrap();
    assert_eq!(byol.len(), total);
    assert_eq!(&byol[..w], [0.0, 0.1, 0.2, 0.30000000000000004]);
    assert_eq!(byol[w], peak);
    assert!(byol[total - 1] > 0.0 && byol[total - 1] < byol[w]);
    // DINO (`cosine_scheduler`): linspace(0, peak, W), the peak already at step W − 1.
    let dino = cosine_scheduler(peak, 0.0, total, 1, w, 0.0).unwrap();
    assert_eq!(dino[0], 0.0);
    assert_eq!(dino[w - 1], peak);
    assert!((dino[1] - peak / 3.0).abs() < 1e-15);
    // No warm-up: the cosine starts at the peak; a warm-up longer than the run is refused.
    assert_eq!(byol_lr_schedule(peak, 3, 0).unwrap()[0], peak);
    assert!(byol_lr_schedule(peak, 3, 4).is_err());
}

fn tiny_resnet() -> ResNetConfig {
    ResNetConfig {
        in_channels: 1,
        small_stem: true,
        layers: [1, 1, 1, 1],
        ..ResNetConfig::resnet18(3)
    }
}

#[test]
fn resnet_zeros_draws_nothing_and_loads_a_checkpoint() {
    let mut m = ResNet::<Cpu>::zeros(tiny_resnet(), DType::F32, &Cpu).unwrap();
    let trained = ResNet::<Cpu>::new(tiny_resnet(), DType::F32, &mut Rng::new(3), &Cpu).unwrap();
    assert_eq!(
        m.state_dict().keys().collect::<Vec<_>>(),
        trained.state_dict().keys().collect::<Vec<_>>()
    );
    let zero = |name: &str| {
        let v = m.state_dict()[name].to_vec::<f32>().unwrap();
        v.iter().all(|&x| x == 0.0)
    };
    assert!(zero("conv1.weight") && zero("layer2.0.downsample.0.weight") && zero("fc.weight"));
    m.load_state_dict(&trained.state_dict()).unwrap();
    for (name, t) in trained.state_dict() {
        assert_eq!(
            m.state_dict()[&name].to_f64_vec().unwrap(),
            t.to_f64_vec().unwrap(),
            "{name}"
        );
    }
}

#[test]
fn eval_forwards_take_shared_references() {
    let x = Tensor::randn(&[2, 1, 8, 8], 0.0, 1.0, DType::F64, &mut Rng::new(4), &Cpu).unwrap();
    let x = Var::constant(x);
    // ResNet: a model still in training mode gives, through `&self`, what `eval()` gives,
    // and its running statistics stay untouched.
    let mut m = ResNet::<Cpu>::new(tiny_resnet(), DType::F64, &mut Rng::new(5), &Cpu).unwrap();
    m.forward(&x).unwrap(); // one training step moves the running statistics off their init
    let before = m.state_dict();
    let shared: &ResNet<Cpu> = &m;
    let got = shared
        .forward_eval(&x)
        .unwrap()
        .value()
        .to_vec::<f64>()
        .unwrap();
    let feats = shared.forward_features_eval(&x).unwrap();
    assert_eq!(feats.shape(), [2, m.feature_dim()]);
    for (n, t) in &before {
        assert_eq!(
            m.state_dict()[n].to_f64_vec().unwrap(),
            t.to_f64_vec().unwrap(),
            "{n}"
        );
    }
    let mut eval = m.clone();
    eval.set_training(false);
    let want = eval.forward(&x).unwrap().value().to_vec::<f64>().unwrap();
    assert_eq!(got, want);

    // BatchNorm on its own.
    let mut bn = BatchNorm::<Cpu>::new_1d(3, DType::F64, &Cpu).unwrap();
    let h = Var::constant(
        Tensor::randn(&[4, 3], 0.0, 1.0, DType::F64, &mut Rng::new(6), &Cpu).unwrap(),
    );
    bn.forward(&h).unwrap();
    let got = bn
        .forward_eval(&h)
        .unwrap()
        .value()
        .to_vec::<f64>()
        .unwrap();
    bn.set_training(false);
    assert_eq!(
        got,
        bn.forward(&h).unwrap().value().to_vec::<f64>().unwrap()
    );

    // ViT with drop-path: `forward_eval` is deterministic in training mode and equals eval.
    let cfg = VitConfig {
        img_size: 8,
        patch_size: 4,
        in_chans: 1,
        embed_dim: 12,
        depth: 2,
        num_heads: 3,
        drop_path_rate: 0.5,
        ..VitConfig::tiny(4)
    };
    let mut vit = VisionTransformer::<Cpu>::new(cfg, DType::F64, &mut Rng::new(7), &Cpu).unwrap();
    let got = vit
        .forward_eval(&x)
        .unwrap()
        .value()
        .to_vec::<f64>()
        .unwrap();
    assert_eq!(vit.forward_features(&x).unwrap().shape(), [2, 12]);
    vit.set_training(false);
    assert_eq!(
        got,
        vit.forward(&x).unwrap().value().to_vec::<f64>().unwrap()
    );
}
