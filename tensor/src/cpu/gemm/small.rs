//! Products too small to pay for packing: attention's per-head products (the default DINO
//! step's `17 x 64 x 17` and `17 x 17 x 64`, 9,216 of each kind per step; ViT-S/16's
//! `197 x 64 x 197`), run one per thread by the batched matmul.
//!
//! The packed path costs, per call, a pack of A and of B, its thread-local scratch and a
//! 14 x 32 tile that is mostly padding at 17 x 17: it ran those products at 10-20 GFLOP/s
//! on AMD Zen 4, about 5% of that step. Here A is read in place (one broadcast per row and
//! `k`), B in place when its rows are contiguous and whole vectors wide, else from a
//! zero-padded row-major copy, and C is accumulated in registers, `R` rows by `W` vectors of
//! 8 columns at a time.
//!
//! Each element of C is `fma(a[i][k-1], b[k-1][j], ... fma(a[i][0], b[0][j], +0.0))`, the
//! same chain of fused multiply-adds in the same order as the packed kernels for a single `k`
//! block, so the result is bit-identical to theirs (`tests.rs` checks both against one
//! scalar model). AVX2 and FMA intrinsics, stable on the crate's Rust 1.85 floor; every CPU
//! with the packed kernels' AVX-512F has both.

use super::pack::Mat;
use super::pack::MatMut;
use super::pack_transpose;
use core::arch::x86_64::*;
use std::cell::RefCell;
use std::vec::Vec;

/// Most multiply-adds of a product taken here when the caller lets GEMM use the crate's
/// threads: this path runs on the calling thread only, and the packed path's own threading
/// starts at about 1M multiply-adds.
const MAX_MACS_THREADED: usize = 1 << 16;

/// Most rows, columns and `k`. Measured against the packed path on AMD Zen 4, one thread
/// (BENCHMARKS.md, thirteenth round): faster at every shape tried within these bounds, from
/// `17 x 64 x 17` (2.4x) and `64 x 64 x 64` (1.3x) to ViT-S/16's `197 x 64 x 197` (1.13x);
/// slower at `197 x 197 x 64` (a `k x 32` block of B, 25 KB, no longer stays in L1 beside A)
/// and at 256 columns (`8 x 64 x 256`, `300 x 64 x 256`).
const MAX_ROWS: usize = 256;
const MAX_K: usize = 128;
const MAX_COLS: usize = 208;

/// Most multiply-adds of a product taken here where 512-bit FMAs run at full rate
/// (`fma_width.rs`): there the packed AVX-512 kernel does twice the work per instruction of
/// these AVX2 loops (Intel Xeon, one thread: level at `32 x 64 x 32` and `48 x 64 x 48`,
/// 1.35x at `64 x 64 x 64`, 1.6x at `197 x 64 x 197`), while the default DINO step's
/// `17 x 64 x 17` stays here (1.35x faster than packed).
const MAX_MACS_FULL_WIDTH: usize = 1 << 17;

/// Vectors of 8 columns per register tile (with `R` rows: `R * W` accumulators, `W` B
/// vectors and one broadcast A value in the 16 ymm registers).
const W_MAX: usize = 4;

/// Whether `C = A B` (`m x k` by `k x n`) is computed here; `threaded`: the caller allows
/// the product to use the crate's threads.
pub(super) fn takes(threaded: bool, m: usize, k: usize, n: usize) -> bool {
    let macs = m.saturating_mul(n).saturating_mul(k);
    (macs <= MAX_MACS_THREADED || !threaded)
        && m <= MAX_ROWS
        && k <= MAX_K
        && n <= MAX_COLS
        && (macs <= MAX_MACS_FULL_WIDTH || !super::fma_width::full_width_fma())
}

/// Whether this CPU can run it.
pub(super) fn available() -> bool {
    std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
}

std::thread_local! {
    /// The padded copy of B, kept between calls.
    static B_COPY: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// `C = A B`, overwriting C. The caller adds no bias (the packed path's epilogue is not
/// repeated here).
///
/// # Safety
/// AVX2 and FMA ([`available`]); `m, k, n >= 1`, `k <= 128`, `n <= 208`; every element of A
/// (`m x k`) and B (`k x n`) addressed by their strides is readable and every element of C
/// writable, C overlaps neither, and nothing else accesses C during the call.
pub(super) unsafe fn gemm(m: usize, k: usize, n: usize, a: Mat, b: Mat, c: MatMut) {
    let vectors = n.div_ceil(8);
    if b.cs == 1 && n % 8 == 0 {
        tiles(m, k, n, vectors, a, b.ptr, b.rs, c);
        return;
    }
    B_COPY.with(|copy| {
        let mut copy = copy.borrow_mut();
        let stride = vectors * 8;
        copy.clear();
        copy.resize(k * stride, 0.0);
        copy_rows(k, n, b, copy.as_mut_ptr(), stride);
        tiles(m, k, n, vectors, a, copy.as_ptr(), stride, c);
    });
}

/// Copies B (`k x n`) into the rows of `dst`, `stride` apart. Column-major B (attention's
/// `kᵀ`) goes through 8 x 8 transposes: its columns are contiguous.
///
/// # Safety
/// As [`gemm`]; `dst` is writable for `k * stride` values, `stride >= n`.
unsafe fn copy_rows(k: usize, n: usize, b: Mat, dst: *mut f32, stride: usize) {
    let (n8, k8) = if b.rs == 1 && pack_transpose::available() {
        (n / 8 * 8, k / 8 * 8)
    } else {
        (0, 0)
    };
    for j0 in (0..n8).step_by(8) {
        for p0 in (0..k8).step_by(8) {
            let src = core::array::from_fn(|i| b.ptr.add((j0 + i) * b.cs + p0));
            // SAFETY: AVX2 (checked above); each source is 8 values of a column of B, and
            // the 8 destination rows have room for 8 values from column `j0`.
            pack_transpose::transpose8(src, dst.add(p0 * stride + j0), stride, 8);
        }
    }
    for p in 0..k {
        let first = if p < k8 { n8 } else { 0 };
        let row = dst.add(p * stride);
        if b.cs == 1 {
            core::ptr::copy_nonoverlapping(b.ptr.add(p * b.rs + first), row.add(first), n - first);
            continue;
        }
        for j in first..n {
            *row.add(j) = *b.ptr.add(p * b.rs + j * b.cs);
        }
    }
}

/// Walks C in groups of up to [`W_MAX`] column vectors and, in each, in register tiles of
/// as many rows as fit. B's row `p` is at `b + p * b_rs`, with `vectors * 8` readable values.
///
/// # Safety
/// As [`gemm`], with B's rows readable for `vectors * 8` values.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma")]
unsafe fn tiles(
    m: usize,
    k: usize,
    n: usize,
    vectors: usize,
    a: Mat,
    b: *const f32,
    b_rs: usize,
    c: MatMut,
) {
    let mut v0 = 0;
    while v0 < vectors {
        // Equal groups (3 + 3 rather than 4 + 2): the rows per tile depend on the widest.
        let groups = (vectors - v0).div_ceil(W_MAX);
        let w = (vectors - v0).div_ceil(groups);
        let cols = (n - v0 * 8).min(w * 8);
        let (b, c) = (b.add(v0 * 8), c.at(0, v0 * 8));
        match w {
            1 => rows::<8, 1>(m, k, cols, a, b, b_rs, c),
            2 => rows::<5, 2>(m, k, cols, a, b, b_rs, c),
            3 => rows::<3, 3>(m, k, cols, a, b, b_rs, c),
            _ => rows::<2, 4>(m, k, cols, a, b, b_rs, c),
        }
        v0 += w;
    }
}

/// Every row of C's column group `0..cols` (`W` vectors wide), `R` rows per tile and the
/// rest one by one.
///
/// # Safety
/// As [`tiles`], for `W` vectors of B from `b`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn rows<const R: usize, const W: usize>(
    m: usize,
    k: usize,
    cols: usize,
    a: Mat,
    b: *const f32,
    b_rs: usize,
    c: MatMut,
) {
    let whole = m / R * R;
    for i in (0..whole).step_by(R) {
        tile::<R, W>(k, cols, a.at(i, 0), b, b_rs, c.at(i, 0));
    }
    for i in whole..m {
        tile::<1, W>(k, cols, a.at(i, 0), b, b_rs, c.at(i, 0));
    }
}

/// One `R x (8 W)` tile of C (its first `cols` columns written): `k` steps of `R * W` FMAs.
///
/// # Safety
/// As [`rows`].
#[inline(always)]
unsafe fn tile<const R: usize, const W: usize>(
    k: usize,
    cols: usize,
    a: Mat,
    b: *const f32,
    b_rs: usize,
    c: MatMut,
) {
    let mut acc = [[_mm256_setzero_ps(); W]; R];
    for p in 0..k {
        let brow = b.add(p * b_rs);
        let bv: [__m256; W] = core::array::from_fn(|w| _mm256_loadu_ps(brow.add(8 * w)));
        for (r, acc) in acc.iter_mut().enumerate() {
            let av = _mm256_broadcast_ss(&*a.ptr.add(r * a.rs + p * a.cs));
            for (acc, bv) in acc.iter_mut().zip(&bv) {
                *acc = _mm256_fmadd_ps(av, *bv, *acc);
            }
        }
    }
    for (r, acc) in acc.iter().enumerate() {
        let row = c.ptr.add(r * c.rs);
        for (w, v) in acc.iter().enumerate() {
            let (j0, lanes) = (8 * w, cols.saturating_sub(8 * w).min(8));
            if lanes == 0 {
                break;
            }
            if c.cs == 1 && lanes == 8 {
                _mm256_storeu_ps(row.add(j0), *v);
            } else {
                let mut tmp = [0.0f32; 8];
                _mm256_storeu_ps(tmp.as_mut_ptr(), *v);
                for (j, x) in tmp[..lanes].iter().enumerate() {
                    *row.add((j0 + j) * c.cs) = *x;
                }
            }
        }
    }
}
