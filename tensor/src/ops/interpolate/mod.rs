//! Bicubic resizing of NCHW tensors with PyTorch's semantics (`F.interpolate(mode="bicubic")`),
//! which DINO uses to resize positional embeddings to another input size.

pub(crate) mod cpu;

use crate::backend::Backend;
pub use crate::backend::ResizeParams;
use crate::{Result, Tensor};

/// Largest output dim accepted from a scale factor: keeps `floor(in * scale)` exact in f64
/// and the output's element count far from overflow.
const MAX_OUT_DIM: f64 = (1u64 << 31) as f64;

impl<B: Backend> Tensor<B> {
    /// Builds the geometry from either an output `size` or a `scale_factor` (exactly one;
    /// with a scale, the output size is `floor(in * scale)` and the scale itself drives the
    /// coordinate mapping, as in PyTorch without `recompute_scale_factor`).
    pub fn resize_params(
        &self,
        size: Option<[usize; 2]>,
        scale_factor: Option<[f64; 2]>,
        align_corners: bool,
    ) -> Result<ResizeParams> {
        let op = "interpolate_bicubic";
        let in_hw = self.check_nchw_plane(op)?;
        let s = self.shape();
        let (out_hw, scale) = match (size, scale_factor) {
            (Some(size), None) => (size, None),
            (None, Some(f)) => {
                let mut out = [0; 2];
                for a in 0..2 {
                    let o = libm::floor(in_hw[a] as f64 * f[a]);
                    // Written so that NaN fails every test.
                    let ok = f[a].is_finite() && f[a] > 0.0 && o <= MAX_OUT_DIM;
                    if !ok {
                        return Err(crate::arg_err!(
                            op,
                            "scale factor {f:?} must be positive, finite and not huge (input {s:?})"
                        ));
                    }
                    out[a] = o as usize;
                }
                (out, Some(f))
            }
            _ => {
                return Err(crate::arg_err!(
                    op,
                    "give exactly one of size ({size:?}) and scale_factor ({scale_factor:?}) (input {s:?})"
                ))
            }
        };
        if out_hw.contains(&0) {
            return Err(crate::shape_err!(
                op,
                "output size {out_hw:?} of input {s:?} must be non-zero (size {size:?}, scale factor {scale_factor:?})"
            ));
        }
        Ok(ResizeParams {
            in_hw,
            out_hw,
            scale,
            align_corners,
        })
    }

    /// Bicubic interpolation of `[n, c, h, w]` (PyTorch: `F.interpolate(x, size,
    /// scale_factor, mode="bicubic", align_corners)`): cubic coefficient -0.75, taps outside
    /// the image clamped to its border. Computes in f64 for f64, in f32 otherwise.
    pub fn interpolate_bicubic(
        &self,
        size: Option<[usize; 2]>,
        scale_factor: Option<[f64; 2]>,
        align_corners: bool,
    ) -> Result<Self> {
        self.check_float("interpolate_bicubic")?;
        let p = self.resize_params(size, scale_factor, align_corners)?;
        let y = self
            .backend()
            .upsample_bicubic2d(self.storage(), self.layout(), &p)?;
        Ok(self.with_plane(y, p.out_hw))
    }

    /// The input gradient of bicubic interpolation: `self` is the output gradient
    /// `[n, c, oh, ow]` for the geometry `p` (from [`Tensor::resize_params`]); returns
    /// `[n, c, h, w]`. The exact adjoint of the forward resampling.
    pub fn interpolate_bicubic_backward(&self, p: &ResizeParams) -> Result<Self> {
        let op = "interpolate_bicubic_backward";
        self.check_float(op)?;
        self.check_rank(op, 4)?;
        let s = self.shape();
        if s[2..] != p.out_hw || p.in_hw.contains(&0) {
            return Err(crate::shape_err!(
                op,
                "gradient {s:?} does not match a resize from {:?} to {:?}",
                p.in_hw,
                p.out_hw
            ));
        }
        let g = self
            .backend()
            .upsample_bicubic2d_backward(self.storage(), self.layout(), p)?;
        Ok(self.with_plane(g, p.in_hw))
    }
}

#[cfg(test)]
mod tests {
    //! Geometry, views, the adjoint identity and errors. Values against PyTorch are in
    //! `cpu.rs`.
    use super::*;
    use crate::testing::{dot, random};
    use crate::{Cpu, DType, Error};

    #[test]
    fn params_from_size_or_scale() {
        let x = random(&[2, 3, 4, 5], 0);
        let p = x.resize_params(Some([7, 3]), None, false).unwrap();
        assert_eq!((p.out_hw, p.scale), ([7, 3], None));
        assert_eq!(p.ratio(1), 5.0 / 3.0);
        // floor(in * scale), and the scale kept for the coordinate ratio.
        let s = (6.0 + 0.1) / 4.0;
        let p = x.resize_params(None, Some([s, 0.5]), false).unwrap();
        assert_eq!(p.out_hw, [6, 2]);
        assert_eq!(p.scale, Some([s, 0.5]));
        assert_eq!(p.ratio(0), 1.0 / s);
        assert_ne!(p.ratio(0), 4.0 / 6.0);
        // align_corners ignores the scale (PyTorch's `area_pixel_compute_scale`).
        let p = x.resize_params(None, Some([s, 0.5]), true).unwrap();
        assert_eq!(p.ratio(0), 3.0 / 5.0);
        let y = x.interpolate_bicubic(None, Some([s, 0.5]), true).unwrap();
        assert_eq!(y.shape(), &[2, 3, 6, 2]);
    }

    #[test]
    fn identity_and_constants() {
        // Same size without align_corners: t = 0 everywhere, weights (0, 1, 0, 0).
        let x = random(&[1, 2, 3, 4], 1);
        let y = x.interpolate_bicubic(Some([3, 4]), None, false).unwrap();
        assert_eq!(y.to_f64_vec().unwrap(), x.to_f64_vec().unwrap());
        // The weights sum to 1, so a constant image stays constant.
        let c = Tensor::<Cpu>::full(&[1, 1, 3, 4], 2.5, DType::F64, &Cpu).unwrap();
        for v in c
            .interpolate_bicubic(Some([7, 2]), None, false)
            .unwrap()
            .to_f64_vec()
            .unwrap()
        {
            assert!((v - 2.5).abs() < 1e-12, "{v}");
        }
    }

    #[test]
    fn views_equal_contiguous() {
        let v = random(&[5, 2, 4, 1], 2).permute(&[3, 1, 2, 0]).unwrap();
        assert!(!v.is_contiguous());
        let c = v.contiguous().unwrap();
        let s = Some([1.6, 2.3]);
        let (a, b) = (
            v.interpolate_bicubic(None, s, false).unwrap(),
            c.interpolate_bicubic(None, s, false).unwrap(),
        );
        assert_eq!(a.to_f64_vec().unwrap(), b.to_f64_vec().unwrap());
        let p = c.resize_params(None, s, false).unwrap();
        let g = random(&[1, 2, p.out_hw[1], p.out_hw[0]], 3)
            .transpose(2, 3)
            .unwrap();
        let (a, b) = (
            g.interpolate_bicubic_backward(&p).unwrap(),
            g.contiguous()
                .unwrap()
                .interpolate_bicubic_backward(&p)
                .unwrap(),
        );
        assert_eq!(a.to_f64_vec().unwrap(), b.to_f64_vec().unwrap());
    }

    #[test]
    fn backward_is_the_adjoint() {
        let cases = [
            (None, Some([(6.0 + 0.1) / 4.0; 2]), false),
            (Some([9, 2]), None, false),
            (Some([9, 2]), None, true),
            (Some([1, 1]), None, true),
            (None, Some([0.6, 2.5]), false),
        ];
        for (size, scale, ac) in cases {
            let x = random(&[2, 3, 4, 5], 4);
            let p = x.resize_params(size, scale, ac).unwrap();
            let ax = x.interpolate_bicubic(size, scale, ac).unwrap();
            let y = random(ax.shape(), 5);
            let aty = y.interpolate_bicubic_backward(&p).unwrap();
            assert_eq!(aty.shape(), x.shape());
            let (l, r) = (dot(&ax, &y), dot(&x, &aty));
            assert!((l - r).abs() < 1e-12 * l.abs().max(1.0), "{l} vs {r}");
        }
    }

    #[test]
    fn errors() {
        let x = random(&[1, 1, 4, 4], 6);
        let is_arg = |e: Error| matches!(e, Error::Argument { .. });
        let is_shape = |e: Error| matches!(e, Error::Shape { .. });
        assert!(is_arg(
            x.interpolate_bicubic(None, None, false).unwrap_err()
        ));
        let both = x.interpolate_bicubic(Some([2, 2]), Some([2.0, 2.0]), false);
        assert!(is_arg(both.unwrap_err()));
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e300] {
            let e = x.interpolate_bicubic(None, Some([2.0, bad]), false);
            assert!(is_arg(e.unwrap_err()), "{bad}");
        }
        // floor(4 * 0.2) = 0.
        assert!(is_shape(
            x.interpolate_bicubic(None, Some([0.2, 1.0]), false)
                .unwrap_err()
        ));
        assert!(is_shape(
            x.interpolate_bicubic(Some([0, 3]), None, false)
                .unwrap_err()
        ));
        assert!(is_shape(
            random(&[4, 4], 0)
                .interpolate_bicubic(Some([2, 2]), None, false)
                .unwrap_err()
        ));
        assert!(is_shape(
            random(&[1, 1, 0, 4], 0)
                .interpolate_bicubic(Some([2, 2]), None, false)
                .unwrap_err()
        ));
        let ints = Tensor::<Cpu>::zeros(&[1, 1, 4, 4], DType::I64, &Cpu).unwrap();
        let e = ints.interpolate_bicubic(Some([2, 2]), None, false);
        assert!(matches!(e, Err(Error::DType { .. })));
        let p = x.resize_params(Some([3, 5]), None, false).unwrap();
        let e = random(&[1, 1, 5, 3], 0).interpolate_bicubic_backward(&p);
        assert!(is_shape(e.unwrap_err()));
    }
}
