//! Loading the training and test splits of `--data`.

use super::{Result, RunError};
use std::path::{Path, PathBuf};
use tessera_ssl::data::{Dataset, FolderOptions, Format, Split};
use tessera_ssl::Error;

/// The `--resize PX` flag, shared by every example that reads `--data`.
pub const RESIZE_HELP: &str = "Image folders: resize every image on load so its shorter side is PX, then center-crop PX x PX (torchvision Resize + CenterCrop); needed when the images differ in size";

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

/// The first `n` indices of a class-balanced order: `n / classes` per class (chosen at random
/// with `seed`), or all images when `n >= len`.
pub fn balanced_prefix(ds: &Dataset, n: usize, seed: u64) -> Result<Dataset> {
    if n >= ds.len() {
        return Ok(ds.clone());
    }
    let k = (n / ds.num_classes.max(1)).max(1);
    ds.balanced_subset(k, seed)
        .map_err(|e| RunError::new(format!("subset of {n} images: {e}")))
}
