//! `dino_vit_s`'s flags, presets and the configuration a checkpoint records.
//!
//! The default preset is sized for 28-px images and ten minutes on two CPU cores: a ViT 192
//! wide and 6 deep with 7-px patches (16 patches + CLS), batch 128, a 2048-way DINO head,
//! 2 global crops of 28 px (scale 0.4–1) and no local crops (`--local-crops N` adds 14-px
//! ones at scale 0.1–0.4: 2×2 patches, which cost more than they teach here), no blur or
//! solarization, schedules counted in steps (warm-up 10%, last layer frozen for 5%, teacher
//! EMA 0.99 → 1), and a run of 8 epochs that is the start of a 20-epoch schedule
//! (`--schedule-epochs`): a complete short schedule spends most of its steps warming up and
//! decaying, and learns less than the same steps near the peak learning rate. Why each
//! choice: README.md, "Train DINO". `--preset long` trains the same recipe to the end of a
//! complete 36-epoch schedule (under an hour on two cores). `--preset paper` is DINO's
//! ViT-S/16 recipe at 224 px with its epoch schedules (for GPUs).

use std::path::PathBuf;
use tessera::run::args::{Flag, Parsed};
use tessera::run::ckpt::RunConfig;
use tessera::run::device::DEVICE_FLAG;
use tessera::run::precision::{Precision, PRECISION_FLAG};
use tessera::run::session::{self, RunOptions};
use tessera::run::{data, trace, Device, Result, RunError};

pub const ABOUT: &str = "DINO self-supervised training of a ViT on Fashion-MNIST (or --data), \
with k-NN evaluation of the student and the teacher before and after training. The default \
preset trains a small ViT (192 wide, 6 deep, patch 7) in about 10 minutes on 2 CPU cores; \
--preset long trains it on a complete 36-epoch schedule (under an hour); --preset paper is DINO's ViT-S/16 at 224 px (a GPU job)";

// Defaults that a preset changes are notes: "<default preset>; <preset>: <value>, ...".
pub const FLAGS: &[Flag] = &[
    Flag::value("data", "DIR", "Dataset folder: IDX, CIFAR binaries or an image folder").default_note("the embedded data/fashion-mnist"),
    Flag::value("resize", "PX", data::RESIZE_HELP).default_note(data::RESIZE_DEFAULT),
    Flag::value("preset", "NAME", "default (small ViT, ~10 min on 2 cores) | long (the same ViT, a complete 36-epoch schedule, under an hour on 2 cores) | paper (ViT-S/16, 224/96 crops, out_dim 65536, DINO's 100-epoch schedule; for GPUs) | tiny (for tests)").default("default"),
    Flag::value("epochs", "N", "Training epochs (passes over the training images)").default_note("8; long: 36, paper: 100, tiny: 3"),
    Flag::value("schedule-epochs", "N", "Epochs the schedules (warm-up, cosine lr and weight decay, EMA momentum) span; the run stops after --epochs of them, so a short run is the start of a longer schedule and spends its steps near the peak learning rate").default_note("20; long, paper and tiny: --epochs"),
    Flag::value("batch-size", "N", "Images per step").default_note("128; paper: 64, tiny: 8"),
    Flag::value("lr", "LR", "Base learning rate for a batch of 256 (peak = lr * batch / 256)").default("0.0005"),
    Flag::value("schedule", "steps|epochs", "Unit of the warm-ups and of the frozen last layer (steps: for short runs)").default_note("steps; paper: epochs"),
    Flag::value("warmup-steps", "N", "Steps of linear learning-rate warm-up (--schedule steps)").default_note("10% of the schedule's steps"),
    Flag::value("warmup-epochs", "N", "Epochs of linear learning-rate warm-up (--schedule epochs)").default_note("paper: 10"),
    Flag::value("freeze-last-layer-steps", "N", "Steps during which the head's last layer is not updated (--schedule steps)").default_note("5% of the schedule's steps"),
    Flag::value("freeze-last-layer", "N", "Epochs during which the head's last layer is not updated (--schedule epochs)").default_note("paper: 1"),
    Flag::value("teacher-temp", "T", "Teacher temperature after the warm-up").default_note("0.04; paper: 0.07"),
    Flag::value("warmup-teacher-temp-steps", "N", "Steps of linear teacher-temperature warm-up from 0.04 (--schedule steps)").default_note("0"),
    Flag::value("warmup-teacher-temp-epochs", "N", "Epochs of linear teacher-temperature warm-up from 0.04 (--schedule epochs)").default_note("paper: 30"),
    Flag::value("momentum-teacher", "M", "Teacher EMA momentum at the start (cosine to 1)").default_note("0.99; paper: 0.996"),
    Flag::value("norm-last-layer", "true|false", "Weight-normalize the head's last layer with a fixed norm (DINO recommends false for ViT-S: better, less stable)").default("true"),
    Flag::value("img-size", "PX", "Global crop side").default_note("the data's image side; paper: 224"),
    Flag::value("local-size", "PX", "Local crop side").default_note("img-size / 2; paper: 96"),
    Flag::value("patch-size", "PX", "ViT patch side; must divide img-size and local-size").default_note("7; paper: 16"),
    Flag::value("local-crops", "N", "Local crops per image").default_note("0; paper: 8, tiny: 2"),
    Flag::value("blur-solarize", "true|false", "DINO's Gaussian blur and solarization (off for 28-px images: they erase what identifies a garment)").default_note("false; paper: true"),
    Flag::value("out-dim", "K", "DINO head output dimension").default_note("2048; paper: 65536, tiny: 64"),
    Flag::value("train-images", "N", "Train on a class-balanced subset of N images (0 = all)").default_note("0; tiny: 40"),
    Flag::value("eval-train", "N", "Train-split images for the k-NN bank (class-balanced; 0 = all)").default_note("0; tiny: 100"),
    Flag::value("eval-test", "N", "Test-split images for the k-NN evaluation (class-balanced; 0 = all)").default_note("0; tiny: 50"),
    Flag::value("knn-every", "N", "Also run the k-NN evaluation after every N-th epoch (0: only after the last)").default_note("0; long: 6, tiny: 1"),
    DEVICE_FLAG,
    PRECISION_FLAG,
    Flag::value("seed", "N", "Random seed").default("0"),
    Flag::value("output-dir", "DIR", "Where metrics, the plot and the checkpoint go").default("runs/dino_vit_s"),
    session::RESUME_FLAG,
    session::OVERWRITE_FLAG,
    session::ALLOW_CONFIG_CHANGE_FLAG,
    session::SAVE_EVERY_FLAG,
    trace::TRACE_FLAG,
    Flag::value("embed-dim", "N", "ViT width").default_note("192; paper: 384, tiny: 32"),
    Flag::value("depth", "N", "ViT depth").default_note("6; paper: 12, tiny: 2"),
    Flag::value("heads", "N", "ViT attention heads").default_note("3; paper: 6, tiny: 2"),
    Flag::value("head-hidden", "N", "DINO head hidden width (test/debug override)").default_note("2048; tiny: 64").hide(),
    Flag::value("head-bottleneck", "N", "DINO head bottleneck (test/debug override)").default_note("256; tiny: 16").hide(),
];

/// Everything a run is configured by. Field names are the flags' names in snake case: the
/// checkpoint records this struct's `Debug` and a test compares it with `--help`.
#[derive(Clone, Debug)]
pub struct Config {
    pub data: PathBuf,
    pub resize: Option<usize>,
    pub preset: String,
    pub epochs: usize,
    /// `None`: `epochs` (a complete schedule).
    pub schedule_epochs: Option<usize>,
    pub batch_size: usize,
    pub lr: f64,
    /// True: the warm-ups and the frozen last layer count steps (`--schedule steps`).
    pub schedule_in_steps: bool,
    /// `None`: 10% of the run's steps.
    pub warmup_steps: Option<usize>,
    pub warmup_epochs: usize,
    /// `None`: 5% of the run's steps.
    pub freeze_last_layer_steps: Option<usize>,
    pub freeze_last_layer: usize,
    pub teacher_temp: f64,
    pub warmup_teacher_temp_steps: usize,
    pub warmup_teacher_temp_epochs: usize,
    pub momentum_teacher: f64,
    pub norm_last_layer: bool,
    pub img_size: Option<usize>,
    pub local_size: Option<usize>,
    pub patch_size: usize,
    pub local_crops: usize,
    pub blur_solarize: bool,
    /// Random-resized-crop area ranges of the global and local crops (preset only).
    pub global_scale: (f64, f64),
    pub local_scale: (f64, f64),
    pub out_dim: usize,
    pub train_images: usize,
    pub eval_train: usize,
    pub eval_test: usize,
    pub knn_every: usize,
    pub device: Device,
    pub precision: Precision,
    pub seed: u64,
    pub output_dir: PathBuf,
    pub run: RunOptions,
    /// `--trace DIR` (not part of the trajectory: it only records it).
    pub trace: Option<PathBuf>,
    pub embed_dim: usize,
    pub depth: usize,
    pub heads: usize,
    pub head_hidden: usize,
    pub head_bottleneck: usize,
}

impl Config {
    pub fn preset(name: &str) -> Result<Config> {
        let base = Config {
            data: data::default_data_dir(),
            resize: None,
            preset: name.into(),
            epochs: 8,
            schedule_epochs: Some(20),
            batch_size: 128,
            lr: 0.0005,
            schedule_in_steps: true,
            warmup_steps: None,
            warmup_epochs: 0,
            freeze_last_layer_steps: None,
            freeze_last_layer: 0,
            teacher_temp: 0.04,
            warmup_teacher_temp_steps: 0,
            warmup_teacher_temp_epochs: 0,
            momentum_teacher: 0.99,
            norm_last_layer: true,
            img_size: None,
            local_size: None,
            patch_size: 7,
            // At 28 px a 14-px local crop is 2x2 patches: its views cost 37% of a step and
            // taught less than the images that time buys (README.md, "Train DINO").
            local_crops: 0,
            blur_solarize: false,
            global_scale: (0.4, 1.0),
            // DINO's 0.05 lower bound at 14 px would be a crop of 3 px.
            local_scale: (0.1, 0.4),
            out_dim: 2048,
            train_images: 0,
            eval_train: 0,
            eval_test: 0,
            knn_every: 0,
            device: Device::Cpu,
            precision: Precision::F32,
            seed: 0,
            output_dir: PathBuf::from("runs/dino_vit_s"),
            run: RunOptions::default(),
            trace: None,
            embed_dim: 192,
            depth: 6,
            heads: 3,
            head_hidden: 2048,
            head_bottleneck: 256,
        };
        match name {
            "default" => Ok(base),
            // The default's recipe, trained to the end of a complete schedule: what the
            // model learns from the embedded images when the run is not cut short.
            "long" => Ok(Config {
                epochs: 36,
                schedule_epochs: None,
                knn_every: 6,
                ..base
            }),
            "paper" => Ok(Config {
                epochs: 100,
                schedule_epochs: None,
                batch_size: 64,
                schedule_in_steps: false,
                warmup_epochs: 10,
                freeze_last_layer: 1,
                teacher_temp: 0.07,
                warmup_teacher_temp_epochs: 30,
                momentum_teacher: 0.996,
                img_size: Some(224),
                local_size: Some(96),
                patch_size: 16,
                local_crops: 8,
                blur_solarize: true,
                local_scale: (0.05, 0.4),
                out_dim: 65536,
                embed_dim: 384,
                depth: 12,
                heads: 6,
                ..base
            }),
            "tiny" => Ok(Config {
                epochs: 3,
                schedule_epochs: None,
                batch_size: 8,
                local_crops: 2,
                out_dim: 64,
                train_images: 40,
                eval_train: 100,
                eval_test: 50,
                knn_every: 1,
                embed_dim: 32,
                depth: 2,
                heads: 2,
                head_hidden: 64,
                head_bottleneck: 16,
                ..base
            }),
            other => Err(RunError::usage(format!(
                "--preset: expected default, long, paper or tiny, got {other:?}"
            ))),
        }
    }

    pub fn from_args(p: &Parsed) -> Result<Config> {
        let c = Config::preset(p.raw("preset").unwrap_or("default"))?;
        let schedule_in_steps = match p.raw("schedule") {
            None => c.schedule_in_steps,
            Some("steps") => true,
            Some("epochs") => false,
            Some(other) => {
                return Err(RunError::usage(format!(
                    "--schedule {other}: expected steps or epochs"
                )))
            }
        };
        // A length in the other unit would be ignored: refuse it instead.
        let (unit, other) = if schedule_in_steps {
            ("steps", "epochs")
        } else {
            ("epochs", "steps")
        };
        for flag in [
            "warmup-epochs",
            "freeze-last-layer",
            "warmup-teacher-temp-epochs",
            "warmup-steps",
            "freeze-last-layer-steps",
            "warmup-teacher-temp-steps",
        ] {
            let is_steps = flag.ends_with("-steps");
            if p.raw(flag).is_some() && is_steps != schedule_in_steps {
                return Err(RunError::usage(format!(
                    "--{flag} counts {other}, but this run's schedules count {unit} \
                     (--schedule {unit}{}): use the {unit} form or --schedule {other}",
                    if p.raw("schedule").is_none() {
                        format!(", from --preset {}", c.preset)
                    } else {
                        String::new()
                    }
                )));
            }
        }
        let run = RunOptions::from_args(p)?;
        let cfg = Config {
            data: p.path("data").unwrap_or(c.data),
            resize: p.get("resize")?,
            epochs: p.get_or("epochs", c.epochs)?,
            schedule_epochs: p.get("schedule-epochs")?.or(c.schedule_epochs),
            batch_size: p.get_or("batch-size", c.batch_size)?,
            lr: p.get_or("lr", c.lr)?,
            schedule_in_steps,
            warmup_steps: p.get("warmup-steps")?.or(c.warmup_steps),
            warmup_epochs: p.get_or("warmup-epochs", c.warmup_epochs)?,
            freeze_last_layer_steps: p
                .get("freeze-last-layer-steps")?
                .or(c.freeze_last_layer_steps),
            freeze_last_layer: p.get_or("freeze-last-layer", c.freeze_last_layer)?,
            teacher_temp: p.get_or("teacher-temp", c.teacher_temp)?,
            warmup_teacher_temp_steps: p
                .get_or("warmup-teacher-temp-steps", c.warmup_teacher_temp_steps)?,
            warmup_teacher_temp_epochs: p
                .get_or("warmup-teacher-temp-epochs", c.warmup_teacher_temp_epochs)?,
            momentum_teacher: p.get_or("momentum-teacher", c.momentum_teacher)?,
            norm_last_layer: p.get_or("norm-last-layer", c.norm_last_layer)?,
            img_size: p.get("img-size")?.or(c.img_size),
            local_size: p.get("local-size")?.or(c.local_size),
            patch_size: p.get_or("patch-size", c.patch_size)?,
            local_crops: p.get_or("local-crops", c.local_crops)?,
            blur_solarize: p.get_or("blur-solarize", c.blur_solarize)?,
            global_scale: c.global_scale,
            local_scale: c.local_scale,
            out_dim: p.get_or("out-dim", c.out_dim)?,
            train_images: p.get_or("train-images", c.train_images)?,
            eval_train: p.get_or("eval-train", c.eval_train)?,
            eval_test: p.get_or("eval-test", c.eval_test)?,
            knn_every: p.get_or("knn-every", c.knn_every)?,
            device: Device::from_args(p)?,
            precision: Precision::from_args(p, Device::from_args(p)?)?,
            seed: p.get_or("seed", c.seed)?,
            output_dir: p.path("output-dir").unwrap_or(c.output_dir),
            trace: trace::from_args(p, &run)?,
            run,
            embed_dim: p.get_or("embed-dim", c.embed_dim)?,
            depth: p.get_or("depth", c.depth)?,
            heads: p.get_or("heads", c.heads)?,
            head_hidden: p.get_or("head-hidden", c.head_hidden)?,
            head_bottleneck: p.get_or("head-bottleneck", c.head_bottleneck)?,
            preset: c.preset,
        };
        // The value as typed: DINO scales it by batch / 256, and a message about the scaled
        // value would not match what the user wrote.
        let typed = p
            .raw("lr")
            .map_or_else(|| cfg.lr.to_string(), str::to_string);
        if !(cfg.lr.is_finite() && cfg.lr >= 0.0) {
            return Err(RunError::usage(format!(
                "--lr {typed}: expected a finite learning rate >= 0"
            )));
        }
        let peak = cfg.lr * cfg.batch_size as f64 / 256.0;
        if !peak.is_finite() {
            return Err(RunError::usage(format!(
                "--lr {typed} with --batch-size {}: the peak learning rate lr * batch / 256 \
                 is not finite",
                cfg.batch_size
            )));
        }
        Ok(cfg)
    }

    /// The step counts of a schedule of `total` steps: (lr warm-up, frozen last layer), each
    /// as given or its default fraction of the schedule.
    pub fn step_lengths(&self, total: usize) -> (usize, usize) {
        (
            self.warmup_steps.unwrap_or(total / 10),
            self.freeze_last_layer_steps.unwrap_or(total / 20),
        )
    }

    /// Every setting that determines the run's numbers, as effective values (after the
    /// preset and the defaults derived from the data): what a checkpoint records and
    /// `--resume` compares. Not recorded: where outputs go and how often they are written.
    pub fn trajectory(&self, img_size: usize, local_size: usize, total_steps: usize) -> RunConfig {
        let data = std::fs::canonicalize(&self.data).unwrap_or_else(|_| self.data.clone());
        let (warmup_steps, freeze_steps) = self.step_lengths(total_steps);
        let config = RunConfig::new()
            .with("data", data.display())
            .with(
                "resize",
                self.resize.map_or("none".into(), |r| r.to_string()),
            )
            .with("epochs", self.epochs)
            .with(
                "schedule-epochs",
                self.schedule_epochs.unwrap_or(self.epochs),
            )
            .with("batch-size", self.batch_size)
            .with("lr", self.lr)
            .with(
                "schedule",
                if self.schedule_in_steps {
                    "steps"
                } else {
                    "epochs"
                },
            )
            .with("warmup-steps", warmup_steps)
            .with("warmup-epochs", self.warmup_epochs)
            .with("freeze-last-layer-steps", freeze_steps)
            .with("freeze-last-layer", self.freeze_last_layer)
            .with("teacher-temp", self.teacher_temp)
            .with("warmup-teacher-temp-steps", self.warmup_teacher_temp_steps)
            .with(
                "warmup-teacher-temp-epochs",
                self.warmup_teacher_temp_epochs,
            )
            .with("momentum-teacher", self.momentum_teacher)
            .with("norm-last-layer", self.norm_last_layer)
            .with("img-size", img_size)
            .with("local-size", local_size)
            .with("patch-size", self.patch_size)
            .with("local-crops", self.local_crops)
            .with("blur-solarize", self.blur_solarize)
            .with(
                "crop-scales",
                format!("{:?} {:?}", self.global_scale, self.local_scale),
            )
            .with("out-dim", self.out_dim)
            .with("train-images", self.train_images)
            .with("eval-train", self.eval_train)
            .with("eval-test", self.eval_test)
            .with("knn-every", self.knn_every)
            .with("device", self.device)
            .with("seed", self.seed)
            .with("embed-dim", self.embed_dim)
            .with("depth", self.depth)
            .with("heads", self.heads)
            .with("head-hidden", self.head_hidden)
            .with("head-bottleneck", self.head_bottleneck);
        // Recorded only when not the default, so that checkpoints of f32 runs made before
        // the flag existed still resume.
        match self.precision {
            Precision::F32 => config,
            p => config.with("precision", p.name()),
        }
    }
}
