//! Errors of `tessera-ssl`. Everything a user can get wrong (a path, a corrupt file, an
//! augmentation parameter) is a value of [`Error`] whose message names the file or the
//! argument, so that a failed run explains itself without a backtrace.
//!
//! The enum is available without `std` (paths are kept as display strings), so the no_std
//! core (augmentations, k-NN) and the file readers share one error type.

use alloc::string::String;
use core::fmt;

/// What went wrong while reading data, augmenting or evaluating.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// A tensor operation failed (a shape or dtype the op rejects).
    Tensor(tessera_tensor::Error),
    /// A bad argument: an augmentation range, a `k` of 0, mismatched lengths.
    Config(String),
    /// A file or directory that does not exist.
    NotFound { path: String },
    /// An I/O failure other than a missing path (permissions, a corrupt gzip stream).
    Io { path: String, msg: String },
    /// `Dataset::open` found no format it knows; `looked_for` lists what it tried.
    UnknownFormat { path: String, looked_for: String },
    /// The first four bytes of an IDX file are not the expected magic number.
    BadMagic {
        path: String,
        expected: u32,
        found: u32,
    },
    /// A file shorter than its header (or its record size) promises.
    Truncated {
        path: String,
        expected: u64,
        actual: u64,
    },
    /// A file longer than its header promises (likely not the file it claims to be).
    TrailingData {
        path: String,
        expected: u64,
        actual: u64,
    },
    /// The image and label files disagree on the number of samples.
    CountMismatch {
        images: usize,
        labels: usize,
        what: String,
    },
    /// A label `>= num_classes`.
    LabelOutOfRange {
        path: String,
        index: usize,
        label: u32,
        num_classes: usize,
    },
    /// A class folder of an image-folder dataset with no image in it.
    EmptyClass { path: String },
    /// An image file that could not be decoded.
    Decode { path: String, msg: String },
    /// An image whose size differs from the others (image folders without a resize).
    ImageSize {
        path: String,
        expected: (usize, usize),
        found: (usize, usize),
    },
}

/// `core::result::Result` with this crate's [`Error`].
pub type Result<T> = core::result::Result<T, Error>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Tensor(e) => write!(f, "{e}"),
            Error::Config(msg) => write!(f, "invalid argument: {msg}"),
            Error::NotFound { path } => write!(f, "{path}: no such file or directory"),
            Error::Io { path, msg } => write!(f, "{path}: {msg}"),
            Error::UnknownFormat { path, looked_for } => {
                write!(
                    f,
                    "{path}: no known dataset format; looked for {looked_for}"
                )
            }
            Error::BadMagic {
                path,
                expected,
                found,
            } => write!(
                f,
                "{path}: bad magic number {found:#010x}, expected {expected:#010x}"
            ),
            Error::Truncated {
                path,
                expected,
                actual,
            } => write!(
                f,
                "{path}: truncated file: expected {expected} bytes, found {actual}"
            ),
            Error::TrailingData {
                path,
                expected,
                actual,
            } => write!(
                f,
                "{path}: file too long: expected {expected} bytes, found {actual}"
            ),
            Error::CountMismatch {
                images,
                labels,
                what,
            } => write!(f, "{what}: {images} images but {labels} labels"),
            Error::LabelOutOfRange {
                path,
                index,
                label,
                num_classes,
            } => write!(
                f,
                "{path}: label {label} of sample {index} is out of range for {num_classes} classes"
            ),
            Error::EmptyClass { path } => write!(f, "{path}: class folder has no images"),
            Error::Decode { path, msg } => write!(f, "{path}: cannot decode image: {msg}"),
            Error::ImageSize {
                path,
                expected,
                found,
            } => write!(
                f,
                "{path}: image is {}x{} (h x w), expected {}x{} like the others \
                 (ask for a size to resize)",
                found.0, found.1, expected.0, expected.1
            ),
        }
    }
}

impl From<tessera_tensor::Error> for Error {
    fn from(e: tessera_tensor::Error) -> Self {
        Error::Tensor(e)
    }
}

#[cfg(feature = "std")]
impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Tensor(e) => Some(e),
            _ => None,
        }
    }
}

/// Builds an [`Error::Config`] with `format!` arguments.
macro_rules! config_err {
    ($($arg:tt)*) => {
        $crate::Error::Config(alloc::format!($($arg)*))
    };
}
pub(crate) use config_err;
