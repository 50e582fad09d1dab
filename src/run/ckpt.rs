//! Run checkpoints: a state dict plus string metadata (epoch, step, config, seed, ...) in one
//! safetensors file, written atomically by [`tessera_nn::Checkpoint::save`].

use super::{Result, RunError};
use std::path::Path;
use tessera_nn::checkpoint::{Checkpoint, Metadata, StateDict};
use tessera_tensor::Backend;

/// The metadata key holding the architecture description.
pub const ARCH_KEY: &str = "arch";

/// Saves `tensors` (on any backend: copied to the host) and `metadata` to `path` atomically.
pub fn save<B: Backend>(path: &Path, tensors: StateDict<B>, metadata: Metadata) -> Result<()> {
    // Writing copies every tensor to the host: first give the memory the backend caches for
    // training steps back to the system, so that the copies do not stack on top of it.
    if let Some(t) = tensors.values().next() {
        t.backend().empty_cache();
    }
    let ck = Checkpoint { tensors, metadata };
    ck.save(path)
        .map_err(|e| RunError::new(format!("writing the checkpoint {}: {e}", path.display())))
}

/// Loads a checkpoint and checks that it was written for architecture `arch` (the value of
/// [`ARCH_KEY`]), so that resuming another model fails with one clear line. The tensors are
/// created on `backend`.
pub fn load_checked<B: Backend>(path: &Path, arch: &str, backend: &B) -> Result<Checkpoint<B>> {
    if !path.is_file() {
        return Err(RunError::new(format!(
            "--resume: no checkpoint at {}",
            path.display()
        )));
    }
    let ck = Checkpoint::load(path, backend).map_err(|e| {
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

/// Where a run is: what a checkpoint must record, besides the weights, for `--resume` to
/// continue exactly (the next step of the epoch, the running loss sum, the k-NN numbers
/// measured before training, the seed and the training time so far).
#[derive(Clone, Debug, PartialEq)]
pub struct RunPosition {
    /// Completed epochs.
    pub epoch: usize,
    /// Completed steps of the current epoch.
    pub step: usize,
    /// Sum of the step losses of the current epoch.
    pub loss_sum: f64,
    /// k-NN top-1 of the backbone before training.
    pub knn_before: f64,
    /// k-NN top-1 of raw pixels (the floor).
    pub knn_raw: f64,
    /// Seconds of training before this process started.
    pub elapsed_s: f64,
    /// The run's `--seed`.
    pub seed: u64,
}

impl RunPosition {
    /// Reads the position from a checkpoint's metadata; `seed` must match the run's.
    pub fn from_metadata(md: &Metadata, seed: u64) -> Result<Self> {
        let pos = RunPosition {
            epoch: meta(md, "epoch")?,
            step: meta(md, "step")?,
            loss_sum: meta(md, "loss_sum")?,
            knn_before: meta(md, "knn_before")?,
            knn_raw: meta(md, "knn_raw")?,
            elapsed_s: meta(md, "elapsed_s")?,
            seed: meta(md, "seed")?,
        };
        if pos.seed != seed {
            return Err(RunError::new(format!(
                "--resume: the checkpoint was written with --seed {}, this run has --seed {seed}",
                pos.seed
            )));
        }
        Ok(pos)
    }

    /// The metadata of a checkpoint at this position, for architecture `arch`.
    pub fn metadata(&self, arch: &str) -> Metadata {
        let mut m = Metadata::new();
        m.insert(ARCH_KEY.into(), arch.into());
        m.insert("epoch".into(), self.epoch.to_string());
        m.insert("step".into(), self.step.to_string());
        m.insert("loss_sum".into(), self.loss_sum.to_string());
        m.insert("knn_before".into(), self.knn_before.to_string());
        m.insert("knn_raw".into(), self.knn_raw.to_string());
        m.insert("elapsed_s".into(), self.elapsed_s.to_string());
        m.insert("seed".into(), self.seed.to_string());
        m
    }
}
