//! Running `gradcheck` in f64 with readable failure reports, and comparing gradients.

use super::inputs::{unravel, Input};
use super::{T, V};
use tessera::autograd::{gradcheck, GradcheckOptions};
use tessera::tensor::Result;

/// Checks `f`'s gradients at `inputs` against central differences (full Jacobian, f64,
/// PyTorch's default tolerances); panics with a readable report on failure.
///
/// `f` receives one `Var` per input, already broadcast for `Expanded` inputs.
pub fn check<F>(name: &str, f: F, inputs: &[Input])
where
    F: Fn(&[V]) -> Result<V>,
{
    check_with(name, f, inputs, &GradcheckOptions::default());
}

/// [`check`] in fast mode (`vᵀ J u` for random `u`, `v`), for large compositions: three
/// independent projections.
pub fn check_fast<F>(name: &str, f: F, inputs: &[Input])
where
    F: Fn(&[V]) -> Result<V>,
{
    for seed in 0..3 {
        let opts = GradcheckOptions {
            fast_mode: true,
            seed,
            ..GradcheckOptions::default()
        };
        check_with(name, &f, inputs, &opts);
    }
}

/// [`check`] with explicit options.
pub fn check_with<F>(name: &str, f: F, inputs: &[Input], opts: &GradcheckOptions)
where
    F: Fn(&[V]) -> Result<V>,
{
    let leaves: Vec<T> = inputs.iter().map(|i| i.leaf.clone()).collect();
    let wrapped = |vs: &[V]| -> Result<V> {
        let seen = vs
            .iter()
            .zip(inputs)
            .map(|(v, i)| i.view(v))
            .collect::<Result<Vec<V>>>()?;
        f(&seen)
    };
    if let Err(failure) = gradcheck(wrapped, &leaves, opts) {
        let mode = if opts.fast_mode {
            format!("fast mode, seed {}", opts.seed)
        } else {
            "full Jacobian".to_string()
        };
        let list: Vec<String> = inputs
            .iter()
            .enumerate()
            .map(|(k, i)| format!("    input {k}: {i:?}"))
            .collect();
        panic!(
            "gradient check `{name}` ({mode}) failed:\n  {failure}\n  inputs:\n{}",
            list.join("\n")
        );
    }
}

/// Asserts that two gradients agree elementwise within `tol(reference)`, naming the element.
pub fn assert_close(what: &str, got: &T, want: &T, atol: f64, rtol: f64) {
    assert_eq!(got.shape(), want.shape(), "{what}: shape");
    let (g, w) = (got.to_f64_vec().unwrap(), want.to_f64_vec().unwrap());
    for (k, (a, b)) in g.iter().zip(&w).enumerate() {
        assert!(
            (a - b).abs() <= atol + rtol * b.abs(),
            "{what}: element {:?}: got {a:e}, want {b:e}",
            unravel(k, want.shape())
        );
    }
}
