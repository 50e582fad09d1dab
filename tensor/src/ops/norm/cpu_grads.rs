//! Fused CPU layer-norm gradients (`Backend::layer_norm_grads`): the input's, the weight's
//! and the bias's in one parallel pass that reads `x` and the output gradient about once.
//! The two separate kernels (`cpu_backward.rs`, by rows; `cpu_param_backward.rs`, by
//! columns) read both twice, and in a training step both arrive from memory.
//!
//! Each of `P` parts owns a range of rows, whose `dx` it writes, and a range of columns,
//! whose sums it accumulates. A part walks every row in order: a row it owns it reads whole
//! (for `dx`'s row sums), any other row only in its columns. So each row's `dx` is computed
//! as `cpu_backward.rs` computes it, and each column's sums run over the rows in order from
//! `-0.0` as in `cpu_param_backward.rs`: the same bits as the two kernels, for any number of
//! parts. The parts walk the rows side by side, so a line of `x` one of them fetches is
//! usually still in the shared cache when another reaches it.

use super::cpu::GradOperands;
use super::cpu_backward::{fused_dims, row_means};
use super::cpu_param_backward::add_row;
use crate::backend::composite;
use crate::buffer::HostElement;
use crate::cpu::simd::{prefetch_lines, with_avx2};
use crate::cpu::{parallel, pool, Cpu};
use crate::dtype::Float;
use crate::{DType, HostBuffer, LayerNormGrads, Result, Tensor};
use alloc::vec::Vec;
use core::mem::MaybeUninit;
use core::ops::Range;

/// The CPU override of `Backend::layer_norm_grads`: fused when the input gradient and at
/// least one parameter gradient are asked for, on f32/f64 operands of the forward's shapes;
/// else the two separate kernels.
#[allow(clippy::too_many_arguments)]
pub(crate) fn layer_norm_grads(
    x: &Tensor<Cpu>,
    mean: &Tensor<Cpu>,
    rstd: &Tensor<Cpu>,
    weight: Option<&Tensor<Cpu>>,
    grad: &Tensor<Cpu>,
    k: usize,
    needs: (bool, bool, bool),
) -> Result<LayerNormGrads<Cpu>> {
    // The two kernels, through the composite that calls them.
    let separate = || composite::layer_norm_grads(x, mean, rstd, weight, grad, k, needs);
    if !needs.0 || !(needs.1 || needs.2) {
        return separate();
    }
    let Some((_, d)) = fused_dims(x, mean, rstd, weight, grad, k) else {
        return separate();
    };
    let (shape, dtype) = (x.shape(), x.dtype());
    let params = (needs.1, needs.2);
    let bufs = match dtype {
        DType::F32 => typed::<f32>(x, grad, mean, rstd, weight, d, params),
        DType::F64 => typed::<f64>(x, grad, mean, rstd, weight, d, params),
        _ => None,
    };
    let Some((dx, dw, db)) = bufs else {
        return separate();
    };
    let param_shape = &shape[shape.len() - k..];
    let param = |asked: bool, b: HostBuffer| match asked {
        true => crate::cpu::kernel_output(b, param_shape).map(Some),
        false => Ok(None),
    };
    Ok((
        Some(crate::cpu::kernel_output(dx, shape)?),
        param(needs.1, dw)?,
        param(needs.2, db)?,
    ))
}

/// [`grads`] on `T` operands, borrowed where contiguous; `None` if any is not a `T`.
#[allow(clippy::too_many_arguments)]
fn typed<T: Float + HostElement + Send + Sync>(
    x: &Tensor<Cpu>,
    grad: &Tensor<Cpu>,
    mean: &Tensor<Cpu>,
    rstd: &Tensor<Cpu>,
    weight: Option<&Tensor<Cpu>>,
    d: usize,
    params: (bool, bool),
) -> Option<(HostBuffer, HostBuffer, HostBuffer)> {
    let o = GradOperands::<T>::open(x, grad, mean, rstd, weight)?;
    let rows = Rows {
        x: &o.x,
        g: &o.g,
        mean: &o.mean,
        rstd: &o.rstd,
        w: o.w.as_deref(),
        d,
    };
    let (dx, sw, sb) = grads(&rows, params);
    let to_t = |s: Vec<f64>| {
        let mut v: Vec<T> = pool::take_in_kernel(s.len());
        v.extend(s.iter().map(|&a| T::from_f64(a)));
        T::into_buffer(v)
    };
    Some((T::into_buffer(dx), to_t(sw), to_t(sb)))
}

/// The operands: `n` rows of `d` values in `x` and `g`, one mean and rstd per row.
struct Rows<'a, T> {
    x: &'a [T],
    g: &'a [T],
    mean: &'a [T],
    rstd: &'a [T],
    w: Option<&'a [T]>,
    d: usize,
}

/// One part's share: the `dx` of its rows and the sums of its columns.
struct Part<'a, T> {
    rows: Range<usize>,
    cols: Range<usize>,
    dx: &'a mut [MaybeUninit<T>],
    sw: &'a mut [f64],
    sb: &'a mut [f64],
}

/// `dx` (row-major, like `x`) and the f64 column sums `Σ g·x̂` and `Σ g` (zeros where not
/// asked for), in parallel parts.
fn grads<T: Float + Send + Sync>(
    r: &Rows<'_, T>,
    params: (bool, bool),
) -> (Vec<T>, Vec<f64>, Vec<f64>) {
    let (n, d) = (r.mean.len(), r.d);
    let parts = parallel::num_threads().min(n).min(d).max(1);
    let mut dx: Vec<T> = pool::take_in_kernel(n * d);
    let (mut sw, mut sb) = (alloc::vec![-0.0f64; d], alloc::vec![-0.0f64; d]);
    let mut jobs: Vec<Part<'_, T>> = Vec::with_capacity(parts);
    let (mut dx_rest, mut sw_rest, mut sb_rest) = (
        &mut dx.spare_capacity_mut()[..n * d],
        &mut sw[..],
        &mut sb[..],
    );
    for p in 0..parts {
        let (rows, cols) = (split(n, parts, p), split(d, parts, p));
        let (dxp, rest) = core::mem::take(&mut dx_rest).split_at_mut(rows.len() * d);
        dx_rest = rest;
        let (swp, rest) = core::mem::take(&mut sw_rest).split_at_mut(cols.len());
        sw_rest = rest;
        let (sbp, rest) = core::mem::take(&mut sb_rest).split_at_mut(cols.len());
        sb_rest = rest;
        jobs.push(Part {
            rows,
            cols,
            dx: dxp,
            sw: swp,
            sb: sbp,
        });
    }
    parallel::for_each_chunk_mut(&mut jobs, 1, 3 * r.x.len(), |_, chunk| {
        for part in chunk {
            with_avx2(|| run_part(part, r, params));
        }
    });
    drop(jobs);
    // SAFETY: the parts' row ranges cover `0..n` and each part wrote every element of its
    // rows' `dx` (`run_part`), so all `n * d` elements are initialized.
    unsafe { dx.set_len(n * d) };
    (dx, sw, sb)
}

/// The `i`-th of `parts` near-equal contiguous ranges of `0..units`.
fn split(units: usize, parts: usize, i: usize) -> Range<usize> {
    let (q, r) = (units / parts, units % parts);
    let start = i * q + i.min(r);
    start..start + q + usize::from(i < r)
}

/// How many rows ahead a part asks for the lines it will read. In a training step `x` and
/// the output gradient come from memory, and the hardware prefetchers follow a part that
/// reads half of each row poorly. `[256, 17, 192]` f32 with the caches evicted, 2 threads,
/// Intel Xeon (AMX): 1.04-1.05 -> 0.84-0.88 ms (hot 0.57; PyTorch 0.70-0.72 cold); 2 to 8
/// rows ahead measured alike.
const AHEAD_ROWS: usize = 4;

/// Walks every row in order: `dx` for the part's own rows, the column sums for its columns.
/// The sums run in accumulators of the part's own (the parts' slices of the result are
/// neighbours, and a cache line shared by two threads that both write it every row would
/// move between their cores on every row), copied out at the end.
#[inline(always)]
fn run_part<T: Float>(p: &mut Part<'_, T>, r: &Rows<'_, T>, params: (bool, bool)) {
    let d = r.d;
    let (rows, cols) = (p.rows.clone(), p.cols.clone());
    let (mut sw, mut sb) = (
        alloc::vec![-0.0f64; cols.len()],
        alloc::vec![-0.0f64; cols.len()],
    );
    let mut dx_rows = p.dx.chunks_exact_mut(d);
    for (i, (&m, &rs)) in r.mean.iter().zip(r.rstd).enumerate() {
        let (xr, gr) = (&r.x[i * d..][..d], &r.g[i * d..][..d]);
        // The lines this part will read of the row `AHEAD_ROWS` on (hints: never fault).
        let ahead = i + AHEAD_ROWS;
        let (start, len) = match rows.contains(&ahead) {
            true => (ahead * d, d),
            false => (ahead * d + cols.start, cols.len()),
        };
        prefetch_lines(r.x.as_ptr().wrapping_add(start), len);
        prefetch_lines(r.g.as_ptr().wrapping_add(start), len);
        if rows.contains(&i) {
            let out = dx_rows.next().expect("one dx row per owned row");
            // As `cpu_backward::rows`, the same expression in the same order.
            let (m1, m2) = row_means(xr, gr, m, rs, r.w);
            let xhat = |x: T| (x - m) * rs;
            match r.w {
                Some(w) => {
                    for (((o, &gv), &wv), &xv) in out.iter_mut().zip(gr).zip(w).zip(xr) {
                        o.write((gv * wv - m1 - xhat(xv) * m2) * rs);
                    }
                }
                None => {
                    for ((o, &gv), &xv) in out.iter_mut().zip(gr).zip(xr) {
                        o.write((gv - m1 - xhat(xv) * m2) * rs);
                    }
                }
            }
        }
        let (xc, gc) = (&xr[cols.clone()], &gr[cols.clone()]);
        add_row(&mut sw, &mut sb, xc, gc, m, rs, params);
    }
    p.sw.copy_from_slice(&sw);
    p.sb.copy_from_slice(&sb);
}

#[cfg(test)]
mod tests {
    use crate::{Backend, Cpu, DType, Tensor};
    use std::vec::Vec;

    /// The fused gradients are the two separate kernels' to the bit: f32 and f64, with and
    /// without a weight, one or two normalized dims, rows that do not split evenly, each
    /// parameter gradient alone, 1-3 threads, values over 2^-40..2^40 (where the order of
    /// the f64 sums shows).
    #[test]
    fn fused_gradients_are_the_separate_kernels_bit_for_bit() {
        let vals = |n: usize, s: usize| -> Vec<f64> {
            (0..n)
                .map(|i| ((i * s % 97) as f64 - 48.0) * 2f64.powi((i * 7 % 81) as i32 - 40))
                .collect()
        };
        let bits = |t: &Tensor<Cpu>| -> Vec<u64> {
            let v = t.to_dtype(DType::F64).unwrap().to_vec::<f64>().unwrap();
            v.iter().map(|x| x.to_bits()).collect()
        };
        for threads in [1, 2, 3] {
            crate::cpu::parallel::tests::with_threads(threads, || {
                for dtype in [DType::F32, DType::F64] {
                    for (shape, k) in [([3usize, 5, 7], 1usize), ([2, 9, 300], 1), ([5, 3, 5], 2)] {
                        let numel: usize = shape.iter().product();
                        let t = |v: Vec<f64>, s: &[usize]| {
                            Tensor::from_vec(v, s, &Cpu)
                                .unwrap()
                                .to_dtype(dtype)
                                .unwrap()
                        };
                        let norm = &shape[3 - k..];
                        let d: usize = norm.iter().product();
                        let (x, g) = (t(vals(numel, 31), &shape), t(vals(numel, 53), &shape));
                        let w = t(vals(d, 17), norm);
                        let (_, mean, rstd) =
                            x.layer_norm_with_stats(norm, None, None, 1e-6).unwrap();
                        for weight in [None, Some(&w)] {
                            for needs in
                                [(true, true, true), (true, true, false), (true, false, true)]
                            {
                                let got = Cpu
                                    .layer_norm_grads(&x, &mean, &rstd, weight, &g, k, needs)
                                    .unwrap();
                                let dx = Cpu
                                    .layer_norm_backward(&x, &mean, &rstd, weight, &g, k)
                                    .unwrap();
                                let (dw, db) = Cpu
                                    .layer_norm_param_backward(
                                        &x,
                                        &mean,
                                        &rstd,
                                        &g,
                                        k,
                                        (needs.1, needs.2),
                                    )
                                    .unwrap();
                                let case = format!("{threads} {dtype:?} {shape:?} {k} {needs:?}");
                                assert_eq!(bits(got.0.as_ref().unwrap()), bits(&dx), "dx {case}");
                                for (f, s) in [(got.1, dw), (got.2, db)] {
                                    assert_eq!(f.is_some(), s.is_some(), "{case}");
                                    if let (Some(f), Some(s)) = (f, s) {
                                        assert_eq!(f.shape(), norm, "{case}");
                                        assert_eq!(bits(&f), bits(&s), "param {case}");
                                    }
                                }
                            }
                        }
                    }
                }
            });
        }
    }
}
