//! IDX files (MNIST, Fashion-MNIST): `*-images-idx3-ubyte` and `*-labels-idx1-ubyte`,
//! optionally gzip-compressed (`.gz`, as distributed).
//!
//! Format (big-endian): magic `0x00000803` (unsigned bytes, 3 dims) then `n, rows, cols` and
//! `n * rows * cols` pixels; labels: magic `0x00000801`, `n`, then `n` label bytes.

use super::{read_bytes, Dataset, Format};
use crate::error::{Error, Result};
use alloc::string::ToString;
use alloc::vec::Vec;
use std::path::{Path, PathBuf};

/// Magic number of an IDX file of unsigned bytes with 3 dims (images).
pub const IDX_IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of unsigned bytes with 1 dim (labels).
pub const IDX_LABELS_MAGIC: u32 = 0x0000_0801;

/// Checks magic and size of an IDX file with `dims` dimensions; returns the dims and the
/// payload.
fn parse<'a>(
    bytes: &'a [u8],
    path: &Path,
    magic: u32,
    dims: usize,
) -> Result<(Vec<usize>, &'a [u8])> {
    let p = path.display().to_string();
    let header = 4 + 4 * dims;
    let word = |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    // The magic first, if there is one: a wrong file type is the more useful diagnosis.
    if bytes.len() >= 4 && word(0) != magic {
        return Err(Error::BadMagic {
            path: p,
            expected: magic,
            found: word(0),
        });
    }
    if bytes.len() < header {
        return Err(Error::Truncated {
            path: p,
            expected: header as u64,
            actual: bytes.len() as u64,
        });
    }
    let shape: Vec<usize> = (0..dims).map(|d| word(4 + 4 * d) as usize).collect();
    // u64 arithmetic: three u32 dims multiply past usize on 32-bit targets.
    let payload = shape.iter().fold(1u64, |a, &d| a.saturating_mul(d as u64));
    let expected = (header as u64).saturating_add(payload);
    let actual = bytes.len() as u64;
    if actual < expected {
        return Err(Error::Truncated {
            path: p,
            expected,
            actual,
        });
    }
    if actual > expected {
        return Err(Error::TrailingData {
            path: p,
            expected,
            actual,
        });
    }
    Ok((shape, &bytes[header..]))
}

/// Reads an IDX image file and its label file (each plain or `.gz`) as a 1-channel dataset
/// with `num_classes` classes (10 for MNIST and Fashion-MNIST).
pub fn read_idx(images: &Path, labels: &Path, num_classes: usize) -> Result<Dataset> {
    let img_bytes = read_bytes(images)?;
    let (dims, pixels) = parse(&img_bytes, images, IDX_IMAGES_MAGIC, 3)?;
    let lab_bytes = read_bytes(labels)?;
    let (ldims, labs) = parse(&lab_bytes, labels, IDX_LABELS_MAGIC, 1)?;
    if dims[0] != ldims[0] {
        return Err(Error::CountMismatch {
            images: dims[0],
            labels: ldims[0],
            what: alloc::format!("{} and {}", images.display(), labels.display()),
        });
    }
    let labels_u32: Vec<u32> = labs.iter().map(|&l| u32::from(l)).collect();
    super::check_labels(&labels_u32, num_classes, labels)?;
    Ok(Dataset {
        images: pixels.to_vec(),
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
