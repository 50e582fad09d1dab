//! A few DINO training steps on a tiny ViT, written once and compiled twice:
//!
//! - by the `#![no_std]` binary (`src/main.rs`), against the core crates with
//!   `default-features = false`;
//! - by the std reference (`reference/src/main.rs`, `#[path]`-included), against the same
//!   crates with their default `std` feature (threaded GEMM with run-time CPU feature
//!   detection, `std`'s float functions).
//!
//! The reference writes what it computes to `dino/expected.rs`, which the no_std binary
//! `include!`s and compares with [`compare`]; see `README.md`.
//!
//! What one run does ([`run`]):
//!
//! 1. parses the student's initial weights (`backbone.*`: a [`VisionTransformer`], `head.*`:
//!    a DINO head, DINO's `MultiCropWrapper` names) from safetensors bytes with
//!    [`Checkpoint::from_bytes`], and loads them (strict) into both the student and the
//!    teacher of a [`DinoTrainer`];
//! 2. per step, makes DINO's multi-crop views of [`BATCH`] synthetic images (an LCG, no
//!    image decoding) with [`DataAugmentationDino`] driven by a seeded [`Rng`]: 2 global
//!    crops of 16×16 and 2 local crops of 8×8 per image, grouped by resolution;
//! 3. calls [`DinoTrainer::train_step`]: teacher forward on the global crops, student
//!    forward on all crops (the local crops interpolate the positional embedding), DINO loss
//!    with centering, backward, per-parameter gradient clipping, AdamW step, teacher EMA;
//! 4. after [`STEPS`] steps, summarizes the student, the teacher and the loss's center.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use tessera_nn::models::vit::{VisionTransformer, VitConfig};
use tessera_nn::{Checkpoint, ModuleExt, StateDict};
use tessera_ssl::augment::{batch_by_resolution, DataAugmentationDino, DinoAugConfig, Image};
use tessera_ssl::train::{DinoConfig, DinoTrainer};
use tessera_tensor::{Cpu, DType, Rng, Tensor};

/// Training steps per run.
pub const STEPS: usize = 5;
/// Images per batch.
pub const BATCH: usize = 2;
/// Side of the synthetic source images (the crops are resized from them).
pub const SOURCE_SIZE: usize = 24;
/// Seed of the LCG that draws the source images.
pub const IMAGE_SEED: u64 = 0x5eed_0001;
/// Seed of the augmentation generator.
pub const AUGMENT_SEED: u64 = 7;

/// The backbone: a ViT with DINO's architecture, tiny (16×16 images, 4×4 patches, 32 dims,
/// 2 blocks of 2 heads).
pub fn vit_config() -> VitConfig {
    VitConfig {
        img_size: 16,
        patch_size: 4,
        in_chans: 3,
        embed_dim: 32,
        depth: 2,
        num_heads: 2,
        mlp_ratio: 4.0,
        qkv_bias: true,
        drop_path_rate: 0.0,
        norm_eps: 1e-6,
    }
}

/// DINO's hyper-parameters, shrunk: a 64-prototype head (hidden 64, bottleneck 16), one
/// "epoch" of [`STEPS`] iterations without warm-up, peak lr `0.064 · 2 / 256 = 5e-4`, teacher
/// momentum from 0.9 (so that the EMA visibly moves the teacher), the last layer trained
/// from the first step.
pub fn dino_config() -> DinoConfig {
    DinoConfig {
        head_hidden_dim: 64,
        head_bottleneck_dim: 16,
        momentum_teacher: 0.9,
        freeze_last_layer: 0,
        lr: 0.064,
        batch_size: BATCH,
        warmup_epochs: 0,
        local_crops_number: 2,
        global_crops_size: 16,
        local_crops_size: 8,
        ..DinoConfig::new(64, 1)
    }
}

/// DINO's multi-crop augmentation at 16 / 8 pixels with 2 local crops (ImageNet
/// normalization, flips, color jitter, grayscale, blur, solarization as in DINO).
pub fn augment_config() -> DinoAugConfig {
    DinoAugConfig {
        local_crops_number: 2,
        ..DinoAugConfig::with_sizes(16, 8)
    }
}

/// Why a run failed.
#[derive(Debug)]
pub enum Error {
    Nn(tessera_nn::Error),
    Ssl(tessera_ssl::Error),
}

impl From<tessera_nn::Error> for Error {
    fn from(e: tessera_nn::Error) -> Self {
        Error::Nn(e)
    }
}

impl From<tessera_ssl::Error> for Error {
    fn from(e: tessera_ssl::Error) -> Self {
        Error::Ssl(e)
    }
}

impl From<tessera_tensor::Error> for Error {
    fn from(e: tessera_tensor::Error) -> Self {
        Error::Nn(e.into())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Nn(e) => write!(f, "{e}"),
            Error::Ssl(e) => write!(f, "{e}"),
        }
    }
}

/// A checksum of a set of f32 tensors: the plain and absolute sums (in f64, in name order)
/// and an FNV-1a hash of the raw bits, which tells bit-identical from merely close.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    pub sum: f64,
    pub abs_sum: f64,
    pub fnv: u64,
}

impl Summary {
    /// The summary of `tensors` (in the given order), each read back as f32.
    pub fn of<'a>(tensors: impl IntoIterator<Item = &'a Tensor<Cpu>>) -> Result<Self, Error> {
        let mut s = Summary {
            sum: 0.0,
            abs_sum: 0.0,
            fnv: 0xcbf2_9ce4_8422_2325,
        };
        for t in tensors {
            for x in t.to_vec::<f32>()? {
                s.sum += x as f64;
                s.abs_sum += (x as f64).abs();
                for b in x.to_bits().to_le_bytes() {
                    s.fnv = (s.fnv ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
                }
            }
        }
        Ok(s)
    }
}

/// What a run computed.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// The DINO loss of each step (before that step's update).
    pub losses: [f64; STEPS],
    /// The sum of each step's crops (every group), to tell an augmentation difference from a
    /// training difference.
    pub crop_sums: [f64; STEPS],
    /// The student's parameters and buffers after the last step.
    pub student: Summary,
    /// The teacher's parameters and buffers after the last step.
    pub teacher: Summary,
    /// The DINO loss's center after the last step.
    pub center: Summary,
}

/// `n` values in `[0, 1)` from a 64-bit LCG (Knuth's MMIX constants, top 24 bits).
fn lcg(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 40) as f32 / (1u64 << 24) as f32
        })
        .collect()
}

/// The [`BATCH`] synthetic RGB source images: a diagonal ramp (a different direction per
/// channel and image) plus LCG noise, values in `[0, 1)`.
pub fn source_images() -> Result<Vec<Image>, Error> {
    let n = SOURCE_SIZE;
    let mut images = Vec::with_capacity(BATCH);
    for i in 0..BATCH {
        let noise = lcg(3 * n * n, IMAGE_SEED + i as u64);
        let mut data = Vec::with_capacity(3 * n * n);
        for c in 0..3 {
            for y in 0..n {
                for x in 0..n {
                    let ramp = if (c + i) % 2 == 0 {
                        x + y
                    } else {
                        x + n - 1 - y
                    };
                    let v = 0.6 * ramp as f32 / (2 * n - 2) as f32;
                    data.push(v + 0.4 * noise[(c * n + y) * n + x]);
                }
            }
        }
        images.push(Image::new(3, n, n, data)?);
    }
    Ok(images)
}

/// Runs [`STEPS`] DINO steps from the student weights in `weights` (safetensors bytes),
/// calling `on_step(step, loss)` after each step.
pub fn run(weights: &[u8], on_step: &mut dyn FnMut(usize, f64)) -> Result<Outcome, Error> {
    let cpu = Cpu;
    let initial: StateDict<Cpu> = Checkpoint::from_bytes(weights, &cpu)?.tensors;
    // Backbones without random draws; the trainer's fresh head is overwritten below.
    let student = VisionTransformer::zeroed(vit_config(), DType::F32, &cpu)?;
    let teacher = VisionTransformer::zeroed(vit_config(), DType::F32, &cpu)?;
    let mut trainer = DinoTrainer::new(student, teacher, dino_config(), STEPS, &mut Rng::new(0))?;
    // Strict loads: every name of the blob must be a parameter or buffer, and back.
    trainer.student_mut().load_state_dict(&initial)?;
    trainer.teacher_mut().load_state_dict(&initial)?;
    drop(initial);

    let images = source_images()?;
    let augment = DataAugmentationDino::new(&augment_config())?;
    let mut rng = Rng::new(AUGMENT_SEED);
    let mut losses = [0.0; STEPS];
    let mut crop_sums = [0.0; STEPS];
    for step in 0..STEPS {
        let mut views = Vec::with_capacity(BATCH);
        for img in &images {
            views.push(augment.apply(img, &mut rng)?);
        }
        let groups: Vec<Tensor<Cpu>> = batch_by_resolution(&views, &cpu)?
            .into_iter()
            .map(|g| g.batch)
            .collect();
        drop(views);
        crop_sums[step] = Summary::of(&groups)?.sum;
        let stats = trainer.train_step(&groups, 0)?;
        losses[step] = stats.loss;
        on_step(step, stats.loss);
    }
    Ok(Outcome {
        losses,
        crop_sums,
        student: Summary::of(trainer.student().state_dict().values())?,
        teacher: Summary::of(trainer.teacher().state_dict().values())?,
        center: Summary::of([trainer.dino_loss().center()])?,
    })
}

/// Relative tolerance of [`compare`]: `|got − want| <= RTOL · max(|want|, 1)`.
pub const RTOL: f64 = 1e-5;

/// How a run compares with the expected one.
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    /// Each quantity outside the tolerance: `(name, got, want)`.
    pub mismatches: Vec<(String, f64, f64)>,
    /// The largest `|got − want| / max(|want|, 1)` over every compared value.
    pub max_rel: f64,
    /// Every loss, crop sum and checksum equal bit for bit (hashes included).
    pub bit_identical: bool,
}

/// Compares `got` with `want`: the losses, crop sums and the sums of the checksums within
/// [`RTOL`]; `bit_identical` also compares the FNV hashes of the raw bits.
pub fn compare(got: &Outcome, want: &Outcome) -> Comparison {
    let mut c = Comparison {
        mismatches: Vec::new(),
        max_rel: 0.0,
        bit_identical: got == want,
    };
    let mut check = |name: String, g: f64, w: f64| {
        let rel = (g - w).abs() / w.abs().max(1.0);
        // A NaN (in either) is a mismatch.
        if rel.is_nan() || rel > RTOL {
            c.mismatches.push((name, g, w));
        }
        if rel > c.max_rel || rel.is_nan() {
            c.max_rel = rel;
        }
    };
    for i in 0..STEPS {
        check(alloc::format!("loss[{i}]"), got.losses[i], want.losses[i]);
        check(
            alloc::format!("crop_sum[{i}]"),
            got.crop_sums[i],
            want.crop_sums[i],
        );
    }
    for (name, g, w) in [
        ("student", &got.student, &want.student),
        ("teacher", &got.teacher, &want.teacher),
        ("center", &got.center, &want.center),
    ] {
        check(alloc::format!("{name}.sum"), g.sum, w.sum);
        check(alloc::format!("{name}.abs_sum"), g.abs_sum, w.abs_sum);
    }
    c
}
