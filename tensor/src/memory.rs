//! A process-wide memory budget for tensor allocations.
//!
//! Every allocation whose size comes from a caller (a shape passed to [`Tensor::zeros`], an
//! output a kernel sizes from its inputs) is checked here first, so that a request that is too
//! large becomes an [`Error::Device`] naming the op, instead of an allocator abort or a
//! capacity-overflow panic. There is always a hard bound of `isize::MAX` bytes (what Rust can
//! allocate at all); [`set_memory_limit`] adds a lower one, e.g. to turn a runaway shape into
//! an error long before the machine starts swapping.
//!
//! The limit is one atomic word, so it works without `std` (only pointer-width core atomics).
//! It bounds each single allocation, not the sum of live ones.
//!
//! [`Tensor::zeros`]: crate::Tensor::zeros

use crate::{DType, Error, Result};
use core::sync::atomic::{AtomicUsize, Ordering};

/// The limit in bytes; `usize::MAX` stands for "none" (the `isize::MAX` bound still holds).
static LIMIT: AtomicUsize = AtomicUsize::new(usize::MAX);

/// Sets the largest single allocation, in bytes, that tensor ops may request (`None`: no
/// limit beyond `isize::MAX`). Applies to the whole process.
pub fn set_memory_limit(bytes: Option<usize>) {
    LIMIT.store(bytes.unwrap_or(usize::MAX), Ordering::Relaxed);
}

/// The limit set by [`set_memory_limit`], if any.
pub fn memory_limit() -> Option<usize> {
    match LIMIT.load(Ordering::Relaxed) {
        usize::MAX => None,
        b => Some(b),
    }
}

/// Checks that `elements` elements of `dtype` may be allocated by `op`: an error naming the op,
/// the bytes asked for and the limit if the size overflows, exceeds `isize::MAX` bytes or
/// exceeds the limit set by [`set_memory_limit`].
pub fn check_alloc(op: &'static str, elements: usize, dtype: DType) -> Result<()> {
    let bytes = elements.checked_mul(dtype.size_in_bytes());
    let hard = isize::MAX as usize;
    let limit = memory_limit().map_or(hard, |l| l.min(hard));
    match bytes {
        Some(b) if b <= limit => Ok(()),
        _ => Err(Error::Device {
            msg: crate::__format!(
                "{op}: cannot allocate {elements} {dtype} elements ({}): the limit is {limit} bytes{}",
                bytes.map_or_else(
                    || "more than usize::MAX bytes".into(),
                    |b| crate::__format!("{b} bytes")
                ),
                if memory_limit().is_some() {
                    " (set_memory_limit)"
                } else {
                    " (isize::MAX)"
                }
            ),
        }),
    }
}
