//! Composite ops on the counting backend: which primitives they are built from, that storage
//! is reachable only through transfers, and that errors are caught by the front end.

use crate::harness::ulps_close;
use tessera_tensor::{Backend, ConvOptions, Cpu, DType, Error, Result, Tensor};
use tessera_testkit::backends::Counting;

fn input(c: &Counting, shape: &[usize]) -> Tensor<Counting> {
    let n: usize = shape.iter().product();
    Tensor::from_vec((0..n).map(|i| (i as f32 * 0.7).cos()).collect(), shape, c).unwrap()
}

#[test]
fn composites_are_built_from_primitives_on_the_device() {
    let c = Counting::new();
    let x = input(&c, &[3, 5]);
    // A strided upstream gradient, so the fused kernel's view handling is exercised too.
    let gx = input(&c, &[5, 3]).t().unwrap();
    let w = input(&c, &[5]);
    let img = input(&c, &[2, 3, 6, 6]);
    let k = input(&c, &[4, 3, 3, 3]);
    let g = input(&c, &[2, 4, 6, 6]);
    let p = img
        .conv2d_params(k.shape(), &ConvOptions::new(1, 1))
        .unwrap();
    let bx = input(&c, &[4, 3, 2]);
    let cw = input(&c, &[3]);

    let check = |name: &str, run: &dyn Fn() -> Result<Tensor<Counting>>, uses: &[&str]| {
        c.reset();
        let y = run().unwrap_or_else(|e| panic!("{name}: {e}"));
        let counts = c.counts();
        for u in uses {
            assert!(
                counts.get(u).copied().unwrap_or(0) > 0,
                "{name} did not use {u}: {counts:?}"
            );
        }
        // No host round trip inside a composite: data never left the device.
        assert_eq!(
            counts.get("to_host"),
            None,
            "{name} read back to the host: {counts:?}"
        );
        assert_eq!(
            counts.get("from_host"),
            None,
            "{name} uploaded from the host: {counts:?}"
        );
        // The result is an ordinary tensor of this backend, and matches the CPU.
        assert_eq!(y.backend(), &c);
        counts
    };

    let sm = check("softmax", &|| x.softmax(1), &["reduce", "unary", "binary"]);
    // max and sum; sub and div; exp.
    assert_eq!(
        (sm["reduce"], sm["binary"], sm["unary"]),
        (2, 2, 1),
        "{sm:?}"
    );
    check(
        "log_softmax",
        &|| x.log_softmax(0),
        &["reduce", "unary", "binary"],
    );
    check("gelu", &|| x.gelu(), &["unary", "binary"]);
    check(
        "gelu_backward",
        &|| x.gelu_backward(&gx),
        &["unary", "binary"],
    );
    check(
        "layer_norm",
        &|| x.layer_norm(&[5], Some(&w), Some(&w), 1e-5),
        &["reduce", "unary", "binary"],
    );
    check(
        "batch_norm_train",
        &|| Ok(bx.batch_norm_train(Some(&cw), Some(&cw), 1e-5)?.output),
        &["reduce", "unary", "binary"],
    );
    check(
        "batch_norm_eval",
        &|| bx.batch_norm_eval(&cw, &cw.abs()?, None, Some(&cw), 1e-5),
        &["unary", "binary"],
    );
    let cv = check(
        "conv2d",
        &|| img.conv2d(&k, None, &ConvOptions::new(1, 1)),
        &["im2col", "matmul"],
    );
    assert_eq!((cv["im2col"], cv["matmul"]), (1, 1), "{cv:?}");
    check(
        "conv2d_backward_input",
        &|| g.conv2d_backward_input(&k, &p),
        &["matmul", "col2im"],
    );
    check(
        "conv2d_backward_weight",
        &|| g.conv2d_backward_weight(&img, &p),
        &["im2col", "matmul", "reduce"],
    );

    // And the composites' values equal the CPU's within a few ulps where the CPU runs an
    // override (softmax, GELU, conv).
    let on_cpu =
        |t: &Tensor<Counting>| Tensor::from_host(t.to_host().unwrap(), t.shape(), &Cpu).unwrap();
    let (xc, kc, imgc) = (on_cpu(&x), on_cpu(&k), on_cpu(&img));
    let close = |a: Tensor<Counting>, b: Tensor<Cpu>| {
        let (p, q) = (a.to_f64_vec().unwrap(), b.to_f64_vec().unwrap());
        assert!(
            p.iter().zip(&q).all(|(p, q)| ulps_close(*p, *q, a.dtype())),
            "{p:?} vs {q:?}"
        );
    };
    close(x.softmax(1).unwrap(), xc.softmax(1).unwrap());
    close(x.gelu().unwrap(), xc.gelu().unwrap());
    close(
        x.gelu_backward(&gx).unwrap(),
        xc.gelu_backward(&on_cpu(&gx)).unwrap(),
    );
    // The front end checks what a caller can get wrong, before any backend sees it.
    assert!(matches!(
        x.gelu_backward(&x.t().unwrap()),
        Err(Error::Shape { .. })
    ));
    assert!(matches!(
        x.gelu_backward(&x.to_dtype(DType::F64).unwrap()),
        Err(Error::DType { .. })
    ));
    // The CPU convolves with one GEMM over the batch (patches as rows), the composite with
    // one per image: the same c·kh·kw products per output, summed in another order, so they
    // agree to the rounding of such a sum (a few ulps of the terms' magnitude), not of the
    // (possibly cancelling) result.
    let (p, q) = (
        img.conv2d(&k, None, &ConvOptions::new(1, 1))
            .unwrap()
            .to_f64_vec()
            .unwrap(),
        imgc.conv2d(&kc, None, &ConvOptions::new(1, 1))
            .unwrap()
            .to_f64_vec()
            .unwrap(),
    );
    let scale = q.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    let worst = p
        .iter()
        .zip(&q)
        .fold(0.0f64, |m, (p, q)| m.max((p - q).abs()));
    assert!(
        worst <= 64.0 * f32::EPSILON as f64 * scale,
        "conv: largest difference {worst} at scale {scale}"
    );
}

#[test]
fn storage_is_reachable_only_through_transfers() {
    let c = Counting::new();
    let t = Tensor::from_vec(vec![1.0f32, 2.0, 3.0], &[3], &c).unwrap();
    assert_eq!(c.count("from_host"), 1);
    // The only way to see the elements is a transfer back.
    assert_eq!(t.to_vec::<f32>().unwrap(), vec![1.0, 2.0, 3.0]);
    assert_eq!(c.count("to_host"), 1);
    assert_eq!(format!("{t:?}"), "Tensor[[3], F32, counting]");
    // Views cost nothing on the device.
    c.reset();
    let v = t
        .narrow(0, 1, 2)
        .unwrap()
        .unsqueeze(0)
        .unwrap()
        .broadcast_to(&[2, 2])
        .unwrap();
    assert!(c.counts().is_empty(), "{:?}", c.counts());
    assert_eq!(v.to_f64_vec().unwrap(), vec![2.0, 3.0, 2.0, 3.0]);
    // A fill needs no host data beyond the default `full`'s transfer.
    c.reset();
    let z = Tensor::zeros(&[4], DType::F32, &c).unwrap();
    assert_eq!(c.counts().get("from_host"), Some(&1));
    assert_eq!(z.numel(), 4);
}

#[test]
fn handles_are_one_device() {
    let (c1, c2) = (Counting::new(), Counting::new());
    assert_eq!(c1, c2);
    let a = Tensor::from_vec(vec![1.0f32, 2.0], &[2], &c1).unwrap();
    let b = Tensor::from_vec(vec![3.0f32, 4.0], &[2], &c2).unwrap();
    assert_eq!(a.add(&b).unwrap().to_vec::<f32>().unwrap(), vec![4.0, 6.0]);
    assert_eq!(a.matmul(&b).unwrap().item().unwrap(), 11.0);
    assert_eq!(c1.count("binary"), 1);
    assert_eq!(c2.count("binary"), 0);
    assert_eq!(Cpu.name(), "cpu");
    assert_eq!(c1.name(), "counting");
}

#[test]
fn errors_through_the_opaque_backend() {
    let c = Counting::new();
    let a = Tensor::<Counting>::zeros(&[2, 3], DType::F32, &c).unwrap();
    let b = Tensor::<Counting>::zeros(&[4, 3], DType::F32, &c).unwrap();
    let d = Tensor::<Counting>::zeros(&[2, 3], DType::F64, &c).unwrap();
    let i = Tensor::<Counting>::zeros(&[2, 3], DType::I64, &c).unwrap();
    c.reset();

    let e = a.add(&b).unwrap_err();
    assert!(matches!(e, Error::Shape { op: "binary", .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        "binary: shape error: shapes [2, 3] and [4, 3] cannot be broadcast together (dim 0: 2 vs 4)"
    );
    let e = a.mul(&d).unwrap_err();
    assert!(matches!(e, Error::DType { .. }), "{e:?}");
    assert!(e.to_string().contains("F32 and F64"), "{e}");
    let e = a.matmul(&b).unwrap_err();
    assert_eq!(
        e.to_string(),
        "matmul: shape error: [2, 3] @ [4, 3]: inner dims 3 and 4 differ"
    );
    let e = a.matmul(&d.t().unwrap()).unwrap_err();
    assert!(matches!(e, Error::DType { op: "matmul", .. }), "{e:?}");
    let e = i.exp().unwrap_err();
    assert!(
        e.to_string().contains("needs a float tensor, got I64"),
        "{e}"
    );
    let e = i.matmul(&i.t().unwrap()).unwrap_err();
    assert!(matches!(e, Error::DType { .. }), "{e:?}");
    let e = a.sum(&[2], false).unwrap_err();
    assert_eq!(
        e,
        Error::Axis {
            op: "sum",
            axis: 2,
            rank: 2
        }
    );
    assert_eq!(
        e.to_string(),
        "sum: axis 2 is out of range for a tensor of rank 2"
    );
    let e = a.reshape(&[4]).unwrap_err();
    assert!(e.to_string().contains("cannot reshape [2, 3]"), "{e}");
    let e = a.to_vec::<f64>().unwrap_err();
    assert!(
        e.to_string().contains("has dtype F32, asked for F64"),
        "{e}"
    );
    let e = a.where_cond(&a, &a).unwrap_err();
    assert!(matches!(e, Error::DType { op: "where", .. }), "{e:?}");
    let e = a.softmax(-3).unwrap_err();
    assert!(matches!(e, Error::Axis { op: "softmax", .. }), "{e:?}");
    let e = a.layer_norm(&[2], None, None, 1e-5).unwrap_err();
    assert!(
        e.to_string().contains("not a suffix of input [2, 3]"),
        "{e}"
    );
    let img = Tensor::<Counting>::zeros(&[1, 3, 4, 4], DType::F32, &c).unwrap();
    let w = Tensor::<Counting>::zeros(&[2, 2, 3, 3], DType::F32, &c).unwrap();
    let e = img.conv2d(&w, None, &ConvOptions::default()).unwrap_err();
    assert!(e.to_string().contains("has 3 channels"), "{e}");
    let e = img.conv2d(
        &w.to_dtype(DType::F64).unwrap(),
        None,
        &ConvOptions::default(),
    );
    assert!(matches!(e, Err(Error::DType { .. })));
    let big = Tensor::<Counting>::zeros(&[1, 3, 9, 9], DType::F32, &c).unwrap();
    let e = img.conv2d(&big, None, &ConvOptions::default()).unwrap_err();
    assert!(matches!(e, Error::Shape { .. }), "{e:?}");
    let e = Tensor::<Counting>::from_vec(vec![1.0f32; 5], &[2, 3], &c).unwrap_err();
    assert!(
        e.to_string()
            .contains("5 elements do not fill shape [2, 3]"),
        "{e}"
    );
    // Every one of these was caught by the front end before reaching a kernel.
    let counts = c.counts();
    for p in [
        "binary",
        "matmul",
        "unary",
        "reduce",
        "im2col",
        "where_cond",
    ] {
        assert_eq!(
            counts.get(p),
            None,
            "{p} ran despite bad arguments: {counts:?}"
        );
    }
}
