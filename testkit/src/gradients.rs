//! Gradient checks on any backend: `tessera_autograd::gradcheck` (f64 central differences
//! against the backward pass, full Jacobian) over a representative set of ops, with inputs
//! built on the backend, some of them non-contiguous views.
//!
//! A failure names the check, gradcheck's report (which input and Jacobian entry disagree)
//! and the inputs' shapes.

use crate::compare::Failure;
use crate::props::{Input, View};
use tessera_autograd::{gradcheck, GradcheckOptions, Var};
use tessera_tensor::{Backend, ConvOptions, DType, Pool2dOptions, Result, Tensor};

type F<B> = Box<dyn Fn(&[Var<B>]) -> Result<Var<B>>>;

/// One gradient check: a name, the function and where its inputs come from.
struct Case<B: Backend> {
    name: &'static str,
    f: F<B>,
    inputs: Vec<(Vec<usize>, View)>,
}

fn case<B: Backend>(
    name: &'static str,
    inputs: &[(&[usize], View)],
    f: impl Fn(&[Var<B>]) -> Result<Var<B>> + 'static,
) -> Case<B> {
    Case {
        name,
        f: Box::new(f),
        inputs: inputs.iter().map(|(s, v)| (s.to_vec(), *v)).collect(),
    }
}

use View::{Contiguous as C, Narrowed as N, Sliced as S, Transposed as T};

fn index<B: Backend>(v: &Var<B>, idx: &[i64], shape: &[usize]) -> Result<Tensor<B>> {
    Tensor::from_vec(idx.to_vec(), shape, v.value().backend())
}

fn elementwise_cases<B: Backend>() -> Vec<Case<B>> {
    let x: &[(&[usize], View)] = &[(&[3, 4], T)];
    vec![
        case("exp", x, |v| v[0].exp()),
        case("tanh", x, |v| v[0].tanh()),
        case("sigmoid", x, |v| v[0].sigmoid()),
        case("gelu", x, |v| v[0].gelu()),
        case("gelu_tanh", x, |v| v[0].gelu_tanh()),
        case("erf", x, |v| v[0].erf()),
        case("relu", &[(&[2, 5], S)], |v| v[0].relu()),
        case("square", &[(&[2, 5], N)], |v| v[0].square()),
        case("log", x, |v| v[0].abs()?.add_scalar(0.5)?.log()),
        case("sqrt", x, |v| v[0].abs()?.add_scalar(0.5)?.sqrt()),
        case("recip", x, |v| v[0].abs()?.add_scalar(0.5)?.recip()),
        case("powf", x, |v| v[0].abs()?.add_scalar(0.5)?.powf(1.7)),
        case("add broadcast", &[(&[2, 3, 4], C), (&[3, 1], T)], |v| {
            v[0].add(&v[1])
        }),
        case("sub broadcast", &[(&[3, 1], C), (&[2, 3, 4], S)], |v| {
            v[0].sub(&v[1])
        }),
        case("mul broadcast", &[(&[2, 3, 4], N), (&[4], C)], |v| {
            v[0].mul(&v[1])
        }),
        case("div broadcast", &[(&[2, 3], T), (&[2, 1], C)], |v| {
            v[0].div(&v[1].abs()?.add_scalar(0.5)?)
        }),
        case("maximum", &[(&[3, 4], C), (&[3, 4], T)], |v| {
            v[0].maximum(&v[1])
        }),
        case("pow", &[(&[3, 2], C), (&[2], C)], |v| {
            v[0].abs()?.add_scalar(0.5)?.pow(&v[1])
        }),
    ]
}

fn reduction_cases<B: Backend>() -> Vec<Case<B>> {
    let x: &[(&[usize], View)] = &[(&[2, 3, 4], S)];
    vec![
        case("sum", x, |v| v[0].sum(&[1], false)),
        case("mean keepdim", x, |v| v[0].mean(&[0, 2], true)),
        case("max", x, |v| v[0].max(&[2], false)),
        case("var", x, |v| v[0].var(&[-1], 1, false)),
        case("matmul batched", &[(&[2, 3, 4], C), (&[2, 4, 5], T)], |v| {
            v[0].matmul(&v[1])
        }),
        case("matmul 2-d", &[(&[3, 4], N), (&[4, 2], C)], |v| {
            v[0].matmul(&v[1])
        }),
        case("softmax", &[(&[3, 5], T)], |v| v[0].softmax(-1)),
        case("log_softmax", &[(&[3, 5], C)], |v| v[0].log_softmax(0)),
        case("layer_norm", &[(&[3, 5], N), (&[5], C), (&[5], C)], |v| {
            v[0].layer_norm(&[5], Some(&v[1]), Some(&v[2]), 1e-5)
        }),
        case(
            "batch_norm_train",
            &[(&[4, 3, 2], T), (&[3], C), (&[3], C)],
            |v| Ok(v[0].batch_norm_train(Some(&v[1]), Some(&v[2]), 1e-5)?.0),
        ),
    ]
}

fn image_cases<B: Backend>() -> Vec<Case<B>> {
    vec![
        case(
            "conv2d",
            &[(&[1, 2, 5, 5], C), (&[3, 2, 3, 3], C), (&[3], C)],
            |v| v[0].conv2d(&v[1], Some(&v[2]), &ConvOptions::new(1, 1)),
        ),
        case(
            "conv2d strided",
            &[(&[2, 2, 5, 4], T), (&[2, 2, 2, 2], S)],
            |v| v[0].conv2d(&v[1], None, &ConvOptions::new(2, 0)),
        ),
        case("max_pool2d", &[(&[1, 2, 4, 4], C)], |v| {
            v[0].max_pool2d(&Pool2dOptions::new(2, 2, 0))
        }),
        case("avg_pool2d", &[(&[1, 2, 5, 5], N)], |v| {
            v[0].avg_pool2d(&Pool2dOptions::new(3, 2, 1))
        }),
        case("adaptive_avg_pool2d", &[(&[1, 2, 5, 4], C)], |v| {
            v[0].adaptive_avg_pool2d([2, 3])
        }),
    ]
}

fn indexing_cases<B: Backend>() -> Vec<Case<B>> {
    vec![
        case("gather", &[(&[3, 4], T)], |v| {
            v[0].gather(1, &index(&v[0], &[0, 3, 3, 1, 2, 0], &[3, 2])?)
        }),
        case("index_select", &[(&[4, 3], S)], |v| {
            v[0].index_select(0, &index(&v[0], &[2, 0, 2], &[3])?)
        }),
        case("scatter_add", &[(&[3, 4], C), (&[3, 2], C)], |v| {
            v[0].scatter_add(1, &index(&v[0], &[0, 0, 3, 1, 2, 2], &[3, 2])?, &v[1])
        }),
        case("views", &[(&[2, 3, 4], C)], |v| {
            v[0].permute(&[2, 0, 1])?
                .slice(0, 1, 4, 2)?
                .reshape(&[2, 6])?
                .narrow(1, 1, 4)?
                .t()
        }),
        case("select and broadcast", &[(&[3, 4], T)], |v| {
            v[0].select(0, 1)?.unsqueeze(0)?.broadcast_to(&[2, 4])
        }),
        case("cat, stack and pad", &[(&[2, 3], C), (&[2, 3], N)], |v| {
            let c = Var::cat(&[v[0].clone(), v[1].clone()], 0)?;
            Var::stack(&[c.clone(), c], 1)?.pad(&[1, 2], 0.0)
        }),
    ]
}

/// The ops [`check_gradients`] covers, by name.
pub fn gradient_checks() -> Vec<&'static str> {
    all_cases::<tessera_tensor::Cpu>()
        .iter()
        .map(|c| c.name)
        .collect()
}

fn all_cases<B: Backend>() -> Vec<Case<B>> {
    let mut v = elementwise_cases();
    v.extend(reduction_cases());
    v.extend(image_cases());
    v.extend(indexing_cases());
    v
}

/// [`check_gradients_with`] under gradcheck's default options (full Jacobian, PyTorch's
/// tolerances `atol = 1e-5`, `rtol = 1e-3`, `eps = 1e-6`).
pub fn check_gradients<B: Backend>(dev: &B) -> std::result::Result<(), Vec<Failure>> {
    check_gradients_with(dev, &GradcheckOptions::default())
}

/// Runs `gradcheck` in f64 on `dev` for every case (unary and binary ops with broadcasting,
/// reductions, matmul, softmax, layer and batch norm, conv2d, pooling, gather, index_select,
/// scatter_add and view ops), with inputs that are contiguous, transposed, strided or narrowed
/// views; returns every failing case.
pub fn check_gradients_with<B: Backend>(
    dev: &B,
    opts: &GradcheckOptions,
) -> std::result::Result<(), Vec<Failure>> {
    let mut failures = Vec::new();
    for (k, c) in all_cases::<B>().into_iter().enumerate() {
        let what = format!("gradients/{} on {}", c.name, dev.name());
        let inputs: Result<Vec<Tensor<B>>> = c
            .inputs
            .iter()
            .enumerate()
            .map(|(j, (shape, view))| {
                Input {
                    shape: shape.clone(),
                    dtype: DType::F64,
                    view: *view,
                    seed: (k * 16 + j) as u64 + 1,
                }
                .build(dev)
            })
            .collect();
        let inputs = match inputs {
            Ok(i) => i,
            Err(e) => {
                failures.push(Failure::error(what, e));
                continue;
            }
        };
        if let Err(e) = gradcheck(&c.f, &inputs, opts) {
            let shapes: Vec<String> = c
                .inputs
                .iter()
                .map(|(s, v)| format!("{s:?} {v:?}"))
                .collect();
            failures.push(Failure::new(
                what,
                format!("{e}\n  inputs: {}", shapes.join(", ")),
            ));
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures)
    }
}
