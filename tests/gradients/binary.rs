//! Binary ops with broadcasting and `where_cond`: two (or three) broadcast-compatible shapes
//! (ranks 0-4, size-1 and missing dims), each operand in a random layout, so that a backward
//! which forgets to sum over broadcast dims, or mishandles stride-0 operands, fails.

use crate::support::*;
use proptest::prelude::*;
use tessera::tensor::{CmpOp, Tensor};

/// One proptest per line: operands of broadcast-compatible shapes in random layouts, values
/// from the two domains, checked with the full Jacobian.
macro_rules! broadcasting {
    ($($name:ident: ($da:expr, $db:expr) => |$a:ident, $b:ident| $body:expr;)*) => {
        proptest! {
            #![proptest_config(config(48))]
            $(
                #[test]
                fn $name(
                    (a, b) in broadcast_shapes().prop_flat_map(|(sa, sb)| {
                        (input(sa, $da), input(sb, $db))
                    })
                ) {
                    check(stringify!($name), |v| { let ($a, $b) = (&v[0], &v[1]); $body }, &[a, b]);
                }
            )*
        }
    };
}

broadcasting! {
    add: (Domain::Any, Domain::Any) => |a, b| a.add(b);
    sub: (Domain::Any, Domain::Any) => |a, b| a.sub(b);
    mul: (Domain::Any, Domain::Any) => |a, b| a.mul(b);
    div: (Domain::Any, Domain::AwayFromZero) => |a, b| a.div(b);
    div_by_itself_squared: (Domain::AwayFromZero, Domain::Any) => |a, b| b.div(&a.mul(a)?);
    maximum: (Domain::Lattice(0.0), Domain::Lattice(0.05)) => |a, b| a.maximum(b);
    minimum: (Domain::Lattice(0.0), Domain::Lattice(0.05)) => |a, b| a.minimum(b);
    pow: (Domain::Range(0.2, 2.5), Domain::Any) => |a, b| a.pow(b);
    // Gradient accumulation: both operands used twice.
    mixed: (Domain::Range(0.5, 2.0), Domain::Any) => |a, b| a.mul(b)?.sub(&b.div(a)?)?.add(a);
}

/// A random U8 condition of `shape`.
fn condition(shape: &[usize], seed: u64) -> Tensor<tessera::tensor::Cpu> {
    random(shape, &Domain::AwayFromZero, seed)
        .compare_scalar(CmpOp::Gt, 0.0)
        .unwrap()
}

proptest! {
    #![proptest_config(config(48))]

    /// `where(cond, a, b)` with all three broadcasting against each other.
    #[test]
    fn where_cond(
        (c, a, b) in broadcast_shapes_n(3).prop_flat_map(|s| {
            (Just(s[0].clone()), input(s[1].clone(), Domain::Any), input(s[2].clone(), Domain::Any))
        }),
        seed in any::<u64>(),
    ) {
        let cond = condition(&c, seed);
        check("where_cond", |v| V::where_cond(&cond, &v[0], &v[1]), &[a, b]);
    }

    /// One differentiable operand and one constant: backward must honor `needs`.
    #[test]
    fn with_a_constant_operand(
        (a, b) in broadcast_shapes().prop_flat_map(|(sa, sb)| {
            (input(sa, Domain::Range(0.2, 2.5)), Just(sb))
        }),
        seed in any::<u64>(),
    ) {
        let c = V::constant(random(&b, &Domain::Range(0.5, 1.5), seed));
        check("mul_constant", |v| v[0].mul(&c), std::slice::from_ref(&a));
        check("div_by_constant", |v| v[0].div(&c), std::slice::from_ref(&a));
        check("constant_div", |v| c.div(&v[0]), std::slice::from_ref(&a));
        check("pow_constant_exponent", |v| v[0].pow(&c), std::slice::from_ref(&a));
        check("constant_pow", |v| c.pow(&v[0]), std::slice::from_ref(&a));
        check("maximum_constant", |v| v[0].maximum(&c.add_scalar(0.05)?), &[a]);
    }
}
