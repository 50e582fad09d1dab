//! CIFAR-10 and CIFAR-100 binary versions.
//!
//! CIFAR-10 (`cifar-10-batches-bin/`): `data_batch_1.bin` .. `data_batch_5.bin` (train) and
//! `test_batch.bin`, records of 1 label byte + 3072 pixel bytes (`[3, 32, 32]`, R then G
//! then B planes). CIFAR-100 (`cifar-100-binary/`): `train.bin` and `test.bin`, records of
//! a coarse label byte (20 superclasses), a fine label byte (100 classes), then 3072 pixels.

use super::{budget, io_err, read_bytes, Dataset, Format};
use crate::error::{Error, Result};
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use std::path::{Path, PathBuf};

/// Pixel bytes of one CIFAR image.
const PIXELS: usize = 3 * 32 * 32;

/// Reads CIFAR binary files with `label_bytes` label bytes per record, keeping label byte
/// `label_index` (CIFAR-10: 1 and 0; CIFAR-100: 2 and 0 for coarse, 1 for fine).
pub fn read_cifar_files(
    files: &[PathBuf],
    label_bytes: usize,
    label_index: usize,
    num_classes: usize,
    format: Format,
) -> Result<Dataset> {
    let record = label_bytes + PIXELS;
    if label_index >= label_bytes {
        return Err(Error::Config(alloc::format!(
            "CIFAR label byte {label_index} is not among the {label_bytes} label bytes"
        )));
    }
    // Every plain file's size is known before reading: check the record multiple of all of
    // them, and the total against the memory budget, before the first byte is read.
    let mut records = 0usize;
    for f in files.iter().filter(|f| !super::is_gz(f)) {
        let len = std::fs::metadata(f).map_err(|e| io_err(f, e))?.len();
        records = records.saturating_add(check_records(f, len, record)?);
    }
    let reserve = |path: &Path, n: usize, images: &mut Vec<u8>, labels: &mut Vec<u32>| {
        let px = budget(path, "the CIFAR images", n.checked_mul(PIXELS))?;
        let lb = budget(path, "the CIFAR labels as u32", n.checked_mul(4))?;
        images.reserve_exact(px - images.len());
        labels.reserve_exact(lb / 4 - labels.len());
        Ok::<(), Error>(())
    };
    let (mut images, mut labels) = (Vec::new(), Vec::new());
    if let Some(f) = files.first() {
        reserve(f, records, &mut images, &mut labels)?;
    }
    for f in files {
        let bytes = read_bytes(f)?;
        let n = check_records(f, bytes.len() as u64, record)?;
        if super::is_gz(f) {
            // Decompressed sizes are only known now.
            let total = labels.len().saturating_add(n);
            reserve(f, total, &mut images, &mut labels)?;
        }
        let first = labels.len();
        for r in bytes.chunks_exact(record) {
            labels.push(u32::from(r[label_index]));
            images.extend_from_slice(&r[label_bytes..]);
        }
        super::check_labels(&labels[first..], num_classes, f)?;
    }
    Ok(Dataset {
        shape: [labels.len(), 3, 32, 32],
        images,
        labels,
        num_classes,
        class_names: Vec::new(),
        format,
    })
}

/// The number of `record`-byte records in a file of `len` bytes: an error unless it is a
/// positive whole number.
fn check_records(path: &Path, len: u64, record: usize) -> Result<usize> {
    let record = record as u64;
    let (n, rem) = (len / record, len % record);
    if n == 0 || rem != 0 {
        // The size the file would have with its last record complete.
        return Err(Error::Truncated {
            path: path.display().to_string(),
            expected: (n + 1) * record,
            actual: len,
        });
    }
    usize::try_from(n).map_err(|_| Error::Io {
        path: path.display().to_string(),
        msg: alloc::format!("{n} CIFAR records do not fit in memory"),
    })
}

/// CIFAR-10 from `dir`: the sorted `data_batch_*.bin` files for `train`, else
/// `test_batch.bin`. Class names come from `batches.meta.txt` when present.
pub fn read_cifar10(dir: &Path, train: bool) -> Result<Dataset> {
    let files = cifar10_files(dir, train)?;
    if files.is_empty() {
        let want = if train {
            "data_batch_*.bin"
        } else {
            "test_batch.bin"
        };
        return Err(Error::NotFound {
            path: dir.join(want).display().to_string(),
        });
    }
    let mut d = read_cifar_files(&files, 1, 0, 10, Format::Cifar10)?;
    d.class_names = read_names(&dir.join("batches.meta.txt"));
    Ok(d)
}

/// CIFAR-100 from `dir` (`train.bin` or `test.bin`), with the 100 fine labels or the 20
/// coarse ones.
pub fn read_cifar100(dir: &Path, train: bool, coarse: bool) -> Result<Dataset> {
    let f = dir.join(if train { "train.bin" } else { "test.bin" });
    let (idx, n, names) = if coarse {
        (0, 20, "coarse_label_names.txt")
    } else {
        (1, 100, "fine_label_names.txt")
    };
    let mut d = read_cifar_files(&[f], 2, idx, n, Format::Cifar100)?;
    d.class_names = read_names(&dir.join(names));
    Ok(d)
}

/// The CIFAR-10 files of one split present in `dir`, batches in numeric order.
pub(crate) fn cifar10_files(dir: &Path, train: bool) -> Result<Vec<PathBuf>> {
    let names = super::file_names(dir)?;
    let mut hits: Vec<(u64, &String)> = names
        .iter()
        .filter_map(|n| {
            if train {
                let num = n.strip_prefix("data_batch_")?.strip_suffix(".bin")?;
                Some((num.parse().ok()?, n))
            } else {
                (n == "test_batch.bin").then_some((0, n))
            }
        })
        .collect();
    hits.sort();
    Ok(hits.into_iter().map(|(_, n)| dir.join(n)).collect())
}

/// Non-empty lines of a label-names file; empty if the file is absent or unreadable (names
/// are a convenience, never required).
fn read_names(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .map(|s| {
            s.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}
