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
    "cpu|cuda[:N]|cuda-sim",
    "Backend for the model's tensors; cuda-sim runs the CUDA kernels on the CPU (slow, for testing)",
)
.default("cpu");

/// The message of `--device cuda` in a build without the CUDA backend.
pub const NO_CUDA: &str = "built without CUDA support (rebuild with --features cuda)";

/// The message of `--device cuda-sim` in a build without the SIMT shim.
pub const NO_SIM: &str = "built without the CUDA SIMT shim (rebuild with --features cuda-sim)";

/// The device a run asks for (`--device`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Device {
    /// The CPU backend ([`Cpu`]).
    #[default]
    Cpu,
    /// A CUDA GPU by index (`cuda` is `cuda:0`).
    Cuda(usize),
    /// The CUDA backend's kernels run on the CPU by the SIMT shim (`tessera_cuda::Cuda::sim`):
    /// the GPU code path without a GPU, slowly; for tests and for reading kernels in a debugger.
    CudaSim,
}

impl Device {
    /// Parses `cpu`, `cuda` or `cuda:N`; anything else is a usage error listing the choices.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "cpu" => Ok(Device::Cpu),
            "cuda" => Ok(Device::Cuda(0)),
            "cuda-sim" => Ok(Device::CudaSim),
            other => match other.strip_prefix("cuda:") {
                Some(n) => n.parse().map(Device::Cuda).map_err(|_| {
                    RunError::usage(format!(
                        "--device {other:?}: expected a GPU index after cuda: (cuda:0, cuda:1, ...)"
                    ))
                }),
                None => Err(RunError::usage(format!(
                    "--device: expected cpu, cuda, cuda:N or cuda-sim, got {other:?}"
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
            #[cfg(feature = "cuda")]
            Device::Cuda(n) => {
                let dev = tessera_cuda::Cuda::new(n).map_err(|e| {
                    RunError::new(format!("--device {self}: {}", device_message(&e)))
                })?;
                program.run(dev)
            }
            #[cfg(not(feature = "cuda"))]
            Device::Cuda(_) => Err(RunError::new(format!("--device {self}: {NO_CUDA}"))),
            #[cfg(feature = "cuda-sim")]
            Device::CudaSim => {
                let dev = tessera_cuda::Cuda::sim().map_err(|e| {
                    RunError::new(format!("--device {self}: {}", device_message(&e)))
                })?;
                program.run(dev)
            }
            #[cfg(not(feature = "cuda-sim"))]
            Device::CudaSim => Err(RunError::new(format!("--device {self}: {NO_SIM}"))),
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(n) => write!(f, "cuda:{n}"),
            Device::CudaSim => f.write_str("cuda-sim"),
        }
    }
}

impl FromStr for Device {
    type Err = RunError;
    fn from_str(s: &str) -> Result<Self> {
        Device::parse(s)
    }
}

/// A device error without the "device error: " prefix that `Error`'s Display adds.
#[cfg(any(feature = "cuda", feature = "cuda-sim"))]
fn device_message(e: &tessera_tensor::Error) -> String {
    match e {
        tessera_tensor::Error::Device { msg } => msg.clone(),
        other => other.to_string(),
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
        assert!(
            e.message.contains("expected cpu, cuda, cuda:N or cuda-sim"),
            "{e}"
        );
        assert_eq!(Device::parse("cuda-sim").unwrap(), Device::CudaSim);
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
