//! Machinery shared by the examples (`examples/dino_vit_s.rs`, ...): command-line flags
//! ([`args`]), the `--device` choice and the dispatch to a backend ([`device`]), dataset
//! loading with clear errors ([`data`]), photos as model inputs ([`images`]), per-epoch
//! metrics as JSON lines and a PNG plot ([`metrics`]), the ViT backbone of a checkpoint
//! ([`model`]), a progress line ([`progress`]), SIGINT/SIGTERM handling ([`signal`]),
//! checkpoints with metadata and the recorded configuration ([`ckpt`]), a training run's
//! start, resume, periodic checkpoints and stop on a signal ([`session`]) and the one-line
//! error reporting of `main` ([`RunError`], [`exit_on_error`]).
//!
//! # Backends
//!
//! Nothing here names a backend: every function that builds models, tensors, checkpoints,
//! trainers or evaluations is generic over [`tessera_tensor::Backend`] and takes the handle
//! `&B` on which the model's tensors live (host-side data, such as decoded images and their
//! augmentations, stays on the host until `stack_images` moves a batch to `B`). Checkpoints
//! go through the state dict on any backend: [`tessera_nn::Checkpoint`] copies every tensor
//! to the host to write it and creates the tensors on `B` when it reads.
//!
//! Each example writes its body once as a [`Program`] (`fn run<B: Backend>(self, backend:
//! B)`), and `main` calls [`Device::run`] with the parsed `--device`, which builds the
//! backend handle and runs the body on it. A new backend plugs in with:
//!
//! 1. a variant of [`Device`] and its spelling in [`Device::parse`] (`cuda[:N]` is already
//!    parsed);
//! 2. one match arm in [`Device::run`] that builds the handle and calls `program.run(handle)`
//!    (behind the backend's cargo feature; without it the arm is the error, as `--device
//!    cuda` is today: [`device::NO_CUDA`]).
//!
//! Needs the `std` feature.

pub mod args;
pub mod ckpt;
pub mod data;
pub mod device;
pub mod images;
pub mod metrics;
pub mod model;
pub mod options;
pub mod plot;
mod polled_eval;
pub mod precision;
pub mod progress;
pub mod session;
pub mod signal;
pub mod trace;

pub use device::{Device, Program};

use std::fmt;

/// A failed run: one line for the user, and the process exit code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunError {
    pub message: String,
    pub code: i32,
}

impl RunError {
    /// An error with exit code 1.
    pub fn new(message: impl Into<String>) -> Self {
        RunError {
            message: message.into(),
            code: 1,
        }
    }
    /// A usage error (bad flag), exit code 2.
    pub fn usage(message: impl Into<String>) -> Self {
        RunError {
            message: message.into(),
            code: 2,
        }
    }
    /// A stop on SIGINT or SIGTERM (after the state was saved): exit code 130 or 143
    /// ([`signal::exit_code`]); printed without the `error:` prefix.
    pub fn interrupted(message: impl Into<String>) -> Self {
        RunError {
            message: message.into(),
            code: signal::exit_code(),
        }
    }
    /// Whether this is a stop on a signal ([`RunError::interrupted`]).
    pub fn is_interruption(&self) -> bool {
        self.code == signal::EXIT_SIGINT || self.code == signal::EXIT_SIGTERM
    }
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for RunError {}

/// `Result` with a [`RunError`].
pub type Result<T> = core::result::Result<T, RunError>;

/// Wraps any displayable error with a context prefix.
pub fn ctx<E: fmt::Display>(what: &str) -> impl FnOnce(E) -> RunError + '_ {
    move |e| RunError::new(format!("{what}: {e}"))
}

/// Runs `f`; on error prints `error: <message>` (one line, newlines folded) to stderr and
/// exits with the error's code (a stop on a signal is printed without `error:`). Exits 0 on
/// success.
pub fn exit_on_error(f: impl FnOnce() -> Result<()>) -> ! {
    match f() {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            let msg: Vec<&str> = e.message.lines().map(str::trim).collect();
            let prefix = if e.is_interruption() { "" } else { "error: " };
            eprintln!("{prefix}{}", msg.join(" "));
            std::process::exit(e.code)
        }
    }
}

/// A 64-bit mix of several values (SplitMix64 finalizer over each), for per-epoch and
/// per-step seeds: `Rng::new(mix(&[seed, epoch, step]))` needs no saved RNG state to resume.
pub fn mix(values: &[u64]) -> u64 {
    let mut h: u64 = 0x9E37_79B9_7F4A_7C15;
    for &v in values {
        let mut z = h ^ v.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        h = z ^ (z >> 31);
    }
    h
}
