//! Families of NCHW image ops: convolution, pooling and bicubic interpolation.

use super::support::*;
use tessera_tensor::{Backend, ConvOptions, DType, Error, Pool2dOptions, Result, Tensor};

/// Convolutions (stride, padding, dilation, groups, bias) and their input and weight gradients.
pub fn conv_family<B: Backend>(b: &B, out: &mut Outputs) -> Result<()> {
    // By hand: a 2x2 box filter over 0..9.
    let x = iota(b, &[1, 1, 3, 3])?;
    let ones = Tensor::ones(&[1, 1, 2, 2], DType::F32, b)?;
    let o = ConvOptions::default();
    exact(&x.conv2d(&ones, None, &o)?, &[8.0, 12.0, 20.0, 24.0]);
    let p = x.conv2d_params(&[1, 1, 2, 2], &o)?;
    let g = Tensor::ones(&[1, 1, 2, 2], DType::F32, b)?;
    exact(
        &g.conv2d_backward_input(&ones, &p)?,
        &[1.0, 2.0, 1.0, 2.0, 4.0, 2.0, 1.0, 2.0, 1.0],
    );
    exact(&g.conv2d_backward_weight(&x, &p)?, &[8.0, 12.0, 20.0, 24.0]);

    let x = iota(b, &[2, 4, 5, 5])?.mul_scalar(0.01)?;
    let cases = [
        ("3x3 pad 1", [6, 4, 3, 3], ConvOptions::new(1, 1)),
        ("stride 2", [3, 4, 3, 3], ConvOptions::new(2, 0)),
        (
            "dilated",
            [2, 4, 2, 2],
            ConvOptions {
                dilation: [2, 2],
                padding: [1, 0],
                ..Default::default()
            },
        ),
        (
            "grouped",
            [6, 2, 3, 3],
            ConvOptions {
                groups: 2,
                padding: [1, 1],
                ..Default::default()
            },
        ),
        (
            "depthwise",
            [4, 1, 3, 1],
            ConvOptions {
                groups: 4,
                ..Default::default()
            },
        ),
        ("pointwise", [5, 4, 1, 1], ConvOptions::default()),
    ];
    for (name, ws, o) in cases {
        let w = iota(b, &ws)?.mul_scalar(0.1)?.sin_like()?;
        let bias = Tensor::ones(&[ws[0]], DType::F32, b)?;
        let y = x.conv2d(&w, Some(&bias), &o)?;
        let p = x.conv2d_params(&ws, &o)?;
        let grad = y.mul_scalar(0.5)?;
        rec(out, name, &y)?;
        rec(
            out,
            &format!("{name} grad input"),
            &grad.conv2d_backward_input(&w, &p)?,
        )?;
        rec(
            out,
            &format!("{name} grad weight"),
            &grad.conv2d_backward_weight(&x, &p)?,
        )?;
        // A channels-last input (NHWC permuted to NCHW) gives the same result.
        let nhwc = x
            .permute(&[0, 2, 3, 1])?
            .contiguous()?
            .permute(&[0, 3, 1, 2])?;
        assert!(!nhwc.is_contiguous());
        let yv = nhwc.conv2d(&w, Some(&bias), &o)?;
        close(&yv, &y.to_f64_vec()?, 1e-6);
    }
    assert!(matches!(
        x.conv2d(&Tensor::ones(&[2, 3, 3, 3], DType::F32, b)?, None, &o),
        Err(Error::Shape { op: "conv2d", .. })
    ));
    Ok(())
}

/// Max, average and adaptive average pooling and their backward.
pub fn pool_family<B: Backend>(b: &B, out: &mut Outputs) -> Result<()> {
    let x = iota(b, &[1, 1, 4, 4])?;
    let o = Pool2dOptions::new(2, 2, 0);
    let (v, i) = x.max_pool2d(&o)?;
    exact(&v, &[5.0, 7.0, 13.0, 15.0]);
    assert_eq!(i.dtype(), DType::I64);
    exact(&i, &[5.0, 7.0, 13.0, 15.0]);
    let gin = Tensor::ones(&[1, 1, 2, 2], DType::F32, b)?.max_pool2d_backward(&i, [4, 4])?;
    let mut expect = [0.0; 16];
    for k in [5, 7, 13, 15] {
        expect[k] = 1.0;
    }
    exact(&gin, &expect);
    exact(&x.avg_pool2d(&o)?, &[2.5, 4.5, 10.5, 12.5]);
    let p = x.pool2d_params(&o)?;
    exact(
        &Tensor::ones(&[1, 1, 2, 2], DType::F32, b)?.avg_pool2d_backward(&p)?,
        &[0.25; 16],
    );
    exact(&x.adaptive_avg_pool2d([1, 1])?, &[7.5]);
    exact(&x.adaptive_avg_pool2d([2, 2])?, &[2.5, 4.5, 10.5, 12.5]);
    exact(
        &Tensor::ones(&[1, 1, 1, 1], DType::F32, b)?.adaptive_avg_pool2d_backward([4, 4])?,
        &[1.0 / 16.0; 16],
    );
    // Padding: max pads with -inf, avg counts the padding or not.
    let pad = Pool2dOptions::new(3, 1, 1);
    let mut nopad = pad;
    nopad.count_include_pad = false;
    exact(
        &x.avg_pool2d(&nopad)?.narrow(2, 0, 1)?.narrow(3, 0, 1)?,
        &[2.5],
    );
    close(
        &x.avg_pool2d(&pad)?.narrow(2, 0, 1)?.narrow(3, 0, 1)?,
        &[10.0 / 9.0],
        1e-6,
    );

    let y = iota(b, &[2, 3, 5, 6])?.mul_scalar(0.37)?.sin_like()?;
    let view = y.permute(&[0, 1, 3, 2])?; // [2, 3, 6, 5], transposed planes
    for (name, o) in [
        ("k2s2", Pool2dOptions::new(2, 2, 0)),
        ("k3s1p1", pad),
        ("k3s2p1 nopad", {
            let mut q = Pool2dOptions::new(3, 2, 1);
            q.count_include_pad = false;
            q
        }),
        ("dilated max", {
            let mut q = Pool2dOptions::new(2, 1, 0);
            q.dilation = [2, 2];
            q
        }),
    ] {
        let (mv, mi) = view.max_pool2d(&o)?;
        rec(out, &format!("max {name}"), &mv)?;
        rec(out, &format!("argmax {name}"), &mi)?;
        let g = mv.mul_scalar(2.0)?;
        rec(
            out,
            &format!("max back {name}"),
            &g.max_pool2d_backward(&mi, [6, 5])?,
        )?;
        if o.dilation == [1, 1] {
            let av = view.avg_pool2d(&o)?;
            let p = view.pool2d_params(&o)?;
            rec(out, &format!("avg {name}"), &av)?;
            rec(
                out,
                &format!("avg back {name}"),
                &av.avg_pool2d_backward(&p)?,
            )?;
        }
    }
    for ohw in [[1, 1], [3, 2], [4, 4], [6, 5], [7, 8]] {
        let a = view.adaptive_avg_pool2d(ohw)?;
        rec(out, &format!("adaptive {ohw:?}"), &a)?;
        rec(
            out,
            &format!("adaptive back {ohw:?}"),
            &a.adaptive_avg_pool2d_backward([6, 5])?,
        )?;
    }
    Ok(())
}

/// Bicubic interpolation and its backward.
pub fn interpolate_family<B: Backend>(b: &B, out: &mut Outputs) -> Result<()> {
    let c = Tensor::full(&[1, 2, 3, 3], 2.5, DType::F64, b)?;
    // Bicubic weights sum to one and borders clamp: a constant image stays constant.
    let up = c.interpolate_bicubic(Some([5, 7]), None, false)?;
    assert_eq!(up.shape(), &[1, 2, 5, 7]);
    close(&up, &[2.5; 70], 1e-12);
    let x = iota(b, &[1, 1, 4, 5])?.square()?.mul_scalar(0.1)?;
    // Same size, align_corners=False: the identity.
    close(
        &x.interpolate_bicubic(Some([4, 5]), None, false)?,
        &x.to_f64_vec()?,
        1e-6,
    );
    let s2 = x.interpolate_bicubic(None, Some([2.0, 1.5]), false)?;
    assert_eq!(s2.shape(), &[1, 1, 8, 7]);
    // align_corners=True keeps the corners.
    let ac = x.interpolate_bicubic(Some([7, 9]), None, true)?;
    let v = ac.to_f64_vec()?;
    let xv = x.to_f64_vec()?;
    assert!((v[0] - xv[0]).abs() < 1e-6 && (v[62] - xv[19]).abs() < 1e-4);
    assert!(x
        .interpolate_bicubic(Some([2, 2]), Some([2.0, 2.0]), false)
        .is_err());
    assert!(x.interpolate_bicubic(None, None, false).is_err());
    // The backward is the adjoint: <up(x), g> == <x, up_backward(g)>.
    let x64 = x.to_dtype(DType::F64)?;
    let p = x64.resize_params(None, Some([1.7, 2.3]), false)?;
    let y = x64.interpolate_bicubic(None, Some([1.7, 2.3]), false)?;
    let g = iota(b, y.shape())?
        .to_dtype(DType::F64)?
        .affine(0.01, -0.3)?;
    let gx = g.interpolate_bicubic_backward(&p)?;
    assert_eq!(gx.shape(), x64.shape());
    let lhs = y.mul(&g)?.sum_all()?.item()?;
    let rhs = x64.mul(&gx)?.sum_all()?.item()?;
    assert!(
        (lhs - rhs).abs() < 1e-9 * (1.0 + lhs.abs()),
        "{lhs} vs {rhs}"
    );
    let view = iota(b, &[2, 5, 4, 1])?.permute(&[3, 0, 2, 1])?; // [1, 2, 4, 5], strided
    for (name, t) in [
        ("constant up", up),
        ("scale 2 x 1.5", s2),
        ("align corners", ac),
        (
            "downscale",
            x.interpolate_bicubic(Some([3, 2]), None, false)?,
        ),
        ("backward", gx),
        (
            "view input",
            view.interpolate_bicubic(Some([6, 3]), None, false)?,
        ),
        (
            "dino-style scale",
            x.interpolate_bicubic(None, Some([3.1 / 4.0, 5.1 / 5.0]), false)?,
        ),
    ] {
        rec(out, name, &t)?;
    }
    Ok(())
}
