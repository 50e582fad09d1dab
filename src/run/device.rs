//! The `--device` flag and the dispatch from it to a backend.
//!
//! A program's body is written once, generic over [`Backend`], as a [`Program`]; `main`
//! parses `--device` into a [`Device`] and calls [`Device::run`], which builds the backend
//! handle and runs the body on it. Adding a backend is one match arm in [`Device::run`] (and
//! its name in [`Device::parse`]).

use super::args::{Flag, Parsed};
use super::{Result, RunError};
use core::fmt;
use core::str::FromStr;
use tessera_tensor::{Backend, Cpu};

/// The `--device` flag, shared by every example that builds a model.
pub const DEVICE_FLAG: Flag = Flag::value(
    "device",
    "cpu|cuda[:N]",
    "Backend for the model's tensors [default: cpu]",
);

/// The message of `--device cuda` in a build without the CUDA backend.
pub const NO_CUDA: &str = "built without CUDA support (rebuild with --features cuda)";

/// The device a run asks for (`--device`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Device {
    /// The CPU backend ([`Cpu`]).
    #[default]
    Cpu,
    /// A CUDA GPU by index (`cuda` is `cuda:0`).
    Cuda(usize),
}

impl Device {
    /// Parses `cpu`, `cuda` or `cuda:N`; anything else is a usage error listing the choices.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "cpu" => Ok(Device::Cpu),
            "cuda" => Ok(Device::Cuda(0)),
            other => match other.strip_prefix("cuda:") {
                Some(n) => n.parse().map(Device::Cuda).map_err(|_| {
                    RunError::usage(format!(
                        "--device {other:?}: expected a GPU index after cuda: (cuda:0, cuda:1, ...)"
                    ))
                }),
                None => Err(RunError::usage(format!(
                    "--device: expected cpu, cuda or cuda:N, got {other:?}"
                ))),
            },
        }
    }

    /// The value of `--device` in `p` ([`Device::Cpu`] when absent).
    pub fn from_args(p: &Parsed) -> Result<Self> {
        p.raw("device").map_or(Ok(Device::Cpu), Device::parse)
    }

    /// Runs `program` on this device's backend. Call it before any heavy work: a device this
    /// build cannot use fails here, with one line and exit code 1.
    pub fn run<P: Program>(self, program: P) -> Result<()> {
        match self {
            Device::Cpu => program.run(Cpu),
            // With a CUDA backend: `Device::Cuda(n) => program.run(Cuda::new(n)?)`.
            Device::Cuda(_) => Err(RunError::new(format!("--device {self}: {NO_CUDA}"))),
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl FromStr for Device {
    type Err = RunError;
    fn from_str(s: &str) -> Result<Self> {
        Device::parse(s)
    }
}

/// A program body generic over the backend: what [`Device::run`] dispatches to. (A trait,
/// since a closure cannot be generic over `B`.)
pub trait Program {
    /// Runs on `backend`; every model tensor of the run lives there.
    fn run<B: Backend>(self, backend: B) -> Result<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_choices() {
        assert_eq!(Device::parse("cpu").unwrap(), Device::Cpu);
        assert_eq!(Device::parse("cuda").unwrap(), Device::Cuda(0));
        assert_eq!(Device::parse("cuda:3").unwrap(), Device::Cuda(3));
        assert_eq!(Device::Cuda(3).to_string(), "cuda:3");
        let e = Device::parse("tpu").unwrap_err();
        assert_eq!(e.code, 2);
        assert!(e.message.contains("expected cpu, cuda or cuda:N"), "{e}");
        assert_eq!(Device::parse("cuda:x").unwrap_err().code, 2);
    }

    #[test]
    fn cpu_runs_the_program_on_the_cpu_backend() {
        struct Probe<'a>(&'a std::cell::Cell<&'static str>);
        impl Program for Probe<'_> {
            fn run<B: Backend>(self, backend: B) -> Result<()> {
                self.0.set(backend.name());
                Ok(())
            }
        }
        let name = std::cell::Cell::new("");
        Device::default().run(Probe(&name)).unwrap();
        assert_eq!(name.get(), Cpu.name());
    }

    #[test]
    fn cuda_is_refused_in_this_build() {
        struct Never;
        impl Program for Never {
            fn run<B: Backend>(self, _: B) -> Result<()> {
                panic!("ran without a backend")
            }
        }
        let e = Device::Cuda(1).run(Never).unwrap_err();
        assert_eq!(e.code, 1);
        assert!(e.message.ends_with(NO_CUDA), "{e}");
        assert!(e.message.contains("cuda:1"), "{e}");
    }
}
