//! What a training run is told by its flags (`--resume`, `--overwrite`,
//! `--allow-config-change`, `--save-every`: [`RunOptions`]) and the files it writes in its
//! output directory ([`RunFiles`]). [`super::session`] runs the run with them.

use super::args::{Flag, Parsed};
use super::{ckpt, ctx, Result, RunError};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `--resume`.
pub const RESUME_FLAG: Flag = Flag::switch(
    "resume",
    "Continue from <output-dir>/checkpoint.safetensors (give the same flags as the first run)",
);
/// `--overwrite`.
pub const OVERWRITE_FLAG: Flag = Flag::switch(
    "overwrite",
    "Start afresh in an --output-dir that already holds a run (or other files), replacing the run's files",
);
/// `--allow-config-change`.
pub const ALLOW_CONFIG_CHANGE_FLAG: Flag = Flag::switch(
    "allow-config-change",
    "With --resume: continue although flags that change the numbers differ from the checkpoint's (the result is then not reproducible)",
);
/// `--save-every`.
pub const SAVE_EVERY_FLAG: Flag = Flag::value(
    "save-every",
    "STEPS",
    "Also checkpoint every STEPS training steps, mid-epoch (0: only at epoch ends)",
)
.default_note("every 10 minutes of training");

/// The interval of the mid-epoch checkpoints when `--save-every` is not given.
pub const DEFAULT_SAVE_INTERVAL: Duration = Duration::from_secs(600);

/// When a run checkpoints besides the end of each epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaveEvery {
    /// After every `n`-th global step (0: never mid-epoch).
    Steps(usize),
    /// After the first step that ends this long after the last checkpoint (or the start).
    Interval(Duration),
}

/// The flags that control a run's files rather than its numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunOptions {
    pub resume: bool,
    pub overwrite: bool,
    pub allow_config_change: bool,
    pub save_every: SaveEvery,
}

impl Default for RunOptions {
    /// A fresh start, mid-epoch checkpoints every [`DEFAULT_SAVE_INTERVAL`].
    fn default() -> Self {
        RunOptions {
            resume: false,
            overwrite: false,
            allow_config_change: false,
            save_every: SaveEvery::Interval(DEFAULT_SAVE_INTERVAL),
        }
    }
}

impl RunOptions {
    /// `--resume`, `--overwrite`, `--allow-config-change` and `--save-every`.
    pub fn from_args(p: &Parsed) -> Result<Self> {
        let opts = RunOptions {
            resume: p.switch("resume"),
            overwrite: p.switch("overwrite"),
            allow_config_change: p.switch("allow-config-change"),
            save_every: match p.get::<usize>("save-every")? {
                Some(n) => SaveEvery::Steps(n),
                None => SaveEvery::Interval(DEFAULT_SAVE_INTERVAL),
            },
        };
        if opts.resume && opts.overwrite {
            return Err(RunError::usage(
                "--resume continues the run in --output-dir and --overwrite replaces it: give one",
            ));
        }
        if opts.allow_config_change && !opts.resume {
            return Err(RunError::usage(
                "--allow-config-change applies only with --resume",
            ));
        }
        Ok(opts)
    }
}

/// The files a training run writes in its output directory.
#[derive(Clone, Debug)]
pub struct RunFiles {
    /// `checkpoint.safetensors`, rewritten atomically at epoch ends and every `--save-every`.
    pub checkpoint: PathBuf,
    /// `metrics.jsonl`, one line per epoch.
    pub metrics: PathBuf,
    /// `metrics.png`, the loss and k-NN plot.
    pub plot: PathBuf,
}

impl RunFiles {
    /// Names the run's files in `dir` (creates nothing).
    pub fn in_dir(dir: &Path) -> Self {
        RunFiles {
            checkpoint: dir.join("checkpoint.safetensors"),
            metrics: dir.join("metrics.jsonl"),
            plot: dir.join("metrics.png"),
        }
    }

    /// Creates `dir` if needed and names the run's files in it.
    pub fn create(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(ctx(&dir.display().to_string()))?;
        Ok(RunFiles::in_dir(dir))
    }

    /// The closing line of a run: `outputs: <metrics>, <plot>, <checkpoint>`.
    pub fn summary(&self) -> String {
        format!(
            "outputs: {}, {}, {}",
            self.metrics.display(),
            self.plot.display(),
            self.checkpoint.display()
        )
    }

    /// Every file a run may leave: its files and their temporaries.
    pub(super) fn all(&self) -> Vec<PathBuf> {
        [&self.checkpoint, &self.metrics, &self.plot]
            .into_iter()
            .flat_map(|p| [p.clone(), ckpt::temp_path(p)])
            .collect()
    }
}
