//! Fused, in-place optimizer and EMA steps (kernels: `kernels/update.cu`), one launch per
//! parameter. CPU counterpart: `tensor/src/ops/inplace/cpu.rs`; specification (same ops, same
//! order, so the same bits on the same device): `tensor/src/backend/update.rs`.
//!
//! Every scalar travels as a kernel argument; nothing is uploaded or read back. The
//! destinations are made unique first (`storage_mut`, copy on write, as the front end does),
//! so they never alias each other or the read-only operands. Any float dtype and any strided
//! view is covered; mismatched shapes or dtypes (only reachable by calling the backend
//! directly) and views that cannot be merged to the kernels' rank take the default
//! composition, which reports the error or handles the view.

use crate::driver::arg;
use crate::driver::LaunchConfig;
use crate::launch::{count, grid_stride, suffix, unsupported};
use crate::layout::KernelLayout;
use crate::storage::{check_view, CudaStorage};
use crate::Cuda;
use std::sync::Arc;
use tessera_tensor::backend::update;
use tessera_tensor::{AdamWStep, DType, Layout, Result, SgdStep, Tensor};

const MODULE: &str = "update";

/// True if the fused kernels cover these operands: one float dtype, one shape.
fn covered(first: &Tensor<Cuda>, others: &[&Tensor<Cuda>]) -> bool {
    first.dtype().is_float()
        && others
            .iter()
            .all(|t| t.dtype() == first.dtype() && t.shape() == first.shape())
}

/// The kernel layouts of same-shaped views (merged jointly) and whether all are contiguous
/// (the kernels then index `offset + i` without divisions). `None`: the views cannot be
/// merged to the kernels' rank.
fn layouts<const N: usize>(op: &'static str, ls: [&Layout; N]) -> Option<([KernelLayout; N], i32)> {
    let ks = KernelLayout::merged(op, ls).ok()?;
    Some((ks, i32::from(ls.iter().all(|l| l.is_contiguous()))))
}

/// Checks a view against its storage and the op's dtype; returns its device pointer.
fn ptr(dev: &Cuda, op: &'static str, s: &CudaStorage, l: &Layout, dt: DType) -> Result<u64> {
    check_view(dev, op, s, l, Some(dt))?;
    Ok(s.base())
}

pub fn adamw_update(
    dev: &Cuda,
    param: &mut Tensor<Cuda>,
    grad: &Tensor<Cuda>,
    exp_avg: &mut Tensor<Cuda>,
    exp_avg_sq: &mut Tensor<Cuda>,
    step: &AdamWStep,
) -> Result<()> {
    const OP: &str = "adamw_update";
    if !covered(param, &[grad, exp_avg, exp_avg_sq]) {
        return update::adamw(param, grad, exp_avg, exp_avg_sq, step);
    }
    let (dt, n) = (param.dtype(), param.numel());
    let launched = {
        let (ps, pl) = param.storage_mut()?;
        let (ms, ml) = exp_avg.storage_mut()?;
        let (vs, vl) = exp_avg_sq.storage_mut()?;
        let (gs, gl) = (&**grad.storage(), grad.layout());
        let (pp, gp) = (ptr(dev, OP, ps, pl, dt)?, ptr(dev, OP, gs, gl, dt)?);
        let (mp, vp) = (ptr(dev, OP, ms, ml, dt)?, ptr(dev, OP, vs, vl, dt)?);
        match layouts(OP, [pl, gl, ml, vl]) {
            None => false,
            Some(_) if n == 0 => true,
            Some(([kp, kg, km, kv], flat)) => {
                // The composition's scalars, computed exactly as update::adamw computes them.
                let decay = 1.0 - step.lr * step.weight_decay;
                let w = 1.0 - step.beta1;
                let lerp_small = i32::from(w < 0.5);
                let lerp_scale = if w < 0.5 { w } else { 1.0 - w };
                let (beta2, one_minus_beta2) = (step.beta2, 1.0 - step.beta2);
                let (bc2, eps, step_size) =
                    (step.bias_correction2_sqrt(), step.eps, step.step_size());
                let nn = count(OP, n)?;
                let kernel = format!("ts_adamw_update_{}", suffix(dt));
                // SAFETY: every view was checked against its storage above, all have the same
                // shape (n elements), and the written views are unique and non-overlapping.
                unsafe {
                    dev.inner.launch(
                        MODULE,
                        &kernel,
                        &grid_stride(dev, n),
                        &mut [
                            arg(&kp),
                            arg(&pp),
                            arg(&kg),
                            arg(&gp),
                            arg(&km),
                            arg(&mp),
                            arg(&kv),
                            arg(&vp),
                            arg(&nn),
                            arg(&flat),
                            arg(&decay),
                            arg(&lerp_scale),
                            arg(&lerp_small),
                            arg(&beta2),
                            arg(&one_minus_beta2),
                            arg(&bc2),
                            arg(&eps),
                            arg(&step_size),
                        ],
                    )?;
                }
                true
            }
        }
    };
    if launched {
        return Ok(());
    }
    update::adamw(param, grad, exp_avg, exp_avg_sq, step)
}

pub fn sgd_update(
    dev: &Cuda,
    param: &mut Tensor<Cuda>,
    grad: &Tensor<Cuda>,
    mut momentum_buffer: Option<&mut Tensor<Cuda>>,
    step: &SgdStep,
) -> Result<()> {
    const OP: &str = "sgd_update";
    let ok = match momentum_buffer.as_deref() {
        Some(b) => covered(param, &[grad, b]),
        None => covered(param, &[grad]),
    };
    if !ok {
        return update::sgd(param, grad, momentum_buffer, step);
    }
    let (dt, n) = (param.dtype(), param.numel());
    let launched = {
        let (ps, pl) = param.storage_mut()?;
        let (gs, gl) = (&**grad.storage(), grad.layout());
        let (pp, gp) = (ptr(dev, OP, ps, pl, dt)?, ptr(dev, OP, gs, gl, dt)?);
        // Without a buffer the kernel gets a null pointer and reads the parameter's layout
        // in its place (never used).
        let (bp, bl) = match momentum_buffer.as_deref_mut() {
            Some(b) => {
                let (bs, bl) = b.storage_mut()?;
                (ptr(dev, OP, bs, bl, dt)?, bl.clone())
            }
            None => (0u64, pl.clone()),
        };
        match layouts(OP, [pl, gl, &bl]) {
            None => false,
            Some(_) if n == 0 => true,
            Some(([kp, kg, kb], flat)) => {
                let has_wd = i32::from(step.weight_decay != 0.0);
                let first_step = i32::from(step.first_step);
                let has_damp = i32::from(step.dampening != 0.0);
                let one_minus_damp = 1.0 - step.dampening;
                let nesterov = i32::from(step.nesterov);
                let nn = count(OP, n)?;
                let kernel = format!("ts_sgd_update_{}", suffix(dt));
                // SAFETY: as in adamw_update; a null buffer pointer is never dereferenced.
                unsafe {
                    dev.inner.launch(
                        MODULE,
                        &kernel,
                        &grid_stride(dev, n),
                        &mut [
                            arg(&kp),
                            arg(&pp),
                            arg(&kg),
                            arg(&gp),
                            arg(&kb),
                            arg(&bp),
                            arg(&nn),
                            arg(&flat),
                            arg(&has_wd),
                            arg(&step.weight_decay),
                            arg(&first_step),
                            arg(&step.momentum),
                            arg(&has_damp),
                            arg(&one_minus_damp),
                            arg(&nesterov),
                            arg(&step.lr),
                        ],
                    )?;
                }
                true
            }
        }
    };
    if launched {
        return Ok(());
    }
    update::sgd(param, grad, momentum_buffer, step)
}

pub fn ema_update(
    dev: &Cuda,
    target: &mut Tensor<Cuda>,
    source: &Tensor<Cuda>,
    momentum: f64,
) -> Result<()> {
    const OP: &str = "ema_update";
    if !covered(target, &[source]) {
        return update::ema(target, source, momentum);
    }
    let (dt, n) = (target.dtype(), target.numel());
    let launched = {
        let (ts, tl) = target.storage_mut()?;
        let (ss, sl) = (&**source.storage(), source.layout());
        let (tp, sp) = (ptr(dev, OP, ts, tl, dt)?, ptr(dev, OP, ss, sl, dt)?);
        match layouts(OP, [tl, sl]) {
            None => false,
            Some(_) if n == 0 => true,
            Some(([kt, ks], flat)) => {
                let (keep, take) = (momentum, 1.0 - momentum);
                let nn = count(OP, n)?;
                let kernel = format!("ts_ema_update_{}", suffix(dt));
                // SAFETY: as in adamw_update.
                unsafe {
                    dev.inner.launch(
                        MODULE,
                        &kernel,
                        &grid_stride(dev, n),
                        &mut [
                            arg(&kt),
                            arg(&tp),
                            arg(&ks),
                            arg(&sp),
                            arg(&nn),
                            arg(&flat),
                            arg(&keep),
                            arg(&take),
                        ],
                    )?;
                }
                true
            }
        }
    };
    if launched {
        return Ok(());
    }
    update::ema(target, source, momentum)
}

/// Threads per block of the sum-of-squares kernels (`SUMSQ_THREADS`).
const SUMSQ_THREADS: u32 = 256;

/// `Σ x²` over all elements of `tensors` (a gradient norm² for clipping) in two launches and
/// one small upload (the tensors' (pointer, length) spans), read back by nobody. All tensors
/// share one float dtype; the result is a scalar tensor in the accumulator dtype: f64 for f64
/// inputs, f32 otherwise (f16/bf16 square and sum in f32). Non-contiguous views are copied
/// contiguous first. The sum is deterministic for a given device (fixed grid and order).
pub fn sum_of_squares(dev: &Cuda, tensors: &[&Tensor<Cuda>]) -> Result<Tensor<Cuda>> {
    const OP: &str = "sum_of_squares";
    let dt = tensors.first().map_or(DType::F32, |t| t.dtype());
    if !dt.is_float() || tensors.iter().any(|t| t.dtype() != dt) {
        return Err(unsupported(
            OP,
            format!("needs tensors of one float dtype, got {dt:?}"),
        ));
    }
    let acc = if dt == DType::F64 {
        DType::F64
    } else {
        DType::F32
    };
    let out = CudaStorage::uninit(dev, 1, acc)?;
    // Contiguous copies of strided views live until the launches are queued (the allocator is
    // stream-ordered, so freeing them afterwards is safe).
    let contiguous: Vec<Tensor<Cuda>> = tensors
        .iter()
        .map(|t| {
            if t.is_contiguous() {
                Ok((*t).clone())
            } else {
                t.contiguous()
            }
        })
        .collect::<Result<_>>()?;
    let es = dt.size_in_bytes() as u64;
    let mut spans: Vec<u8> = Vec::with_capacity(16 * contiguous.len());
    let mut total = 0usize;
    for t in contiguous.iter().filter(|t| t.numel() > 0) {
        let (s, l) = (&**t.storage(), t.layout());
        check_view(dev, OP, s, l, Some(dt))?;
        let r = l
            .contiguous_range()
            .ok_or_else(|| unsupported(OP, "a view stayed strided"))?;
        spans.extend_from_slice(&(s.base() + r.start as u64 * es).to_ne_bytes());
        spans.extend_from_slice(&count(OP, r.len())?.to_ne_bytes());
        total += r.len();
    }
    let n_spans =
        i32::try_from(spans.len() / 16).map_err(|_| unsupported(OP, "too many tensors"))?;
    let desc = CudaStorage::uninit(dev, 2 * n_spans as usize, DType::I64)?;
    if !spans.is_empty() {
        // SAFETY: `desc` holds exactly spans.len() bytes (two 8-byte words per span).
        unsafe { dev.inner.driver.copy_htod(desc.base(), &spans)? };
    }
    let blocks = grid_stride(dev, total).grid[0].min(1024);
    let partial = CudaStorage::uninit(dev, blocks as usize, acc)?;
    let one_block = |grid: u32| LaunchConfig {
        grid: [grid, 1, 1],
        block: [SUMSQ_THREADS, 1, 1],
        shared_bytes: 0,
    };
    let (dp, pp, op, nb) = (desc.base(), partial.base(), out.base(), blocks as i32);
    let (k1, k2) = (
        format!("ts_sumsq_partial_{}", suffix(dt)),
        format!("ts_sumsq_final_{}", suffix(acc)),
    );
    // SAFETY: every span lies inside a checked storage of `dt` that `contiguous` keeps alive;
    // `partial` holds one value per block and `out` one value.
    unsafe {
        dev.inner.launch(
            MODULE,
            &k1,
            &one_block(blocks),
            &mut [arg(&dp), arg(&n_spans), arg(&pp)],
        )?;
        dev.inner.launch(
            MODULE,
            &k2,
            &one_block(1),
            &mut [arg(&pp), arg(&nb), arg(&op)],
        )?;
    }
    Tensor::from_parts(Arc::new(out), Layout::contiguous(&[]), dev.clone())
}
