//! Families of elementwise ops, copies and random fills: unary, binary (with compare and
//! `where_cond`), casts/copies/views and the RNG.

use super::support::*;
use tessera_tensor::{Backend, DType, Error, Result, Rng, Tensor};

/// The unary family: every `UnaryOp`, scalar affine ops, clamp and GELU (exact and tanh), on views and in f64/f16/bf16; integer inputs are dtype errors.
pub fn unary_family<B: Backend>(b: &B, out: &mut Outputs) -> Result<()> {
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
    // PyTorch 2.9.1: F.gelu(x, approximate="tanh")
    close(
        &x.gelu_tanh()?,
        &[
            -0.04540231,
            -0.15428599,
            0.0,
            0.34571401,
            0.84119199,
            2.99636261,
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
        ("gelu_tanh", x.gelu_tanh()?),
        ("exp of a transposed view", x.t()?.exp()?),
        ("gelu of a transposed view", x.t()?.gelu()?),
        ("gelu_tanh of a transposed view", x.t()?.gelu_tanh()?),
        ("f64 tanh", x.to_dtype(DType::F64)?.tanh()?),
        ("f16 exp", x.to_dtype(DType::F16)?.exp()?),
        ("bf16 gelu", x.to_dtype(DType::BF16)?.gelu()?),
        ("f16 gelu_tanh", x.to_dtype(DType::F16)?.gelu_tanh()?),
        ("f64 gelu_tanh backward", {
            let x = x.to_dtype(DType::F64)?;
            x.gelu_tanh_backward(&x.affine(0.5, 1.0)?)?
        }),
    ];
    for (name, t) in &all {
        rec(out, name, t)?;
    }
    // Integer tensors have no float kernels: a dtype error, not a panic.
    let i = i64t(b, &[1, 2], &[2])?;
    assert!(matches!(i.exp(), Err(Error::DType { .. })));
    assert!(matches!(i.gelu(), Err(Error::DType { .. })));
    assert!(matches!(i.gelu_tanh(), Err(Error::DType { .. })));
    Ok(())
}

/// The binary family: arithmetic with broadcasting, comparisons (U8 results) and `where_cond`, on views and in several dtypes.
pub fn binary_family<B: Backend>(b: &B, out: &mut Outputs) -> Result<()> {
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

/// Casts, contiguous copies, reshapes, views (select, slice, broadcast, as_strided) and constructors.
pub fn copy_family<B: Backend>(b: &B, out: &mut Outputs) -> Result<()> {
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

/// Random fills (uniform, normal, truncated normal): ranges, moments, and the same stream from the same seed.
pub fn rng_family<B: Backend>(b: &B, out: &mut Outputs) -> Result<()> {
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
