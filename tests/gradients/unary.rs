//! Elementwise functions of one input, scalar ops and dtype casts, on random shapes in every
//! layout. Each `name: domain => |x| expr;` line below is one test.

use crate::support::*;
use proptest::prelude::*;
use tessera::autograd::GradcheckOptions;
use tessera::tensor::{DType, GeluApproximate, UnaryOp};

/// One proptest per line: a random shape (rank 1-4, dims 1-4) in a random layout, values
/// from the domain, checked with the full Jacobian.
macro_rules! elementwise {
    ($($name:ident: $domain:expr => |$x:ident| $body:expr;)*) => {
        proptest! {
            #![proptest_config(config(32))]
            $(
                #[test]
                fn $name(shape in shape(), layout in layout(), seed in any::<u64>()) {
                    let input = Input::build(&shape, layout, &$domain, seed);
                    check(stringify!($name), |v| { let $x = &v[0]; $body }, &[input]);
                }
            )*
        }
    };
}

elementwise! {
    neg: Domain::Any => |x| x.neg();
    abs: Domain::AwayFromZero => |x| x.abs();
    exp: Domain::Any => |x| x.exp();
    log: Domain::Range(0.1, 3.0) => |x| x.log();
    sqrt: Domain::Range(0.1, 3.0) => |x| x.sqrt();
    rsqrt: Domain::Range(0.1, 3.0) => |x| x.rsqrt();
    recip: Domain::AwayFromZero => |x| x.recip();
    square: Domain::Any => |x| x.square();
    tanh: Domain::Any => |x| x.tanh();
    erf: Domain::Any => |x| x.erf();
    sigmoid: Domain::Range(-6.0, 6.0) => |x| x.sigmoid();
    relu: Domain::AwayFromZero => |x| x.relu();
    gelu: Domain::Range(-4.0, 4.0) => |x| x.gelu();
    gelu_tanh: Domain::Range(-4.0, 4.0) => |x| x.gelu_tanh();
    gelu_with_tanh: Domain::Range(-4.0, 4.0) => |x| x.gelu_with(GeluApproximate::Tanh);
    sign_has_zero_gradient: Domain::AwayFromZero => |x| x.unary(UnaryOp::Sign)?.add(x);
    powf_fractional: Domain::Range(0.1, 3.0) => |x| x.powf(2.5);
    powf_negative: Domain::Range(0.1, 3.0) => |x| x.powf(-1.5);
    powf_half: Domain::Range(0.1, 3.0) => |x| x.powf(0.5);
    powf_integer_any_sign: Domain::Any => |x| x.powf(3.0);
    powf_zero: Domain::Any => |x| x.powf(0.0)?.add(x);
    affine: Domain::Any => |x| x.affine(-1.5, 2.0);
    add_scalar: Domain::Any => |x| x.add_scalar(3.25);
    mul_scalar: Domain::Any => |x| x.mul_scalar(-0.75);
    div_scalar: Domain::Any => |x| x.div_scalar(4.0);
    clamp: Domain::Avoid(vec![-0.5, 0.7]) => |x| x.clamp(-0.5, 0.7);
    clamp_one_sided: Domain::Avoid(vec![0.25]) => |x| x.clamp(0.25, f64::INFINITY);
    chain_of_functions: Domain::Range(0.2, 2.0) => |x| x.sqrt()?.tanh()?.mul(&x.log()?)?.exp();
}

proptest! {
    #![proptest_config(config(16))]

    /// f64 -> f32 -> f64 around an affine map in f32: the cast's backward casts the
    /// gradient back. Finite differences in f32 need a large step; the map is linear, so the
    /// difference quotient is exact up to f32 rounding of the inputs.
    #[test]
    fn to_dtype_f32_round_trip(shape in shape(), layout in layout(), seed in any::<u64>()) {
        let input = Input::build(&shape, layout, &Domain::Any, seed);
        let opts = GradcheckOptions { eps: 1e-2, ..GradcheckOptions::default() };
        check_with(
            "to_dtype_f32_round_trip",
            |v| v[0].to_dtype(DType::F32)?.affine(1.5, 0.25)?.to_dtype(DType::F64),
            &[input],
            &opts,
        );
        // Same dtype: a no-op that must still pass the gradient.
        let input = Input::build(&shape, layout, &Domain::Any, seed);
        check("to_dtype_f64_noop", |v| v[0].to_dtype(DType::F64)?.square(), &[input]);
    }

    /// Through f16 and bf16 the gradient is the output gradient rounded to that dtype, exactly.
    #[test]
    fn to_dtype_half_round_trip(shape in shape(), seed in any::<u64>()) {
        for dt in [DType::F16, DType::BF16, DType::F32] {
            let x = V::leaf(random(&shape, &Domain::Any, seed));
            let y = x.to_dtype(dt).unwrap().to_dtype(DType::F64).unwrap();
            let g = random(&shape, &Domain::Any, seed ^ 1);
            let grads = y.backward_with(&g).unwrap();
            let want = g.to_dtype(dt).unwrap().to_dtype(DType::F64).unwrap();
            let got = grads.get(&x).expect("x gets a gradient");
            prop_assert_eq!(got.dtype(), DType::F64);
            prop_assert_eq!(got.to_f64_vec().unwrap(), want.to_f64_vec().unwrap(), "{}", dt);
        }
    }
}
