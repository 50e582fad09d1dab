//! Comparing a backend's results with the CPU reference, and the [`Failure`] every check
//! returns.

use crate::tolerance::Tolerance;
use core::fmt;
use tessera_tensor::{Backend, Cpu, DType, HostBuffer, Result as TResult, Tensor};

/// Why a check failed: which check, and a readable description (for a value mismatch, the
/// first mismatching element with its index, the expected and the actual value).
#[derive(Clone, Debug, PartialEq)]
pub struct Failure {
    /// The check and the case within it, e.g. `ops/unary/exp of a transposed view`.
    pub check: String,
    /// What went wrong.
    pub detail: String,
}

impl Failure {
    /// A failure of `check` described by `detail`.
    pub fn new(check: impl Into<String>, detail: impl Into<String>) -> Self {
        Failure {
            check: check.into(),
            detail: detail.into(),
        }
    }

    /// An error returned by an op (`Err` from the front end or the backend).
    pub fn error(check: impl Into<String>, e: impl fmt::Display) -> Self {
        Failure::new(check, format!("error: {e}"))
    }

    /// This failure with `prefix/` in front of its check name.
    pub fn within(mut self, prefix: &str) -> Self {
        self.check = format!("{prefix}/{}", self.check);
        self
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "check `{}` failed: {}", self.check, self.detail)
    }
}

impl std::error::Error for Failure {}

/// The multi-index of flat (row-major) position `flat` in `shape`.
pub fn unravel(mut flat: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for d in (0..shape.len()).rev() {
        if shape[d] > 0 {
            idx[d] = flat % shape[d];
            flat /= shape[d];
        }
    }
    idx
}

/// Compares `actual` with `expected` (row-major values of a tensor of `shape`) within `tol`;
/// on failure names the first mismatching element: its index, the expected and actual value,
/// the difference and the bound, and how many elements mismatch in all.
pub fn compare_values(
    what: &str,
    shape: &[usize],
    expected: &[f64],
    actual: &[f64],
    tol: Tolerance,
) -> Result<(), Failure> {
    if expected.len() != actual.len() {
        return Err(Failure::new(
            what,
            format!(
                "{} expected elements, {} actual (shape {shape:?})",
                expected.len(),
                actual.len()
            ),
        ));
    }
    let bad: Vec<usize> = (0..expected.len())
        .filter(|&k| !tol.accepts(expected[k], actual[k]))
        .collect();
    let Some(&k) = bad.first() else {
        return Ok(());
    };
    let (e, a) = (expected[k], actual[k]);
    Err(Failure::new(
        what,
        format!(
            "element {:?} (flat {k}) of shape {shape:?}: expected {e:e}, actual {a:e}, \
             |diff| {:e} > atol {:e} + rtol {:e} * |expected| = {:e} ({} of {} elements \
             mismatch)",
            unravel(k, shape),
            (a - e).abs(),
            tol.atol,
            tol.rtol,
            tol.bound(e),
            bad.len(),
            expected.len()
        ),
    ))
}

/// Compares two host buffers of `shape`: same dtype, then values within `tol`.
pub fn compare_host(
    what: &str,
    shape: &[usize],
    expected: &HostBuffer,
    actual: &HostBuffer,
    tol: Tolerance,
) -> Result<(), Failure> {
    if expected.dtype() != actual.dtype() {
        return Err(Failure::new(
            what,
            format!(
                "dtype: expected {}, actual {}",
                expected.dtype(),
                actual.dtype()
            ),
        ));
    }
    compare_values(
        what,
        shape,
        &expected.to_f64_vec(),
        &actual.to_f64_vec(),
        tol,
    )
}

/// Compares a tensor of any backend with a reference tensor (usually on [`Cpu`]): shape,
/// dtype, then values within `tol`.
pub fn compare_tensors<R: Backend, B: Backend>(
    what: &str,
    expected: &Tensor<R>,
    actual: &Tensor<B>,
    tol: Tolerance,
) -> Result<(), Failure> {
    if expected.shape() != actual.shape() {
        return Err(Failure::new(
            what,
            format!(
                "shape: expected {:?}, actual {:?}",
                expected.shape(),
                actual.shape()
            ),
        ));
    }
    let e = expected.to_host().map_err(|e| Failure::error(what, e))?;
    let a = actual.to_host().map_err(|e| Failure::error(what, e))?;
    compare_host(what, expected.shape(), &e, &a, tol)
}

/// Copies `t` (any backend, any layout) to the CPU backend, contiguous.
pub fn to_cpu<B: Backend>(t: &Tensor<B>) -> TResult<Tensor<Cpu>> {
    Tensor::from_host(t.to_host()?, t.shape(), &Cpu)
}

/// Copies a CPU tensor to `dev`, contiguous.
pub fn to_backend<B: Backend>(t: &Tensor<Cpu>, dev: &B) -> TResult<Tensor<B>> {
    Tensor::from_host(t.to_host()?, t.shape(), dev)
}

/// True for the float dtypes the tolerance table has rows for (F64, F32, F16, BF16).
pub fn is_float(dtype: DType) -> bool {
    matches!(dtype, DType::F64 | DType::F32 | DType::F16 | DType::BF16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mismatch_names_the_first_bad_element() {
        let e = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let a = [1.0, 2.0, 3.0, 4.5, 5.0, 7.0];
        let f = compare_values("x", &[2, 3], &e, &a, Tolerance::new(0.1, 0.0)).unwrap_err();
        assert_eq!(f.check, "x");
        assert!(
            f.detail
                .starts_with("element [1, 0] (flat 3) of shape [2, 3]: expected 4e0, actual 4.5e0"),
            "{f}"
        );
        assert!(f.detail.contains("(2 of 6 elements mismatch)"), "{f}");
        assert!(compare_values("x", &[2, 3], &e, &a, Tolerance::new(1.0, 0.0)).is_ok());
        let f = compare_values("x", &[2], &e[..2], &e, Tolerance::EXACT).unwrap_err();
        assert!(f.detail.contains("2 expected elements, 6 actual"), "{f}");
    }

    #[test]
    fn tensors_differ_in_shape_dtype_or_values() {
        let a = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[2, 2], &Cpu).unwrap();
        let tol = Tolerance::EXACT;
        assert!(compare_tensors("t", &a, &a.t().unwrap().t().unwrap(), tol).is_ok());
        let f = compare_tensors("t", &a, &a.reshape(&[4]).unwrap(), tol).unwrap_err();
        assert!(f.detail.starts_with("shape"), "{f}");
        let f = compare_tensors("t", &a, &a.to_dtype(DType::F64).unwrap(), tol).unwrap_err();
        assert!(f.detail.starts_with("dtype"), "{f}");
        let f = compare_tensors("t", &a, &a.t().unwrap().contiguous().unwrap(), tol).unwrap_err();
        assert!(f.detail.starts_with("element [0, 1]"), "{f}");
        assert_eq!(
            to_cpu(&a.t().unwrap()).unwrap().to_f64_vec().unwrap(),
            vec![1.0, 3.0, 2.0, 4.0]
        );
        assert_eq!(unravel(5, &[2, 3]), vec![1, 2]);
        assert_eq!(f.to_string(), format!("check `t` failed: {}", f.detail));
    }
}
