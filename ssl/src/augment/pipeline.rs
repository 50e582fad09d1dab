//! The view pipelines of DINO (`main_dino.py` `DataAugmentationDINO`) and BYOL.
//!
//! Both share one recipe per view, [`ViewAugment`]: random resized crop, horizontal flip
//! (p = 0.5), color jitter (0.4, 0.4, 0.2, 0.1) applied with p = 0.8, grayscale with p = 0.2,
//! Gaussian blur with a per-view probability, solarization with a per-view probability, then
//! normalization. The views differ only in crop size and scale and in the blur/solarize
//! probabilities.

use super::{
    ColorJitter, GaussianBlur, Image, Normalize, RandomApply, RandomGrayscale,
    RandomHorizontalFlip, RandomResizedCrop, RandomSolarize,
};
use crate::error::{config_err, Result};
use alloc::vec::Vec;
use tessera_tensor::Rng;

/// One view's pipeline, in torchvision `Compose` order: crop, flip, jitter, grayscale, blur,
/// solarize, normalize.
#[derive(Clone, Debug, PartialEq)]
pub struct ViewAugment {
    pub crop: RandomResizedCrop,
    pub flip: RandomHorizontalFlip,
    pub jitter: RandomApply<ColorJitter>,
    pub grayscale: RandomGrayscale,
    pub blur: GaussianBlur,
    pub solarize: RandomSolarize,
    /// `None` keeps values in `[0, 1]`.
    pub normalize: Option<Normalize>,
}

impl ViewAugment {
    /// The DINO/BYOL recipe for one view.
    pub fn standard(
        size: usize,
        scale: (f64, f64),
        blur_p: f64,
        blur_sigma: (f64, f64),
        solarize_p: f64,
        normalize: Option<Normalize>,
    ) -> Result<Self> {
        Ok(ViewAugment {
            crop: RandomResizedCrop::new(size, scale)?,
            flip: RandomHorizontalFlip::new(0.5)?,
            jitter: RandomApply::new(ColorJitter::new(0.4, 0.4, 0.2, 0.1)?, 0.8)?,
            grayscale: RandomGrayscale::new(0.2)?,
            blur: GaussianBlur::new(blur_p, blur_sigma)?,
            solarize: RandomSolarize::new(solarize_p)?,
            normalize,
        })
    }

    /// Produces one augmented view of `img` (which is not modified).
    pub fn apply(&self, img: &Image, rng: &mut Rng) -> Result<Image> {
        let mut v = self.crop.apply(img, rng);
        self.flip.apply(&mut v, rng);
        let v = self.jitter.apply(v, rng)?;
        let v = self.grayscale.apply(v, rng);
        let v = self.blur.apply(v, rng);
        let mut v = self.solarize.apply(v, rng);
        if let Some(n) = &self.normalize {
            n.apply(&mut v)?;
        }
        Ok(v)
    }
}

/// Settings of [`DataAugmentationDino`], named after `main_dino.py`'s arguments.
#[derive(Clone, Debug, PartialEq)]
pub struct DinoAugConfig {
    /// Side of the two global crops (paper: 224; Fashion-MNIST: e.g. 28).
    pub global_size: usize,
    /// Side of the local crops (paper: 96; Fashion-MNIST: e.g. 12).
    pub local_size: usize,
    /// `--global_crops_scale`, default (0.4, 1.0).
    pub global_crops_scale: (f64, f64),
    /// `--local_crops_scale`, default (0.05, 0.4).
    pub local_crops_scale: (f64, f64),
    /// `--local_crops_number`, default 8.
    pub local_crops_number: usize,
    /// Blur standard-deviation range in pixels, DINO (0.1, 2.0) at 224.
    pub blur_sigma: (f64, f64),
    /// DINO's Gaussian blur and solarization (true). False turns both off: on small images
    /// such as 28-px Fashion-MNIST a blur of a few pixels erases the garment's texture and
    /// solarizing inverts a whole garment, so the two views stop sharing what identifies it.
    pub blur_and_solarize: bool,
    /// DINO: ImageNet statistics. `None` keeps `[0, 1]` values.
    pub normalize: Option<Normalize>,
}

impl Default for DinoAugConfig {
    /// The paper's ImageNet settings: 224/96 crops, 8 local crops.
    fn default() -> Self {
        DinoAugConfig {
            global_size: 224,
            local_size: 96,
            global_crops_scale: (0.4, 1.0),
            local_crops_scale: (0.05, 0.4),
            local_crops_number: 8,
            blur_sigma: (0.1, 2.0),
            blur_and_solarize: true,
            normalize: Some(Normalize::imagenet()),
        }
    }
}

impl DinoAugConfig {
    /// The defaults with other crop sizes; the blur range is scaled by `global_size / 224`
    /// so that a blur covers the same fraction of the image as in the paper.
    pub fn with_sizes(global_size: usize, local_size: usize) -> Self {
        let f = global_size as f64 / 224.0;
        DinoAugConfig {
            global_size,
            local_size,
            blur_sigma: (0.1 * f, 2.0 * f),
            ..Self::default()
        }
    }
}

/// DINO's multi-crop augmentation (`DataAugmentationDINO`): two global views (blur p = 1.0 on
/// the first; blur p = 0.1 and solarization p = 0.2 on the second) and `local_crops_number`
/// local views (blur p = 0.5), all with flip, color jitter and random grayscale.
#[derive(Clone, Debug, PartialEq)]
pub struct DataAugmentationDino {
    pub global1: ViewAugment,
    pub global2: ViewAugment,
    pub local: ViewAugment,
    pub local_crops_number: usize,
}

impl DataAugmentationDino {
    pub fn new(cfg: &DinoAugConfig) -> Result<Self> {
        let (g, l, s) = (cfg.global_size, cfg.local_size, cfg.blur_sigma);
        if g == 0 || l == 0 {
            return Err(config_err!(
                "DINO crops need positive sizes, got {g} and {l}"
            ));
        }
        let n = &cfg.normalize;
        // DINO's probabilities, or none at all.
        let on = if cfg.blur_and_solarize { 1.0 } else { 0.0 };
        let (gs, ls) = (cfg.global_crops_scale, cfg.local_crops_scale);
        Ok(DataAugmentationDino {
            global1: ViewAugment::standard(g, gs, on, s, 0.0, n.clone())?,
            global2: ViewAugment::standard(g, gs, 0.1 * on, s, 0.2 * on, n.clone())?,
            local: ViewAugment::standard(l, ls, 0.5 * on, s, 0.0, n.clone())?,
            local_crops_number: cfg.local_crops_number,
        })
    }

    /// Number of views per image: 2 global + the local crops.
    pub fn num_views(&self) -> usize {
        2 + self.local_crops_number
    }

    /// The views of one image: `[global1, global2, local_1, .., local_n]` (DINO's order).
    pub fn apply(&self, img: &Image, rng: &mut Rng) -> Result<Vec<Image>> {
        let mut views = Vec::with_capacity(self.num_views());
        views.push(self.global1.apply(img, rng)?);
        views.push(self.global2.apply(img, rng)?);
        for _ in 0..self.local_crops_number {
            views.push(self.local.apply(img, rng)?);
        }
        Ok(views)
    }
}

/// Settings of [`ByolAugmentation`].
#[derive(Clone, Debug, PartialEq)]
pub struct ByolAugConfig {
    /// Crop side (paper: 224).
    pub size: usize,
    /// Crop area range, BYOL (0.08, 1.0).
    pub scale: (f64, f64),
    /// Blur standard-deviation range in pixels, (0.1, 2.0) at 224.
    pub blur_sigma: (f64, f64),
    /// ImageNet statistics by default; `None` keeps `[0, 1]` values.
    pub normalize: Option<Normalize>,
    /// BYOL's blur (view 1 always, view 2 with p = 0.1) and solarization (view 2, p = 0.2);
    /// `false` leaves crop, flip, colour jitter and grayscale, which suits tiny images (a
    /// blur of σ ≤ 2·size/224 px barely changes a 28-px image, and solarizing a garment
    /// inverts it whole).
    pub blur_and_solarize: bool,
}

impl Default for ByolAugConfig {
    fn default() -> Self {
        ByolAugConfig {
            size: 224,
            scale: (0.08, 1.0),
            blur_sigma: (0.1, 2.0),
            normalize: Some(Normalize::imagenet()),
            blur_and_solarize: true,
        }
    }
}

impl ByolAugConfig {
    /// The defaults at another size, the blur range scaled by `size / 224`.
    pub fn with_size(size: usize) -> Self {
        let f = size as f64 / 224.0;
        ByolAugConfig {
            size,
            blur_sigma: (0.1 * f, 2.0 * f),
            ..Self::default()
        }
    }
}

/// BYOL's asymmetric pair of views (Grill et al. 2020, table 6): view 1 blurs with p = 1.0
/// and never solarizes; view 2 blurs with p = 0.1 and solarizes with p = 0.2.
#[derive(Clone, Debug, PartialEq)]
pub struct ByolAugmentation {
    pub view1: ViewAugment,
    pub view2: ViewAugment,
}

impl ByolAugmentation {
    pub fn new(cfg: &ByolAugConfig) -> Result<Self> {
        let (sz, sc, s, n) = (cfg.size, cfg.scale, cfg.blur_sigma, &cfg.normalize);
        let on = if cfg.blur_and_solarize { 1.0 } else { 0.0 };
        Ok(ByolAugmentation {
            view1: ViewAugment::standard(sz, sc, on, s, 0.0, n.clone())?,
            view2: ViewAugment::standard(sz, sc, 0.1 * on, s, 0.2 * on, n.clone())?,
        })
    }

    /// The two views of one image.
    pub fn apply(&self, img: &Image, rng: &mut Rng) -> Result<[Image; 2]> {
        Ok([self.view1.apply(img, rng)?, self.view2.apply(img, rng)?])
    }
}
