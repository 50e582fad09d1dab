//! Whole training-step throughput of DINO ViT-S/16, the main job's default DINO step and BYOL
//! ResNet-50 on any backend: the Tessera side of the comparison with PyTorch eager
//! (`scripts/bench_steps.py`, same models, shapes and optimizers; `scripts/bench_steps.sh`
//! runs both on a GPU, `scripts/bench_cpu.sh` runs the CPU rows and prints a table).
//!
//! ```sh
//! cargo run --release --features cuda --example bench_steps -- \
//!     --device cuda --model dino_vit_s16 --batch 64 --steps 10 --warmup 3 --dtype f32
//! # a quick check on the CPU (or --device cuda-sim) with tiny models and crops:
//! cargo run --release --example bench_steps -- --model dino_vit_s16 --tiny \
//!     --img-size 32 --local-size 16 --local-crops 2 --batch 4 --steps 2 --warmup 1
//! ```
//!
//! One step is exactly one `train_step` of the library's trainers:
//!
//! - `dino_vit_s16`: [`DinoTrainer`] with ViT-S/16 student and teacher (patch 16, 384 dims,
//!   12 blocks, 6 heads), DINO head 384 → 2048 → 2048 → 256 → 65536 (weight-normed last
//!   layer, `g` frozen), 2 global crops of `--img-size` (224) and `--local-crops` (10) local
//!   crops of `--local-size` (96) per image, grouped by resolution (teacher on the global
//!   crops, student on all); DINO loss with centering; per-parameter gradient clipping at
//!   3.0; AdamW (lr 0.0005·batch/256, weight decay 0.04); teacher EMA (momentum 0.996). The
//!   last layer is not frozen (`freeze_last_layer = 0`), so every parameter is updated.
//! - `dino_default`: the same step at the size of `examples/dino_vit_s`'s default recipe:
//!   ViT 192 wide, 6 deep, 3 heads, patch 7; head 192 → 2048 → 2048 → 256 → 2048; batch 128
//!   with 2 global crops of 28 px per image and no local crops (the default recipe drops
//!   them; `--local-crops 4` times the previous default's step).
//! - `byol_resnet50`: [`ByolTrainer`] with torchvision's ResNet-50 (no classifier) online and
//!   target, projector and predictor MLPs 4096-256 with BatchNorm, two views of `--img-size`
//!   (224) per image, each through the online and the target network; BYOL loss; LARS
//!   (momentum 0.9, η 1e-3, weight decay 1.5e-6, lr 0.2·batch/256); target EMA (τ 0.996).
//! - `byol_small`: the same trainer at the size of `examples/byol_resnet50`'s default preset:
//!   the ResNet-18 layout at width 16 with the CIFAR-style stem on 1-channel views of 28 px,
//!   projector and predictor 512-128, batch 128; SGD (momentum 0.9, weight decay 5e-4, lr
//!   0.2·batch/256); target EMA (τ 0.99).
//!
//! The crops are random normal tensors made on the device before the first step. Every
//! step is timed between two `synchronize()` calls; the result is the median over `--steps`
//! steps after `--warmup` untimed ones, in images per second (`batch / median step`; an
//! image is one sample of the batch, not one crop). `--time-limit S` ends the run early
//! once the steps have taken `S` seconds (with at least one timed step), so that a slow
//! device still reports within a fixed time. On a CUDA device the caching allocator's
//! peak of bytes in live blocks since the device was opened (weights, optimizer state and
//! activations) is printed too; PyTorch's `torch.cuda.max_memory_allocated` is the same
//! measure. On the CPU the peak is the process's peak resident set (`VmHWM` of
//! `/proc/self/status`, Linux only), which the PyTorch script reads as `ru_maxrss`; both
//! count the whole process (the program, its libraries, data and buffer caches).
//!
//! `--dtype bf16` makes the weights, the optimizer state and the inputs bf16 ("pure bf16"),
//! unlike PyTorch's autocast, which keeps f32 master weights and runs only some ops in bf16.
//! `--precision bf16` (CPU) keeps everything f32 but rounds every GEMM's inputs to bf16 with
//! f32 accumulation: the closer counterpart of the script's `--dtype bf16` (autocast).
//!
//! `--profile` also prints where the timed steps' time went, per step: the trainer's phases
//! (forward passes, loss, backward, clip, optimizer, EMA) and the backward by op, from
//! `tessera::autograd::profile` (PyTorch: `torch.profiler` on the same step). The timers
//! cost a little time of their own (and a device synchronization per span on a GPU), so
//! take throughput from a run without it.
//!
//! The last line is machine-readable:
//! `RESULT model=... dtype=... precision=... batch=... img_per_s=... step_ms=... steps=... peak_mb=...`
//! (`peak_mb=na` where neither measure is available).

use std::any::Any;
use std::time::Instant;
use tessera::autograd::profile;
use tessera::nn::models::resnet::{BlockKind, ResNet, ResNetConfig};
use tessera::nn::models::vit::{VisionTransformer, VitConfig};
use tessera::nn::optim::SgdConfig;
use tessera::run::args::{self, Flag, Outcome, Parsed};
use tessera::run::device::DEVICE_FLAG;
use tessera::run::precision::{Precision, PRECISION_FLAG};
use tessera::run::{ctx, exit_on_error, Device, Program, Result, RunError};
use tessera::ssl::train::{ByolConfig, ByolOptimizer, ByolTrainer, DinoConfig, DinoTrainer};
use tessera::tensor::{Backend, DType, Rng, Tensor};

const ABOUT: &str = "Training-step throughput of DINO ViT-S/16 and BYOL ResNet-50 (Tessera side \
of scripts/bench_steps.sh)";

const FLAGS: &[Flag] = &[
    Flag::value("model", "NAME", "dino_vit_s16 | dino_default | byol_resnet50 | byol_small").default("dino_vit_s16"),
    Flag::value("batch", "N", "Images per step").default_note("64; dino_default, byol_small: 128"),
    Flag::value("steps", "N", "Timed steps").default("10"),
    Flag::value("warmup", "N", "Untimed steps first").default("3"),
    Flag::value("time-limit", "S", "Stop early once the steps have taken S seconds, keeping the timed steps so far (at least one; 0 = no limit)").default("0"),
    Flag::value("dtype", "f32|bf16", "Model, optimizer state and input dtype (bf16: pure bf16 weights, not autocast)").default("f32"),
    Flag::value("img-size", "PX", "Global crop / view side").default_note("224; dino_default, byol_small: 28"),
    Flag::value("local-size", "PX", "DINO local crop side").default_note("96; dino_default: 14"),
    Flag::value("local-crops", "N", "DINO local crops per image").default_note("10; dino_default: 0"),
    Flag::value("patch-size", "PX", "ViT patch side").default_note("16; dino_default: 7, --tiny: 8"),
    Flag::value("out-dim", "K", "DINO head output dimension").default_note("65536; dino_default: 2048, --tiny: 128"),
    Flag::switch("profile", "Also print the timed steps' time by phase and by backward op"),
    Flag::switch("tiny", "Tiny models for quick checks: ViT 32 dims, 2 blocks, 2 heads, head 64-16; ResNet with one bottleneck per stage, projector 64-16"),
    DEVICE_FLAG,
    PRECISION_FLAG,
    Flag::value("seed", "N", "Random seed").default("0"),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Model {
    Dino,
    /// DINO at the size of `examples/dino_vit_s`'s default recipe.
    DinoDefault,
    Byol,
    /// BYOL at the size of `examples/byol_resnet50`'s default (`small`) preset.
    ByolSmall,
}

impl Model {
    fn name(self) -> &'static str {
        match self {
            Model::Dino => "dino_vit_s16",
            Model::DinoDefault => "dino_default",
            Model::Byol => "byol_resnet50",
            Model::ByolSmall => "byol_small",
        }
    }
}

#[derive(Clone, Debug)]
struct Config {
    model: Model,
    batch: usize,
    steps: usize,
    warmup: usize,
    time_limit: f64,
    dtype: DType,
    img_size: usize,
    local_size: usize,
    local_crops: usize,
    patch_size: usize,
    out_dim: usize,
    tiny: bool,
    profile: bool,
    device: Device,
    precision: Precision,
    seed: u64,
}

impl Config {
    fn from_args(p: &Parsed) -> Result<Config> {
        let model = match p.value::<String>("model")?.as_str() {
            "dino_vit_s16" | "dino" => Model::Dino,
            "dino_default" => Model::DinoDefault,
            "byol_resnet50" | "byol" => Model::Byol,
            "byol_small" => Model::ByolSmall,
            other => {
                return Err(RunError::usage(format!(
                    "--model: expected dino_vit_s16, dino_default, byol_resnet50 or byol_small, got {other:?}"
                )))
            }
        };
        let dtype = match p.value::<String>("dtype")?.as_str() {
            "f32" => DType::F32,
            "bf16" => DType::BF16,
            other => {
                return Err(RunError::usage(format!(
                    "--dtype: expected f32 or bf16, got {other:?}"
                )))
            }
        };
        let tiny = p.switch("tiny");
        let profile = p.switch("profile");
        let small = matches!(model, Model::DinoDefault | Model::ByolSmall);
        let pick = |paper: usize, default: usize| if small { default } else { paper };
        let c = Config {
            model,
            batch: p.get_or("batch", pick(64, 128))?,
            steps: p.value("steps")?,
            warmup: p.value("warmup")?,
            time_limit: p.value("time-limit")?,
            dtype,
            img_size: p.get_or("img-size", pick(224, 28))?,
            local_size: p.get_or("local-size", pick(96, 14))?,
            local_crops: p.get_or("local-crops", pick(10, 0))?,
            patch_size: p.get_or("patch-size", if tiny { 8 } else { pick(16, 7) })?,
            out_dim: p.get_or("out-dim", if tiny { 128 } else { pick(65536, 2048) })?,
            tiny,
            profile,
            device: Device::from_args(p)?,
            precision: Precision::from_args(p, Device::from_args(p)?)?,
            seed: p.value("seed")?,
        };
        if c.batch < 2 || c.steps == 0 || c.out_dim == 0 {
            return Err(RunError::usage(
                "--batch must be >= 2 (BatchNorm), --steps and --out-dim > 0",
            ));
        }
        if !matches!(c.model, Model::Byol | Model::ByolSmall) {
            let p = c.patch_size;
            for (flag, s) in [("--img-size", c.img_size), ("--local-size", c.local_size)] {
                if p == 0 || s == 0 || s % p != 0 {
                    return Err(RunError::usage(format!(
                        "{flag} {s} is not a multiple of the patch size {p} (--patch-size)"
                    )));
                }
            }
        }
        Ok(c)
    }

    fn dtype_name(&self) -> &'static str {
        match self.dtype {
            DType::BF16 => "bf16",
            _ => "f32",
        }
    }
}

fn main() {
    exit_on_error(|| {
        let parsed = match args::parse_env("bench_steps", ABOUT, FLAGS)? {
            Outcome::Help(h) => {
                print!("{h}");
                return Ok(());
            }
            Outcome::Run(p) => p,
        };
        let cfg = Config::from_args(&parsed)?;
        cfg.precision.apply();
        cfg.device.run(cfg)
    })
}

impl Program for Config {
    fn run<B: Backend>(self, dev: B) -> Result<()> {
        bench(&self, &dev)
    }
}

/// The CUDA backend behind a generic handle, if it is one (`--device cuda` or `cuda-sim`).
fn as_cuda<B: Backend>(dev: &B) -> Option<&tessera::cuda::Cuda> {
    (dev as &dyn Any).downcast_ref::<tessera::cuda::Cuda>()
}

/// The caching allocator's peak of bytes in live blocks, in MiB, on a CUDA device.
/// Peak memory in MiB: the CUDA caching allocator's peak of live bytes on a CUDA device, else
/// the process's peak resident set (`VmHWM`, Linux).
fn peak_mb<B: Backend>(dev: &B) -> Option<f64> {
    match as_cuda(dev) {
        Some(c) => Some(c.memory_stats().peak_in_use_bytes as f64 / (1u64 << 20) as f64),
        None => peak_rss_mb(),
    }
}

/// `VmHWM` of `/proc/self/status` in MiB (`None` off Linux).
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let k = s.len();
    if k % 2 == 1 {
        s[k / 2]
    } else {
        (s[k / 2 - 1] + s[k / 2]) / 2.0
    }
}

fn randn<B: Backend>(shape: &[usize], dtype: DType, rng: &mut Rng, dev: &B) -> Result<Tensor<B>> {
    Tensor::randn(shape, 0.0, 1.0, dtype, rng, dev).map_err(ctx("making the inputs"))
}

/// One training step of either model, behind one call.
enum Stepper<B: Backend> {
    Dino(Box<DinoTrainer<B, VisionTransformer<B>>>, Vec<Tensor<B>>),
    Byol(Box<ByolTrainer<B, ResNet<B>>>, Box<(Tensor<B>, Tensor<B>)>),
}

impl<B: Backend> Stepper<B> {
    /// One step; returns the loss.
    fn step(&mut self) -> Result<f64> {
        match self {
            Stepper::Dino(t, groups) => t
                .train_step(groups, 0)
                .map(|s| s.loss)
                .map_err(ctx("DINO step")),
            Stepper::Byol(t, views) => t
                .train_step(&views.0, &views.1)
                .map(|s| s.loss)
                .map_err(ctx("BYOL step")),
        }
    }
}

/// Builds the trainer and its pre-made inputs; returns it with a description.
fn build<B: Backend>(c: &Config, dev: &B) -> Result<(Stepper<B>, String)> {
    let mut rng = Rng::new(c.seed);
    let niter = c.warmup + c.steps;
    let b = c.batch;
    match c.model {
        Model::Dino | Model::DinoDefault => {
            let vit = VitConfig {
                img_size: c.img_size,
                ..if c.tiny {
                    VitConfig {
                        embed_dim: 32,
                        depth: 2,
                        num_heads: 2,
                        ..VitConfig::small(c.patch_size)
                    }
                } else if c.model == Model::DinoDefault {
                    VitConfig {
                        depth: 6,
                        ..VitConfig::tiny(c.patch_size)
                    }
                } else {
                    VitConfig::small(c.patch_size)
                }
            };
            let student =
                VisionTransformer::new(vit, c.dtype, &mut rng, dev).map_err(ctx("the ViT"))?;
            let teacher = student.clone();
            let (hidden, bottleneck) = if c.tiny { (64, 16) } else { (2048, 256) };
            let dcfg = DinoConfig {
                head_hidden_dim: hidden,
                head_bottleneck_dim: bottleneck,
                batch_size: b,
                warmup_epochs: 0,
                freeze_last_layer: 0,
                local_crops_number: c.local_crops,
                global_crops_size: c.img_size,
                local_crops_size: c.local_size,
                ..DinoConfig::new(c.out_dim, 1)
            };
            let trainer = DinoTrainer::new(student, teacher, dcfg, niter, &mut rng)
                .map_err(ctx("setting up DINO"))?;
            let (g, l) = (c.img_size, c.local_size);
            let mut groups = vec![randn(&[2 * b, 3, g, g], c.dtype, &mut rng, dev)?];
            if c.local_crops > 0 {
                groups.push(randn(
                    &[c.local_crops * b, 3, l, l],
                    c.dtype,
                    &mut rng,
                    dev,
                )?);
            }
            let what = format!(
                "DINO: ViT(embed {}, depth {}, heads {}, patch {}) + head {}-{}-{}, 2x{g}px + \
                 {}x{l}px crops per image; AdamW, clip 3.0, teacher EMA",
                vit.embed_dim,
                vit.depth,
                vit.num_heads,
                vit.patch_size,
                hidden,
                bottleneck,
                c.out_dim,
                c.local_crops
            );
            Ok((Stepper::Dino(Box::new(trainer), groups), what))
        }
        Model::Byol => {
            let rcfg = if c.tiny {
                ResNetConfig {
                    block: BlockKind::Bottleneck,
                    layers: [1, 1, 1, 1],
                    ..ResNetConfig::resnet50(0)
                }
            } else {
                ResNetConfig::resnet50(0)
            };
            let online = ResNet::new(rcfg, c.dtype, &mut rng, dev).map_err(ctx("the ResNet"))?;
            let target = online.clone();
            let (hidden, proj) = if c.tiny { (64, 16) } else { (4096, 256) };
            let bcfg = ByolConfig {
                projector_hidden_dim: hidden,
                projection_dim: proj,
                batch_size: b,
                warmup_epochs: 0,
                ..ByolConfig::new(1)
            };
            let trainer = ByolTrainer::new(online, target, bcfg, niter, &mut rng)
                .map_err(ctx("setting up BYOL"))?;
            let s = c.img_size;
            let v1 = randn(&[b, 3, s, s], c.dtype, &mut rng, dev)?;
            let v2 = randn(&[b, 3, s, s], c.dtype, &mut rng, dev)?;
            let what = format!(
                "BYOL: ResNet(bottleneck, layers {:?}) + projector/predictor {hidden}-{proj} \
                 with BatchNorm, 2 views of {s}px; LARS, target EMA",
                rcfg.layers
            );
            Ok((Stepper::Byol(Box::new(trainer), Box::new((v1, v2))), what))
        }
        Model::ByolSmall => {
            let rcfg = ResNetConfig {
                in_channels: 1,
                small_stem: true,
                base_channels: 16,
                ..ResNetConfig::resnet18(0)
            };
            let online = ResNet::new(rcfg, c.dtype, &mut rng, dev).map_err(ctx("the ResNet"))?;
            let target = online.clone();
            let bcfg = ByolConfig {
                projector_hidden_dim: 512,
                projection_dim: 128,
                batch_size: b,
                base_lr: 0.2,
                weight_decay: 5e-4,
                optimizer: ByolOptimizer::Sgd(SgdConfig {
                    momentum: 0.9,
                    dampening: 0.0,
                    nesterov: false,
                }),
                base_tau: 0.99,
                warmup_epochs: 0,
                ..ByolConfig::new(1)
            };
            let trainer = ByolTrainer::new(online, target, bcfg, niter, &mut rng)
                .map_err(ctx("setting up BYOL"))?;
            let s = c.img_size;
            let v1 = randn(&[b, 1, s, s], c.dtype, &mut rng, dev)?;
            let v2 = randn(&[b, 1, s, s], c.dtype, &mut rng, dev)?;
            let what = format!(
                "BYOL: ResNet-18 layout at width 16 with the CIFAR-style stem, 1 channel + \
                 projector/predictor 512-128 with BatchNorm, 2 views of {s}px; SGD, target EMA"
            );
            Ok((Stepper::Byol(Box::new(trainer), Box::new((v1, v2))), what))
        }
    }
}

fn bench<B: Backend>(c: &Config, dev: &B) -> Result<()> {
    let device = match as_cuda(dev) {
        Some(cuda) => format!("{} ({})", c.device, cuda.describe()),
        None => c.device.to_string(),
    };
    let t = Instant::now();
    let (mut stepper, what) = build(c, dev)?;
    dev.synchronize().map_err(ctx("synchronize"))?;
    println!(
        "bench_steps: {} on {device}, {}, GEMM precision {}, batch {}, {what}; built in {:.2} s",
        c.model.name(),
        c.dtype_name(),
        c.precision.name(),
        c.batch,
        t.elapsed().as_secs_f64()
    );
    if c.dtype == DType::BF16 {
        println!(
            "dtype bf16: Tessera runs pure bf16 (bf16 weights, optimizer state and \
             activations), unlike PyTorch's autocast (f32 master weights, bf16 matmuls/convs)"
        );
    }
    let mut times = Vec::with_capacity(c.steps);
    // Past --time-limit: the remaining warm-up is skipped and the run stops after the next
    // timed step.
    let (start, mut over) = (Instant::now(), false);
    let mut i = 0;
    while times.len() < c.steps {
        let timed = i >= c.warmup || over;
        if timed && c.profile {
            profile::enable();
        }
        dev.synchronize().map_err(ctx("synchronize"))?;
        let t0 = Instant::now();
        let loss = stepper.step()?;
        dev.synchronize().map_err(ctx("synchronize"))?;
        let s = t0.elapsed().as_secs_f64();
        let kind = if timed { "step" } else { "warm-up" };
        let mem = peak_mb(dev).map_or(String::new(), |m| format!(", peak {m:.0} MiB"));
        println!(
            "{kind} {i}: {:.1} ms, loss {loss:.5}, {:.1} img/s{mem}",
            s * 1e3,
            c.batch as f64 / s
        );
        if !loss.is_finite() {
            return Err(RunError::new(format!("the loss is {loss} at step {i}")));
        }
        if timed {
            times.push(s);
        }
        i += 1;
        if c.time_limit > 0.0 && start.elapsed().as_secs_f64() > c.time_limit {
            if !times.is_empty() {
                if times.len() < c.steps {
                    println!(
                        "--time-limit {} s reached: {} of {} timed steps",
                        c.time_limit,
                        times.len(),
                        c.steps
                    );
                }
                break;
            }
            over = true;
        }
    }
    if c.profile {
        profile::disable();
        let steps = u32::try_from(times.len()).unwrap_or(u32::MAX);
        println!("time per step ({} timed steps):", times.len());
        print!("{}", profile::take().per(steps));
    }
    let med = median(&times);
    let ips = c.batch as f64 / med;
    let peak = peak_mb(dev);
    let measure = if as_cuda(dev).is_some() {
        "peak allocated (caching allocator, live blocks)"
    } else {
        "peak resident set (VmHWM)"
    };
    println!(
        "median step {:.1} ms over {} steps -> {ips:.2} img/s{}",
        med * 1e3,
        times.len(),
        peak.map_or(String::new(), |m| format!("; {measure} {m:.0} MiB"))
    );
    println!(
        "RESULT model={} dtype={} precision={} batch={} img_per_s={ips:.3} step_ms={:.2} steps={} \
         peak_mb={}",
        c.model.name(),
        c.dtype_name(),
        c.precision.name(),
        c.batch,
        med * 1e3,
        times.len(),
        peak.map_or("na".to_string(), |m| format!("{m:.0}"))
    );
    Ok(())
}
