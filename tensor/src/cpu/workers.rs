//! A persistent pool of worker threads for the parallel kernels ([`super::parallel`]).
//!
//! Spawning scoped threads for every large op costs ~15-20 µs per thread; a ViT step runs
//! thousands of ops, and the profile of the default `dino_vit_s` step put ~6% of its CPU time
//! in `std::thread::scope`. The workers here are started once (`num_threads() - 1` of them)
//! and woken through a channel, so an op costs a wake-up instead of a spawn; a worker polls
//! for the next job, and the caller for the op's other tasks, for [`SPIN`] before sleeping,
//! so that back-to-back ops do not pay for a wake-up either. Which thread
//! computes which chunk does not change any result: the chunks are the same as before and
//! each is computed by the same code.
//!
//! Nested use (a task that itself runs a parallel op) and more tasks than workers fall back
//! to scoped threads, so the pool can never deadlock waiting on itself.

use std::boxed::Box;
use std::cell::Cell;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};
use std::vec::Vec;

/// A task of one parallel op, borrowing the op's inputs and its chunk of the output.
pub(crate) type Task<'a> = Box<dyn FnOnce() + Send + 'a>;

/// What a worker receives: the task with its lifetime erased (see [`run`]) and the latch to
/// count down when it is done.
type Job = (Task<'static>, Arc<Latch>);

/// Counts the tasks of one op still running, and whether one panicked.
///
/// The count is an atomic so that [`Latch::wait`] can spin on it for a few microseconds
/// before sleeping: most tasks of a training step take tens of microseconds, and waking a
/// sleeping thread costs about as much again on a virtual machine.
struct Latch {
    remaining: AtomicUsize,
    panicked: AtomicBool,
    lock: Mutex<()>,
    done: Condvar,
}

impl Latch {
    fn new(n: usize) -> Self {
        Latch {
            remaining: AtomicUsize::new(n),
            panicked: AtomicBool::new(false),
            lock: Mutex::new(()),
            done: Condvar::new(),
        }
    }

    fn count_down(&self, panicked: bool) {
        if panicked {
            self.panicked.store(true, Ordering::Release);
        }
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            // Taking the lock orders this notification after a waiter's last check of the
            // count (it checks under the lock), so the wake-up cannot be lost.
            let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
            self.done.notify_all();
        }
    }

    /// Blocks until every task is done; true if one panicked.
    fn wait(&self) -> bool {
        let finished = || self.remaining.load(Ordering::Acquire) == 0;
        if !spin_until(finished) {
            let mut guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
            while !finished() {
                guard = self.done.wait(guard).unwrap_or_else(|e| e.into_inner());
            }
        }
        self.panicked.load(Ordering::Acquire)
    }
}

/// How long a thread polls for the next job or for its op's other tasks before it sleeps.
/// Long enough to bridge the serial bookkeeping between two parallel ops of a step (a few to
/// a few tens of microseconds), short enough that an idle pool or an oversubscribed machine
/// loses little.
const SPIN: Duration = Duration::from_micros(50);

/// Polls `ready` for up to [`SPIN`]; whether it became true.
fn spin_until(mut ready: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        for _ in 0..64 {
            if ready() {
                return true;
            }
            core::hint::spin_loop();
        }
        if start.elapsed() >= SPIN {
            return ready();
        }
    }
}

std::thread_local! {
    /// True on the pool's workers: a parallel op started there runs on scoped threads.
    static IN_WORKER: Cell<bool> = const { Cell::new(false) };
}

/// The workers' queues, started at the first use.
fn workers() -> &'static [Sender<Job>] {
    static WORKERS: OnceLock<Vec<Sender<Job>>> = OnceLock::new();
    WORKERS.get_or_init(|| {
        let n = super::parallel::num_threads().saturating_sub(1);
        let mut senders = Vec::with_capacity(n);
        for i in 0..n {
            let (tx, rx) = channel::<Job>();
            let spawned = std::thread::Builder::new()
                .name(std::format!("tessera-worker-{i}"))
                .spawn(move || {
                    IN_WORKER.with(|w| w.set(true));
                    while let Some((task, latch)) = next_job(&rx) {
                        let panicked = catch_unwind(AssertUnwindSafe(task)).is_err();
                        latch.count_down(panicked);
                    }
                });
            // A worker the system refuses leaves fewer workers: ops then use scoped threads.
            if spawned.is_ok() {
                senders.push(tx);
            }
        }
        senders
    })
}

/// The next job of a worker: polled for [`SPIN`] (the next op of a step usually follows
/// within microseconds), then waited for asleep; `None` once the pool is gone.
fn next_job(rx: &Receiver<Job>) -> Option<Job> {
    let mut job = None;
    let mut closed = false;
    spin_until(|| match rx.try_recv() {
        Ok(j) => {
            job = Some(j);
            true
        }
        Err(TryRecvError::Disconnected) => {
            closed = true;
            true
        }
        Err(TryRecvError::Empty) => false,
    });
    if job.is_some() || closed {
        return job;
    }
    rx.recv().ok()
}

/// Runs `tasks` on the workers and `local` on the calling thread, and returns when all are
/// done; a panic in any of them is resumed here after all have finished.
pub(crate) fn run<'a>(tasks: Vec<Task<'a>>, local: impl FnOnce()) {
    let pool = workers();
    if IN_WORKER.with(|w| w.get()) || tasks.len() > pool.len() {
        std::thread::scope(|s| {
            for t in tasks {
                s.spawn(t);
            }
            local();
        });
        return;
    }
    let latch = Arc::new(Latch::new(tasks.len()));
    for (task, worker) in tasks.into_iter().zip(pool) {
        // SAFETY: the task borrows data that lives at least as long as `'a`, which outlives
        // this call; this function does not return (nor unwind) before `latch.wait()` has
        // seen every task finish, so no borrow is used after it ends. A task that cannot be
        // sent is run here instead, also before returning.
        let task: Task<'static> = unsafe { core::mem::transmute::<Task<'a>, Task<'static>>(task) };
        if let Err(std::sync::mpsc::SendError((task, latch))) = worker.send((task, latch.clone())) {
            let panicked = catch_unwind(AssertUnwindSafe(task)).is_err();
            latch.count_down(panicked);
        }
    }
    let local_result = catch_unwind(AssertUnwindSafe(local));
    let worker_panicked = latch.wait();
    if let Err(payload) = local_result {
        resume_unwind(payload);
    }
    if worker_panicked {
        panic!("a parallel CPU kernel panicked on a worker thread");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_task_runs_before_run_returns() {
        for _ in 0..100 {
            let mut out = [0u32; 8];
            let (a, b) = out.split_at_mut(4);
            let tasks: Vec<Task<'_>> = std::vec![Box::new(move || a.fill(1))];
            run(tasks, || b.fill(2));
            assert_eq!(out, [1, 1, 1, 1, 2, 2, 2, 2]);
        }
    }

    #[test]
    fn a_panicking_task_panics_the_caller_after_all_finish() {
        let r = std::panic::catch_unwind(|| {
            let tasks: Vec<Task<'_>> = std::vec![Box::new(|| panic!("boom"))];
            run(tasks, || {});
        });
        assert!(r.is_err());
        // The pool still works afterwards.
        let mut x = 0;
        let tasks: Vec<Task<'_>> = std::vec![Box::new(|| {})];
        run(tasks, || x = 1);
        assert_eq!(x, 1);
    }
}
