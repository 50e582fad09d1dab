//! Tests of the ResNet: parameter counts and names, modes, widths and the conv init.

use super::*;
use crate::module::ModuleExt;
use tessera_tensor::{Cpu, Tensor};

#[test]
fn resnet18_names_counts_and_small_stem() {
    let mut rng = Rng::new(0);
    let m = resnet18::<Cpu>(1000, DType::F32, &mut rng, &Cpu).unwrap();
    assert_eq!(m.num_params(), 11_689_512); // torchvision's count
    let sd = m.state_dict();
    assert_eq!(sd["layer2.0.downsample.0.weight"].shape(), [128, 64, 1, 1]);
    assert!(!sd.contains_key("layer1.0.downsample.0.weight"));
    let cfg = ResNetConfig {
        in_channels: 1,
        small_stem: true,
        zero_init_residual: true,
        ..ResNetConfig::resnet18(0)
    };
    let mut m = ResNet::<Cpu>::new(cfg, DType::F32, &mut rng, &Cpu).unwrap();
    assert!(m.fc.is_none());
    let bn2 = &m.layers[3][1].bns[1];
    let w = bn2
        .weight
        .as_ref()
        .unwrap()
        .value()
        .to_vec::<f32>()
        .unwrap();
    assert!(w.iter().all(|&v| v == 0.0));
    let x = Var::constant(Tensor::ones(&[2, 1, 8, 8], DType::F32, &Cpu).unwrap());
    assert_eq!(m.forward(&x).unwrap().value().shape(), [2, 512]);
    let bad = Var::constant(Tensor::ones(&[2, 3, 8, 8], DType::F32, &Cpu).unwrap());
    assert!(m.forward(&bad).is_err());
}

/// The narrow ResNet-18 layout of small-image recipes: every stage scales with
/// `base_channels`. 699,888 is torchvision's counting rule (conv weights, BN weight and
/// bias, downsample where the shape changes) at width 16, one input channel and the 3×3
/// stem, no `fc`; the same rule gives torchvision's 11,689,512 at width 64 with `fc`.
#[test]
fn base_channels_scale_every_stage() {
    let cfg = ResNetConfig {
        in_channels: 1,
        small_stem: true,
        base_channels: 16,
        ..ResNetConfig::resnet18(0)
    };
    let mut m = ResNet::<Cpu>::new(cfg, DType::F32, &mut Rng::new(0), &Cpu).unwrap();
    assert_eq!(m.num_params(), 699_888);
    let sd = m.state_dict();
    assert_eq!(sd["conv1.weight"].shape(), [16, 1, 3, 3]);
    assert_eq!(sd["layer4.0.downsample.0.weight"].shape(), [128, 64, 1, 1]);
    assert_eq!(cfg.feature_dim(), 128);
    let x = Var::constant(Tensor::ones(&[2, 1, 16, 16], DType::F32, &Cpu).unwrap());
    assert_eq!(m.forward(&x).unwrap().value().shape(), [2, 128]);
    let zero = ResNetConfig {
        base_channels: 0,
        ..cfg
    };
    assert!(ResNet::<Cpu>::new(zero, DType::F32, &mut Rng::new(0), &Cpu).is_err());
}

/// `ConvInit` picks the conv weights' distribution: torchvision's Normal(0, sqrt(2 /
/// fan_out)) or `nn.Conv2d`'s Uniform(±1/sqrt(fan_in)). Checked on `layer2.0.conv2`
/// (32 × 32 × 3 × 3, fan 288 both ways, 9,216 draws): the uniform one never leaves its
/// bound and has its variance bound²/3; the normal one has variance 2/288.
#[test]
fn conv_init_draws_the_chosen_distribution() {
    let stats = |init: ConvInit| {
        let cfg = ResNetConfig {
            in_channels: 1,
            small_stem: true,
            base_channels: 16,
            conv_init: init,
            ..ResNetConfig::resnet18(0)
        };
        let m = ResNet::<Cpu>::new(cfg, DType::F32, &mut Rng::new(3), &Cpu).unwrap();
        let w = m.state_dict()["layer2.0.conv2.weight"]
            .to_vec::<f32>()
            .unwrap();
        let n = w.len() as f64;
        let max = w.iter().fold(0f32, |a, v| a.max(v.abs())) as f64;
        let var = w.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / n;
        (max, var)
    };
    let bound = 1.0 / 288f64.sqrt();
    let (max, var) = stats(ConvInit::PyTorchDefault);
    assert!(max <= bound * (1.0 + 1e-6), "{max} > {bound}");
    assert!(
        (var / (bound * bound / 3.0) - 1.0).abs() < 0.05,
        "variance {var}"
    );
    let (max, var) = stats(ConvInit::Torchvision);
    assert!(
        max > 2.0 * bound,
        "a normal draw of 9,216 reaches past 2 bounds: {max}"
    );
    assert!((var / (2.0 / 288.0) - 1.0).abs() < 0.05, "variance {var}");
}
