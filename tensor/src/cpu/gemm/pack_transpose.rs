//! Packing the two layouts that need a transpose, 8 x 8 blocks at a time with AVX2.
//!
//! The f32 panels hold, for each `k`, `MR` values of A from `MR` different rows and `NR`
//! values of B from `NR` different columns. When A is row-major (`cs == 1`: every linear
//! layer's input, attention's queries) or B is column-major (`rs == 1`: the `Wᵀ` of every
//! linear layer's forward, attention's `kᵀ`), those values are `rs` or `cs` apart in memory,
//! and the scalar gather in [`super::pack`] was 15% of a ViT-S/16 training step (as much
//! time as attention's products spent in the microkernel). Here each 8 x 8 block is read as 8
//! contiguous rows and written as 8 contiguous columns through the usual unpack / shuffle /
//! lane-permute transpose. Only whole panels and whole groups of 8 `k` go through here; the
//! callers keep the scalar loop for edge panels and the last `kc % 8` values.
//!
//! AVX2 intrinsics are stable on the crate's Rust 1.85 floor; the packed GEMM only runs on
//! CPUs with AVX-512F, which all have AVX2, and [`available`] checks anyway.

use super::pack::Mat;
use super::{MR, NR};
use core::arch::x86_64::*;

/// Whether this CPU can run the transposing packs.
pub(crate) fn available() -> bool {
    std::is_x86_feature_detected!("avx2")
}

/// Transposes the 8 x 8 block whose row `i` is the 8 contiguous f32 at `src[i]`, writing
/// column `j` (8 values, or the first `lanes` of them) at `dst + j * dst_stride`.
///
/// # Safety
/// AVX2; every `src[i]` readable for 8 f32; `dst + j * dst_stride` writable for `lanes` f32,
/// `j < 8`.
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn transpose8(
    src: [*const f32; 8],
    dst: *mut f32,
    dst_stride: usize,
    lanes: usize,
) {
    let r: [__m256; 8] = core::array::from_fn(|i| _mm256_loadu_ps(src[i]));
    // Interleave pairs of rows, then pairs of pairs: each 128-bit half of u[j] then holds
    // four values of one column (rows 0-3 in the low half of u[j], rows 4-7 in u[j + 4]).
    let t = [
        _mm256_unpacklo_ps(r[0], r[1]),
        _mm256_unpackhi_ps(r[0], r[1]),
        _mm256_unpacklo_ps(r[2], r[3]),
        _mm256_unpackhi_ps(r[2], r[3]),
        _mm256_unpacklo_ps(r[4], r[5]),
        _mm256_unpackhi_ps(r[4], r[5]),
        _mm256_unpacklo_ps(r[6], r[7]),
        _mm256_unpackhi_ps(r[6], r[7]),
    ];
    let u = [
        _mm256_shuffle_ps::<0x44>(t[0], t[2]),
        _mm256_shuffle_ps::<0xEE>(t[0], t[2]),
        _mm256_shuffle_ps::<0x44>(t[1], t[3]),
        _mm256_shuffle_ps::<0xEE>(t[1], t[3]),
        _mm256_shuffle_ps::<0x44>(t[4], t[6]),
        _mm256_shuffle_ps::<0xEE>(t[4], t[6]),
        _mm256_shuffle_ps::<0x44>(t[5], t[7]),
        _mm256_shuffle_ps::<0xEE>(t[5], t[7]),
    ];
    let cols = [
        _mm256_permute2f128_ps::<0x20>(u[0], u[4]),
        _mm256_permute2f128_ps::<0x20>(u[1], u[5]),
        _mm256_permute2f128_ps::<0x20>(u[2], u[6]),
        _mm256_permute2f128_ps::<0x20>(u[3], u[7]),
        _mm256_permute2f128_ps::<0x31>(u[0], u[4]),
        _mm256_permute2f128_ps::<0x31>(u[1], u[5]),
        _mm256_permute2f128_ps::<0x31>(u[2], u[6]),
        _mm256_permute2f128_ps::<0x31>(u[3], u[7]),
    ];
    if lanes == 8 {
        for (j, col) in cols.iter().enumerate() {
            _mm256_storeu_ps(dst.add(j * dst_stride), *col);
        }
    } else {
        let idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        let mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(lanes as i32), idx);
        for (j, col) in cols.iter().enumerate() {
            _mm256_maskstore_ps(dst.add(j * dst_stride), mask, *col);
        }
    }
}

/// Packs `k` in `0..kc8` (a multiple of 8) of one whole `MR`-row panel of row-major A
/// (`a.cs == 1`): `d[p * MR + i] = a(i, p)`.
///
/// # Safety
/// AVX2; `a(i, p)` readable for `i < MR`, `p < kc8`; `d` writable for `kc8 * MR` f32.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn a_rows(d: *mut f32, a: Mat, kc8: usize) {
    debug_assert!(a.cs == 1 && kc8 % 8 == 0);
    // Rows 0-7, then rows 8-13 (the block's last two rows repeat row 13 and are not stored).
    const SECOND: usize = MR - 8;
    for p in (0..kc8).step_by(8) {
        let rows: [*const f32; 8] = core::array::from_fn(|i| a.ptr.add(i * a.rs + p));
        transpose8(rows, d.add(p * MR), MR, 8);
        let rows: [*const f32; 8] =
            core::array::from_fn(|i| a.ptr.add((8 + i.min(SECOND - 1)) * a.rs + p));
        transpose8(rows, d.add(p * MR + 8), MR, SECOND);
    }
}

/// Packs `k` in `0..kc8` (a multiple of 8) of one whole `NR`-column panel of column-major B
/// (`b.rs == 1`): `d[p * NR + j] = b(p, j)`.
///
/// # Safety
/// AVX2; `b(p, j)` readable for `p < kc8`, `j < NR`; `d` writable for `kc8 * NR` f32.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn b_cols(d: *mut f32, b: Mat, kc8: usize) {
    debug_assert!(b.rs == 1 && kc8 % 8 == 0);
    for p in (0..kc8).step_by(8) {
        for g in (0..NR).step_by(8) {
            let cols: [*const f32; 8] = core::array::from_fn(|j| b.ptr.add((g + j) * b.cs + p));
            transpose8(cols, d.add(p * NR + g), NR, 8);
        }
    }
}
