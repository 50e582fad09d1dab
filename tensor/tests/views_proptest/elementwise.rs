//! Unary and broadcasting binary ops (arithmetic, compare, `where_cond`) on random views.

use crate::compare::{config, dense, same};
use crate::inputs::{spec, transposed_of};
use crate::T;
use proptest::prelude::*;
use tessera_tensor::DType;

type UnaryFn = fn(&T) -> tessera_tensor::Result<T>;
type BinaryFn = fn(&T, &T) -> tessera_tensor::Result<T>;

proptest! {
    #![proptest_config(config())]

    #[test]
    fn unary_ops_honor_views(s in spec()) {
        let v = s.build();
        let c = dense(&v);
        let ops: [(&str, UnaryFn); 16] = [
            ("neg", |t| t.neg()),
            ("abs", |t| t.abs()),
            ("sign", |t| t.sign()),
            ("exp", |t| t.exp()),
            ("log", |t| t.abs()?.add_scalar(0.5)?.log()),
            ("sqrt", |t| t.abs()?.sqrt()),
            ("rsqrt", |t| t.abs()?.add_scalar(1.0)?.rsqrt()),
            ("square", |t| t.square()),
            ("tanh", |t| t.tanh()),
            ("erf", |t| t.erf()),
            ("sigmoid", |t| t.sigmoid()),
            ("relu", |t| t.relu()),
            ("powf", |t| t.abs()?.powf(1.7)),
            ("affine", |t| t.affine(-1.5, 0.25)),
            ("clamp", |t| t.clamp(-0.5, 0.75)),
            ("gelu", |t| t.gelu()),
        ];
        for (name, f) in ops {
            same(name, &f(&v).unwrap(), &f(&c).unwrap())?;
        }
        same("to f32", &v.to_dtype(DType::F32).unwrap(), &c.to_dtype(DType::F32).unwrap())?;
        same("copy", &v.copy().unwrap(), &c)?;
    }

    #[test]
    fn binary_ops_broadcast_over_views(
        s in spec(),
        keep in prop::collection::vec(any::<bool>(), 4),
        drop in 0usize..4,
        seed in any::<u64>(),
    ) {
        let v = s.build();
        let r = v.rank();
        let drop = drop.min(r);
        // Another operand that broadcasts against the view: some dims 1, leading dims dropped.
        let other_shape: Vec<usize> = (drop..r)
            .map(|i| if keep[i] { v.shape()[i] } else { 1 })
            .collect();
        let w = transposed_of(&other_shape, seed);
        let (vc, wc) = (dense(&v), dense(&w));
        for (name, f) in [
            ("add", T::add as BinaryFn),
            ("sub", T::sub),
            ("mul", T::mul),
            ("div", T::div),
            ("maximum", T::maximum),
            ("minimum", T::minimum),
        ] {
            same(name, &f(&v, &w).unwrap(), &f(&vc, &wc).unwrap())?;
            same(name, &f(&w, &v).unwrap(), &f(&wc, &vc).unwrap())?;
        }
        same("pow", &v.abs().unwrap().pow(&w).unwrap(), &vc.abs().unwrap().pow(&wc).unwrap())?;
        let (m, mc) = (v.lt(&w).unwrap(), vc.lt(&wc).unwrap());
        same("lt", &m, &mc)?;
        same("ge", &w.ge(&v).unwrap(), &wc.ge(&vc).unwrap())?;
        same("eq", &v.eq(&v).unwrap(), &vc.eq(&vc).unwrap())?;
        // where with a broadcast (and transposed) condition.
        let mt = transposed_of(m.shape(), seed)
            .compare_scalar(tessera_tensor::CmpOp::Gt, 0.0)
            .unwrap();
        same("where", &m.where_cond(&v, &w).unwrap(), &mc.where_cond(&vc, &wc).unwrap())?;
        same("where 2", &mt.where_cond(&w, &v).unwrap(),
            &dense(&mt).where_cond(&wc, &vc).unwrap())?;
    }
}
