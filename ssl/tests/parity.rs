//! Issue 15's BYOL parity items and API edges, on the SSL side: the official BYOL head
//! layout loads strictly, DINO's head exposes its bottleneck, k-NN exposes its neighbours,
//! scores and top-5, and DINO's loss accepts a run shorter than its temperature warm-up.

use tessera_autograd::Var;
use tessera_nn::module::Module;
use tessera_nn::{ModuleExt, StateDict};
use tessera_ssl::byol::{MlpHead, MlpHeadConfig};
use tessera_ssl::dino::{DinoHead, DinoHeadConfig, DinoLoss, DinoLossConfig};
use tessera_ssl::eval::{knn_classifier, KnnConfig};
use tessera_tensor::{Cpu, DType, Rng, Tensor};

/// The parameters and buffers of DeepMind's BYOL `MLP` (`byol/utils/networks.py`: Linear with
/// bias, BatchNorm, ReLU, Linear *without* bias) under the PyTorch `nn.Sequential` names.
fn official_byol_mlp(in_dim: usize, hidden: usize, out: usize) -> StateDict<Cpu> {
    let f = |shape: &[usize], v: f64| Tensor::full(shape, v, DType::F32, &Cpu).unwrap();
    let mut sd = StateDict::new();
    sd.insert("net.0.weight".into(), f(&[hidden, in_dim], 0.01));
    sd.insert("net.0.bias".into(), f(&[hidden], 0.02));
    sd.insert("net.1.weight".into(), f(&[hidden], 1.0));
    sd.insert("net.1.bias".into(), f(&[hidden], 0.0));
    sd.insert("net.1.running_mean".into(), f(&[hidden], 0.0));
    sd.insert("net.1.running_var".into(), f(&[hidden], 1.0));
    let tracked = Tensor::scalar(0.0, DType::I64, &Cpu).unwrap();
    sd.insert("net.1.num_batches_tracked".into(), tracked);
    sd.insert("net.3.weight".into(), f(&[out, hidden], 0.03));
    sd
}

#[test]
fn byol_head_loads_official_layout_strictly() {
    let config = MlpHeadConfig {
        hidden_dim: 16,
        out_dim: 4,
        ..MlpHeadConfig::new(8)
    };
    assert!(!config.last_bias, "BYOL's default is DeepMind's layout");
    let mut head = MlpHead::<Cpu>::new(config, DType::F32, &mut Rng::new(0), &Cpu).unwrap();
    let official = official_byol_mlp(8, 16, 4);
    head.load_state_dict(&official).unwrap();
    assert_eq!(
        head.state_dict()["net.3.weight"].to_vec::<f32>().unwrap(),
        [0.03; 64]
    );
    // With no bias, a zero input gives exactly `fc2(relu(bn(fc1(0))))`; a bias would add to it.
    head.set_training(false);
    let x = Var::constant(Tensor::zeros(&[1, 8], DType::F32, &Cpu).unwrap());
    let y = head.forward(&x).unwrap().value().to_vec::<f32>().unwrap();
    let want = 16.0 * 0.03 * (0.02 / (1.0f32 + 1e-5).sqrt());
    assert!(y.iter().all(|v| (v - want).abs() < 1e-6), "{y:?} vs {want}");

    // The lucidrains layout, with a last-layer bias, is refused by a strict load ...
    let mut with_bias = official.clone();
    let bias = Tensor::zeros(&[4], DType::F32, &Cpu).unwrap();
    with_bias.insert("net.3.bias".into(), bias);
    let e = head.load_state_dict(&with_bias).unwrap_err().to_string();
    assert!(e.contains("net.3.bias"), "{e}");
    // ... and is what `last_bias: true` builds.
    let lucidrains = MlpHeadConfig {
        last_bias: true,
        ..config
    };
    let mut head = MlpHead::<Cpu>::new(lucidrains, DType::F32, &mut Rng::new(0), &Cpu).unwrap();
    head.load_state_dict(&with_bias).unwrap();
    assert!(head.load_state_dict(&official).is_err());
}

#[test]
fn dino_head_exposes_its_bottleneck() {
    let c = DinoHeadConfig {
        nlayers: 3,
        hidden_dim: 12,
        bottleneck_dim: 6,
        ..DinoHeadConfig::new(8, 10)
    };
    let head = DinoHead::<Cpu>::new(c, DType::F64, &mut Rng::new(1), &Cpu).unwrap();
    let x = Var::constant(
        Tensor::randn(&[3, 8], 0.0, 1.0, DType::F64, &mut Rng::new(2), &Cpu).unwrap(),
    );
    let b = head.forward_bottleneck(&x).unwrap();
    assert_eq!(b.shape(), [3, 6]);
    // `forward` is the last layer applied to the normalized bottleneck.
    let normed = tessera_ssl::l2_normalize(&b, 1e-12).unwrap();
    let want = head.last_layer.forward(&normed).unwrap();
    let got = head.forward(&x).unwrap();
    assert_eq!(
        got.value().to_vec::<f64>().unwrap(),
        want.value().to_vec::<f64>().unwrap()
    );
}

#[test]
fn knn_exposes_neighbours_scores_and_top5() {
    // Six classes on six directions of the plane; test samples near class 0 and class 3.
    let angle = |i: usize| i as f64 * core::f64::consts::PI / 3.0;
    let mut train = Vec::new();
    for i in 0..6 {
        train.extend([angle(i).cos() as f32, angle(i).sin() as f32]);
    }
    let train = Tensor::from_vec(train, &[6, 2], &Cpu).unwrap();
    let test = Tensor::from_vec(vec![1.0f32, 0.1, -1.0, 0.05], &[2, 2], &Cpu).unwrap();
    let labels: Vec<u32> = (0..6).collect();
    let cfg = KnnConfig {
        ks: vec![2, 6],
        temperature: 0.07,
        chunk_size: 1,
    };
    let r = knn_classifier(&train, &labels, &test, &[0, 3], 6, &cfg).unwrap();
    let (idx, sim) = r[0].neighbors(0);
    assert_eq!(idx, [0, 1]);
    assert!(sim[0] > sim[1] && (sim[0] - 1.0 / 1.01f64.sqrt()).abs() < 1e-6);
    assert_eq!(r[0].neighbors(1).0, [3, 2]);
    // Scores: exp(sim / T) for the neighbours' classes, 0 for the others.
    let s = r[0].scores(0);
    assert_eq!(s.len(), 6);
    assert!((s[0] - (sim[0] / 0.07).exp()).abs() < 1e-9 * s[0]);
    assert!(s[2..].iter().all(|&v| v == 0.0));
    // Top-5 is min(5, k, classes) wide: 2 for k = 2, 5 for k = 6; column 0 is the prediction.
    assert_eq!((r[0].top5_width, r[1].top5_width), (2, 5));
    assert_eq!(r[0].top5_of(0), [0, 1]);
    assert_eq!(r[1].top5_of(1), [3, 2, 4, 1, 5]);
    assert_eq!(r[1].predictions, [0, 3]);
    assert_eq!(r[1].neighbor_indices.len(), 2 * 6);
    assert_eq!(r[1].top5, Some(1.0));
}

#[test]
fn dino_loss_accepts_a_run_shorter_than_its_warm_up() {
    // DINO's recipe warms the teacher temperature up over 30 epochs; a 2-epoch run gets a
    // 2-epoch warm-up that still ends at `teacher_temp`.
    let c = DinoLossConfig::new(4, 2, 2);
    let l = DinoLoss::<Cpu>::new(c, DType::F32, &Cpu).unwrap();
    assert_eq!(l.teacher_temp_schedule(), [0.04, 0.07]);
    let one = DinoLoss::<Cpu>::new(DinoLossConfig::new(4, 2, 1), DType::F32, &Cpu).unwrap();
    assert_eq!(one.teacher_temp_schedule(), [0.04]);
}

#[test]
fn byol_trainer_warms_up_as_byol_and_builds_bias_free_heads() {
    use tessera_nn::models::resnet::{ResNet, ResNetConfig};
    use tessera_ssl::train::{ByolConfig, ByolTrainer};
    let rcfg = ResNetConfig {
        in_channels: 1,
        small_stem: true,
        layers: [1, 1, 1, 1],
        ..ResNetConfig::resnet18(0)
    };
    let net = |seed| ResNet::<Cpu>::new(rcfg, DType::F32, &mut Rng::new(seed), &Cpu).unwrap();
    let cfg = ByolConfig {
        projector_hidden_dim: 8,
        projection_dim: 4,
        base_lr: 0.2,
        batch_size: 256, // peak = base_lr
        warmup_epochs: 1,
        ..ByolConfig::new(3)
    };
    let trainer = ByolTrainer::new(net(1), net(2), cfg, 4, &mut Rng::new(3)).unwrap();
    // 4 warm-up steps: k·peak/4, the peak at step 4 (DINO's linspace would reach it at 3).
    let lr = trainer.lr_schedule();
    assert_eq!(lr.len(), 12);
    assert_eq!(&lr[..5], [0.0, 0.05, 0.1, 0.15000000000000002, 0.2]);
    let sd = trainer.online().state_dict();
    let heads: Vec<&String> = sd.keys().filter(|n| n.contains(".net.3.")).collect();
    assert_eq!(heads.len(), 2, "{heads:?}"); // projector's and predictor's last weight
    assert!(
        heads.iter().all(|n| n.ends_with("net.3.weight")),
        "{heads:?}"
    );
}
