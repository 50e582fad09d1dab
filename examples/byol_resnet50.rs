//! BYOL with a ResNet-50 backbone on the embedded Fashion-MNIST subset (or `--data`), with the
//! conventions of `dino_vit_s`: k-NN (k = 20, T = 0.07) before and after training and the
//! raw-pixel floor, `metrics.jsonl`, `metrics.png`, a checkpoint every epoch, `--resume`,
//! Ctrl-C (checkpoint, exit 130).
//!
//! ```sh
//! cargo run --example byol_resnet50
//! cargo run --example byol_resnet50 -- --help
//! ```

use std::path::PathBuf;
use std::time::Instant;
use tessera::autograd::Var;
use tessera::nn::checkpoint::Metadata;
use tessera::nn::models::resnet::{ResNet, ResNetConfig};
use tessera::nn::module::Module;
use tessera::run::args::{self, Flag, Outcome, Parsed};
use tessera::run::device::DEVICE_FLAG;
use tessera::run::metrics::{self, EpochMetrics};
use tessera::run::progress::Progress;
use tessera::run::session::{self, FreshStart, RunFiles, RunStart};
use tessera::run::{
    ckpt, ctx, data, exit_on_error, mix, signal, Device, Program, Result, RunError,
};
use tessera::ssl::augment::{stack_images, ByolAugConfig, ByolAugmentation, Image};
use tessera::ssl::data::Dataset;
use tessera::ssl::eval::{knn_classifier, KnnConfig};
use tessera::ssl::train::{Backbone, ByolConfig, ByolTrainer};
use tessera::tensor::{Backend, DType, Rng, Tensor};

const ABOUT: &str = "BYOL self-supervised training of a ResNet-50 on Fashion-MNIST (or --data), \
with k-NN evaluation before and after training";

const FLAGS: &[Flag] = &[
    Flag::value(
        "data",
        "DIR",
        "Dataset folder [default: the embedded data/fashion-mnist]",
    ),
    Flag::value("resize", "PX", data::RESIZE_HELP),
    Flag::value(
        "preset",
        "NAME",
        "default | tiny (ResNet-18, few images: for tests)",
    ),
    Flag::value("epochs", "N", "Training epochs [default: 2]"),
    Flag::value("batch-size", "N", "Images per step [default: 16]"),
    Flag::value(
        "lr",
        "LR",
        "Base LARS learning rate for a batch of 256 [default: 0.2]",
    ),
    Flag::value(
        "train-images",
        "N",
        "Class-balanced training subset (0 = all) [default: 64]",
    ),
    Flag::value(
        "eval-train",
        "N",
        "k-NN bank images (0 = all) [default: 400]",
    ),
    Flag::value(
        "eval-test",
        "N",
        "k-NN test images (0 = all) [default: 200]",
    ),
    DEVICE_FLAG,
    Flag::value("seed", "N", "Random seed [default: 0]"),
    Flag::value("output-dir", "DIR", "Outputs [default: runs/byol_resnet50]"),
    Flag::switch(
        "resume",
        "Continue from <output-dir>/checkpoint.safetensors",
    ),
];

fn main() {
    exit_on_error(|| {
        let p = match args::parse(std::env::args().skip(1), "byol_resnet50", ABOUT, FLAGS)? {
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

/// Pooled features of a copy of the backbone in evaluation mode (BatchNorm running stats);
/// the images go to the model's backend `dev` in batches of 128.
fn features<B: Backend>(model: &ResNet<B>, ds: &Dataset, dev: &B) -> Result<Tensor<B>> {
    let mut m = model.clone();
    m.set_training(false);
    let mut rows = Vec::new();
    for start in (0..ds.len()).step_by(128) {
        let imgs: Vec<Image> = (start..(start + 128).min(ds.len()))
            .map(|i| ds.image(i))
            .collect::<std::result::Result<_, _>>()
            .map_err(ctx("features"))?;
        let refs: Vec<&Image> = imgs.iter().collect();
        let x = stack_images(&refs, dev).map_err(ctx("features"))?;
        let f = Backbone::forward_features(&mut m, &Var::constant(x)).map_err(ctx("features"))?;
        rows.push(f.value().clone());
    }
    Tensor::cat(&rows, 0).map_err(ctx("features"))
}

fn knn_top1<B: Backend>(model: &ResNet<B>, bank: &Dataset, test: &Dataset, dev: &B) -> Result<f64> {
    let tr = features(model, bank, dev)?;
    let te = features(model, test, dev)?;
    let classes = bank.num_classes.max(test.num_classes);
    let cfg = KnnConfig::with_k(20.min(bank.len()));
    let r =
        knn_classifier(&tr, &bank.labels, &te, &test.labels, classes, &cfg).map_err(ctx("k-NN"))?;
    Ok(r[0].top1)
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
    let data_dir: PathBuf = p.get("data")?.unwrap_or_else(data::default_data_dir);
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

    let files = RunFiles::create(&out_dir)?;
    let (ck_path, jsonl, png) = (&files.checkpoint, &files.metrics, &files.plot);
    let knn_before = |t: &mut ByolTrainer<B, ResNet<B>>| -> Result<f64> {
        let top1 = knn_top1(t.target_backbone(), &bank, &test, dev)?;
        println!("k-NN before training: top-1 {:.2}%", 100.0 * top1);
        Ok(top1)
    };
    let RunStart {
        position: pos,
        mut history,
    } = session::start_or_resume(
        dev,
        &files,
        p.switch("resume"),
        (&arch, seed),
        &mut trainer,
        |t, sd| t.load_state_dict(sd).map_err(|e| e.to_string()),
        FreshStart {
            bank: &bank,
            test: &test,
            knn_before: &knn_before,
        },
    )?;
    let (mut epoch, mut step, mut loss_sum) = (pos.epoch, pos.step, pos.loss_sum);
    let (knn_before, elapsed_before) = (pos.knn_before, pos.elapsed_s);
    let start = Instant::now();
    let elapsed = |s: &Instant| elapsed_before + s.elapsed().as_secs_f64();
    let metadata = |epoch: usize, step: usize, loss_sum: f64, elapsed_s: f64| -> Metadata {
        let pos = ckpt::RunPosition {
            epoch,
            step,
            loss_sum,
            elapsed_s,
            ..pos
        };
        pos.metadata(&arch)
    };
    let save = |trainer: &ByolTrainer<B, ResNet<B>>, md: Metadata| -> Result<()> {
        let sd = trainer.state_dict().map_err(ctx("state dict"))?;
        ckpt::save(ck_path, sd, md)
    };
    while epoch < epochs {
        let order = Rng::new(mix(&[seed, epoch as u64, 10])).permutation(train.len());
        let bar = Progress::new(format!("epoch {}/{epochs}", epoch + 1), niter);
        let t_epoch = Instant::now();
        let first_step = step;
        let mut lr_now = 0.0;
        while step < niter {
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
            loss_sum += stats.loss;
            lr_now = stats.lr;
            step += 1;
            let ips = ((step - first_step) * batch_size) as f64 / t_epoch.elapsed().as_secs_f64();
            bar.update(step, loss_sum / step as f64, lr_now, ips);
            if signal::interrupted() && step < niter {
                bar.finish();
                save(&trainer, metadata(epoch, step, loss_sum, elapsed(&start)))?;
                eprintln!("interrupted: checkpoint written to {}", ck_path.display());
                std::process::exit(signal::EXIT_INTERRUPTED);
            }
        }
        bar.finish();
        let ips = ((niter - first_step) * batch_size) as f64 / t_epoch.elapsed().as_secs_f64();
        let knn = knn_top1(trainer.target_backbone(), &bank, &test, dev)?;
        let m = EpochMetrics {
            epoch: epoch + 1,
            loss: loss_sum / niter as f64,
            lr: lr_now,
            knn_top1: Some(knn),
            images_per_s: ips,
            elapsed_s: elapsed(&start),
        };
        println!(
            "epoch {}/{epochs}: loss {:.4}, k-NN top-1 {:.2}%, {:.1} img/s",
            m.epoch,
            m.loss,
            100.0 * knn,
            ips
        );
        metrics::append_jsonl(jsonl, &m)?;
        history.push(m);
        (epoch, step, loss_sum) = (epoch + 1, 0, 0.0);
        save(&trainer, metadata(epoch, step, loss_sum, elapsed(&start)))?;
        metrics::plot_png(png, &history, Some(knn_before))?;
        if signal::interrupted() && epoch < epochs {
            eprintln!("interrupted: checkpoint written to {}", ck_path.display());
            std::process::exit(signal::EXIT_INTERRUPTED);
        }
    }
    let after = history
        .last()
        .and_then(|m| m.knn_top1)
        .unwrap_or(knn_before);
    println!(
        "k-NN (k=20, T=0.07) on {} train / {} test images:",
        bank.len(),
        test.len()
    );
    println!("  raw pixels:      {:.2}%", 100.0 * pos.knn_raw);
    println!("  before training: {:.2}%", 100.0 * knn_before);
    println!("  after training:  {:.2}%", 100.0 * after);
    Ok(())
}
