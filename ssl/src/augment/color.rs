//! Color transforms with torchvision's tensor semantics (`transforms.functional` on float
//! images in `[0, 1]`): jitter, grayscale, solarization, normalization.
//!
//! **One channel.** Grayscale datasets (MNIST, Fashion-MNIST) keep `c = 1`: brightness and
//! contrast apply as usual, while saturation, hue and grayscale conversion are no-ops (a gray
//! image is its own grayscale, and has no hue). The random draws are the same for 1 and 3
//! channels.

use super::{check_prob, check_range, coin, uniform, Image};
use crate::error::{config_err, Result};
use alloc::vec::Vec;
use tessera_tensor::Rng;

/// ITU-R 601 luma weights, as torchvision's `rgb_to_grayscale`.
const LUMA: [f32; 3] = [0.2989, 0.587, 0.114];

/// The grayscale plane (`h * w` values): `0.2989 R + 0.587 G + 0.114 B`, or the only channel.
pub fn grayscale(img: &Image) -> Vec<f32> {
    if img.channels() == 1 {
        return img.plane(0).to_vec();
    }
    let (r, g, b) = (img.plane(0), img.plane(1), img.plane(2));
    (0..r.len())
        .map(|i| LUMA[0] * r[i] + LUMA[1] * g[i] + LUMA[2] * b[i])
        .collect()
}

/// torchvision `_blend`: `clamp(f * img + (1 - f) * other, 0, 1)`, `other` per pixel.
fn blend_with(img: &mut Image, f: f32, other: impl Fn(usize) -> f32) {
    let n = img.height() * img.width();
    for (i, v) in img.data_mut().iter_mut().enumerate() {
        *v = (f * *v + (1.0 - f) * other(i % n)).clamp(0.0, 1.0);
    }
}

/// Brightness: `clamp(f * img, 0, 1)` (blend with black).
pub fn adjust_brightness(img: &mut Image, f: f32) {
    blend_with(img, f, |_| 0.0);
}

/// Contrast: blend with the mean of the grayscale image (one scalar for the whole image).
pub fn adjust_contrast(img: &mut Image, f: f32) {
    let g = grayscale(img);
    let mean = g.iter().map(|&v| f64::from(v)).sum::<f64>() / g.len() as f64;
    blend_with(img, f, |_| mean as f32);
}

/// Saturation: blend with the grayscale image; a no-op for one channel.
pub fn adjust_saturation(img: &mut Image, f: f32) {
    if img.channels() == 1 {
        return;
    }
    let g = grayscale(img);
    blend_with(img, f, |i| g[i]);
}

/// `x mod 1` in `[0, 1]` (Python's `x % 1.0`; `f32::rem_euclid` needs std).
fn fract(x: f32) -> f32 {
    x - libm::floorf(x)
}

/// RGB to HSV, each in `[0, 1]` (torchvision `_rgb2hsv`: gray pixels get hue 0 and
/// saturation 0).
pub fn rgb_to_hsv(r: f32, g: f32, b: f32) -> (f32, f32, f32) {
    let maxc = r.max(g).max(b);
    let minc = r.min(g).min(b);
    let eqc = maxc == minc;
    let cr = maxc - minc;
    let s = cr / if eqc { 1.0 } else { maxc };
    let div = if eqc { 1.0 } else { cr };
    let (rc, gc, bc) = ((maxc - r) / div, (maxc - g) / div, (maxc - b) / div);
    let h = if maxc == r {
        bc - gc
    } else if maxc == g {
        2.0 + rc - bc
    } else {
        4.0 + gc - rc
    };
    (fract(h / 6.0 + 1.0), s, maxc)
}

/// HSV to RGB (torchvision `_hsv2rgb`).
pub fn hsv_to_rgb(h: f32, s: f32, v: f32) -> (f32, f32, f32) {
    let i = libm::floorf(h * 6.0);
    let f = h * 6.0 - i;
    let p = (v * (1.0 - s)).clamp(0.0, 1.0);
    let q = (v * (1.0 - s * f)).clamp(0.0, 1.0);
    let t = (v * (1.0 - s * (1.0 - f))).clamp(0.0, 1.0);
    match (i as i64).rem_euclid(6) {
        0 => (v, t, p),
        1 => (q, v, p),
        2 => (p, v, t),
        3 => (p, q, v),
        4 => (t, p, v),
        _ => (v, p, q),
    }
}

/// Hue: rotates the hue by `f` in `[-0.5, 0.5]` turns through HSV; a no-op for one channel.
pub fn adjust_hue(img: &mut Image, f: f32) {
    if img.channels() == 1 {
        return;
    }
    let n = img.height() * img.width();
    let d = img.data_mut();
    for i in 0..n {
        let (h, s, v) = rgb_to_hsv(d[i], d[n + i], d[2 * n + i]);
        let (r, g, b) = hsv_to_rgb(fract(h + f), s, v);
        (d[i], d[n + i], d[2 * n + i]) = (r, g, b);
    }
}

/// `ColorJitter` (torchvision `transforms.ColorJitter`): brightness, contrast, saturation and
/// hue factors drawn uniformly from their ranges and applied in a random order (a random
/// permutation per call, as torchvision). A factor whose range is the identity (`(1, 1)`, or
/// `(0, 0)` for hue) is skipped without drawing, as torchvision does.
#[derive(Clone, Debug, PartialEq)]
pub struct ColorJitter {
    pub brightness: (f64, f64),
    pub contrast: (f64, f64),
    pub saturation: (f64, f64),
    pub hue: (f64, f64),
}

impl ColorJitter {
    /// torchvision's scalar form: brightness `b` means factors in `[max(0, 1 - b), 1 + b]`
    /// (same for contrast and saturation) and hue `h` in `[-h, h]`, `h <= 0.5`.
    /// DINO and BYOL use `ColorJitter::new(0.4, 0.4, 0.2, 0.1)`.
    pub fn new(brightness: f64, contrast: f64, saturation: f64, hue: f64) -> Result<Self> {
        for (name, v) in [
            ("brightness", brightness),
            ("contrast", contrast),
            ("saturation", saturation),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(config_err!("ColorJitter: {name} must be >= 0, got {v}"));
            }
        }
        if !(0.0..=0.5).contains(&hue) {
            return Err(config_err!(
                "ColorJitter: hue must be in [0, 0.5], got {hue}"
            ));
        }
        let around_one = |v: f64| ((1.0 - v).max(0.0), 1.0 + v);
        Ok(ColorJitter {
            brightness: around_one(brightness),
            contrast: around_one(contrast),
            saturation: around_one(saturation),
            hue: (-hue, hue),
        })
    }

    /// Checks explicitly set ranges (the fields are public).
    pub fn validate(&self) -> Result<()> {
        check_range("ColorJitter brightness", self.brightness, 0.0)?;
        check_range("ColorJitter contrast", self.contrast, 0.0)?;
        check_range("ColorJitter saturation", self.saturation, 0.0)?;
        check_range("ColorJitter hue", self.hue, -0.5)?;
        if self.hue.1 > 0.5 {
            return Err(config_err!(
                "ColorJitter: hue range must stay within [-0.5, 0.5]"
            ));
        }
        Ok(())
    }

    /// Draws the order and the factors, then applies them.
    pub fn apply(&self, mut img: Image, rng: &mut Rng) -> Image {
        let order = rng.permutation(4);
        let draw = |rng: &mut Rng, r: (f64, f64), identity: (f64, f64)| {
            (r != identity).then(|| uniform(rng, r.0, r.1) as f32)
        };
        // torchvision draws all factors first (in b, c, s, h order), then applies by `order`.
        let b = draw(rng, self.brightness, (1.0, 1.0));
        let c = draw(rng, self.contrast, (1.0, 1.0));
        let s = draw(rng, self.saturation, (1.0, 1.0));
        let h = draw(rng, self.hue, (0.0, 0.0));
        for k in order {
            match (k, b, c, s, h) {
                (0, Some(f), ..) => adjust_brightness(&mut img, f),
                (1, _, Some(f), ..) => adjust_contrast(&mut img, f),
                (2, _, _, Some(f), _) => adjust_saturation(&mut img, f),
                (3, _, _, _, Some(f)) => adjust_hue(&mut img, f),
                _ => {}
            }
        }
        img
    }
}

/// `RandomGrayscale` (torchvision): with probability `p`, an RGB image becomes gray in all
/// three channels (the channel count is kept); a 1-channel image is already gray and is
/// returned unchanged (the coin is still drawn, so streams do not depend on `c`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RandomGrayscale {
    pub p: f64,
}

impl RandomGrayscale {
    pub fn new(p: f64) -> Result<Self> {
        check_prob("RandomGrayscale", p)?;
        Ok(RandomGrayscale { p })
    }

    pub fn apply(&self, mut img: Image, rng: &mut Rng) -> Image {
        if coin(rng, self.p) && img.channels() == 3 {
            let g = grayscale(&img);
            for plane in img.data_mut().chunks_exact_mut(g.len()) {
                plane.copy_from_slice(&g);
            }
        }
        img
    }
}

/// Solarization: values `>= threshold` become `1 - v` (torchvision `F.solarize`; PIL's
/// `ImageOps.solarize` with its default threshold 128 is `threshold = 0.5` here).
pub fn solarize(img: &mut Image, threshold: f32) {
    for v in img.data_mut() {
        if *v >= threshold {
            *v = 1.0 - *v;
        }
    }
}

/// DINO's `utils.Solarization(p)`: solarizes at threshold 0.5 with probability `p`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RandomSolarize {
    pub p: f64,
}

impl RandomSolarize {
    pub fn new(p: f64) -> Result<Self> {
        check_prob("RandomSolarize", p)?;
        Ok(RandomSolarize { p })
    }

    pub fn apply(&self, mut img: Image, rng: &mut Rng) -> Image {
        if coin(rng, self.p) {
            solarize(&mut img, 0.5);
        }
        img
    }
}

/// `Normalize` (torchvision): `(v - mean[c]) / std[c]` per channel. One mean/std value
/// applies to every channel; otherwise there must be one per channel.
#[derive(Clone, Debug, PartialEq)]
pub struct Normalize {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl Normalize {
    pub fn new(mean: Vec<f32>, std: Vec<f32>) -> Result<Self> {
        if mean.is_empty() || mean.len() != std.len() {
            return Err(config_err!(
                "Normalize: need as many means as stds (at least one), got {} and {}",
                mean.len(),
                std.len()
            ));
        }
        if let Some(s) = std.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
            return Err(config_err!("Normalize: std values must be > 0, got {s}"));
        }
        Ok(Normalize { mean, std })
    }

    /// ImageNet statistics, as DINO and BYOL use: mean (0.485, 0.456, 0.406), std
    /// (0.229, 0.224, 0.225).
    pub fn imagenet() -> Self {
        Normalize {
            mean: alloc::vec![0.485, 0.456, 0.406],
            std: alloc::vec![0.229, 0.224, 0.225],
        }
    }

    /// Normalizes in place; fails if the image's channel count does not fit.
    pub fn apply(&self, img: &mut Image) -> Result<()> {
        let c = img.channels();
        if self.mean.len() != 1 && self.mean.len() != c {
            return Err(config_err!(
                "Normalize has {} channel statistics, the image has {c} channels",
                self.mean.len()
            ));
        }
        let n = img.height() * img.width();
        for (k, plane) in img.data_mut().chunks_exact_mut(n).enumerate() {
            let j = if self.mean.len() == 1 { 0 } else { k };
            let (m, s) = (self.mean[j], self.std[j]);
            plane.iter_mut().for_each(|v| *v = (*v - m) / s);
        }
        Ok(())
    }
}
