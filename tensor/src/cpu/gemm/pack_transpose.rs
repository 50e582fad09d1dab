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
    store_transposed(r, dst, dst_stride, lanes);
}

/// Writes column `j` of the 8 x 8 block whose rows are `r` (8 values, or the first `lanes`)
/// at `dst + j * dst_stride`.
///
/// # Safety
/// AVX2; `dst + j * dst_stride` writable for `lanes` f32, `j < 8`.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn store_transposed(r: [__m256; 8], dst: *mut f32, dst_stride: usize, lanes: usize) {
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

/// The bf16 pairs of 16 contiguous f32 at `src`: lane `q` holds `(x[2q], x[2q + 1])`, each
/// rounded to nearest even as `precision::bf16_bits` rounds it (NaN kept quiet), the first in
/// the low half, as `pack_bf16::pair` builds it.
///
/// # Safety
/// AVX2; `src` readable for 16 f32.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn bf16_pairs(src: *const f32) -> __m256 {
    // Each f32's bf16 value in its high 16 bits (the low 16 are left over).
    let rounded = |x: __m256| {
        let bits = _mm256_castps_si256(x);
        let odd = _mm256_and_si256(_mm256_srli_epi32::<16>(bits), _mm256_set1_epi32(1));
        let up = _mm256_add_epi32(bits, _mm256_add_epi32(odd, _mm256_set1_epi32(0x7FFF)));
        let quiet = _mm256_or_si256(bits, _mm256_set1_epi32(0x0040_0000));
        let nan = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_UNORD_Q>(x, x));
        _mm256_blendv_epi8(up, quiet, nan)
    };
    // Per 64-bit lane (lo, hi): word 0 of `lo >> 16` and word 1 of `hi` make the pair's u32.
    let pairs = |x: __m256| {
        let r = rounded(x);
        let p = _mm256_blend_epi16::<0b1010_1010>(
            _mm256_srli_epi64::<16>(r),
            _mm256_srli_epi64::<32>(r),
        );
        // The four pairs sit in dwords 0, 2, 4, 6: gather them into the low half.
        _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6))
    };
    let lo = pairs(_mm256_loadu_ps(src));
    let hi = pairs(_mm256_loadu_ps(src.add(8)));
    _mm256_castsi256_ps(_mm256_permute2x128_si256::<0x20>(lo, hi))
}

/// The bf16-pair packing of `k` in `0..kc16` (a multiple of 16) of 8 lines (rows of
/// row-major A, or columns of column-major B) whose values along `k` are contiguous from
/// `src[i]`: `d[q * stride + i] = (line_i[2q], line_i[2q + 1])` for `i < lanes`.
///
/// # Safety
/// AVX2; `src[i]` readable for `kc16` f32; `d + q * stride` writable for `lanes` u32.
#[target_feature(enable = "avx2")]
unsafe fn pairs_block(src: [*const f32; 8], d: *mut u32, stride: usize, kc16: usize, lanes: usize) {
    for p in (0..kc16).step_by(16) {
        let r: [__m256; 8] = core::array::from_fn(|i| bf16_pairs(src[i].add(p)));
        store_transposed(r, d.add(p / 2 * stride).cast(), stride, lanes);
    }
}

/// [`a_rows`] for the bf16-pair packing (`pack_bf16::pack_a_bf16`): `k` in `0..kc16` (a multiple
/// of 16) of one whole `MR`-row panel of row-major A, `d[q * MR + i] = (a(i, 2q), a(i, 2q + 1))`.
///
/// # Safety
/// AVX2; `a(i, p)` readable for `i < MR`, `p < kc16`; `d` writable for `kc16 / 2 * MR` u32.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn a_rows_bf16(d: *mut u32, a: Mat, kc16: usize) {
    debug_assert!(a.cs == 1 && kc16 % 16 == 0);
    const SECOND: usize = MR - 8;
    pairs_block(
        core::array::from_fn(|i| a.ptr.add(i * a.rs)),
        d,
        MR,
        kc16,
        8,
    );
    let rows = core::array::from_fn(|i| a.ptr.add((8 + i.min(SECOND - 1)) * a.rs));
    pairs_block(rows, d.add(8), MR, kc16, SECOND);
}

/// [`b_cols`] for the bf16-pair packing (`pack_bf16::pack_b_bf16`): `k` in `0..kc16` (a multiple
/// of 16) of one whole `NR`-column panel of column-major B,
/// `d[q * NR + j] = (b(2q, j), b(2q + 1, j))`.
///
/// # Safety
/// AVX2; `b(p, j)` readable for `p < kc16`, `j < NR`; `d` writable for `kc16 / 2 * NR` u32.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn b_cols_bf16(d: *mut u32, b: Mat, kc16: usize) {
    debug_assert!(b.rs == 1 && kc16 % 16 == 0);
    for g in (0..NR).step_by(8) {
        let cols = core::array::from_fn(|j| b.ptr.add((g + j) * b.cs));
        pairs_block(cols, d.add(g), NR, kc16, 8);
    }
}
