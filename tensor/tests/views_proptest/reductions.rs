//! Reductions, matmul on transposed and viewed operands, softmax and layer/batch norm.

use crate::compare::{config, dense, near, same};
use crate::inputs::{contiguous, spec, transposed_of};
use proptest::prelude::*;

proptest! {
    #![proptest_config(config())]

    #[test]
    fn reductions_honor_views(
        s in spec(),
        mask in prop::collection::vec(any::<bool>(), 4),
        keepdim in any::<bool>(),
        axis in 0usize..4,
    ) {
        let v = s.build();
        let c = dense(&v);
        let r = v.rank();
        let axes: Vec<isize> = (0..r).filter(|&i| mask[i]).map(|i| i as isize).collect();
        same("sum", &v.sum(&axes, keepdim).unwrap(), &c.sum(&axes, keepdim).unwrap())?;
        same("mean", &v.mean(&axes, keepdim).unwrap(), &c.mean(&axes, keepdim).unwrap())?;
        same("max", &v.max(&axes, keepdim).unwrap(), &c.max(&axes, keepdim).unwrap())?;
        same("min", &v.min(&axes, keepdim).unwrap(), &c.min(&axes, keepdim).unwrap())?;
        same("var", &v.var(&axes, 1, keepdim).unwrap(), &c.var(&axes, 1, keepdim).unwrap())?;
        same("var biased", &v.var(&axes, 0, keepdim).unwrap(), &c.var(&axes, 0, keepdim).unwrap())?;
        let a = (axis % r) as isize;
        same("argmax", &v.argmax(a, keepdim).unwrap(), &c.argmax(a, keepdim).unwrap())?;
        same("argmin", &v.argmin(a, keepdim).unwrap(), &c.argmin(a, keepdim).unwrap())?;
        let pos = v.gt(&v.mean(&[], true).unwrap()).unwrap();
        same("u8 count", &pos.sum(&axes, keepdim).unwrap(),
            &dense(&pos).sum(&axes, keepdim).unwrap())?;
    }

    #[test]
    fn matmul_on_transposed_operands(
        batch in prop::collection::vec(1usize..=3, 0..=2),
        (m, k, n) in (1usize..=5, 1usize..=5, 1usize..=5),
        bcast in any::<bool>(),
        s in spec(),
        seed in any::<u64>(),
    ) {
        // a: [batch.., m, k] stored as [batch.., k, m]; b: [k, n] or [1.., k, n] stored transposed.
        let mut ash = batch.clone();
        ash.extend([k, m]);
        let a = contiguous(&ash, seed).t().unwrap();
        let b = if bcast {
            let mut bsh = vec![1; batch.len()];
            bsh.extend([n, k]);
            contiguous(&bsh, seed ^ 1).t().unwrap()
        } else {
            transposed_of(&[k, n], seed ^ 1)
        };
        same("matmul", &a.matmul(&b).unwrap(), &dense(&a).matmul(&dense(&b)).unwrap())?;
        same("matmul^T", &b.t().unwrap().matmul(&a.t().unwrap()).unwrap(),
            &dense(&b.t().unwrap()).matmul(&dense(&a.t().unwrap())).unwrap())?;
        // A random view on the left, a transposed matrix on the right.
        let v = s.build();
        let last = v.shape()[v.rank() - 1];
        let w = transposed_of(&[last, n], seed ^ 2);
        same("view @ w", &v.matmul(&w).unwrap(), &dense(&v).matmul(&dense(&w)).unwrap())?;
        let u = transposed_of(&[n, v.shape()[0]], seed ^ 3);
        if v.rank() <= 2 {
            same("u @ view", &u.matmul(&v).unwrap(), &dense(&u).matmul(&dense(&v)).unwrap())?;
        }
    }

    #[test]
    fn softmax_and_layer_norm_honor_views(
        s in spec(),
        axis in 0usize..4,
        k in 1usize..=4,
        seed in any::<u64>(),
    ) {
        let v = s.build();
        let c = dense(&v);
        let r = v.rank();
        let a = (axis % r) as isize;
        near("softmax", &v.softmax(a).unwrap(), &c.softmax(a).unwrap())?;
        near("log_softmax", &v.log_softmax(a).unwrap(), &c.log_softmax(a).unwrap())?;
        let k = 1 + (k - 1) % r;
        let ns = v.shape()[r - k..].to_vec();
        let (w, b) = (transposed_of(&ns, seed), transposed_of(&ns, seed ^ 7));
        near("layer_norm", &v.layer_norm(&ns, Some(&w), Some(&b), 1e-5).unwrap(),
            &c.layer_norm(&ns, Some(&dense(&w)), Some(&dense(&b)), 1e-5).unwrap())?;
        near("layer_norm plain", &v.layer_norm(&ns, None, None, 1e-6).unwrap(),
            &c.layer_norm(&ns, None, None, 1e-6).unwrap())?;
        if r >= 2 && v.numel() / v.shape()[1] >= 2 {
            near("batch_norm", &v.batch_norm_train(None, None, 1e-5).unwrap().output,
                &c.batch_norm_train(None, None, 1e-5).unwrap().output)?;
        }
    }
}
