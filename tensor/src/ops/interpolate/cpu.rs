//! CPU bicubic resampling with PyTorch's exact semantics (`upsample_bicubic2d` and its
//! backward in `aten/src/ATen/native/cpu/UpSampleKernel.cpp` and `UpSampleBicubic2d.cpp`).
//!
//! The filter is separable: each output row (column) reads 4 input rows (columns) at
//! `floor(src)-1 ..= floor(src)+2`, clamped to the image, with cubic-convolution weights
//! (A = -0.75) of the fractional part of `src`. The taps and weights of each axis are computed
//! once, in the compute type (f64 for f64, f32 otherwise: PyTorch's opmath type), with
//! PyTorch's expressions in PyTorch's order. Its x86 build fuses some multiply-adds, so
//! results agree to rounding, not bit for bit: within 1e-14 in f64 and 1e-6 in f32 on the
//! tested cases (DINO's positional-embedding resize included).

use crate::backend::ResizeParams;
use crate::cpu::strided;
use crate::dtype::DType;
use crate::layout::Layout;
use crate::{HostBuffer, Result};
use alloc::vec::Vec;
use core::ops::AddAssign;
use half::{bf16, f16};
use num_traits::Float;

/// PyTorch's cubic-convolution coefficient (Keys' kernel with a = -0.75, as OpenCV).
const A: f64 = -0.75;

/// Converts a small constant or index to the compute type (always representable).
fn c<C: Float>(v: f64) -> C {
    C::from(v).unwrap_or_else(C::nan)
}

/// `((A + 2) x - (A + 3)) x^2 + 1`, for |x| <= 1.
fn cubic1<C: Float>(x: C) -> C {
    ((c::<C>(A + 2.0) * x - c(A + 3.0)) * x * x) + C::one()
}

/// `((A x - 5A) x + 8A) x - 4A`, for 1 < |x| < 2.
fn cubic2<C: Float>(x: C) -> C {
    ((c::<C>(A) * x - c(5.0 * A)) * x + c(8.0 * A)) * x - c(4.0 * A)
}

/// The 4 input positions and weights that produce each output position along one axis.
struct Taps<C> {
    index: Vec<[usize; 4]>,
    weight: Vec<[C; 4]>,
}

/// PyTorch's `area_pixel_compute_source_index` (cubic: no clamp at 0),
/// `guard_index_and_lambda` and `get_cubic_upsample_coefficients` for one axis.
/// `round` maps a weight through the storage dtype: PyTorch keeps forward weights in the
/// input's dtype, so for f16/bf16 they are rounded to it.
fn taps<C: Float>(
    in_len: usize,
    out_len: usize,
    ratio: f64,
    align_corners: bool,
    round: impl Fn(C) -> C,
) -> Taps<C> {
    // PyTorch computes the ratio in double and casts it to the compute type.
    let r: C = c(ratio);
    let half: C = c(0.5);
    let last = in_len as i64 - 1;
    let mut t = Taps {
        index: Vec::with_capacity(out_len),
        weight: Vec::with_capacity(out_len),
    };
    for o in 0..out_len {
        let o_c: C = c(o as f64);
        // `r * (o + 0.5) - 0.5` with one rounding: PyTorch's x86 build contracts it into an
        // FMA, and f32 weights are sensitive to it (on DINO's resize, a plain multiply and
        // subtract leaves outputs 2e-6 from PyTorch's, the FMA 5e-7).
        let src = if align_corners {
            r * o_c
        } else {
            r.mul_add(o_c + half, -half)
        };
        // PyTorch floors with `floorf`, i.e. after rounding `src` to f32 even for f64 input;
        // just below an integer that picks the next tap with lambda clamped to 0.
        let i0 = libm::floorf(src.to_f32().unwrap_or(0.0)) as i64;
        let i0 = i0.min(last);
        let lambda = (src - c(i0 as f64)).max(C::zero()).min(C::one());
        let x2 = C::one() - lambda;
        let w = [
            cubic2(lambda + C::one()),
            cubic1(lambda),
            cubic1(x2),
            cubic2(x2 + C::one()),
        ];
        t.index.push(core::array::from_fn(|j| {
            (i0 + j as i64 - 1).clamp(0, last) as usize
        }));
        t.weight.push(w.map(&round));
    }
    t
}

fn both_axes<C: Float>(p: &ResizeParams, round: impl Fn(C) -> C + Copy) -> [Taps<C>; 2] {
    [0, 1].map(|a| taps(p.in_hw[a], p.out_hw[a], p.ratio(a), p.align_corners, round))
}

/// Forward, PyTorch's order: per output pixel, for each of the 4 rows the 4-tap sum along
/// the row, then the weighted sum of those 4 row results.
fn forward<C: Float>(
    x: &[C],
    planes: usize,
    p: &ResizeParams,
    ty: &Taps<C>,
    tx: &Taps<C>,
) -> Vec<C> {
    let ([h, w], [oh, ow]) = (p.in_hw, p.out_hw);
    let mut out = Vec::with_capacity(planes * oh * ow);
    for plane in x.chunks_exact(h * w).take(planes) {
        for (iy, wy) in ty.index.iter().zip(&ty.weight) {
            for (ix, wx) in tx.index.iter().zip(&tx.weight) {
                let row = |j: usize| {
                    let r = &plane[iy[j] * w..][..w];
                    let mut s = r[ix[0]] * wx[0];
                    for k in 1..4 {
                        s = s + r[ix[k]] * wx[k];
                    }
                    s
                };
                let mut acc = row(0) * wy[0];
                for (j, &wj) in wy.iter().enumerate().skip(1) {
                    acc = acc + row(j) * wj;
                }
                out.push(acc);
            }
        }
    }
    out
}

/// The adjoint, PyTorch's order: each output gradient `g` adds `g * wy * wx` to its 16 taps
/// (clamped taps at a border receive several contributions).
fn backward<C: Float + AddAssign>(
    g: &[C],
    planes: usize,
    p: &ResizeParams,
    ty: &Taps<C>,
    tx: &Taps<C>,
) -> Vec<C> {
    let ([h, w], [oh, ow]) = (p.in_hw, p.out_hw);
    let mut out = crate::cpu::pool::filled_in_kernel(planes * h * w, C::zero());
    for (src, plane) in g.chunks_exact(oh * ow).zip(out.chunks_exact_mut(h * w)) {
        for (oy, (iy, wy)) in ty.index.iter().zip(&ty.weight).enumerate() {
            for (ox, (ix, wx)) in tx.index.iter().zip(&tx.weight).enumerate() {
                let v = src[oy * ow + ox];
                for ii in 0..4 {
                    for jj in 0..4 {
                        plane[iy[jj] * w + ix[ii]] += v * wy[jj] * wx[ii];
                    }
                }
            }
        }
    }
    out
}

/// The number of planes of a `[n, c, hw]` layout, after checking the geometry is usable
/// (the front end guarantees it; this keeps a direct backend call from indexing out of
/// bounds or dividing into empty chunks).
fn planes(op: &'static str, layout: &Layout, p: &ResizeParams, hw: [usize; 2]) -> Result<usize> {
    let s = layout.shape();
    if s.len() != 4 || s[2..] != hw || p.in_hw.contains(&0) || p.out_hw.contains(&0) {
        return Err(crate::shape_err!(
            op,
            "got {s:?} for a resize from {:?} to {:?} (sizes must be non-zero)",
            p.in_hw,
            p.out_hw
        ));
    }
    Ok(s[0] * s[1])
}

fn dtype_err(op: &'static str, d: DType) -> crate::Error {
    crate::Error::DType {
        op,
        msg: crate::__format!("the CPU kernel needs a float tensor, got {d}"),
    }
}

pub(crate) fn upsample_bicubic2d(
    x: &HostBuffer,
    l: &Layout,
    p: &ResizeParams,
) -> Result<HostBuffer> {
    let op = "upsample_bicubic2d";
    let n = planes(op, l, p, p.in_hw)?;
    Ok(match x {
        HostBuffer::F64(v) => {
            let [ty, tx] = both_axes(p, |w: f64| w);
            HostBuffer::F64(forward(&strided::view(v, l), n, p, &ty, &tx))
        }
        HostBuffer::F32(v) => {
            let [ty, tx] = both_axes(p, |w: f32| w);
            HostBuffer::F32(forward(&strided::view(v, l), n, p, &ty, &tx))
        }
        HostBuffer::F16(_) | HostBuffer::BF16(_) => {
            // f32 arithmetic on f32 values, with the weights rounded to the storage dtype
            // as PyTorch stores them.
            let [ty, tx] = if x.dtype() == DType::F16 {
                both_axes(p, |w: f32| f16::from_f32(w).to_f32())
            } else {
                both_axes(p, |w: f32| bf16::from_f32(w).to_f32())
            };
            let up = strided::gather_view(x, l).cast(DType::F32);
            let v = up.as_slice::<f32>().unwrap_or(&[]);
            HostBuffer::F32(forward(v, n, p, &ty, &tx)).cast(x.dtype())
        }
        other => return Err(dtype_err(op, other.dtype())),
    })
}

pub(crate) fn upsample_bicubic2d_backward(
    g: &HostBuffer,
    l: &Layout,
    p: &ResizeParams,
) -> Result<HostBuffer> {
    let op = "upsample_bicubic2d_backward";
    let n = planes(op, l, p, p.out_hw)?;
    Ok(match g {
        HostBuffer::F64(v) => {
            let [ty, tx] = both_axes(p, |w: f64| w);
            HostBuffer::F64(backward(&strided::view(v, l), n, p, &ty, &tx))
        }
        HostBuffer::F32(v) => {
            let [ty, tx] = both_axes(p, |w: f32| w);
            HostBuffer::F32(backward(&strided::view(v, l), n, p, &ty, &tx))
        }
        HostBuffer::F16(_) | HostBuffer::BF16(_) => {
            // PyTorch's backward uses unrounded f32 weights and an f32 accumulator.
            let [ty, tx] = both_axes(p, |w: f32| w);
            let up = strided::gather_view(g, l).cast(DType::F32);
            let v = up.as_slice::<f32>().unwrap_or(&[]);
            HostBuffer::F32(backward(v, n, p, &ty, &tx)).cast(g.dtype())
        }
        other => return Err(dtype_err(op, other.dtype())),
    })
}

#[cfg(test)]
mod tests {
    //! Expected values from PyTorch 2.9.1 on the CPU: the input is
    //! `x[i] = ((i*37) % 23 - 11) / 4` and the output gradient `g[i] = ((i*13) % 11 - 5) / 2`
    //! (row-major), passed to `F.interpolate(x, size=.. or scale_factor=.., mode="bicubic",
    //! align_corners=..)`, then `y.backward(g)` for the input gradients.
    use crate::{Cpu, DType, Tensor};
    use alloc::vec::Vec;

    fn pattern(shape: &[usize], dtype: DType, f: impl Fn(usize) -> f64) -> Tensor<Cpu> {
        let n = shape.iter().product();
        let v: Vec<f64> = (0..n).map(f).collect();
        Tensor::from_vec(v, shape, &Cpu)
            .unwrap()
            .to_dtype(dtype)
            .unwrap()
    }
    fn input(shape: &[usize], dtype: DType) -> Tensor<Cpu> {
        pattern(shape, dtype, |i| ((i * 37) % 23) as f64 / 4.0 - 2.75)
    }
    fn grad(shape: &[usize], dtype: DType) -> Tensor<Cpu> {
        pattern(shape, dtype, |i| ((i * 13) % 11) as f64 / 2.0 - 2.5)
    }
    /// Within `tol` relative to max(1, |want|): PyTorch's build may fuse multiply-adds.
    fn assert_close(got: &Tensor<Cpu>, want: &[f64], tol: f64) {
        let got = got.to_f64_vec().unwrap();
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!((g - w).abs() <= tol * w.abs().max(1.0), "{i}: {g} vs {w}");
        }
    }

    /// DINO's positional-embedding resize: a 4x4 grid of patch embeddings to 6x6 with
    /// `scale_factor = (6 + 0.1) / 4` on both axes. The coordinate ratio is 1/scale, not
    /// 4/6; with `size=(6, 6)` instead PyTorch's result differs by up to 0.34 here.
    #[test]
    fn dino_scale_factor_matches_torch() {
        let x = input(&[1, 3, 4, 4], DType::F32);
        let s = (6.0 + 0.1) / 4.0;
        let y = x.interpolate_bicubic(None, Some([s, s]), false).unwrap();
        assert_eq!(y.shape(), &[1, 3, 6, 6]);
        #[rustfmt::skip]
        let want = [
            -3.3258958, -0.79085845, 0.9728862, -1.5112883, -0.21970253, 2.543292,
            -1.8372302, -1.5146956, -0.8651568, -0.19191526, 0.19779766, 0.22189395,
            0.52339953, -1.3500404, -2.2937195, 0.30824485, 0.24736772, -1.2907127,
            2.4374025, 0.8508452, -1.1665467, -2.0028334, -0.6727035, 1.2155555,
            1.0323789, 1.4644115, 1.0374919, -1.0974228, -1.0787657, 0.15711004,
            -1.5494639, 0.8585735, 2.7267542, 1.1675239, -0.98373824, -2.374263,
            2.0316548, 0.09594399, -0.68465847, 2.4619775, 2.4457068, 0.6440231,
            -0.38351685, 0.19016786, 0.88171846, 1.1650978, -0.020725908, -1.4350505,
            -1.9493573, 0.048869956, 1.5770408, 0.24109493, -1.6477182, -2.8867607,
            0.6759192, -0.51054686, -0.8445979, 1.4944109, 0.82622117, -1.205639,
            -0.41574088, -0.7133757, -0.56504196, 0.49613157, 1.102119, 1.1363631,
            -3.0494635, -0.60819995, 1.1023104, -1.2628555, -0.0044851475, 2.6561592,
            -0.022119943, -1.6678176, -2.1388974, 1.0241438, 0.7194456, -1.3971905,
            1.7434428, 0.09774509, -1.4140205, -0.8441472, -0.0045387927, 0.5646122,
            2.4124267, 1.8008864, 0.30503583, -1.7771778, -0.7699555, 1.4835081,
            -0.6095121, 1.3280429, 2.6483772, 0.94861996, -0.6844637, -1.4460672,
            -0.10488877, 0.9705891, 1.4165683, -0.21805024, -1.0440301, -0.9873972,
            2.1410189, 0.8531342, -1.2232319, -2.991554, -1.4670782, 1.1561613,
        ];
        assert_close(&y, &want, 1e-6);
        let by_size = x.interpolate_bicubic(Some([6, 6]), None, false).unwrap();
        let (a, b) = (by_size.to_f64_vec().unwrap(), y.to_f64_vec().unwrap());
        let diff = a
            .iter()
            .zip(&b)
            .map(|(u, v)| (u - v).abs())
            .fold(0.0, f64::max);
        assert!(diff > 0.3, "{diff}");
    }

    /// The same resize in f16: PyTorch keeps the weights in f16, and so do we.
    #[test]
    fn dino_half_matches_torch() {
        let s = (6.0 + 0.1) / 4.0;
        let x = input(&[1, 1, 4, 4], DType::F16);
        let y = x.interpolate_bicubic(None, Some([s, s]), false).unwrap();
        assert_eq!(y.dtype(), DType::F16);
        #[rustfmt::skip]
        let want = [
            -3.326, -0.791, 0.9727, -1.512, -0.2201, 2.545, -1.838, -1.516, -0.865, -0.1919,
            0.1979, 0.2219, 0.5234, -1.35, -2.293, 0.3083, 0.2474, -1.29, 2.438, 0.851, -1.166,
            -2.004, -0.673, 1.216, 1.032, 1.465, 1.037, -1.098, -1.078, 0.1575, -1.55, 0.859,
            2.727, 1.168, -0.9834, -2.375,
        ];
        // Printed with 4 digits: one f16 ulp (2^-10 relative) of slack.
        assert_close(&y, &want, 1.0 / 1024.0);
    }

    #[test]
    fn size_matches_torch() {
        // `size=(5, 4)` from 3x5, both corner conventions, and the input gradients.
        let x = input(&[1, 1, 3, 5], DType::F32);
        let g = grad(&[1, 1, 5, 4], DType::F32);
        let cases: [(bool, [f64; 20], [f64; 15]); 2] = [
            (
                false,
                [
                    -2.385207,
                    0.06901762,
                    0.8136468,
                    -0.0030038878,
                    -2.282205,
                    0.17201754,
                    0.9166462,
                    0.099996075,
                    -2.111206,
                    0.34301758,
                    1.0876465,
                    0.2709961,
                    -1.9402069,
                    0.51401764,
                    1.2586467,
                    0.44199613,
                    -1.8372068,
                    0.61701787,
                    1.3616471,
                    0.5449963,
                ],
                [
                    -1.5263325,
                    -0.13595827,
                    -0.78460604,
                    -1.3697112,
                    0.0446065,
                    -0.24785122,
                    1.5950538,
                    1.6052285,
                    0.67509747,
                    -2.235529,
                    1.8291152,
                    -1.7679352,
                    -1.4446471,
                    -0.19405775,
                    0.95752454,
                ],
            ),
            (
                true,
                [
                    -2.75, 0.2361106, 1.0231488, -0.25, -2.6484375, 0.33767307, 1.1247113,
                    -0.1484375, -2.5, 0.4861105, 1.2731488, 0.0, -2.3515625, 0.6345479, 1.4215864,
                    0.1484375, -2.25, 0.7361104, 1.5231489, 0.25,
                ],
                [
                    -1.5868057,
                    -0.075810954,
                    -0.64814806,
                    -1.220486,
                    0.03125009,
                    -0.24305567,
                    1.6802664,
                    1.2210648,
                    0.76186293,
                    -2.3263888,
                    1.8854167,
                    -1.9470487,
                    -1.1284723,
                    -0.30989522,
                    0.90625,
                ],
            ),
        ];
        for (ac, want_y, want_g) in cases {
            let p = x.resize_params(Some([5, 4]), None, ac).unwrap();
            assert_close(
                &x.interpolate_bicubic(Some([5, 4]), None, ac).unwrap(),
                &want_y,
                2e-6,
            );
            assert_close(&g.interpolate_bicubic_backward(&p).unwrap(), &want_g, 2e-6);
        }
    }

    #[test]
    fn f64_matches_torch() {
        // `scale_factor=(1.7, 0.8)` on `[1, 2, 4, 3]` in float64: output 6x2.
        let x = input(&[1, 2, 4, 3], DType::F64);
        let y = x
            .interpolate_bicubic(None, Some([1.7, 0.8]), false)
            .unwrap();
        assert_eq!(y.shape(), &[1, 2, 6, 2]);
        #[rustfmt::skip]
        let want = [
            -2.7652339038503344, 0.48261956141724344, -0.7606828131696116, -0.35009238415668936,
            1.7158044426450425, -1.2932287876556976, 1.6303139051254518, -0.730918127238908,
            0.519109366844173, -0.27486666278151994, -0.07010802741257596, -0.9527303694514033,
            -0.5138304695053307, 2.17110605393217, -1.2606578417715324, 1.8157723572597286,
            -1.6747322742501747, 1.1303329087313088, 0.7592875742509507, 0.17181204235434927,
            2.7459692773521978, -0.8138356681465011, 1.940099828383504, -1.37922717606296,
        ];
        assert_close(&y, &want, 1e-14);
        let p = x.resize_params(None, Some([1.7, 0.8]), false).unwrap();
        let gx = grad(&[1, 2, 6, 2], DType::F64).interpolate_bicubic_backward(&p);
        #[rustfmt::skip]
        let want = [
            -2.432001551420994, -1.2218088048697717, -0.400185420220528, 0.11160887988599205,
            1.8165472610259337, 0.8462656736616545, -0.6391718387118478, -0.4644745031442603,
            -0.17259462598431435, 1.7261660727468504, -1.0518948123869005, -0.6184563305818117,
            -1.1062354552340599, 0.12797528994246066, 0.13950965643754085, 2.2669439286679043,
            -0.7752859580305712, -0.5271537217059251, -0.6057657078378624, 1.014264466052576,
            0.5204175098496054, -1.395518937470981, -0.8564557510894658, -0.3026953195812215,
        ];
        assert_close(&gx.unwrap(), &want, 1e-14);
    }
}
