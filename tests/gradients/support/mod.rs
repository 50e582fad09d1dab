//! The shared machinery of the gradient suite.
//!
//! - [`Domain`]: where input values are drawn from (kinks, poles and ties kept away).
//! - [`Layout`] and [`Input`]: an input tensor built contiguous, transposed, strided (a step-2
//!   slice behind an offset, with NaN in the gaps) or expanded (a smaller leaf that the
//!   function under test sees through `broadcast_to`, so that the broadcast's backward and the
//!   op's handling of stride-0 operands are checked together).
//! - proptest strategies: [`shape`], [`shape_in`], [`broadcast_shapes`], [`axes`],
//!   [`input`], [`input_in`], [`config`].
//! - [`check`], [`check_fast`], [`check_with`]: run `gradcheck` in f64 and turn a
//!   `GradcheckFailure` into a panic that names the check, the failure and every input.
//!
//! | module | holds |
//! |---|---|
//! | `values` | [`Gen`], [`Domain`], tensor constructors ([`tensor`], [`random`], [`indices`]) |
//! | `inputs` | [`Layout`], [`Input`] and the layouts' builders [`transposed`], [`strided`] |
//! | `strategies` | [`config`] and the proptest strategies |
//! | `check` | [`check`], [`check_fast`], [`check_with`], [`assert_close`] |
//!
//! Every public name is re-exported here, so callers `use crate::support::*`.
#![allow(dead_code)]

mod check;
mod inputs;
mod strategies;
mod values;

pub use check::*;
pub use inputs::*;
pub use strategies::*;
pub use values::*;

use tessera::autograd::Var;
use tessera::tensor::{Cpu, Result, Tensor};

pub type T = Tensor<Cpu>;
pub type V = Var<Cpu>;

// ---------------------------------------------------------------------------------- self-tests

/// The machinery itself: layouts are what they claim, and a wrong gradient is caught.
mod self_tests {
    use super::*;
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use tessera::autograd::Backward;

    #[test]
    fn layouts_hold_the_right_values() {
        let shape = [2, 3, 4];
        let vals: Vec<f64> = (0..24).map(|i| i as f64).collect();
        let t = transposed(&vals, &shape);
        assert!(!t.is_contiguous());
        assert_eq!(t.to_f64_vec().unwrap(), vals);
        let s = strided(&vals, &shape);
        assert!(!s.is_contiguous() && s.layout().offset() > 0);
        assert_eq!(s.to_f64_vec().unwrap(), vals);
        // The skipped elements of the buffer are NaN.
        let whole = s.storage().clone();
        let full = T::from_parts(whole, tessera::tensor::Layout::contiguous(&[3, 3, 9]), Cpu);
        let nan = full.unwrap().to_f64_vec().unwrap();
        assert_eq!(nan.iter().filter(|v| v.is_nan()).count(), 81 - 24);
        let e = Input::build(&shape, Layout::Expanded, &Domain::Any, 7);
        assert!(e.leaf.numel() < 24, "{e:?}");
        let v = e.view(&V::leaf(e.leaf.clone())).unwrap();
        assert_eq!(v.shape(), &shape);
        assert!(v.value().layout().has_zero_stride());
    }

    /// `y = 2x` with a backward that forgets the factor.
    struct WrongScale;
    impl Backward<Cpu> for WrongScale {
        fn name(&self) -> &'static str {
            "wrong_scale"
        }
        fn backward(&self, g: &T, _needs: &[bool]) -> Result<Vec<Option<T>>> {
            Ok(vec![Some(g.clone())])
        }
    }

    /// `broadcast_to` whose backward keeps only the first copy instead of summing them all.
    struct FirstCopyOnly(Vec<usize>);
    impl Backward<Cpu> for FirstCopyOnly {
        fn name(&self) -> &'static str {
            "first_copy_only"
        }
        fn backward(&self, g: &T, _needs: &[bool]) -> Result<Vec<Option<T>>> {
            let mut g = g.clone();
            while g.rank() > self.0.len() {
                g = g.select(0, 0)?;
            }
            for (axis, &d) in self.0.iter().enumerate() {
                if d == 1 {
                    g = g.narrow(axis as isize, 0, 1)?;
                }
            }
            Ok(vec![Some(g.contiguous()?)])
        }
    }

    fn panics(f: impl FnOnce()) -> String {
        match catch_unwind(AssertUnwindSafe(f)) {
            Ok(()) => panic!("the check passed a wrong gradient"),
            Err(p) => p
                .downcast_ref::<String>()
                .cloned()
                .unwrap_or_else(|| "<non-string panic>".into()),
        }
    }

    #[test]
    fn a_wrong_gradient_is_reported() {
        let x = Input::build(&[2, 3], Layout::Strided, &Domain::Any, 1);
        let msg = panics(|| {
            check(
                "double",
                |v| {
                    let y = v[0].value().mul_scalar(2.0)?;
                    Ok(V::from_op(y, &v[..1], Box::new(WrongScale)))
                },
                &[x],
            )
        });
        assert!(
            msg.contains("`double`") && msg.contains("Jacobian mismatch"),
            "{msg}"
        );
        assert!(msg.contains("input 0: [2, 3] Strided"), "{msg}");
    }

    #[test]
    fn a_broadcast_gradient_that_is_not_summed_is_caught() {
        let b = Input::new(&[3, 1], Domain::Any, 2);
        let a = Input::new(&[2, 3, 4], Domain::Any, 3);
        let msg = panics(|| {
            check(
                "add with a bad broadcast",
                |v| {
                    let shape = v[0].shape().to_vec();
                    let y = v[1].value().broadcast_to(&shape)?;
                    let bad = V::from_op(y, &v[1..2], Box::new(FirstCopyOnly(vec![3, 1])));
                    v[0].add(&bad)
                },
                &[a, b],
            )
        });
        assert!(msg.contains("input 1"), "{msg}");
    }
}
