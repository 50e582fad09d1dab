//! The whole op suite, written once generically over `B: Backend`, run on the CPU backend and
//! on `Counting` (opaque storage, every primitive delegated to the CPU and counted, composites
//! left to their default compositions). Results must be bit-identical between the two, known
//! values are checked, and the counters prove which primitives each composite was built from
//! and that no composite round-trips through the host.
//!
//! One test per op family, so that a family still being written fails on its own.

#[path = "common/opaque_backend.rs"]
mod opaque_backend;

use opaque_backend::Counting;
use std::panic::{catch_unwind, AssertUnwindSafe};
use tessera_tensor::{
    Backend, ConvOptions, Cpu, DType, Error, HostBuffer, Pool2dOptions, Result, Rng, Tensor,
};

/// Named results of one family, in order: shape and the host copy.
type Outputs = Vec<(String, Vec<usize>, HostBuffer)>;

fn rec<B: Backend>(out: &mut Outputs, name: &str, t: &Tensor<B>) -> Result<()> {
    out.push((name.to_string(), t.shape().to_vec(), t.to_host()?));
    Ok(())
}

fn f32t<B: Backend>(b: &B, v: &[f64], shape: &[usize]) -> Result<Tensor<B>> {
    Tensor::from_vec(v.iter().map(|&x| x as f32).collect(), shape, b)
}

fn f64t<B: Backend>(b: &B, v: &[f64], shape: &[usize]) -> Result<Tensor<B>> {
    Tensor::from_vec(v.to_vec(), shape, b)
}

fn i64t<B: Backend>(b: &B, v: &[i64], shape: &[usize]) -> Result<Tensor<B>> {
    Tensor::from_vec(v.to_vec(), shape, b)
}

/// `0, 1, .., n-1` as f32 in `shape`.
fn iota<B: Backend>(b: &B, shape: &[usize]) -> Result<Tensor<B>> {
    Tensor::arange(shape.iter().product(), DType::F32, b)?.reshape(shape)
}

#[track_caller]
fn close<B: Backend>(t: &Tensor<B>, expected: &[f64], tol: f64) {
    let got = t.to_f64_vec().unwrap();
    assert_eq!(got.len(), expected.len(), "{t:?}: {got:?} vs {expected:?}");
    for (g, e) in got.iter().zip(expected) {
        assert!(
            (g - e).abs() <= tol * (1.0 + e.abs()),
            "{t:?}: got {got:?}, expected {expected:?}"
        );
    }
}

#[track_caller]
fn exact<B: Backend>(t: &Tensor<B>, expected: &[f64]) {
    assert_eq!(t.to_f64_vec().unwrap(), expected, "{t:?}");
}

// ------------------------------------------------------------------------------- families

fn unary_family<B: Backend>(b: &B, out: &mut Outputs) -> Result<()> {
    let x = f32t(b, &[-2.0, -0.5, 0.0, 0.5, 1.0, 3.0], &[2, 3])?;
    let pos = x.abs()?.add_scalar(1.0)?;
    exact(&x.relu()?, &[0.0, 0.0, 0.0, 0.5, 1.0, 3.0]);
    exact(&x.abs()?, &[2.0, 0.5, 0.0, 0.5, 1.0, 3.0]);
    exact(&x.sign()?, &[-1.0, -1.0, 0.0, 1.0, 1.0, 1.0]);
    exact(&x.square()?, &[4.0, 0.25, 0.0, 0.25, 1.0, 9.0]);
    exact(&x.clamp(-1.0, 1.0)?, &[-1.0, -0.5, 0.0, 0.5, 1.0, 1.0]);
    exact(&x.affine(2.0, 1.0)?, &[-3.0, 0.0, 1.0, 2.0, 3.0, 7.0]);
    close(
        &x.sigmoid()?,
        &[
            0.11920292, 0.37754067, 0.5, 0.62245933, 0.73105858, 0.95257413,
        ],
        1e-6,
    );
    close(
        &x.gelu()?,
        &[
            -0.04550026,
            -0.15426877,
            0.0,
            0.34573123,
            0.84134475,
            2.99595031,
        ],
        1e-6,
    );
    assert!(x.clamp(1.0, 0.0).is_err());
    let all = [
        ("neg", x.neg()?),
        ("abs", x.abs()?),
        ("sign", x.sign()?),
        ("exp", x.exp()?),
        ("log", pos.log()?),
        ("sqrt", pos.sqrt()?),
        ("rsqrt", pos.rsqrt()?),
        ("recip", pos.recip()?),
        ("square", x.square()?),
        ("tanh", x.tanh()?),
        ("erf", x.erf()?),
        ("sigmoid", x.sigmoid()?),
        ("relu", x.relu()?),
        ("powf", pos.powf(1.5)?),
        ("affine", x.affine(-0.5, 0.25)?),
        ("add_scalar", x.add_scalar(3.0)?),
        ("mul_scalar", x.mul_scalar(3.0)?),
        ("div_scalar", x.div_scalar(4.0)?),
        ("clamp", x.clamp(-0.7, 0.7)?),
        ("gelu", x.gelu()?),
        ("exp of a transposed view", x.t()?.exp()?),
        ("gelu of a transposed view", x.t()?.gelu()?),
        ("f64 tanh", x.to_dtype(DType::F64)?.tanh()?),
        ("f16 exp", x.to_dtype(DType::F16)?.exp()?),
        ("bf16 gelu", x.to_dtype(DType::BF16)?.gelu()?),
    ];
    for (name, t) in &all {
        rec(out, name, t)?;
    }
    // Integer tensors have no float kernels: a dtype error, not a panic.
    let i = i64t(b, &[1, 2], &[2])?;
    assert!(matches!(i.exp(), Err(Error::DType { .. })));
    assert!(matches!(i.gelu(), Err(Error::DType { .. })));
    Ok(())
}

fn binary_family<B: Backend>(b: &B, out: &mut Outputs) -> Result<()> {
    let a = f32t(b, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3])?;
    let row = f32t(b, &[10.0, 20.0, 30.0], &[3])?;
    let col = f32t(b, &[2.0, 4.0], &[2, 1])?;
    exact(&a.add(&row)?, &[11.0, 22.0, 33.0, 14.0, 25.0, 36.0]);
    exact(&a.mul(&col)?, &[2.0, 4.0, 6.0, 16.0, 20.0, 24.0]);
    exact(&row.sub(&col)?, &[8.0, 18.0, 28.0, 6.0, 16.0, 26.0]);
    exact(&a.pow(&col)?, &[1.0, 4.0, 9.0, 256.0, 625.0, 1296.0]);
    let h = f64t(b, &[0.5, 0.25], &[2, 1])?;
    exact(&h.add(&h.t()?)?, &[1.0, 0.75, 0.75, 0.5]);
    let mid = f32t(b, &[3.5], &[])?;
    exact(&a.maximum(&mid)?, &[3.5, 3.5, 3.5, 4.0, 5.0, 6.0]);
    exact(&a.minimum(&mid)?, &[1.0, 2.0, 3.0, 3.5, 3.5, 3.5]);
    for (name, t) in [
        ("add", a.add(&row)?),
        ("sub", a.sub(&col)?),
        ("mul", a.mul(&row)?),
        ("div", a.div(&col)?),
        ("maximum", a.maximum(&mid)?),
        ("minimum", a.minimum(&col)?),
        ("pow", a.pow(&col)?),
        ("add of transposed views", a.t()?.add(&a.t()?.exp()?)?),
        ("outer via broadcast", col.mul(&row.unsqueeze(0)?)?),
        (
            "f64 div",
            a.to_dtype(DType::F64)?.div(&row.to_dtype(DType::F64)?)?,
        ),
        (
            "f16 add",
            a.to_dtype(DType::F16)?.add(&row.to_dtype(DType::F16)?)?,
        ),
    ] {
        rec(out, name, &t)?;
    }
    // Comparisons: U8 0/1, with broadcasting, on float and integer tensors.
    let lt = a.lt(&f32t(b, &[2.0, 2.0, 5.0], &[3])?)?;
    assert_eq!(lt.dtype(), DType::U8);
    exact(&lt, &[1.0, 0.0, 1.0, 0.0, 0.0, 0.0]);
    exact(
        &a.compare_scalar(tessera_tensor::CmpOp::Ge, 4.0)?,
        &[0.0, 0.0, 0.0, 1.0, 1.0, 1.0],
    );
    let ia = i64t(b, &[1, 5, 3], &[3])?;
    let ib = i64t(b, &[3], &[1])?;
    for (name, t) in [
        ("eq", ia.eq(&ib)?),
        ("ne", ia.ne(&ib)?),
        ("lt", ia.lt(&ib)?),
        ("le", ia.le(&ib)?),
        ("gt", ia.gt(&ib)?),
        ("ge", ia.ge(&ib)?),
        ("float lt", lt.clone()),
        (
            "transposed gt",
            a.t()?.gt(&a.t()?.mul_scalar(0.5)?.add_scalar(1.5)?)?,
        ),
    ] {
        rec(out, name, &t)?;
    }
    exact(&ia.le(&ib)?, &[1.0, 0.0, 1.0]);
    // where: condition, a and b broadcast together.
    let w = lt.where_cond(&a, &f32t(b, &[-1.0], &[1])?)?;
    exact(&w, &[1.0, -1.0, 3.0, -1.0, -1.0, -1.0]);
    rec(out, "where", &w)?;
    let wi = ia.gt(&ib)?.where_cond(&ia, &ib)?;
    exact(&wi, &[3.0, 5.0, 3.0]);
    rec(out, "where i64", &wi)?;
    let wt = a.t()?.gt(&mid)?.where_cond(&a.t()?, &row.unsqueeze(1)?)?;
    rec(out, "where of transposed views", &wt)?;
    assert!(matches!(
        a.where_cond(&a, &a),
        Err(Error::DType { op: "where", .. })
    ));
    Ok(())
}

fn reduce_family<B: Backend>(b: &B, out: &mut Outputs) -> Result<()> {
    let x = iota(b, &[2, 3, 4])?;
    exact(&x.sum_all()?, &[276.0]);
    assert_eq!(x.sum_all()?.shape(), &[] as &[usize]);
    exact(
        &x.sum(&[0], false)?,
        &(12..24).map(|i| (2 * i - 12) as f64).collect::<Vec<_>>(),
    );
    exact(&x.sum(&[1, 2], true)?, &[66.0, 210.0]);
    assert_eq!(x.sum(&[1, 2], true)?.shape(), &[2, 1, 1]);
    exact(&x.max(&[-1], false)?, &[3.0, 7.0, 11.0, 15.0, 19.0, 23.0]);
    exact(&x.min(&[0, 2], false)?, &[0.0, 4.0, 8.0]);
    exact(&x.mean(&[2], false)?, &[1.5, 5.5, 9.5, 13.5, 17.5, 21.5]);
    let am = x.argmax(-1, false)?;
    assert_eq!(am.dtype(), DType::I64);
    exact(&am, &[3.0; 6]);
    exact(&x.neg()?.argmax(1, true)?, &[0.0; 8]);
    exact(&x.argmin(0, false)?, &[0.0; 12]);
    let v = f32t(b, &[0.0, 1.0, 2.0, 3.0], &[4])?;
    close(&v.var(&[0], 1, false)?, &[5.0 / 3.0], 1e-6);
    close(&v.var(&[], 0, false)?, &[1.25], 1e-6);
    let mask = x.compare_scalar(tessera_tensor::CmpOp::Gt, 20.5)?;
    let count = mask.sum(&[], false)?;
    assert_eq!(count.dtype(), DType::I64);
    exact(&count, &[3.0]);
    let p = x.permute(&[2, 0, 1])?;
    for (name, t) in [
        ("sum 0", x.sum(&[0], false)?),
        ("sum 1,2 keep", x.sum(&[1, 2], true)?),
        ("sum all", x.sum_all()?),
        ("mean -1", x.mean(&[-1], true)?),
        ("max", x.max(&[1], false)?),
        ("min", x.min(&[0, 2], true)?),
        ("argmax", x.argmax(1, false)?),
        ("argmin", x.exp()?.neg()?.argmin(-1, true)?),
        ("var unbiased", x.exp()?.var(&[2], 1, false)?),
        ("var biased", x.var(&[0, 1], 0, true)?),
        ("u8 sum", count),
        ("sum of a permuted view", p.sum(&[0, 2], false)?),
        ("argmax of a permuted view", p.argmax(0, false)?),
        ("var of a permuted view", p.var(&[1], 1, true)?),
        ("f16 sum", x.to_dtype(DType::F16)?.sum(&[2], false)?),
        ("bf16 max", x.to_dtype(DType::BF16)?.max(&[0], false)?),
    ] {
        rec(out, name, &t)?;
    }
    assert!(matches!(x.sum(&[3], false), Err(Error::Axis { .. })));
    assert!(matches!(
        x.sum(&[1, -2], false),
        Err(Error::Argument { .. })
    ));
    Ok(())
}

fn matmul_family<B: Backend>(b: &B, out: &mut Outputs) -> Result<()> {
    let a = iota(b, &[2, 3])?;
    let m = a.matmul(&a.t()?)?;
    exact(&m, &[5.0, 14.0, 14.0, 50.0]);
    // [2, 1, 2, 3] @ [3, 3, 2] -> batch dims [2, 1] and [3] broadcast to [2, 3].
    let x = iota(b, &[2, 1, 2, 3])?;
    let y = iota(b, &[3, 3, 2])?.mul_scalar(0.5)?;
    let z = x.matmul(&y)?;
    assert_eq!(z.shape(), &[2, 3, 2, 2]);
    // One entry by hand: z[1, 2, 0, 1] = sum_k x[1, 0, 0, k] * y[2, k, 1].
    let by_hand: f64 = (0..3)
        .map(|k| (6 + k) as f64 * (0.5 * (12 + 2 * k + 1) as f64))
        .sum();
    assert_eq!(z.to_f64_vec()?[12 + 2 * 4 + 1], by_hand);
    let v = f32t(b, &[1.0, -1.0, 2.0], &[3])?;
    exact(&a.matmul(&v)?, &[3.0, 9.0]);
    exact(&v.matmul(&a.t()?)?, &[3.0, 9.0]);
    exact(&v.matmul(&v)?, &[6.0]);
    assert_eq!(v.matmul(&v)?.shape(), &[] as &[usize]);
    for (name, t) in [
        ("a a^T", m),
        ("broadcast batch", z),
        ("transposed both", a.t()?.matmul(&iota(b, &[3, 2])?.t()?)?),
        ("mat vec", a.matmul(&v)?),
        ("vec mat", v.matmul(&a.t()?)?),
        ("vec vec", v.matmul(&v)?),
        (
            "f64",
            a.to_dtype(DType::F64)?
                .matmul(&a.to_dtype(DType::F64)?.t()?)?,
        ),
        (
            "f16",
            a.to_dtype(DType::F16)?
                .matmul(&a.to_dtype(DType::F16)?.t()?)?,
        ),
        (
            "bf16",
            a.to_dtype(DType::BF16)?
                .t()?
                .matmul(&a.to_dtype(DType::BF16)?)?,
        ),
        (
            "expanded operand",
            a.matmul(&v.unsqueeze(1)?.broadcast_to(&[3, 4])?)?,
        ),
    ] {
        rec(out, name, &t)?;
    }
    Ok(())
}

fn softmax_family<B: Backend>(b: &B, out: &mut Outputs) -> Result<()> {
    let x = f32t(b, &[1.0, 2.0, 3.0, 1.0, 1.0, 1.0], &[2, 3])?;
    let s = x.softmax(-1)?;
    close(
        &s,
        &[
            0.09003057,
            0.24472847,
            0.66524096,
            1.0 / 3.0,
            1.0 / 3.0,
            1.0 / 3.0,
        ],
        1e-6,
    );
    close(
        &x.log_softmax(1)?,
        &[
            -2.40760596,
            -1.40760596,
            -0.40760596,
            -1.09861229,
            -1.09861229,
            -1.09861229,
        ],
        1e-6,
    );
    // Stable for large inputs.
    let big = f32t(b, &[1000.0, 1000.0], &[2])?;
    close(&big.softmax(0)?, &[0.5, 0.5], 1e-7);
    for (name, t) in [
        ("softmax -1", s),
        ("softmax 0", x.softmax(0)?),
        ("log_softmax 1", x.log_softmax(1)?),
        ("softmax of a transposed view", x.t()?.softmax(0)?),
        ("log_softmax f64", x.to_dtype(DType::F64)?.log_softmax(0)?),
        ("softmax bf16", x.to_dtype(DType::BF16)?.softmax(1)?),
    ] {
        rec(out, name, &t)?;
    }
    assert!(matches!(x.softmax(2), Err(Error::Axis { .. })));
    Ok(())
}

fn norm_family<B: Backend>(b: &B, out: &mut Outputs) -> Result<()> {
    let x = f32t(b, &[1.0, 2.0, 3.0, 4.0, 2.0, 2.0, 2.0, 6.0], &[2, 4])?;
    let r = 1.0 / (1.25f64 + 1e-5).sqrt();
    let y = x.layer_norm(&[4], None, None, 1e-5)?;
    close(
        &y.narrow(0, 0, 1)?,
        &[-1.5 * r, -0.5 * r, 0.5 * r, 1.5 * r],
        1e-5,
    );
    let w = f32t(b, &[1.0, 2.0, 0.5, -1.0], &[4])?;
    let bias = f32t(b, &[0.0, 0.1, 0.2, 0.3], &[4])?;
    let (yw, mean, rstd) = x.layer_norm_with_stats(&[4], Some(&w), Some(&bias), 1e-6)?;
    exact(&mean, &[2.5, 3.0]);
    assert_eq!(mean.shape(), &[2, 1]);
    close(
        &rstd,
        &[1.0 / (1.25f64 + 1e-6).sqrt(), 1.0 / (3.0f64 + 1e-6).sqrt()],
        1e-6,
    );
    let x3 = iota(b, &[2, 2, 3])?.square()?;
    let w3 = iota(b, &[2, 3])?.mul_scalar(0.1)?;
    for (name, t) in [
        ("layer_norm", y),
        ("layer_norm affine", yw),
        ("mean", mean),
        ("rstd", rstd),
        (
            "layer_norm 2 dims",
            x3.layer_norm(&[2, 3], Some(&w3), None, 1e-5)?,
        ),
        (
            "layer_norm of a permuted view",
            x3.permute(&[2, 0, 1])?
                .layer_norm(&[2, 2], None, None, 1e-5)?,
        ),
    ] {
        rec(out, name, &t)?;
    }
    assert!(matches!(
        x.layer_norm(&[3], None, None, 1e-5),
        Err(Error::Shape { .. })
    ));

    // Batch norm over [n=2, c=3, l=2].
    let bx = iota(b, &[2, 3, 2])?;
    let bn = bx.batch_norm_train(None, None, 1e-5)?;
    exact(&bn.mean, &[3.5, 5.5, 7.5]);
    exact(&bn.var, &[9.25, 9.25, 9.25]);
    close(&bn.rstd, &[1.0 / (9.25f64 + 1e-5).sqrt(); 3], 1e-6);
    let cw = f32t(b, &[1.0, 2.0, 3.0], &[3])?;
    let cb = f32t(b, &[0.0, -1.0, 1.0], &[3])?;
    let bnw = bx.batch_norm_train(Some(&cw), Some(&cb), 1e-5)?;
    let rm = f32t(b, &[1.0, 2.0, 3.0], &[3])?;
    let rv = f32t(b, &[4.0, 1.0, 0.25], &[3])?;
    let ev = bx.batch_norm_eval(&rm, &rv, Some(&cw), Some(&cb), 0.0)?;
    close(
        &ev.narrow(0, 0, 1)?,
        &[-0.5, 0.0, -1.0, 1.0, 7.0, 13.0],
        1e-6,
    );
    for (name, t) in [
        ("bn train", bn.output),
        ("bn train affine", bnw.output),
        ("bn var", bnw.var),
        ("bn eval", ev),
        (
            "bn train of a permuted view",
            bx.permute(&[2, 1, 0])?
                .batch_norm_train(None, None, 1e-5)?
                .output,
        ),
    ] {
        rec(out, name, &t)?;
    }
    assert!(matches!(
        bx.batch_norm_eval(&rm.narrow(0, 0, 2)?, &rv, None, None, 1e-5),
        Err(Error::Shape { .. })
    ));
    Ok(())
}

fn conv_family<B: Backend>(b: &B, out: &mut Outputs) -> Result<()> {
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

/// `sin`-like deterministic weights without a sin op: `tanh(x) - x/3`.
trait SinLike: Sized {
    fn sin_like(&self) -> Result<Self>;
}
impl<B: Backend> SinLike for Tensor<B> {
    fn sin_like(&self) -> Result<Self> {
        self.tanh()?.sub(&self.mul_scalar(1.0 / 3.0)?)
    }
}

fn pool_family<B: Backend>(b: &B, out: &mut Outputs) -> Result<()> {
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

fn index_family<B: Backend>(b: &B, out: &mut Outputs) -> Result<()> {
    let x = iota(b, &[3, 4])?;
    let rows = x.index_select(0, &i64t(b, &[2, 0], &[2])?)?;
    exact(&rows, &[8.0, 9.0, 10.0, 11.0, 0.0, 1.0, 2.0, 3.0]);
    let cols = x.index_select(-1, &i64t(b, &[3, 3, 1], &[3])?)?;
    assert_eq!(cols.shape(), &[3, 3]);
    exact(&cols, &[3.0, 3.0, 1.0, 7.0, 7.0, 5.0, 11.0, 11.0, 9.0]);
    let idx = i64t(b, &[0, 3, 1, 1, 2, 0], &[3, 2])?;
    let g = x.gather(1, &idx)?;
    exact(&g, &[0.0, 3.0, 5.0, 5.0, 10.0, 8.0]);
    let src = Tensor::ones(&[3, 2], DType::F32, b)?;
    let s = Tensor::zeros(&[3, 4], DType::F32, b)?.scatter_add(1, &idx, &src)?;
    exact(
        &s,
        &[1.0, 0.0, 0.0, 1.0, 0.0, 2.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0],
    );
    let s0 = x.scatter_add(0, &i64t(b, &[2, 2, 2, 2], &[1, 4])?, &iota(b, &[1, 4])?)?;
    exact(
        &s0,
        &[
            0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 10.0, 12.0, 14.0,
        ],
    );
    assert!(x.index_select(0, &i64t(b, &[3], &[1])?).is_err());
    assert!(x.gather(1, &i64t(b, &[4], &[1, 1])?).is_err());
    assert!(x.index_select(0, &f32t(b, &[0.0], &[1])?).is_err());
    // Views as inputs and as indices.
    let xt = iota(b, &[4, 3])?.t()?; // [3, 4] transposed
    let it = i64t(b, &[1, 0, 3, 2, 2, 1], &[2, 3])?.t()?; // [3, 2] transposed
    let ie = i64t(b, &[1], &[1])?.broadcast_to(&[3])?; // stride 0
    for (name, t) in [
        ("index_select rows", rows),
        ("index_select cols", cols),
        ("gather", g),
        ("scatter_add", s),
        ("scatter_add 0", s0),
        ("index_select view", xt.index_select(1, &ie)?),
        ("gather view", xt.gather(1, &it)?),
        (
            "scatter_add view",
            xt.scatter_add(1, &it, &xt.narrow(1, 1, 2)?)?,
        ),
        (
            "f64 gather",
            x.to_dtype(DType::F64)?
                .gather(0, &i64t(b, &[2, 1, 0, 2], &[1, 4])?)?,
        ),
    ] {
        rec(out, name, &t)?;
    }
    Ok(())
}

fn concat_family<B: Backend>(b: &B, out: &mut Outputs) -> Result<()> {
    let a = iota(b, &[2, 3])?;
    let c = f32t(b, &[-1.0, -2.0, -3.0], &[1, 3])?;
    let r = Tensor::cat(&[a.clone(), c.clone()], 0)?;
    exact(&r, &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, -1.0, -2.0, -3.0]);
    let r1 = Tensor::cat(&[a.clone(), a.narrow(1, 0, 1)?], -1)?;
    exact(&r1, &[0.0, 1.0, 2.0, 0.0, 3.0, 4.0, 5.0, 3.0]);
    let st = Tensor::stack(&[a.clone(), a.mul_scalar(10.0)?], -1)?;
    assert_eq!(st.shape(), &[2, 3, 2]);
    exact(&st.narrow(0, 0, 1)?, &[0.0, 0.0, 1.0, 10.0, 2.0, 20.0]);
    let s0 = Tensor::stack(&[a.clone(), a.clone()], 0)?;
    assert_eq!(s0.shape(), &[2, 2, 3]);
    let big = iota(b, &[5, 3])?;
    let parts = big.split(2, 0)?;
    assert_eq!(
        parts.iter().map(|p| p.shape()[0]).collect::<Vec<_>>(),
        [2, 2, 1]
    );
    assert!(parts.iter().all(|p| p.shares_storage_with(&big)));
    exact(&parts[2], &[12.0, 13.0, 14.0]);
    let sz = big.split_sizes(&[1, 4], 0)?;
    assert_eq!(sz[1].shape(), &[4, 3]);
    assert!(big.split_sizes(&[1, 3], 0).is_err());
    let ch = big.chunk(2, 1)?;
    assert_eq!(ch.iter().map(|p| p.shape()[1]).collect::<Vec<_>>(), [2, 1]);
    exact(&ch[1], &[2.0, 5.0, 8.0, 11.0, 14.0]);
    assert_eq!(
        Tensor::cat(&big.split(2, 0)?, 0)?.to_f64_vec()?,
        big.to_f64_vec()?
    );
    assert!(matches!(
        Tensor::cat(&[a.clone(), iota(b, &[2, 2])?], 0),
        Err(Error::Shape { .. })
    ));
    assert!(Tensor::stack(&[a.clone(), c.clone()], 0).is_err());
    assert!(Tensor::cat(&[a.clone(), a.to_dtype(DType::F64)?], 0).is_err());
    for (name, t) in [
        ("cat 0", r),
        ("cat -1", r1),
        ("stack -1", st),
        ("stack 0", s0),
        (
            "cat of views",
            Tensor::cat(&[a.t()?, c.t()?, a.t()?.exp()?], 1)?,
        ),
        (
            "stack of views",
            Tensor::stack(&[a.t()?, iota(b, &[3, 2])?.slice(0, 0, 3, 1)?], 1)?,
        ),
        (
            "cat i64",
            Tensor::cat(&[i64t(b, &[1, 2], &[2])?, i64t(b, &[3], &[1])?], 0)?,
        ),
        ("split piece", parts[1].clone()),
        ("chunk piece", ch[0].clone()),
        ("split_sizes piece", sz[1].clone()),
    ] {
        rec(out, name, &t)?;
    }
    Ok(())
}

fn pad_family<B: Backend>(b: &B, out: &mut Outputs) -> Result<()> {
    let x = iota(b, &[1, 2, 3])?;
    let p = x.pad(&[1, 2], -1.0)?;
    assert_eq!(p.shape(), &[1, 2, 6]);
    exact(
        &p,
        &[
            -1.0, 0.0, 1.0, 2.0, -1.0, -1.0, -1.0, 3.0, 4.0, 5.0, -1.0, -1.0,
        ],
    );
    let p2 = x.pad(&[0, 1, 1, 0], 0.0)?;
    assert_eq!(p2.shape(), &[1, 3, 4]);
    exact(
        &p2,
        &[0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 2.0, 0.0, 3.0, 4.0, 5.0, 0.0],
    );
    assert!(x.pad(&[1, 1, 1, 1, 1, 1, 1, 1], 0.0).is_err());
    for (name, t) in [
        ("pad last", p),
        ("pad two", p2),
        ("pad all three", x.pad(&[1, 0, 0, 1, 2, 0], 7.5)?),
        (
            "pad of a transposed view",
            x.permute(&[2, 1, 0])?.pad(&[2, 2], 3.0)?,
        ),
        ("pad i64", i64t(b, &[1, 2], &[2])?.pad(&[1, 1], 9.0)?),
    ] {
        rec(out, name, &t)?;
    }
    Ok(())
}

fn interpolate_family<B: Backend>(b: &B, out: &mut Outputs) -> Result<()> {
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

fn copy_family<B: Backend>(b: &B, out: &mut Outputs) -> Result<()> {
    let x = f32t(b, &[-1.5, 0.25, 2.75, 300.0, -0.0, 1e-8], &[2, 3])?;
    assert!(x.to_dtype(DType::F32)?.shares_storage_with(&x));
    exact(&x.to_dtype(DType::I64)?, &[-1.0, 0.0, 2.0, 300.0, 0.0, 0.0]);
    exact(
        &x.abs()?.to_dtype(DType::U8)?,
        &[1.0, 0.0, 2.0, 255.0, 0.0, 0.0],
    );
    assert_eq!(x.to_dtype(DType::F16)?.dtype(), DType::F16);
    exact(
        &i64t(b, &[3, -4], &[2])?.to_dtype(DType::F32)?,
        &[3.0, -4.0],
    );
    assert!(x.to_vec::<f64>().is_err());
    assert_eq!(
        x.to_vec::<f32>()?,
        vec![-1.5, 0.25, 2.75, 300.0, -0.0, 1e-8]
    );
    // contiguous copies a view, keeps a contiguous tensor.
    let t = x.t()?;
    assert!(!t.is_contiguous());
    let tc = t.contiguous()?;
    assert!(tc.is_contiguous() && !tc.shares_storage_with(&x));
    exact(&tc, &[-1.5, 300.0, 0.25, -0.0, 2.75, 1e-8f32 as f64]);
    assert!(x.contiguous()?.shares_storage_with(&x));
    assert!(!x.copy()?.shares_storage_with(&x));
    // reshape: a view when possible, else a copy.
    let r = x.reshape(&[3, 2])?;
    assert!(r.shares_storage_with(&x));
    let rt = t.reshape(&[6])?;
    assert!(!rt.shares_storage_with(&x));
    assert_eq!(rt.to_f64_vec()?, tc.to_f64_vec()?);
    assert_eq!(x.reshape(&[usize::MAX, 2])?.shape(), &[3, 2]);
    assert!(matches!(x.reshape(&[4, 2]), Err(Error::Shape { .. })));
    let big = iota(b, &[2, 3, 4])?;
    let fl = big.permute(&[1, 0, 2])?.flatten(0, 1)?;
    assert_eq!(fl.shape(), &[6, 4]);
    // Views.
    exact(&big.select(1, 2)?.select(0, 1)?, &[20.0, 21.0, 22.0, 23.0]);
    exact(
        &big.slice(2, 1, 100, 2)?.select(0, 0)?.select(0, 0)?,
        &[1.0, 3.0],
    );
    let e = f32t(b, &[1.0, 2.0], &[2, 1])?.broadcast_to(&[2, 3])?;
    exact(&e, &[1.0, 1.0, 1.0, 2.0, 2.0, 2.0]);
    exact(&e.contiguous()?, &[1.0, 1.0, 1.0, 2.0, 2.0, 2.0]);
    exact(
        &big.as_strided(&[2, 2], &[1, 12], 3)?,
        &[3.0, 15.0, 4.0, 16.0],
    );
    assert!(big.as_strided(&[2, 2], &[1, 12], 12).is_err());
    assert_eq!(big.unsqueeze(-1)?.squeeze(3)?.shape(), &[2, 3, 4]);
    assert!(big.squeeze(0).is_err());
    // Constructors.
    exact(&Tensor::full(&[2], 1.5, DType::BF16, b)?, &[1.5, 1.5]);
    assert_eq!(Tensor::scalar(4.0, DType::F64, b)?.item()?, 4.0);
    assert!(big.item().is_err());
    exact(&Tensor::arange(4, DType::I64, b)?, &[0.0, 1.0, 2.0, 3.0]);
    exact(
        &x.zeros_like()?
            .add(&x.ones_like()?)?
            .add(&x.full_like(2.0)?)?,
        &[3.0; 6],
    );
    for (name, t) in [
        ("to f16", x.to_dtype(DType::F16)?),
        ("to bf16", x.to_dtype(DType::BF16)?),
        ("to f64", x.to_dtype(DType::F64)?),
        ("to i64", x.to_dtype(DType::I64)?),
        ("view to f16", t.to_dtype(DType::F16)?),
        ("contiguous", tc),
        ("reshape copy", rt),
        ("flatten copy", fl),
        ("broadcast copy", e.contiguous()?),
        (
            "strided copy",
            big.slice(1, 0, 3, 2)?.permute(&[2, 0, 1])?.copy()?,
        ),
    ] {
        rec(out, name, &t)?;
    }
    Ok(())
}

fn rng_family<B: Backend>(b: &B, out: &mut Outputs) -> Result<()> {
    let mut rng = Rng::new(7);
    let u = Tensor::rand_uniform(&[3, 4], -2.0, 3.0, DType::F32, &mut rng, b)?;
    let n = Tensor::randn(&[500], 1.0, 2.0, DType::F64, &mut rng, b)?;
    let tn = Tensor::trunc_normal(&[200], 0.0, 1.0, -0.5, 0.5, DType::F32, &mut rng, b)?;
    assert!(u.to_f64_vec()?.iter().all(|&v| (-2.0..3.0).contains(&v)));
    assert!(tn.to_f64_vec()?.iter().all(|&v| (-0.5..=0.5).contains(&v)));
    let mean = n.mean(&[], false)?.item()?;
    assert!((mean - 1.0).abs() < 0.3, "randn mean {mean}");
    // Same seed, same stream.
    let mut again = Rng::new(7);
    let u2 = Tensor::rand_uniform(&[3, 4], -2.0, 3.0, DType::F32, &mut again, b)?;
    assert_eq!(u.to_f64_vec()?, u2.to_f64_vec()?);
    for (name, t) in [("uniform", u), ("normal", n), ("trunc normal", tn)] {
        rec(out, name, &t)?;
    }
    Ok(())
}

type Family<B> = fn(&B, &mut Outputs) -> Result<()>;

/// A family's outputs, or why it failed (an error or a panic).
type FamilyResult = std::result::Result<Outputs, String>;

/// Every family, by name, for one backend.
fn families<B: Backend>() -> Vec<(&'static str, Family<B>)> {
    vec![
        ("unary", unary_family::<B>),
        ("binary", binary_family::<B>),
        ("reduce", reduce_family::<B>),
        ("matmul", matmul_family::<B>),
        ("softmax", softmax_family::<B>),
        ("norm", norm_family::<B>),
        ("conv", conv_family::<B>),
        ("pool", pool_family::<B>),
        ("index", index_family::<B>),
        ("concat", concat_family::<B>),
        ("pad", pad_family::<B>),
        ("interpolate", interpolate_family::<B>),
        ("copy", copy_family::<B>),
        ("rng", rng_family::<B>),
    ]
}

/// Runs the whole suite on `b`: each family's outputs, or why it failed (an error or a
/// panic), so that one unfinished family does not hide the others.
fn suite<B: Backend>(b: &B) -> Vec<(&'static str, FamilyResult)> {
    families::<B>()
        .into_iter()
        .map(|(name, f)| (name, run(b, f)))
        .collect()
}

fn run<B: Backend>(b: &B, f: Family<B>) -> FamilyResult {
    let mut out = Outputs::new();
    match catch_unwind(AssertUnwindSafe(|| f(b, &mut out))) {
        Ok(Ok(())) => Ok(out),
        Ok(Err(e)) => Err(format!("error: {e}")),
        Err(p) => Err(format!(
            "panic: {}",
            p.downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        )),
    }
}

/// Families whose CPU path is a fused override of a composite op (softmax, layer norm): the
/// counting backend runs the composite default, so the two agree to a few ulps, not bit for
/// bit. Every other family runs the same primitive kernels on both and must be bit-exact.
const FUSED_ON_CPU: &[&str] = &["softmax", "norm"];

/// True if `p` and `q` agree to a few ulps of `dtype` (NaN equal to NaN).
fn ulps_close(p: f64, q: f64, dtype: DType) -> bool {
    let eps = match dtype {
        DType::F64 => f64::EPSILON,
        DType::F32 => f32::EPSILON as f64,
        _ => 1e-2,
    };
    (p.is_nan() && q.is_nan()) || p == q || (p - q).abs() <= 8.0 * eps * q.abs().max(1.0)
}

/// Equality of two runs: bit-exact, or within a few ulps for [`FUSED_ON_CPU`] families.
fn assert_same(family: &str, a: &Outputs, b: &Outputs) {
    assert_eq!(a.len(), b.len(), "{family}: different number of outputs");
    for ((na, sa, da), (nb, sb, db)) in a.iter().zip(b) {
        assert_eq!(na, nb);
        assert_eq!(sa, sb, "{family}/{na}: shapes differ");
        assert_eq!(da.dtype(), db.dtype(), "{family}/{na}: dtypes differ");
        let (x, y) = (da.to_f64_vec(), db.to_f64_vec());
        assert_eq!(x.len(), y.len(), "{family}/{na}: lengths differ");
        let fused = FUSED_ON_CPU.contains(&family);
        assert!(
            x.iter()
                .zip(&y)
                .all(|(p, q)| p.to_bits() == q.to_bits()
                    || (fused && ulps_close(*p, *q, da.dtype()))),
            "{family}/{na}: cpu {x:?} vs counting {y:?}"
        );
    }
}

/// Runs one family on both backends and compares.
fn both(family: &str) {
    let (_, fc) = families::<Cpu>()
        .into_iter()
        .find(|(n, _)| *n == family)
        .unwrap();
    let (_, fo) = families::<Counting>()
        .into_iter()
        .find(|(n, _)| *n == family)
        .unwrap();
    let cpu = run(&Cpu, fc).unwrap_or_else(|e| panic!("{family} on cpu: {e}"));
    let counting = Counting::new();
    let opaque = run(&counting, fo).unwrap_or_else(|e| panic!("{family} on counting: {e}"));
    assert!(!cpu.is_empty());
    assert_same(family, &cpu, &opaque);
    // Results left the opaque backend only through `to_host`.
    assert!(counting.count("to_host") >= opaque.len());
}

macro_rules! family_tests {
    ($($test:ident => $family:literal;)*) => {$(
        #[test]
        fn $test() {
            both($family);
        }
    )*};
}

family_tests! {
    unary_ops_agree => "unary";
    binary_compare_where_agree => "binary";
    reductions_agree => "reduce";
    matmul_agrees => "matmul";
    softmax_agrees => "softmax";
    layer_and_batch_norm_agree => "norm";
    conv2d_and_backward_agree => "conv";
    pooling_agrees => "pool";
    index_gather_scatter_agree => "index";
    cat_stack_split_chunk_agree => "concat";
    pad_agrees => "pad";
    bicubic_interpolate_agrees => "interpolate";
    casts_copies_and_views_agree => "copy";
    rng_agrees => "rng";
}

/// The whole suite on the counting backend touches every primitive of the trait.
#[test]
fn whole_suite_covers_every_primitive() {
    let counting = Counting::new();
    let results = suite(&counting);
    let failed: Vec<String> = results
        .iter()
        .filter_map(|(n, r)| r.as_ref().err().map(|e| format!("{n}: {e}")))
        .collect();
    let cpu = suite(&Cpu);
    for ((name, o), (_, c)) in results.iter().zip(&cpu) {
        if let (Ok(o), Ok(c)) = (o, c) {
            assert_same(name, c, o);
        }
    }
    let counts = counting.counts();
    let primitives = [
        "from_host",
        "to_host",
        "copy_into",
        "cast",
        "unary",
        "binary",
        "compare",
        "where_cond",
        "reduce",
        "matmul",
        "index_select",
        "gather",
        "scatter_add",
        "im2col",
        "col2im",
        "max_pool2d",
        "avg_pool2d",
        "avg_pool2d_backward",
        "adaptive_avg_pool2d",
        "adaptive_avg_pool2d_backward",
        "upsample_bicubic2d",
        "upsample_bicubic2d_backward",
    ];
    let missing: Vec<&str> = primitives
        .iter()
        .copied()
        .filter(|p| counts.get(p).copied().unwrap_or(0) == 0)
        .collect();
    assert!(
        failed.is_empty() && missing.is_empty(),
        "families failed: {failed:#?}\nprimitives never run: {missing:?}\ncounts: {counts:?}"
    );
}

// --------------------------------------------------------------- composites from primitives

fn input(c: &Counting, shape: &[usize]) -> Tensor<Counting> {
    let n: usize = shape.iter().product();
    Tensor::from_vec((0..n).map(|i| (i as f32 * 0.7).cos()).collect(), shape, c).unwrap()
}

#[test]
fn composites_are_built_from_primitives_on_the_device() {
    let c = Counting::new();
    let x = input(&c, &[3, 5]);
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

    // And the composites' values equal the CPU's: bit for bit where the CPU runs the same
    // composite, within a few ulps where it runs a fused override (softmax, GELU).
    let on_cpu =
        |t: &Tensor<Counting>| Tensor::from_host(t.to_host().unwrap(), t.shape(), &Cpu).unwrap();
    let (xc, kc, imgc) = (on_cpu(&x), on_cpu(&k), on_cpu(&img));
    let same = |a: Tensor<Counting>, b: Tensor<Cpu>| {
        assert_eq!(a.to_host().unwrap(), b.to_host().unwrap());
    };
    let close = |a: Tensor<Counting>, b: Tensor<Cpu>| {
        let (p, q) = (a.to_f64_vec().unwrap(), b.to_f64_vec().unwrap());
        assert!(
            p.iter().zip(&q).all(|(p, q)| ulps_close(*p, *q, a.dtype())),
            "{p:?} vs {q:?}"
        );
    };
    close(x.softmax(1).unwrap(), xc.softmax(1).unwrap());
    close(x.gelu().unwrap(), xc.gelu().unwrap());
    same(
        img.conv2d(&k, None, &ConvOptions::new(1, 1)).unwrap(),
        imgc.conv2d(&kc, None, &ConvOptions::new(1, 1)).unwrap(),
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
