//! Where a training step's time goes: wall-clock totals per backward op and per named phase
//! of the step (PyTorch: `torch.profiler.profile()` with `key_averages()`, and
//! `torch.profiler.record_function` for the phases).
//!
//! Off by default, and then free: one relaxed atomic load per op. [`enable`] turns it on for
//! the whole process, [`take`] returns what was recorded since and clears it. While it is on:
//!
//! - the engine times each node's derivative ([`Backward::backward`](crate::Backward), under
//!   its [`name`](crate::Backward::name)) and each in-place add of a view's gradient into its
//!   input's pending gradient (under `"add in window"`);
//! - a [`phase`] guard times the part of a step it lives over, under the caller's name (the
//!   DINO and BYOL trainers name theirs: `"teacher forward"`, `"backward"`, `"clip"`, ...).
//!
//! A backward phase's time minus its ops' is the engine's own work (scheduling, summing
//! gradients that arrive from several users, the leaves' copies). On an asynchronous backend
//! every timed span first waits for the device ([`Backend::synchronize`]), so a time is the
//! work's and not its launch's; those waits cost time of their own, so profile apart from
//! benchmarking. Without `std` there is no clock: everything here is a no-op and [`take`] is
//! absent.
//!
//! ```
//! use tessera_autograd::{profile, Var};
//! use tessera_tensor::{Cpu, Tensor};
//! # fn main() -> tessera_tensor::Result<()> {
//! profile::enable();
//! let w = Var::leaf(Tensor::from_vec(vec![0.5f32, -1.0], &[2, 1], &Cpu)?);
//! let x = Var::constant(Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[2, 2], &Cpu)?);
//! let loss = {
//!     let _forward = profile::phase(&Cpu, "forward");
//!     x.matmul(&w)?.square()?.mean(&[], false)?
//! };
//! {
//!     let _backward = profile::phase(&Cpu, "backward");
//!     loss.backward_consume()?;
//! }
//! profile::disable();
//! let report = profile::take();
//! assert!(report.phases.iter().any(|p| p.name == "backward" && p.calls == 1));
//! assert!(report.backward_ops.iter().any(|op| op.name == "matmul"));
//! println!("{report}"); // one table: phases in order, then ops by total time
//! # Ok(()) }
//! ```

use tessera_tensor::Backend;

#[cfg(feature = "std")]
pub use imp::{take, Entry, Profile};

/// Starts recording (process-wide).
pub fn enable() {
    #[cfg(feature = "std")]
    imp::ENABLED.store(true, core::sync::atomic::Ordering::Relaxed);
}

/// Stops recording; what was recorded stays until [`take`].
pub fn disable() {
    #[cfg(feature = "std")]
    imp::ENABLED.store(false, core::sync::atomic::Ordering::Relaxed);
}

/// Whether recording is on.
#[inline]
pub fn is_enabled() -> bool {
    #[cfg(feature = "std")]
    return imp::ENABLED.load(core::sync::atomic::Ordering::Relaxed);
    #[cfg(not(feature = "std"))]
    false
}

/// Times the scope it lives over under `name`, if recording is on (see the module docs).
/// `backend` is the device whose work the phase issues: it is synchronized at both ends.
#[must_use = "the phase ends when the guard is dropped"]
pub fn phase<'a, B: Backend>(backend: &'a B, name: &'static str) -> Phase<'a, B> {
    Phase {
        #[cfg(feature = "std")]
        started: is_enabled().then(|| imp::start(backend)),
        backend,
        name,
    }
}

/// The guard [`phase`] returns; records when dropped.
pub struct Phase<'a, B: Backend> {
    backend: &'a B,
    name: &'static str,
    #[cfg(feature = "std")]
    started: Option<std::time::Instant>,
}

impl<B: Backend> core::fmt::Debug for Phase<'_, B> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Phase")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl<B: Backend> Drop for Phase<'_, B> {
    fn drop(&mut self) {
        #[cfg(feature = "std")]
        if let Some(t0) = self.started {
            imp::record(imp::Kind::Phase, self.name, imp::stop(self.backend, t0));
        }
        #[cfg(not(feature = "std"))]
        let _ = (self.backend, self.name);
    }
}

/// Runs `f`, timed under `name` as a backward op when recording is on.
#[inline]
pub(crate) fn backward_op<B: Backend, R>(
    backend: &B,
    name: &'static str,
    f: impl FnOnce() -> R,
) -> R {
    #[cfg(feature = "std")]
    if is_enabled() {
        let t0 = imp::start(backend);
        let r = f();
        imp::record(imp::Kind::BackwardOp, name, imp::stop(backend, t0));
        return r;
    }
    let _ = (backend, name);
    f()
}

#[cfg(feature = "std")]
mod imp {
    use core::fmt;
    use core::sync::atomic::AtomicBool;
    use std::sync::Mutex;
    use std::time::{Duration, Instant};
    use std::vec::Vec;
    use tessera_tensor::Backend;

    pub(super) static ENABLED: AtomicBool = AtomicBool::new(false);
    static RECORDED: Mutex<Profile> = Mutex::new(Profile {
        phases: Vec::new(),
        backward_ops: Vec::new(),
    });

    #[derive(Clone, Copy)]
    pub(super) enum Kind {
        Phase,
        BackwardOp,
    }

    /// One name's total.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct Entry {
        /// The phase's or the op's name.
        pub name: &'static str,
        /// How many spans were timed under it.
        pub calls: u64,
        /// Their summed wall-clock time.
        pub total: Duration,
    }

    /// What [`take`] returns. `Display` prints one table: the phases in the order they were
    /// first seen, then the backward ops by total time, each with calls, total and share.
    #[derive(Clone, Debug, Default, PartialEq, Eq)]
    pub struct Profile {
        /// Named phases ([`phase`](super::phase)), in the order first seen.
        pub phases: Vec<Entry>,
        /// Backward ops, by total time, longest first.
        pub backward_ops: Vec<Entry>,
    }

    impl Profile {
        /// Every total divided by `n` (per step, after `n` steps); calls are rounded.
        pub fn per(&self, n: u32) -> Profile {
            let n = n.max(1);
            let div = |e: &Entry| Entry {
                name: e.name,
                calls: (e.calls + u64::from(n) / 2) / u64::from(n),
                total: e.total / n,
            };
            Profile {
                phases: self.phases.iter().map(div).collect(),
                backward_ops: self.backward_ops.iter().map(div).collect(),
            }
        }
    }

    impl fmt::Display for Profile {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            let ms = |d: Duration| d.as_secs_f64() * 1e3;
            let section = |f: &mut fmt::Formatter<'_>, title: &str, rows: &[Entry]| {
                let sum: f64 = rows.iter().map(|e| ms(e.total)).sum();
                writeln!(f, "{title:<34} {:>7} {:>11} {:>7}", "calls", "ms", "share")?;
                for e in rows {
                    let share = if sum > 0.0 {
                        ms(e.total) / sum * 100.0
                    } else {
                        0.0
                    };
                    let (name, calls, t) = (e.name, e.calls, ms(e.total));
                    writeln!(f, "  {name:<32} {calls:>7} {t:>11.2} {share:>6.1}%")?;
                }
                writeln!(f, "  {:<32} {:>7} {sum:>11.2}", "(sum)", "")
            };
            section(f, "phase", &self.phases)?;
            section(f, "backward op", &self.backward_ops)
        }
    }

    /// What has been recorded since the last call (or since the process started), cleared.
    pub fn take() -> Profile {
        let mut p = core::mem::take(&mut *lock());
        p.backward_ops.sort_by_key(|e| core::cmp::Reverse(e.total));
        p
    }

    fn lock() -> std::sync::MutexGuard<'static, Profile> {
        // A panic while recording leaves totals that are still valid sums.
        RECORDED.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The device's queue drained (a failing synchronize only loses accuracy), then the time.
    pub(super) fn start<B: Backend>(backend: &B) -> Instant {
        let _ = backend.synchronize();
        Instant::now()
    }

    pub(super) fn stop<B: Backend>(backend: &B, t0: Instant) -> Duration {
        let _ = backend.synchronize();
        t0.elapsed()
    }

    pub(super) fn record(kind: Kind, name: &'static str, took: Duration) {
        let mut p = lock();
        let rows = match kind {
            Kind::Phase => &mut p.phases,
            Kind::BackwardOp => &mut p.backward_ops,
        };
        match rows.iter_mut().find(|e| e.name == name) {
            Some(e) => {
                e.calls += 1;
                e.total += took;
            }
            None => rows.push(Entry {
                name,
                calls: 1,
                total: took,
            }),
        }
    }
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;
    use crate::Var;
    use tessera_tensor::{Cpu, Tensor};

    /// The only test that turns the process-wide switch on (tests share the process).
    #[test]
    fn records_phases_and_backward_ops_only_while_enabled() {
        let run = || {
            let x = Var::leaf(Tensor::from_vec(vec![1.0f64, -2.0, 3.0], &[3], &Cpu).unwrap());
            let y = {
                let _p = phase(&Cpu, "forward");
                x.exp().unwrap().sum(&[], false).unwrap()
            };
            let _p = phase(&Cpu, "backward");
            y.backward_consume().unwrap();
        };
        take();
        run();
        assert_eq!(take(), Profile::default(), "nothing is recorded while off");
        enable();
        run();
        run();
        disable();
        run();
        let p = take();
        let names: Vec<&str> = p.phases.iter().map(|e| e.name).collect();
        assert_eq!(names, ["forward", "backward"]);
        assert!(p.phases.iter().all(|e| e.calls == 2));
        // Other tests' backward passes may run while it is on: at least this test's calls.
        let ops: Vec<(&str, u64)> = p.backward_ops.iter().map(|e| (e.name, e.calls)).collect();
        for op in ["unary", "sum"] {
            assert!(
                ops.iter().any(|&(n, c)| n == op && c >= 2),
                "{op} in {ops:?}"
            );
        }
        let per = p.per(2);
        assert!(per.phases.iter().all(|e| e.calls == 1));
        let table = p.to_string();
        assert!(
            table.contains("backward op") && table.contains("unary"),
            "{table}"
        );
        assert_eq!(take(), Profile::default(), "take clears");
    }
}
