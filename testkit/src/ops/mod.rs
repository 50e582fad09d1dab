//! Op-by-op checks: every op of the front end, family by family, on a backend against the
//! [`Cpu`] reference.
//!
//! Each family ([`FAMILIES`]) is one generic function that builds fixed inputs on the backend,
//! asserts known values (exact where the result is exactly representable, else within a
//! small bound) and error cases, and records its results as [`Outputs`]. [`check_family`]
//! runs a family on the backend and on the CPU and compares every recorded output within the
//! [`ToleranceTable`] cell of its dtype and the family's [`OpFamily`]; [`check_ops`] runs
//! them all. Random shapes, broadcasting and views are covered by [`crate::props`].
//!
//! | module | holds |
//! |---|---|
//! | `support` | shared helpers: recording outputs, building inputs, checking values |
//! | `elementwise` | unary, binary/compare/where, casts-copies-views and RNG families |
//! | `reductions` | reduce, matmul, softmax and norm families |
//! | `images` | conv, pooling and interpolation families |
//! | `indexing` | index, concat and pad families |

pub mod elementwise;
pub mod images;
pub mod indexing;
pub mod reductions;
pub mod support;

use crate::compare::{compare_host, Failure};
use crate::tolerance::{OpFamily, ToleranceTable};
use std::panic::{catch_unwind, AssertUnwindSafe};
pub use support::Outputs;
use tessera_tensor::{Backend, Cpu};

/// One family: builds inputs on the backend, checks known values, records its outputs.
pub type FamilyFn<B> = fn(&B, &mut Outputs) -> tessera_tensor::Result<()>;

/// Every family's name and the tolerance column its outputs are compared under.
pub const FAMILIES: [(&str, OpFamily); 14] = [
    ("unary", OpFamily::Elementwise),
    ("binary", OpFamily::Elementwise),
    ("reduce", OpFamily::Reduction),
    ("matmul", OpFamily::MatmulConv),
    ("softmax", OpFamily::SoftmaxNorm),
    ("norm", OpFamily::SoftmaxNorm),
    ("conv", OpFamily::MatmulConv),
    ("pool", OpFamily::Reduction),
    ("index", OpFamily::Elementwise),
    ("concat", OpFamily::Elementwise),
    ("pad", OpFamily::Elementwise),
    ("interpolate", OpFamily::Reduction),
    ("copy", OpFamily::Elementwise),
    ("rng", OpFamily::Elementwise),
];

/// The function of family `name` for backend `B`, or `None` for an unknown name.
pub fn family<B: Backend>(name: &str) -> Option<FamilyFn<B>> {
    use self::{elementwise::*, images::*, indexing::*, reductions::*};
    let f: FamilyFn<B> = match name {
        "unary" => unary_family::<B>,
        "binary" => binary_family::<B>,
        "reduce" => reduce_family::<B>,
        "matmul" => matmul_family::<B>,
        "softmax" => softmax_family::<B>,
        "norm" => norm_family::<B>,
        "conv" => conv_family::<B>,
        "pool" => pool_family::<B>,
        "index" => index_family::<B>,
        "concat" => concat_family::<B>,
        "pad" => pad_family::<B>,
        "interpolate" => interpolate_family::<B>,
        "copy" => copy_family::<B>,
        "rng" => rng_family::<B>,
        _ => return None,
    };
    Some(f)
}

/// Runs family `name` on `dev` and returns its outputs; an op error or a failed assertion
/// inside the family (a panic, caught here) becomes a [`Failure`].
pub fn run_family<B: Backend>(dev: &B, name: &str) -> Result<Outputs, Failure> {
    let check = format!("ops/{name} on {}", dev.name());
    let f = family::<B>(name).ok_or_else(|| Failure::new(&check, "no such family"))?;
    let mut out = Outputs::new();
    match catch_unwind(AssertUnwindSafe(|| f(dev, &mut out))) {
        Ok(Ok(())) => Ok(out),
        Ok(Err(e)) => Err(Failure::error(check, e)),
        Err(p) => Err(Failure::new(
            check,
            format!("panic: {}", panic_message(&*p)),
        )),
    }
}

/// The text of a caught panic.
pub fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "<non-string panic>".into())
}

/// Compares two runs of family `name`: same output names and shapes, values within the
/// table's cell for each output's dtype and the family's column.
pub fn compare_outputs(
    name: &str,
    reference: &Outputs,
    actual: &Outputs,
    tol: &ToleranceTable,
) -> Result<(), Failure> {
    let column = FAMILIES
        .iter()
        .find(|(n, _)| *n == name)
        .map_or(OpFamily::Elementwise, |(_, c)| *c);
    let check = format!("ops/{name}");
    if reference.len() != actual.len() {
        return Err(Failure::new(
            check,
            format!(
                "{} outputs on the cpu, {} on the backend",
                reference.len(),
                actual.len()
            ),
        ));
    }
    for ((rn, rs, rd), (an, as_, ad)) in reference.iter().zip(actual) {
        let what = format!("{check}/{rn}");
        if rn != an || rs != as_ {
            return Err(Failure::new(
                what,
                format!("expected output `{rn}` of shape {rs:?}, got `{an}` of shape {as_:?}"),
            ));
        }
        compare_host(&what, rs, rd, ad, tol.get(rd.dtype(), column))?;
    }
    Ok(())
}

/// Runs family `name` on `dev` and on the CPU and compares the outputs within `tol`.
pub fn check_family<B: Backend>(dev: &B, name: &str, tol: &ToleranceTable) -> Result<(), Failure> {
    let reference = run_family(&Cpu, name)?;
    let actual = run_family(dev, name)?;
    compare_outputs(name, &reference, &actual, tol)
}

/// Every family of [`FAMILIES`] on `dev` against the CPU; all failures, one per failing
/// family (so that one unfinished family does not hide the others).
pub fn check_ops<B: Backend>(dev: &B, tol: &ToleranceTable) -> Result<(), Vec<Failure>> {
    let failures: Vec<Failure> = FAMILIES
        .iter()
        .filter_map(|(name, _)| check_family(dev, name, tol).err())
        .collect();
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures)
    }
}
