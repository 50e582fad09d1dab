//! Every view op with random arguments, on inputs in every layout (so views of views, and
//! reshapes that must copy, are exercised), plus chains of views.

use crate::support::*;
use proptest::prelude::*;

/// A random shape and an input of it in a random layout.
fn any_input() -> impl Strategy<Value = Input> {
    shape().prop_flat_map(|s| input(s, Domain::Any))
}

/// A random shape of the same element count as `shape` (rank 1..=4): its dims (4s sometimes
/// split into 2 x 2) shuffled and multiplied into random bins, sometimes with one dim left
/// for `reshape` to infer (`usize::MAX`).
fn reshape_target(shape: &[usize], seed: u64) -> Vec<usize> {
    let mut g = Gen::new(seed);
    let mut factors = Vec::new();
    for &d in shape {
        if d == 4 && g.coin() {
            factors.extend([2, 2]);
        } else {
            factors.push(d);
        }
    }
    let rank = 1 + g.below(4);
    let mut target = vec![1usize; rank];
    for k in g.permutation(factors.len()) {
        target[g.below(rank)] *= factors[k];
    }
    if g.coin() {
        target[g.below(rank)] = usize::MAX;
    }
    target
}

proptest! {
    #![proptest_config(config(32))]

    #[test]
    fn reshape(x in any_input(), seed in any::<u64>()) {
        let target = reshape_target(&x.shape, seed);
        check(&format!("reshape to {target:?}"), |v| v[0].reshape(&target), &[x]);
    }

    #[test]
    fn permute(x in any_input(), seed in any::<u64>()) {
        let perm = Gen::new(seed).permutation(x.shape.len());
        check(&format!("permute {perm:?}"), |v| v[0].permute(&perm), &[x]);
    }

    #[test]
    fn transpose(x in any_input(), a in any::<u64>(), b in any::<u64>()) {
        let r = x.shape.len() as u64;
        let (a, b) = ((a % (2 * r)) as isize - r as isize, (b % r) as isize);
        check(&format!("transpose({a}, {b})"), |v| v[0].transpose(a, b), &[x]);
    }

    #[test]
    fn t(x in shape_in(2..=4, 1..=4).prop_flat_map(|s| input(s, Domain::Any))) {
        check("t", |v| v[0].t(), &[x]);
    }

    #[test]
    fn narrow(x in any_input(), seed in any::<u64>()) {
        let mut g = Gen::new(seed);
        let axis = g.below(x.shape.len());
        let d = x.shape[axis];
        let start = g.below(d);
        let len = 1 + g.below(d - start);
        let ax = if g.coin() { axis as isize } else { axis as isize - x.shape.len() as isize };
        check(&format!("narrow({ax}, {start}, {len})"), |v| v[0].narrow(ax, start, len), &[x]);
    }

    #[test]
    fn slice_with_step(x in any_input(), seed in any::<u64>()) {
        let mut g = Gen::new(seed);
        let axis = g.below(x.shape.len());
        let d = x.shape[axis];
        let start = g.below(d);
        let end = start + 1 + g.below(d - start);
        let step = 1 + g.below(3);
        check(
            &format!("slice({axis}, {start}, {end}, {step})"),
            |v| v[0].slice(axis as isize, start, end, step),
            &[x],
        );
    }

    #[test]
    fn select(x in any_input(), seed in any::<u64>()) {
        let mut g = Gen::new(seed);
        let axis = g.below(x.shape.len());
        let index = g.below(x.shape[axis]);
        let ax = if g.coin() { axis as isize } else { axis as isize - x.shape.len() as isize };
        check(&format!("select({ax}, {index})"), |v| v[0].select(ax, index), &[x]);
    }

    /// An explicit `broadcast_to` from a smaller dense input (new leading dims, 1 -> n).
    #[test]
    fn broadcast_to(
        small in shape(),
        lead in shape_in(0..=2, 1..=3),
        l in prop::sample::select(DENSE_LAYOUTS.to_vec()),
        seed in any::<u64>(),
    ) {
        let mut g = Gen::new(seed);
        let small: Vec<usize> = small.iter().map(|&d| if g.coin() { 1 } else { d }).collect();
        let stretched = small.iter().map(|&d| if d == 1 { 1 + g.below(3) } else { d });
        let target: Vec<usize> = lead.into_iter().chain(stretched).collect();
        let x = Input::build(&small, l, &Domain::Any, seed);
        check(&format!("broadcast_to {target:?}"), |v| v[0].broadcast_to(&target), &[x]);
    }

    /// `squeeze` of a size-1 dim inserted at a random position of a random shape.
    #[test]
    fn squeeze(
        s in shape_in(0..=3, 1..=4),
        pos in any::<u64>(),
        l in layout(),
        seed in any::<u64>(),
    ) {
        let at = (pos % (s.len() as u64 + 1)) as usize;
        let mut shape = s.clone();
        shape.insert(at, 1);
        let x = Input::build(&shape, l, &Domain::Any, seed);
        let ax = if pos & 64 == 0 { at as isize } else { at as isize - shape.len() as isize };
        check(&format!("squeeze({ax})"), |v| v[0].squeeze(ax), &[x]);
    }

    #[test]
    fn unsqueeze(x in any_input(), pos in any::<u64>()) {
        let r = x.shape.len() as u64 + 1;
        let ax = (pos % (2 * r)) as isize - r as isize; // -(rank+1) ..= rank
        check(&format!("unsqueeze({ax})"), |v| v[0].unsqueeze(ax), &[x]);
    }

    #[test]
    fn flatten(x in any_input(), a in any::<u64>(), b in any::<u64>()) {
        let r = x.shape.len() as u64;
        let (s, e) = ((a % r) as isize, (b % r) as isize);
        let (s, e) = (s.min(e), s.max(e));
        let e = if b & 64 == 0 { e } else { e - r as isize };
        check(&format!("flatten({s}, {e})"), |v| v[0].flatten(s, e), &[x]);
    }

    #[test]
    fn contiguous(x in any_input()) {
        check("contiguous", |v| v[0].contiguous()?.mul(&v[0]), &[x]);
    }

    /// Views of views: permute, a strided slice, a reshape that must copy, unsqueeze and an
    /// elementwise op on top, against a second use of the input.
    #[test]
    fn chain(
        x in shape_in(2..=4, 2..=4).prop_flat_map(|s| input(s, Domain::Any)),
        seed in any::<u64>(),
    ) {
        let r = x.shape.len();
        let perm = Gen::new(seed).permutation(r);
        let f = |v: &[V]| {
            let p = v[0].permute(&perm)?;
            let d = p.shape()[0];
            let s = p.slice(0, 0, d, 2)?;
            let flat = s.reshape(&[usize::MAX])?.unsqueeze(0)?;
            let n = flat.shape()[1];
            flat.mul(&v[0].reshape(&[usize::MAX])?.narrow(0, 0, n)?.unsqueeze(0)?)
        };
        check(&format!("permute {perm:?} -> slice -> reshape"), f, &[x]);
    }
}
