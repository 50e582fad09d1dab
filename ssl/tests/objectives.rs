//! DINO's head and loss, BYOL's loss and MLP head, and the teacher EMA against PyTorch
//! (`tests/fixtures/ssl_objectives.safetensors`, written by
//! `scripts/gen_ssl_objective_fixtures.py`), in F32 and F64, plus finite-difference gradient
//! checks of the objectives in F64.

#[path = "../../tensor/tests/common/fixtures.rs"]
mod fixtures;

use fixtures::{Array, Case, Fixtures};
use std::collections::BTreeSet;
use tessera_autograd::{gradcheck, GradcheckOptions, Var};
use tessera_nn::module::{join, Entry, EntryMut, Module, Param};
use tessera_nn::{ModuleExt, StateDict};
use tessera_ssl::byol::{byol_loss, byol_regression_loss, MlpHead, MlpHeadConfig};
use tessera_ssl::dino::{l2_normalize, DinoHead, DinoHeadConfig, DinoLoss, DinoLossConfig};
use tessera_ssl::ema::{byol_momentum, dino_momentum_schedule, ema_update};
use tessera_tensor::{Cpu, DType, Rng, Tensor};

const FILE: &str = "ssl_objectives.safetensors";

fn tensor(a: &Array, dtype: DType) -> Tensor<Cpu> {
    Tensor::from_vec(a.to_f64(), &a.shape, &Cpu)
        .unwrap()
        .to_dtype(dtype)
        .unwrap()
}

/// F32: within `1e-4·max|ref| + 1e-6`; F64: within `1e-10·max|ref| + 1e-12`.
fn assert_close(what: &str, got: &Tensor<Cpu>, want: &Array) {
    assert_eq!(got.shape(), want.shape.as_slice(), "{what}: shape");
    let (rel, abs) = match got.dtype() {
        DType::F32 => (1e-4, 1e-6),
        _ => (1e-10, 1e-12),
    };
    let w = want.to_f64();
    let g = got.to_f64_vec().unwrap();
    let scale = w.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let tol = rel * scale + abs;
    for (i, (a, b)) in g.iter().zip(&w).enumerate() {
        assert!(
            (a - b).abs() <= tol,
            "{what} ({:?}) element {i}: got {a}, want {b} (tolerance {tol})",
            got.dtype()
        );
    }
}

/// The tensors of a case whose names start with `prefix` (e.g. `param.`), keyed by the rest.
fn named(case: &Case<'_>, prefix: &str, dtype: DType) -> StateDict<Cpu> {
    case.names()
        .into_iter()
        .filter_map(|n| n.strip_prefix(prefix).map(|rest| (n, rest)))
        .map(|(n, rest)| (rest.to_string(), tensor(case.get(n), dtype)))
        .collect()
}

fn keys(sd: &StateDict<Cpu>) -> BTreeSet<String> {
    sd.keys().cloned().collect()
}

const DTYPES: [DType; 2] = [DType::F32, DType::F64];

#[test]
fn dino_head_matches_pytorch() {
    let fx = Fixtures::open(FILE);
    let cases = fx.cases_with_op("dino_head");
    assert_eq!(cases.len(), 3);
    for case in &cases {
        let p = case.params();
        let config = DinoHeadConfig {
            in_dim: p.get("in_dim").unwrap().as_usize(),
            out_dim: p.get("out_dim").unwrap().as_usize(),
            norm_last_layer: p.get("norm_last_layer").unwrap().as_bool(),
            nlayers: p.get("nlayers").unwrap().as_usize(),
            hidden_dim: p.get("hidden_dim").unwrap().as_usize(),
            bottleneck_dim: p.get("bottleneck_dim").unwrap().as_usize(),
        };
        for dtype in DTYPES {
            let what = format!("{} {dtype:?}", case.name);
            let mut head = DinoHead::new(config, dtype, &mut Rng::new(1), &Cpu).unwrap();
            let params = named(case, "param.", dtype);
            // Same names as PyTorch's state_dict, then load PyTorch's values.
            assert_eq!(keys(&head.state_dict()), keys(&params), "{what}");
            head.load_state_dict(&params).unwrap();
            let x = Var::leaf(tensor(case.get("x"), dtype));
            let out = head.forward(&x).unwrap();
            assert_close(&format!("{what} out"), out.value(), case.get("out"));
            let grads = out
                .backward_with(&tensor(case.get("grad_out"), dtype))
                .unwrap();
            let by_name = head.grads_by_name(&grads);
            let want = named(case, "grad.", dtype);
            // A frozen weight_g (norm_last_layer) gets no gradient, as in PyTorch.
            assert_eq!(
                keys(&by_name),
                keys(&want),
                "{what}: parameters with gradients"
            );
            for (n, g) in &by_name {
                assert_close(
                    &format!("{what} grad {n}"),
                    g,
                    case.get(&format!("grad.{n}")),
                );
            }
            assert_close(
                &format!("{what} grad_x"),
                grads.get(&x).unwrap(),
                case.get("grad_x"),
            );
        }
    }
}

fn loss_config(case: &Case<'_>) -> DinoLossConfig {
    let p = case.params();
    let f = |k: &str| p.get(k).unwrap().as_f64();
    let u = |k: &str| p.get(k).unwrap().as_usize();
    DinoLossConfig {
        out_dim: u("out_dim"),
        ncrops: u("ncrops"),
        warmup_teacher_temp: f("warmup_teacher_temp"),
        teacher_temp: f("teacher_temp"),
        warmup_teacher_temp_epochs: u("warmup_teacher_temp_epochs"),
        nepochs: u("nepochs"),
        student_temp: f("student_temp"),
        center_momentum: f("center_momentum"),
    }
}

#[test]
fn dino_loss_matches_pytorch_over_two_steps() {
    let fx = Fixtures::open(FILE);
    let cases = fx.cases_with_op("dino_loss");
    assert_eq!(cases.len(), 2);
    for case in &cases {
        let epoch = case.param("epoch").as_usize();
        for dtype in DTYPES {
            let what = format!("{} {dtype:?}", case.name);
            let mut loss_fn = DinoLoss::new(loss_config(case), dtype, &Cpu).unwrap();
            let temp = loss_fn.teacher_temp(epoch).unwrap();
            assert_eq!(temp, case.param("teacher_temp_at_epoch").as_f64(), "{what}");
            for k in 1..=2 {
                let s = Var::leaf(tensor(case.get(&format!("student{k}")), dtype));
                let t = tensor(case.get(&format!("teacher{k}")), dtype);
                let loss = loss_fn.forward(&s, &t, epoch).unwrap();
                assert_close(
                    &format!("{what} loss{k}"),
                    loss.value(),
                    case.get(&format!("loss{k}")),
                );
                let grads = loss.backward().unwrap();
                assert_close(
                    &format!("{what} grad_student{k}"),
                    grads.get(&s).unwrap(),
                    case.get(&format!("grad_student{k}")),
                );
                assert_close(
                    &format!("{what} center{k}"),
                    loss_fn.center(),
                    case.get(&format!("center{k}")),
                );
            }
            // The center is the loss's state dict.
            let sd = loss_fn.state_dict();
            assert_close(&format!("{what} state"), &sd["center"], case.get("center2"));
            let mut fresh = DinoLoss::new(loss_config(case), dtype, &Cpu).unwrap();
            fresh.load_state_dict(&sd).unwrap();
            assert_close(
                &format!("{what} loaded"),
                fresh.center(),
                case.get("center2"),
            );
        }
    }
}

#[test]
fn byol_loss_matches_pytorch() {
    let fx = Fixtures::open(FILE);
    let cases = fx.cases_with_op("byol_loss");
    assert_eq!(cases.len(), 2);
    for case in &cases {
        for dtype in DTYPES {
            let what = format!("{} {dtype:?}", case.name);
            let get = |n: &str| tensor(case.get(n), dtype);
            let (p1, p2) = (Var::leaf(get("p1")), Var::leaf(get("p2")));
            let (z1, z2) = (get("z1"), get("z2"));
            let one = byol_regression_loss(&p1, &z2).unwrap();
            assert_close(
                &format!("{what} loss_one"),
                one.value(),
                case.get("loss_one"),
            );
            let loss = byol_loss(&p1, &p2, &z1, &z2).unwrap();
            assert_close(&format!("{what} loss"), loss.value(), case.get("loss"));
            let grads = loss.backward().unwrap();
            assert_close(
                &format!("{what} grad_p1"),
                grads.get(&p1).unwrap(),
                case.get("grad_p1"),
            );
            assert_close(
                &format!("{what} grad_p2"),
                grads.get(&p2).unwrap(),
                case.get("grad_p2"),
            );
        }
    }
}

#[test]
fn byol_mlp_head_matches_pytorch() {
    let fx = Fixtures::open(FILE);
    let case = fx.case("byolmlp");
    let config = MlpHeadConfig {
        in_dim: case.param("in_dim").as_usize(),
        hidden_dim: case.param("hidden_dim").as_usize(),
        out_dim: case.param("out_dim").as_usize(),
        // The fixture is lucidrains' `byol-pytorch` MLP, whose last Linear has a bias
        // (DeepMind's, the default, has none: see `byol_head_loads_official_layout`).
        last_bias: true,
    };
    for dtype in DTYPES {
        let what = format!("byolmlp {dtype:?}");
        let mut head = MlpHead::new(config, dtype, &mut Rng::new(2), &Cpu).unwrap();
        let params = named(&case, "param.", dtype);
        let buffers = named(&case, "buffer.", dtype);
        let all: BTreeSet<String> = keys(&params).union(&keys(&buffers)).cloned().collect();
        assert_eq!(keys(&head.state_dict()), all, "{what}");
        head.assign(&params).unwrap();
        let x = Var::leaf(tensor(case.get("x"), dtype));
        let out = head.forward(&x).unwrap();
        assert_close(&format!("{what} out"), out.value(), case.get("out"));
        let grads = out
            .backward_with(&tensor(case.get("grad_out"), dtype))
            .unwrap();
        let by_name = head.grads_by_name(&grads);
        assert_eq!(keys(&by_name), keys(&params), "{what}");
        for (n, g) in &by_name {
            assert_close(
                &format!("{what} grad {n}"),
                g,
                case.get(&format!("grad.{n}")),
            );
        }
        assert_close(
            &format!("{what} grad_x"),
            grads.get(&x).unwrap(),
            case.get("grad_x"),
        );
        let sd = head.state_dict();
        for n in ["net.1.running_mean", "net.1.running_var"] {
            assert_close(
                &format!("{what} {n}"),
                &sd[n],
                case.get(&format!("buffer.{n}")),
            );
        }
        let tracked = &sd["net.1.num_batches_tracked"];
        assert_eq!(
            tracked.to_vec::<i64>().unwrap(),
            case.get("buffer.net.1.num_batches_tracked").to_i64()
        );
        head.set_training(false);
        let eval = head.forward(&x).unwrap();
        assert_close(
            &format!("{what} out_eval"),
            eval.value(),
            case.get("out_eval"),
        );
    }
}

/// A bag of named parameters plus one buffer, to test the EMA on any `Module`.
#[derive(Debug)]
struct Bag {
    params: Vec<(String, Param<Cpu>)>,
    stat: Tensor<Cpu>,
}

impl Bag {
    fn new(params: StateDict<Cpu>, stat: f64) -> Bag {
        let params = params
            .into_iter()
            .map(|(n, t)| (n, Param::new(t)))
            .collect();
        let stat = Tensor::full(&[2], stat, DType::F64, &Cpu).unwrap();
        Bag { params, stat }
    }
}

impl Module<Cpu> for Bag {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_, Cpu>)) {
        for (n, p) in &self.params {
            f(&join(prefix, n), Entry::Param(p));
        }
        f(&join(prefix, "stat"), Entry::Buffer(&self.stat));
    }
    fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, EntryMut<'_, Cpu>)) {
        for (n, p) in &mut self.params {
            f(&join(prefix, n), EntryMut::Param(p));
        }
        f(&join(prefix, "stat"), EntryMut::Buffer(&mut self.stat));
    }
    fn set_training(&mut self, _training: bool) {}
}

#[test]
fn ema_matches_dino_update_and_checks_names() {
    let fx = Fixtures::open(FILE);
    let case = fx.case("ema");
    let momenta = case.param("momenta").f64_vec();
    for dtype in DTYPES {
        let what = format!("ema {dtype:?}");
        let mut teacher = Bag::new(named(&case, "teacher.", dtype), 5.0);
        let student = Bag::new(named(&case, "student.", dtype), -1.0);
        // Frozen teacher parameters stay frozen.
        teacher.set_frozen("", true);
        for (step, m) in momenta.iter().enumerate() {
            ema_update(&mut teacher, &student, *m).unwrap();
            let prefix = if step == 0 { "out." } else { "out2." };
            let want = named(&case, prefix, DType::F64);
            for (n, p) in &teacher.params {
                assert!(p.is_frozen());
                assert_close(
                    &format!("{what} step {step} {n}"),
                    p.value(),
                    case.get(&format!("{prefix}{n}")),
                );
            }
            assert_eq!(want.len(), teacher.params.len());
        }
        // Buffers are not averaged.
        assert_eq!(teacher.stat.to_f64_vec().unwrap(), [5.0, 5.0]);
    }

    // A missing and a mis-shaped name: an error naming both, and nothing changes.
    let mut teacher = Bag::new(named(&case, "teacher.", DType::F64), 0.0);
    let mut wrong = named(&case, "student.", DType::F64);
    wrong.remove("b.weight");
    wrong.insert(
        "a.bias".into(),
        Tensor::zeros(&[4], DType::F64, &Cpu).unwrap(),
    );
    wrong.insert(
        "c.extra".into(),
        Tensor::zeros(&[1], DType::F64, &Cpu).unwrap(),
    );
    let before = teacher.state_dict();
    let err = ema_update(&mut teacher, &Bag::new(wrong, 0.0), 0.5).unwrap_err();
    let msg = err.to_string();
    for key in ["b.weight", "a.bias", "c.extra", "[4]", "[3]"] {
        assert!(msg.contains(key), "{msg}");
    }
    for (n, t) in teacher.state_dict() {
        assert_eq!(t.to_f64_vec().unwrap(), before[&n].to_f64_vec().unwrap());
    }
    assert!(ema_update(&mut teacher, &Bag::new(StateDict::new(), 0.0), 1.5).is_err());
}

#[test]
fn momentum_schedules() {
    let s = dino_momentum_schedule(0.996, 1.0, 3, 4).unwrap();
    assert_eq!(s.len(), 12);
    assert_eq!(s[0], 0.996);
    assert!(s.windows(2).all(|w| w[0] <= w[1]) && s[11] < 1.0);
    assert_eq!(byol_momentum(0.996, 0, 100), 0.996);
    assert_eq!(byol_momentum(0.996, 100, 100), 1.0);
}

fn randt(shape: &[usize], seed: u64, scale: f64) -> Tensor<Cpu> {
    Tensor::randn(shape, 0.0, scale, DType::F64, &mut Rng::new(seed), &Cpu).unwrap()
}

fn check<F>(name: &str, f: F, inputs: &[Tensor<Cpu>])
where
    F: Fn(&[Var<Cpu>]) -> tessera_tensor::Result<Var<Cpu>>,
{
    if let Err(e) = gradcheck(f, inputs, &GradcheckOptions::default()) {
        panic!("{name}: {e}");
    }
}

#[test]
fn gradcheck_dino_loss() {
    let mut config = DinoLossConfig::new(5, 3, 4);
    config.warmup_teacher_temp_epochs = 3;
    let mut loss_fn = DinoLoss::<Cpu>::new(config, DType::F64, &Cpu).unwrap();
    // A non-zero center first.
    loss_fn.update_center(&randt(&[4, 5], 1, 0.3)).unwrap();
    let teacher = randt(&[4, 5], 2, 0.1);
    // Student logits scaled so that log_softmax(s / 0.1) is not saturated.
    let student = randt(&[6, 5], 3, 0.2);
    check(
        "dino loss",
        |v| loss_fn.loss(&v[0], &teacher, 1),
        std::slice::from_ref(&student),
    );
}

#[test]
fn gradcheck_byol_loss() {
    let (z1, z2) = (randt(&[3, 4], 4, 1.0), randt(&[3, 4], 5, 1.0));
    check(
        "byol loss",
        |v| byol_loss(&v[0], &v[1], &z1, &z2),
        &[randt(&[3, 4], 6, 1.0), randt(&[3, 4], 7, 1.0)],
    );
}

#[test]
fn gradcheck_head_pieces() {
    check(
        "l2_normalize",
        |v| l2_normalize(&v[0], 1e-12),
        &[randt(&[3, 4], 8, 1.0)],
    );
    let mut config = DinoHeadConfig::new(4, 6);
    config.hidden_dim = 5;
    config.bottleneck_dim = 3;
    let mut head = DinoHead::<Cpu>::new(config, DType::F64, &mut Rng::new(12), &Cpu).unwrap();
    // Larger MLP weights than DINO's 0.02 so that the check is not dominated by tiny values.
    let mut sd = head.state_dict();
    for (n, t) in sd.iter_mut() {
        if n.ends_with("weight") {
            *t = randt(t.shape(), 13, 0.5);
        }
    }
    head.assign(&sd).unwrap();
    check(
        "dino head",
        |v| head.forward(&v[0]),
        &[randt(&[2, 4], 14, 1.0)],
    );
}
