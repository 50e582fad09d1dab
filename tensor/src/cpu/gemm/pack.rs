//! Packing: copies a block of strided A into row panels of [`MR`] rows and a block of strided
//! B into column panels of [`NR`] columns, in the order the microkernels read them, so the
//! kernels' loads are contiguous, aligned and independent of the operands' strides
//! (transposed views cost nothing extra here). Edge panels are zero-padded to full size, so
//! the kernels always compute whole `MR x NR` tiles; the padding rows and columns of a tile
//! are never written to C.
//!
//! Two layouts:
//! - f32: panel-major, then `k`, then the `MR` rows (A) or `NR` columns (B) of one `k`. With
//!   `ROUND` each panel is then rounded to bf16 values in place (the emulation of
//!   [`MatmulPrecision::Bf16`](super::MatmulPrecision::Bf16) on the f32 kernel).
//! - bf16 pairs: as f32 but per *pair* of consecutive `k` (`2q`, `2q + 1`), each entry a
//!   `u32` holding the two bf16 values (`2q` in the low half), which is the operand layout of
//!   `vdpbf16ps` (packed in `pack_bf16.rs`). An odd `k` count is padded with a zero `k` in
//!   both A and B.

use super::precision::round_bf16;
use super::row_sums::KSums;
use super::{pack_transpose, MR, NR};
use crate::cpu::simd::prefetch_lines_l2;

/// A read-only strided matrix: element `(i, j)` at `ptr + i * rs + j * cs`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Mat {
    pub ptr: *const f32,
    pub rs: usize,
    pub cs: usize,
}

/// A writable strided matrix: element `(i, j)` at `ptr + i * rs + j * cs`.
#[derive(Clone, Copy, Debug)]
pub(super) struct MatMut {
    pub ptr: *mut f32,
    pub rs: usize,
    pub cs: usize,
    /// Null, or a row added to C once its sum is complete (`bias + j` for column `j`): the
    /// linear layer's bias, added to each tile while it is still in L1 instead of in a pass
    /// over C afterwards. Added after the last `k` block, so each element is `(A B) + bias`
    /// in the order the separate `add` computes it.
    pub bias: *const f32,
}

impl MatMut {
    /// The matrix from element `(i, j)` on (with its bias from column `j`).
    ///
    /// # Safety
    /// `(i, j)` is inside the matrix (or one past it in one dimension).
    pub(super) unsafe fn at(self, i: usize, j: usize) -> Self {
        MatMut {
            ptr: self.ptr.add(i * self.rs + j * self.cs),
            bias: if self.bias.is_null() {
                self.bias
            } else {
                self.bias.add(j)
            },
            ..self
        }
    }
}

/// A [`Mat`] read by several threads at once (packing only reads).
#[derive(Clone, Copy, Debug)]
pub(super) struct Shared(pub Mat);

impl Shared {
    /// The matrix (a method, so closures capture the whole `Shared`).
    pub fn get(self) -> Mat {
        self.0
    }
}

// SAFETY: the matrix is only read while shared, and the caller of the packing keeps it
// valid for the whole parallel region.
unsafe impl Send for Shared {}
// SAFETY: as above.
unsafe impl Sync for Shared {}

impl Mat {
    /// The view starting at element `(i, j)`.
    ///
    /// # Safety
    /// `(i, j)` is inside the matrix (or one past, for an empty block).
    #[inline(always)]
    pub unsafe fn at(self, i: usize, j: usize) -> Mat {
        Mat {
            ptr: self.ptr.add(i * self.rs + j * self.cs),
            ..self
        }
    }

    /// The transpose: the same elements with the strides swapped.
    pub fn transposed(self) -> Mat {
        Mat {
            ptr: self.ptr,
            rs: self.cs,
            cs: self.rs,
        }
    }

    /// # Safety
    /// `(i, j)` is an element of the matrix.
    #[inline(always)]
    pub unsafe fn get(self, i: usize, j: usize) -> f32 {
        *self.ptr.add(i * self.rs + j * self.cs)
    }
}

/// Copies `len` (at most `W`) values from `src` to `dst` and zeroes `dst[len..W]`. The
/// lengths of whole panels (`W`) and of a narrow ResNet's 16 channels (`W / 2`, which the
/// 14 x 16 kernels read) are constants here, so those copies compile to vector moves rather
/// than `memcpy` calls.
///
/// # Safety
/// `src` is valid for `len` reads, `dst` for `W` writes, and they do not overlap.
#[inline(always)]
unsafe fn copy_padded<const W: usize>(src: *const f32, dst: *mut f32, len: usize) {
    if len == W {
        core::ptr::copy_nonoverlapping(src, dst, W);
    } else if len == W / 2 {
        core::ptr::copy_nonoverlapping(src, dst, W / 2);
        core::ptr::write_bytes(dst.add(W / 2), 0, W - W / 2);
    } else {
        core::ptr::copy_nonoverlapping(src, dst, len);
        core::ptr::write_bytes(dst.add(len), 0, W - len);
    }
}

/// How many runs ahead [`copy_runs`] asks (into L2) for the lines it will read: 4 to 16
/// measured the same on the weight gradients' packs, and asking into L2 rather than L1 was
/// 3–6% faster with the operands in memory (2-core Xeon).
const RUNS_AHEAD: usize = 8;

/// Packs `kc` runs of `len` contiguous values, run `p` at `src + p * stride`, into
/// `len.div_ceil(W)` panels of `W * kc` (`dst[panel * W * kc + p * W + i] = run_p[panel * W
/// + i]`, zeros past `len`). The weight gradient `dYᵀ X` packs both operands this way, with
/// a run per token and runs one row of the activations apart (0.75–3 KB): they arrive from
/// memory in short pieces, one or two pages apart, which the hardware prefetchers barely
/// follow. Walking the runs in order, each whole, and asking for the lines of the run
/// [`RUNS_AHEAD`] ahead took 6–10% off those products (2-core Xeon, M = 4352). Each run is
/// also added into `sums` (nothing for [`KSums::NONE`]), in order, while it is in L1.
///
/// # Safety
/// Each run is readable, `dst` is valid for `len.div_ceil(W) * W * kc` writes, and `sums`
/// as [`KSums::add_run`] for runs of `len`.
#[inline(always)]
unsafe fn copy_runs<const W: usize>(
    dst: *mut f32,
    src: *const f32,
    stride: usize,
    len: usize,
    kc: usize,
    sums: &KSums,
) {
    let panels = len.div_ceil(W);
    for p in 0..kc {
        let run = src.add(p * stride);
        if p + RUNS_AHEAD < kc {
            prefetch_lines_l2(src.wrapping_add((p + RUNS_AHEAD) * stride), len);
        }
        for panel in 0..panels {
            let i0 = panel * W;
            copy_padded::<W>(
                run.add(i0),
                dst.add(panel * W * kc + p * W),
                W.min(len - i0),
            );
        }
        sums.add_run(run, len);
    }
}

/// Rounds a packed panel to bf16 values in place (the bf16 emulation's packing: the copies
/// above stay plain moves and transposes, and this one pass over the panel, still in L1,
/// vectorises; with AVX2 where the CPU has it).
///
/// # Safety
/// `p` valid for `len` reads and writes.
unsafe fn round_panel(p: *mut f32, len: usize) {
    #[target_feature(enable = "avx2")]
    unsafe fn avx2(s: &mut [f32]) {
        s.iter_mut().for_each(|v| *v = round_bf16(*v));
    }
    let s = core::slice::from_raw_parts_mut(p, len);
    if pack_transpose::available() {
        avx2(s)
    } else {
        s.iter_mut().for_each(|v| *v = round_bf16(*v));
    }
}

/// Packs rows `0..rows` and `k` in `0..kc` of `a` into `rows.div_ceil(MR)` panels of
/// `MR * kc` f32: `dst[panel * MR * kc + p * MR + i] = a(panel * MR + i, p)`. A column-major
/// `a` also has each row's values added into `sums` in `k` order (the caller passes
/// [`KSums::NONE`] for any other `a`: only the copying pack sums).
///
/// # Safety
/// Every element `a(i, p)`, `i < rows`, `p < kc`, is readable, `dst` is valid for
/// `rows.div_ceil(MR) * MR * kc` writes, and `sums` as [`KSums::add_run`] for runs of
/// `rows`.
pub(super) unsafe fn pack_a_f32<const ROUND: bool>(
    dst: *mut f32,
    a: Mat,
    rows: usize,
    kc: usize,
    sums: &KSums,
) {
    if a.rs == 1 {
        // Column-major A (a transposed view): each k is `rows` contiguous values.
        copy_runs::<MR>(dst, a.ptr, a.cs, rows, kc, sums);
    }
    for (panel, i0) in (0..rows).step_by(MR).enumerate() {
        let r = MR.min(rows - i0);
        let d = dst.add(panel * MR * kc);
        let a = a.at(i0, 0);
        if a.rs != 1 {
            // Row-major A: a transpose, 8 x 8 blocks at a time where it can.
            let kc8 = if r == MR && a.cs == 1 && pack_transpose::available() {
                let kc8 = kc - kc % 8;
                pack_transpose::a_rows(d, a, kc8);
                kc8
            } else {
                0
            };
            for p in kc8..kc {
                for i in 0..MR {
                    let v = if i < r { a.get(i, p) } else { 0.0 };
                    *d.add(p * MR + i) = v;
                }
            }
        }
        if ROUND {
            round_panel(d, MR * kc);
        }
    }
}

/// Packs `k` in `0..kc` and columns `0..cols` of `b` into `cols.div_ceil(NR)` panels of
/// `NR * kc` f32: `dst[panel * NR * kc + p * NR + j] = b(p, panel * NR + j)`. A row-major
/// `b` also has each column's values added into `sums` in `k` order (the caller passes
/// [`KSums::NONE`] for any other `b`).
///
/// # Safety
/// Every element `b(p, j)`, `p < kc`, `j < cols`, is readable, `dst` is valid for
/// `cols.div_ceil(NR) * NR * kc` writes, and `sums` as [`KSums::add_run`] for runs of
/// `cols`.
pub(super) unsafe fn pack_b_f32<const ROUND: bool>(
    dst: *mut f32,
    b: Mat,
    kc: usize,
    cols: usize,
    sums: &KSums,
) {
    if b.cs == 1 {
        // Row-major B: each k is `cols` contiguous values.
        copy_runs::<NR>(dst, b.ptr, b.rs, cols, kc, sums);
    }
    for (panel, j0) in (0..cols).step_by(NR).enumerate() {
        let c = NR.min(cols - j0);
        let d = dst.add(panel * NR * kc);
        let b = b.at(0, j0);
        if b.cs != 1 {
            // Column-major B: a transpose, 8 x 8 blocks at a time where it can.
            let kc8 = if c == NR && b.rs == 1 && pack_transpose::available() {
                let kc8 = kc - kc % 8;
                pack_transpose::b_cols(d, b, kc8);
                kc8
            } else {
                0
            };
            for p in kc8..kc {
                for j in 0..NR {
                    let v = if j < c { b.get(p, j) } else { 0.0 };
                    *d.add(p * NR + j) = v;
                }
            }
        }
        if ROUND {
            round_panel(d, NR * kc);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::pack_bf16::{pack_b_bf16, pairs_len};
    use super::*;
    use alloc::vec;

    #[test]
    fn transposing_packs_match_the_definition() {
        // Row-major A and column-major B with padded strides, whole and edge panels, and k
        // counts on and off a multiple of 8 (the AVX2 blocks and the scalar remainder).
        for &(rows, cols, kc) in &[(2 * MR + 3, NR + 5, 19), (MR, NR, 8), (MR + 1, 2 * NR, 37)] {
            let (lda, ldb) = (kc + 3, kc + 5);
            let av: alloc::vec::Vec<f32> = (0..rows * lda).map(|x| x as f32 * 0.5 - 7.0).collect();
            let bv: alloc::vec::Vec<f32> = (0..cols * ldb).map(|x| 3.0 - x as f32).collect();
            let a = Mat {
                ptr: av.as_ptr(),
                rs: lda,
                cs: 1,
            };
            let b = Mat {
                ptr: bv.as_ptr(),
                rs: 1,
                cs: ldb,
            };
            let (ap, bp) = (rows.div_ceil(MR), cols.div_ceil(NR));
            let mut pa = vec![f32::NAN; ap * MR * kc];
            let mut pb = vec![f32::NAN; bp * NR * kc];
            // SAFETY: a is rows x kc inside av, b is kc x cols inside bv; the destinations
            // hold whole panels.
            unsafe {
                pack_a_f32::<false>(pa.as_mut_ptr(), a, rows, kc, &KSums::NONE);
                pack_b_f32::<false>(pb.as_mut_ptr(), b, kc, cols, &KSums::NONE);
            }
            for panel in 0..ap {
                for p in 0..kc {
                    for i in 0..MR {
                        let row = panel * MR + i;
                        let want = if row < rows { av[row * lda + p] } else { 0.0 };
                        assert_eq!(pa[panel * MR * kc + p * MR + i], want, "a {row} {p}");
                    }
                }
            }
            for panel in 0..bp {
                for p in 0..kc {
                    for j in 0..NR {
                        let col = panel * NR + j;
                        let want = if col < cols { bv[col * ldb + p] } else { 0.0 };
                        assert_eq!(pb[panel * NR * kc + p * NR + j], want, "b {p} {col}");
                    }
                }
            }
        }
    }

    #[test]
    fn edge_panels_are_zero_padded_and_pairs_interleave() {
        // a: 3 x 5 column-major (rs = 1, cs = 3); b: 5 x 3 row-major.
        let av: alloc::vec::Vec<f32> = (0..15).map(|x| x as f32 + 1.0).collect();
        let a = Mat {
            ptr: av.as_ptr(),
            rs: 1,
            cs: 3,
        };
        let mut pa = vec![f32::NAN; MR * 5];
        // SAFETY: a is 3 x 5 inside av; pa holds one panel of MR x 5.
        unsafe { pack_a_f32::<false>(pa.as_mut_ptr(), a, 3, 5, &KSums::NONE) };
        for p in 0..5 {
            for i in 0..MR {
                let want = if i < 3 { (p * 3 + i) as f32 + 1.0 } else { 0.0 };
                assert_eq!(pa[p * MR + i], want);
            }
        }
        let b = Mat {
            ptr: av.as_ptr(),
            rs: 3,
            cs: 1,
        };
        let mut pb = vec![u32::MAX; pairs_len(5, NR)];
        // SAFETY: b is 5 x 3 inside av; pb holds one panel of 3 pairs x NR.
        unsafe { pack_b_bf16(pb.as_mut_ptr(), b, 5, 3) };
        for q in 0..3 {
            for j in 0..NR {
                let e = |p: usize| {
                    if j < 3 && p < 5 {
                        half::bf16::from_f32(av[p * 3 + j]).to_bits() as u32
                    } else {
                        0
                    }
                };
                assert_eq!(pb[q * NR + j], e(2 * q) | e(2 * q + 1) << 16);
            }
        }
    }
}
