//! Errors. Every operation a caller can get wrong returns [`Result`]; the message names the op
//! and the shapes involved, so that a failure deep inside a model is readable on its own.

use alloc::string::String;
use core::fmt;

/// What went wrong in a tensor operation.
#[derive(Clone, Debug, PartialEq)]
pub enum Error {
    /// Shapes that do not fit the op, e.g. `matmul: [2, 3] x [4, 5]: inner dims 3 != 4`.
    Shape { op: &'static str, msg: String },
    /// An axis outside `-rank..rank`.
    Axis {
        op: &'static str,
        axis: isize,
        rank: usize,
    },
    /// A dtype the op does not accept, or two inputs whose dtypes differ.
    DType { op: &'static str, msg: String },
    /// Inputs living on different backends/devices.
    Backend { op: &'static str, msg: String },
    /// An index (in an index tensor or an argument) out of range.
    Index { op: &'static str, msg: String },
    /// A bad argument that is not a shape, e.g. a stride of 0.
    Argument { op: &'static str, msg: String },
    /// The backend does not implement this op (e.g. a CUDA kernel not yet written).
    Unsupported {
        op: &'static str,
        backend: &'static str,
        msg: String,
    },
    /// A device-level failure (out of memory, driver error).
    Device { msg: String },
}

/// `core::result::Result` with this crate's [`Error`].
pub type Result<T> = core::result::Result<T, Error>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Shape { op, msg } => write!(f, "{op}: shape error: {msg}"),
            Error::Axis { op, axis, rank } => {
                write!(
                    f,
                    "{op}: axis {axis} is out of range for a tensor of rank {rank}"
                )
            }
            Error::DType { op, msg } => write!(f, "{op}: dtype error: {msg}"),
            Error::Backend { op, msg } => write!(f, "{op}: backend error: {msg}"),
            Error::Index { op, msg } => write!(f, "{op}: index error: {msg}"),
            Error::Argument { op, msg } => write!(f, "{op}: invalid argument: {msg}"),
            Error::Unsupported { op, backend, msg } => {
                write!(f, "{op}: not supported by the {backend} backend: {msg}")
            }
            Error::Device { msg } => write!(f, "device error: {msg}"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for Error {}

/// Builds an [`Error::Shape`] with `format!` arguments.
#[macro_export]
macro_rules! shape_err {
    ($op:expr, $($arg:tt)*) => {
        $crate::Error::Shape { op: $op, msg: $crate::__format!($($arg)*) }
    };
}

/// Builds an [`Error::Argument`] with `format!` arguments.
#[macro_export]
macro_rules! arg_err {
    ($op:expr, $($arg:tt)*) => {
        $crate::Error::Argument { op: $op, msg: $crate::__format!($($arg)*) }
    };
}
