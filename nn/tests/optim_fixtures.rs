//! Optimizers and clipping against PyTorch (scripts/gen_nn_fixtures.py ->
//! tests/fixtures/nn_optim.safetensors): 3 steps on three f64 parameters, compared to ~1e-12.

use std::collections::BTreeMap;
use tessera_nn::optim::{
    clip_grad_norm, clip_grad_per_param, AdamW, AdamWConfig, Lars, LarsConfig, Optimizer,
    ParamGroup, Sgd, SgdConfig,
};
use tessera_nn::{Checkpoint, StateDict};
use tessera_tensor::{Cpu, Tensor};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/fixtures/nn_optim.safetensors"
);

struct Fixture(BTreeMap<String, (Vec<usize>, Vec<f64>)>);

impl Fixture {
    fn load() -> Self {
        let bytes = std::fs::read(FIXTURE).expect("fixture file");
        let st = safetensors::SafeTensors::deserialize(&bytes).expect("valid safetensors");
        let mut map = BTreeMap::new();
        for (name, view) in st.iter() {
            assert_eq!(view.dtype(), safetensors::Dtype::F64, "{name}");
            let v: Vec<f64> = view
                .data()
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
                .collect();
            map.insert(name.to_string(), (view.shape().to_vec(), v));
        }
        Fixture(map)
    }

    fn values(&self, name: &str) -> &[f64] {
        &self.0.get(name).unwrap_or_else(|| panic!("no {name}")).1
    }

    fn tensor(&self, name: &str) -> Tensor<Cpu> {
        let (shape, v) = self.0.get(name).unwrap_or_else(|| panic!("no {name}"));
        Tensor::from_vec(v.clone(), shape, &Cpu).unwrap()
    }
}

fn assert_close(what: &str, got: &[f64], want: &[f64], rtol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&a, &b)) in got.iter().zip(want).enumerate() {
        let tol = rtol * a.abs().max(b.abs()) + 1e-300;
        assert!(
            (a - b).abs() <= tol,
            "{what}[{i}]: got {a:e}, want {b:e} (diff {:e})",
            (a - b).abs()
        );
    }
}

fn group(names: &[&str], lr: f64, wd: f64) -> ParamGroup {
    ParamGroup::new(names.iter().copied(), lr).with_weight_decay(wd)
}

/// Runs 3 steps of `opt` and compares with `<case>.step<k>.<p>`; returns the parameters.
fn check_case(fx: &Fixture, case: &str, opt: &mut dyn Optimizer<Cpu>) {
    let order: Vec<String> = opt.param_names().iter().map(|s| s.to_string()).collect();
    let mut params: Vec<Tensor<Cpu>> = order
        .iter()
        .map(|n| fx.tensor(&format!("init.{n}")))
        .collect();
    for k in 1..=3 {
        let grads: Vec<_> = order
            .iter()
            .map(|n| fx.tensor(&format!("grad.step{k}.{n}")))
            .collect();
        opt.step(&mut params, &grads).unwrap();
        for (n, p) in order.iter().zip(&params) {
            let key = format!("{case}.step{k}.{n}");
            assert_close(&key, &p.to_vec::<f64>().unwrap(), fx.values(&key), 1e-12);
        }
    }
}

fn sgd(groups: Vec<ParamGroup>, momentum: f64, dampening: f64, nesterov: bool) -> Sgd<Cpu> {
    Sgd::new(
        groups,
        SgdConfig {
            momentum,
            dampening,
            nesterov,
        },
    )
    .unwrap()
}

#[test]
fn sgd_plain() {
    let fx = Fixture::load();
    let mut opt = sgd(vec![group(&["w", "b", "z"], 0.1, 0.0)], 0.0, 0.0, false);
    check_case(&fx, "sgd", &mut opt);
    assert!(Optimizer::<Cpu>::state_dict(&opt).is_empty());
}

#[test]
fn sgd_momentum_with_groups() {
    let fx = Fixture::load();
    let groups = vec![group(&["w", "z"], 0.1, 0.01), group(&["b"], 0.05, 0.0)];
    check_case(&fx, "sgd_momentum", &mut sgd(groups, 0.9, 0.0, false));
}

#[test]
fn sgd_nesterov() {
    let fx = Fixture::load();
    let groups = vec![group(&["w", "b", "z"], 0.1, 0.01)];
    check_case(&fx, "sgd_nesterov", &mut sgd(groups, 0.9, 0.0, true));
}

#[test]
fn sgd_dampening() {
    let fx = Fixture::load();
    let groups = vec![group(&["w", "b", "z"], 0.05, 0.02)];
    check_case(&fx, "sgd_dampening", &mut sgd(groups, 0.8, 0.3, false));
}

#[test]
fn adamw_with_groups() {
    let fx = Fixture::load();
    let groups = vec![group(&["w", "z"], 0.01, 0.04), group(&["b"], 0.01, 0.0)];
    let mut opt = AdamW::new(groups, AdamWConfig::default()).unwrap();
    check_case(&fx, "adamw", &mut opt);
}

#[test]
fn adamw_other_betas() {
    let fx = Fixture::load();
    let config = AdamWConfig {
        beta1: 0.3,
        beta2: 0.99,
        eps: 1e-6,
    };
    let mut opt = AdamW::new(vec![group(&["w", "b", "z"], 0.02, 0.1)], config).unwrap();
    check_case(&fx, "adamw_betas", &mut opt);
}

fn lars() -> Lars<Cpu> {
    let groups = vec![
        group(&["w", "z"], 0.2, 0.01),
        group(&["b"], 0.2, 0.01).with_lars_exclude(true),
    ];
    Lars::new(
        groups,
        LarsConfig {
            momentum: 0.9,
            eta: 1e-3,
        },
    )
    .unwrap()
}

#[test]
fn lars_byol() {
    let fx = Fixture::load();
    check_case(&fx, "lars", &mut lars());
}

/// Two steps, state through a safetensors checkpoint into a fresh optimizer, third step.
#[test]
fn state_survives_a_checkpoint() {
    let fx = Fixture::load();
    let groups = vec![group(&["w", "z"], 0.01, 0.04), group(&["b"], 0.01, 0.0)];
    let mut opt = AdamW::new(groups.clone(), AdamWConfig::default()).unwrap();
    let names = ["w", "z", "b"];
    let mut params: Vec<_> = names
        .iter()
        .map(|n| fx.tensor(&format!("init.{n}")))
        .collect();
    let grads = |k: usize| -> Vec<Tensor<Cpu>> {
        names
            .iter()
            .map(|n| fx.tensor(&format!("grad.step{k}.{n}")))
            .collect()
    };
    opt.step(&mut params, &grads(1)).unwrap();
    opt.step(&mut params, &grads(2)).unwrap();
    let sd = Optimizer::<Cpu>::state_dict(&opt);
    assert_eq!(sd.len(), 9, "{:?}", sd.keys().collect::<Vec<_>>());
    assert_eq!(sd["w.step"].item().unwrap(), 2.0);
    let bytes = Checkpoint::new(sd).to_bytes().unwrap();
    let restored = Checkpoint::<Cpu>::from_bytes(&bytes, &Cpu).unwrap().tensors;
    let mut fresh = AdamW::new(groups, AdamWConfig::default()).unwrap();
    fresh.load_state_dict(&restored).unwrap();
    fresh.step(&mut params, &grads(3)).unwrap();
    for (n, p) in names.iter().zip(&params) {
        let key = format!("adamw.step3.{n}");
        assert_close(&key, &p.to_vec::<f64>().unwrap(), fx.values(&key), 1e-12);
    }
}

#[test]
fn step_named_matches_positional_and_skips_missing_grads() {
    let fx = Fixture::load();
    let mut opt = lars();
    let mut params: StateDict<Cpu> = ["w", "b", "z"]
        .iter()
        .map(|n| (n.to_string(), fx.tensor(&format!("init.{n}"))))
        .collect();
    params.insert("frozen".into(), fx.tensor("init.w"));
    for k in 1..=3 {
        let grads: StateDict<Cpu> = ["w", "b", "z"]
            .iter()
            .map(|n| (n.to_string(), fx.tensor(&format!("grad.step{k}.{n}"))))
            .collect();
        opt.step_named(&mut params, &grads).unwrap();
    }
    for n in ["w", "b", "z"] {
        let key = format!("lars.step3.{n}");
        assert_close(
            &key,
            &params[n].to_vec::<f64>().unwrap(),
            fx.values(&key),
            1e-12,
        );
    }
    assert_eq!(
        params["frozen"].to_vec::<f64>().unwrap(),
        fx.values("init.w")
    );

    // A parameter without a gradient is untouched, and so is its state.
    let before = params["b"].to_vec::<f64>().unwrap();
    let buf = Optimizer::<Cpu>::state_dict(&opt)["b.momentum_buffer"]
        .to_vec::<f64>()
        .unwrap();
    let grads: StateDict<Cpu> = [("w".to_string(), fx.tensor("grad.step1.w"))].into();
    opt.step_named(&mut params, &grads).unwrap();
    assert_eq!(params["b"].to_vec::<f64>().unwrap(), before);
    let sd = Optimizer::<Cpu>::state_dict(&opt);
    assert_eq!(sd["b.momentum_buffer"].to_vec::<f64>().unwrap(), buf);

    // Unknown gradient names and missing parameters are errors naming them.
    let bad: StateDict<Cpu> = [("nope".to_string(), fx.tensor("grad.step1.w"))].into();
    let e = opt.step_named(&mut params, &bad).unwrap_err().to_string();
    assert!(e.contains("\"nope\""), "{e}");
    params.remove("z");
    let e = opt
        .step_named(&mut params, &StateDict::new())
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing") && e.contains("\"z\""), "{e}");
}

#[test]
fn mismatched_gradients_are_errors_and_change_nothing() {
    let fx = Fixture::load();
    let mut opt = AdamW::new(vec![group(&["w", "b"], 0.1, 0.0)], AdamWConfig::default()).unwrap();
    let mut params = vec![fx.tensor("init.w"), fx.tensor("init.b")];
    // b's gradient has w's shape: nothing may be updated, not even w.
    let grads = vec![fx.tensor("grad.step1.w"), fx.tensor("grad.step1.w")];
    let e = opt.step(&mut params, &grads).unwrap_err().to_string();
    assert!(
        e.contains("\"b\"") && e.contains("[3]") && e.contains("[3, 2]"),
        "{e}"
    );
    assert_eq!(params[0].to_vec::<f64>().unwrap(), fx.values("init.w"));
    assert!(Optimizer::<Cpu>::state_dict(&opt).is_empty());
    // Wrong counts.
    let e = opt.step(&mut params, &grads[..1]).unwrap_err().to_string();
    assert!(e.contains("2 parameters"), "{e}");
    // Wrong dtype.
    let g32 = vec![
        fx.tensor("grad.step1.w")
            .to_dtype(tessera_tensor::DType::F32)
            .unwrap(),
        fx.tensor("grad.step1.b"),
    ];
    assert!(opt.step(&mut params, &g32).is_err());
}

#[test]
fn bad_configs_and_state_are_rejected() {
    assert!(Sgd::<Cpu>::new(
        vec![group(&["w"], 0.1, 0.0)],
        SgdConfig {
            nesterov: true,
            ..Default::default()
        }
    )
    .is_err());
    assert!(Sgd::<Cpu>::new(vec![group(&["w"], -1.0, 0.0)], SgdConfig::default()).is_err());
    assert!(AdamW::<Cpu>::new(
        vec![group(&["w"], 0.1, 0.0)],
        AdamWConfig {
            beta1: 1.0,
            ..Default::default()
        }
    )
    .is_err());
    let e = Lars::<Cpu>::new(
        vec![group(&["w"], 0.1, 0.0), group(&["w"], 0.1, 0.0)],
        LarsConfig::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("\"w\""), "{e}");

    let fx = Fixture::load();
    let mut opt = AdamW::new(vec![group(&["w"], 0.1, 0.0)], AdamWConfig::default()).unwrap();
    let mut sd = StateDict::new();
    sd.insert("w.exp_avg".to_string(), fx.tensor("init.w"));
    sd.insert("v.exp_avg".to_string(), fx.tensor("init.w"));
    let e = opt.load_state_dict(&sd).unwrap_err().to_string();
    assert!(
        e.contains("\"v.exp_avg\"") && e.contains("\"w.exp_avg_sq\"") && e.contains("\"w.step\""),
        "{e}"
    );
    // A state of the wrong shape is caught at the next step.
    sd.remove("v.exp_avg");
    sd.insert("w.exp_avg_sq".to_string(), fx.tensor("init.b"));
    sd.insert(
        "w.step".to_string(),
        Tensor::scalar(1.0, tessera_tensor::DType::F64, &Cpu).unwrap(),
    );
    opt.load_state_dict(&sd).unwrap();
    let e = opt
        .step(&mut [fx.tensor("init.w")], &[fx.tensor("grad.step1.w")])
        .unwrap_err()
        .to_string();
    assert!(e.contains("exp_avg_sq") && e.contains("[3]"), "{e}");
}

#[test]
fn clipping_matches_dino_and_torch() {
    let fx = Fixture::load();
    let names = ["w", "b", "z"];
    let grads: Vec<_> = names
        .iter()
        .map(|n| fx.tensor(&format!("clip.grad.{n}")))
        .collect();

    let mut g = grads.clone();
    let norms: Vec<f64> = clip_grad_per_param(&mut g, 1.0)
        .unwrap()
        .iter()
        .map(|n| n.item().unwrap())
        .collect();
    assert_close(
        "clip_per_param.norms",
        &norms,
        fx.values("clip_per_param.norms"),
        1e-14,
    );
    for (n, t) in names.iter().zip(&g) {
        let key = format!("clip_per_param.out.{n}");
        assert_close(&key, &t.to_vec::<f64>().unwrap(), fx.values(&key), 1e-13);
    }
    // z's norm is below the clip: DINO leaves it bit-identical.
    assert_eq!(g[2].to_vec::<f64>().unwrap(), fx.values("clip.grad.z"));

    let mut g = grads;
    let total = clip_grad_norm(&mut g, 1.5)
        .unwrap()
        .unwrap()
        .item()
        .unwrap();
    assert_close(
        "clip_global.total_norm",
        &[total],
        fx.values("clip_global.total_norm"),
        1e-14,
    );
    for (n, t) in names.iter().zip(&g) {
        let key = format!("clip_global.out.{n}");
        assert_close(&key, &t.to_vec::<f64>().unwrap(), fx.values(&key), 1e-13);
    }
    assert!(clip_grad_norm::<Cpu>(&mut [], 1.0).unwrap().is_none());
}

#[test]
fn split_decay_groups_follows_dino() {
    let shapes: [(&str, &[usize]); 5] = [
        ("blocks.0.attn.qkv.weight", &[6, 2]),
        ("blocks.0.attn.qkv.bias", &[6]),
        ("blocks.0.norm1.weight", &[2]),
        ("pos_embed", &[1, 5, 2]),
        ("head.last_layer.weight_g", &[4, 1]),
    ];
    let [reg, not_reg] = tessera_nn::optim::split_decay_groups(shapes, 0.5, 0.04);
    assert_eq!(
        reg.names,
        [
            "blocks.0.attn.qkv.weight",
            "pos_embed",
            "head.last_layer.weight_g"
        ]
    );
    assert_eq!(
        not_reg.names,
        ["blocks.0.attn.qkv.bias", "blocks.0.norm1.weight"]
    );
    assert_eq!((reg.weight_decay, not_reg.weight_decay), (0.04, 0.0));
    assert!(!reg.lars_exclude && not_reg.lars_exclude);
}

/// The same updates on f32 parameters stay within f32 rounding of the f64 reference.
#[test]
fn f32_parameters_follow_the_f64_reference() {
    let fx = Fixture::load();
    let groups = vec![
        group(&["w", "z"], 0.2, 0.01),
        group(&["b"], 0.2, 0.01).with_lars_exclude(true),
    ];
    let mut opt = Lars::new(
        groups,
        LarsConfig {
            momentum: 0.9,
            eta: 1e-3,
        },
    )
    .unwrap();
    let f32t = |name: &str| {
        fx.tensor(name)
            .to_dtype(tessera_tensor::DType::F32)
            .unwrap()
    };
    let names = ["w", "z", "b"];
    let mut params: Vec<_> = names.iter().map(|n| f32t(&format!("init.{n}"))).collect();
    for k in 1..=3 {
        let grads: Vec<_> = names
            .iter()
            .map(|n| f32t(&format!("grad.step{k}.{n}")))
            .collect();
        opt.step(&mut params, &grads).unwrap();
    }
    for (n, p) in names.iter().zip(&params) {
        assert_eq!(p.dtype(), tessera_tensor::DType::F32);
        let want = fx.values(&format!("lars.step3.{n}"));
        for (a, b) in p.to_f64_vec().unwrap().iter().zip(want) {
            assert!((a - b).abs() <= 1e-6 * (1.0 + b.abs()), "{n}: {a} vs {b}");
        }
    }
}
