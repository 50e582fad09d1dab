//! Property checks of convolution, pooling and indexing on random geometry and views.

use super::{both, float_dtype, input_of, run_cases, Input};
use crate::compare::Failure;
use crate::tolerance::{OpFamily, ToleranceTable};
use proptest::prelude::*;
use tessera_tensor::{Backend, ConvOptions, DType, Pool2dOptions, Tensor};

type R = std::result::Result<(), Failure>;

/// Random 2-d geometry: batch, channels, height, width, kernel, stride, padding (padding at
/// most half the kernel, kernel at most the padded input).
fn geometry() -> impl Strategy<Value = [usize; 7]> {
    (
        1usize..=2,
        1usize..=3,
        3usize..=7,
        3usize..=7,
        1usize..=3,
        1usize..=2,
        0usize..=1,
    )
        .prop_map(|(n, c, h, w, k, s, p)| [n, c, h, w, k, s, p.min(k / 2)])
}

/// `conv2d` (with and without bias, 1 to 3 output channels, groups 1) with random geometry,
/// float dtypes and views of the input and the weight.
pub fn check_conv_props<B: Backend>(dev: &B, tol: &ToleranceTable, cases: u32) -> R {
    let strategy = (geometry(), 1usize..=3, float_dtype(), any::<bool>()).prop_flat_map(
        |([n, c, h, w, k, s, p], cout, d, bias)| {
            (
                input_of(vec![n, c, h, w], d),
                input_of(vec![cout, c, k, k], d),
                input_of(vec![cout], d),
                Just((s, p, bias)),
            )
        },
    );
    run_cases(
        "props/conv2d",
        cases,
        strategy,
        |(x, wt, b, (s, p, bias))| {
            let o = ConvOptions::new(s, p);
            both(
                &format!("props/conv2d stride {s} padding {p} bias {bias}"),
                dev,
                &[&x, &wt, &b],
                |t| t[0].conv2d(&t[1], bias.then_some(&t[2]), &o),
                |t| t[0].conv2d(&t[1], bias.then_some(&t[2]), &o),
                tol,
                OpFamily::MatmulConv,
            )
        },
    )
}

/// Max pooling (values, and the I64 indices exactly, in f32/f64 where ties are unlikely) and
/// average pooling with random geometry, dtypes and views.
pub fn check_pool_props<B: Backend>(dev: &B, tol: &ToleranceTable, cases: u32) -> R {
    let strategy =
        (geometry(), float_dtype(), 0usize..3).prop_flat_map(|([n, c, h, w, k, s, p], d, op)| {
            (input_of(vec![n, c, h, w], d), Just((k.max(2), s, p, op)))
        });
    run_cases("props/pool", cases, strategy, |(x, (k, s, p, op))| {
        let o = Pool2dOptions::new(k, s, p.min(k / 2));
        let what = format!(
            "props/pool/{} k {k} s {s} p {p}",
            ["max", "max indices", "avg"][op]
        );
        let x = if op == 1 && matches!(x.dtype, DType::F16 | DType::BF16) {
            Input {
                dtype: DType::F32,
                ..x
            }
        } else {
            x
        };
        let fam = OpFamily::Reduction;
        match op {
            0 => both(
                &what,
                dev,
                &[&x],
                |t| Ok(t[0].max_pool2d(&o)?.0),
                |t| Ok(t[0].max_pool2d(&o)?.0),
                tol,
                fam,
            ),
            1 => both(
                &what,
                dev,
                &[&x],
                |t| Ok(t[0].max_pool2d(&o)?.1),
                |t| Ok(t[0].max_pool2d(&o)?.1),
                tol,
                fam,
            ),
            _ => both(
                &what,
                dev,
                &[&x],
                |t| t[0].avg_pool2d(&o),
                |t| t[0].avg_pool2d(&o),
                tol,
                fam,
            ),
        }
    })
}

/// `index_select` and `gather` along a random axis with random (repeating) indices, on random
/// views and dtypes.
pub fn check_indexing_props<B: Backend>(dev: &B, tol: &ToleranceTable, cases: u32) -> R {
    let strategy = (super::shape(), float_dtype(), any::<bool>(), any::<u64>()).prop_flat_map(
        |(s, d, gather, seed)| {
            let r = s.len();
            (input_of(s, d), 0..r, Just(gather), Just(seed))
        },
    );
    run_cases(
        "props/indexing",
        cases,
        strategy,
        |(x, axis, gather, seed)| {
            let len = x.shape[axis];
            let idx = |n: usize| -> Vec<i64> {
                (0..n)
                    .map(|i| (((seed >> (i % 32)) as usize).wrapping_add(3 * i) % len) as i64)
                    .collect()
            };
            let a = axis as isize;
            if gather {
                let mut ishape = x.shape.clone();
                ishape[axis] = 1 + (seed % 4) as usize;
                let v = idx(ishape.iter().product());
                both(
                    &format!("props/gather along {axis}"),
                    dev,
                    &[&x],
                    |t| t[0].gather(a, &Tensor::from_vec(v.clone(), &ishape, t[0].backend())?),
                    |t| t[0].gather(a, &Tensor::from_vec(v.clone(), &ishape, t[0].backend())?),
                    tol,
                    OpFamily::Elementwise,
                )
            } else {
                let v = idx(1 + (seed % 5) as usize);
                let n = v.len();
                both(
                    &format!("props/index_select along {axis}"),
                    dev,
                    &[&x],
                    |t| t[0].index_select(a, &Tensor::from_vec(v.clone(), &[n], t[0].backend())?),
                    |t| t[0].index_select(a, &Tensor::from_vec(v.clone(), &[n], t[0].backend())?),
                    tol,
                    OpFamily::Elementwise,
                )
            }
        },
    )
}
