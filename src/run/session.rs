//! A training run's life, shared by the training examples:
//!
//! - its files in `--output-dir`, and the refusal to start afresh over a run or over files
//!   that are not a run unless `--overwrite` is given ([`start_or_resume`]);
//! - a fresh start (the raw-pixel k-NN floor and the k-NN before training measured now, an
//!   empty `metrics.jsonl`) or `--resume`: the configuration the checkpoint recorded is
//!   compared with the flags given (a difference is refused, or with `--allow-config-change`
//!   reported as making the result irreproducible), the position is validated against the
//!   run's length and the trainer's step counter, and weights, optimizer state, position and
//!   metrics history are restored;
//! - checkpoints every `--save-every` steps and at each epoch's end, and the stop on SIGINT
//!   or SIGTERM at the next safe point with a checkpoint ([`Session`]).
//!
//! A resume from any checkpoint is bit-identical to the uninterrupted run: the per-step
//! random numbers and the data order are derived from (seed, epoch, step), and the checkpoint
//! holds everything else that evolves (weights, optimizer moments, the trainer's iteration,
//! which positions the schedules, DINO's center, the epoch's loss sum and last lr).

use super::ckpt::{self, ConfigChange, RunConfig, RunPosition};
use super::metrics::{self, EpochMetrics};
use super::plot::MetricsLabels;
use super::{ctx, signal, Result, RunError};
use std::path::Path;
use std::time::Instant;
use tessera_nn::checkpoint::{Checkpoint, Metadata, StateDict};
use tessera_ssl::augment::Normalize;
use tessera_ssl::data::Dataset;
use tessera_ssl::train::{Backbone, ByolTrainer, DinoTrainer};
use tessera_tensor::{Backend, DType, Tensor};

// The polled evaluation helpers live in their own file; the examples reach them through here.
use super::polled_eval::raw_pixel_floor_polled;
pub use super::polled_eval::{
    chunk_count, chunks, features_polled, knn_top1_polled, knn_units, raw_pixel_floor,
};
// So are the run's flags, options and files.
pub use super::options::{
    RunFiles, RunOptions, SaveEvery, ALLOW_CONFIG_CHANGE_FLAG, DEFAULT_SAVE_INTERVAL,
    OVERWRITE_FLAG, RESUME_FLAG, SAVE_EVERY_FLAG,
};

/// A trainer whose whole evolving state a checkpoint holds.
pub trait Checkpointable<B: Backend> {
    /// The state to save.
    fn state(&self) -> Result<StateDict<B>>;
    /// Restores a saved state; on error the trainer is unchanged.
    fn restore(&mut self, sd: &StateDict<B>) -> Result<()>;
}

impl<B: Backend, M: Backbone<B>> Checkpointable<B> for DinoTrainer<B, M> {
    fn state(&self) -> Result<StateDict<B>> {
        self.state_dict().map_err(ctx("state dict"))
    }
    fn restore(&mut self, sd: &StateDict<B>) -> Result<()> {
        self.load_state_dict(sd)
            .map_err(|e| RunError::new(e.to_string()))
    }
}

impl<B: Backend, M: Backbone<B>> Checkpointable<B> for ByolTrainer<B, M> {
    fn state(&self) -> Result<StateDict<B>> {
        self.state_dict().map_err(ctx("state dict"))
    }
    fn restore(&mut self, sd: &StateDict<B>) -> Result<()> {
        self.load_state_dict(sd)
            .map_err(|e| RunError::new(e.to_string()))
    }
}

/// What identifies and sizes a run.
#[derive(Clone, Debug)]
pub struct RunSpec {
    /// The architecture string a checkpoint must match.
    pub arch: String,
    /// Every setting that determines the run's numbers (`batch-size` among them).
    pub config: RunConfig,
    /// Metadata every checkpoint carries besides position and configuration.
    pub extra: Metadata,
    pub epochs: usize,
    /// Steps per epoch.
    pub niter: usize,
    /// The words of `metrics.png` (its raw-pixel line is filled in from the run).
    pub plot: MetricsLabels,
}

/// What the run's model is evaluated on before training, and how.
pub struct FreshStart<'a, T> {
    /// The k-NN bank (labelled training images) and the test images.
    pub bank: &'a Dataset,
    pub test: &'a Dataset,
    /// The standardisation of the raw-pixel floor (the model's input statistics): the fair
    /// floor, since k-NN on cosine similarity is not invariant to the pixels' mean. `None`:
    /// pixels in `[0, 1]`.
    pub normalize: Option<&'a Normalize>,
    /// Prints and returns the k-NN top-1 of the untrained model (the "before" number);
    /// `None` when a signal stopped it.
    pub knn_before: &'a dyn Fn(&mut T) -> Result<Option<f64>>,
}

/// A run in progress: where it is, its metrics so far, and when it checkpoints.
#[derive(Debug)]
pub struct Session {
    pub files: RunFiles,
    /// The position; the training loop advances it with [`Session::step_done`].
    pub pos: RunPosition,
    /// The metrics of the completed epochs.
    pub history: Vec<EpochMetrics>,
    spec: RunSpec,
    save_every: SaveEvery,
    /// Seconds of training before this process, and when this process took over.
    elapsed_before: f64,
    started: Instant,
    last_save: Instant,
    /// Whether the position moved since the last checkpoint.
    dirty: bool,
}

/// Starts a run in `dir` afresh or, with `--resume`, from its checkpoint (restored into
/// `trainer`, read onto `backend`), then measures what a fresh start measures before training
/// if the checkpoint does not hold it yet. From here on SIGINT/SIGTERM are polled
/// ([`signal::defer`]): a stop in this function or later writes a checkpoint.
pub fn start_or_resume<B: Backend, T: Checkpointable<B>>(
    backend: &B,
    dir: &Path,
    opts: &RunOptions,
    spec: RunSpec,
    trainer: &mut T,
    fresh: FreshStart<'_, T>,
) -> Result<Session> {
    if !opts.resume {
        check_fresh_dir(dir, opts.overwrite, backend)?;
    }
    let files = RunFiles::create(dir)?;
    let (pos, history) = if opts.resume {
        resume(backend, &files, opts, &spec, trainer)?
    } else {
        metrics::write_jsonl(&files.metrics, &[])?;
        (RunPosition::start(), Vec::new())
    };
    let mut run = Session {
        files,
        elapsed_before: pos.elapsed_s,
        pos,
        history,
        spec,
        save_every: opts.save_every,
        started: Instant::now(),
        last_save: Instant::now(),
        dirty: !opts.resume,
    };
    signal::defer();
    run.measure_start(backend, trainer, fresh)?;
    Ok(run)
}

/// Refuses to start afresh in `dir` when it holds a run or files that are not a run, unless
/// `overwrite`, which removes the run's files (and leaves other files alone).
fn check_fresh_dir<B: Backend>(dir: &Path, overwrite: bool, backend: &B) -> Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(ctx(&format!("--output-dir {}", dir.display()))(e)),
    };
    let files = RunFiles::in_dir(dir);
    let ours = files.all();
    let mut foreign: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| !ours.contains(&e.path()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    foreign.sort();
    // A run killed before its first checkpoint leaves only an empty metrics.jsonl: nothing
    // to lose.
    let has_run =
        files.checkpoint.exists() || std::fs::metadata(&files.metrics).is_ok_and(|m| m.len() > 0);
    if overwrite {
        if has_run {
            println!("--overwrite: replacing the run in {}", dir.display());
        }
        for p in ours.iter().filter(|p| p.exists()) {
            std::fs::remove_file(p).map_err(ctx(&format!("--overwrite: {}", p.display())))?;
        }
        return Ok(());
    }
    let shown = dir.display();
    if !foreign.is_empty() {
        let more = if foreign.len() > 3 { ", ..." } else { "" };
        foreign.truncate(3);
        return Err(RunError::new(format!(
            "--output-dir {shown} holds files that are not a Tessera run ({}{more}): choose \
             an empty directory, or pass --overwrite to write this run's files among them",
            foreign.join(", ")
        )));
    }
    if !has_run {
        return Ok(());
    }
    let what = match Checkpoint::load(&files.checkpoint, backend) {
        Ok(ck) => {
            let pos = RunPosition::from_metadata(&ck.metadata);
            let epochs = RunConfig::read(&ck.metadata)
                .get("epochs")
                .and_then(|e| e.parse::<usize>().ok());
            match (pos, epochs) {
                (Ok(p), Some(e)) if p.epoch >= e => format!("a finished run ({e} epochs)"),
                (Ok(p), _) => format!(
                    "an unfinished run (stopped at epoch {}, step {})",
                    p.epoch + 1,
                    p.step
                ),
                (Err(_), _) => "a run".to_string(),
            }
        }
        Err(_) if !files.checkpoint.exists() => "a run's metrics".to_string(),
        Err(e) => format!("a run whose checkpoint cannot be read ({e})"),
    };
    Err(RunError::new(format!(
        "--output-dir {shown} already holds {what}: pass --resume to continue it or \
         --overwrite to start again"
    )))
}

/// The trainer's iteration counter in a state dict, if it holds a valid one.
fn iteration_of<B: Backend>(sd: &StateDict<B>) -> Option<u64> {
    let v = sd.get("iteration")?.item().ok()?;
    (v >= 0.0 && v.fract() == 0.0 && v < 9.0e15).then_some(v as u64)
}

/// Restores the run in `files` into `trainer`: configuration compared, position validated.
fn resume<B: Backend, T: Checkpointable<B>>(
    backend: &B,
    files: &RunFiles,
    opts: &RunOptions,
    spec: &RunSpec,
    trainer: &mut T,
) -> Result<(RunPosition, Vec<EpochMetrics>)> {
    let ck = ckpt::load_checked(&files.checkpoint, &spec.arch, backend)?;
    ckpt::remove_stale_temp(&files.checkpoint);
    let recorded = RunConfig::read(&ck.metadata);
    let changes = spec.config.changes_from(&recorded);
    let mut pos = RunPosition::from_metadata(&ck.metadata)?;
    let mut tensors = ck.tensors;
    let list = |c: &[ConfigChange]| {
        c.iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join("; ")
    };
    if changes.is_empty() {
        pos.check(spec.epochs, spec.niter, iteration_of(&tensors))?;
    } else if !opts.allow_config_change {
        return Err(RunError::new(format!(
            "--resume: flags that change the numbers differ from the checkpoint's ({}): \
             resume with the checkpoint's values, or pass --allow-config-change to continue \
             anyway (the result is then not reproducible)",
            list(&changes)
        )));
    } else {
        eprintln!(
            "warning: --allow-config-change: continuing with changed settings ({}); the \
             result is no longer reproducible",
            list(&changes)
        );
        let it = adapt_position(&mut pos, &recorded, spec)?;
        // The trainer's schedules are indexed by its iteration counter: point it at the
        // mapped position in the new schedules.
        if tensors.contains_key("iteration") {
            let t = Tensor::scalar(it as f64, DType::F64, backend).map_err(ctx("iteration"))?;
            tensors.insert("iteration".into(), t);
        }
    }
    trainer.restore(&tensors).map_err(|e| {
        RunError::new(format!(
            "the checkpoint {} does not fit this model: {e}",
            files.checkpoint.display()
        ))
    })?;
    let history = metrics::resume_history(&files.metrics, pos.epoch)?;
    println!(
        "resumed from {} at epoch {}, step {}",
        files.checkpoint.display(),
        pos.epoch + 1,
        pos.step
    );
    Ok((pos, history))
}

/// Under `--allow-config-change`: maps the checkpoint's position onto the new run's length
/// (a changed batch size keeps the images seen in the epoch, counted in new batches, and the
/// mean loss so far). Returns the new global iteration.
fn adapt_position(pos: &mut RunPosition, recorded: &RunConfig, spec: &RunSpec) -> Result<u64> {
    if pos.epoch > spec.epochs {
        return Err(RunError::new(format!(
            "--epochs {}: the checkpoint has already completed {} epochs",
            spec.epochs, pos.epoch
        )));
    }
    let batch = |c: &RunConfig| c.get("batch-size").and_then(|b| b.parse::<usize>().ok());
    if let (Some(old), Some(new)) = (batch(recorded), batch(&spec.config)) {
        if old != new && pos.step > 0 && new > 0 {
            let images = pos.step.checked_mul(old).ok_or_else(|| {
                RunError::new(format!(
                    "--resume: the checkpoint's step {} of --batch-size {old} overflows",
                    pos.step
                ))
            })?;
            let step = (images / new).min(spec.niter);
            pos.loss_sum *= step as f64 / pos.step as f64;
            pos.step = step;
        }
    }
    pos.step = pos.step.min(spec.niter);
    if pos.epoch == spec.epochs {
        pos.step = 0;
    }
    pos.iteration(spec.niter).ok_or_else(|| {
        RunError::new(format!(
            "--resume: the checkpoint's position (epoch {}, step {}) overflows the step counter",
            pos.epoch, pos.step
        ))
    })
}

impl Session {
    /// Seconds of training so far, over every process of the run.
    pub fn elapsed_s(&self) -> f64 {
        self.elapsed_before + self.started.elapsed().as_secs_f64()
    }

    /// The k-NN top-1 before training.
    pub fn knn_before(&self) -> f64 {
        self.pos.knn_before.unwrap_or(f64::NAN)
    }

    /// The raw-pixel k-NN floor.
    pub fn knn_raw(&self) -> f64 {
        self.pos.knn_raw.unwrap_or(f64::NAN)
    }

    /// The raw-pixel floor and the k-NN before training, unless the checkpoint holds them
    /// (a stop during them leaves a checkpoint at the start without them).
    fn measure_start<B: Backend, T: Checkpointable<B>>(
        &mut self,
        backend: &B,
        trainer: &mut T,
        fresh: FreshStart<'_, T>,
    ) -> Result<()> {
        let missing = self.pos.knn_raw.is_none() || self.pos.knn_before.is_none();
        if missing && (self.pos.epoch, self.pos.step) != (0, 0) {
            return Err(RunError::new(format!(
                "the checkpoint {} lacks the k-NN numbers before training",
                self.files.checkpoint.display()
            )));
        }
        if self.pos.knn_raw.is_none() {
            match raw_pixel_floor_polled(fresh.bank, fresh.test, fresh.normalize, backend)? {
                Some(v) => self.pos.knn_raw = Some(v),
                None => return Err(self.stop(trainer)),
            }
            self.dirty = true;
        }
        if self.pos.knn_before.is_none() {
            match (fresh.knn_before)(trainer)? {
                Some(v) => self.pos.knn_before = Some(v),
                None => return Err(self.stop(trainer)),
            }
            self.dirty = true;
        }
        Ok(())
    }

    /// The checkpoint metadata of the current position.
    fn metadata(&self) -> Metadata {
        let pos = RunPosition {
            elapsed_s: self.elapsed_s(),
            ..self.pos.clone()
        };
        let mut m = pos.metadata(&self.spec.arch);
        self.spec.config.write(&mut m);
        m.extend(self.spec.extra.clone());
        m
    }

    /// Writes the checkpoint of the current position (atomically).
    pub fn save<B: Backend, T: Checkpointable<B>>(&mut self, trainer: &T) -> Result<()> {
        let md = self.metadata();
        ckpt::save(&self.files.checkpoint, trainer.state()?, md)?;
        self.last_save = Instant::now();
        self.dirty = false;
        Ok(())
    }

    /// The stop on a signal: writes the checkpoint unless it is current and returns the
    /// error that exits with 130 (SIGINT) or 143 (SIGTERM); if the write fails, its error.
    pub fn stop<B: Backend, T: Checkpointable<B>>(&mut self, trainer: &T) -> RunError {
        if self.dirty {
            if let Err(e) = self.save(trainer) {
                return e;
            }
        }
        RunError::interrupted(format!(
            "interrupted ({}): checkpoint written to {} at epoch {}, step {} (continue with \
             --resume)",
            signal::received().unwrap_or("signal"),
            self.files.checkpoint.display(),
            self.pos.epoch + 1,
            self.pos.step
        ))
    }

    /// Records a finished training step: its loss and learning rate.
    pub fn step_done(&mut self, loss: f64, lr: f64) {
        self.pos.step += 1;
        self.pos.loss_sum += loss;
        self.pos.lr = lr;
        self.dirty = true;
    }

    /// After each step: a mid-epoch checkpoint when `--save-every` says one is due, and the
    /// stop (with a checkpoint) when a signal arrived.
    pub fn after_step<B: Backend, T: Checkpointable<B>>(&mut self, trainer: &T) -> Result<()> {
        signal::test_pause("step");
        if signal::interrupted() {
            return Err(self.stop(trainer));
        }
        let due = match self.save_every {
            SaveEvery::Steps(n) => {
                n > 0
                    && self
                        .pos
                        .iteration(self.spec.niter)
                        .is_some_and(|it| it % n as u64 == 0)
            }
            SaveEvery::Interval(d) => self.last_save.elapsed() >= d,
        };
        // The epoch's last step is followed by the end-of-epoch checkpoint anyway.
        if due && self.pos.step < self.spec.niter {
            self.save(trainer)?;
        }
        if signal::interrupted() {
            return Err(self.stop(trainer));
        }
        Ok(())
    }

    /// The end of an epoch: its metrics appended, the position moved to the next epoch, the
    /// checkpoint and the plot written; then the stop if a signal arrived and epochs remain.
    pub fn end_epoch<B: Backend, T: Checkpointable<B>>(
        &mut self,
        trainer: &T,
        m: EpochMetrics,
    ) -> Result<()> {
        metrics::append_jsonl(&self.files.metrics, &m)?;
        self.history.push(m);
        self.pos.epoch += 1;
        self.pos.step = 0;
        self.pos.loss_sum = 0.0;
        self.dirty = true;
        self.save(trainer)?;
        let labels = MetricsLabels {
            knn_raw: self.pos.knn_raw,
            ..self.spec.plot.clone()
        };
        metrics::plot_png_with(
            &self.files.plot,
            &self.history,
            self.pos.knn_before,
            &labels,
        )?;
        if signal::interrupted() && self.pos.epoch < self.spec.epochs {
            return Err(self.stop(trainer));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_the_range() {
        let c: Vec<_> = chunks(5, 2).collect();
        assert_eq!(c, vec![0..2, 2..4, 4..5]);
        assert_eq!(chunk_count(5, 2), 3);
        assert_eq!(chunks(0, 2).count(), 0);
    }

    #[test]
    fn a_changed_batch_size_keeps_the_images_seen() {
        let spec = RunSpec {
            arch: "a".into(),
            config: RunConfig::new().with("batch-size", 4),
            extra: Metadata::new(),
            epochs: 3,
            niter: 10,
            plot: MetricsLabels::default(),
        };
        let recorded = RunConfig::new().with("batch-size", 8);
        let mut pos = RunPosition {
            epoch: 1,
            step: 3,
            loss_sum: 3.0,
            ..RunPosition::start()
        };
        assert_eq!(adapt_position(&mut pos, &recorded, &spec).unwrap(), 16);
        assert_eq!((pos.step, pos.loss_sum), (6, 6.0));
        let mut far = RunPosition {
            epoch: 1,
            step: usize::MAX,
            ..RunPosition::start()
        };
        assert!(adapt_position(&mut far, &recorded, &spec).is_err());
    }
}
