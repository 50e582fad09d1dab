//! Optimizer steps run in place: `Optimizer::step_module` updates a module's parameters where
//! their values already are (same storage), gives the same numbers as the by-name step, and
//! on invalid gradients changes nothing and leaves every parameter in place.

use std::sync::Arc;
use tessera_nn::checkpoint::StateDict;
use tessera_nn::layers::Linear;
use tessera_nn::module::ModuleExt;
use tessera_nn::optim::{AdamW, AdamWConfig, Lars, LarsConfig, Optimizer, ParamGroup};
use tessera_tensor::{Cpu, DType, Rng, Tensor};

fn model() -> Linear<Cpu> {
    Linear::new(6, 4, true, DType::F32, &mut Rng::new(7), &Cpu).unwrap()
}

fn grads(m: &Linear<Cpu>, scale: f64) -> StateDict<Cpu> {
    m.named_params()
        .into_iter()
        .map(|(n, p)| (n, p.value().affine(scale, 0.25).unwrap().tanh().unwrap()))
        .collect()
}

fn names(m: &Linear<Cpu>) -> Vec<String> {
    m.named_params().into_iter().map(|(n, _)| n).collect()
}

fn values(m: &Linear<Cpu>) -> Vec<Vec<f32>> {
    m.named_params()
        .into_iter()
        .map(|(_, p)| p.value().to_vec::<f32>().unwrap())
        .collect()
}

fn check_optimizer<O: Optimizer<Cpu>>(make: impl Fn(Vec<ParamGroup>) -> O) {
    let (mut a, b) = (model(), model());
    let group = || vec![ParamGroup::new(names(&a), 0.01).with_weight_decay(0.1)];
    let (mut oa, mut ob) = (make(group()), make(group()));
    let mut by_name: StateDict<Cpu> = b
        .named_params()
        .into_iter()
        .map(|(n, p)| (n, p.value().clone()))
        .collect();
    for step in 0..3 {
        let g = grads(&a, 1.0 + step as f64);
        let before: Vec<_> = a
            .named_params()
            .into_iter()
            .map(|(_, p)| Arc::as_ptr(p.value().storage()))
            .collect();
        oa.step_module(&mut a, &g).unwrap();
        let after: Vec<_> = a
            .named_params()
            .into_iter()
            .map(|(_, p)| Arc::as_ptr(p.value().storage()))
            .collect();
        if step > 0 {
            // From the second step on nothing else shares the values: written in place.
            assert_eq!(before, after, "step {step} moved a parameter");
        }
        ob.step_named(&mut by_name, &g).unwrap();
    }
    let expected: Vec<Vec<f32>> = names(&a)
        .iter()
        .map(|n| by_name[n].to_vec::<f32>().unwrap())
        .collect();
    assert_eq!(values(&a), expected);

    // A gradient of the wrong shape: an error, and the module is untouched and whole.
    let kept = values(&a);
    let mut bad = grads(&a, 1.0);
    bad.insert(
        "bias".into(),
        Tensor::zeros(&[5], DType::F32, &Cpu).unwrap(),
    );
    assert!(oa.step_module(&mut a, &bad).is_err());
    assert_eq!(values(&a), kept);
    // An unknown name: an error, nothing changes.
    let mut unknown = grads(&a, 1.0);
    unknown.insert(
        "nope".into(),
        Tensor::zeros(&[1], DType::F32, &Cpu).unwrap(),
    );
    assert!(oa.step_module(&mut a, &unknown).is_err());
    assert_eq!(values(&a), kept);
}

#[test]
fn adamw_steps_a_module_in_place() {
    check_optimizer(|g| AdamW::<Cpu>::new(g, AdamWConfig::default()).unwrap());
}

#[test]
fn lars_steps_a_module_in_place() {
    check_optimizer(|g| Lars::<Cpu>::new(g, LarsConfig::default()).unwrap());
}
