//! Gaussian blur as DINO's `utils.GaussianBlur`: with probability `p`, a blur whose standard
//! deviation is drawn uniformly from `sigma` (DINO: `radius_min = 0.1`, `radius_max = 2.0`;
//! PIL's `GaussianBlur(radius)` takes the standard deviation as "radius").

use super::{check_prob, check_range, coin, uniform, Image};
use crate::error::{config_err, Result};
use alloc::vec::Vec;
use tessera_tensor::Rng;

/// The normalized 1-D kernel for `sigma`: half-width `ceil(3 sigma)` (at least 1), so the
/// kernel covers 99.7% of the mass, taps `exp(-x² / 2σ²)` divided by their sum. PIL
/// approximates the same Gaussian with three box blurs; this is the exact separable filter.
pub fn gaussian_kernel(sigma: f64) -> Vec<f32> {
    let radius = libm::ceil(3.0 * sigma).max(1.0) as i64;
    let taps: Vec<f64> = (-radius..=radius)
        .map(|x| libm::exp(-((x * x) as f64) / (2.0 * sigma * sigma)))
        .collect();
    let sum: f64 = taps.iter().sum();
    taps.into_iter().map(|t| (t / sum) as f32).collect()
}

/// Blurs every channel with a separable Gaussian of standard deviation `sigma` (> 0),
/// rows then columns. Borders repeat the edge pixel (PIL's behaviour), so a constant image
/// stays constant.
pub fn gaussian_blur(img: &mut Image, sigma: f64) {
    if !(sigma > 0.0 && sigma.is_finite()) {
        return;
    }
    let k = gaussian_kernel(sigma);
    let r = (k.len() / 2) as isize;
    let (h, w) = (img.height(), img.width());
    let clampi = |i: isize, n: usize| i.clamp(0, n as isize - 1) as usize;
    let mut tmp = alloc::vec![0.0f32; h * w];
    for plane in img.data_mut().chunks_exact_mut(h * w) {
        for y in 0..h {
            let row = &plane[y * w..(y + 1) * w];
            for x in 0..w {
                let mut acc = 0.0;
                for (t, &kv) in k.iter().enumerate() {
                    acc += kv * row[clampi(x as isize + t as isize - r, w)];
                }
                tmp[y * w + x] = acc;
            }
        }
        for y in 0..h {
            for x in 0..w {
                let mut acc = 0.0;
                for (t, &kv) in k.iter().enumerate() {
                    acc += kv * tmp[clampi(y as isize + t as isize - r, h) * w + x];
                }
                plane[y * w + x] = acc;
            }
        }
    }
}

/// DINO's `utils.GaussianBlur(p, radius_min, radius_max)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GaussianBlur {
    pub p: f64,
    /// Range of the standard deviation in pixels (DINO: (0.1, 2.0) for 224-pixel crops;
    /// scale it down with the image for small datasets).
    pub sigma: (f64, f64),
}

impl GaussianBlur {
    pub fn new(p: f64, sigma: (f64, f64)) -> Result<Self> {
        check_prob("GaussianBlur", p)?;
        check_range("GaussianBlur sigma", sigma, 0.0)?;
        if sigma.0 <= 0.0 {
            return Err(config_err!(
                "GaussianBlur: sigma must be > 0, got {sigma:?}"
            ));
        }
        Ok(GaussianBlur { p, sigma })
    }

    /// Draws the coin and, if it comes up, the sigma (as DINO: no sigma draw otherwise).
    /// DINO tests `random() <= p` where this crate uses `< p` throughout; the two differ
    /// only when the draw is exactly `p` (probability 2^-53).
    pub fn apply(&self, mut img: Image, rng: &mut Rng) -> Image {
        if coin(rng, self.p) {
            let s = uniform(rng, self.sigma.0, self.sigma.1);
            gaussian_blur(&mut img, s);
        }
        img
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_is_normalized_and_symmetric() {
        let k = gaussian_kernel(1.0);
        assert_eq!(k.len(), 7);
        assert!((k.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert_eq!(k[0], k[6]);
        assert!(k[3] > k[2]);
    }

    #[test]
    fn blur_keeps_constants_and_spreads_a_spike() {
        let mut c = Image::filled(3, 5, 6, 0.25).unwrap();
        gaussian_blur(&mut c, 1.5);
        assert!(c.data().iter().all(|v| (v - 0.25).abs() < 1e-6));
        let mut d = alloc::vec![0.0f32; 25];
        d[12] = 1.0;
        let mut s = Image::new(1, 5, 5, d).unwrap();
        gaussian_blur(&mut s, 0.8);
        // Most of the mass stays (the kernel's outer taps fall outside the 5x5 image).
        let total: f32 = s.data().iter().sum();
        assert!(total > 0.99 && total <= 1.0 + 1e-6, "mass {total}");
        assert!(s.at(0, 2, 2) < 1.0 && s.at(0, 2, 1) > 0.0);
        assert_eq!(s.at(0, 2, 1), s.at(0, 1, 2));
    }
}
