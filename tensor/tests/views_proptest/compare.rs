//! Comparing an op on a view with the op on its contiguous copy, and the proptest config.

use crate::T;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

fn bits(t: &T) -> Vec<u64> {
    t.to_f64_vec()
        .unwrap()
        .iter()
        .map(|x| x.to_bits())
        .collect()
}

/// Same shape, dtype and bit-identical elements.
pub(crate) fn same(what: &str, a: &T, b: &T) -> Result<(), TestCaseError> {
    prop_assert_eq!(a.shape(), b.shape(), "{}: shapes", what);
    prop_assert_eq!(a.dtype(), b.dtype(), "{}: dtypes", what);
    prop_assert!(
        bits(a) == bits(b),
        "{}: view gives {:?}, contiguous gives {:?}",
        what,
        a.to_f64_vec().unwrap(),
        b.to_f64_vec().unwrap()
    );
    Ok(())
}

/// Same shape and dtype, elements within 1e-12 relative.
pub(crate) fn near(what: &str, a: &T, b: &T) -> Result<(), TestCaseError> {
    prop_assert_eq!(a.shape(), b.shape(), "{}: shapes", what);
    prop_assert_eq!(a.dtype(), b.dtype(), "{}: dtypes", what);
    let (x, y) = (a.to_f64_vec().unwrap(), b.to_f64_vec().unwrap());
    for (p, q) in x.iter().zip(&y) {
        prop_assert!(
            (p - q).abs() <= 1e-12 * (1.0 + q.abs()) || (p.is_nan() && q.is_nan()),
            "{}: view gives {:?}, contiguous gives {:?}",
            what,
            x,
            y
        );
    }
    Ok(())
}

/// The contiguous copy of a view, checked to be one.
pub(crate) fn dense(v: &T) -> T {
    let c = v.contiguous().unwrap();
    assert!(c.is_contiguous());
    assert_eq!(c.to_f64_vec().unwrap(), v.to_f64_vec().unwrap());
    c
}

/// 64 cases, or `PROPTEST_CASES` if set (`.ci/memcheck.sh` runs this binary under valgrind
/// with fewer).
pub(crate) fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    ProptestConfig::with_cases(cases)
}
