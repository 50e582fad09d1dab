//! im2col/col2im, pooling and bicubic resampling on the shim against the CPU reference:
//! every float dtype, strided (channels-last) inputs, padding/stride/dilation, NaN and ties,
//! adaptive bins both ways, and the conformance kit's conv/pool/interpolate families and
//! properties.
#![cfg(feature = "sim")]

mod common;
use common::{dev, lcg};
use tessera_cuda::Cuda;
use tessera_tensor::{Backend, Conv2dParams, Cpu, DType, Layout, Pool2dOptions, Tensor};
use tessera_testkit::{ops::check_family, props, ToleranceTable};

const FLOATS: [DType; 4] = [DType::F16, DType::BF16, DType::F32, DType::F64];

/// Deterministic values in [-4, 4]: multiples of 1/4 (`exact`) or of 1/1024.
fn values(n: usize, seed: u64, exact: bool) -> Vec<f64> {
    lcg(seed)
        .take(n)
        .map(|r| {
            if exact {
                (r % 33) as f64 / 4.0 - 4.0
            } else {
                (r % 8193) as f64 / 1024.0 - 4.0
            }
        })
        .collect()
}

fn from(v: &[f64], shape: &[usize], dt: DType) -> (Tensor<Cuda>, Tensor<Cpu>) {
    (
        Tensor::from_vec(v.to_vec(), shape, &dev())
            .unwrap()
            .to_dtype(dt)
            .unwrap(),
        Tensor::from_vec(v.to_vec(), shape, &Cpu)
            .unwrap()
            .to_dtype(dt)
            .unwrap(),
    )
}

/// `[n, c, h, w]` stored channels-last (a non-contiguous NCHW view), on both devices.
fn nhwc(shape: [usize; 4], dt: DType, seed: u64, exact: bool) -> (Tensor<Cuda>, Tensor<Cpu>) {
    let [n, c, h, w] = shape;
    let (g, cp) = from(&values(n * c * h * w, seed, exact), &[n, h, w, c], dt);
    (
        g.permute(&[0, 3, 1, 2]).unwrap(),
        cp.permute(&[0, 3, 1, 2]).unwrap(),
    )
}

/// Equal values; `tol` relative to max(1, |expected|), 0 for bit equality. NaN equals NaN.
fn close(a: &[f64], b: &[f64], tol: f64, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        let ok = if tol == 0.0 {
            x.to_bits() == y.to_bits()
        } else {
            (x - y).abs() <= tol * y.abs().max(1.0)
        };
        assert!(
            ok || (x.is_nan() && y.is_nan()),
            "{what} at {i}: {x} vs {y}"
        );
    }
}

fn same(g: &Tensor<Cuda>, c: &Tensor<Cpu>, tol: f64, what: &str) {
    assert_eq!(g.shape(), c.shape(), "{what}");
    assert_eq!(g.dtype(), c.dtype(), "{what}");
    close(
        &g.to_f64_vec().unwrap(),
        &c.to_f64_vec().unwrap(),
        tol,
        what,
    );
}

/// The CPU rounds f16/bf16 results through half's `from_f64`, which drops the low 32 bits
/// of the f64 before rounding (so it is not always round-to-nearest-even); the kernels round
/// correctly. Halves may therefore differ by one unit in the last place; f32/f64 must be equal.
fn ulp_tol(dt: DType) -> f64 {
    match dt {
        DType::F16 => 1e-3,
        DType::BF16 => 8e-3,
        _ => 0.0,
    }
}

fn conv_params(
    c: usize,
    hw: [usize; 2],
    k: [usize; 2],
    s: [usize; 2],
    p: [usize; 2],
    d: [usize; 2],
) -> Conv2dParams {
    Conv2dParams {
        in_channels: c,
        in_hw: hw,
        kernel: k,
        stride: s,
        padding: p,
        dilation: d,
        groups: 1,
    }
}

#[test]
fn im2col_and_col2im_match_cpu_bit_for_bit() {
    let geoms = [
        conv_params(3, [5, 6], [3, 3], [1, 1], [1, 1], [1, 1]),
        conv_params(2, [7, 5], [2, 3], [2, 1], [1, 0], [1, 2]),
        conv_params(1, [4, 4], [1, 1], [1, 1], [0, 0], [1, 1]),
        conv_params(2, [6, 7], [3, 2], [3, 2], [2, 1], [2, 1]),
    ];
    let (d, cpu) = (dev(), Cpu);
    for dt in FLOATS {
        for (k, p) in geoms.iter().enumerate() {
            let what = format!("{dt:?} geometry {k}");
            let (xg, xc) = nhwc(
                [2, p.in_channels, p.in_hw[0], p.in_hw[1]],
                dt,
                k as u64,
                false,
            );
            let [oh, ow] = p.out_hw().unwrap();
            let cols_shape = [2, p.col_rows(), oh * ow];
            let cl = Layout::contiguous(&cols_shape);
            let a = d.im2col(&**xg.storage(), xg.layout(), p).unwrap();
            let b = cpu.im2col(&**xc.storage(), xc.layout(), p).unwrap();
            let (ha, hb) = (d.to_host(&a, &cl).unwrap(), cpu.to_host(&b, &cl).unwrap());
            close(
                &ha.to_f64_vec(),
                &hb.to_f64_vec(),
                0.0,
                &format!("im2col {what}"),
            );
            // col2im of a transposed view of random columns.
            let (cg, cc) = from(
                &values(cols_shape.iter().product(), 9, false),
                &[2, oh * ow, p.col_rows()],
                dt,
            );
            let (cg, cc) = (cg.transpose(1, 2).unwrap(), cc.transpose(1, 2).unwrap());
            let il = Layout::contiguous(&[2, p.in_channels, p.in_hw[0], p.in_hw[1]]);
            let a = d.col2im(&**cg.storage(), cg.layout(), p).unwrap();
            let b = cpu.col2im(&**cc.storage(), cc.layout(), p).unwrap();
            let (ha, hb) = (d.to_host(&a, &il).unwrap(), cpu.to_host(&b, &il).unwrap());
            close(
                &ha.to_f64_vec(),
                &hb.to_f64_vec(),
                ulp_tol(dt),
                &format!("col2im {what}"),
            );
        }
    }
    // Shape mismatches and integer inputs are errors.
    let (xg, _) = nhwc([1, 2, 5, 5], DType::F32, 1, true);
    assert!(d.im2col(&**xg.storage(), xg.layout(), &geoms[0]).is_err());
    let (ig, _) = nhwc([1, 3, 5, 6], DType::I64, 1, true);
    assert!(d.im2col(&**ig.storage(), ig.layout(), &geoms[0]).is_err());
}

fn opts(
    k: [usize; 2],
    s: [usize; 2],
    p: [usize; 2],
    d: [usize; 2],
    include: bool,
) -> Pool2dOptions {
    Pool2dOptions {
        kernel: k,
        stride: s,
        padding: p,
        dilation: d,
        count_include_pad: include,
    }
}

#[test]
fn max_pool_values_and_indices_match_cpu_with_nan_ties_and_infinities() {
    let cases = [
        opts([2, 2], [2, 2], [0, 0], [1, 1], true),
        opts([3, 3], [2, 2], [1, 1], [1, 1], true),
        opts([2, 2], [1, 1], [1, 1], [2, 2], true),
        opts([3, 2], [1, 2], [1, 0], [1, 2], true),
    ];
    for dt in FLOATS {
        // Exact quarter steps make ties common; a NaN, +inf and -inf are planted.
        let (_, xc) = nhwc([2, 3, 6, 7], dt, 3, true);
        let mut flat = xc
            .permute(&[0, 2, 3, 1])
            .unwrap()
            .contiguous()
            .unwrap()
            .to_f64_vec()
            .unwrap();
        flat[5] = f64::NAN;
        flat[40] = f64::INFINITY;
        flat[77] = f64::NEG_INFINITY;
        let (g2, c2) = from(&flat, &[2, 6, 7, 3], dt);
        let (xg, xc) = (
            g2.permute(&[0, 3, 1, 2]).unwrap(),
            c2.permute(&[0, 3, 1, 2]).unwrap(),
        );
        for (k, o) in cases.iter().enumerate() {
            let what = format!("{dt:?} case {k}");
            let (vg, ig) = xg.max_pool2d(o).unwrap();
            let (vc, ic) = xc.max_pool2d(o).unwrap();
            same(&vg, &vc, 0.0, &what);
            same(&ig, &ic, 0.0, &what);
        }
        // A constant plane: every window ties, the first position wins.
        let (cg, cc) = from(&[1.0; 16], &[1, 1, 4, 4], dt);
        let o = opts([2, 2], [1, 1], [1, 1], [1, 1], true);
        same(
            &cg.max_pool2d(&o).unwrap().1,
            &cc.max_pool2d(&o).unwrap().1,
            0.0,
            "ties",
        );
    }
}

#[test]
fn avg_and_adaptive_pools_and_their_backward_match_cpu() {
    let cases = [
        opts([2, 2], [2, 2], [0, 0], [1, 1], true),
        opts([3, 3], [2, 2], [1, 1], [1, 1], true),
        opts([3, 3], [2, 2], [1, 1], [1, 1], false),
        opts([2, 3], [2, 1], [1, 1], [1, 1], false),
        opts([3, 2], [1, 3], [1, 1], [1, 1], true),
    ];
    for dt in FLOATS {
        let (xg, xc) = nhwc([2, 3, 7, 6], dt, 4, false);
        for (k, o) in cases.iter().enumerate() {
            let what = format!("{dt:?} case {k}");
            let (yg, yc) = (xg.avg_pool2d(o).unwrap(), xc.avg_pool2d(o).unwrap());
            same(&yg, &yc, ulp_tol(dt), &what);
            let p = xc.pool2d_params(o).unwrap();
            let s = yc.shape().to_vec();
            let (gg, gc) = nhwc([s[0], s[1], s[2], s[3]], dt, 5, false);
            same(
                &gg.avg_pool2d_backward(&p).unwrap(),
                &gc.avg_pool2d_backward(&p).unwrap(),
                ulp_tol(dt),
                &what,
            );
        }
        for out in [[1, 1], [3, 4], [7, 6], [10, 9], [2, 13]] {
            let what = format!("{dt:?} adaptive {out:?}");
            same(
                &xg.adaptive_avg_pool2d(out).unwrap(),
                &xc.adaptive_avg_pool2d(out).unwrap(),
                ulp_tol(dt),
                &what,
            );
            let (gg, gc) = nhwc([2, 3, out[0], out[1]], dt, 6, false);
            same(
                &gg.adaptive_avg_pool2d_backward([7, 6]).unwrap(),
                &gc.adaptive_avg_pool2d_backward([7, 6]).unwrap(),
                ulp_tol(dt),
                &what,
            );
        }
    }
    // Integer inputs and dilated average pooling are errors, as on the CPU.
    let d = dev();
    let (ig, _) = nhwc([1, 1, 4, 4], DType::I64, 1, true);
    assert!(ig.avg_pool2d(&Pool2dOptions::new(2, 2, 0)).is_err());
    let (fg, fc) = nhwc([1, 1, 4, 4], DType::F32, 1, true);
    let mut p = fc.pool2d_params(&Pool2dOptions::new(2, 2, 0)).unwrap();
    p.dilation = [2, 2];
    assert!(d.avg_pool2d(&**fg.storage(), fg.layout(), &p).is_err());
}

/// Input size, output size or scale, align_corners.
type Resize = ([usize; 2], Option<[usize; 2]>, Option<[f64; 2]>, bool);

#[test]
fn bicubic_and_its_backward_match_cpu() {
    // (in, size or scale, align_corners)
    let cases: [Resize; 7] = [
        ([4, 5], Some([8, 10]), None, false),
        ([4, 5], Some([8, 10]), None, true),
        ([9, 7], Some([4, 3]), None, false),
        ([9, 7], Some([4, 3]), None, true),
        ([1, 6], Some([3, 1]), None, true),
        ([5, 5], None, Some([2.3, 0.7]), false),
        ([6, 4], Some([6, 4]), None, false),
    ];
    for dt in FLOATS {
        let tol = match dt {
            DType::F64 => 1e-12,
            DType::F32 => 2e-6,
            DType::F16 => 4e-3,
            _ => 2e-2,
        };
        for (k, (hw, size, scale, ac)) in cases.iter().enumerate() {
            let what = format!("{dt:?} case {k}");
            let (xg, xc) = nhwc([2, 3, hw[0], hw[1]], dt, 7, false);
            let yg = xg.interpolate_bicubic(*size, *scale, *ac).unwrap();
            let yc = xc.interpolate_bicubic(*size, *scale, *ac).unwrap();
            same(&yg, &yc, tol, &what);
            let p = xc.resize_params(*size, *scale, *ac).unwrap();
            let (gg, gc) = nhwc([2, 3, p.out_hw[0], p.out_hw[1]], dt, 8, false);
            let (bg, bc) = (
                gg.interpolate_bicubic_backward(&p).unwrap(),
                gc.interpolate_bicubic_backward(&p).unwrap(),
            );
            same(&bg, &bc, tol * 4.0, &format!("{what} backward"));
        }
    }
}

#[test]
fn image_families_and_props() {
    let d = dev();
    let tol = ToleranceTable::default();
    let mut failures = Vec::new();
    for fam in ["conv", "pool", "interpolate"] {
        if let Err(f) = check_family(&d, fam, &tol) {
            failures.push(format!("{fam}: {f:?}"));
        }
    }
    for (name, r) in [
        ("conv props", props::check_conv_props(&d, &tol, 16)),
        ("pool props", props::check_pool_props(&d, &tol, 24)),
    ] {
        if let Err(f) = r {
            failures.push(format!("{name}: {f:?}"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
