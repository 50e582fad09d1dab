//! Run checkpoints: a state dict plus string metadata (epoch, step, config, seed, ...) in one
//! safetensors file, written atomically by [`tessera_nn::Checkpoint::save`].

use super::{Result, RunError};
use std::path::Path;
use tessera_nn::checkpoint::{Checkpoint, Metadata, StateDict};
use tessera_tensor::Cpu;

/// The metadata key holding the architecture description.
pub const ARCH_KEY: &str = "arch";

/// Saves `tensors` and `metadata` to `path` atomically.
pub fn save(path: &Path, tensors: StateDict<Cpu>, metadata: Metadata) -> Result<()> {
    let ck = Checkpoint { tensors, metadata };
    ck.save(path)
        .map_err(|e| RunError::new(format!("writing the checkpoint {}: {e}", path.display())))
}

/// Loads a checkpoint and checks that it was written for architecture `arch` (the value of
/// [`ARCH_KEY`]), so that resuming another model fails with one clear line.
pub fn load_checked(path: &Path, arch: &str) -> Result<Checkpoint<Cpu>> {
    if !path.is_file() {
        return Err(RunError::new(format!(
            "--resume: no checkpoint at {}",
            path.display()
        )));
    }
    let ck = Checkpoint::load(path, &Cpu).map_err(|e| {
        RunError::new(format!(
            "cannot read the checkpoint {}: {e}",
            path.display()
        ))
    })?;
    match ck.metadata.get(ARCH_KEY) {
        Some(a) if a == arch => Ok(ck),
        Some(a) => Err(RunError::new(format!(
            "the checkpoint {} is of another architecture ({a}); this run is {arch}",
            path.display()
        ))),
        None => Err(RunError::new(format!(
            "the checkpoint {} has no architecture metadata (not written by this program)",
            path.display()
        ))),
    }
}

/// A metadata value parsed, with a clear error when absent or malformed.
pub fn meta<T: std::str::FromStr>(md: &Metadata, key: &str) -> Result<T> {
    md.get(key)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| RunError::new(format!("the checkpoint's metadata lacks a valid {key:?}")))
}

/// Metadata keys of the per-channel input normalization a model was trained with
/// (comma-separated floats); evaluation must standardize its inputs the same way.
pub const NORMALIZE_MEAN_KEY: &str = "normalize_mean";
/// See [`NORMALIZE_MEAN_KEY`].
pub const NORMALIZE_STD_KEY: &str = "normalize_std";

/// `values` as the comma-separated text stored in metadata.
pub fn floats(values: &[f32]) -> String {
    values
        .iter()
        .map(|v| v.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// The input normalization recorded in a checkpoint's metadata: `Ok(None)` when the
/// checkpoint has none (the model saw `[0, 1]` pixels), an error when it is malformed.
pub fn normalization(md: &Metadata) -> Result<Option<tessera_ssl::augment::Normalize>> {
    let parse = |key: &str| -> Result<Option<Vec<f32>>> {
        md.get(key)
            .map(|v| {
                v.split(',')
                    .map(|x| x.trim().parse::<f32>())
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(|_| {
                        RunError::new(format!(
                            "the checkpoint's {key:?} is not a float list: {v:?}"
                        ))
                    })
            })
            .transpose()
    };
    match (parse(NORMALIZE_MEAN_KEY)?, parse(NORMALIZE_STD_KEY)?) {
        (Some(mean), Some(std)) => tessera_ssl::augment::Normalize::new(mean, std)
            .map(Some)
            .map_err(|e| RunError::new(format!("the checkpoint's normalization: {e}"))),
        (None, None) => Ok(None),
        _ => Err(RunError::new(
            "the checkpoint records only one of normalize_mean / normalize_std",
        )),
    }
}
