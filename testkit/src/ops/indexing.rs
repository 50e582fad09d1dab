//! Families of indexing, joining and padding: index_select/gather/scatter_add,
//! cat/stack/split/chunk and pad.

use super::support::*;
use tessera_tensor::{Backend, DType, Error, Result, Tensor};

/// `index_select`, `gather` and `scatter_add`, with out-of-range indices as errors.
pub fn index_family<B: Backend>(b: &B, out: &mut Outputs) -> Result<()> {
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

/// `cat`, `stack`, `split` and `chunk`.
pub fn concat_family<B: Backend>(b: &B, out: &mut Outputs) -> Result<()> {
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

/// Constant padding of the trailing axes.
pub fn pad_family<B: Backend>(b: &B, out: &mut Outputs) -> Result<()> {
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
