//! Initializers: fan computations (no randomness) and the distributions' bounds and spread.
//! The statistical tests need the generator bodies in tessera_tensor::rng.

use tessera_nn::init::{self, fans, gain, FanMode, Nonlinearity};
use tessera_tensor::{Cpu, DType, Rng, Tensor};

#[test]
fn fans_follow_pytorch() {
    assert_eq!(fans(&[10, 20]).unwrap(), (20, 10));
    assert_eq!(fans(&[64, 3, 7, 7]).unwrap(), (147, 3136));
    assert_eq!(fans(&[8, 4, 3]).unwrap(), (12, 24));
    assert!(fans(&[5]).is_err());
    assert!(fans(&[]).is_err());
    assert_eq!(gain(Nonlinearity::Relu), 2f64.sqrt());
    assert_eq!(gain(Nonlinearity::Linear), 1.0);
    assert!((gain(Nonlinearity::LeakyRelu(5f64.sqrt())) - (1.0f64 / 3.0).sqrt()).abs() < 1e-15);
}

#[test]
fn deterministic_inits_and_argument_errors() {
    let z = init::zeros(&[2, 3], DType::F32, &Cpu).unwrap();
    assert_eq!(z.to_vec::<f32>().unwrap(), vec![0.0; 6]);
    let o = init::ones(&[4], DType::F64, &Cpu).unwrap();
    assert_eq!(o.to_vec::<f64>().unwrap(), vec![1.0; 4]);
    let mut rng = Rng::new(0);
    // Errors come before any random draw.
    assert!(init::kaiming_normal(
        &[3],
        FanMode::FanOut,
        Nonlinearity::Relu,
        DType::F32,
        &mut rng,
        &Cpu
    )
    .is_err());
    assert!(init::trunc_normal(&[3], 0.02, 2.0, -2.0, DType::F32, &mut rng, &Cpu).is_err());
    // fan_in 0: PyTorch's bias bound is 0, so the bias is zeros.
    let b = init::default_bias(&[3, 0], DType::F32, &mut rng, &Cpu).unwrap();
    assert_eq!(b.to_vec::<f32>().unwrap(), vec![0.0; 3]);
}

fn stats(t: &Tensor<Cpu>) -> (f64, f64, f64, f64) {
    let v = t.to_f64_vec().unwrap();
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
    let lo = v.iter().cloned().fold(f64::INFINITY, f64::min);
    let hi = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    (mean, var.sqrt(), lo, hi)
}

#[test]
fn random_inits_have_the_right_spread() {
    let mut rng = Rng::new(42);
    // DINO: trunc normal std 0.02 within absolute bounds +-2.
    let t = init::dino_trunc_normal(&[256, 256], DType::F32, &mut rng, &Cpu).unwrap();
    let (m, s, lo, hi) = stats(&t);
    assert!(m.abs() < 1e-3 && (s - 0.02).abs() < 1e-3 && lo >= -2.0 && hi <= 2.0);

    // torchvision ResNet conv: std sqrt(2 / fan_out), fan_out = 64 * 3 * 3.
    let w = init::kaiming_normal(
        &[64, 32, 3, 3],
        FanMode::FanOut,
        Nonlinearity::Relu,
        DType::F64,
        &mut rng,
        &Cpu,
    )
    .unwrap();
    let (m, s, _, _) = stats(&w);
    let want = (2.0 / 576.0f64).sqrt();
    assert!(
        m.abs() < 0.01 * want * 10.0 && (s / want - 1.0).abs() < 0.05,
        "std {s} vs {want}"
    );

    // PyTorch default Linear [out=128, in=64]: weight and bias in +-1/sqrt(64).
    let bound = 1.0 / 8.0;
    let w = init::default_weight(&[128, 64], DType::F32, &mut rng, &Cpu).unwrap();
    let (_, s, lo, hi) = stats(&w);
    assert!(lo >= -bound && hi <= bound && lo < -0.9 * bound && hi > 0.9 * bound);
    assert!((s / (bound / 3f64.sqrt()) - 1.0).abs() < 0.05);
    let b = init::default_bias(&[128, 64], DType::F32, &mut rng, &Cpu).unwrap();
    assert_eq!(b.shape(), &[128]);
    let (_, _, lo, hi) = stats(&b);
    assert!(lo >= -bound && hi <= bound);
}
