//! The f32 rows of the fused CPU softmax and log-softmax, written so that they vectorise:
//! the max and the sum run in [`LANES`] independent lanes (one dependent chain per row was
//! the loop's whole cost), and the exponentials use the crate's branch-free f32 `exp`
//! (`ops/unary/erf_f32.rs`, relative error ~2e-7) instead of libm's scalar call. With AVX2 the
//! loops are compiled for it (chosen at run time). Sums of exponentials accumulate in f64, as
//! the generic rows do.

use crate::ops::unary::erf_f32::exp;

/// Independent accumulators per row (one AVX2 vector of f32).
const LANES: usize = 8;

/// The row's maximum; NaN if the row has a NaN (PyTorch's softmax then returns NaN).
#[inline(always)]
fn row_max(row: &[f32]) -> f32 {
    let keep = |m: f32, v: f32| if v > m || v.is_nan() { v } else { m };
    let mut acc = [f32::NEG_INFINITY; LANES];
    let mut chunks = row.chunks_exact(LANES);
    for c in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a = keep(*a, v);
        }
    }
    let tail = chunks
        .remainder()
        .iter()
        .fold(f32::NEG_INFINITY, |m, &v| keep(m, v));
    acc.iter().fold(tail, |m, &v| keep(m, v))
}

/// Replaces each `v` by `e^(v - max)` and returns their sum (f64, in lanes).
#[inline(always)]
fn exp_shifted_sum(row: &mut [f32], max: f32) -> f64 {
    let mut acc = [0.0f64; LANES];
    let mut chunks = row.chunks_exact_mut(LANES);
    for c in &mut chunks {
        for (a, v) in acc.iter_mut().zip(c.iter_mut()) {
            *v = exp(*v - max);
            *a += f64::from(*v);
        }
    }
    let mut sum = 0.0f64;
    for v in chunks.into_remainder() {
        *v = exp(*v - max);
        sum += f64::from(*v);
    }
    sum + acc.iter().sum::<f64>()
}

#[inline(always)]
fn softmax_row_body(row: &mut [f32]) {
    let max = row_max(row);
    if max == f32::NEG_INFINITY {
        // All -inf: PyTorch returns NaN (0/0); keep that.
        row.iter_mut().for_each(|v| *v = f32::NAN);
        return;
    }
    let inv = (1.0 / exp_shifted_sum(row, max)) as f32;
    row.iter_mut().for_each(|v| *v *= inv);
}

#[inline(always)]
fn log_softmax_row_body(row: &mut [f32]) {
    let max = row_max(row);
    let mut acc = [0.0f64; LANES];
    let mut chunks = row.chunks_exact(LANES);
    for c in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += f64::from(exp(v - max));
        }
    }
    let tail: f64 = chunks
        .remainder()
        .iter()
        .map(|&v| f64::from(exp(v - max)))
        .sum();
    let lse = max + libm::log(tail + acc.iter().sum::<f64>()) as f32;
    row.iter_mut().for_each(|v| *v -= lse);
}

#[cfg(all(feature = "std", target_arch = "x86_64"))]
#[target_feature(enable = "avx2,fma")]
unsafe fn softmax_row_avx2(row: &mut [f32]) {
    softmax_row_body(row)
}

#[cfg(all(feature = "std", target_arch = "x86_64"))]
#[target_feature(enable = "avx2,fma")]
unsafe fn log_softmax_row_avx2(row: &mut [f32]) {
    log_softmax_row_body(row)
}

#[cfg(all(feature = "std", target_arch = "x86_64"))]
fn has_avx2_fma() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

/// Softmax of one row in place.
pub(super) fn softmax_row(row: &mut [f32]) {
    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    if has_avx2_fma() {
        // SAFETY: the CPU has AVX2 and FMA (checked just above).
        return unsafe { softmax_row_avx2(row) };
    }
    softmax_row_body(row)
}

/// Log-softmax of one row in place.
pub(super) fn log_softmax_row(row: &mut [f32]) {
    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    if has_avx2_fma() {
        // SAFETY: the CPU has AVX2 and FMA (checked just above).
        return unsafe { log_softmax_row_avx2(row) };
    }
    log_softmax_row_body(row)
}
