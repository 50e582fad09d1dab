//! Matrix products: broadcast batch dims (ranks 0-2 on each side), transposed operands (a
//! `.t()` inside the function), 1-D operands on either or both sides, every input layout.

use crate::support::*;
use proptest::prelude::*;

#[derive(Clone, Debug)]
struct Case {
    a: Input,
    b: Input,
    /// Whether `a` / `b` is stored transposed and `.t()`-ed by the function.
    ta: bool,
    tb: bool,
}

fn cases() -> impl Strategy<Value = Case> {
    (
        broadcast_shapes_from(shape_in(0..=2, 1..=3), 2),
        (1..=4usize, 1..=4usize, 1..=4usize),
        // 0: matrix, 1: 1-D (weighted towards matrices)
        (0..4u8, 0..4u8, any::<bool>(), any::<bool>()),
    )
        .prop_flat_map(|(batch, (m, k, n), (va, vb, ta, tb))| {
            let (a_vec, b_vec) = (va == 0, vb == 0);
            let (ta, tb) = (ta && !a_vec, tb && !b_vec);
            let a_shape = match (a_vec, ta) {
                (true, _) => vec![k],
                (false, false) => [batch[0].clone(), vec![m, k]].concat(),
                (false, true) => [batch[0].clone(), vec![k, m]].concat(),
            };
            let b_shape = match (b_vec, tb) {
                (true, _) => vec![k],
                (false, false) => [batch[1].clone(), vec![k, n]].concat(),
                (false, true) => [batch[1].clone(), vec![n, k]].concat(),
            };
            (input(a_shape, Domain::Any), input(b_shape, Domain::Any))
                .prop_map(move |(a, b)| Case { a, b, ta, tb })
        })
}

proptest! {
    #![proptest_config(config(48))]

    #[test]
    fn matmul(c in cases()) {
        let (ta, tb) = (c.ta, c.tb);
        let f = |v: &[V]| {
            let a = if ta { v[0].t()? } else { v[0].clone() };
            let b = if tb { v[1].t()? } else { v[1].clone() };
            a.matmul(&b)
        };
        check(&format!("matmul (a transposed: {ta}, b transposed: {tb})"), f, &[c.a, c.b]);
    }

    /// The same operand on both sides (`x @ xᵀ`): the two gradient paths accumulate.
    #[test]
    fn gram_matrix(x in shape_in(2..=3, 1..=4).prop_flat_map(|s| input(s, Domain::Any))) {
        check("x @ x^T", |v| v[0].matmul(&v[0].t()?), &[x]);
    }
}
