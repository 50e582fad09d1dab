//! `byol_resnet50`'s flags and presets.
//!
//! The default preset, `small`, is the CPU positive control: a ResNet-18 layout at a quarter
//! of torchvision's width (`base_channels` 16: 0.7M parameters) with the CIFAR-style stem
//! (3×3 stride-1 `conv1`, no max-pool, so a 28-px image keeps 28×28 maps through stage 1) and
//! `nn.Conv2d`'s default init (as the CIFAR ResNets written from `nn.Conv2d` start, and the
//! main-job issue's PyTorch measurement; `--init torchvision` for torchvision's), 12 epochs,
//! batch 128, SGD (momentum 0.9, weight decay 5e-4, peak lr 0.1 for batch 128), target EMA
//! 0.99 → 1, a projector and predictor 512 → 128, views of random-resized crops over 20–100%
//! of the image with flips and brightness/contrast jitter (blur and solarization are off: at
//! 28 px a blur of σ up to 0.25 px does nothing and solarization inverts whole garments), and
//! inputs standardised with the training split's statistics. It trains on all 10,000
//! embedded training images and evaluates on the whole split (bank 10,000 / test 2,000).
//!
//! `resnet50` keeps the previous default, torchvision's ResNet-50 with BYOL's LARS and views
//! on a 64-image subset (a smoke run, it does not learn), and `tiny` is for tests.

use std::path::PathBuf;
use tessera::nn::models::resnet::{ConvInit, ResNetConfig};
use tessera::nn::optim::{LarsConfig, SgdConfig};
use tessera::run::args::{Flag, Parsed};
use tessera::run::ckpt::RunConfig;
use tessera::run::device::DEVICE_FLAG;
use tessera::run::options::RunOptions;
use tessera::run::precision::{Precision, PRECISION_FLAG};
use tessera::run::{data, session, trace, Device, Result, RunError};
use tessera::ssl::train::ByolOptimizer;

pub const ABOUT: &str = "BYOL self-supervised training of a ResNet on Fashion-MNIST (or --data), \
with k-NN evaluation before and after training";

pub const FLAGS: &[Flag] = &[
    Flag::value("data", "DIR", "Dataset folder").default_note("the embedded data/fashion-mnist"),
    Flag::value("resize", "PX", data::RESIZE_HELP).default_note(data::RESIZE_DEFAULT),
    Flag::value(
        "preset",
        "NAME",
        "small (ResNet-18 layout at width 16, CIFAR stem, SGD: learns on a CPU) | resnet50 (torchvision's ResNet-50, LARS, 64 images: a smoke run) | tiny (for tests)",
    )
    .default("small"),
    // Defaults that a preset changes are notes: "<small preset>; <preset>: <value>".
    Flag::value(
        "init",
        "NAME",
        "Conv weights: pytorch (nn.Conv2d's default, as the common CIFAR ResNets) | torchvision (kaiming_normal fan_out)",
    )
    .default_note("pytorch; resnet50, tiny: torchvision"),
    Flag::value("epochs", "N", "Training epochs").default_note("12; resnet50, tiny: 2"),
    Flag::value("batch-size", "N", "Images per step").default_note("128; resnet50: 16, tiny: 8"),
    Flag::value("lr", "LR", "Base learning rate for a batch of 256 (peak = lr * batch / 256)").default("0.2"),
    Flag::value("optimizer", "NAME", "sgd | lars").default_note("sgd; resnet50, tiny: lars"),
    Flag::value(
        "train-images",
        "N",
        "Class-balanced training subset (0 = all)",
    )
    .default_note("0; resnet50: 64, tiny: 40"),
    Flag::value("eval-train", "N", "k-NN bank images (0 = all)").default_note("0; resnet50: 400, tiny: 100"),
    Flag::value("eval-test", "N", "k-NN test images (0 = all)").default_note("0; resnet50: 200, tiny: 50"),
    Flag::value(
        "knn-every",
        "N",
        "Also run the k-NN evaluation (online backbone) after every N-th epoch (0: only after the last)",
    )
    .default_note("0; resnet50, tiny: 1"),
    DEVICE_FLAG,
    PRECISION_FLAG,
    Flag::value("seed", "N", "Random seed").default("0"),
    Flag::value("output-dir", "DIR", "Outputs").default("runs/byol_resnet50"),
    session::RESUME_FLAG,
    session::OVERWRITE_FLAG,
    session::ALLOW_CONFIG_CHANGE_FLAG,
    session::SAVE_EVERY_FLAG,
    trace::TRACE_FLAG,
];

/// One preset's settings (the flags override some of them).
#[derive(Clone, Debug)]
pub struct Config {
    pub preset: &'static str,
    pub data: PathBuf,
    pub resize: Option<usize>,
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub optimizer: ByolOptimizer,
    pub weight_decay: f64,
    pub warmup_epochs: usize,
    pub base_tau: f64,
    /// The backbone (`in_channels` is set from the data).
    pub resnet: ResNetConfig,
    pub projector_hidden: usize,
    pub projection_dim: usize,
    /// Random-resized-crop area range of both views.
    pub crop_scale: (f64, f64),
    /// BYOL's blur (both views) and solarization (view 2).
    pub blur_solarize: bool,
    /// Standardise the inputs (and the raw-pixel floor) with the training split's statistics.
    pub standardize: bool,
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
}

const SGD: ByolOptimizer = ByolOptimizer::Sgd(SgdConfig {
    momentum: 0.9,
    dampening: 0.0,
    nesterov: false,
});
const LARS: ByolOptimizer = ByolOptimizer::Lars(LarsConfig {
    momentum: 0.9,
    eta: 1e-3,
});

impl Config {
    /// The preset's settings before the flags.
    fn preset(name: &str) -> Result<Config> {
        let small = Config {
            preset: "small",
            data: data::default_data_dir(),
            resize: None,
            epochs: 12,
            batch_size: 128,
            lr: 0.2,
            optimizer: SGD,
            weight_decay: 5e-4,
            warmup_epochs: 1,
            base_tau: 0.99,
            resnet: ResNetConfig {
                small_stem: true,
                base_channels: 16,
                conv_init: ConvInit::PyTorchDefault,
                ..ResNetConfig::resnet18(0)
            },
            projector_hidden: 512,
            projection_dim: 128,
            crop_scale: (0.2, 1.0),
            blur_solarize: false,
            standardize: true,
            train_images: 0,
            eval_train: 0,
            eval_test: 0,
            knn_every: 0,
            device: Device::Cpu,
            precision: Precision::F32,
            seed: 0,
            output_dir: PathBuf::from("runs/byol_resnet50"),
            run: RunOptions::default(),
            trace: None,
        };
        // The previous default: BYOL's ImageNet recipe, shrunk to a smoke run.
        let resnet50 = Config {
            preset: "resnet50",
            epochs: 2,
            batch_size: 16,
            optimizer: LARS,
            weight_decay: 1.5e-6,
            warmup_epochs: 0,
            // torchvision's stride-4 stem even at 28 px: the small stem keeps 28x28 maps
            // through stage 1 and is ~16x slower for a ResNet-50 on a CPU.
            resnet: ResNetConfig::resnet50(0),
            projector_hidden: 4096,
            projection_dim: 256,
            crop_scale: (0.08, 1.0),
            blur_solarize: true,
            standardize: false,
            train_images: 64,
            eval_train: 400,
            eval_test: 200,
            knn_every: 1,
            ..small.clone()
        };
        Ok(match name {
            "small" => small,
            "resnet50" => resnet50,
            "tiny" => Config {
                preset: "tiny",
                batch_size: 8,
                resnet: ResNetConfig::resnet18(0),
                projector_hidden: 64,
                projection_dim: 16,
                train_images: 40,
                eval_train: 100,
                eval_test: 50,
                ..resnet50
            },
            other => {
                return Err(RunError::usage(format!(
                    "--preset: expected small, resnet50 or tiny, got {other:?}"
                )))
            }
        })
    }

    /// The preset of `--preset` with the other flags applied.
    pub fn from_args(p: &Parsed) -> Result<Config> {
        let c = Config::preset(p.raw("preset").unwrap_or("small"))?;
        let optimizer = match p.raw("optimizer") {
            None => c.optimizer,
            Some("sgd") => SGD,
            Some("lars") => LARS,
            Some(other) => {
                return Err(RunError::usage(format!(
                    "--optimizer: expected sgd or lars, got {other:?}"
                )))
            }
        };
        let conv_init = match p.raw("init") {
            None => c.resnet.conv_init,
            Some("pytorch") => ConvInit::PyTorchDefault,
            Some("torchvision") => ConvInit::Torchvision,
            Some(other) => {
                return Err(RunError::usage(format!(
                    "--init: expected pytorch or torchvision, got {other:?}"
                )))
            }
        };
        let device = Device::from_args(p)?;
        let run = RunOptions::from_args(p)?;
        let c = Config {
            data: p.path("data").unwrap_or(c.data),
            resize: p.get("resize")?,
            epochs: p.get_or("epochs", c.epochs)?,
            batch_size: p.get_or("batch-size", c.batch_size)?,
            lr: p.get_or("lr", c.lr)?,
            optimizer,
            resnet: ResNetConfig {
                conv_init,
                ..c.resnet
            },
            train_images: p.get_or("train-images", c.train_images)?,
            eval_train: p.get_or("eval-train", c.eval_train)?,
            eval_test: p.get_or("eval-test", c.eval_test)?,
            knn_every: p.get_or("knn-every", c.knn_every)?,
            device,
            precision: Precision::from_args(p, device)?,
            seed: p.get_or("seed", c.seed)?,
            output_dir: p.path("output-dir").unwrap_or(c.output_dir),
            trace: trace::from_args(p, &run)?,
            run,
            ..c
        };
        if c.batch_size < 2 || c.epochs == 0 {
            return Err(RunError::usage(
                "--batch-size must be >= 2 and --epochs positive",
            ));
        }
        Ok(c)
    }

    /// The optimizer's flag spelling.
    pub fn optimizer_name(&self) -> &'static str {
        match self.optimizer {
            ByolOptimizer::Sgd(_) => "sgd",
            ByolOptimizer::Lars(_) => "lars",
        }
    }

    /// Every setting that determines the run's numbers, as effective values: what a
    /// checkpoint records and `--resume` compares (not recorded: where outputs go, how often).
    pub fn trajectory(&self) -> RunConfig {
        let data = std::fs::canonicalize(&self.data).unwrap_or_else(|_| self.data.clone());
        let config = RunConfig::new()
            .with("preset", self.preset)
            .with("data", data.display())
            .with(
                "resize",
                self.resize.map_or("none".into(), |r| r.to_string()),
            )
            .with("epochs", self.epochs)
            .with("batch-size", self.batch_size)
            .with("lr", self.lr)
            .with("optimizer", self.optimizer_name())
            .with("train-images", self.train_images)
            .with("eval-train", self.eval_train)
            .with("eval-test", self.eval_test)
            .with("device", self.device)
            .with("seed", self.seed);
        // Recorded only when not the default, so that checkpoints of f32 runs made before
        // the flag existed still resume (and a torchvision-init checkpoint made before
        // `--init` existed does not resume as a run of the other init).
        let config = match self.resnet.conv_init {
            ConvInit::Torchvision => config,
            ConvInit::PyTorchDefault => config.with("init", "pytorch"),
        };
        match self.precision {
            Precision::F32 => config,
            p => config.with("precision", p.name()),
        }
    }
}
