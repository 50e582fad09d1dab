//! Loading the training and test splits of `--data`.

use super::{Result, RunError};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use tessera_ssl::data::{Dataset, FolderOptions, Format, Split};
use tessera_ssl::Error;

/// The `--resize PX` flag, shared by every example that reads `--data`.
pub const RESIZE_HELP: &str = "Image folders: resize every image on load so its shorter side is PX, then center-crop PX x PX (torchvision Resize + CenterCrop); needed when the images differ in size";

/// What `--resize` does when not given (for [`super::args::Flag::default_note`]).
pub const RESIZE_DEFAULT: &str = "none: every image must have the first one's size";

/// The largest `--resize` (the image-folder reader's own limit).
const MAX_RESIZE: usize = 1 << 15;

/// The embedded Fashion-MNIST subset, located at compile time.
pub fn default_data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/fashion-mnist")
}

/// Opens both splits of the dataset in `dir` (IDX, CIFAR binaries or an image folder), image
/// folders resized to `resize x resize` when given; every failure becomes a one-line message
/// naming the folder.
pub fn load_splits(dir: &Path, resize: Option<usize>) -> Result<(Dataset, Dataset)> {
    if !dir.exists() {
        return Err(RunError::new(format!(
            "data folder {} does not exist (pass --data <DIR> with IDX, CIFAR binary or \
             image-folder data)",
            dir.display()
        )));
    }
    if let Some(s) = resize.filter(|s| !(1..=MAX_RESIZE).contains(s)) {
        return Err(RunError::usage(format!(
            "--resize {s}: expected 1 to {MAX_RESIZE} px"
        )));
    }
    let folder = FolderOptions {
        size: resize.map(|s| (s, s)),
        ..FolderOptions::default()
    };
    let open = |split| {
        Dataset::open_split_with(dir, split, &folder).map_err(|e| {
            let msg = match e {
                // Said in terms of this program's flags.
                Error::ImageSize {
                    path,
                    expected: (eh, ew),
                    found: (h, w),
                } => format!(
                    "{path} is {h}x{w} (h x w) but the images before it are {eh}x{ew}; pass \
                     --resize PX to bring every image to one size"
                ),
                e => e.to_string(),
            };
            // The readers work with UTF-8 names: such a file shows up as missing, so name
            // the real cause when there is one.
            if let Some(bad) = non_utf8_name(dir, 3) {
                return RunError::new(format!(
                    "cannot read the dataset in {}: the file name {} is not valid UTF-8; \
                     rename it",
                    dir.display(),
                    bad.display()
                ));
            }
            RunError::new(format!(
                "cannot read the dataset in {}: {msg}",
                dir.display()
            ))
        })
    };
    let train = open(Split::Train)?;
    let test = open(Split::Test)?;
    if let Some(s) = resize {
        let [_, h, w] = train.image_shape();
        if (h, w) != (s, s) {
            return Err(RunError::new(format!(
                "--resize applies to image folders; the {} data in {} has a fixed size of \
                 {h}x{w}",
                match train.format {
                    Format::Idx => "IDX",
                    Format::Cifar10 => "CIFAR-10",
                    Format::Cifar100 => "CIFAR-100",
                    Format::ImageFolder => "image-folder",
                },
                dir.display()
            )));
        }
    }
    if train.is_empty() || test.is_empty() {
        return Err(RunError::new(format!(
            "the dataset in {} has an empty split",
            dir.display()
        )));
    }
    if train.image_shape() != test.image_shape() {
        return Err(RunError::new(format!(
            "the dataset in {}: train images are {:?}, test images {:?}",
            dir.display(),
            train.image_shape(),
            test.image_shape()
        )));
    }
    Ok((train, test))
}

/// The first entry in `dir` or its subfolders down to `depth` levels (an image folder is
/// `root/[train|test/]class/file`) whose name is not UTF-8.
fn non_utf8_name(dir: &Path, depth: usize) -> Option<PathBuf> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for p in entries {
        if p.file_name().is_some_and(|n| n.to_str().is_none()) {
            return Some(p);
        }
        if depth > 1 && p.is_dir() {
            if let Some(bad) = non_utf8_name(&p, depth - 1) {
                return Some(bad);
            }
        }
    }
    None
}

/// Exactly `n` images, class-balanced: `n / classes` of each class chosen at random with
/// `seed`, and one more of each of the first `n % classes` classes (all images when
/// `n >= len`). Rounding `n` down to a multiple of the class count instead would train on
/// fewer images than asked for without saying so (512 becoming 510).
pub fn balanced_prefix(ds: &Dataset, n: usize, seed: u64) -> Result<Dataset> {
    if n >= ds.len() {
        return Ok(ds.clone());
    }
    let classes = ds.num_classes.max(1);
    let (k, extra) = (n / classes, n % classes);
    let fail = |e: tessera_ssl::Error| {
        RunError::new(format!("cannot take {n} class-balanced images: {e}"))
    };
    let mut idx = ds.balanced_indices(k, seed).map_err(fail)?;
    if extra > 0 {
        // The same seed orders each class the same way, so `k + 1` per class holds the `k`
        // above plus one new image of each class; keep the new ones of the first classes.
        let taken: BTreeSet<usize> = idx.iter().copied().collect();
        let mut added = vec![false; classes];
        for i in ds.balanced_indices(k + 1, seed).map_err(fail)? {
            let c = ds.labels[i] as usize;
            if c < extra && !added[c] && !taken.contains(&i) {
                added[c] = true;
                idx.push(i);
            }
        }
        idx.sort_unstable();
    }
    ds.subset(&idx).map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn balanced_prefix_takes_exactly_n() {
        let (train, _) = load_splits(&default_data_dir(), None).unwrap();
        let classes = train.num_classes;
        for n in [3, classes, 512, 510] {
            let s = balanced_prefix(&train, n, 7).unwrap();
            assert_eq!(s.len(), n, "n = {n}");
            let mut per_class = vec![0usize; classes];
            for &l in &s.labels {
                per_class[l as usize] += 1;
            }
            let (lo, hi) = (per_class.iter().min(), per_class.iter().max());
            assert!(hi.unwrap() - lo.unwrap() <= 1, "{per_class:?}");
        }
        // A multiple of the class count is the subset it always was.
        let a = balanced_prefix(&train, 510, 7).unwrap();
        let b = train.balanced_subset(51, 7).unwrap();
        assert_eq!(a.labels, b.labels);
    }
}
