//! BYOL on the embedded Fashion-MNIST subset (or `--data`), with the conventions of
//! `dino_vit_s`: k-NN (k = 20, T = 0.07) before and after training beside the raw-pixel floor,
//! of the online backbone (the headline: BYOL keeps the online encoder and drops the rest)
//! and of the target (EMA) backbone, `metrics.jsonl`, `metrics.png`, a checkpoint every
//! epoch and every `--save-every` steps, a bit-exact `--resume` that refuses changed flags
//! unless `--allow-config-change`, and SIGINT/SIGTERM (checkpoint at the next safe point, exit
//! 130 or 143).
//!
//! The default preset is a small ResNet that learns on a CPU (see `config.rs`);
//! `--preset resnet50` is torchvision's ResNet-50 with BYOL's ImageNet recipe.
//!
//! ```sh
//! cargo run --release --example byol_resnet50
//! cargo run --example byol_resnet50 -- --help
//! ```

mod config;

use config::{Config, ABOUT, FLAGS};
use std::time::Instant;
use tessera::autograd::Var;
use tessera::nn::models::resnet::{ConvInit, ResNet, ResNetConfig};
use tessera::nn::module::Module;
use tessera::run::args::{self, Outcome};
use tessera::run::metrics::EpochMetrics;
use tessera::run::progress::{Phase, Progress};
use tessera::run::session::{self, FreshStart, RunSpec};
use tessera::run::trace::Trace;
use tessera::run::{ckpt, ctx, data, exit_on_error, mix, signal, Program, Result, RunError};
use tessera::ssl::augment::{stack_images, ByolAugConfig, ByolAugmentation, Image, Normalize};
use tessera::ssl::data::Dataset;
use tessera::ssl::train::{Backbone, ByolConfig, ByolTrainer};
use tessera::tensor::{Backend, DType, Rng, Tensor};

fn main() {
    exit_on_error(|| {
        let p = match args::parse_env("byol_resnet50", ABOUT, FLAGS)? {
            Outcome::Help(h) => {
                print!("{h}");
                return Ok(());
            }
            Outcome::Run(p) => p,
        };
        let cfg = Config::from_args(&p)?;
        cfg.precision.apply();
        // Fails here, before any work, for a device this build has no backend for.
        cfg.device.run(cfg)
    })
}

/// Pooled features of a copy of the backbone in evaluation mode (BatchNorm running stats)
/// for images `range` of `ds` (standardised with `norm` as in training), on `dev`.
fn features<B: Backend>(
    model: &ResNet<B>,
    ds: &Dataset,
    range: std::ops::Range<usize>,
    norm: Option<&Normalize>,
    dev: &B,
) -> Result<Tensor<B>> {
    let mut m = model.clone();
    m.set_training(false);
    let mut imgs: Vec<Image> = range
        .map(|i| ds.image(i))
        .collect::<std::result::Result<_, _>>()
        .map_err(ctx("features"))?;
    if let Some(n) = norm {
        for im in &mut imgs {
            n.apply(im).map_err(ctx("features"))?;
        }
    }
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
    norm: Option<&Normalize>,
    dev: &B,
) -> Result<Option<f64>> {
    const BATCH: usize = 128;
    let units = session::chunk_count(bank.len(), BATCH)
        + session::chunk_count(test.len(), BATCH)
        + session::knn_units(test.len());
    let mut phase = Phase::new("k-NN", units);
    let feats = |ds: &Dataset, phase: &mut Phase| {
        session::features_polled(ds.len(), BATCH, phase, |r| {
            features(model, ds, r, norm, dev)
        })
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

impl Program for Config {
    fn run<B: Backend>(self, dev: B) -> Result<()> {
        train(&self, &dev)
    }
}

/// The training run, with every model tensor on `dev`.
fn train<B: Backend>(cfg: &Config, dev: &B) -> Result<()> {
    let (epochs, batch_size, seed) = (cfg.epochs, cfg.batch_size, cfg.seed);
    signal::install();

    let (train_all, test_all) = data::load_splits(&cfg.data, cfg.resize)?;
    let [chans, h, w] = train_all.image_shape();
    if h != w {
        return Err(RunError::new(format!("the images are {h}x{w}, not square")));
    }
    let cap = |n: usize| if n == 0 { usize::MAX } else { n };
    let train = data::balanced_prefix(&train_all, cap(cfg.train_images), mix(&[seed, 1]))?;
    let bank = data::balanced_prefix(&train_all, cap(cfg.eval_train), mix(&[seed, 2]))?;
    let test = data::balanced_prefix(&test_all, cap(cfg.eval_test), mix(&[seed, 3]))?;
    let niter = train.len() / batch_size;
    if niter == 0 {
        return Err(RunError::usage(
            "--batch-size is larger than the training set",
        ));
    }
    // The small preset standardises its inputs with the training split's per-channel
    // statistics (as dino_vit_s); the checkpoint records them for evaluation.
    let norm = match cfg.standardize {
        true => Some(
            train_all
                .channel_stats()
                .and_then(|(m, s)| Normalize::new(m, s.iter().map(|s| s.max(1e-3)).collect()).ok())
                .ok_or_else(|| RunError::new("the training split is empty"))?,
        ),
        false => None,
    };
    let rcfg = ResNetConfig {
        in_channels: chans,
        ..cfg.resnet
    };
    let arch = format!(
        "resnet(layers {:?}, width {}, in {chans}, small_stem {}, img {h}) + projector/predictor \
         {}-{}",
        rcfg.layers, rcfg.base_channels, rcfg.small_stem, cfg.projector_hidden, cfg.projection_dim
    );
    let mut rng = Rng::new(seed);
    let online = ResNet::new(rcfg, DType::F32, &mut rng, dev).map_err(ctx("the model"))?;
    let target = online.clone();
    let bcfg = ByolConfig {
        base_lr: cfg.lr,
        batch_size,
        base_tau: cfg.base_tau,
        warmup_epochs: cfg.warmup_epochs,
        weight_decay: cfg.weight_decay,
        optimizer: cfg.optimizer,
        projector_hidden_dim: cfg.projector_hidden,
        projection_dim: cfg.projection_dim,
        ..ByolConfig::new(epochs)
    };
    let mut trainer =
        ByolTrainer::new(online, target, bcfg, niter, &mut rng).map_err(ctx("setting up BYOL"))?;
    let aug = ByolAugmentation::new(&ByolAugConfig {
        normalize: norm.clone(),
        scale: cfg.crop_scale,
        blur_and_solarize: cfg.blur_solarize,
        ..ByolAugConfig::with_size(h)
    })
    .map_err(ctx("augmentations"))?;
    println!(
        "data: {} ({} train / {} test); training {arch} on {} images, k-NN on {} / {}",
        cfg.data.display(),
        train_all.len(),
        test_all.len(),
        train.len(),
        bank.len(),
        test.len()
    );
    println!(
        "preset {}: {niter} steps/epoch of {batch_size} images, {} (peak lr {:.3}), \
         weight decay {}, target EMA {} -> 1, {} conv init; precision {}",
        cfg.preset,
        cfg.optimizer_name(),
        bcfg.scaled_lr(),
        cfg.weight_decay,
        cfg.base_tau,
        match rcfg.conv_init {
            ConvInit::Torchvision => "torchvision's",
            ConvInit::PyTorchDefault => "nn.Conv2d's default",
        },
        cfg.precision.name()
    );

    let spec = RunSpec {
        arch,
        config: cfg.trajectory(),
        extra: match &norm {
            Some(n) => tessera::nn::checkpoint::Metadata::from([
                (ckpt::NORMALIZE_MEAN_KEY.into(), ckpt::floats(&n.mean)),
                (ckpt::NORMALIZE_STD_KEY.into(), ckpt::floats(&n.std)),
            ]),
            None => Default::default(),
        },
        epochs,
        niter,
        plot: tessera::run::plot::MetricsLabels::byol(),
    };
    // Online and target are one network at the start: one k-NN is the random init's.
    let knn_before = |t: &mut ByolTrainer<B, ResNet<B>>| -> Result<Option<f64>> {
        let top1 = knn_top1(t.online_backbone(), &bank, &test, norm.as_ref(), dev)?;
        if let Some(top1) = top1 {
            println!("k-NN before training: top-1 {:.2}%", 100.0 * top1);
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
            normalize: norm.as_ref(),
            knn_before: &knn_before,
        },
    )?;
    let mut tracer = match &cfg.trace {
        Some(dir) => Some(Trace::start(
            dir,
            trainer.state_dict().map_err(ctx("--trace"))?,
            &["step", "loss", "lr", "tau"],
        )?),
        None => None,
    };
    // The online backbone's k-NN after the last epoch, when this process evaluated it.
    let mut online_after = None;
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
            if let Some(t) = &mut tracer {
                t.inputs(&[&x1, &x2])?;
            }
            let stats = trainer.train_step(&x1, &x2).map_err(ctx("training step"))?;
            if let Some(t) = &mut tracer {
                t.step(&[stats.iteration as f64, stats.loss, stats.lr, stats.tau])?;
            }
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
        let last = epoch + 1 == epochs;
        let knn = if last || (cfg.knn_every > 0 && (epoch + 1) % cfg.knn_every == 0) {
            match knn_top1(trainer.online_backbone(), &bank, &test, norm.as_ref(), dev)? {
                Some(k) => {
                    online_after = Some(k);
                    Some(k)
                }
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
            images_per_s: ips,
            elapsed_s: run.elapsed_s(),
        };
        println!(
            "epoch {}/{epochs}: loss {:.4}, k-NN top-1 (online) {}, {:.1} img/s, {:.0}s elapsed",
            m.epoch,
            m.loss,
            knn.map_or("(not evaluated)".to_string(), |k| format!(
                "{:.2}%",
                100.0 * k
            )),
            ips,
            m.elapsed_s
        );
        run.end_epoch(&trainer, m)?;
    }
    if let Some(t) = tracer.take() {
        t.finish(trainer.state_dict().map_err(ctx("--trace"))?)?;
    }
    // The final table: both networks beside the floors. The random init is one network (the
    // target starts as a copy of the online network).
    let online = match online_after {
        Some(k) => k,
        None => match knn_top1(trainer.online_backbone(), &bank, &test, norm.as_ref(), dev)? {
            Some(k) => k,
            None => return Err(run.stop(&trainer)),
        },
    };
    let Some(target) = knn_top1(trainer.target_backbone(), &bank, &test, norm.as_ref(), dev)?
    else {
        return Err(run.stop(&trainer));
    };
    let init = run.knn_before();
    let pct = |x: f64| format!("{:6.2}%", 100.0 * x);
    println!(
        "k-NN top-1 (k=20, T=0.07), bank {} train / {} test images:",
        bank.len(),
        test.len()
    );
    println!("  raw pixels:      {}", pct(run.knn_raw()));
    println!("  random init:     {}", pct(init));
    println!("  online backbone: {}  (the headline)", pct(online));
    println!("  target backbone: {}  (EMA)", pct(target));
    println!(
        "  headline (online backbone): {:+.2} points over the random init",
        100.0 * (online - init)
    );
    println!("{}", run.files.summary());
    Ok(())
}
