//! Index ops (index_select, gather, scatter_add), cat/stack/split and pad on views.

use crate::compare::{config, dense, same};
use crate::inputs::{spec, transposed_of, Mix};
use crate::T;
use proptest::prelude::*;
use tessera_tensor::{Cpu, Tensor};

proptest! {
    #![proptest_config(config())]

    #[test]
    fn index_ops_honor_views(
        s in spec(),
        axis in 0usize..4,
        len in 1usize..=6,
        seed in any::<u64>(),
    ) {
        let v = s.build();
        let c = dense(&v);
        let r = v.rank();
        let a = axis % r;
        let d = v.shape()[a];
        let mut m = Mix(seed);
        // index_select with a 1-D index that is itself a strided view.
        let raw: Vec<i64> = (0..2 * len).map(|_| m.below(d) as i64).collect();
        let idx = Tensor::from_vec(raw, &[2 * len], &Cpu).unwrap().slice(0, 1, 2 * len, 2).unwrap();
        same("index_select", &v.index_select(a as isize, &idx).unwrap(),
            &c.index_select(a as isize, &dense(&idx)).unwrap())?;
        // gather / scatter_add with a transposed index of the same rank.
        let mut ishape = v.shape().to_vec();
        ishape[a] = len;
        let rev: Vec<usize> = ishape.iter().rev().copied().collect();
        let count: usize = ishape.iter().product();
        let vals: Vec<i64> = (0..count).map(|_| m.below(d) as i64).collect();
        let perm: Vec<usize> = (0..r).rev().collect();
        let gi = Tensor::from_vec(vals, &rev, &Cpu).unwrap().permute(&perm).unwrap();
        let gic = dense(&gi);
        same("gather", &v.gather(a as isize, &gi).unwrap(), &c.gather(a as isize, &gic).unwrap())?;
        let src = transposed_of(&ishape, seed ^ 5);
        same("scatter_add", &v.scatter_add(a as isize, &gi, &src).unwrap(),
            &c.scatter_add(a as isize, &gic, &dense(&src)).unwrap())?;
    }

    #[test]
    fn cat_and_pad_honor_views(s in spec(), axis in 0usize..4, extra in 1usize..=3,
        pads in prop::collection::vec(0usize..=2, 0..=8), seed in any::<u64>()) {
        let v = s.build();
        let c = dense(&v);
        let r = v.rank();
        let a = axis % r;
        let mut oshape = v.shape().to_vec();
        oshape[a] = extra;
        let o = transposed_of(&oshape, seed);
        let cat = T::cat(&[v.clone(), o.clone(), v.clone()], a as isize).unwrap();
        same("cat", &cat, &T::cat(&[c.clone(), dense(&o), c.clone()], a as isize).unwrap())?;
        same("stack", &T::stack(&[v.clone(), c.clone()], a as isize).unwrap(),
            &T::stack(&[c.clone(), c.clone()], a as isize).unwrap())?;
        // The pieces of a split are views; concatenating them back is the identity.
        let parts = cat.split(2, a as isize).unwrap();
        same("split+cat", &T::cat(&parts, a as isize).unwrap(), &cat)?;
        let pads: Vec<usize> = pads.into_iter().take(2 * r).collect();
        let pads = &pads[..pads.len() / 2 * 2];
        same("pad", &v.pad(pads, -3.0).unwrap(), &c.pad(pads, -3.0).unwrap())?;
    }
}
