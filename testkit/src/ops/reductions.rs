//! Families of reductions and the ops built on them: reduce, matmul, softmax, norms.

use super::support::*;
use tessera_tensor::{Backend, DType, Error, Result};

/// Sum, mean, max, min, argmax and variance over axis sets, with `keepdim`, on views.
pub fn reduce_family<B: Backend>(b: &B, out: &mut Outputs) -> Result<()> {
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
    // Σ i² for i < 24, in one rank-0 value of the input's dtype.
    exact(&x.sum_of_squares()?, &[4324.0]);
    assert_eq!(x.sum_of_squares()?.shape(), &[] as &[usize]);
    assert!(count.sum_of_squares().is_err());
    for (name, t) in [
        ("sum of squares", x.mul_scalar(0.1)?.sum_of_squares()?),
        ("sum of squares of a permuted view", p.sum_of_squares()?),
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

/// Matrix products: 2-d, batched, broadcast batch dims, transposed operands.
pub fn matmul_family<B: Backend>(b: &B, out: &mut Outputs) -> Result<()> {
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
    // A linear layer's weight and bias gradients: `dYᵀ X` and the row sums of `dYᵀ`.
    let (dw, db) = a.t()?.matmul_row_sums(&iota(b, &[2, 4])?)?;
    exact(&dw, &a.t()?.matmul(&iota(b, &[2, 4])?)?.to_f64_vec()?);
    exact(&db, &[3.0, 5.0, 7.0]);
    assert!(a.matmul_row_sums(&a).is_err());
    for (name, t) in [
        ("a^T x, row sums: product", dw),
        ("a^T x, row sums: sums", db),
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

/// Softmax and log-softmax along every axis, with large values (stability).
pub fn softmax_family<B: Backend>(b: &B, out: &mut Outputs) -> Result<()> {
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

/// Layer norm and batch norm (training statistics and evaluation).
pub fn norm_family<B: Backend>(b: &B, out: &mut Outputs) -> Result<()> {
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
