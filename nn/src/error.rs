//! [`Error`]: what can go wrong in this crate. Tensor-level failures (a gradient whose shape
//! does not match its parameter, a bad hyper-parameter) are [`tessera_tensor::Error`] values
//! wrapped in [`Error::Tensor`]; checkpoints add their own variants.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// An error from an optimizer, a schedule, an initializer or a checkpoint.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A tensor-level error: shapes, dtypes, bad arguments (messages name the op and the
    /// parameter involved).
    Tensor(tessera_tensor::Error),
    /// The bytes are not a valid safetensors file (bad header, offsets out of range, ...).
    Format { msg: String },
    /// A checkpoint tensor has a dtype Tessera does not have (e.g. `I32`, `F8_E4M3`).
    UnsupportedDType { key: String, dtype: String },
    /// A state dict does not match what was expected (PyTorch: the `RuntimeError` of
    /// `load_state_dict`): every missing key, every unexpected key and every key whose shape
    /// differs, as `(key, shape in the checkpoint, expected shape)`.
    StateDict {
        missing: Vec<String>,
        unexpected: Vec<String>,
        mismatched: Vec<(String, Vec<usize>, Vec<usize>)>,
    },
    /// A file operation failed (`op` is e.g. `"write"`, `"rename"`).
    #[cfg(feature = "std")]
    Io {
        op: &'static str,
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

/// `core::result::Result` with this crate's [`Error`].
pub type Result<T> = core::result::Result<T, Error>;

impl From<tessera_tensor::Error> for Error {
    fn from(e: tessera_tensor::Error) -> Self {
        Error::Tensor(e)
    }
}

fn write_list(f: &mut fmt::Formatter<'_>, what: &str, keys: &[String]) -> fmt::Result {
    write!(f, "\n    {what} key(s) ({}): ", keys.len())?;
    for (i, k) in keys.iter().enumerate() {
        let sep = if i == 0 { "" } else { ", " };
        write!(f, "{sep}\"{k}\"")?;
    }
    Ok(())
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Tensor(e) => write!(f, "{e}"),
            Error::Format { msg } => write!(f, "invalid safetensors data: {msg}"),
            Error::UnsupportedDType { key, dtype } => write!(
                f,
                "checkpoint tensor \"{key}\" has dtype {dtype}, which Tessera does not support \
                 (F16, BF16, F32, F64, I64, U8/BOOL)"
            ),
            Error::StateDict {
                missing,
                unexpected,
                mismatched,
            } => {
                f.write_str("error(s) in loading state dict:")?;
                if !missing.is_empty() {
                    write_list(f, "missing", missing)?;
                }
                if !unexpected.is_empty() {
                    write_list(f, "unexpected", unexpected)?;
                }
                for (key, found, expected) in mismatched {
                    write!(
                        f,
                        "\n    size mismatch for \"{key}\": the checkpoint has shape \
                         {found:?}, the expected shape is {expected:?}"
                    )?;
                }
                Ok(())
            }
            #[cfg(feature = "std")]
            Error::Io { op, path, source } => {
                write!(f, "cannot {op} {}: {source}", path.display())
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Tensor(e) => Some(e),
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
