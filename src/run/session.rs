//! The start of a training run, shared by the training examples: its files in `--output-dir`,
//! and either a fresh start (the raw-pixel k-NN floor and the k-NN before training measured
//! now, an empty `metrics.jsonl`) or `--resume` from the run's checkpoint (weights and
//! optimizer state, position, k-NN numbers and metrics history restored).

use super::ckpt::{self, RunPosition};
use super::metrics::{self, EpochMetrics};
use super::{ctx, Result, RunError};
use std::path::{Path, PathBuf};
use std::time::Instant;
use tessera_nn::checkpoint::StateDict;
use tessera_ssl::data::Dataset;
use tessera_ssl::eval::{raw_pixel_knn, KnnConfig};
use tessera_tensor::Backend;

/// The files a training run writes in its output directory.
#[derive(Clone, Debug)]
pub struct RunFiles {
    /// `checkpoint.safetensors`, rewritten atomically every epoch.
    pub checkpoint: PathBuf,
    /// `metrics.jsonl`, one line per epoch.
    pub metrics: PathBuf,
    /// `metrics.png`, the loss and k-NN plot.
    pub plot: PathBuf,
}

impl RunFiles {
    /// Creates `dir` if needed and names the run's files in it.
    pub fn create(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(ctx(&dir.display().to_string()))?;
        Ok(RunFiles {
            checkpoint: dir.join("checkpoint.safetensors"),
            metrics: dir.join("metrics.jsonl"),
            plot: dir.join("metrics.png"),
        })
    }
}

/// Where a run starts: its position (all zeros but the k-NN numbers for a fresh run) and the
/// metrics of its completed epochs.
#[derive(Clone, Debug)]
pub struct RunStart {
    pub position: RunPosition,
    pub history: Vec<EpochMetrics>,
}

/// What the run's model is evaluated on before training, and how.
pub struct FreshStart<'a, T> {
    /// The k-NN bank (labelled training images) and the test images.
    pub bank: &'a Dataset,
    pub test: &'a Dataset,
    /// Prints and returns the k-NN top-1 of the untrained model (the "before" number).
    pub knn_before: &'a dyn Fn(&mut T) -> Result<f64>,
}

/// Starts a run afresh, or with `resume` restores `trainer` from the run's checkpoint (which
/// must be for `arch` and written with `seed`, read onto `backend`) through `load`.
pub fn start_or_resume<B: Backend, T>(
    backend: &B,
    files: &RunFiles,
    resume: bool,
    (arch, seed): (&str, u64),
    trainer: &mut T,
    load: impl FnOnce(&mut T, &StateDict<B>) -> core::result::Result<(), String>,
    fresh: FreshStart<'_, T>,
) -> Result<RunStart> {
    if resume {
        let ck = ckpt::load_checked(&files.checkpoint, arch, backend)?;
        load(trainer, &ck.tensors).map_err(|e| {
            RunError::new(format!(
                "the checkpoint {} does not fit this model: {e}",
                files.checkpoint.display()
            ))
        })?;
        let position = RunPosition::from_metadata(&ck.metadata, seed)?;
        let history = metrics::resume_history(&files.metrics, position.epoch)?;
        println!(
            "resumed from {} at epoch {}, step {}",
            files.checkpoint.display(),
            position.epoch + 1,
            position.step
        );
        return Ok(RunStart { position, history });
    }
    metrics::write_jsonl(&files.metrics, &[])?;
    let knn_raw = raw_pixel_floor(fresh.bank, fresh.test, backend)?;
    let knn_before = (fresh.knn_before)(trainer)?;
    let position = RunPosition {
        epoch: 0,
        step: 0,
        loss_sum: 0.0,
        knn_before,
        knn_raw,
        elapsed_s: 0.0,
        seed,
    };
    Ok(RunStart {
        position,
        history: Vec::new(),
    })
}

/// Prints and returns the k-NN top-1 of raw pixels (k = 20, T = 0.07): the floor a learned
/// representation should beat, computed on `backend`.
pub fn raw_pixel_floor<B: Backend>(bank: &Dataset, test: &Dataset, backend: &B) -> Result<f64> {
    let t = Instant::now();
    let raw = raw_pixel_knn(
        bank,
        test,
        None,
        &KnnConfig::with_k(20.min(bank.len())),
        backend,
    )
    .map_err(ctx("raw-pixel k-NN"))?;
    let top1 = raw[0].top1;
    println!(
        "k-NN floor, raw pixels (k=20, T=0.07): top-1 {:.2}%  ({:.1}s)",
        100.0 * top1,
        t.elapsed().as_secs_f64()
    );
    Ok(top1)
}
