//! Run checkpoints: a state dict plus string metadata (position, recorded configuration,
//! normalization, ...) in one safetensors file, written atomically by [`save`].

use super::{signal, Result, RunError};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use tessera_nn::checkpoint::{Checkpoint, Metadata, StateDict};
use tessera_tensor::Backend;

/// The metadata key holding the architecture description.
pub const ARCH_KEY: &str = "arch";

/// Saves `tensors` (on any backend: copied to the host) and `metadata` to `path` atomically:
/// the bytes go to `<path>.tmp`, which is fsynced and renamed over `path`, then the directory
/// is fsynced. A kill at any moment leaves either the old or the new checkpoint at `path`
/// (and perhaps a partial `<path>.tmp`, which [`remove_stale_temp`] clears on resume).
pub fn save<B: Backend>(path: &Path, tensors: StateDict<B>, metadata: Metadata) -> Result<()> {
    // Writing copies every tensor to the host: first give the memory the backend caches for
    // training steps back to the system, so that the copies do not stack on top of it.
    if let Some(t) = tensors.values().next() {
        t.backend().empty_cache();
    }
    let err = |e: &dyn std::fmt::Display| {
        RunError::new(format!("writing the checkpoint {}: {e}", path.display()))
    };
    let bytes = Checkpoint { tensors, metadata }
        .to_bytes()
        .map_err(|e| err(&e))?;
    write_atomic(path, &bytes).map_err(|e| err(&e))
}

/// `<path>.tmp`, where [`save`] writes before renaming.
pub fn temp_path(path: &Path) -> PathBuf {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    PathBuf::from(tmp)
}

/// Removes a partial `<path>.tmp` left by a process killed while writing.
pub fn remove_stale_temp(path: &Path) {
    let _ = std::fs::remove_file(temp_path(path));
}

/// Temp file, fsync, rename, fsync of the directory. Written here rather than with
/// `tessera_nn::checkpoint::write_atomic` for the `ckpt` test pause halfway through the
/// write, which lets tests deliver a signal inside the write.
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = temp_path(path);
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        let (head, tail) = bytes.split_at(bytes.len() / 2);
        f.write_all(head)?;
        signal::test_pause("ckpt");
        f.write_all(tail)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    #[cfg(unix)]
    {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
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
    match md.get(key) {
        None => Err(RunError::new(format!(
            "the checkpoint's metadata lacks {key:?}"
        ))),
        Some(v) => v.parse().map_err(|_| {
            RunError::new(format!(
                "the checkpoint's metadata has an invalid {key:?}: {v:?}"
            ))
        }),
    }
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

/// Where a run is: what a checkpoint must record, besides the weights and the optimizer
/// state, for `--resume` to continue exactly (the next step of the epoch, the running loss
/// sum, the k-NN numbers measured before training and the training time so far).
#[derive(Clone, Debug, PartialEq)]
pub struct RunPosition {
    /// Completed epochs.
    pub epoch: usize,
    /// Completed steps of the current epoch. Equal to the steps per epoch when the epoch's
    /// steps are done but its evaluation is not (a stop during the epoch's k-NN).
    pub step: usize,
    /// Sum of the step losses of the current epoch.
    pub loss_sum: f64,
    /// Learning rate of the last step taken (the epoch's metrics report it).
    pub lr: f64,
    /// k-NN top-1 of the backbone before training (`None`: not measured yet).
    pub knn_before: Option<f64>,
    /// k-NN top-1 of raw pixels, the floor (`None`: not measured yet).
    pub knn_raw: Option<f64>,
    /// Seconds of training before this process started.
    pub elapsed_s: f64,
}

impl RunPosition {
    /// The start of a run: nothing done, nothing measured.
    pub fn start() -> Self {
        RunPosition {
            epoch: 0,
            step: 0,
            loss_sum: 0.0,
            lr: 0.0,
            knn_before: None,
            knn_raw: None,
            elapsed_s: 0.0,
        }
    }

    /// Reads the position from a checkpoint's metadata.
    pub fn from_metadata(md: &Metadata) -> Result<Self> {
        let optional = |key: &str| -> Result<Option<f64>> {
            md.contains_key(key).then(|| meta(md, key)).transpose()
        };
        Ok(RunPosition {
            epoch: meta(md, "epoch")?,
            step: meta(md, "step")?,
            loss_sum: meta(md, "loss_sum")?,
            // Absent in checkpoints written before it was recorded.
            lr: optional("lr")?.unwrap_or(0.0),
            knn_before: optional("knn_before")?,
            knn_raw: optional("knn_raw")?,
            elapsed_s: meta(md, "elapsed_s")?,
        })
    }

    /// The metadata of a checkpoint at this position, for architecture `arch`. Floats are
    /// written in Rust's shortest round-trip form, so they read back bit for bit.
    pub fn metadata(&self, arch: &str) -> Metadata {
        let mut m = Metadata::new();
        m.insert(ARCH_KEY.into(), arch.into());
        m.insert("epoch".into(), self.epoch.to_string());
        m.insert("step".into(), self.step.to_string());
        m.insert("loss_sum".into(), self.loss_sum.to_string());
        m.insert("lr".into(), self.lr.to_string());
        if let Some(k) = self.knn_before {
            m.insert("knn_before".into(), k.to_string());
        }
        if let Some(k) = self.knn_raw {
            m.insert("knn_raw".into(), k.to_string());
        }
        m.insert("elapsed_s".into(), self.elapsed_s.to_string());
        m
    }

    /// The global iteration of this position, `epoch * niter + step`; `None` on overflow.
    pub fn iteration(&self, niter: usize) -> Option<u64> {
        let it = self.epoch.checked_mul(niter)?.checked_add(self.step)?;
        u64::try_from(it).ok()
    }

    /// Checks that the position fits a run of `epochs` epochs of `niter` steps, and, when
    /// given, the trainer's iteration counter from the same checkpoint. All arithmetic is
    /// checked: a damaged or foreign counter is an error, never an overflow.
    pub fn check(&self, epochs: usize, niter: usize, iteration: Option<u64>) -> Result<()> {
        let at = format!("epoch {}, step {}", self.epoch, self.step);
        let run = format!("--epochs {epochs} of {niter} steps each");
        if self.epoch > epochs || self.step > niter || (self.epoch == epochs && self.step > 0) {
            return Err(RunError::new(format!(
                "--resume: the checkpoint's position ({at}) is outside this run ({run})"
            )));
        }
        let want = self.iteration(niter).ok_or_else(|| {
            RunError::new(format!(
                "--resume: the checkpoint's position ({at}) overflows the step counter"
            ))
        })?;
        match iteration {
            Some(it) if it != want => Err(RunError::new(format!(
                "--resume: the checkpoint's step counter ({it}) disagrees with its position \
                 ({at}, i.e. step {want} of {run}); the checkpoint is damaged or its metadata \
                 was edited"
            ))),
            _ => Ok(()),
        }
    }
}

/// The metadata key prefix of the recorded configuration: `config.<flag>`.
const CONFIG_PREFIX: &str = "config.";

/// The settings that determine a run's numbers (model, data, crops, schedule, lr, batch,
/// seed, epochs, ...), by flag name without `--`, as canonical strings of the effective
/// values (after presets and defaults). A checkpoint records them; `--resume` compares.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunConfig(BTreeMap<String, String>);

/// One setting that differs between a checkpoint and the flags given now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigChange {
    /// The flag, without `--`.
    pub flag: String,
    /// The checkpoint's value (`None`: not recorded).
    pub recorded: Option<String>,
    /// The value now (`None`: not a setting of this version).
    pub given: Option<String>,
}

impl std::fmt::Display for ConfigChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "(not recorded)".into());
        write!(
            f,
            "--{}: checkpoint {}, given {}",
            self.flag,
            show(&self.recorded),
            show(&self.given)
        )
    }
}

impl RunConfig {
    /// An empty configuration.
    pub fn new() -> Self {
        RunConfig::default()
    }

    /// Adds a setting: `flag` (without `--`) with its effective value.
    pub fn with(mut self, flag: &str, value: impl std::fmt::Display) -> Self {
        self.0.insert(flag.to_string(), value.to_string());
        self
    }

    /// The value of a setting.
    pub fn get(&self, flag: &str) -> Option<&str> {
        self.0.get(flag).map(String::as_str)
    }

    /// Records the configuration in checkpoint metadata: one `config.<flag>` key per
    /// setting (what `--resume` compares), and a one-line summary under `config` in the
    /// `field: value, ...` form that earlier versions wrote (snake-case names).
    pub fn write(&self, md: &mut Metadata) {
        for (k, v) in &self.0 {
            md.insert(format!("{CONFIG_PREFIX}{k}"), v.clone());
        }
        let summary: Vec<String> = self
            .0
            .iter()
            .map(|(k, v)| format!("{}: {v}", k.replace('-', "_")))
            .collect();
        md.insert("config".into(), summary.join(", "));
    }

    /// The configuration a checkpoint recorded (empty for checkpoints written before the
    /// configuration was recorded).
    pub fn read(md: &Metadata) -> Self {
        RunConfig(
            md.iter()
                .filter_map(|(k, v)| Some((k.strip_prefix(CONFIG_PREFIX)?.to_string(), v.clone())))
                .collect(),
        )
    }

    /// The settings whose value differs between `recorded` (a checkpoint's) and `self`.
    pub fn changes_from(&self, recorded: &RunConfig) -> Vec<ConfigChange> {
        let flags: std::collections::BTreeSet<&String> =
            self.0.keys().chain(recorded.0.keys()).collect();
        flags
            .into_iter()
            .filter(|f| self.0.get(*f) != recorded.0.get(*f))
            .map(|f| ConfigChange {
                flag: f.clone(),
                recorded: recorded.0.get(f).cloned(),
                given: self.0.get(f).cloned(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn position_round_trips_and_rejects_overflow() {
        let p = RunPosition {
            epoch: 1,
            step: 3,
            loss_sum: 0.1 + 0.2,
            lr: 1.25e-5,
            knn_before: Some(0.5),
            knn_raw: None,
            elapsed_s: 2.5,
        };
        let md = p.metadata("a");
        assert_eq!(RunPosition::from_metadata(&md).unwrap(), p);
        assert!(p.check(3, 5, Some(8)).is_ok());
        assert!(p.check(3, 5, Some(9)).is_err());
        assert!(p.check(3, 2, None).is_err());
        let huge = RunPosition {
            epoch: usize::MAX / 2,
            step: 0,
            ..p
        };
        assert!(huge.check(usize::MAX, 5, None).is_err());
    }

    #[test]
    fn config_changes_list_each_flag() {
        let a = RunConfig::new().with("lr", 0.0005).with("batch-size", 8);
        let b = RunConfig::new().with("lr", 0.001).with("batch-size", 8);
        let mut md = Metadata::new();
        a.write(&mut md);
        assert_eq!(RunConfig::read(&md), a);
        let ch = b.changes_from(&a);
        assert_eq!(ch.len(), 1);
        assert_eq!(ch[0].to_string(), "--lr: checkpoint 0.0005, given 0.001");
        assert!(a.changes_from(&a).is_empty());
    }
}
