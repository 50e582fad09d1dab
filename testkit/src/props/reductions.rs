//! Property checks of reductions, matmul, softmax and layer norm.

use super::{both, float_dtype, input_of, run_cases, shape, Input};
use crate::compare::Failure;
use crate::tolerance::{OpFamily, ToleranceTable};
use proptest::prelude::*;
use tessera_tensor::{Backend, Cpu, DType, Result, Tensor};

type R = std::result::Result<(), Failure>;

type ReduceFn<B> = fn(&Tensor<B>, &[isize], bool) -> Result<Tensor<B>>;

fn reduce_ops<B: Backend>() -> [(&'static str, ReduceFn<B>); 5] {
    [
        ("sum", |x, a, k| x.sum(a, k)),
        ("mean", |x, a, k| x.mean(a, k)),
        ("max", |x, a, k| x.max(a, k)),
        ("min", |x, a, k| x.min(a, k)),
        ("var", |x, a, k| x.var(a, 1, k)),
    ]
}

/// A shape and a non-empty sorted set of its axes.
fn shape_and_axes() -> impl Strategy<Value = (Vec<usize>, Vec<isize>)> {
    shape().prop_flat_map(|s| {
        let r = s.len();
        (
            Just(s),
            prop::sample::subsequence((0..r as isize).collect::<Vec<_>>(), 1..=r),
        )
    })
}

/// Sum, mean, max, min and variance over random axis sets, with and without `keepdim`, on
/// random views and float dtypes; and `argmax` (exact indices) in f32/f64.
pub fn check_reduction_props<B: Backend>(dev: &B, tol: &ToleranceTable, cases: u32) -> R {
    let strategy = (shape_and_axes(), float_dtype(), 0usize..6, any::<bool>()).prop_flat_map(
        |((s, axes), d, op, keep)| (input_of(s, d), Just(axes), Just(op), Just(keep)),
    );
    run_cases("props/reduce", cases, strategy, |(x, axes, op, keep)| {
        if op == 5 {
            // argmax along the first chosen axis; ties are unlikely in f32/f64 only.
            let x = Input {
                dtype: if x.dtype == DType::F64 {
                    DType::F64
                } else {
                    DType::F32
                },
                ..x
            };
            let a = axes[0];
            return both(
                "props/reduce/argmax",
                dev,
                &[&x],
                |t| t[0].argmax(a, keep),
                |t| t[0].argmax(a, keep),
                tol,
                OpFamily::Reduction,
            );
        }
        let (name, fc) = reduce_ops::<Cpu>()[op];
        let fd = reduce_ops::<B>()[op].1;
        both(
            &format!("props/reduce/{name} over {axes:?}"),
            dev,
            &[&x],
            |t| fc(&t[0], &axes, keep),
            |t| fd(&t[0], &axes, keep),
            tol,
            OpFamily::Reduction,
        )
    })
}

/// Batched matmuls `[batch.., m, k] @ [batch.., k, n]` (batch rank 0 to 2, dims 1 to 6) on
/// random views and float dtypes.
pub fn check_matmul_props<B: Backend>(dev: &B, tol: &ToleranceTable, cases: u32) -> R {
    let dims = (
        prop::collection::vec(1usize..=3, 0..=2),
        1usize..=6,
        1usize..=6,
        1usize..=6,
    );
    let strategy = (dims, float_dtype()).prop_flat_map(|((batch, m, k, n), d)| {
        let a: Vec<usize> = batch.iter().copied().chain([m, k]).collect();
        let b: Vec<usize> = batch.iter().copied().chain([k, n]).collect();
        (input_of(a, d), input_of(b, d))
    });
    run_cases("props/matmul", cases, strategy, |(a, b)| {
        both(
            "props/matmul",
            dev,
            &[&a, &b],
            |t| t[0].matmul(&t[1]),
            |t| t[0].matmul(&t[1]),
            tol,
            OpFamily::MatmulConv,
        )
    })
}

/// Softmax and log-softmax along a random axis, and layer norm over the last axis (with and
/// without affine parameters), on random views and float dtypes.
pub fn check_softmax_norm_props<B: Backend>(dev: &B, tol: &ToleranceTable, cases: u32) -> R {
    let strategy =
        (shape(), float_dtype(), 0usize..3, any::<u64>()).prop_flat_map(|(s, d, op, seed)| {
            let r = s.len() as isize;
            let last = *s.last().unwrap();
            (
                input_of(s, d),
                Just(op),
                -r..r,
                input_of(vec![last], d),
                Just(seed),
            )
        });
    run_cases(
        "props/softmax_norm",
        cases,
        strategy,
        |(x, op, axis, w, seed)| {
            let what = ["softmax", "log_softmax", "layer_norm"][op];
            let what = format!("props/{what} along {axis}");
            let n = *x.shape.last().unwrap();
            let affine = seed % 2 == 0;
            match op {
                0 => both(
                    &what,
                    dev,
                    &[&x],
                    |t| t[0].softmax(axis),
                    |t| t[0].softmax(axis),
                    tol,
                    OpFamily::SoftmaxNorm,
                ),
                1 => both(
                    &what,
                    dev,
                    &[&x],
                    |t| t[0].log_softmax(axis),
                    |t| t[0].log_softmax(axis),
                    tol,
                    OpFamily::SoftmaxNorm,
                ),
                _ => both(
                    &what,
                    dev,
                    &[&x, &w],
                    |t| {
                        t[0].layer_norm(
                            &[n],
                            affine.then_some(&t[1]),
                            affine.then_some(&t[1]),
                            1e-5,
                        )
                    },
                    |t| {
                        t[0].layer_norm(
                            &[n],
                            affine.then_some(&t[1]),
                            affine.then_some(&t[1]),
                            1e-5,
                        )
                    },
                    tol,
                    OpFamily::SoftmaxNorm,
                ),
            }
        },
    )
}
