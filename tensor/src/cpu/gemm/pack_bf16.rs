//! The bf16-pair packing of the `vdpbf16ps` kernel (`kernel_bf16.rs`): each `u32` of a
//! packed panel holds two consecutive values of `k` of one row of A (or column of B), rounded
//! to bf16 (`precision::bf16_bits`), the first in the low half. The f32 packing and the
//! layouts' docs are in `pack.rs`; the 8 x 8 transposes for row-major A and column-major B
//! in `pack_transpose.rs`.

use super::pack::Mat;
use super::precision::bf16_bits;
use super::{pack_transpose, MR, NR};

#[inline(always)]
fn pair(lo: f32, hi: f32) -> u32 {
    bf16_bits(lo) as u32 | (bf16_bits(hi) as u32) << 16
}

/// `out[j] = pair(lo[j], hi[j])` for `j < n`: the pairs of two contiguous runs (two rows of
/// row-major B, two columns of column-major A), a loop LLVM vectorizes with AVX2.
///
/// # Safety
/// `lo` and `hi` readable and `out` writable for `n` values.
unsafe fn pair_runs(lo: *const f32, hi: *const f32, out: *mut u32, n: usize) {
    #[target_feature(enable = "avx2")]
    unsafe fn avx2(lo: &[f32], hi: &[f32], out: &mut [u32]) {
        for ((o, &l), &h) in out.iter_mut().zip(lo).zip(hi) {
            *o = pair(l, h);
        }
    }
    let (lo, hi) = (
        core::slice::from_raw_parts(lo, n),
        core::slice::from_raw_parts(hi, n),
    );
    let out = core::slice::from_raw_parts_mut(out, n);
    if pack_transpose::available() {
        avx2(lo, hi, out)
    } else {
        for ((o, &l), &h) in out.iter_mut().zip(lo).zip(hi) {
            *o = pair(l, h);
        }
    }
}

/// `u32` entries of the bf16-pair packing of `kc` values of `k` for `lanes` rows/columns.
pub(super) fn pairs_len(kc: usize, lanes: usize) -> usize {
    kc.div_ceil(2) * lanes
}

/// Packs rows `0..rows`, `k` in `0..kc` of `a` as bf16 pairs: `rows.div_ceil(MR)` panels of
/// `MR * kc.div_ceil(2)` u32, `dst[panel * MR * kc2 + q * MR + i] = (a(i, 2q), a(i, 2q + 1))`.
///
/// # Safety
/// As [`pack_a_f32`](super::pack::pack_a_f32), with `dst` valid for `rows.div_ceil(MR) * pairs_len(kc, MR)` writes.
pub(super) unsafe fn pack_a_bf16(dst: *mut u32, a: Mat, rows: usize, kc: usize) {
    let kc2 = kc.div_ceil(2);
    if a.rs == 1 {
        pack_pairs_of_runs::<MR>(dst, a.ptr, a.cs, rows, kc);
        return;
    }
    for (panel, i0) in (0..rows).step_by(MR).enumerate() {
        let r = MR.min(rows - i0);
        let d = dst.add(panel * MR * kc2);
        let a = a.at(i0, 0);
        // Row-major A: whole panels through 8 x 8 transposes, 16 values of `k` at a time.
        let kc16 = if a.cs == 1 && r == MR && pack_transpose::available() {
            kc / 16 * 16
        } else {
            0
        };
        if kc16 > 0 {
            // SAFETY: AVX2 (checked); the panel's MR rows are readable for `kc16 <= kc`
            // values, and `d` holds the panel's `kc2 * MR` u32.
            pack_transpose::a_rows_bf16(d, a, kc16);
        }
        for q in kc16 / 2..kc2 {
            let (p0, p1) = (2 * q, 2 * q + 1);
            for i in 0..MR {
                let lo = if i < r { a.get(i, p0) } else { 0.0 };
                let hi = if i < r && p1 < kc { a.get(i, p1) } else { 0.0 };
                *d.add(q * MR + i) = pair(lo, hi);
            }
        }
    }
}

/// The bf16-pair packing where each `k` is one contiguous run of the `lanes` rows or columns
/// (column-major A, a weight gradient's `dYᵀ`; row-major B, a weight): `dst[panel * W * kc2 +
/// q * W + l] = (x(2q, l), x(2q + 1, l))` with `x(p, l)` at `src + p * k_stride + l`, `W` the
/// panel width. The runs are read whole, pair by pair, and dealt out to the panels: read
/// panel by panel instead, consecutive `k` are `k_stride` apart and every panel fetches the
/// same lines again (its packing then took a fifth of a bf16 ViT-S/16 step on AMD Zen 4).
///
/// # Safety
/// `x(p, l)` readable for `p < kc`, `l < lanes`; `dst` valid for
/// `lanes.div_ceil(W) * pairs_len(kc, W)` writes.
unsafe fn pack_pairs_of_runs<const W: usize>(
    dst: *mut u32,
    src: *const f32,
    k_stride: usize,
    lanes: usize,
    kc: usize,
) {
    // A multiple of both panel widths.
    const CHUNK: usize = 2 * MR * NR;
    let kc2 = kc.div_ceil(2);
    let mut pairs = [0u32; CHUNK];
    for q in 0..kc2 {
        let (p0, p1) = (2 * q, 2 * q + 1);
        for c0 in (0..lanes).step_by(CHUNK) {
            let n = CHUNK.min(lanes - c0);
            let s0 = src.add(c0 + p0 * k_stride);
            if p1 < kc {
                pair_runs(s0, src.add(c0 + p1 * k_stride), pairs.as_mut_ptr(), n);
            } else {
                for (i, x) in pairs[..n].iter_mut().enumerate() {
                    *x = pair(*s0.add(i), 0.0);
                }
            }
            // Whole panels in this chunk (CHUNK is a multiple of W), the last zero-padded.
            for (k, run) in pairs[..n].chunks(W).enumerate() {
                let panel = c0 / W + k;
                let d = dst.add(panel * W * kc2 + q * W);
                core::ptr::copy_nonoverlapping(run.as_ptr(), d, run.len());
                for l in run.len()..W {
                    *d.add(l) = 0;
                }
            }
        }
    }
}

/// Packs `k` in `0..kc`, columns `0..cols` of `b` as bf16 pairs: `cols.div_ceil(NR)` panels
/// of `NR * kc.div_ceil(2)` u32, `dst[panel * NR * kc2 + q * NR + j] = (b(2q, j), b(2q + 1, j))`.
///
/// # Safety
/// As [`pack_b_f32`](super::pack::pack_b_f32), with `dst` valid for `cols.div_ceil(NR) * pairs_len(kc, NR)` writes.
pub(super) unsafe fn pack_b_bf16(dst: *mut u32, b: Mat, kc: usize, cols: usize) {
    let kc2 = kc.div_ceil(2);
    if b.cs == 1 {
        pack_pairs_of_runs::<NR>(dst, b.ptr, b.rs, cols, kc);
        return;
    }
    for (panel, j0) in (0..cols).step_by(NR).enumerate() {
        let c = NR.min(cols - j0);
        let d = dst.add(panel * NR * kc2);
        let b = b.at(0, j0);
        // Column-major B: whole panels through 8 x 8 transposes, 16 values of `k` at a time.
        let kc16 = if b.rs == 1 && c == NR && pack_transpose::available() {
            kc / 16 * 16
        } else {
            0
        };
        if kc16 > 0 {
            // SAFETY: AVX2 (checked); the panel's NR columns are readable for `kc16 <= kc`
            // values, and `d` holds the panel's `kc2 * NR` u32.
            pack_transpose::b_cols_bf16(d, b, kc16);
        }
        for q in kc16 / 2..kc2 {
            let (p0, p1) = (2 * q, 2 * q + 1);
            for j in 0..NR {
                let lo = if j < c { b.get(p0, j) } else { 0.0 };
                let hi = if j < c && p1 < kc { b.get(p1, j) } else { 0.0 };
                *d.add(q * NR + j) = pair(lo, hi);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    /// The bf16-pair packs give the definition's pairs, rounded as `half` rounds, NaN
    /// included, on every path: row-major A and column-major B through 8 x 8 transposes of 16
    /// values of `k` at a time (`pack_transpose::a_rows_bf16` / `b_cols_bf16`), column-major
    /// A and row-major B as paired runs (`pair_runs`), and the scalar remainders.
    #[test]
    fn bf16_packs_match_the_definition_on_every_path() {
        // Values that round up, down and to even at the bf16 boundary, signed zeros, the
        // largest finite values, infinities and NaNs.
        let special = [
            1.0f32 + f32::EPSILON * 32768.0,
            1.0 + f32::EPSILON * 32767.0,
            1.0 + f32::EPSILON * 98304.0,
            -0.0,
            0.0,
            f32::MAX,
            f32::MIN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            -f32::NAN,
            f32::from_bits(0x7F80_0001),
            1e-40,
        ];
        let value = |x: usize| {
            if x % 7 == 3 {
                special[x / 7 % special.len()]
            } else {
                (x as f32 * 0.37 - 11.0) * 1.001
            }
        };
        let bits = |x: f32| half::bf16::from_f32(x).to_bits() as u32;
        let shapes = [
            (2 * MR + 3, NR + 5, 35usize),
            (MR, NR, 16),
            (MR + 1, 2 * NR, 64),
        ];
        // Both layouts of each operand: the transposing packs (row-major A, column-major B)
        // and the paired runs (column-major A, row-major B).
        for (&(rows, cols, kc), transposed) in shapes.iter().flat_map(|s| [(s, false), (s, true)]) {
            let kc2 = kc.div_ceil(2);
            let (lda, ldb) = if transposed {
                (rows + 3, cols + 5)
            } else {
                (kc + 3, kc + 5)
            };
            let av: alloc::vec::Vec<f32> = (0..rows.max(kc) * lda).map(value).collect();
            let bv: alloc::vec::Vec<f32> = (0..cols.max(kc) * ldb).map(|x| value(x + 5)).collect();
            // (rs, cs) of A (rows x kc) and B (kc x cols).
            let (ars, acs, brs, bcs) = if transposed {
                (1, lda, ldb, 1)
            } else {
                (lda, 1, 1, ldb)
            };
            let a = Mat {
                ptr: av.as_ptr(),
                rs: ars,
                cs: acs,
            };
            let b = Mat {
                ptr: bv.as_ptr(),
                rs: brs,
                cs: bcs,
            };
            let (ap, bp) = (rows.div_ceil(MR), cols.div_ceil(NR));
            let mut pa = vec![u32::MAX; ap * pairs_len(kc, MR)];
            let mut pb = vec![u32::MAX; bp * pairs_len(kc, NR)];
            // SAFETY: a is rows x kc inside av, b is kc x cols inside bv; the destinations
            // hold whole panels.
            unsafe {
                pack_a_bf16(pa.as_mut_ptr(), a, rows, kc);
                pack_b_bf16(pb.as_mut_ptr(), b, kc, cols);
            }
            // Panel `w`-wide packing of `lanes` lines, line `l`'s value at `k = p` from `x`.
            let check =
                |packed: &[u32], w: usize, lanes: usize, x: &dyn Fn(usize, usize) -> f32| {
                    for (panel, q, l) in (0..lanes.div_ceil(w)).flat_map(|panel| {
                        (0..kc2).flat_map(move |q| (0..w).map(move |l| (panel, q, l)))
                    }) {
                        let line = panel * w + l;
                        let e = |p: usize| {
                            if line < lanes && p < kc {
                                bits(x(line, p))
                            } else {
                                0
                            }
                        };
                        let got = packed[panel * w * kc2 + q * w + l];
                        let want = e(2 * q) | e(2 * q + 1) << 16;
                        assert_eq!(got, want, "w {w} line {line} q {q} transposed {transposed}");
                    }
                };
            check(&pa, MR, rows, &|i, p| av[i * ars + p * acs]);
            check(&pb, NR, cols, &|j, p| bv[p * brs + j * bcs]);
        }
    }
}
