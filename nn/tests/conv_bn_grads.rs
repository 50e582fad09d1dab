//! Conv2d, BatchNorm and ResNet blocks: gradients by `tessera_autograd::gradcheck` in f64, and
//! BatchNorm (outputs, gradients, running statistics) against PyTorch
//! (scripts/gen_resnet_fixtures.py -> tests/fixtures/resnet_bn.safetensors).

use tessera_autograd::{gradcheck, GradcheckOptions, Var};
use tessera_nn::layers::{BatchNorm, BatchNormConfig, BatchNormKind, Conv2d};
use tessera_nn::models::resnet::{Block, BlockKind};
use tessera_nn::{Checkpoint, Module, ModuleExt, StateDict};
use tessera_tensor::{ConvOptions, Cpu, DType, Rng, Tensor};

fn rand(shape: &[usize], seed: u64) -> Tensor<Cpu> {
    Tensor::rand_uniform(shape, -1.0, 1.0, DType::F64, &mut Rng::new(seed), &Cpu).unwrap()
}

fn check<F: Fn(&[Var<Cpu>]) -> tessera_tensor::Result<Var<Cpu>>>(
    what: &str,
    f: F,
    inputs: &[Tensor<Cpu>],
    fast: bool,
) {
    let opts = GradcheckOptions {
        fast_mode: fast,
        ..Default::default()
    };
    if let Err(e) = gradcheck(f, inputs, &opts) {
        panic!("{what}: {e}");
    }
}

#[test]
fn conv2d_input_weight_bias_gradcheck() {
    let mut rng = Rng::new(3);
    let o = ConvOptions::new(2, 1);
    let conv = Conv2d::new(2, 3, [3, 3], o, true, DType::F64, &mut rng, &Cpu).unwrap();
    let (w, b) = (conv.weight.value().clone(), conv.bias.as_ref().unwrap());
    let f = |v: &[Var<Cpu>]| conv.forward_with(&v[0], &v[1], Some(&v[2]));
    check(
        "conv",
        f,
        &[rand(&[2, 2, 5, 6], 1), w, b.value().clone()],
        false,
    );
    // Grouped and dilated, no bias.
    let o = ConvOptions {
        dilation: [2, 1],
        groups: 2,
        ..ConvOptions::new(1, 1)
    };
    let conv = Conv2d::new(4, 2, [2, 3], o, false, DType::F64, &mut rng, &Cpu).unwrap();
    let f = |v: &[Var<Cpu>]| conv.forward_with(&v[0], &v[1], None);
    let w = conv.weight.value().clone();
    check("grouped conv", f, &[rand(&[2, 4, 5, 5], 2), w], false);
    // forward() is forward_with() on the layer's own parameters, and they get gradients.
    let x = Var::constant(rand(&[1, 4, 5, 5], 4));
    let grads = conv
        .forward(&x)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    assert_eq!(conv.grads_by_name(&grads).len(), 1);
}

fn bn(kind: BatchNormKind, c: usize, momentum: Option<f64>) -> BatchNorm<Cpu> {
    let cfg = BatchNormConfig {
        momentum,
        ..Default::default()
    };
    BatchNorm::new(c, kind, cfg, DType::F64, &Cpu).unwrap()
}

#[test]
fn batch_norm_train_and_eval_gradcheck() {
    let cases = [
        (BatchNormKind::D1, vec![5, 3]),
        (BatchNormKind::D1, vec![4, 3, 2]),
        (BatchNormKind::D2, vec![3, 3, 2, 3]),
    ];
    for (kind, shape) in cases {
        let c = shape[1];
        let mut layer = bn(kind, c, Some(0.1));
        let (x, w, b) = (
            rand(&shape, 5),
            rand(&[c], 6).add_scalar(1.5).unwrap(),
            rand(&[c], 7),
        );
        // Train mode: each call works on a copy, as the running statistics change.
        let f = |v: &[Var<Cpu>]| layer.clone().forward_with(&v[0], Some(&v[1]), Some(&v[2]));
        check(
            &format!("bn train {shape:?}"),
            f,
            &[x.clone(), w.clone(), b.clone()],
            false,
        );
        // Eval mode with non-trivial running statistics.
        let mut sd = StateDict::new();
        sd.insert("running_mean".into(), rand(&[c], 8));
        sd.insert("running_var".into(), rand(&[c], 9).add_scalar(1.5).unwrap());
        layer.assign(&sd).unwrap();
        layer.set_training(false);
        let f = |v: &[Var<Cpu>]| layer.clone().forward_with(&v[0], Some(&v[1]), Some(&v[2]));
        check(&format!("bn eval {shape:?}"), f, &[x, w, b], false);
    }
}

fn vals(t: &Tensor<Cpu>) -> Vec<f64> {
    t.to_dtype(DType::F64).unwrap().to_vec::<f64>().unwrap()
}

fn close(what: &str, got: &Tensor<Cpu>, want: &Tensor<Cpu>) {
    assert_eq!(got.shape(), want.shape(), "{what}");
    for (i, (a, b)) in vals(got).iter().zip(vals(want)).enumerate() {
        let ok = (a - b).abs() <= 1e-10 * (1.0 + b.abs());
        assert!(ok, "{what}[{i}]: got {a:e}, want {b:e}");
    }
}

/// Three train-mode steps and one eval step of BatchNorm1d/2d with momentum 0.1 and None
/// (cumulative average): outputs, gradients of `sum(y * g)`, running statistics (updated with
/// the unbiased variance) and num_batches_tracked, against PyTorch.
#[test]
fn batch_norm_matches_pytorch() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/resnet_bn.safetensors"
    );
    let ck = Checkpoint::load(path, &Cpu).unwrap();
    let t = |k: String| ck.tensors.get(&k).unwrap_or_else(|| panic!("{k}")).clone();
    let cases = [
        ("bn1d_2", BatchNormKind::D1, Some(0.1)),
        ("bn1d_3", BatchNormKind::D1, Some(0.1)),
        ("bn2d", BatchNormKind::D2, Some(0.1)),
        ("bn2d_cma", BatchNormKind::D2, None),
    ];
    for (case, kind, momentum) in cases {
        let w = t(format!("{case}.weight"));
        let mut layer = bn(kind, w.numel(), momentum);
        let mut sd = StateDict::new();
        sd.insert("weight".into(), w);
        sd.insert("bias".into(), t(format!("{case}.bias")));
        layer.assign(&sd).unwrap();
        for step in 0..3 {
            let p = format!("{case}.step{step}");
            let x = Var::leaf(t(format!("{p}.x")));
            let y = layer.forward(&x).unwrap();
            close(&format!("{p}.y"), y.value(), &t(format!("{p}.y")));
            let g = Var::constant(t(format!("{p}.g")));
            let grads = y.mul(&g).unwrap().sum_all().unwrap().backward().unwrap();
            close(
                &format!("{p}.dx"),
                grads.get(&x).unwrap(),
                &t(format!("{p}.dx")),
            );
            let by_name = layer.grads_by_name(&grads);
            close(
                &format!("{p}.dw"),
                &by_name["weight"],
                &t(format!("{p}.dweight")),
            );
            close(
                &format!("{p}.db"),
                &by_name["bias"],
                &t(format!("{p}.dbias")),
            );
            let st = layer.state_dict();
            for k in ["running_mean", "running_var", "num_batches_tracked"] {
                close(&format!("{p}.{k}"), &st[k], &t(format!("{p}.{k}")));
            }
            assert_eq!(st["num_batches_tracked"].dtype(), DType::I64);
        }
        layer.set_training(false);
        let before = layer.state_dict();
        let y = layer.forward(&Var::constant(t(format!("{case}.eval.x"))));
        close(
            &format!("{case}.eval"),
            y.unwrap().value(),
            &t(format!("{case}.eval.y")),
        );
        let after = layer.state_dict();
        for k in ["running_mean", "running_var", "num_batches_tracked"] {
            close(&format!("eval keeps {k}"), &after[k], &before[k]);
        }
    }
}

/// `vᵀJu` in fast mode w.r.t. the input, and a directional derivative w.r.t. all parameters
/// (perturbed through `assign`), for a train-mode block with a downsample branch.
fn check_block(kind: BlockKind, inplanes: usize, planes: usize, stride: usize, x: &[usize]) {
    let mut rng = Rng::new(11);
    let mut block = Block::new(kind, inplanes, planes, stride, DType::F64, &mut rng, &Cpu).unwrap();
    assert!(block.downsample.is_some());
    let x = rand(x, 12);
    for training in [true, false] {
        block.set_training(training);
        let f = |v: &[Var<Cpu>]| block.clone().forward(&v[0]);
        check(
            &format!("{kind:?} block input"),
            f,
            std::slice::from_ref(&x),
            true,
        );
    }
    block.set_training(true);
    let gout = block.clone().forward(&Var::constant(x.clone())).unwrap();
    let gout = Var::constant(rand(gout.value().shape(), 13));
    let loss = |b: &Block<Cpu>| {
        let y = b.clone().forward(&Var::constant(x.clone())).unwrap();
        y.mul(&gout).unwrap().sum_all().unwrap()
    };
    let grads = block.grads_by_name(&loss(&block).backward().unwrap());
    let params = block.named_params();
    assert_eq!(grads.len(), params.len());
    let (mut analytic, eps) = (0.0, 1e-6);
    let mut shifted = [StateDict::new(), StateDict::new()];
    for (i, (name, p)) in params.iter().enumerate() {
        let u = rand(p.value().shape(), 100 + i as u64);
        let dot = grads[name].mul(&u).unwrap().sum_all().unwrap();
        analytic += dot.item().unwrap();
        for (s, sign) in shifted.iter_mut().zip([1.0, -1.0]) {
            let v = p.value().add(&u.mul_scalar(sign * eps).unwrap()).unwrap();
            s.insert(name.clone(), v);
        }
    }
    let mut f = [0.0; 2];
    for (fi, s) in f.iter_mut().zip(&shifted) {
        let mut b = block.clone();
        b.assign(s).unwrap();
        *fi = loss(&b).value().item().unwrap();
    }
    let numeric = (f[0] - f[1]) / (2.0 * eps);
    let tol = 1e-5 + 1e-4 * numeric.abs();
    assert!(
        (analytic - numeric).abs() <= tol,
        "{kind:?} parameters: analytic {analytic:e} vs numeric {numeric:e}"
    );
}

#[test]
fn bottleneck_and_basic_block_gradcheck_fast_mode() {
    check_block(BlockKind::Bottleneck, 8, 4, 2, &[2, 8, 5, 5]);
    check_block(BlockKind::Basic, 4, 6, 2, &[2, 4, 5, 4]);
}
