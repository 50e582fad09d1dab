//! Property tests: random shapes, dtypes, broadcasting and views (transposed, strided with an
//! offset, narrowed with an offset), each run on the backend and on the [`Cpu`] and compared
//! within the [`ToleranceTable`].
//!
//! Every check draws `cases` random cases from a fixed seed (so a failure reproduces), and on
//! failure shrinks to a minimal case, which the [`Failure`] names. The same values are
//! uploaded to both backends, cast to the case's dtype and viewed the same way on both.

use crate::compare::{compare_tensors, Failure};
use crate::tolerance::{OpFamily, ToleranceTable, FLOAT_DTYPES};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};
use tessera_tensor::{Backend, Cpu, DType, Result, Tensor};

/// How an input is laid out in its storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    /// Row-major, offset 0.
    Contiguous,
    /// The last two axes swapped (a transposed view of a contiguous buffer).
    Transposed,
    /// Every second row of a larger buffer, starting at row 1 (stride 2, offset > 0).
    Sliced,
    /// A narrow of the last axis starting at 2 (offset 2, rows not adjacent).
    Narrowed,
}

/// One random input: its shape, dtype, view and the seed of its values.
#[derive(Clone, Debug)]
pub struct Input {
    /// The shape the op sees.
    pub shape: Vec<usize>,
    /// Its dtype.
    pub dtype: DType,
    /// How it sits in its storage.
    pub view: View,
    /// Seed of its values (uniform in [-2, 2)).
    pub seed: u64,
}

fn values(n: usize, seed: u64) -> Vec<f64> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 53) as f64 * 4.0 - 2.0
        })
        .collect()
}

impl Input {
    /// Builds this input on `dev`: the same values and view on every backend.
    pub fn build<B: Backend>(&self, dev: &B) -> Result<Tensor<B>> {
        let r = self.shape.len();
        let mut base_shape = self.shape.clone();
        match self.view {
            View::Transposed if r >= 2 => base_shape.swap(r - 1, r - 2),
            View::Sliced if r >= 1 => base_shape[0] = 2 * base_shape[0] + 1,
            View::Narrowed if r >= 1 => base_shape[r - 1] += 3,
            _ => {}
        }
        let n = base_shape.iter().product();
        let base =
            Tensor::from_vec(values(n, self.seed), &base_shape, dev)?.to_dtype(self.dtype)?;
        match self.view {
            View::Transposed if r >= 2 => base.transpose(-1, -2),
            View::Sliced if r >= 1 => base.slice(0, 1, base_shape[0], 2),
            View::Narrowed if r >= 1 => base.narrow(-1, 2, self.shape[r - 1]),
            _ => Ok(base),
        }
    }
}

/// Random shapes of rank `1..=4` with dims `1..=5`.
pub fn shape() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..=5, 1..=4)
}

/// Any view.
pub fn view() -> impl Strategy<Value = View> {
    prop_oneof![
        Just(View::Contiguous),
        Just(View::Transposed),
        Just(View::Sliced),
        Just(View::Narrowed)
    ]
}

/// Any float dtype.
pub fn float_dtype() -> impl Strategy<Value = DType> {
    prop::sample::select(FLOAT_DTYPES.to_vec())
}

/// An input of `shape` with a random view, `dtype` and seed.
pub fn input_of(shape: Vec<usize>, dtype: DType) -> impl Strategy<Value = Input> {
    (view(), any::<u64>()).prop_map(move |(view, seed)| Input {
        shape: shape.clone(),
        dtype,
        view,
        seed,
    })
}

/// Two shapes that broadcast together: `b`'s dims are `a`'s or 1, and it may drop leading
/// dims.
pub fn broadcast_pair() -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> {
    shape().prop_flat_map(|a| {
        let r = a.len();
        (
            Just(a.clone()),
            prop::collection::vec(any::<bool>(), r),
            0..r,
        )
            .prop_map(|(a, ones, drop)| {
                let b: Vec<usize> = a
                    .iter()
                    .zip(&ones)
                    .map(|(&d, &one)| if one { 1 } else { d })
                    .skip(drop)
                    .collect();
                (a, b)
            })
    })
}

/// Runs `f` on `cases` random values of `strategy` from a fixed seed; a failing case is
/// shrunk and reported as a [`Failure`] of `check`.
pub fn run_cases<S: Strategy>(
    check: &str,
    cases: u32,
    strategy: S,
    f: impl Fn(S::Value) -> std::result::Result<(), Failure>,
) -> std::result::Result<(), Failure> {
    let config = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 1024,
        ..Config::default()
    };
    let rng = TestRng::deterministic_rng(RngAlgorithm::ChaCha);
    let mut runner = TestRunner::new_with_rng(config, rng);
    let fail = |e: Failure| TestCaseError::fail(format!("case `{}`: {}", e.check, e.detail));
    match runner.run(&strategy, |v| f(v).map_err(fail)) {
        Ok(()) => Ok(()),
        Err(TestError::Fail(reason, value)) => Err(Failure::new(
            check,
            format!("{reason}\n  minimal failing case: {value:?}"),
        )),
        Err(TestError::Abort(reason)) => Err(Failure::new(check, format!("aborted: {reason}"))),
    }
}

pub(crate) type Op<B> = fn(&Tensor<B>) -> Result<Tensor<B>>;

/// Runs the same op on both backends' copies of `inputs` and compares.
pub(crate) fn both<B: Backend, F, G>(
    what: &str,
    dev: &B,
    inputs: &[&Input],
    on_cpu: F,
    on_dev: G,
    tol: &ToleranceTable,
    family: OpFamily,
) -> std::result::Result<(), Failure>
where
    F: Fn(&[Tensor<Cpu>]) -> Result<Tensor<Cpu>>,
    G: Fn(&[Tensor<B>]) -> Result<Tensor<B>>,
{
    let err = |e| Failure::error(what, e);
    let c: Vec<Tensor<Cpu>> = inputs
        .iter()
        .map(|i| i.build(&Cpu))
        .collect::<Result<_>>()
        .map_err(err)?;
    let d: Vec<Tensor<B>> = inputs
        .iter()
        .map(|i| i.build(dev))
        .collect::<Result<_>>()
        .map_err(err)?;
    let want = on_cpu(&c).map_err(|e| Failure::error(format!("{what} on cpu"), e))?;
    let got = on_dev(&d).map_err(|e| Failure::error(format!("{what} on {}", dev.name()), e))?;
    compare_tensors(what, &want, &got, tol.get(want.dtype(), family))
}

fn unary_ops<B: Backend>() -> [(&'static str, Op<B>); 13] {
    fn pos<B: Backend>(x: &Tensor<B>) -> Result<Tensor<B>> {
        x.abs()?.add_scalar(0.5)
    }
    [
        ("neg", |x| x.neg()),
        ("abs", |x| x.abs()),
        ("exp", |x| x.exp()),
        ("tanh", |x| x.tanh()),
        ("sigmoid", |x| x.sigmoid()),
        ("gelu", |x| x.gelu()),
        ("gelu_tanh", |x| x.gelu_tanh()),
        ("erf", |x| x.erf()),
        ("relu", |x| x.relu()),
        ("square", |x| x.square()),
        ("log", |x| pos(x)?.log()),
        ("sqrt", |x| pos(x)?.sqrt()),
        ("recip", |x| pos(x)?.recip()),
    ]
}

/// Unary ops on random shapes, views and float dtypes.
pub fn check_unary_props<B: Backend>(
    dev: &B,
    tol: &ToleranceTable,
    cases: u32,
) -> std::result::Result<(), Failure> {
    let strategy =
        (shape(), float_dtype(), 0usize..13).prop_flat_map(|(s, d, op)| (input_of(s, d), Just(op)));
    run_cases("props/unary", cases, strategy, |(x, op)| {
        let (name, fc) = unary_ops::<Cpu>()[op];
        let fd = unary_ops::<B>()[op].1;
        both(
            &format!("props/unary/{name}"),
            dev,
            &[&x],
            |t| fc(&t[0]),
            |t| fd(&t[0]),
            tol,
            OpFamily::Elementwise,
        )
    })
}

type BinOp<B> = fn(&Tensor<B>, &Tensor<B>) -> Result<Tensor<B>>;

fn binary_ops<B: Backend>() -> [(&'static str, BinOp<B>); 6] {
    [
        ("add", |a, b| a.add(b)),
        ("sub", |a, b| a.sub(b)),
        ("mul", |a, b| a.mul(b)),
        ("div", |a, b| a.div(&b.abs()?.add_scalar(0.5)?)),
        ("maximum", |a, b| a.maximum(b)),
        ("minimum", |a, b| a.minimum(b)),
    ]
}

/// Binary ops with broadcasting (either operand may be the smaller one) on random views.
pub fn check_broadcast_props<B: Backend>(
    dev: &B,
    tol: &ToleranceTable,
    cases: u32,
) -> std::result::Result<(), Failure> {
    let strategy = (broadcast_pair(), float_dtype(), 0usize..6, any::<bool>()).prop_flat_map(
        |((a, b), d, op, swap)| {
            let (a, b) = if swap { (b, a) } else { (a, b) };
            (input_of(a, d), input_of(b, d), Just(op))
        },
    );
    run_cases("props/binary", cases, strategy, |(a, b, op)| {
        let (name, fc) = binary_ops::<Cpu>()[op];
        let fd = binary_ops::<B>()[op].1;
        both(
            &format!("props/binary/{name}"),
            dev,
            &[&a, &b],
            |t| fc(&t[0], &t[1]),
            |t| fd(&t[0], &t[1]),
            tol,
            OpFamily::Elementwise,
        )
    })
}

mod images;
mod reductions;
pub use images::*;
pub use reductions::*;

/// Every property check with `cases` cases each; all failures.
pub fn check_props<B: Backend>(
    dev: &B,
    tol: &ToleranceTable,
    cases: u32,
) -> std::result::Result<(), Vec<Failure>> {
    let failures: Vec<Failure> = [
        check_unary_props(dev, tol, cases),
        check_broadcast_props(dev, tol, cases),
        check_reduction_props(dev, tol, cases),
        check_matmul_props(dev, tol, cases),
        check_softmax_norm_props(dev, tol, cases),
        check_conv_props(dev, tol, cases),
        check_pool_props(dev, tol, cases),
        check_indexing_props(dev, tol, cases),
    ]
    .into_iter()
    .filter_map(|r| r.err())
    .collect();
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures)
    }
}
