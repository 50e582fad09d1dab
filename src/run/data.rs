//! Loading the training and test splits of `--data`.

use super::{Result, RunError};
use std::path::{Path, PathBuf};
use tessera_ssl::data::{Dataset, Split};

/// The embedded Fashion-MNIST subset, located at compile time.
pub fn default_data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/fashion-mnist")
}

/// Opens both splits of the dataset in `dir` (IDX, CIFAR binaries or an image folder); every
/// failure becomes a one-line message naming the folder.
pub fn load_splits(dir: &Path) -> Result<(Dataset, Dataset)> {
    if !dir.exists() {
        return Err(RunError::new(format!(
            "data folder {} does not exist (pass --data <DIR> with IDX, CIFAR binary or \
             image-folder data)",
            dir.display()
        )));
    }
    let open = |split| {
        Dataset::open_split(dir, split).map_err(|e| {
            RunError::new(format!("cannot read the dataset in {}: {e}", dir.display()))
        })
    };
    let train = open(Split::Train)?;
    let test = open(Split::Test)?;
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
