//! The proptest config and strategies: shapes, broadcast shapes, axes, layouts, inputs.

use super::inputs::{Input, Layout, ALL_LAYOUTS};
use super::values::{Domain, Gen};
use proptest::prelude::*;
use proptest::test_runner::Config;
use std::ops::RangeInclusive;

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
