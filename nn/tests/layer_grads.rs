//! Gradient checks of the transformer layers in f64: the input gradient with
//! `tessera_autograd::gradcheck` (full Jacobian, or fast mode for the ViT), and every
//! parameter gradient (through the layer's own `Param`s and `grads_by_name`) against a
//! central difference along a random direction, one parameter at a time, so a failure names
//! the parameter. Tolerances are gradcheck's defaults (atol 1e-5, rtol 1e-3, eps 1e-6).

use tessera_autograd::{gradcheck, GradcheckOptions, Var};
use tessera_nn::layers::{Attention, DropPath, LayerNorm, Mlp, PatchEmbed, WeightNormLinear};
use tessera_nn::models::vit::{VisionTransformer, VitConfig};
use tessera_nn::{Module, ModuleExt, StateDict};
use tessera_tensor::{Cpu, DType, Result, Rng, Tensor};

fn randn(shape: &[usize], seed: u64) -> Tensor<Cpu> {
    Tensor::randn(shape, 0.0, 1.0, DType::F64, &mut Rng::new(seed), &Cpu).unwrap()
}

fn host(t: &Tensor<Cpu>) -> Vec<f64> {
    t.to_vec::<f64>().unwrap()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Checks the input gradient of `f` with `gradcheck`.
fn check_input(x: &Tensor<Cpu>, fast: bool, f: impl Fn(&Var<Cpu>) -> Result<Var<Cpu>>) {
    let opts = GradcheckOptions {
        fast_mode: fast,
        ..Default::default()
    };
    if let Err(failure) = gradcheck(|v| f(&v[0]), std::slice::from_ref(x), &opts) {
        panic!("input gradient: {failure}");
    }
}

/// For every parameter `p` of `m`: `<∂(vᵀ y)/∂p, u>` from backward against
/// `(vᵀ f(p + εu) - vᵀ f(p - εu)) / 2ε`, for random `u`, `v` (a missing gradient counts
/// as 0).
fn check_params<M: Module<Cpu> + Clone>(m: &M, f: impl Fn(&M) -> Result<Var<Cpu>>) {
    let (eps, atol, rtol) = (1e-6, 1e-5, 1e-3);
    let y = f(m).unwrap();
    let v = randn(y.shape(), 17);
    let grads = m.grads_by_name(&y.backward_with(&v).unwrap());
    let sd = m.state_dict();
    let trainable: Vec<String> = m.named_params().into_iter().map(|(n, _)| n).collect();
    assert!(!trainable.is_empty());
    let project = |values: StateDict<Cpu>| {
        let mut mm = m.clone();
        mm.assign(&values).unwrap();
        dot(&host(f(&mm).unwrap().value()), &host(&v))
    };
    for (i, name) in trainable.iter().enumerate() {
        let p = &sd[name];
        let u = host(&randn(p.shape(), 100 + i as u64));
        // No gradient means the output does not depend on it: the difference must be 0 too.
        let analytic = grads.get(name).map_or(0.0, |g| dot(&host(g), &u));
        let shifted = |s: f64| {
            let val: Vec<f64> = host(p).iter().zip(&u).map(|(a, b)| a + s * b).collect();
            let mut values = StateDict::new();
            values.insert(
                name.clone(),
                Tensor::from_vec(val, p.shape(), &Cpu).unwrap(),
            );
            project(values)
        };
        let numeric = (shifted(eps) - shifted(-eps)) / (2.0 * eps);
        let tol = atol + rtol * numeric.abs();
        assert!(
            (analytic - numeric).abs() <= tol,
            "{name}: analytic {analytic} vs numeric {numeric} (tolerance {tol:e})"
        );
    }
}

#[test]
fn layer_norm_grads() {
    let mut ln = LayerNorm::new(5, 1e-6, DType::F64, &Cpu).unwrap();
    // Non-trivial affine parameters.
    let mut values = StateDict::new();
    values.insert("weight".into(), randn(&[5], 1));
    values.insert("bias".into(), randn(&[5], 2));
    ln.assign(&values).unwrap();
    let x = randn(&[2, 3, 5], 3);
    check_input(&x, false, |x| ln.forward(x));
    check_params(&ln, |m| m.forward(&Var::constant(x.clone())));
}

#[test]
fn attention_grads() {
    let a = Attention::new(6, 2, true, DType::F64, &mut Rng::new(4), &Cpu).unwrap();
    let x = randn(&[2, 4, 6], 5);
    check_input(&x, false, |x| a.forward(x));
    // The attention weights themselves, as get_last_selfattention returns them.
    check_input(&x, false, |x| Ok(a.forward_with_attn(x)?.1));
    check_params(&a, |m| m.forward(&Var::constant(x.clone())));
}

#[test]
fn mlp_grads() {
    let mlp = Mlp::new(4, 8, 3, DType::F64, &mut Rng::new(6), &Cpu).unwrap();
    let x = randn(&[3, 4], 7);
    check_input(&x, false, |x| mlp.forward(x));
    check_params(&mlp, |m| m.forward(&Var::constant(x.clone())));
}

#[test]
fn weight_norm_linear_grads() {
    // g trainable (norm_last_layer = false) so that both parameters are checked.
    let mut l = WeightNormLinear::new(4, 3, false, DType::F64, &mut Rng::new(8), &Cpu).unwrap();
    let mut values = StateDict::new();
    values.insert("weight_g".into(), randn(&[3, 1], 9));
    l.assign(&values).unwrap();
    let x = randn(&[2, 4], 10);
    check_input(&x, false, |x| l.forward(x));
    check_params(&l, |m| m.forward(&Var::constant(x.clone())));
}

#[test]
fn drop_path_grads() {
    let x = randn(&[4, 3], 11);
    let mut dp = DropPath::new(0.4, 12).unwrap();
    // Training mode with the mask replayed by reseeding: the gradient is the mask.
    check_input(&x, false, |x| {
        dp.reseed(12);
        dp.forward(x)
    });
    Module::<Cpu>::set_training(&mut dp, false);
    check_input(&x, false, |x| dp.forward(x));
}

#[test]
fn patch_embed_grads() {
    let pe = PatchEmbed::new(2, 2, 3, DType::F64, &mut Rng::new(13), &Cpu).unwrap();
    let x = randn(&[2, 2, 4, 6], 14);
    check_input(&x, false, |x| pe.forward(x));
    check_params(&pe, |m| m.forward(&Var::constant(x.clone())));
}

#[test]
fn one_block_vit_grads_fast_mode() {
    let cfg = VitConfig {
        img_size: 8,
        embed_dim: 12,
        depth: 1,
        ..VitConfig::tiny(4)
    };
    let vit = VisionTransformer::new(cfg, DType::F64, &mut Rng::new(15), &Cpu).unwrap();
    // 12×8 px: a 3×2 grid, so the stored 2×2 positional grid is interpolated.
    let x = randn(&[2, 3, 12, 8], 16);
    check_input(&x, true, |x| vit.forward(x));
    check_params(&vit, |m| m.forward(&Var::constant(x.clone())));
    check_params(&vit, |m| {
        m.get_last_selfattention(&Var::constant(x.clone()))
    });
}
