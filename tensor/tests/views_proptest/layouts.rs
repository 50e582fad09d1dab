//! Layout properties: reshape as a view vs a copy, symmetric broadcasting, narrow/slice offsets.

use crate::compare::config;
use crate::inputs::{spec, Mix};
use proptest::prelude::*;
use tessera_tensor::shape::broadcast_shapes;
use tessera_tensor::{Cpu, Layout, Tensor};

proptest! {
    #![proptest_config(config())]

    #[test]
    fn reshape_view_equals_reshape_copy(s in spec(), split in any::<u64>()) {
        let v = s.build();
        let elems = v.to_f64_vec().unwrap();
        // A random target shape: factor numel into up to four dims, with some 1s.
        let mut m = Mix(split);
        let mut rest = v.numel();
        let mut target = Vec::new();
        while rest > 1 && target.len() < 3 {
            let divisors: Vec<usize> = (1..=rest).filter(|d| rest % d == 0).collect();
            let d = divisors[m.below(divisors.len())];
            target.push(d);
            rest /= d;
        }
        target.push(rest);
        if m.below(2) == 0 {
            target.insert(m.below(target.len() + 1), 1);
        }
        let r = v.reshape(&target).unwrap();
        prop_assert_eq!(r.shape(), &target[..]);
        prop_assert_eq!(r.to_f64_vec().unwrap(), elems.clone());
        match v.layout().reshape(&target) {
            Some(l) => {
                // The view path: the same storage read through the new layout.
                let viewed = v.as_strided(l.shape(), l.strides(), l.offset()).unwrap();
                prop_assert_eq!(viewed.to_f64_vec().unwrap(), elems.clone());
                prop_assert!(r.shares_storage_with(&v));
            }
            None => {
                prop_assert!(!v.is_contiguous(), "a contiguous layout always reshapes");
                prop_assert!(!r.shares_storage_with(&v));
            }
        }
        // Inserting or removing size-1 dims never needs a copy.
        let mut ones = v.shape().to_vec();
        ones.insert(m.below(ones.len() + 1), 1);
        prop_assert!(v.layout().reshape(&ones).is_some());
        prop_assert_eq!(v.reshape(&ones).unwrap().to_f64_vec().unwrap(), elems);
    }

    #[test]
    fn broadcast_shapes_is_symmetric(
        a in prop::collection::vec(prop::sample::select(vec![1usize, 2, 3]), 0..=4),
        b in prop::collection::vec(prop::sample::select(vec![1usize, 2, 3]), 0..=4),
    ) {
        let ab = broadcast_shapes("t", &a, &b);
        let ba = broadcast_shapes("t", &b, &a);
        prop_assert_eq!(ab.is_ok(), ba.is_ok());
        // Naive NumPy rule.
        let r = a.len().max(b.len());
        let pad = |s: &[usize]| {
            let mut p = vec![1; r - s.len()];
            p.extend_from_slice(s);
            p
        };
        let (pa, pb) = (pad(&a), pad(&b));
        let naive: Option<Vec<usize>> = pa.iter().zip(&pb).map(|(&x, &y)| {
            if x == y || y == 1 { Some(x) } else if x == 1 { Some(y) } else { None }
        }).collect();
        match (ab, ba) {
            (Ok(x), Ok(y)) => {
                prop_assert_eq!(x.as_slice(), y.as_slice());
                prop_assert_eq!(Some(x.to_vec()), naive);
                // Both sides broadcast to the result.
                let la = Layout::contiguous(&a).broadcast_to(&x).unwrap();
                let lb = Layout::contiguous(&b).broadcast_to(&x).unwrap();
                prop_assert_eq!(la.shape(), lb.shape());
            }
            _ => prop_assert_eq!(naive, None),
        }
    }

    #[test]
    fn narrow_and_slice_offsets_match_naive(
        shape in prop::collection::vec(1usize..=5, 1..=4),
        cuts in prop::collection::vec((0usize..5, 0usize..6, 1usize..=3), 4),
        perm_seed in any::<u64>(),
    ) {
        let r = shape.len();
        let base = Layout::contiguous(&shape);
        // Per axis: start, length and step into the base.
        let mut l = base.clone();
        let mut start = vec![0; r];
        let mut step = vec![1; r];
        for i in 0..r {
            let (s, e, st) = cuts[i];
            let d = shape[i];
            let s = s % d;
            let len = (e % (d - s + 1)).max(1).min(d - s);
            if st == 1 {
                l = l.narrow(i, s, len).unwrap();
            } else {
                l = l.slice(i, s, s + len, st).unwrap();
            }
            start[i] = s;
            step[i] = st;
            prop_assert_eq!(l.shape()[i], len.div_ceil(st));
        }
        // Optionally permute, tracking where each base axis went.
        let mut perm: Vec<usize> = (0..r).collect();
        let mut m = Mix(perm_seed);
        for i in (1..r).rev() {
            perm.swap(i, m.below(i + 1));
        }
        let lp = l.permute(&perm).unwrap();
        // Naive: every multi-index of the view, mapped to base coordinates, row-major base offset.
        let vshape = lp.shape().to_vec();
        let total: usize = vshape.iter().product();
        let base_strides = base.strides().to_vec();
        let mut naive = Vec::with_capacity(total);
        for flat in 0..total {
            let mut rem = flat;
            let mut idx = vec![0; r];
            for j in (0..r).rev() {
                idx[j] = rem % vshape[j];
                rem /= vshape[j];
            }
            let mut off = 0;
            for j in 0..r {
                let bj = perm[j];
                off += (start[bj] + idx[j] * step[bj]) * base_strides[bj];
            }
            naive.push(off);
        }
        prop_assert_eq!(lp.offsets().collect::<Vec<_>>(), naive.clone());
        prop_assert_eq!(lp.numel(), total);
        if total > 0 {
            prop_assert_eq!(lp.required_len(), naive.iter().max().unwrap() + 1);
        }
        // And a tensor read through the view agrees.
        let data: Vec<f64> = (0..base.numel()).map(|i| i as f64).collect();
        let t = Tensor::from_vec(data, &shape, &Cpu).unwrap();
        let tv = t.as_strided(lp.shape(), lp.strides(), lp.offset()).unwrap();
        prop_assert_eq!(
            tv.to_f64_vec().unwrap(),
            naive.iter().map(|&o| o as f64).collect::<Vec<_>>()
        );
    }
}
