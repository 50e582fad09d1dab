//! Fused layer norm (with backward) and batch norm (kernels: `kernels/norm.cu`).
//! CPU counterpart: `tensor/src/ops/norm/cpu.rs` (fused layer norm) and the composite
//! defaults of `tensor/src/backend/composite.rs` (backward, batch norm apply).
//!
//! Layer norm works on rows: the leading dims form a kept layout, the normalized dims an inner
//! one (both merged); a warp per row up to 1024 elements, a block beyond. Cases the kernels do
//! not take (mismatched shapes or dtypes, empty rows, views beyond the kernel layouts) go to
//! the composite default, which reports any error.

use crate::driver::{arg, LaunchConfig};
use crate::launch::{count, grid_stride, suffix};
use crate::layout::KernelLayout;
use crate::ops::softmax::row_launch;
use crate::storage::{check_view, CudaStorage};
use crate::Cuda;
use std::sync::Arc;
use tessera_tensor::backend::composite;
use tessera_tensor::{Layout, Result, Tensor};

const MODULE: &str = "norm";

/// Kernel layouts of dims `[..split]` (with the view's offset) and `[split..]` (offset 0).
fn split_at(op: &'static str, l: &Layout, split: usize) -> Option<(KernelLayout, KernelLayout)> {
    let (s, st) = (l.shape(), l.strides());
    let [k] = KernelLayout::merged(
        op,
        [&Layout::from_parts(&s[..split], &st[..split], l.offset())],
    )
    .ok()?;
    let [i] = KernelLayout::merged(op, [&Layout::from_parts(&s[split..], &st[split..], 0)]).ok()?;
    Some((k, i))
}

/// A parameter view (weight, bias) as a kernel layout and pointer; null when absent.
fn param(
    op: &'static str,
    dev: &Cuda,
    p: Option<&Tensor<Cuda>>,
    x: &Tensor<Cuda>,
) -> Result<Option<(KernelLayout, u64)>> {
    let Some(p) = p else {
        return Ok(Some((KernelLayout::flat(op, 0)?, 0)));
    };
    check_view(dev, op, p.storage(), p.layout(), Some(x.dtype()))?;
    Ok(KernelLayout::merged(op, [p.layout()])
        .ok()
        .map(|[k]| (k, p.storage().base())))
}

type Norm = (Tensor<Cuda>, Tensor<Cuda>, Tensor<Cuda>);

fn layer_norm_fused(
    dev: &Cuda,
    x: &Tensor<Cuda>,
    weight: Option<&Tensor<Cuda>>,
    bias: Option<&Tensor<Cuda>>,
    k: usize,
    eps: f64,
) -> Result<Option<Norm>> {
    const OP: &str = "layer_norm";
    let l = x.layout();
    check_view(dev, OP, x.storage(), l, None)?;
    let r = l.rank();
    if !x.dtype().is_float() || k == 0 || k > r {
        return Ok(None);
    }
    let d: usize = l.shape()[r - k..].iter().product();
    let rows = l.numel().checked_div(d).unwrap_or(0);
    if rows == 0
        || [weight, bias]
            .iter()
            .flatten()
            .any(|p| p.shape() != &l.shape()[r - k..])
    {
        return Ok(None);
    }
    let (Some((xk, xi)), Some((wl, wp)), Some((bl, bp))) = (
        split_at(OP, l, r - k),
        param(OP, dev, weight, x)?,
        param(OP, dev, bias, x)?,
    ) else {
        return Ok(None);
    };
    let mut stat_shape = l.shape().to_vec();
    stat_shape[r - k..].iter_mut().for_each(|s| *s = 1);
    let dt = x.dtype();
    let (y, mean, rstd) = (
        CudaStorage::uninit(dev, l.numel(), dt)?,
        CudaStorage::uninit(dev, rows, dt)?,
        CudaStorage::uninit(dev, rows, dt)?,
    );
    let (variant, cfg) = row_launch(dev, false, rows, d);
    let (xp, yp, mp, rp) = (x.storage().base(), y.base(), mean.base(), rstd.base());
    let (nrows, nd) = (count(OP, rows)?, count(OP, d)?);
    // SAFETY: every view was checked against its storage; the outputs hold numel / rows.
    unsafe {
        dev.inner.launch(
            MODULE,
            &format!("ts_layer_norm_{variant}_{}", suffix(dt)),
            &cfg,
            &mut [
                arg(&xk),
                arg(&xi),
                arg(&xp),
                arg(&wl),
                arg(&wp),
                arg(&bl),
                arg(&bp),
                arg(&yp),
                arg(&mp),
                arg(&rp),
                arg(&nrows),
                arg(&nd),
                arg(&eps),
            ],
        )?;
    }
    let t = |s: CudaStorage, shape: &[usize]| {
        Tensor::from_parts(Arc::new(s), Layout::contiguous(shape), dev.clone())
    };
    Ok(Some((
        t(y, l.shape())?,
        t(mean, &stat_shape)?,
        t(rstd, &stat_shape)?,
    )))
}

pub fn layer_norm(
    dev: &Cuda,
    x: &Tensor<Cuda>,
    weight: Option<&Tensor<Cuda>>,
    bias: Option<&Tensor<Cuda>>,
    normalized_rank: usize,
    eps: f64,
) -> Result<(Tensor<Cuda>, Tensor<Cuda>, Tensor<Cuda>)> {
    match layer_norm_fused(dev, x, weight, bias, normalized_rank, eps)? {
        Some(r) => Ok(r),
        None => composite::layer_norm(x, weight, bias, normalized_rank, eps),
    }
}

fn layer_norm_backward_fused(
    dev: &Cuda,
    x: &Tensor<Cuda>,
    mean: &Tensor<Cuda>,
    rstd: &Tensor<Cuda>,
    weight: Option<&Tensor<Cuda>>,
    grad: &Tensor<Cuda>,
    k: usize,
) -> Result<Option<Tensor<Cuda>>> {
    const OP: &str = "layer_norm_backward";
    let l = x.layout();
    let dt = x.dtype();
    check_view(dev, OP, x.storage(), l, None)?;
    for t in [mean, rstd, grad] {
        check_view(dev, OP, t.storage(), t.layout(), Some(dt))?;
    }
    let r = l.rank();
    if !dt.is_float() || k == 0 || k > r || grad.shape() != l.shape() {
        return Ok(None);
    }
    let mut stat_shape = l.shape().to_vec();
    stat_shape[r - k..].iter_mut().for_each(|s| *s = 1);
    let d: usize = l.shape()[r - k..].iter().product();
    let rows = l.numel().checked_div(d).unwrap_or(0);
    if rows == 0
        || mean.shape() != stat_shape
        || rstd.shape() != stat_shape
        || weight.is_some_and(|w| w.shape() != &l.shape()[r - k..])
    {
        return Ok(None);
    }
    let (Some((xk, xi)), Some((gk, gi)), Some((mk, _)), Some((rk, _)), Some((wl, wp))) = (
        split_at(OP, l, r - k),
        split_at(OP, grad.layout(), r - k),
        split_at(OP, mean.layout(), r - k),
        split_at(OP, rstd.layout(), r - k),
        param(OP, dev, weight, x)?,
    ) else {
        return Ok(None);
    };
    let dx = CudaStorage::uninit(dev, l.numel(), dt)?;
    let (variant, cfg) = row_launch(dev, false, rows, d);
    let (xp, gp, mp, rp, op) = (
        x.storage().base(),
        grad.storage().base(),
        mean.storage().base(),
        rstd.storage().base(),
        dx.base(),
    );
    let (nrows, nd) = (count(OP, rows)?, count(OP, d)?);
    // SAFETY: every view was checked against its storage; the output holds numel elements.
    unsafe {
        dev.inner.launch(
            MODULE,
            &format!("ts_layer_norm_bwd_{variant}_{}", suffix(dt)),
            &cfg,
            &mut [
                arg(&xk),
                arg(&xi),
                arg(&xp),
                arg(&gk),
                arg(&gi),
                arg(&gp),
                arg(&mk),
                arg(&mp),
                arg(&rk),
                arg(&rp),
                arg(&wl),
                arg(&wp),
                arg(&op),
                arg(&nrows),
                arg(&nd),
            ],
        )?;
    }
    Ok(Some(Tensor::from_parts(
        Arc::new(dx),
        Layout::contiguous(l.shape()),
        dev.clone(),
    )?))
}

pub fn layer_norm_backward(
    dev: &Cuda,
    x: &Tensor<Cuda>,
    mean: &Tensor<Cuda>,
    rstd: &Tensor<Cuda>,
    weight: Option<&Tensor<Cuda>>,
    grad: &Tensor<Cuda>,
    normalized_rank: usize,
) -> Result<Tensor<Cuda>> {
    match layer_norm_backward_fused(dev, x, mean, rstd, weight, grad, normalized_rank)? {
        Some(t) => Ok(t),
        None => composite::layer_norm_backward(x, mean, rstd, weight, grad, normalized_rank),
    }
}

fn batch_norm_fused(
    dev: &Cuda,
    x: &Tensor<Cuda>,
    params: [Option<&Tensor<Cuda>>; 4],
) -> Result<Option<Tensor<Cuda>>> {
    const OP: &str = "batch_norm_apply";
    let (l, dt) = (x.layout(), x.dtype());
    check_view(dev, OP, x.storage(), l, None)?;
    if !dt.is_float() || l.rank() < 2 {
        return Ok(None);
    }
    let c = l.shape()[1];
    // (pointer, offset, stride) of each per-channel vector; null for an absent weight/bias.
    let mut vecs = [(0u64, 0i64, 0i64); 4];
    for (v, p) in vecs.iter_mut().zip(params) {
        let Some(p) = p else { continue };
        check_view(dev, OP, p.storage(), p.layout(), Some(dt))?;
        if p.shape() != [c] {
            return Ok(None);
        }
        *v = (
            p.storage().base(),
            count(OP, p.layout().offset())?,
            count(OP, p.layout().strides()[0])?,
        );
    }
    let out_l = Layout::contiguous(l.shape());
    let out = CudaStorage::uninit(dev, l.numel(), dt)?;
    if l.numel() > 0 {
        let [xl, ol] = KernelLayout::merged(OP, [l, &out_l])?;
        let inner: usize = l.shape()[2..].iter().product();
        let (xp, op) = (x.storage().base(), out.base());
        let (n, ch, inn) = (count(OP, l.numel())?, count(OP, c)?, count(OP, inner)?);
        let cfg: LaunchConfig = grid_stride(dev, l.numel());
        let [m, r, w, b] = vecs;
        // SAFETY: every view was checked against its storage; channel indices are below c.
        unsafe {
            dev.inner.launch(
                MODULE,
                &format!("ts_batch_norm_apply_{}", suffix(dt)),
                &cfg,
                &mut [
                    arg(&xl),
                    arg(&xp),
                    arg(&ol),
                    arg(&op),
                    arg(&n),
                    arg(&ch),
                    arg(&inn),
                    arg(&m.0),
                    arg(&m.1),
                    arg(&m.2),
                    arg(&r.0),
                    arg(&r.1),
                    arg(&r.2),
                    arg(&w.0),
                    arg(&w.1),
                    arg(&w.2),
                    arg(&b.0),
                    arg(&b.1),
                    arg(&b.2),
                ],
            )?;
        }
    }
    Ok(Some(Tensor::from_parts(Arc::new(out), out_l, dev.clone())?))
}

pub fn batch_norm_apply(
    dev: &Cuda,
    x: &Tensor<Cuda>,
    mean: &Tensor<Cuda>,
    rstd: &Tensor<Cuda>,
    weight: Option<&Tensor<Cuda>>,
    bias: Option<&Tensor<Cuda>>,
) -> Result<Tensor<Cuda>> {
    match batch_norm_fused(dev, x, [Some(mean), Some(rstd), weight, bias])? {
        Some(t) => Ok(t),
        None => composite::batch_norm_apply(x, mean, rstd, weight, bias),
    }
}
