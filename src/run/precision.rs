//! The `--precision` flag: all-f32 training, or bf16 products inside every f32 matmul and
//! convolution.
//!
//! `bf16` is the CPU counterpart of PyTorch's bf16 mixed precision for the work that
//! dominates a step: the GEMMs (linear layers, attention's products, convolutions through
//! im2col) round their f32 inputs to bf16 and accumulate in f32 (Intel AMX tiles where the
//! CPU has them, else AVX512-BF16's `vdpbf16ps` where that is faster), while weights,
//! optimizer state, activations, norms, softmax and the loss stay f32. It is PyTorch's
//! `torch.set_float32_matmul_precision("medium")`, and close to `torch.autocast("cpu",
//! torch.bfloat16)` without autocast's bf16 activations. The setting is process-wide
//! ([`tessera_tensor::set_float32_matmul_precision`]); evaluation runs in f32 ([`in_f32`]).

use super::args::{Flag, Parsed};
use super::device::Device;
use super::{Result, RunError};
use tessera_tensor::MatmulPrecision;

/// The `--precision` flag, shared by the training examples.
pub const PRECISION_FLAG: Flag = Flag::value(
    "precision",
    "f32|bf16",
    "f32, or bf16 products with f32 accumulation inside every matmul and convolution (weights, optimizer state and everything else stay f32; CPU only)",
)
.default("f32");

/// The arithmetic of a run's GEMMs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Precision {
    /// f32 everywhere.
    #[default]
    F32,
    /// bf16 GEMM inputs, f32 accumulation; everything else f32.
    Bf16,
}

impl Precision {
    /// Reads `--precision` (default f32). bf16 is refused off the CPU backend, whose GEMM is
    /// the only one that implements it so far.
    pub fn from_args(p: &Parsed, device: Device) -> Result<Self> {
        let precision = match p.raw("precision").unwrap_or("f32") {
            "f32" => Precision::F32,
            "bf16" => Precision::Bf16,
            other => {
                return Err(RunError::usage(format!(
                    "--precision: expected f32 or bf16, got {other:?}"
                )))
            }
        };
        if precision == Precision::Bf16 && device != Device::Cpu {
            return Err(RunError::usage(format!(
                "--precision bf16 is implemented by the CPU backend only, not --device {device}"
            )));
        }
        Ok(precision)
    }

    /// The flag's spelling.
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
        }
    }

    /// Makes this the process's f32 matmul precision.
    pub fn apply(self) {
        tessera_tensor::set_float32_matmul_precision(match self {
            Precision::F32 => MatmulPrecision::Highest,
            Precision::Bf16 => MatmulPrecision::Bf16,
        });
    }
}

/// Runs `f` in f32 matmul precision and restores the previous one after (also when `f`
/// panics). Evaluation (features for the k-NN, the k-NN's similarities, the raw-pixel floor)
/// runs in f32 whatever `--precision` trains in, as PyTorch's autocast wraps only the training
/// step: a bf16 run and an f32 run are then compared on the same measurement, and the
/// raw-pixel floor does not move with the training precision.
pub fn in_f32<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(MatmulPrecision);
    impl Drop for Restore {
        fn drop(&mut self) {
            tessera_tensor::set_float32_matmul_precision(self.0);
        }
    }
    let _restore = Restore(tessera_tensor::float32_matmul_precision());
    tessera_tensor::set_float32_matmul_precision(MatmulPrecision::Highest);
    f()
}
