//! DINO with a ViT-S backbone on the embedded Fashion-MNIST subset (or `--data`).
//!
//! ```sh
//! cargo run --example dino_vit_s            # default: sized for ~10 min on 2 CPU cores
//! cargo run --example dino_vit_s -- --help  # every flag
//! ```
//!
//! Prints the k-NN floors (standardised raw pixels, the random init), then trains and prints
//! the k-NN accuracy (k = 20, T = 0.07) of the student and the teacher, CLS token and mean of
//! the patch tokens, on the whole embedded split (bank 10,000 / test 2,000). Writes
//! `metrics.jsonl`, `metrics.png` and `checkpoint.safetensors` (every epoch and every
//! `--save-every` steps) to `--output-dir`, and resumes bit-exactly with `--resume` (a changed
//! flag that affects the numbers is refused unless `--allow-config-change`). SIGINT (Ctrl-C)
//! or SIGTERM stops at the next safe point (after the current step, between k-NN batches,
//! after a file write), writes a checkpoint and exits with 130 or 143.

use std::cell::Cell;
use std::time::Instant;
use tessera::nn::checkpoint::Metadata;
use tessera::nn::models::vit::{VisionTransformer, VitConfig};
use tessera::run::args::{self, Outcome};
use tessera::run::metrics::EpochMetrics;
use tessera::run::progress::Progress;
use tessera::run::session::{self, FreshStart, RunSpec};
use tessera::run::trace::Trace;
use tessera::run::{ckpt, ctx, data, exit_on_error, mix, signal, Program, Result, RunError};
use tessera::ssl::augment::{
    batch_by_resolution, DataAugmentationDino, DinoAugConfig, Image, Normalize,
};
use tessera::ssl::train::{DinoConfig, DinoTrainer, StepSchedule};
use tessera::tensor::{Backend, DType, Rng, Tensor};

mod config;
mod eval;

use config::{Config, ABOUT, FLAGS};
use eval::{knn_pair, KnnPair, HEADLINE};

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
        cfg.precision.apply();
        // Fails here, before any work, for a device this build has no backend for.
        cfg.device.run(cfg)
    })
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
    let schedule_epochs = cfg.schedule_epochs.unwrap_or(cfg.epochs);
    if schedule_epochs < cfg.epochs {
        return Err(RunError::usage(format!(
            "--epochs {} is longer than the schedules' --schedule-epochs {schedule_epochs}",
            cfg.epochs
        )));
    }
    if cfg.batch_size == 0 || cfg.epochs == 0 {
        return Err(RunError::usage(
            "--batch-size and --epochs must be positive",
        ));
    }
    let seed = cfg.seed;
    // A class-balanced subset of n images; 0 means all of them.
    let subset = |ds, n: usize, stream| {
        let n = if n == 0 { usize::MAX } else { n };
        data::balanced_prefix(ds, n, mix(&[seed, stream]))
    };
    let train = subset(&train_all, cfg.train_images, 1)?;
    let bank = subset(&train_all, cfg.eval_train, 2)?;
    let test = subset(&test_all, cfg.eval_test, 3)?;
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
    // The schedules span `schedule_epochs`; the run stops after `epochs` of them.
    let total_steps = niter
        .checked_mul(schedule_epochs)
        .ok_or_else(|| RunError::usage("--epochs x steps per epoch overflows"))?;
    let (warmup_steps, freeze_steps) = cfg.step_lengths(total_steps);
    let step_schedule = cfg.schedule_in_steps.then_some(StepSchedule {
        warmup: warmup_steps.min(total_steps),
        warmup_teacher_temp: cfg.warmup_teacher_temp_steps.min(total_steps),
        freeze_last_layer: freeze_steps,
    });
    let dcfg = DinoConfig {
        head_hidden_dim: cfg.head_hidden,
        head_bottleneck_dim: cfg.head_bottleneck,
        teacher_temp: cfg.teacher_temp,
        warmup_teacher_temp_epochs: cfg.warmup_teacher_temp_epochs,
        lr: cfg.lr,
        batch_size: cfg.batch_size,
        warmup_epochs: cfg.warmup_epochs.min(schedule_epochs),
        momentum_teacher: cfg.momentum_teacher,
        freeze_last_layer: cfg.freeze_last_layer,
        norm_last_layer: cfg.norm_last_layer,
        local_crops_number: cfg.local_crops,
        global_crops_size: img_size,
        local_crops_size: local_size,
        step_schedule,
        ..DinoConfig::new(cfg.out_dim, schedule_epochs)
    };
    let mut trainer = DinoTrainer::new(student, teacher, dcfg, niter, &mut rng)
        .map_err(ctx("setting up DINO"))?;
    let aug = DataAugmentationDino::new(&DinoAugConfig {
        local_crops_number: cfg.local_crops,
        global_crops_scale: cfg.global_scale,
        local_crops_scale: cfg.local_scale,
        blur_and_solarize: cfg.blur_solarize,
        normalize: Some(norm.clone()),
        ..DinoAugConfig::with_sizes(img_size, local_size)
    })
    .map_err(ctx("augmentations"))?;
    println!(
        "model: {arch}; {niter} steps/epoch of {} images; precision {}",
        cfg.batch_size,
        cfg.precision.name()
    );

    // Output, then a fresh start or the resume.
    let spec = RunSpec {
        arch: arch.clone(),
        config: cfg.trajectory(img_size, local_size, total_steps),
        extra: Metadata::from([
            (ckpt::NORMALIZE_MEAN_KEY.into(), ckpt::floats(&norm.mean)),
            (ckpt::NORMALIZE_STD_KEY.into(), ckpt::floats(&norm.std)),
        ]),
        epochs: cfg.epochs,
        niter,
        plot: tessera::run::plot::MetricsLabels::dino(),
    };
    // The random init's k-NN: the session records the headline feature; both are kept for
    // the final table (a resumed run evaluates the init again, see below).
    let init_pair: Cell<Option<KnnPair>> = Cell::new(None);
    let knn_before = |t: &mut DinoTrainer<B, VisionTransformer<B>>| -> Result<Option<f64>> {
        let s = Instant::now();
        let pair = knn_pair(t.student_backbone(), &bank, &test, img_size, &norm, dev)?;
        if let Some(p) = pair {
            println!(
                "k-NN of the random init: CLS {:.2}%, patch mean {:.2}%  ({:.1}s)",
                100.0 * p.cls,
                100.0 * p.patch_mean,
                s.elapsed().as_secs_f64()
            );
            init_pair.set(Some(p));
        }
        Ok(pair.map(|p| p.get(HEADLINE)))
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
            normalize: Some(&norm),
            knn_before: &knn_before,
        },
    )?;

    let mut tracer = match &cfg.trace {
        Some(dir) => Some(Trace::start(
            dir,
            trainer.state_dict().map_err(ctx("--trace"))?,
            &[
                "step",
                "loss",
                "lr",
                "weight_decay",
                "momentum",
                "teacher_temp",
                "last_layer_frozen",
            ],
        )?),
        None => None,
    };
    let mut student_pair: Option<KnnPair> = None;
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
            if let Some(t) = &mut tracer {
                t.inputs(&groups.iter().collect::<Vec<_>>())?;
            }
            let stats = trainer
                .train_step(&groups, epoch)
                .map_err(ctx("training step"))?;
            if let Some(t) = &mut tracer {
                t.step(&[
                    stats.iteration as f64,
                    stats.loss,
                    stats.lr,
                    stats.weight_decay,
                    stats.momentum,
                    stats.teacher_temp,
                    f64::from(u8::from(stats.last_layer_frozen)),
                ])?;
            }
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
            let k = knn_pair(
                trainer.student_backbone(),
                &bank,
                &test,
                img_size,
                &norm,
                dev,
            )?;
            match k {
                Some(k) => {
                    student_pair = Some(k);
                    Some(k.get(HEADLINE))
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
    if let Some(t) = tracer.take() {
        t.finish(trainer.state_dict().map_err(ctx("--trace"))?)?;
    }
    // The final table: both networks, both features, beside the floors.
    let student = match student_pair {
        Some(p) => p,
        None => match knn_pair(
            trainer.student_backbone(),
            &bank,
            &test,
            img_size,
            &norm,
            dev,
        )? {
            Some(p) => p,
            None => return Err(run.stop(&trainer)),
        },
    };
    let Some(teacher) = knn_pair(
        trainer.teacher_backbone(),
        &bank,
        &test,
        img_size,
        &norm,
        dev,
    )?
    else {
        return Err(run.stop(&trainer));
    };
    let init = match init_pair.get() {
        Some(p) => p,
        None => {
            // Resumed: the random init is the seed's; build it again rather than store it.
            let fresh = VisionTransformer::new(vit, DType::F32, &mut Rng::new(seed), dev)
                .map_err(ctx("the model"))?;
            match knn_pair(&fresh, &bank, &test, img_size, &norm, dev)? {
                Some(p) => p,
                None => return Err(run.stop(&trainer)),
            }
        }
    };
    let pct = |x: f64| format!("{:6.2}%", 100.0 * x);
    println!(
        "k-NN top-1 (k=20, T=0.07), bank {} train / {} test images:",
        bank.len(),
        test.len()
    );
    println!("                     CLS      patch mean");
    println!(
        "  raw pixels:     {} (standardised pixels)",
        pct(run.knn_raw())
    );
    println!(
        "  random init:    {}   {}",
        pct(init.cls),
        pct(init.patch_mean)
    );
    println!(
        "  student:        {}   {}",
        pct(student.cls),
        pct(student.patch_mean)
    );
    println!(
        "  teacher:        {}   {}",
        pct(teacher.cls),
        pct(teacher.patch_mean)
    );
    println!(
        "  headline (student {}): {:+.2} points over the random init",
        HEADLINE.name(),
        100.0 * (student.get(HEADLINE) - init.get(HEADLINE))
    );
    println!("{}", run.files.summary());
    Ok(())
}
