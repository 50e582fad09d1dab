//! Soundness: safe calls never read or write out of bounds, whatever layouts, shapes,
//! parameters and index values they get. Each call must give the right answer or an `Err`;
//! a panic or a crash fails the test. CI also runs this binary under valgrind
//! (`.ci/memcheck.sh`), which turns any out-of-bounds access into a failure even where it
//! happens not to crash.
//!
//! - `holes`: the specific holes this suite was written for, one test each.
//! - `layouts`, `primitives`: proptests over random and adversarial layouts (strides and
//!   offsets near `usize::MAX`, shapes whose product overflows, zero-size dims, stride 0),
//!   fed to `as_strided`, `Layout::try_from_parts` and the `Cpu` backend methods directly.
//! - `naive`: the reference (checked arithmetic, element by element) they compare against.
//! - `memory`: the process-wide allocation limit.
//!
//! The memory limit is process-global, so every test takes [`serial`] first: the memory
//! tests change it, and the proptests set a small one so that a valid but huge broadcast
//! view is refused instead of allocated.

mod holes;
mod layouts;
mod memory;
mod naive;
mod primitives;

use std::sync::{Mutex, MutexGuard};

static SERIAL: Mutex<()> = Mutex::new(());

/// Runs the calling test alone (a failed test poisons the lock; the others still run).
pub(crate) fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Sets the memory limit until dropped, then removes it (also when a test fails).
pub(crate) struct Limit;

pub(crate) fn limit(bytes: usize) -> Limit {
    tessera_tensor::set_memory_limit(Some(bytes));
    Limit
}

impl Drop for Limit {
    fn drop(&mut self) {
        tessera_tensor::set_memory_limit(None);
    }
}

/// Proptest cases: `PROPTEST_CASES` if set (the memcheck run sets it low), else `default`.
pub(crate) fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
