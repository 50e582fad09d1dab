//! DINO with a ViT-S backbone on the embedded Fashion-MNIST subset (or `--data`).
//!
//! ```sh
//! cargo run --example dino_vit_s            # default: sized for ~10 min on 2 CPU cores
//! cargo run --example dino_vit_s -- --help  # every flag
//! ```
//!
//! Prints the raw-pixel k-NN floor, the k-NN accuracy of the (teacher) backbone before and
//! after training (k = 20, T = 0.07), writes `metrics.jsonl`, `metrics.png` and
//! `checkpoint.safetensors` (every epoch and every `--save-every` steps) to `--output-dir`,
//! and resumes bit-exactly with `--resume` (a changed flag that affects the numbers is
//! refused unless `--allow-config-change`). SIGINT (Ctrl-C) or SIGTERM stops at the next
//! safe point (after the current step, between k-NN batches, after a file write), writes a
//! checkpoint and exits with 130 or 143.

use std::path::PathBuf;
use std::time::Instant;
use tessera::nn::checkpoint::Metadata;
use tessera::nn::models::vit::{VisionTransformer, VitConfig};
use tessera::run::args::{self, Flag, Outcome, Parsed};
use tessera::run::ckpt::RunConfig;
use tessera::run::device::DEVICE_FLAG;
use tessera::run::metrics::EpochMetrics;
use tessera::run::progress::{Phase, Progress};
use tessera::run::session::{self, FreshStart, RunOptions, RunSpec};
use tessera::run::{
    ckpt, ctx, data, exit_on_error, mix, model, signal, Device, Program, Result, RunError,
};
use tessera::ssl::augment::{
    batch_by_resolution, DataAugmentationDino, DinoAugConfig, Image, Normalize,
};
use tessera::ssl::data::Dataset;
use tessera::ssl::train::{DinoConfig, DinoTrainer};
use tessera::tensor::{Backend, DType, Rng, Tensor};

const ABOUT: &str = "DINO self-supervised training of a ViT-S on Fashion-MNIST (or --data), \
with k-NN evaluation before and after training";

// Defaults that a preset changes are notes: "<default preset>; <preset>: <value>, ...".
const FLAGS: &[Flag] = &[
    Flag::value("data", "DIR", "Dataset folder: IDX, CIFAR binaries or an image folder").default_note("the embedded data/fashion-mnist"),
    Flag::value("resize", "PX", data::RESIZE_HELP).default_note(data::RESIZE_DEFAULT),
    Flag::value("preset", "NAME", "default | paper (224/96 crops, patch 16, out_dim 65536, DINO's 100-epoch schedule) | tiny (for tests)").default("default"),
    Flag::value("epochs", "N", "Training epochs").default_note("2; paper: 100, tiny: 3"),
    Flag::value("batch-size", "N", "Images per step").default_note("32; paper: 64, tiny: 8"),
    Flag::value("lr", "LR", "Base learning rate for a batch of 256 (peak = lr * batch / 256)").default("0.0005"),
    Flag::value("img-size", "PX", "Global crop side").default_note("the data's image side; paper: 224"),
    Flag::value("local-size", "PX", "Local crop side").default_note("img-size / 2; paper: 96"),
    Flag::value("patch-size", "PX", "ViT patch side; must divide img-size and local-size").default_note("7; paper: 16"),
    Flag::value("local-crops", "N", "Local crops per image").default_note("4; paper: 8, tiny: 2"),
    Flag::value("out-dim", "K", "DINO head output dimension").default_note("4096; paper: 65536, tiny: 64"),
    Flag::value("teacher-temp", "T", "Teacher temperature after the warm-up").default_note("0.04; paper: 0.07"),
    Flag::value("warmup-teacher-temp-epochs", "N", "Epochs of linear teacher-temperature warm-up from 0.04").default_note("0; paper: 30"),
    Flag::value("warmup-epochs", "N", "Epochs of linear learning-rate warm-up").default_note("1; paper: 10"),
    Flag::value("norm-last-layer", "true|false", "Weight-normalize the head's last layer with a fixed norm (DINO recommends false for ViT-S: better, less stable)").default("true"),
    Flag::value("momentum-teacher", "M", "Teacher EMA momentum at the start (cosine to 1)").default("0.996"),
    Flag::value("freeze-last-layer", "N", "Epochs during which the head's last layer is not updated").default("1"),
    Flag::value("train-images", "N", "Train on a class-balanced subset of N images (0 = all)").default_note("512; paper: 0, tiny: 40"),
    Flag::value("eval-train", "N", "Train-split images for the k-NN bank (class-balanced; 0 = all)").default_note("1000; paper: 0, tiny: 100"),
    Flag::value("eval-test", "N", "Test-split images for the k-NN evaluation (class-balanced; 0 = all)").default_note("500; paper: 0, tiny: 50"),
    Flag::value("knn-every", "N", "Also run the k-NN evaluation after every N-th epoch (0: only after the last)").default_note("0; tiny: 1"),
    DEVICE_FLAG,
    Flag::value("seed", "N", "Random seed").default("0"),
    Flag::value("output-dir", "DIR", "Where metrics, the plot and the checkpoint go").default("runs/dino_vit_s"),
    session::RESUME_FLAG,
    session::OVERWRITE_FLAG,
    session::ALLOW_CONFIG_CHANGE_FLAG,
    session::SAVE_EVERY_FLAG,
    Flag::value("embed-dim", "N", "ViT width (test/debug override)").default_note("384; tiny: 32").hide(),
    Flag::value("depth", "N", "ViT depth (test/debug override)").default_note("12; tiny: 2").hide(),
    Flag::value("heads", "N", "ViT heads (test/debug override)").default_note("6; tiny: 2").hide(),
    Flag::value("head-hidden", "N", "DINO head hidden width (test/debug override)").default_note("2048; tiny: 64").hide(),
    Flag::value("head-bottleneck", "N", "DINO head bottleneck (test/debug override)").default_note("256; tiny: 16").hide(),
];

/// Everything a run is configured by.
#[derive(Clone, Debug)]
struct Config {
    data: PathBuf,
    resize: Option<usize>,
    preset: String,
    epochs: usize,
    batch_size: usize,
    lr: f64,
    img_size: Option<usize>,
    local_size: Option<usize>,
    patch_size: usize,
    local_crops: usize,
    out_dim: usize,
    teacher_temp: f64,
    warmup_teacher_temp_epochs: usize,
    warmup_epochs: usize,
    momentum_teacher: f64,
    freeze_last_layer: usize,
    norm_last_layer: bool,
    train_images: usize,
    eval_train: usize,
    eval_test: usize,
    knn_every: usize,
    device: Device,
    seed: u64,
    output_dir: PathBuf,
    run: RunOptions,
    embed_dim: usize,
    depth: usize,
    heads: usize,
    head_hidden: usize,
    head_bottleneck: usize,
}

impl Config {
    fn preset(name: &str) -> Result<Config> {
        let base = Config {
            data: data::default_data_dir(),
            resize: None,
            preset: name.into(),
            epochs: 2,
            batch_size: 32,
            lr: 0.0005,
            img_size: None,
            local_size: None,
            patch_size: 7,
            local_crops: 4,
            out_dim: 4096,
            teacher_temp: 0.04,
            warmup_teacher_temp_epochs: 0,
            warmup_epochs: 1,
            momentum_teacher: 0.996,
            freeze_last_layer: 1,
            norm_last_layer: true,
            train_images: 512,
            eval_train: 1000,
            eval_test: 500,
            knn_every: 0,
            device: Device::Cpu,
            seed: 0,
            output_dir: PathBuf::from("runs/dino_vit_s"),
            run: RunOptions::default(),
            embed_dim: 384,
            depth: 12,
            heads: 6,
            head_hidden: 2048,
            head_bottleneck: 256,
        };
        match name {
            "default" => Ok(base),
            "paper" => Ok(Config {
                epochs: 100,
                batch_size: 64,
                img_size: Some(224),
                local_size: Some(96),
                patch_size: 16,
                local_crops: 8,
                out_dim: 65536,
                teacher_temp: 0.07,
                warmup_teacher_temp_epochs: 30,
                warmup_epochs: 10,
                train_images: 0,
                eval_train: 0,
                eval_test: 0,
                ..base
            }),
            "tiny" => Ok(Config {
                epochs: 3,
                batch_size: 8,
                local_crops: 2,
                out_dim: 64,
                warmup_epochs: 1,
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
                "--preset: expected default, paper or tiny, got {other:?}"
            ))),
        }
    }

    fn from_args(p: &Parsed) -> Result<Config> {
        let c = Config::preset(p.raw("preset").unwrap_or("default"))?;
        let cfg = Config {
            data: p.path("data").unwrap_or(c.data),
            resize: p.get("resize")?,
            epochs: p.get_or("epochs", c.epochs)?,
            batch_size: p.get_or("batch-size", c.batch_size)?,
            lr: p.get_or("lr", c.lr)?,
            img_size: p.get("img-size")?.or(c.img_size),
            local_size: p.get("local-size")?.or(c.local_size),
            patch_size: p.get_or("patch-size", c.patch_size)?,
            local_crops: p.get_or("local-crops", c.local_crops)?,
            out_dim: p.get_or("out-dim", c.out_dim)?,
            teacher_temp: p.get_or("teacher-temp", c.teacher_temp)?,
            warmup_teacher_temp_epochs: p
                .get_or("warmup-teacher-temp-epochs", c.warmup_teacher_temp_epochs)?,
            warmup_epochs: p.get_or("warmup-epochs", c.warmup_epochs)?,
            momentum_teacher: p.get_or("momentum-teacher", c.momentum_teacher)?,
            freeze_last_layer: p.get_or("freeze-last-layer", c.freeze_last_layer)?,
            norm_last_layer: p.get_or("norm-last-layer", c.norm_last_layer)?,
            train_images: p.get_or("train-images", c.train_images)?,
            eval_train: p.get_or("eval-train", c.eval_train)?,
            eval_test: p.get_or("eval-test", c.eval_test)?,
            knn_every: p.get_or("knn-every", c.knn_every)?,
            device: Device::from_args(p)?,
            seed: p.get_or("seed", c.seed)?,
            output_dir: p.path("output-dir").unwrap_or(c.output_dir),
            run: RunOptions::from_args(p)?,
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

    /// Every setting that determines the run's numbers, as effective values (after the
    /// preset and the defaults derived from the data): what a checkpoint records and
    /// `--resume` compares. Not recorded: where outputs go and how often they are written.
    fn trajectory(&self, img_size: usize, local_size: usize) -> RunConfig {
        let data = std::fs::canonicalize(&self.data).unwrap_or_else(|_| self.data.clone());
        RunConfig::new()
            .with("data", data.display())
            .with(
                "resize",
                self.resize.map_or("none".into(), |r| r.to_string()),
            )
            .with("epochs", self.epochs)
            .with("batch-size", self.batch_size)
            .with("lr", self.lr)
            .with("img-size", img_size)
            .with("local-size", local_size)
            .with("patch-size", self.patch_size)
            .with("local-crops", self.local_crops)
            .with("out-dim", self.out_dim)
            .with("teacher-temp", self.teacher_temp)
            .with(
                "warmup-teacher-temp-epochs",
                self.warmup_teacher_temp_epochs,
            )
            .with("warmup-epochs", self.warmup_epochs)
            .with("norm-last-layer", self.norm_last_layer)
            .with("momentum-teacher", self.momentum_teacher)
            .with("freeze-last-layer", self.freeze_last_layer)
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
            .with("head-bottleneck", self.head_bottleneck)
    }
}

fn main() {
    exit_on_error(|| {
        let parsed = match args::parse_env("dino_vit_s", ABOUT, FLAGS)? {
            Outcome::Help(h) => {
                print!("{h}");
                return Ok(());
            }
            Outcome::Run(p) => p,
        };
        let cfg = Config::from_args(&parsed)?;
        // Fails here, before any work, for a device this build has no backend for.
        cfg.device.run(cfg)
    })
}

/// k-NN top-1 (k = 20, T = 0.07) of the backbone's features; `None` when SIGINT/SIGTERM
/// stopped it (polled between batches of 64 images and between k-NN chunks).
fn knn_top1<B: Backend>(
    vit: &VisionTransformer<B>,
    bank: &Dataset,
    test: &Dataset,
    size: usize,
    norm: &Normalize,
    dev: &B,
) -> Result<Option<f64>> {
    // Training and evaluation use different tensor sizes: give the backend's cached blocks
    // back between the two, so that peak memory is the larger phase, not both.
    dev.empty_cache();
    const BATCH: usize = 64;
    let units = session::chunk_count(bank.len(), BATCH)
        + session::chunk_count(test.len(), BATCH)
        + session::knn_units(test.len());
    let mut phase = Phase::new("k-NN", units);
    let features = |ds: &Dataset, phase: &mut Phase| {
        session::features_polled(ds.len(), BATCH, phase, |r| {
            let part = ds.subset(&r.collect::<Vec<_>>()).map_err(ctx("features"))?;
            model::cls_features(vit, &part, size, Some(norm), dev)
        })
    };
    let Some(tr) = features(bank, &mut phase)? else {
        return Ok(None);
    };
    let Some(te) = features(test, &mut phase)? else {
        return Ok(None);
    };
    let classes = bank.num_classes.max(test.num_classes);
    let top1 = session::knn_top1_polled(
        (&tr, &bank.labels),
        (&te, &test.labels),
        classes,
        &mut phase,
    )?;
    phase.finish();
    dev.empty_cache();
    Ok(top1)
}

impl Program for Config {
    fn run<B: Backend>(self, dev: B) -> Result<()> {
        train(self, &dev)
    }
}

/// The training run, with every model tensor on `dev`.
fn train<B: Backend>(cfg: Config, dev: &B) -> Result<()> {
    signal::install();

    // Data.
    let (train_all, test_all) = data::load_splits(&cfg.data, cfg.resize)?;
    let [chans, h, w] = train_all.image_shape();
    let img_size = cfg.img_size.unwrap_or(h);
    if h != w && cfg.img_size.is_none() {
        return Err(RunError::new(format!(
            "the images are {h}x{w}, not square: pass --img-size"
        )));
    }
    let local_size = cfg.local_size.unwrap_or(img_size / 2);
    if local_size > img_size {
        let global = match cfg.img_size {
            Some(g) => format!("--img-size {g}"),
            None => format!("{img_size} px (the images' side; set it with --img-size)"),
        };
        return Err(RunError::usage(format!(
            "--local-size {local_size} is larger than the global crop, {global}: local crops \
             are the small views of an image"
        )));
    }
    // Name each size by where it came from: a flag the user typed, or the data.
    let p = cfg.patch_size;
    let global = match cfg.img_size {
        Some(g) => format!("--img-size {g}"),
        None => format!(
            "the images' side, {img_size} px (from the data; set one with --img-size or --resize)"
        ),
    };
    let local = match cfg.local_size {
        Some(l) => format!("--local-size {l}"),
        None => format!("the local crop size, {local_size} px (--img-size / 2)"),
    };
    for (what, s) in [(global, img_size), (local, local_size)] {
        if p == 0 || s == 0 || s % p != 0 {
            return Err(RunError::new(format!(
                "{what} is not a positive multiple of the patch size {p} (--patch-size)"
            )));
        }
    }
    if cfg.batch_size == 0 || cfg.epochs == 0 {
        return Err(RunError::usage(
            "--batch-size and --epochs must be positive",
        ));
    }
    let seed = cfg.seed;
    let train = data::balanced_prefix(
        &train_all,
        if cfg.train_images == 0 {
            usize::MAX
        } else {
            cfg.train_images
        },
        mix(&[seed, 1]),
    )?;
    let bank = data::balanced_prefix(
        &train_all,
        if cfg.eval_train == 0 {
            usize::MAX
        } else {
            cfg.eval_train
        },
        mix(&[seed, 2]),
    )?;
    let test = data::balanced_prefix(
        &test_all,
        if cfg.eval_test == 0 {
            usize::MAX
        } else {
            cfg.eval_test
        },
        mix(&[seed, 3]),
    )?;
    // Inputs are standardized with the training split's per-channel statistics, as DINO
    // does with ImageNet's; the checkpoint records them for evaluation.
    let norm = train_all
        .channel_stats()
        .and_then(|(m, s)| Normalize::new(m, s.iter().map(|s| s.max(1e-3)).collect()).ok())
        .ok_or_else(|| RunError::new("the training split is empty"))?;
    let niter = train.len() / cfg.batch_size;
    if niter == 0 {
        return Err(RunError::usage(format!(
            "--batch-size {} is larger than the {} training images",
            cfg.batch_size,
            train.len()
        )));
    }
    println!(
        "data: {} ({} train / {} test images of {chans}x{h}x{w}); training on {} images, \
         k-NN on {} train / {} test features",
        cfg.data.display(),
        train_all.len(),
        test_all.len(),
        train.len(),
        bank.len(),
        test.len()
    );

    // Model and trainer.
    let vit = VitConfig {
        img_size,
        in_chans: chans,
        embed_dim: cfg.embed_dim,
        depth: cfg.depth,
        num_heads: cfg.heads,
        ..VitConfig::small(p)
    };
    let arch = format!(
        "vit(embed {}, depth {}, heads {}, patch {p}, img {img_size}, chans {chans}) + \
         dino head(out {}, hidden {}, bottleneck {})",
        cfg.embed_dim, cfg.depth, cfg.heads, cfg.out_dim, cfg.head_hidden, cfg.head_bottleneck
    );
    let mut rng = Rng::new(seed);
    let student =
        VisionTransformer::new(vit, DType::F32, &mut rng, dev).map_err(ctx("the model"))?;
    let teacher = student.clone();
    let dcfg = DinoConfig {
        head_hidden_dim: cfg.head_hidden,
        head_bottleneck_dim: cfg.head_bottleneck,
        teacher_temp: cfg.teacher_temp,
        warmup_teacher_temp_epochs: cfg.warmup_teacher_temp_epochs,
        lr: cfg.lr,
        batch_size: cfg.batch_size,
        warmup_epochs: cfg.warmup_epochs.min(cfg.epochs),
        momentum_teacher: cfg.momentum_teacher,
        freeze_last_layer: cfg.freeze_last_layer,
        norm_last_layer: cfg.norm_last_layer,
        local_crops_number: cfg.local_crops,
        global_crops_size: img_size,
        local_crops_size: local_size,
        ..DinoConfig::new(cfg.out_dim, cfg.epochs)
    };
    let mut trainer = DinoTrainer::new(student, teacher, dcfg, niter, &mut rng)
        .map_err(ctx("setting up DINO"))?;
    let aug = DataAugmentationDino::new(&DinoAugConfig {
        local_crops_number: cfg.local_crops,
        normalize: Some(norm.clone()),
        ..DinoAugConfig::with_sizes(img_size, local_size)
    })
    .map_err(ctx("augmentations"))?;
    println!(
        "model: {arch}; {niter} steps/epoch of {} images",
        cfg.batch_size
    );

    // Output, then a fresh start or the resume.
    let spec = RunSpec {
        arch: arch.clone(),
        config: cfg.trajectory(img_size, local_size),
        extra: Metadata::from([
            (ckpt::NORMALIZE_MEAN_KEY.into(), ckpt::floats(&norm.mean)),
            (ckpt::NORMALIZE_STD_KEY.into(), ckpt::floats(&norm.std)),
        ]),
        epochs: cfg.epochs,
        niter,
    };
    let knn_before = |t: &mut DinoTrainer<B, VisionTransformer<B>>| -> Result<Option<f64>> {
        let s = Instant::now();
        let top1 = knn_top1(t.teacher_backbone(), &bank, &test, img_size, &norm, dev)?;
        if let Some(top1) = top1 {
            println!(
                "k-NN before training (teacher backbone): top-1 {:.2}%  ({:.1}s)",
                100.0 * top1,
                s.elapsed().as_secs_f64()
            );
        }
        Ok(top1)
    };
    let mut run = session::start_or_resume(
        dev,
        &cfg.output_dir,
        &cfg.run,
        spec,
        &mut trainer,
        FreshStart {
            bank: &bank,
            test: &test,
            knn_before: &knn_before,
        },
    )?;

    while run.pos.epoch < cfg.epochs {
        let epoch = run.pos.epoch;
        let order = Rng::new(mix(&[seed, epoch as u64, 10])).permutation(train.len());
        let bar = Progress::new(format!("epoch {}/{}", epoch + 1, cfg.epochs), niter);
        let t_epoch = Instant::now();
        let first_step = run.pos.step;
        let mut entropy = None;
        while run.pos.step < niter {
            let step = run.pos.step;
            // Everything random in a step derives from (seed, epoch, step): a resumed run
            // draws the same crops without any saved generator state.
            let mut rng = Rng::new(mix(&[seed, epoch as u64, step as u64, 20]));
            let idx = &order[step * cfg.batch_size..(step + 1) * cfg.batch_size];
            let views: Vec<Vec<Image>> = idx
                .iter()
                .map(|&i| train.image(i).and_then(|im| aug.apply(&im, &mut rng)))
                .collect::<std::result::Result<_, _>>()
                .map_err(ctx("augmentation"))?;
            let groups: Vec<Tensor<B>> = batch_by_resolution(&views, dev)
                .map_err(ctx("batching"))?
                .into_iter()
                .map(|g| g.batch)
                .collect();
            // The entropies read the device: compute them for the step the epoch line shows.
            trainer.diagnostics = step + 1 == niter;
            let stats = trainer
                .train_step(&groups, epoch)
                .map_err(ctx("training step"))?;
            if !stats.loss.is_finite() {
                return Err(RunError::new(format!(
                    "the loss is {} at epoch {}, step {}",
                    stats.loss,
                    epoch + 1,
                    step + 1
                )));
            }
            // DINO's collapse check: the teacher's per-image entropy (near 0: one-hot; near
            // ln K: uniform) and the entropy of its batch mean (small: few prototypes used).
            if let (Some(h), Some(hb)) = (stats.teacher_entropy, stats.teacher_batch_entropy) {
                entropy = Some((h, hb, stats.max_entropy));
            }
            run.step_done(stats.loss, stats.lr);
            let done = run.pos.step;
            let ips =
                ((done - first_step) * cfg.batch_size) as f64 / t_epoch.elapsed().as_secs_f64();
            bar.update(done, run.pos.loss_sum / done as f64, stats.lr, ips);
            if let Err(e) = run.after_step(&trainer) {
                bar.finish();
                return Err(e);
            }
        }
        bar.finish();
        let images_per_s = (niter.saturating_sub(first_step) * cfg.batch_size) as f64
            / t_epoch.elapsed().as_secs_f64();
        let last = epoch + 1 == cfg.epochs;
        let knn = if last || (cfg.knn_every > 0 && (epoch + 1) % cfg.knn_every == 0) {
            let k = knn_top1(
                trainer.teacher_backbone(),
                &bank,
                &test,
                img_size,
                &norm,
                dev,
            )?;
            match k {
                Some(k) => Some(k),
                None => return Err(run.stop(&trainer)),
            }
        } else {
            None
        };
        let m = EpochMetrics {
            epoch: epoch + 1,
            loss: run.pos.loss_sum / niter as f64,
            lr: run.pos.lr,
            knn_top1: knn,
            images_per_s,
            elapsed_s: run.elapsed_s(),
        };
        // A run resumed after the epoch's last step did not see its entropies.
        let entropy = entropy.map_or("teacher entropy (not measured)".to_string(), |e| {
            format!(
                "teacher entropy {:.2} (batch {:.2}) of ln K {:.2}",
                e.0, e.1, e.2
            )
        });
        println!(
            "epoch {}/{}: loss {:.4}, lr {:.2e}, {entropy}, k-NN top-1 {}, {:.1} img/s, \
             {:.0}s elapsed",
            m.epoch,
            cfg.epochs,
            m.loss,
            m.lr,
            knn.map_or("(not evaluated)".to_string(), |k| format!(
                "{:.2}%",
                100.0 * k
            )),
            m.images_per_s,
            m.elapsed_s
        );
        run.end_epoch(&trainer, m)?;
    }
    let knn_before = run.knn_before();
    let after = run
        .history
        .last()
        .and_then(|m| m.knn_top1)
        .unwrap_or(knn_before);
    println!(
        "k-NN (k=20, T=0.07) on {} train / {} test images:",
        bank.len(),
        test.len()
    );
    println!("  raw pixels:      {:.2}%", 100.0 * run.knn_raw());
    println!("  before training: {:.2}%", 100.0 * knn_before);
    println!("  after training:  {:.2}%", 100.0 * after);
    let f = &run.files;
    println!(
        "outputs: {}, {}, {}",
        f.metrics.display(),
        f.plot.display(),
        f.checkpoint.display()
    );
    Ok(())
}
