//! SIGINT (Ctrl-C) and SIGTERM as a request to stop at the next safe point.
//!
//! [`install`] sets the handlers. Until [`defer`] is called the program has nothing worth
//! saving (it is loading data or building the model), so a signal ends the process at once
//! with the shell's code for it (130 for SIGINT, 143 for SIGTERM). After [`defer`] a signal
//! only sets a flag: the training loop, the k-NN evaluation and the output writers poll
//! [`interrupted`] between steps, batches and files, write a checkpoint and exit with
//! [`exit_code`]. A second signal while the first is being handled ends the process at once
//! (the last checkpoint, written atomically, stays loadable).
//!
//! [`test_pause`] is a test hook: `TESSERA_TEST_PAUSE=step=50,knn=300,ckpt=800` sleeps that
//! many milliseconds at each named point, so that tests can deliver a signal inside a phase
//! that is otherwise too short to hit.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

/// The first signal received (0: none).
static RECEIVED: AtomicI32 = AtomicI32::new(0);
/// Whether a signal is a request to poll (true) or ends the process at once (false).
static DEFERRED: AtomicBool = AtomicBool::new(false);

/// The exit code after SIGINT (128 + 2), as a shell reports it.
pub const EXIT_SIGINT: i32 = 130;
/// The exit code after SIGTERM (128 + 15).
pub const EXIT_SIGTERM: i32 = 143;
/// The exit code after Ctrl-C; see [`EXIT_SIGINT`].
pub const EXIT_INTERRUPTED: i32 = EXIT_SIGINT;

#[cfg(unix)]
extern "C" fn on_signal(sig: libc::c_int) {
    let first = RECEIVED
        .compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst)
        .is_ok();
    if first && DEFERRED.load(Ordering::SeqCst) {
        return;
    }
    if !first {
        let msg = b"\nsecond signal: stopping at once (the last checkpoint is kept)\n";
        // SAFETY: write(2) and _exit(2) are async-signal-safe; `msg` is a valid buffer.
        unsafe {
            libc::write(2, msg.as_ptr().cast(), msg.len());
        }
    }
    // SAFETY: _exit is async-signal-safe; nothing needs unwinding or flushing here.
    unsafe { libc::_exit(128 + sig) }
}

/// Installs the SIGINT and SIGTERM handlers (Unix; elsewhere Ctrl-C keeps its default
/// behaviour). Until [`defer`], a signal ends the process at once with 128 + its number.
pub fn install() {
    #[cfg(unix)]
    {
        let handler: extern "C" fn(libc::c_int) = on_signal;
        for sig in [libc::SIGINT, libc::SIGTERM] {
            // SAFETY: a zeroed sigaction is valid; the handler touches only atomics and
            // async-signal-safe calls. SA_RESTART: a file write in progress is not cut short
            // by EINTR, it completes and the program stops after it.
            unsafe {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = handler as libc::sighandler_t;
                sa.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut sa.sa_mask);
                libc::sigaction(sig, &sa, std::ptr::null_mut());
            }
        }
    }
}

/// From now on a signal is a request that the program polls with [`interrupted`]: it has
/// state (a model being trained) that a checkpoint should keep. A signal that arrived before
/// this call has already ended the process.
pub fn defer() {
    DEFERRED.store(true, Ordering::SeqCst);
}

/// Whether SIGINT or SIGTERM arrived since [`install`].
pub fn interrupted() -> bool {
    RECEIVED.load(Ordering::SeqCst) != 0
}

/// The name of the signal received, if any (`"SIGINT"` or `"SIGTERM"`).
pub fn received() -> Option<&'static str> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        #[cfg(unix)]
        libc::SIGTERM => Some("SIGTERM"),
        _ => Some("SIGINT"),
    }
}

/// The exit code for the signal received: 143 after SIGTERM, else 130.
pub fn exit_code() -> i32 {
    if received() == Some("SIGTERM") {
        EXIT_SIGTERM
    } else {
        EXIT_SIGINT
    }
}

/// Test hook: sleeps for the milliseconds that `TESSERA_TEST_PAUSE` gives `point` (a
/// comma-separated `point=ms` list, e.g. `step=50,knn=300,ckpt=800`); does nothing when the
/// variable is unset or does not name `point`. The points are `step` (after each training
/// step), `knn` (between k-NN batches) and `ckpt` (halfway through writing a checkpoint's
/// temporary file).
pub fn test_pause(point: &str) {
    static PAUSES: OnceLock<Vec<(String, u64)>> = OnceLock::new();
    let pauses = PAUSES.get_or_init(|| {
        std::env::var("TESSERA_TEST_PAUSE")
            .unwrap_or_default()
            .split(',')
            .filter_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                Some((k.trim().to_string(), v.trim().parse().ok()?))
            })
            .collect()
    });
    if let Some((_, ms)) = pauses.iter().find(|(k, _)| k == point) {
        std::thread::sleep(Duration::from_millis(*ms));
    }
}
