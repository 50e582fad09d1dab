//! Image augmentations for self-supervised pretraining (torchvision `transforms` and the
//! pipelines of DINO's `DataAugmentationDINO` and BYOL), on host images.
//!
//! Augmentations run per sample on the CPU, before batching, as torchvision's run inside a
//! PyTorch data loader: an [`Image`] is a `[c, h, w]` `Vec<f32>` with values in `[0, 1]`
//! (`c` = 1 for grayscale datasets, 3 for RGB). [`collate_views`] and [`batch_by_resolution`]
//! turn the augmented views into `[b, c, h, w]` tensors on any backend.
//!
//! **Randomness.** Every random transform draws from a [`tessera_tensor::Rng`] passed in by
//! the caller, so a pipeline is deterministic under a seed (fork one generator per sample for
//! reproducible parallel loading). The streams differ from torchvision's (another generator),
//! only the distributions match. Probabilities follow torchvision: a transform with
//! probability `p` is applied when a uniform draw in `[0, 1)` is `< p`, so `p = 1` always and
//! `p = 0` never applies.
//!
//! | Tessera | torchvision / DINO |
//! |---|---|
//! | [`RandomResizedCrop`] | `transforms.RandomResizedCrop` (bilinear, see its docs) |
//! | [`RandomHorizontalFlip`] | `transforms.RandomHorizontalFlip` |
//! | [`ColorJitter`] | `transforms.ColorJitter` |
//! | [`RandomApply`] | `transforms.RandomApply` |
//! | [`RandomGrayscale`] | `transforms.RandomGrayscale` |
//! | [`GaussianBlur`] | DINO `utils.GaussianBlur` (PIL `ImageFilter.GaussianBlur`) |
//! | [`RandomSolarize`] | DINO `utils.Solarization` (PIL `ImageOps.solarize`) |
//! | [`Normalize`] | `transforms.Normalize` |
//! | [`DataAugmentationDino`] | `main_dino.py` `DataAugmentationDINO` |
//! | [`ByolAugmentation`] | BYOL's two asymmetric view pipelines |

mod batch;
mod blur;
mod color;
mod crop;
mod pipeline;

pub use batch::{batch_by_resolution, collate_views, stack_images, ResolutionGroup};
pub use blur::{gaussian_blur, gaussian_kernel, GaussianBlur};
pub use color::{
    adjust_brightness, adjust_contrast, adjust_hue, adjust_saturation, grayscale, hsv_to_rgb,
    rgb_to_hsv, solarize, ColorJitter, Normalize, RandomGrayscale, RandomSolarize,
};
pub use crop::{hflip, resize_crop, CropBox, RandomHorizontalFlip, RandomResizedCrop};
pub use pipeline::{
    ByolAugConfig, ByolAugmentation, DataAugmentationDino, DinoAugConfig, ViewAugment,
};

use crate::error::{config_err, Result};
use alloc::vec::Vec;
use tessera_tensor::Rng;

/// A `[c, h, w]` image with `f32` values, normally in `[0, 1]` (after [`Normalize`], any
/// real). `c` is 1 (grayscale) or 3 (RGB); the constructor checks both the channel count and
/// that the data fills the shape.
#[derive(Clone, Debug, PartialEq)]
pub struct Image {
    c: usize,
    h: usize,
    w: usize,
    data: Vec<f32>,
}

impl Image {
    /// An image from row-major `[c, h, w]` data.
    pub fn new(c: usize, h: usize, w: usize, data: Vec<f32>) -> Result<Self> {
        if c != 1 && c != 3 {
            return Err(config_err!("images need 1 or 3 channels, got {c}"));
        }
        let n = c.checked_mul(h).and_then(|n| n.checked_mul(w));
        if n != Some(data.len()) || h == 0 || w == 0 {
            return Err(config_err!(
                "{} values do not fill a non-empty image of shape [{c}, {h}, {w}]",
                data.len()
            ));
        }
        Ok(Image { c, h, w, data })
    }

    /// An image from `[c, h, w]` bytes, scaled to `[0, 1]` by `/ 255` (torchvision
    /// `ToTensor`; note that datasets store `[c, h, w]`, not PIL's `[h, w, c]`).
    pub fn from_u8(c: usize, h: usize, w: usize, bytes: &[u8]) -> Result<Self> {
        Self::new(
            c,
            h,
            w,
            bytes.iter().map(|&b| f32::from(b) / 255.0).collect(),
        )
    }

    /// A constant image.
    pub fn filled(c: usize, h: usize, w: usize, value: f32) -> Result<Self> {
        let n = c.saturating_mul(h).saturating_mul(w);
        if n > (1 << 31) {
            return Err(config_err!("image [{c}, {h}, {w}] is too large"));
        }
        Self::new(c, h, w, alloc::vec![value; n])
    }

    pub fn channels(&self) -> usize {
        self.c
    }
    pub fn height(&self) -> usize {
        self.h
    }
    pub fn width(&self) -> usize {
        self.w
    }
    /// `[c, h, w]`.
    pub fn shape(&self) -> [usize; 3] {
        [self.c, self.h, self.w]
    }
    /// The values, row-major `[c, h, w]`.
    pub fn data(&self) -> &[f32] {
        &self.data
    }
    pub fn into_data(self) -> Vec<f32> {
        self.data
    }
    /// The value at channel `c`, row `y`, column `x` (panics outside the image, like
    /// slice indexing: callers index with coordinates they got from the image itself).
    pub fn at(&self, c: usize, y: usize, x: usize) -> f32 {
        self.data[(c * self.h + y) * self.w + x]
    }
    /// One channel plane, `h * w` values.
    pub fn plane(&self, c: usize) -> &[f32] {
        let n = self.h * self.w;
        &self.data[c * n..(c + 1) * n]
    }
    pub(crate) fn data_mut(&mut self) -> &mut [f32] {
        &mut self.data
    }
}

/// Uniform in `[lo, hi)` (Python's `random.uniform`).
pub(crate) fn uniform(rng: &mut Rng, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * rng.next_f64()
}

/// True with probability `p` (torchvision: `torch.rand(1) < p`).
pub(crate) fn coin(rng: &mut Rng, p: f64) -> bool {
    rng.next_f64() < p
}

/// Checks that a probability is in `[0, 1]`.
pub(crate) fn check_prob(name: &str, p: f64) -> Result<()> {
    if !(0.0..=1.0).contains(&p) {
        return Err(config_err!(
            "{name}: probability must be in [0, 1], got {p}"
        ));
    }
    Ok(())
}

/// Checks a `(lo, hi)` range: finite, `lo <= hi`, and `lo >= min`.
pub(crate) fn check_range(name: &str, r: (f64, f64), min: f64) -> Result<()> {
    if !(r.0.is_finite() && r.1.is_finite() && min <= r.0 && r.0 <= r.1) {
        return Err(config_err!(
            "{name}: range ({}, {}) must be finite with {min} <= lo <= hi",
            r.0,
            r.1
        ));
    }
    Ok(())
}

/// `RandomApply`: applies `t` with probability `p` (torchvision `transforms.RandomApply`;
/// DINO wraps [`ColorJitter`] in one with `p = 0.8`).
#[derive(Clone, Debug, PartialEq)]
pub struct RandomApply<T> {
    pub p: f64,
    pub transform: T,
}

impl<T> RandomApply<T> {
    pub fn new(transform: T, p: f64) -> Result<Self> {
        check_prob("RandomApply", p)?;
        Ok(RandomApply { p, transform })
    }

    /// Draws the coin, then runs `f(transform, image, rng)` if it came up.
    pub fn apply_with(
        &self,
        img: Image,
        rng: &mut Rng,
        f: impl FnOnce(&T, Image, &mut Rng) -> Result<Image>,
    ) -> Result<Image> {
        if coin(rng, self.p) {
            f(&self.transform, img, rng)
        } else {
            Ok(img)
        }
    }
}

impl RandomApply<ColorJitter> {
    /// Color jitter with probability `p`.
    pub fn apply(&self, img: Image, rng: &mut Rng) -> Result<Image> {
        self.apply_with(img, rng, |t, img, rng| Ok(t.apply(img, rng)))
    }
}
