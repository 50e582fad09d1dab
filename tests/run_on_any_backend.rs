//! The run layer (`tessera::run`) on a backend other than the CPU: `Counting`, the opaque test
//! backend of `tessera-tensor` (storage the host cannot read, composites through their
//! default compositions). Models, features, the raw-pixel k-NN floor and checkpoints built on
//! it agree with the CPU's, and checkpoints move between the two through the host.

use tessera::nn::checkpoint::{with_prefix, Metadata};
use tessera::nn::models::vit::VitConfig;
use tessera::nn::ModuleExt;
use tessera::run::{ckpt, data, model, session};
use tessera::ssl::augment::Normalize;
use tessera::ssl::data::Dataset;
use tessera::tensor::{Backend, Cpu, Tensor};
use tessera_testkit::backends::Counting;

const ARCH: &str = "vit(embed 32, depth 1, heads 2, patch 7, img 28, chans 1) + \
                    dino head(out 64, hidden 64, bottleneck 16)";

fn tiny_vit() -> VitConfig {
    VitConfig {
        img_size: 28,
        in_chans: 1,
        embed_dim: 32,
        depth: 1,
        num_heads: 2,
        ..VitConfig::small(7)
    }
}

/// 20 training and 10 test images of the embedded Fashion-MNIST subset.
fn small_splits() -> (Dataset, Dataset) {
    let (train, test) = data::load_splits(&data::default_data_dir(), None).unwrap();
    (
        data::balanced_prefix(&train, 20, 1).unwrap(),
        data::balanced_prefix(&test, 10, 2).unwrap(),
    )
}

fn host<B: Backend>(t: &Tensor<B>) -> Vec<f32> {
    t.to_vec::<f32>().unwrap()
}

fn assert_close(a: &[f32], b: &[f32], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= 1e-4 * (1.0 + x.abs()),
            "{what}[{i}]: {x} vs {y}"
        );
    }
}

#[test]
fn backbone_features_and_floor_agree_with_the_cpu() {
    let dev = Counting::new();
    let (bank, test) = small_splits();
    let norm = Normalize::new(vec![0.3], vec![0.35]).unwrap();
    let on_cpu = model::random_backbone(tiny_vit(), 3, &Cpu).unwrap();
    let on_dev = model::random_backbone(tiny_vit(), 3, &dev).unwrap();
    assert_eq!(on_cpu.arch, on_dev.arch);
    for ((k, a), (_, b)) in on_cpu
        .model
        .state_dict()
        .iter()
        .zip(on_dev.model.state_dict().iter())
    {
        assert_eq!(host(a), host(b), "initial {k}");
    }
    dev.reset();
    let f_cpu = model::cls_features(&on_cpu.model, &bank, 28, Some(&norm), &Cpu).unwrap();
    let f_dev = model::cls_features(&on_dev.model, &bank, 28, Some(&norm), &dev).unwrap();
    assert!(
        dev.count("matmul") > 0,
        "no work on the backend: {:?}",
        dev.counts()
    );
    assert_eq!(f_dev.shape(), &[20, 32]);
    assert_close(&host(&f_cpu), &host(&f_dev), "cls features");

    let floor_cpu = session::raw_pixel_floor(&bank, &test, &Cpu).unwrap();
    let floor_dev = session::raw_pixel_floor(&bank, &test, &dev).unwrap();
    assert_eq!(floor_cpu, floor_dev);
}

#[test]
fn checkpoints_move_between_backends_through_the_host() {
    let dev = Counting::new();
    let dir = std::env::temp_dir().join(format!("tessera-anybackend-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("checkpoint.safetensors");

    // Written from the opaque backend, as `dino_vit_s` lays it out.
    let trained = model::random_backbone(tiny_vit(), 5, &dev).unwrap();
    let sd = trained.model.state_dict();
    let mut tensors = with_prefix(&sd, "teacher.backbone.");
    tensors.extend(with_prefix(&sd, "student.backbone."));
    let mut md = Metadata::new();
    md.insert(ckpt::ARCH_KEY.into(), ARCH.into());
    md.insert(ckpt::NORMALIZE_MEAN_KEY.into(), ckpt::floats(&[0.25]));
    md.insert(ckpt::NORMALIZE_STD_KEY.into(), ckpt::floats(&[0.5]));
    ckpt::save(&path, tensors, md).unwrap();

    // Read back on either backend: the same weights.
    let ck = ckpt::load_checked(&path, ARCH, &dev).unwrap();
    assert_eq!(ck.tensors.len(), 2 * sd.len());
    assert!(ckpt::load_checked(&path, "resnet18(...)", &Cpu).is_err());
    let on_cpu = model::load_backbone(&path, "teacher", &Cpu).unwrap();
    let on_dev = model::load_backbone(&path, "student", &dev).unwrap();
    assert!(on_cpu.trained && on_dev.trained);
    for (k, t) in &sd {
        assert_eq!(
            host(t),
            host(&on_cpu.model.state_dict()[k]),
            "{k} on the cpu"
        );
        assert_eq!(
            host(t),
            host(&on_dev.model.state_dict()[k]),
            "{k} on the backend"
        );
    }

    // The recorded normalization is applied on the batch's backend.
    let pixels: Vec<f32> = (0..28 * 28).map(|i| (i % 7) as f32 / 6.0).collect();
    let x_cpu = Tensor::from_slice(&pixels, &[1, 1, 28, 28], &Cpu).unwrap();
    let x_dev = Tensor::from_slice(&pixels, &[1, 1, 28, 28], &dev).unwrap();
    let p_cpu = host(&on_cpu.prepare(x_cpu).unwrap());
    let p_dev = host(&on_dev.prepare(x_dev).unwrap());
    assert_eq!(p_cpu, p_dev);
    assert_eq!(p_cpu[6], (1.0 - 0.25) / 0.5);
    let _ = std::fs::remove_dir_all(&dir);
}
