//! BYOL's MLP head in DeepMind's official layout (last Linear without bias, the default
//! `MlpHeadConfig::last_bias: false`) against PyTorch
//! (`tests/fixtures/ssl_byol_head.safetensors`, written by `scripts/gen_byol_head_fixture.py`):
//! a strict load of the bias-free state dict, the training-mode forward, the gradients of a
//! scalar loss w.r.t. the input and every parameter, and the BatchNorm running statistics, in
//! F64 within `1e-10` relative.

#[path = "../../tensor/tests/common/fixtures.rs"]
mod fixtures;

use fixtures::{Array, Case, Fixtures};
use std::collections::BTreeSet;
use tessera_autograd::Var;
use tessera_nn::module::Module;
use tessera_nn::{ModuleExt, StateDict};
use tessera_ssl::byol::{MlpHead, MlpHeadConfig};
use tessera_tensor::{Cpu, DType, Rng, Tensor};

const FILE: &str = "ssl_byol_head.safetensors";
const CASE: &str = "byolhead";

/// A fixture array as a CPU tensor: F64, or I64 for integer arrays (`num_batches_tracked`).
fn tensor(a: &Array) -> Tensor<Cpu> {
    let t = Tensor::from_vec(a.to_f64(), &a.shape, &Cpu).unwrap();
    let dtype = if a.is_float() { DType::F64 } else { DType::I64 };
    t.to_dtype(dtype).unwrap()
}

/// Within `1e-10·max|ref| + 1e-12`, element by element.
fn assert_close(what: &str, got: &Tensor<Cpu>, want: &Array) {
    assert_eq!(got.dtype(), DType::F64, "{what}: dtype");
    assert_eq!(got.shape(), want.shape.as_slice(), "{what}: shape");
    let w = want.to_f64();
    let g = got.to_f64_vec().unwrap();
    let scale = w.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let tol = 1e-10 * scale + 1e-12;
    for (i, (a, b)) in g.iter().zip(&w).enumerate() {
        assert!(
            (a - b).abs() <= tol,
            "{what} element {i}: got {a}, want {b} (tolerance {tol})"
        );
    }
}

/// The tensors of the case whose names start with `prefix`, keyed by the rest.
fn named(case: &Case<'_>, prefix: &str) -> StateDict<Cpu> {
    case.names()
        .into_iter()
        .filter_map(|n| n.strip_prefix(prefix).map(|rest| (n, rest)))
        .map(|(n, rest)| (rest.to_string(), tensor(case.get(n))))
        .collect()
}

fn keys(sd: &StateDict<Cpu>) -> BTreeSet<String> {
    sd.keys().cloned().collect()
}

fn config(case: &Case<'_>) -> MlpHeadConfig {
    assert!(!case.param("last_bias").as_bool());
    let c = MlpHeadConfig {
        hidden_dim: case.param("hidden_dim").as_usize(),
        out_dim: case.param("out_dim").as_usize(),
        ..MlpHeadConfig::new(case.param("in_dim").as_usize())
    };
    assert!(
        !c.last_bias,
        "BYOL's default is DeepMind's bias-free layout"
    );
    c
}

/// The fixture's complete state dict before the forward: parameters plus BatchNorm buffers.
fn official_state(case: &Case<'_>) -> StateDict<Cpu> {
    let mut sd = named(case, "param.");
    sd.extend(named(case, "buffer0."));
    sd
}

#[test]
fn byol_head_fixture_is_the_official_layout() {
    let fx = Fixtures::open(FILE);
    let case = fx.case(CASE);
    let sd = official_state(&case);
    let want: BTreeSet<String> = [
        "net.0.weight",
        "net.0.bias",
        "net.1.weight",
        "net.1.bias",
        "net.1.running_mean",
        "net.1.running_var",
        "net.1.num_batches_tracked",
        "net.3.weight",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(keys(&sd), want);
    let head = MlpHead::<Cpu>::new(config(&case), DType::F64, &mut Rng::new(0), &Cpu).unwrap();
    assert_eq!(keys(&head.state_dict()), want);
    assert!(head.fc2.bias.is_none());
}

#[test]
fn byol_head_without_last_bias_matches_pytorch() {
    let fx = Fixtures::open(FILE);
    let case = fx.case(CASE);
    let mut head = MlpHead::<Cpu>::new(config(&case), DType::F64, &mut Rng::new(3), &Cpu).unwrap();
    head.load_state_dict(&official_state(&case)).unwrap();
    let sd = head.state_dict();
    assert_eq!(
        sd["net.1.num_batches_tracked"].to_vec::<i64>().unwrap(),
        case.get("buffer0.net.1.num_batches_tracked").to_i64()
    );
    for n in ["net.1.running_mean", "net.1.running_var"] {
        assert_close(
            &format!("loaded {n}"),
            &sd[n],
            case.get(&format!("buffer0.{n}")),
        );
    }

    head.set_training(true);
    let x = Var::leaf(tensor(case.get("x")));
    let out = head.forward(&x).unwrap();
    assert_close("out", out.value(), case.get("out"));
    let w = Var::constant(tensor(case.get("loss_w")));
    let loss = out.mul(&w).unwrap().sum_all().unwrap();
    assert_close("loss", loss.value(), case.get("loss"));
    let grads = loss.backward().unwrap();
    assert_close("grad_x", grads.get(&x).unwrap(), case.get("grad_x"));
    let by_name = head.grads_by_name(&grads);
    assert_eq!(keys(&by_name), keys(&named(&case, "param.")));
    assert!(!by_name.contains_key("net.3.bias"));
    for (n, g) in &by_name {
        assert_close(&format!("grad {n}"), g, case.get(&format!("grad.{n}")));
    }

    let sd = head.state_dict();
    for n in ["net.1.running_mean", "net.1.running_var"] {
        assert_close(n, &sd[n], case.get(&format!("buffer.{n}")));
    }
    assert_eq!(
        sd["net.1.num_batches_tracked"].to_vec::<i64>().unwrap(),
        case.get("buffer.net.1.num_batches_tracked").to_i64()
    );

    head.set_training(false);
    let eval = head.forward(&x).unwrap();
    assert_close("out_eval", eval.value(), case.get("out_eval"));
}

#[test]
fn byol_head_strict_load_refuses_a_last_bias() {
    let fx = Fixtures::open(FILE);
    let case = fx.case(CASE);
    let official = official_state(&case);
    let mut with_bias = official.clone();
    with_bias.insert("net.3.bias".into(), tensor(case.get("lucidrains_bias")));

    // The bias-free head refuses the extra key, and then nothing is changed.
    let mut head = MlpHead::<Cpu>::new(config(&case), DType::F64, &mut Rng::new(4), &Cpu).unwrap();
    let before = head.state_dict();
    let e = head.load_state_dict(&with_bias).unwrap_err().to_string();
    assert!(e.contains("net.3.bias"), "{e}");
    let after = head.state_dict();
    for (n, t) in &before {
        assert_eq!(
            t.to_f64_vec().unwrap(),
            after[n].to_f64_vec().unwrap(),
            "{n} changed by a refused load"
        );
    }

    // A `last_bias: true` head (lucidrains' layout) refuses the bias-free one ...
    let lucidrains = MlpHeadConfig {
        last_bias: true,
        ..config(&case)
    };
    let mut luc = MlpHead::<Cpu>::new(lucidrains, DType::F64, &mut Rng::new(5), &Cpu).unwrap();
    let e = luc.load_state_dict(&official).unwrap_err().to_string();
    assert!(e.contains("net.3.bias"), "{e}");

    // ... and with a bias its output is PyTorch's `out + bias`, which is not the official
    // `out`: a last-layer bias could not pass `byol_head_without_last_bias_matches_pytorch`.
    luc.load_state_dict(&with_bias).unwrap();
    luc.set_training(true);
    let x = Var::constant(tensor(case.get("x")));
    let y = luc.forward(&x).unwrap();
    assert_close("out_lucidrains", y.value(), case.get("out_lucidrains"));
    let out = case.get("out").to_f64();
    let scale = out.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let min_shift = y
        .value()
        .to_f64_vec()
        .unwrap()
        .iter()
        .zip(&out)
        .map(|(a, b)| (a - b).abs())
        .fold(f64::INFINITY, f64::min);
    assert!(
        min_shift > 1e-3 * scale,
        "the bias shifts every output by at least {min_shift}"
    );
}
