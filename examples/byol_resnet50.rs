//! BYOL with a ResNet-50 backbone on the embedded Fashion-MNIST subset (or `--data`), with the
//! conventions of `dino_vit_s`: k-NN (k = 20, T = 0.07) before and after training and the
//! raw-pixel floor, `metrics.jsonl`, `metrics.png`, a checkpoint every epoch and every
//! `--save-every` steps, a bit-exact `--resume` that refuses changed flags unless
//! `--allow-config-change`, and SIGINT/SIGTERM (checkpoint at the next safe point, exit 130
//! or 143).
//!
//! ```sh
//! cargo run --example byol_resnet50
//! cargo run --example byol_resnet50 -- --help
//! ```

use std::path::PathBuf;
use std::time::Instant;
use tessera::autograd::Var;
use tessera::nn::models::resnet::{ResNet, ResNetConfig};
use tessera::nn::module::Module;
use tessera::run::args::{self, Flag, Outcome, Parsed};
use tessera::run::ckpt::RunConfig;
use tessera::run::device::DEVICE_FLAG;
use tessera::run::metrics::EpochMetrics;
use tessera::run::progress::{Phase, Progress};
use tessera::run::session::{self, FreshStart, RunOptions, RunSpec};
use tessera::run::{ctx, data, exit_on_error, mix, signal, Device, Program, Result, RunError};
use tessera::ssl::augment::{stack_images, ByolAugConfig, ByolAugmentation, Image};
use tessera::ssl::data::Dataset;
use tessera::ssl::train::{Backbone, ByolConfig, ByolTrainer};
use tessera::tensor::{Backend, DType, Rng, Tensor};

const ABOUT: &str = "BYOL self-supervised training of a ResNet-50 on Fashion-MNIST (or --data), \
with k-NN evaluation before and after training";

const FLAGS: &[Flag] = &[
    Flag::value("data", "DIR", "Dataset folder").default_note("the embedded data/fashion-mnist"),
    Flag::value("resize", "PX", data::RESIZE_HELP).default_note(data::RESIZE_DEFAULT),
    Flag::value(
        "preset",
        "NAME",
        "default | tiny (ResNet-18, few images: for tests)",
    )
    .default("default"),
    // Defaults that a preset changes are notes: "<default preset>; <preset>: <value>".
    Flag::value("epochs", "N", "Training epochs").default("2"),
    Flag::value("batch-size", "N", "Images per step").default_note("16; tiny: 8"),
    Flag::value("lr", "LR", "Base LARS learning rate for a batch of 256").default("0.2"),
    Flag::value(
        "train-images",
        "N",
        "Class-balanced training subset (0 = all)",
    )
    .default_note("64; tiny: 40"),
    Flag::value("eval-train", "N", "k-NN bank images (0 = all)").default_note("400; tiny: 100"),
    Flag::value("eval-test", "N", "k-NN test images (0 = all)").default_note("200; tiny: 50"),
    DEVICE_FLAG,
    Flag::value("seed", "N", "Random seed").default("0"),
    Flag::value("output-dir", "DIR", "Outputs").default("runs/byol_resnet50"),
    session::RESUME_FLAG,
    session::OVERWRITE_FLAG,
    session::ALLOW_CONFIG_CHANGE_FLAG,
    session::SAVE_EVERY_FLAG,
];

fn main() {
    exit_on_error(|| {
        let p = match args::parse_env("byol_resnet50", ABOUT, FLAGS)? {
            Outcome::Help(h) => {
                print!("{h}");
                return Ok(());
            }
            Outcome::Run(p) => p,
        };
        // Fails here, before any work, for a device this build has no backend for.
        Device::from_args(&p)?.run(Byol(p))
    })
}

/// Pooled features of a copy of the backbone in evaluation mode (BatchNorm running stats)
/// for images `range` of `ds`, on the model's backend `dev`.
fn features<B: Backend>(
    model: &ResNet<B>,
    ds: &Dataset,
    range: std::ops::Range<usize>,
    dev: &B,
) -> Result<Tensor<B>> {
    let mut m = model.clone();
    m.set_training(false);
    let imgs: Vec<Image> = range
        .map(|i| ds.image(i))
        .collect::<std::result::Result<_, _>>()
        .map_err(ctx("features"))?;
    let refs: Vec<&Image> = imgs.iter().collect();
    let x = stack_images(&refs, dev).map_err(ctx("features"))?;
    let f = Backbone::forward_features(&mut m, &Var::constant(x)).map_err(ctx("features"))?;
    Ok(f.value().clone())
}

/// k-NN top-1 (k = 20, T = 0.07) of the backbone's features, in batches of 128 images;
/// `None` when SIGINT/SIGTERM stopped it (polled between batches and k-NN chunks).
fn knn_top1<B: Backend>(
    model: &ResNet<B>,
    bank: &Dataset,
    test: &Dataset,
    dev: &B,
) -> Result<Option<f64>> {
    const BATCH: usize = 128;
    let units = session::chunk_count(bank.len(), BATCH)
        + session::chunk_count(test.len(), BATCH)
        + session::knn_units(test.len());
    let mut phase = Phase::new("k-NN", units);
    let feats = |ds: &Dataset, phase: &mut Phase| {
        session::features_polled(ds.len(), BATCH, phase, |r| features(model, ds, r, dev))
    };
    let Some(tr) = feats(bank, &mut phase)? else {
        return Ok(None);
    };
    let Some(te) = feats(test, &mut phase)? else {
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
    Ok(top1)
}

/// The training run for the parsed flags.
struct Byol(Parsed);

impl Program for Byol {
    fn run<B: Backend>(self, dev: B) -> Result<()> {
        train(&self.0, &dev)
    }
}

/// The training run, with every model tensor on `dev`.
fn train<B: Backend>(p: &Parsed, dev: &B) -> Result<()> {
    let tiny = match p.raw("preset").unwrap_or("default") {
        "default" => false,
        "tiny" => true,
        other => {
            return Err(RunError::usage(format!(
                "--preset: expected default or tiny, got {other:?}"
            )))
        }
    };
    let data_dir: PathBuf = p.path("data").unwrap_or_else(data::default_data_dir);
    let epochs: usize = p.get_or("epochs", 2)?;
    let batch_size: usize = p.get_or("batch-size", if tiny { 8 } else { 16 })?;
    let lr: f64 = p.get_or("lr", 0.2)?;
    let n_train: usize = p.get_or("train-images", if tiny { 40 } else { 64 })?;
    let n_bank: usize = p.get_or("eval-train", if tiny { 100 } else { 400 })?;
    let n_test: usize = p.get_or("eval-test", if tiny { 50 } else { 200 })?;
    let seed: u64 = p.get_or("seed", 0)?;
    let out_dir: PathBuf = p
        .get("output-dir")?
        .unwrap_or_else(|| PathBuf::from("runs/byol_resnet50"));
    if batch_size < 2 || epochs == 0 {
        return Err(RunError::usage(
            "--batch-size must be >= 2 and --epochs positive",
        ));
    }
    let opts = RunOptions::from_args(p)?;
    signal::install();

    let (train_all, test_all) = data::load_splits(&data_dir, p.get("resize")?)?;
    let [chans, h, w] = train_all.image_shape();
    if h != w {
        return Err(RunError::new(format!("the images are {h}x{w}, not square")));
    }
    let cap = |n: usize| if n == 0 { usize::MAX } else { n };
    let train = data::balanced_prefix(&train_all, cap(n_train), mix(&[seed, 1]))?;
    let bank = data::balanced_prefix(&train_all, cap(n_bank), mix(&[seed, 2]))?;
    let test = data::balanced_prefix(&test_all, cap(n_test), mix(&[seed, 3]))?;
    let niter = train.len() / batch_size;
    if niter == 0 {
        return Err(RunError::usage(
            "--batch-size is larger than the training set",
        ));
    }
    let rcfg = ResNetConfig {
        in_channels: chans,
        // torchvision's stride-4 stem even at 28 px: the small stem keeps 28x28 maps through
        // stage 1 and is ~16x slower on a CPU.
        small_stem: false,
        ..if tiny {
            ResNetConfig::resnet18(0)
        } else {
            ResNetConfig::resnet50(0)
        }
    };
    let arch = format!(
        "{}(in {chans}, small_stem {}, img {h})",
        if tiny { "resnet18" } else { "resnet50" },
        rcfg.small_stem
    );
    let mut rng = Rng::new(seed);
    let online = ResNet::new(rcfg, DType::F32, &mut rng, dev).map_err(ctx("the model"))?;
    let target = online.clone();
    let bcfg = ByolConfig {
        base_lr: lr,
        batch_size,
        base_tau: 0.99,
        warmup_epochs: 0,
        projector_hidden_dim: if tiny { 64 } else { 4096 },
        projection_dim: if tiny { 16 } else { 256 },
        ..ByolConfig::new(epochs)
    };
    let mut trainer =
        ByolTrainer::new(online, target, bcfg, niter, &mut rng).map_err(ctx("setting up BYOL"))?;
    let aug = ByolAugmentation::new(&ByolAugConfig {
        normalize: None,
        ..ByolAugConfig::with_size(h)
    })
    .map_err(ctx("augmentations"))?;
    println!(
        "data: {} ({} train / {} test); training {arch} on {} images, k-NN on {} / {}",
        data_dir.display(),
        train_all.len(),
        test_all.len(),
        train.len(),
        bank.len(),
        test.len()
    );

    // Every setting that determines the numbers, as effective values: what a checkpoint
    // records and --resume compares (not recorded: where outputs go, how often).
    let data_id = std::fs::canonicalize(&data_dir).unwrap_or_else(|_| data_dir.clone());
    let resize: Option<usize> = p.get("resize")?;
    let config = RunConfig::new()
        .with("preset", if tiny { "tiny" } else { "default" })
        .with("data", data_id.display())
        .with("resize", resize.map_or("none".into(), |r| r.to_string()))
        .with("epochs", epochs)
        .with("batch-size", batch_size)
        .with("lr", lr)
        .with("train-images", n_train)
        .with("eval-train", n_bank)
        .with("eval-test", n_test)
        .with("device", Device::from_args(p)?)
        .with("seed", seed);
    let spec = RunSpec {
        arch,
        config,
        extra: Default::default(),
        epochs,
        niter,
        plot: tessera::run::plot::MetricsLabels::byol(),
    };
    let knn_before = |t: &mut ByolTrainer<B, ResNet<B>>| -> Result<Option<f64>> {
        let top1 = knn_top1(t.target_backbone(), &bank, &test, dev)?;
        if let Some(top1) = top1 {
            println!("k-NN before training: top-1 {:.2}%", 100.0 * top1);
        }
        Ok(top1)
    };
    let mut run = session::start_or_resume(
        dev,
        &out_dir,
        &opts,
        spec,
        &mut trainer,
        FreshStart {
            bank: &bank,
            test: &test,
            normalize: None,
            knn_before: &knn_before,
        },
    )?;
    while run.pos.epoch < epochs {
        let epoch = run.pos.epoch;
        let order = Rng::new(mix(&[seed, epoch as u64, 10])).permutation(train.len());
        let bar = Progress::new(format!("epoch {}/{epochs}", epoch + 1), niter);
        let t_epoch = Instant::now();
        let first_step = run.pos.step;
        while run.pos.step < niter {
            let step = run.pos.step;
            // Everything random in a step derives from (seed, epoch, step): a resumed run
            // draws the same views without any saved generator state.
            let mut rng = Rng::new(mix(&[seed, epoch as u64, step as u64, 20]));
            let idx = &order[step * batch_size..(step + 1) * batch_size];
            let mut v1 = Vec::with_capacity(batch_size);
            let mut v2 = Vec::with_capacity(batch_size);
            for &i in idx {
                let [a, b] = train
                    .image(i)
                    .and_then(|im| aug.apply(&im, &mut rng))
                    .map_err(ctx("augmentation"))?;
                v1.push(a);
                v2.push(b);
            }
            let x1 = stack_images(&v1.iter().collect::<Vec<_>>(), dev).map_err(ctx("batch"))?;
            let x2 = stack_images(&v2.iter().collect::<Vec<_>>(), dev).map_err(ctx("batch"))?;
            let stats = trainer.train_step(&x1, &x2).map_err(ctx("training step"))?;
            if !stats.loss.is_finite() {
                return Err(RunError::new(format!("the loss is {}", stats.loss)));
            }
            run.step_done(stats.loss, stats.lr);
            let done = run.pos.step;
            let ips = ((done - first_step) * batch_size) as f64 / t_epoch.elapsed().as_secs_f64();
            bar.update(done, run.pos.loss_sum / done as f64, stats.lr, ips);
            if let Err(e) = run.after_step(&trainer) {
                bar.finish();
                return Err(e);
            }
        }
        bar.finish();
        let ips = (niter.saturating_sub(first_step) * batch_size) as f64
            / t_epoch.elapsed().as_secs_f64();
        let Some(knn) = knn_top1(trainer.target_backbone(), &bank, &test, dev)? else {
            return Err(run.stop(&trainer));
        };
        let m = EpochMetrics {
            epoch: epoch + 1,
            loss: run.pos.loss_sum / niter as f64,
            lr: run.pos.lr,
            knn_top1: Some(knn),
            images_per_s: ips,
            elapsed_s: run.elapsed_s(),
        };
        println!(
            "epoch {}/{epochs}: loss {:.4}, k-NN top-1 {:.2}%, {:.1} img/s",
            m.epoch,
            m.loss,
            100.0 * knn,
            ips
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
    Ok(())
}
