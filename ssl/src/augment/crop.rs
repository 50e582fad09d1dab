//! Geometry: `RandomResizedCrop`, bilinear resizing and horizontal flips.

use super::{check_prob, check_range, coin, uniform, Image};
use crate::error::{config_err, Result};
use alloc::vec::Vec;
use tessera_tensor::Rng;

/// A crop rectangle in pixels: rows `top..top + height`, columns `left..left + width`
/// (torchvision's `(i, j, h, w)`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CropBox {
    pub top: usize,
    pub left: usize,
    pub height: usize,
    pub width: usize,
}

/// `RandomResizedCrop` (torchvision `transforms.RandomResizedCrop`): a crop covering a random
/// fraction `scale` of the area with an aspect ratio drawn log-uniformly from `ratio`, resized
/// to `size`.
///
/// [`RandomResizedCrop::params`] follows torchvision's `get_params` exactly: up to 10
/// attempts of `area * U(scale)` and `exp(U(ln ratio))`, `w = round(sqrt(a * r))`,
/// `h = round(sqrt(a / r))` (Python's round: half to even), accepted if it fits, at a
/// uniform position; after 10 failures, a center crop of the whole image clamped to the ratio
/// range.
///
/// **Resampling differs:** the crop is resized with bilinear interpolation (half-pixel
/// centers, as `F.interpolate(..., mode="bilinear", align_corners=False)`) and *without*
/// antialiasing, whereas DINO asks for bicubic and torchvision antialiases when shrinking.
/// Strong downscaling (a 224 crop to 96) therefore aliases a little more than the reference.
#[derive(Clone, Debug, PartialEq)]
pub struct RandomResizedCrop {
    /// Output `(height, width)`.
    pub size: (usize, usize),
    /// Range of the crop's area as a fraction of the image's (torchvision default (0.08, 1)).
    pub scale: (f64, f64),
    /// Range of the crop's aspect ratio width/height (default (3/4, 4/3)).
    pub ratio: (f64, f64),
}

impl RandomResizedCrop {
    /// A square output of `size` with the given scale range and the default ratio (3/4, 4/3).
    pub fn new(size: usize, scale: (f64, f64)) -> Result<Self> {
        Self::with_ratio((size, size), scale, (3.0 / 4.0, 4.0 / 3.0))
    }

    /// Every parameter explicit.
    pub fn with_ratio(size: (usize, usize), scale: (f64, f64), ratio: (f64, f64)) -> Result<Self> {
        if size.0 == 0 || size.1 == 0 {
            return Err(config_err!(
                "RandomResizedCrop: size {size:?} must be positive"
            ));
        }
        check_range("RandomResizedCrop scale", scale, 0.0)?;
        check_range("RandomResizedCrop ratio", ratio, f64::MIN_POSITIVE)?;
        if scale.1 <= 0.0 {
            return Err(config_err!(
                "RandomResizedCrop: scale {scale:?} must reach above 0"
            ));
        }
        Ok(RandomResizedCrop { size, scale, ratio })
    }

    /// Draws a crop box for an `h x w` image (torchvision `get_params`).
    pub fn params(&self, h: usize, w: usize, rng: &mut Rng) -> CropBox {
        let area = (h * w) as f64;
        let (log_lo, log_hi) = (libm::log(self.ratio.0), libm::log(self.ratio.1));
        for _ in 0..10 {
            let target = area * uniform(rng, self.scale.0, self.scale.1);
            let aspect = libm::exp(uniform(rng, log_lo, log_hi));
            let cw = libm::rint(libm::sqrt(target * aspect)) as usize;
            let ch = libm::rint(libm::sqrt(target / aspect)) as usize;
            if 0 < cw && cw <= w && 0 < ch && ch <= h {
                // torch.randint(0, h - ch + 1): uniform over every valid position.
                let top = rng.below((h - ch + 1) as u64) as usize;
                let left = rng.below((w - cw + 1) as u64) as usize;
                return CropBox {
                    top,
                    left,
                    height: ch,
                    width: cw,
                };
            }
        }
        // Fallback: the largest centered crop whose ratio is inside the range.
        let in_ratio = w as f64 / h as f64;
        let (ch, cw) = if in_ratio < self.ratio.0 {
            let ch = libm::rint(w as f64 / self.ratio.0) as usize;
            (ch.clamp(1, h), w)
        } else if in_ratio > self.ratio.1 {
            let cw = libm::rint(h as f64 * self.ratio.1) as usize;
            (h, cw.clamp(1, w))
        } else {
            (h, w)
        };
        CropBox {
            top: (h - ch) / 2,
            left: (w - cw) / 2,
            height: ch,
            width: cw,
        }
    }

    /// Crops a random box and resizes it to `size`.
    pub fn apply(&self, img: &Image, rng: &mut Rng) -> Image {
        let b = self.params(img.height(), img.width(), rng);
        resize_crop(img, b, self.size.0, self.size.1)
    }
}

/// Source sample positions for one axis of a bilinear resize from `len` pixels (starting at
/// `start`) to `out` pixels: `(i0, i1, t)` per output pixel, with torch's
/// `align_corners=False` rule `src = max((dst + 0.5) * len / out - 0.5, 0)`.
fn axis_taps(start: usize, len: usize, out: usize) -> Vec<(usize, usize, f32)> {
    let scale = len as f64 / out as f64;
    (0..out)
        .map(|d| {
            let s = ((d as f64 + 0.5) * scale - 0.5).max(0.0);
            let i0 = (s as usize).min(len - 1);
            let i1 = (i0 + 1).min(len - 1);
            (start + i0, start + i1, (s - i0 as f64) as f32)
        })
        .collect()
}

/// Crops `b` out of `img` and resizes it to `out_h x out_w` bilinearly (no antialiasing), in
/// one pass. The box is clamped to the image, so any box is safe.
pub fn resize_crop(img: &Image, b: CropBox, out_h: usize, out_w: usize) -> Image {
    let [c, h, w] = img.shape();
    let top = b.top.min(h - 1);
    let left = b.left.min(w - 1);
    let bh = b.height.clamp(1, h - top);
    let bw = b.width.clamp(1, w - left);
    let (out_h, out_w) = (out_h.max(1), out_w.max(1));
    let ys = axis_taps(top, bh, out_h);
    let xs = axis_taps(left, bw, out_w);
    let mut out = Vec::with_capacity(c * out_h * out_w);
    for ch in 0..c {
        let p = img.plane(ch);
        for &(y0, y1, ty) in &ys {
            let (r0, r1) = (&p[y0 * w..(y0 + 1) * w], &p[y1 * w..(y1 + 1) * w]);
            for &(x0, x1, tx) in &xs {
                let top_v = r0[x0] + (r0[x1] - r0[x0]) * tx;
                let bot_v = r1[x0] + (r1[x1] - r1[x0]) * tx;
                out.push(top_v + (bot_v - top_v) * ty);
            }
        }
    }
    Image {
        c,
        h: out_h,
        w: out_w,
        data: out,
    }
}

/// Mirrors the image left to right (torchvision `F.hflip`).
pub fn hflip(img: &mut Image) {
    let w = img.width();
    for row in img.data_mut().chunks_exact_mut(w) {
        row.reverse();
    }
}

/// Flips horizontally with probability `p` (torchvision `transforms.RandomHorizontalFlip`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RandomHorizontalFlip {
    pub p: f64,
}

impl RandomHorizontalFlip {
    pub fn new(p: f64) -> Result<Self> {
        check_prob("RandomHorizontalFlip", p)?;
        Ok(RandomHorizontalFlip { p })
    }

    /// Flips in place if the coin comes up; returns whether it flipped.
    pub fn apply(&self, img: &mut Image, rng: &mut Rng) -> bool {
        let flip = coin(rng, self.p);
        if flip {
            hflip(img);
        }
        flip
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn identity_resize_and_half_pixel_upsample() {
        let img = Image::new(1, 2, 2, vec![0.0, 1.0, 2.0, 3.0]).unwrap();
        let full = CropBox {
            top: 0,
            left: 0,
            height: 2,
            width: 2,
        };
        assert_eq!(resize_crop(&img, full, 2, 2), img);
        // torch: F.interpolate(x, size=4, mode="bilinear", align_corners=False) on [[0, 1]]
        // rows gives 0, 0.25, 0.75, 1.
        let up = resize_crop(&img, full, 1, 4);
        assert_eq!(up.data(), &[1.0, 1.25, 1.75, 2.0]);
    }

    #[test]
    fn fallback_is_a_center_crop() {
        // A scale range no crop can satisfy (> the whole area) forces the fallback.
        let t = RandomResizedCrop::with_ratio((4, 4), (2.0, 3.0), (1.0, 1.0)).unwrap();
        let b = t.params(10, 20, &mut Rng::new(0));
        assert_eq!(
            b,
            CropBox {
                top: 0,
                left: 5,
                height: 10,
                width: 10
            }
        );
    }
}
