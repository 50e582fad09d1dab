//! Ctrl-C (SIGINT) as a flag: the training loop polls [`interrupted`] after each step, writes
//! a checkpoint and exits with [`EXIT_INTERRUPTED`].

use std::sync::atomic::{AtomicBool, Ordering};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// The exit code after Ctrl-C (128 + SIGINT), as a shell reports it.
pub const EXIT_INTERRUPTED: i32 = 130;

#[cfg(unix)]
extern "C" fn on_sigint(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Installs the SIGINT handler (Unix; elsewhere Ctrl-C keeps its default behaviour).
pub fn install() {
    #[cfg(unix)]
    {
        let handler: extern "C" fn(libc::c_int) = on_sigint;
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe {
            libc::signal(libc::SIGINT, handler as libc::sighandler_t);
        }
    }
}

/// Whether Ctrl-C was pressed since [`install`].
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}
