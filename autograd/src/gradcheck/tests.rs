//! Meta-tests: the checker must pass correct gradients and catch wrong ones. The custom ops
//! here also show how a user adds an op: a `Backward` struct plus `Var::from_op`.

use super::*;
use crate::test_util::{pos, rand};
use crate::Backward;
use alloc::boxed::Box;
use core::sync::atomic::{AtomicU64, Ordering};
use tessera_tensor::Cpu;

/// `y = 2x` whose backward multiplies by `factor` (2 is right) and adds `offset` (0 is right).
struct Scale {
    factor: f64,
    offset: f64,
}

impl Backward<Cpu> for Scale {
    fn name(&self) -> &'static str {
        "scale"
    }
    fn backward(&self, g: &Tensor<Cpu>, _needs: &[bool]) -> Result<Vec<Option<Tensor<Cpu>>>> {
        Ok(vec![Some(g.affine(self.factor, self.offset)?)])
    }
}

fn scale(x: &Var<Cpu>, factor: f64, offset: f64) -> Result<Var<Cpu>> {
    let y = x.value().mul_scalar(2.0)?;
    Ok(Var::from_op(
        y,
        core::slice::from_ref(x),
        Box::new(Scale { factor, offset }),
    ))
}

fn run(f: impl Fn(&[Var<Cpu>]) -> Result<Var<Cpu>>, x: Tensor<Cpu>) -> Checked<()> {
    gradcheck(f, &[x], &GradcheckOptions::default())
}

fn fast() -> GradcheckOptions {
    GradcheckOptions {
        fast_mode: true,
        seed: 7,
        ..Default::default()
    }
}

#[test]
fn a_correct_custom_op_passes() {
    run(|v| scale(&v[0], 2.0, 0.0), rand(&[2, 3], 1)).unwrap();
    gradcheck(|v| scale(&v[0], 2.0, 0.0), &[rand(&[2, 3], 1)], &fast()).unwrap();
}

#[test]
fn a_wrong_backward_is_caught_and_reported() {
    let e = run(|v| scale(&v[0], 3.0, 0.0), rand(&[2, 3], 2)).unwrap_err();
    match &e {
        GradcheckFailure::JacobianMismatch {
            input,
            analytic,
            numeric,
            ..
        } => {
            assert_eq!(*input, 0);
            assert!((analytic - 3.0).abs() < 1e-12 && (numeric - 2.0).abs() < 1e-6);
        }
        other => panic!("unexpected failure {other:?}"),
    }
    let msg = alloc::format!("{e}");
    assert!(
        msg.contains("input 0") && msg.contains("element [0, 0]"),
        "{msg}"
    );
    let e = gradcheck(|v| scale(&v[0], 3.0, 0.0), &[rand(&[2, 3], 2)], &fast()).unwrap_err();
    assert!(
        matches!(e, GradcheckFailure::ProjectionMismatch { input: 0, .. }),
        "{e}"
    );
}

#[test]
fn a_too_small_eps_makes_numeric_derivatives_wrong() {
    // Near x = 1000, x^2 is ~1e6 with an ulp of ~1e-10: a step of 1e-12 is lost in rounding.
    let x = pos(&[3], 3).add_scalar(1000.0).unwrap();
    let f = |v: &[Var<Cpu>]| v[0].square();
    run(f, x.clone()).unwrap();
    let tiny = GradcheckOptions {
        eps: 1e-12,
        ..Default::default()
    };
    let e = gradcheck(f, &[x], &tiny).unwrap_err();
    assert!(
        matches!(e, GradcheckFailure::JacobianMismatch { .. }),
        "{e}"
    );
}

#[test]
fn a_gradient_for_a_zero_output_gradient_is_caught() {
    let e = run(|v| scale(&v[0], 2.0, 1e-3), rand(&[2], 4)).unwrap_err();
    assert!(
        matches!(e, GradcheckFailure::NonzeroForZeroGradient { .. }),
        "{e}"
    );
}

/// A backward that returns something different every time it runs.
struct Drifting(AtomicU64);

impl Backward<Cpu> for Drifting {
    fn name(&self) -> &'static str {
        "drifting"
    }
    fn backward(&self, g: &Tensor<Cpu>, _needs: &[bool]) -> Result<Vec<Option<Tensor<Cpu>>>> {
        let n = self.0.fetch_add(1, Ordering::Relaxed) as f64;
        Ok(vec![Some(g.mul_scalar(1.0 + n * 1e-9)?)])
    }
}

#[test]
fn a_nondeterministic_backward_is_caught() {
    let f = |v: &[Var<Cpu>]| {
        let y = v[0].value().clone();
        Ok(Var::from_op(
            y,
            core::slice::from_ref(&v[0]),
            Box::new(Drifting(AtomicU64::new(0))),
        ))
    };
    let e = run(f, rand(&[3], 5)).unwrap_err();
    assert!(
        matches!(e, GradcheckFailure::Nondeterministic { .. }),
        "{e}"
    );
}

/// A backward that returns a gradient of the wrong shape.
struct Flattening;

impl Backward<Cpu> for Flattening {
    fn name(&self) -> &'static str {
        "flattening"
    }
    fn backward(&self, g: &Tensor<Cpu>, _needs: &[bool]) -> Result<Vec<Option<Tensor<Cpu>>>> {
        Ok(vec![Some(g.reshape(&[g.numel()])?)])
    }
}

#[test]
fn wrong_gradient_shapes_and_errors_are_reported() {
    let f = |v: &[Var<Cpu>]| {
        let y = v[0].value().clone();
        Ok(Var::from_op(
            y,
            core::slice::from_ref(&v[0]),
            Box::new(Flattening),
        ))
    };
    let e = run(f, rand(&[2, 2], 6)).unwrap_err();
    let msg = alloc::format!("{e}");
    assert!(msg.contains("flattening") && msg.contains("[4]"), "{msg}");
    // An error from the function itself names the op and the shapes.
    let e = run(|v| v[0].matmul(&v[0]), rand(&[2, 3], 7)).unwrap_err();
    assert!(matches!(e, GradcheckFailure::Failed { .. }), "{e}");
    assert!(alloc::format!("{e}").contains("matmul"), "{e}");
}

#[test]
fn inputs_are_validated() {
    let e = run(|v| v[0].exp(), rand(&[2], 8).to_dtype(DType::F32).unwrap()).unwrap_err();
    assert!(
        matches!(e, GradcheckFailure::InvalidInput { input: 0, .. }),
        "{e}"
    );
    let broadcast = rand(&[3], 9).broadcast_to(&[2, 3]).unwrap();
    let e = run(|v| v[0].exp(), broadcast).unwrap_err();
    assert!(alloc::format!("{e}").contains("stride"), "{e}");
    let bad = GradcheckOptions {
        eps: 0.0,
        ..Default::default()
    };
    assert!(gradcheck(|v| v[0].exp(), &[rand(&[2], 1)], &bad).is_err());
    // Non-contiguous views are fine.
    let transposed = rand(&[2, 3], 10).t().unwrap();
    run(|v| v[0].exp()?.matmul(&v[0].t()?), transposed).unwrap();
}

#[test]
fn constant_outputs_and_unused_inputs_have_zero_gradients() {
    let inputs = [rand(&[2], 11), rand(&[2], 12)];
    let opts = GradcheckOptions::default();
    gradcheck(|v| v[0].exp(), &inputs, &opts).unwrap();
    gradcheck(
        |v| Ok(Var::constant(v[0].value().zeros_like()?)),
        &inputs,
        &opts,
    )
    .unwrap();
    // A detach inside the function hides a real dependence: the checker sees it.
    let e = gradcheck(|v| v[0].mul(&v[1].detach()), &inputs, &opts).unwrap_err();
    assert!(
        matches!(e, GradcheckFailure::JacobianMismatch { input: 1, .. }),
        "{e}"
    );
}

#[test]
fn fast_mode_on_a_larger_function() {
    let (x, w) = (rand(&[8, 16], 13), rand(&[16, 12], 14));
    let f = |v: &[Var<Cpu>]| v[0].matmul(&v[1])?.gelu()?.softmax(-1);
    gradcheck(f, &[x, w], &fast()).unwrap();
}
