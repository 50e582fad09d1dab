//! The shared machinery of the gradient suite.
//!
//! - [`Domain`]: where input values are drawn from (kinks, poles and ties kept away).
//! - [`Layout`] and [`Input`]: an input tensor built contiguous, transposed, strided (a step-2
//!   slice behind an offset, with NaN in the gaps) or expanded (a smaller leaf that the
//!   function under test sees through `broadcast_to`, so that the broadcast's backward and the
//!   op's handling of stride-0 operands are checked together).
//! - proptest strategies: [`shape`], [`shape_in`], [`broadcast_shapes`], [`axes`],
//!   [`input`], [`input_in`], [`config`].
//! - [`check`], [`check_fast`], [`check_with`]: run `gradcheck` in f64 and turn a
//!   `GradcheckFailure` into a panic that names the check, the failure and every input.
#![allow(dead_code)]

use proptest::prelude::*;
use proptest::test_runner::Config;
use std::fmt;
use std::ops::RangeInclusive;
use tessera::autograd::{gradcheck, GradcheckOptions, Var};
use tessera::tensor::{Cpu, Result, Tensor};

pub type T = Tensor<Cpu>;
pub type V = Var<Cpu>;

// ---------------------------------------------------------------------------------- config

/// A proptest config with `cases` cases (the `PROPTEST_CASES` environment variable, when
/// set, overrides it for every test), bounded shrinking and no regression files.
pub fn config(cases: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(cases);
    Config {
        cases,
        max_shrink_iters: 64,
        failure_persistence: None,
        ..Config::default()
    }
}

// ---------------------------------------------------------------------------------- values

/// A small seeded generator (splitmix64): inputs are a pure function of their seed, so a
/// failing case printed by proptest can be rebuilt exactly.
#[derive(Clone, Debug)]
pub struct Gen(u64);

impl Gen {
    pub fn new(seed: u64) -> Gen {
        Gen(seed ^ 0x5851_f42d_4c95_7f2d)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `[lo, hi)`.
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64)
    }
    /// Uniform in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    pub fn coin(&mut self) -> bool {
        self.next_u64() & 1 == 1
    }
    /// A random permutation of `0..n`.
    pub fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut p: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            p.swap(i, self.below(i + 1));
        }
        p
    }
}

/// Where input values come from. Finite differences use a step of 1e-6, so every domain
/// keeps at least 1e-2 between a value and the nearest kink, pole or tie.
#[derive(Clone, Debug, PartialEq)]
pub enum Domain {
    /// Uniform in `[-2, 2)`.
    Any,
    /// Uniform in `[lo, hi)`.
    Range(f64, f64),
    /// `|x|` uniform in `[0.05, 2)` with a random sign (abs, relu, recip...).
    AwayFromZero,
    /// Uniform in `[-2, 2)` but at least 0.05 from each of the given points (clamp bounds).
    Avoid(Vec<f64>),
    /// Pairwise distinct values evenly spread over about `[-2, 2]` in random order (max/min
    /// reductions, max pooling): no ties within one tensor.
    Distinct,
    /// `offset + 0.1 k` for random integers `k` in `[-20, 20]`: two tensors whose offsets
    /// differ by 0.05 never tie (maximum/minimum).
    Lattice(f64),
}

impl Domain {
    /// `n` values.
    pub fn sample(&self, n: usize, g: &mut Gen) -> Vec<f64> {
        match self {
            Domain::Any => (0..n).map(|_| g.uniform(-2.0, 2.0)).collect(),
            Domain::Range(lo, hi) => (0..n).map(|_| g.uniform(*lo, *hi)).collect(),
            Domain::AwayFromZero => (0..n)
                .map(|_| {
                    let m = g.uniform(0.05, 2.0);
                    if g.coin() {
                        m
                    } else {
                        -m
                    }
                })
                .collect(),
            Domain::Avoid(points) => (0..n)
                .map(|_| loop {
                    let x = g.uniform(-2.0, 2.0);
                    if points.iter().all(|p| (x - p).abs() >= 0.05) {
                        break x;
                    }
                })
                .collect(),
            Domain::Distinct => {
                let step = (4.0 / n as f64).min(0.25);
                let shift = g.uniform(-0.5, 0.5) * step;
                g.permutation(n)
                    .into_iter()
                    .map(|k| (k as f64 - n as f64 / 2.0) * step + shift)
                    .collect()
            }
            Domain::Lattice(offset) => (0..n)
                .map(|_| offset + 0.1 * (g.below(41) as f64 - 20.0))
                .collect(),
        }
    }
}

/// A contiguous F64 tensor.
pub fn tensor(values: Vec<f64>, shape: &[usize]) -> T {
    T::from_vec(values, shape, &Cpu).expect("tensor")
}

/// A contiguous F64 tensor of `shape` with values from `domain`.
pub fn random(shape: &[usize], domain: &Domain, seed: u64) -> T {
    let n = shape.iter().product();
    tensor(domain.sample(n, &mut Gen::new(seed)), shape)
}

/// An I64 tensor.
pub fn indices(values: Vec<i64>, shape: &[usize]) -> T {
    T::from_vec(values, shape, &Cpu).expect("index tensor")
}

// ---------------------------------------------------------------------------------- inputs

/// How an input is laid out in memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Row-major.
    Contiguous,
    /// Stored with its dims reversed and permuted back (for rank 2, `.t()` of a contiguous
    /// buffer); rank <= 1 falls back to `Strided`.
    Transposed,
    /// Every other element of the last dim, behind an offset along the first dim, with NaN in
    /// every element of the buffer the view skips.
    Strided,
    /// A smaller contiguous leaf (some dims 1, maybe fewer dims) that the function under
    /// test sees through `broadcast_to`: checks the op on stride-0 operands and the
    /// broadcast's gradient reduction.
    Expanded,
}

pub const ALL_LAYOUTS: [Layout; 4] = [
    Layout::Contiguous,
    Layout::Transposed,
    Layout::Strided,
    Layout::Expanded,
];

/// Layouts that keep the input's own elements independent (no `Expanded`), for arguments
/// whose values must stay distinct or whose shape the op constrains exactly.
pub const DENSE_LAYOUTS: [Layout; 3] = [Layout::Contiguous, Layout::Transposed, Layout::Strided];

/// One argument of a function under test.
#[derive(Clone)]
pub struct Input {
    /// What `gradcheck` perturbs and differentiates (never a broadcast view).
    pub leaf: T,
    /// The shape the function sees (the leaf's, except for `Expanded`).
    pub shape: Vec<usize>,
    pub layout: Layout,
}

impl From<T> for Input {
    /// A tensor used as it is.
    fn from(t: T) -> Input {
        let layout = if t.is_contiguous() {
            Layout::Contiguous
        } else {
            Layout::Strided
        };
        Input {
            shape: t.shape().to_vec(),
            leaf: t,
            layout,
        }
    }
}

impl Input {
    /// A contiguous input with values from `domain`.
    pub fn new(shape: &[usize], domain: Domain, seed: u64) -> Input {
        Input::build(shape, Layout::Contiguous, &domain, seed)
    }

    /// An input of `shape` (as the function sees it) in `layout`, values from `domain`.
    pub fn build(shape: &[usize], layout: Layout, domain: &Domain, seed: u64) -> Input {
        let mut g = Gen::new(seed);
        let rank = shape.len();
        let layout = match layout {
            _ if rank == 0 => Layout::Contiguous,
            Layout::Transposed if rank == 1 => Layout::Strided,
            l => l,
        };
        let leaf = match layout {
            Layout::Contiguous => tensor(domain.sample(numel(shape), &mut g), shape),
            Layout::Transposed => transposed(&domain.sample(numel(shape), &mut g), shape),
            Layout::Strided => strided(&domain.sample(numel(shape), &mut g), shape),
            Layout::Expanded => {
                let small = shrink_for_broadcast(shape, &mut g);
                tensor(domain.sample(numel(&small), &mut g), &small)
            }
        };
        Input {
            leaf,
            shape: shape.to_vec(),
            layout,
        }
    }

    /// The value the function under test receives for this input's leaf.
    pub fn view(&self, leaf: &V) -> Result<V> {
        match self.layout {
            Layout::Expanded => leaf.broadcast_to(&self.shape),
            _ => Ok(leaf.clone()),
        }
    }
}

impl fmt::Debug for Input {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let l = self.leaf.layout();
        write!(f, "{:?} {:?}", self.shape, self.layout)?;
        if self.layout == Layout::Expanded {
            write!(f, " from leaf {:?}", self.leaf.shape())?;
        }
        write!(f, " (strides {:?}, offset {}) ", l.strides(), l.offset())?;
        match self.leaf.to_f64_vec() {
            Ok(v) if v.len() <= 24 => write!(f, "{v:?}"),
            Ok(v) => write!(f, "{:?} .. ({} values)", &v[..24], v.len()),
            Err(e) => write!(f, "<{e}>"),
        }
    }
}

fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// Row-major multi-index of a flat position.
pub fn unravel(mut flat: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for d in (0..shape.len()).rev() {
        if shape[d] > 0 {
            idx[d] = flat % shape[d];
            flat /= shape[d];
        }
    }
    idx
}

fn ravel(idx: &[usize], shape: &[usize]) -> usize {
    idx.iter().zip(shape).fold(0, |acc, (&i, &d)| acc * d + i)
}

/// `values` (row-major for `shape`) stored with the dims reversed, viewed back with
/// `permute`: every stride is "wrong way round".
pub fn transposed(values: &[f64], shape: &[usize]) -> T {
    let rank = shape.len();
    let rev: Vec<usize> = shape.iter().rev().copied().collect();
    let mut buf = vec![0.0; values.len()];
    for (flat, &v) in values.iter().enumerate() {
        let mut idx = unravel(flat, shape);
        idx.reverse();
        buf[ravel(&idx, &rev)] = v;
    }
    let perm: Vec<usize> = (0..rank).rev().collect();
    let t = tensor(buf, &rev).permute(&perm).expect("permute");
    debug_assert_eq!(t.to_f64_vec().unwrap(), values);
    t
}

/// `values` at the odd positions of a last dim of `2n + 1`, behind one slab of NaN along the
/// first dim (rank >= 2): a non-zero offset and a step-2 stride, with NaN wherever a kernel
/// that ignores the layout would read.
pub fn strided(values: &[f64], shape: &[usize]) -> T {
    let rank = shape.len();
    let mut big = shape.to_vec();
    big[rank - 1] = 2 * shape[rank - 1] + 1;
    let lead = usize::from(rank >= 2);
    big[0] += lead;
    let mut buf = vec![f64::NAN; numel(&big)];
    for (flat, &v) in values.iter().enumerate() {
        let mut idx = unravel(flat, shape);
        idx[rank - 1] = 2 * idx[rank - 1] + 1;
        idx[0] += lead;
        buf[ravel(&idx, &big)] = v;
    }
    let mut t = tensor(buf, &big)
        .slice(-1, 1, big[rank - 1], 2)
        .expect("slice");
    if lead == 1 {
        t = t.narrow(0, 1, shape[0]).expect("narrow");
    }
    debug_assert_eq!(t.shape(), shape);
    t
}

/// A shape that broadcasts to `shape`: some leading dims dropped and some dims set to 1, and
/// different from `shape` whenever that is possible.
fn shrink_for_broadcast(shape: &[usize], g: &mut Gen) -> Vec<usize> {
    let drop = g.below(shape.len() + 1).min(shape.len().saturating_sub(1));
    let drop = if g.coin() { drop } else { 0 };
    let mut small: Vec<usize> = shape[drop..]
        .iter()
        .map(|&d| if g.coin() { 1 } else { d })
        .collect();
    let stretched = drop > 0 && shape[..drop].iter().any(|&d| d > 1);
    if !stretched && small.as_slice() == &shape[drop..] {
        if let Some(i) = small.iter().position(|&d| d > 1) {
            small[i] = 1;
        }
    }
    small
}

// ---------------------------------------------------------------------------------- strategies

/// A shape of rank 1..=4 with dims 1..=4.
pub fn shape() -> BoxedStrategy<Vec<usize>> {
    shape_in(1..=4, 1..=4)
}

/// A shape with a rank and dims in the given ranges.
pub fn shape_in(
    ranks: RangeInclusive<usize>,
    dims: RangeInclusive<usize>,
) -> BoxedStrategy<Vec<usize>> {
    ranks
        .prop_flat_map(move |r| prop::collection::vec(dims.clone(), r))
        .boxed()
}

/// Two shapes that broadcast together (numpy rules: right-aligned, equal or 1), ranks
/// 0..=4, dims 1..=4.
pub fn broadcast_shapes() -> BoxedStrategy<(Vec<usize>, Vec<usize>)> {
    broadcast_shapes_n(2)
        .prop_map(|mut v| {
            let b = v.pop().unwrap();
            (v.pop().unwrap(), b)
        })
        .boxed()
}

/// `n` shapes that broadcast together: each is a random output shape (rank 1..=4, dims
/// 1..=4) with, at random, some leading dims dropped and some dims set to 1.
pub fn broadcast_shapes_n(n: usize) -> BoxedStrategy<Vec<Vec<usize>>> {
    broadcast_shapes_from(shape(), n)
}

/// `n` shapes that broadcast to a shape drawn from `out`.
pub fn broadcast_shapes_from(
    out: BoxedStrategy<Vec<usize>>,
    n: usize,
) -> BoxedStrategy<Vec<Vec<usize>>> {
    (out, any::<u64>())
        .prop_map(move |(out, seed)| {
            let mut g = Gen::new(seed);
            (0..n)
                .map(|_| {
                    let drop = if g.below(3) == 0 {
                        g.below(out.len() + 1)
                    } else {
                        0
                    };
                    out[drop..]
                        .iter()
                        .map(|&d| if g.below(3) == 0 { 1 } else { d })
                        .collect()
                })
                .collect()
        })
        .boxed()
}

/// Reduction axes for a tensor of rank `rank`: a random subset (empty = all, as the ops
/// read it), each axis written as `a` or `a - rank` at random.
pub fn axes(rank: usize) -> BoxedStrategy<Vec<isize>> {
    (prop::collection::vec(any::<bool>(), rank), any::<u64>())
        .prop_map(move |(mask, seed)| {
            let mut g = Gen::new(seed);
            (0..rank)
                .filter(|&a| mask[a])
                .map(|a| {
                    if g.coin() {
                        a as isize
                    } else {
                        a as isize - rank as isize
                    }
                })
                .collect()
        })
        .boxed()
}

/// An axis of a rank-`rank` tensor, as `a` or `a - rank`.
pub fn axis(rank: usize) -> BoxedStrategy<isize> {
    (0..rank, any::<bool>())
        .prop_map(move |(a, neg)| {
            if neg {
                a as isize - rank as isize
            } else {
                a as isize
            }
        })
        .boxed()
}

/// Any of the four layouts.
pub fn layout() -> BoxedStrategy<Layout> {
    prop::sample::select(ALL_LAYOUTS.to_vec()).boxed()
}

/// An input of `shape` in any of the four layouts, values from `domain`.
pub fn input(shape: Vec<usize>, domain: Domain) -> BoxedStrategy<Input> {
    input_in(shape, domain, &ALL_LAYOUTS)
}

/// An input of `shape` in one of `layouts`, values from `domain`.
pub fn input_in(shape: Vec<usize>, domain: Domain, layouts: &[Layout]) -> BoxedStrategy<Input> {
    (prop::sample::select(layouts.to_vec()), any::<u64>())
        .prop_map(move |(layout, seed)| Input::build(&shape, layout, &domain, seed))
        .boxed()
}

// ---------------------------------------------------------------------------------- checking

/// Checks `f`'s gradients at `inputs` against central differences (full Jacobian, f64,
/// PyTorch's default tolerances); panics with a readable report on failure.
///
/// `f` receives one `Var` per input, already broadcast for `Expanded` inputs.
pub fn check<F>(name: &str, f: F, inputs: &[Input])
where
    F: Fn(&[V]) -> Result<V>,
{
    check_with(name, f, inputs, &GradcheckOptions::default());
}

/// [`check`] in fast mode (`vᵀ J u` for random `u`, `v`), for large compositions: three
/// independent projections.
pub fn check_fast<F>(name: &str, f: F, inputs: &[Input])
where
    F: Fn(&[V]) -> Result<V>,
{
    for seed in 0..3 {
        let opts = GradcheckOptions {
            fast_mode: true,
            seed,
            ..GradcheckOptions::default()
        };
        check_with(name, &f, inputs, &opts);
    }
}

/// [`check`] with explicit options.
pub fn check_with<F>(name: &str, f: F, inputs: &[Input], opts: &GradcheckOptions)
where
    F: Fn(&[V]) -> Result<V>,
{
    let leaves: Vec<T> = inputs.iter().map(|i| i.leaf.clone()).collect();
    let wrapped = |vs: &[V]| -> Result<V> {
        let seen = vs
            .iter()
            .zip(inputs)
            .map(|(v, i)| i.view(v))
            .collect::<Result<Vec<V>>>()?;
        f(&seen)
    };
    if let Err(failure) = gradcheck(wrapped, &leaves, opts) {
        let mode = if opts.fast_mode {
            format!("fast mode, seed {}", opts.seed)
        } else {
            "full Jacobian".to_string()
        };
        let list: Vec<String> = inputs
            .iter()
            .enumerate()
            .map(|(k, i)| format!("    input {k}: {i:?}"))
            .collect();
        panic!(
            "gradient check `{name}` ({mode}) failed:\n  {failure}\n  inputs:\n{}",
            list.join("\n")
        );
    }
}

/// Asserts that two gradients agree elementwise within `tol(reference)`, naming the element.
pub fn assert_close(what: &str, got: &T, want: &T, atol: f64, rtol: f64) {
    assert_eq!(got.shape(), want.shape(), "{what}: shape");
    let (g, w) = (got.to_f64_vec().unwrap(), want.to_f64_vec().unwrap());
    for (k, (a, b)) in g.iter().zip(&w).enumerate() {
        assert!(
            (a - b).abs() <= atol + rtol * b.abs(),
            "{what}: element {:?}: got {a:e}, want {b:e}",
            unravel(k, want.shape())
        );
    }
}

// ---------------------------------------------------------------------------------- self-tests

/// The machinery itself: layouts are what they claim, and a wrong gradient is caught.
mod self_tests {
    use super::*;
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use tessera::autograd::Backward;

    #[test]
    fn layouts_hold_the_right_values() {
        let shape = [2, 3, 4];
        let vals: Vec<f64> = (0..24).map(|i| i as f64).collect();
        let t = transposed(&vals, &shape);
        assert!(!t.is_contiguous());
        assert_eq!(t.to_f64_vec().unwrap(), vals);
        let s = strided(&vals, &shape);
        assert!(!s.is_contiguous() && s.layout().offset() > 0);
        assert_eq!(s.to_f64_vec().unwrap(), vals);
        // The skipped elements of the buffer are NaN.
        let whole = s.storage().clone();
        let full = T::from_parts(whole, tessera::tensor::Layout::contiguous(&[3, 3, 9]), Cpu);
        let nan = full.unwrap().to_f64_vec().unwrap();
        assert_eq!(nan.iter().filter(|v| v.is_nan()).count(), 81 - 24);
        let e = Input::build(&shape, Layout::Expanded, &Domain::Any, 7);
        assert!(e.leaf.numel() < 24, "{e:?}");
        let v = e.view(&V::leaf(e.leaf.clone())).unwrap();
        assert_eq!(v.shape(), &shape);
        assert!(v.value().layout().has_zero_stride());
    }

    /// `y = 2x` with a backward that forgets the factor.
    struct WrongScale;
    impl Backward<Cpu> for WrongScale {
        fn name(&self) -> &'static str {
            "wrong_scale"
        }
        fn backward(&self, g: &T, _needs: &[bool]) -> Result<Vec<Option<T>>> {
            Ok(vec![Some(g.clone())])
        }
    }

    /// `broadcast_to` whose backward keeps only the first copy instead of summing them all.
    struct FirstCopyOnly(Vec<usize>);
    impl Backward<Cpu> for FirstCopyOnly {
        fn name(&self) -> &'static str {
            "first_copy_only"
        }
        fn backward(&self, g: &T, _needs: &[bool]) -> Result<Vec<Option<T>>> {
            let mut g = g.clone();
            while g.rank() > self.0.len() {
                g = g.select(0, 0)?;
            }
            for (axis, &d) in self.0.iter().enumerate() {
                if d == 1 {
                    g = g.narrow(axis as isize, 0, 1)?;
                }
            }
            Ok(vec![Some(g.contiguous()?)])
        }
    }

    fn panics(f: impl FnOnce()) -> String {
        match catch_unwind(AssertUnwindSafe(f)) {
            Ok(()) => panic!("the check passed a wrong gradient"),
            Err(p) => p
                .downcast_ref::<String>()
                .cloned()
                .unwrap_or_else(|| "<non-string panic>".into()),
        }
    }

    #[test]
    fn a_wrong_gradient_is_reported() {
        let x = Input::build(&[2, 3], Layout::Strided, &Domain::Any, 1);
        let msg = panics(|| {
            check(
                "double",
                |v| {
                    let y = v[0].value().mul_scalar(2.0)?;
                    Ok(V::from_op(y, &v[..1], Box::new(WrongScale)))
                },
                &[x],
            )
        });
        assert!(
            msg.contains("`double`") && msg.contains("Jacobian mismatch"),
            "{msg}"
        );
        assert!(msg.contains("input 0: [2, 3] Strided"), "{msg}");
    }

    #[test]
    fn a_broadcast_gradient_that_is_not_summed_is_caught() {
        let b = Input::new(&[3, 1], Domain::Any, 2);
        let a = Input::new(&[2, 3, 4], Domain::Any, 3);
        let msg = panics(|| {
            check(
                "add with a bad broadcast",
                |v| {
                    let shape = v[0].shape().to_vec();
                    let y = v[1].value().broadcast_to(&shape)?;
                    let bad = V::from_op(y, &v[1..2], Box::new(FirstCopyOnly(vec![3, 1])));
                    v[0].add(&bad)
                },
                &[a, b],
            )
        });
        assert!(msg.contains("input 1"), "{msg}");
    }
}
