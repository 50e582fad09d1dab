//! # tessera-testkit: the backend conformance kit
//!
//! Checks that a [`Backend`](tessera_tensor::Backend) computes what the [`Cpu`](tessera_tensor::Cpu) reference
//! computes, within a documented [tolerance table](mod@tolerance). A backend author adds this crate as a
//! dev-dependency and calls the check functions from one test file:
//!
//! - [`ops::check_ops`]: every op family (unary, binary, reductions, matmul, softmax, norms,
//!   convolution, pooling, interpolation, indexing, concatenation, padding, casts and views,
//!   random fills) with fixed inputs, known values and error cases;
//! - [`props::check_props`]: property tests with random shapes, every float dtype,
//!   broadcasting and non-contiguous views (transposed, strided with an offset, narrowed);
//! - [`gradients::check_gradients`]: `gradcheck` in f64 over a representative set of ops;
//! - [`steps::check_dino_vit_step`] and [`steps::check_byol_resnet_step`]: one whole
//!   training step of a tiny DINO ViT and a tiny BYOL ResNet.
//!
//! Every check returns a [`Failure`] (or a list of them) naming the check, the case and, for
//! a value mismatch, the first mismatching element with its index, the expected and the
//! actual value. [`backends::Counting`] is a test backend with opaque storage that
//! implements only the required primitives; the kit's own tests run every check on it.
//!
//! ```no_run
//! use tessera_testkit::{backends::Counting, ToleranceTable};
//!
//! let dev = Counting::new(); // your backend here
//! let tol = ToleranceTable::default();
//! if let Err(failures) = tessera_testkit::ops::check_ops(&dev, &tol) {
//!     for f in &failures {
//!         eprintln!("{f}");
//!     }
//!     panic!("{} op families failed", failures.len());
//! }
//! tessera_testkit::props::check_props(&dev, &tol, 32).unwrap();
//! tessera_testkit::gradients::check_gradients(&dev).unwrap();
//! tessera_testkit::steps::check_dino_vit_step(&dev, &tol).unwrap();
//! tessera_testkit::steps::check_byol_resnet_step(&dev, &tol).unwrap();
//! ```
//!
//! See the crate's README for the tolerance table and the meaning of each failure message.

#![warn(missing_docs)]

pub mod backends;
pub mod compare;
pub mod gradients;
pub mod ops;
pub mod props;
pub mod steps;
pub mod tolerance;

pub use compare::{compare_tensors, compare_values, Failure};
pub use tolerance::{tolerance, OpFamily, Tolerance, ToleranceTable};

/// Panics with every failure's message if `r` is an error (for `#[test]` functions).
#[track_caller]
pub fn assert_pass<E: core::fmt::Display>(r: Result<(), Vec<E>>) {
    if let Err(failures) = r {
        let msg: Vec<String> = failures.iter().map(|f| f.to_string()).collect();
        panic!("{} failure(s):\n{}", msg.len(), msg.join("\n"));
    }
}
