//! IDX files (MNIST, Fashion-MNIST): `*-images-idx3-ubyte` and `*-labels-idx1-ubyte`,
//! optionally gzip-compressed (`.gz`, as distributed).
//!
//! Format (big-endian): magic `0x00000803` (unsigned bytes, 3 dims) then `n, rows, cols` and
//! `n * rows * cols` pixels; labels: magic `0x00000801`, `n`, then `n` label bytes.

use super::{budget, io_err, Dataset, Format};
use crate::error::{Error, Result};
use alloc::string::ToString;
use alloc::vec::Vec;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

/// Magic number of an IDX file of unsigned bytes with 3 dims (images).
pub const IDX_IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of unsigned bytes with 1 dim (labels).
pub const IDX_LABELS_MAGIC: u32 = 0x0000_0801;

/// Deflate expands data at most about 1032:1, so a gzip file of `n` bytes decompresses to at
/// most `n * 1032` bytes: the buffer reserved for it never exceeds that, whatever the
/// header claims.
const MAX_DEFLATE_RATIO: u64 = 1032;

/// Reads the IDX file at `path` (gunzipped if its name ends in `.gz`) with `dims` dimensions
/// and checks its magic; returns the dims and the payload.
///
/// The header comes first and says how many bytes follow (`dims` product, overflow-checked);
/// that size is checked against the memory budget before anything is allocated, and no more
/// than it (plus one byte, to detect trailing data) is ever read or decompressed: a gzip
/// bomb is an error after the declared size, not a multi-gigabyte buffer. A plain file's
/// size is compared with the declared one before its payload is read.
fn read_idx_file(path: &Path, magic: u32, dims: usize) -> Result<(Vec<usize>, Vec<u8>)> {
    let file = std::fs::File::open(path).map_err(|e| io_err(path, e))?;
    let len = file.metadata().map_err(|e| io_err(path, e))?.len();
    if super::is_gz(path) {
        let gz = flate2::read::GzDecoder::new(BufReader::new(file));
        let bound = len.saturating_mul(MAX_DEFLATE_RATIO);
        parse_idx(gz, path, magic, dims, None, bound)
    } else {
        parse_idx(BufReader::new(file), path, magic, dims, Some(len), len)
    }
}

/// [`read_idx_file`] on the (decompressed) stream `r`: `file_len` is its exact length when
/// known (plain files), `bound` an upper bound on it.
fn parse_idx(
    mut r: impl Read,
    path: &Path,
    magic: u32,
    dims: usize,
    file_len: Option<u64>,
    bound: u64,
) -> Result<(Vec<usize>, Vec<u8>)> {
    // Sizes of a gzip file are those of its decompressed content: say so in the errors.
    let p = match file_len {
        Some(_) => path.display().to_string(),
        None => alloc::format!("{} (decompressed)", path.display()),
    };
    let read_err = |e: std::io::Error| Error::Io {
        path: path.display().to_string(),
        msg: match file_len {
            Some(_) => e.to_string(),
            None => alloc::format!("gzip: {e}"),
        },
    };
    let header_len = 4 + 4 * dims;
    let mut header = [0u8; 16];
    let header = &mut header[..header_len];
    let got = read_full(&mut r, header).map_err(read_err)?;
    let word =
        |i: usize| u32::from_be_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
    // The magic first, if there is one: a wrong file type is the more useful diagnosis.
    if got >= 4 && word(0) != magic {
        return Err(Error::BadMagic {
            path: p,
            expected: magic,
            found: word(0),
        });
    }
    if got < header_len {
        return Err(Error::Truncated {
            path: p,
            expected: header_len as u64,
            actual: got as u64,
        });
    }
    let shape: Vec<usize> = (0..dims).map(|d| word(4 + 4 * d) as usize).collect();
    // u64 arithmetic: three u32 dims multiply past usize on 32-bit targets (and past u64).
    let payload = shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d as u64));
    let expected = payload.and_then(|n| n.checked_add(header_len as u64));
    if let Some(actual) = file_len {
        match expected {
            Some(e) if actual > e => {
                return Err(Error::TrailingData {
                    path: p,
                    expected: e,
                    actual,
                })
            }
            Some(e) if actual == e => {}
            _ => {
                return Err(Error::Truncated {
                    path: p,
                    expected: expected.unwrap_or(u64::MAX),
                    actual,
                })
            }
        }
    }
    let payload = budget(
        path,
        &alloc::format!("the payload of shape {shape:?} its IDX header declares"),
        payload.and_then(|n| usize::try_from(n).ok()),
    )?;
    let expected = expected.unwrap_or(u64::MAX);
    let mut pixels = Vec::with_capacity(payload.min(bound.try_into().unwrap_or(usize::MAX)));
    let n = r
        .by_ref()
        .take(payload as u64)
        .read_to_end(&mut pixels)
        .map_err(read_err)?;
    if n < payload {
        return Err(Error::Truncated {
            path: p,
            expected,
            actual: (header_len + n) as u64,
        });
    }
    // One byte more tells whether the data goes on; for a gzip stream nothing beyond it is
    // decompressed, so the size of the excess is unknown.
    if read_full(&mut r, &mut [0u8; 1]).map_err(read_err)? > 0 {
        return Err(match file_len {
            Some(actual) => Error::TrailingData {
                path: p,
                expected,
                actual,
            },
            None => Error::Io {
                path: path.display().to_string(),
                msg: alloc::format!(
                    "gzip: the decompressed data goes on past the {expected} bytes its IDX \
                     header declares (shape {shape:?})"
                ),
            },
        });
    }
    Ok((shape, pixels))
}

/// Reads until `buf` is full or the stream ends; the number of bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Reads an IDX image file and its label file (each plain or `.gz`) as a 1-channel dataset
/// with `num_classes` classes (10 for MNIST and Fashion-MNIST).
pub fn read_idx(images: &Path, labels: &Path, num_classes: usize) -> Result<Dataset> {
    let (dims, pixels) = read_idx_file(images, IDX_IMAGES_MAGIC, 3)?;
    let (ldims, labs) = read_idx_file(labels, IDX_LABELS_MAGIC, 1)?;
    if dims[0] != ldims[0] {
        return Err(Error::CountMismatch {
            images: dims[0],
            labels: ldims[0],
            what: alloc::format!("{} and {}", images.display(), labels.display()),
        });
    }
    budget(
        labels,
        "the labels as u32",
        labs.len().checked_mul(core::mem::size_of::<u32>()),
    )?;
    let labels_u32: Vec<u32> = labs.iter().map(|&l| u32::from(l)).collect();
    super::check_labels(&labels_u32, num_classes, labels)?;
    Ok(Dataset {
        images: pixels,
        shape: [dims[0], 1, dims[1], dims[2]],
        labels: labels_u32,
        num_classes,
        class_names: Vec::new(),
        format: Format::Idx,
    })
}

/// The image and label files of one split in `dir`: names starting with `prefixes` (MNIST:
/// `train` and `t10k`) containing `images` and `idx3` / `labels` and `idx1` (so both
/// `train-images-idx3-ubyte` and `train-images.idx3-ubyte` match), optionally
/// `.gz`; a plain file wins over its compressed twin.
pub(crate) fn find_split(dir: &Path, prefixes: &[&str]) -> Result<Option<(PathBuf, PathBuf)>> {
    let names = super::file_names(dir)?;
    let pick = |kind: &str, idx: &str| {
        let mut hits: Vec<&str> = names
            .iter()
            .map(alloc::string::String::as_str)
            .filter(|n| prefixes.iter().any(|p| n.starts_with(p)))
            .filter(|n| n.contains(kind) && n.contains(idx))
            .filter(|n| n.ends_with("ubyte") || n.ends_with("ubyte.gz"))
            .collect();
        // Sorted so that "x-ubyte" precedes "x-ubyte.gz".
        hits.sort_unstable();
        hits.first().map(|n| dir.join(n))
    };
    Ok(pick("images", "idx3").zip(pick("labels", "idx1")))
}

/// True if `dir` holds any IDX image file.
pub(crate) fn looks_like_idx(names: &[alloc::string::String]) -> bool {
    names
        .iter()
        .any(|n| n.contains("images") && n.contains("idx3-ubyte"))
}
