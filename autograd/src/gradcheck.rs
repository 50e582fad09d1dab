//! Gradient checking by finite differences (PyTorch: `torch.autograd.gradcheck`).
//!
//! [`gradcheck`] compares the Jacobian that backward computes (*analytic*, one row per output
//! element, from one-hot output gradients) with central differences (*numeric*, one column
//! per input element: `(f(x + eps·e_k) - f(x - eps·e_k)) / 2eps`). It also checks that
//! backward is deterministic (run twice, bitwise equal), that a zero output gradient gives
//! zero input gradients, and that gradients have their inputs' shapes and dtypes.
//!
//! Inputs must be F64: in f32 the rounding error of a difference quotient swamps the
//! tolerance. Perturbed inputs are built on the host and uploaded again, so the checker runs
//! on any backend. Every input is differentiated; pass non-differentiable arguments (index
//! tensors, masks) by capturing them in the closure.
//!
//! The full Jacobian costs `2·numel(inputs)` evaluations and `2·numel(output)` backward
//! passes; for large functions set [`GradcheckOptions::fast_mode`], which compares one
//! number per input, `vᵀ J u` for seeded random `u` and `v`: one backward pass against one
//! directional difference.

use crate::{Gradients, Var};
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;
use tessera_tensor::{Backend, DType, Error, Result, Tensor};

/// Tolerances and mode of [`gradcheck`]; the defaults are PyTorch's.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GradcheckOptions {
    /// Finite-difference step.
    pub eps: f64,
    /// Absolute tolerance.
    pub atol: f64,
    /// Relative tolerance, relative to the numeric value.
    pub rtol: f64,
    /// Compare `vᵀ J u` for random `u`, `v` instead of the whole Jacobian.
    pub fast_mode: bool,
    /// Seed of the random `u` and `v` in fast mode.
    pub seed: u64,
}

impl Default for GradcheckOptions {
    fn default() -> Self {
        GradcheckOptions {
            eps: 1e-6,
            atol: 1e-5,
            rtol: 1e-3,
            fast_mode: false,
            seed: 0,
        }
    }
}

/// Why a gradient check failed. `Display` gives a self-contained report.
#[derive(Clone, Debug, PartialEq)]
pub enum GradcheckFailure {
    /// The options are unusable (e.g. `eps <= 0`).
    InvalidOptions { reason: String },
    /// An input the checker cannot use (not F64, a broadcast view, ...).
    InvalidInput { input: usize, reason: String },
    /// The output is not an F64 tensor, or perturbed evaluations changed its shape.
    InvalidOutput { reason: String },
    /// The function or a backward pass returned an error.
    Failed { stage: &'static str, error: Error },
    /// A gradient whose shape or dtype differs from its input's.
    GradientShape {
        input: usize,
        expected: (Vec<usize>, DType),
        got: (Vec<usize>, DType),
    },
    /// One entry of the analytic and numeric Jacobians differs.
    JacobianMismatch {
        input: usize,
        input_element: Vec<usize>,
        output_element: Vec<usize>,
        analytic: f64,
        numeric: f64,
        tolerance: f64,
    },
    /// Fast mode: `vᵀ J u` differs for one input.
    ProjectionMismatch {
        input: usize,
        analytic: f64,
        numeric: f64,
        tolerance: f64,
    },
    /// Two backward passes with the same output gradient disagreed.
    Nondeterministic {
        input: usize,
        input_element: Vec<usize>,
        first: f64,
        second: f64,
    },
    /// A zero output gradient produced a non-zero input gradient.
    NonzeroForZeroGradient {
        input: usize,
        input_element: Vec<usize>,
        value: f64,
    },
}

impl fmt::Display for GradcheckFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use GradcheckFailure::*;
        write!(f, "gradcheck failed: ")?;
        match self {
            InvalidOptions { reason } => write!(f, "invalid options: {reason}"),
            InvalidInput { input, reason } => write!(f, "input {input}: {reason}"),
            InvalidOutput { reason } => write!(f, "output: {reason}"),
            Failed { stage, error } => write!(f, "{stage} returned an error: {error}"),
            GradientShape {
                input,
                expected,
                got,
            } => write!(
                f,
                "input {input} is {:?} {} but its gradient is {:?} {}",
                expected.0, expected.1, got.0, got.1
            ),
            JacobianMismatch {
                input,
                input_element,
                output_element,
                analytic,
                numeric,
                tolerance,
            } => write!(
                f,
                "Jacobian mismatch for input {input} at element {input_element:?}, output \
                 element {output_element:?}: analytic {analytic:e} vs numeric {numeric:e} \
                 (|difference| {:e} > tolerance {tolerance:e})",
                abs(analytic - numeric)
            ),
            ProjectionMismatch {
                input,
                analytic,
                numeric,
                tolerance,
            } => write!(
                f,
                "fast mode: vᵀJu for input {input}: analytic {analytic:e} vs numeric \
                 {numeric:e} (|difference| {:e} > tolerance {tolerance:e})",
                abs(analytic - numeric)
            ),
            Nondeterministic {
                input,
                input_element,
                first,
                second,
            } => write!(
                f,
                "backward is not deterministic: input {input} element {input_element:?} got \
                 {first:e} then {second:e} for the same output gradient"
            ),
            NonzeroForZeroGradient {
                input,
                input_element,
                value,
            } => write!(
                f,
                "a zero output gradient gave input {input} element {input_element:?} the \
                 gradient {value:e}"
            ),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for GradcheckFailure {}

/// `|x|` without `std` (core's float methods need it on older toolchains).
fn abs(x: f64) -> f64 {
    if x < 0.0 {
        -x
    } else {
        x
    }
}

/// Row-major multi-index of a flat position, for reports.
fn unravel(mut flat: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for (i, &d) in shape.iter().enumerate().rev() {
        if d > 0 {
            idx[i] = flat % d;
            flat /= d;
        }
    }
    idx
}

/// A small seeded generator (splitmix64) for fast mode's random vectors: the checker must
/// not depend on anything but the backend's transfers.
pub(crate) struct SplitMix(pub(crate) u64);

impl SplitMix {
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `[lo, hi)`.
    pub(crate) fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        let unit = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        lo + (hi - lo) * unit
    }
}

/// The function under test with its inputs, the host copies perturbations start from.
struct Problem<'a, B: Backend, F> {
    f: F,
    inputs: &'a [Tensor<B>],
    hosts: Vec<Vec<f64>>,
    out_shape: Vec<usize>,
}

impl<B: Backend, F: Fn(&[Var<B>]) -> Result<Var<B>>> Problem<'_, B, F> {
    /// `f` at the inputs with `input` moved by `step * direction`, as constants (no graph).
    fn eval_moved(&self, input: usize, step: f64, direction: &[f64]) -> Checked<Vec<f64>> {
        let fail = |error| GradcheckFailure::Failed {
            stage: "the function (at a perturbed input)",
            error,
        };
        let mut args = Vec::with_capacity(self.inputs.len());
        for (i, t) in self.inputs.iter().enumerate() {
            let t = if i == input {
                let moved: Vec<f64> = (self.hosts[i].iter().zip(direction))
                    .map(|(x, d)| x + step * d)
                    .collect();
                Tensor::from_vec(moved, t.shape(), t.backend()).map_err(fail)?
            } else {
                t.clone()
            };
            args.push(Var::constant(t));
        }
        let y = (self.f)(&args).map_err(fail)?;
        if y.value().shape() != self.out_shape.as_slice() || y.value().dtype() != DType::F64 {
            return Err(GradcheckFailure::InvalidOutput {
                reason: alloc::format!(
                    "a perturbed evaluation returned {:?} {}, the unperturbed one {:?} F64",
                    y.value().shape(),
                    y.value().dtype(),
                    self.out_shape
                ),
            });
        }
        y.value().to_f64_vec().map_err(fail)
    }

    /// The directional derivative `J_input · direction` by central differences.
    fn directional(&self, input: usize, eps: f64, direction: &[f64]) -> Checked<Vec<f64>> {
        let plus = self.eval_moved(input, eps, direction)?;
        let minus = self.eval_moved(input, -eps, direction)?;
        Ok(plus
            .iter()
            .zip(&minus)
            .map(|(p, m)| (p - m) / (2.0 * eps))
            .collect())
    }
}

type Checked<T> = core::result::Result<T, GradcheckFailure>;

/// Input gradients (host, F64, zeros where the output does not depend on an input) for one
/// output gradient, with shape and dtype checks.
fn vjp<B: Backend>(y: &Var<B>, leaves: &[Var<B>], v: &[f64]) -> Checked<Vec<Vec<f64>>> {
    let fail = |error| GradcheckFailure::Failed {
        stage: "backward",
        error,
    };
    let out = y.value();
    let v = Tensor::from_vec(v.to_vec(), out.shape(), out.backend()).map_err(fail)?;
    let grads: Option<Gradients<B>> = match y.requires_grad() {
        true => Some(y.backward_with(&v).map_err(fail)?),
        false => None,
    };
    let mut rows = Vec::with_capacity(leaves.len());
    for (i, leaf) in leaves.iter().enumerate() {
        let x = leaf.value();
        match grads.as_ref().and_then(|g| g.get(leaf)) {
            None => rows.push(vec![0.0; x.numel()]),
            Some(g) => {
                if g.shape() != x.shape() || g.dtype() != x.dtype() {
                    return Err(GradcheckFailure::GradientShape {
                        input: i,
                        expected: (x.shape().to_vec(), x.dtype()),
                        got: (g.shape().to_vec(), g.dtype()),
                    });
                }
                rows.push(g.to_f64_vec().map_err(fail)?);
            }
        }
    }
    Ok(rows)
}

/// [`vjp`] twice, checking that the two passes agree bit for bit.
fn vjp_twice<B: Backend>(y: &Var<B>, leaves: &[Var<B>], v: &[f64]) -> Checked<Vec<Vec<f64>>> {
    let first = vjp(y, leaves, v)?;
    let second = vjp(y, leaves, v)?;
    for (input, (a, b)) in first.iter().zip(&second).enumerate() {
        if let Some(k) = (0..a.len()).find(|&k| a[k].to_bits() != b[k].to_bits()) {
            return Err(GradcheckFailure::Nondeterministic {
                input,
                input_element: unravel(k, leaves[input].value().shape()),
                first: a[k],
                second: b[k],
            });
        }
    }
    Ok(first)
}

fn within(analytic: f64, numeric: f64, o: &GradcheckOptions) -> core::result::Result<(), f64> {
    let tolerance = o.atol + o.rtol * abs(numeric);
    // Written so that NaN on either side fails.
    if abs(analytic - numeric) <= tolerance {
        Ok(())
    } else {
        Err(tolerance)
    }
}

/// Checks the gradients of `f` at `inputs` against finite differences.
///
/// `f` receives one leaf [`Var`] per input and may return an output of any shape. Returns
/// the first failure found; see the module docs for what is checked.
///
/// ```
/// use tessera_autograd::{gradcheck, GradcheckOptions};
/// use tessera_tensor::{Cpu, Tensor};
/// # fn main() -> tessera_tensor::Result<()> {
/// let x = Tensor::from_vec(vec![0.5f64, -1.0, 2.0], &[3], &Cpu)?;
/// let w = Tensor::from_vec(vec![1.5f64, 0.25, -0.75], &[3], &Cpu)?;
/// let f = |v: &[tessera_autograd::Var<Cpu>]| v[0].mul(&v[1])?.tanh()?.sum(&[], false);
/// assert!(gradcheck(f, &[x, w], &GradcheckOptions::default()).is_ok());
/// # Ok(()) }
/// ```
pub fn gradcheck<B, F>(f: F, inputs: &[Tensor<B>], opts: &GradcheckOptions) -> Checked<()>
where
    B: Backend,
    F: Fn(&[Var<B>]) -> Result<Var<B>>,
{
    if !(opts.eps > 0.0 && opts.eps.is_finite() && opts.atol >= 0.0 && opts.rtol >= 0.0) {
        return Err(GradcheckFailure::InvalidOptions {
            reason: alloc::format!("need eps > 0, atol >= 0 and rtol >= 0, got {opts:?}"),
        });
    }
    if inputs.is_empty() {
        return Err(GradcheckFailure::InvalidOptions {
            reason: "no inputs to check".into(),
        });
    }
    let mut hosts = Vec::with_capacity(inputs.len());
    for (input, t) in inputs.iter().enumerate() {
        let reason = if t.dtype() != DType::F64 {
            Some(alloc::format!(
                "{:?} has dtype {}; gradcheck needs F64 (finite differences in lower \
                 precision are dominated by rounding)",
                t.shape(),
                t.dtype()
            ))
        } else if t.layout().has_zero_stride() {
            Some(alloc::format!(
                "{:?} with strides {:?} is a broadcast view (stride 0 on a dim of size > 1): \
                 perturbing one element would move several; pass a contiguous copy",
                t.shape(),
                t.layout().strides()
            ))
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(GradcheckFailure::InvalidInput { input, reason });
        }
        hosts.push(t.to_f64_vec().map_err(|error| GradcheckFailure::Failed {
            stage: "reading an input",
            error,
        })?);
    }
    let leaves: Vec<Var<B>> = inputs.iter().map(|t| Var::leaf(t.clone())).collect();
    let y = f(&leaves).map_err(|error| GradcheckFailure::Failed {
        stage: "the function",
        error,
    })?;
    if y.value().dtype() != DType::F64 {
        return Err(GradcheckFailure::InvalidOutput {
            reason: alloc::format!("dtype {}, expected F64", y.value().dtype()),
        });
    }
    let out_shape = y.value().shape().to_vec();
    let n_out = y.value().numel();
    let problem = Problem {
        f,
        inputs,
        hosts,
        out_shape,
    };

    // A zero output gradient must give exactly zero input gradients.
    let zeros = vjp(&y, &leaves, &vec![0.0; n_out])?;
    for (input, row) in zeros.iter().enumerate() {
        if let Some(k) = row.iter().position(|&g| g != 0.0) {
            return Err(GradcheckFailure::NonzeroForZeroGradient {
                input,
                input_element: unravel(k, inputs[input].shape()),
                value: row[k],
            });
        }
    }
    if opts.fast_mode {
        check_projections(&problem, &y, &leaves, opts)
    } else {
        check_jacobians(&problem, &y, &leaves, opts)
    }
}

fn check_jacobians<B, F>(
    p: &Problem<'_, B, F>,
    y: &Var<B>,
    leaves: &[Var<B>],
    opts: &GradcheckOptions,
) -> Checked<()>
where
    B: Backend,
    F: Fn(&[Var<B>]) -> Result<Var<B>>,
{
    let n_out = y.value().numel();
    // analytic[j][i][k] = d out_j / d input_i[k], one backward pass per output element.
    let mut analytic = Vec::with_capacity(n_out);
    let mut one_hot = vec![0.0; n_out];
    for j in 0..n_out {
        one_hot[j] = 1.0;
        analytic.push(vjp_twice(y, leaves, &one_hot)?);
        one_hot[j] = 0.0;
    }
    for (i, t) in p.inputs.iter().enumerate() {
        let mut e_k = vec![0.0; t.numel()];
        for k in 0..t.numel() {
            e_k[k] = 1.0;
            let column = p.directional(i, opts.eps, &e_k)?;
            e_k[k] = 0.0;
            for (j, &numeric) in column.iter().enumerate() {
                let a = analytic[j][i][k];
                within(a, numeric, opts).map_err(|tolerance| {
                    GradcheckFailure::JacobianMismatch {
                        input: i,
                        input_element: unravel(k, t.shape()),
                        output_element: unravel(j, &p.out_shape),
                        analytic: a,
                        numeric,
                        tolerance,
                    }
                })?;
            }
        }
    }
    Ok(())
}

fn check_projections<B, F>(
    p: &Problem<'_, B, F>,
    y: &Var<B>,
    leaves: &[Var<B>],
    opts: &GradcheckOptions,
) -> Checked<()>
where
    B: Backend,
    F: Fn(&[Var<B>]) -> Result<Var<B>>,
{
    let mut rng = SplitMix(opts.seed);
    let v: Vec<f64> = (0..y.value().numel())
        .map(|_| rng.uniform(-1.0, 1.0))
        .collect();
    let vj = vjp_twice(y, leaves, &v)?;
    for (i, t) in p.inputs.iter().enumerate() {
        let u: Vec<f64> = (0..t.numel()).map(|_| rng.uniform(-1.0, 1.0)).collect();
        let analytic: f64 = vj[i].iter().zip(&u).map(|(g, u)| g * u).sum();
        let ju = p.directional(i, opts.eps, &u)?;
        let numeric: f64 = ju.iter().zip(&v).map(|(d, v)| d * v).sum();
        within(analytic, numeric, opts).map_err(|tolerance| {
            GradcheckFailure::ProjectionMismatch {
                input: i,
                analytic,
                numeric,
                tolerance,
            }
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
