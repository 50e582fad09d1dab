//! Reductions over random axis sets (empty = all, negative axes too), with and without
//! `keepdim`, on inputs in every layout.

use crate::support::*;
use proptest::prelude::*;

/// A random shape, an input of it in a random layout with values from `domain`, a random axis
/// set and `keepdim`.
fn reduction(domain: Domain) -> impl Strategy<Value = (Input, Vec<isize>, bool)> {
    shape().prop_flat_map(move |s| {
        (
            input(s.clone(), domain.clone()),
            axes(s.len()),
            any::<bool>(),
        )
    })
}

/// How many elements each output of a reduction over `axes` (empty = all) combines.
fn reduced_count(shape: &[usize], axes: &[isize]) -> usize {
    let r = shape.len() as isize;
    if axes.is_empty() {
        return shape.iter().product();
    }
    axes.iter()
        .map(|&a| shape[a.rem_euclid(r) as usize])
        .product()
}

proptest! {
    #![proptest_config(config(48))]

    #[test]
    fn sum((x, axes, keep) in reduction(Domain::Any)) {
        check("sum", |v| v[0].sum(&axes, keep), &[x]);
    }

    #[test]
    fn mean((x, axes, keep) in reduction(Domain::Any)) {
        check("mean", |v| v[0].mean(&axes, keep), &[x]);
    }

    /// Distinct values: no ties within a window (an expanded input's copies of one element
    /// do tie, and must share its gradient so that the copies add back up to one).
    #[test]
    fn max((x, axes, keep) in reduction(Domain::Distinct)) {
        check("max", |v| v[0].max(&axes, keep), &[x]);
    }

    #[test]
    fn min((x, axes, keep) in reduction(Domain::Distinct)) {
        check("min", |v| v[0].min(&axes, keep), &[x]);
    }

    #[test]
    fn var_biased((x, axes, keep) in reduction(Domain::Any)) {
        check("var(correction 0)", |v| v[0].var(&axes, 0, keep), &[x]);
    }

    #[test]
    fn var_unbiased((x, axes, keep) in reduction(Domain::Any)) {
        prop_assume!(reduced_count(&x.shape, &axes) > 1, "var of one element with correction 1");
        check("var(correction 1)", |v| v[0].var(&axes, 1, keep), &[x]);
    }

    /// A reduction feeding another op: the keepdim gradient must broadcast correctly.
    #[test]
    fn normalize_by_sum((x, axes, _keep) in reduction(Domain::Range(0.5, 2.0))) {
        check("x / sum(x)", |v| v[0].div(&v[0].sum(&axes, true)?), &[x]);
    }

    #[test]
    fn sum_all(x in shape().prop_flat_map(|s| input(s, Domain::Any))) {
        check("sum_all", |v| v[0].square()?.sum_all(), &[x]);
    }
}
