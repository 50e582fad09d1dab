//! Machinery shared by the examples (`examples/dino_vit_s.rs`, ...): command-line flags
//! ([`args`]), dataset loading with clear errors ([`data`]), photos as model inputs
//! ([`images`]), per-epoch metrics as JSON lines and a PNG plot ([`metrics`]), the ViT
//! backbone of a checkpoint ([`model`]), a progress line ([`progress`]), Ctrl-C handling
//! ([`signal`]), checkpoints with metadata ([`ckpt`]) and the one-line error reporting of
//! `main` ([`RunError`], [`exit_on_error`]).
//!
//! Needs the `std` feature.

pub mod args;
pub mod ckpt;
pub mod data;
pub mod images;
pub mod metrics;
pub mod model;
pub mod progress;
pub mod session;
pub mod signal;

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
/// exits with the error's code. Exits 0 on success.
pub fn exit_on_error(f: impl FnOnce() -> Result<()>) -> ! {
    match f() {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            let msg: Vec<&str> = e.message.lines().map(str::trim).collect();
            eprintln!("error: {}", msg.join(" "));
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

/// The device a run asks for. Only the CPU exists in this build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Device {
    Cpu,
    Cuda,
}

impl Device {
    /// Parses `cpu` or `cuda`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "cpu" => Ok(Device::Cpu),
            "cuda" => Ok(Device::Cuda),
            other => Err(RunError::usage(format!(
                "--device: expected cpu or cuda, got {other:?}"
            ))),
        }
    }
    /// Fails for devices this build cannot use.
    pub fn check_available(self) -> Result<()> {
        match self {
            Device::Cpu => Ok(()),
            Device::Cuda => Err(RunError::new(
                "--device cuda: this build has no CUDA support (the tessera-cuda backend is \
                 not implemented yet); use --device cpu",
            )),
        }
    }
}
