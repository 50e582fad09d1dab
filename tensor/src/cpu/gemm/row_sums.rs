//! `C = A B` and the row sums of A in one pass over A: a linear layer's weight and bias
//! gradients (PyTorch: the bias gradient `dY.sum(0)` beside `dYᵀ X`; cuBLASLt fuses the two
//! as its `BGRADA` epilogue).
//!
//! The weight gradient's GEMM reads A = `dYᵀ` (a transposed view of the row-major output
//! gradient) one row of `dY` at a time while it packs A: each `k` is a run of contiguous
//! values, one per row of A. Adding each run into f64 accumulators as it is copied gives
//! the bias gradient, the column sums of `dY`, without the separate pass over `dY` that cost
//! 1.1 ms per transformer block of the default DINO step (2-core Xeon). Every accumulator
//! starts at -0.0 and adds its `k` values in increasing order, one f64 add each: the order
//! of the backend's sum over the rows of `dY` (`ops/reduce/sum_contiguous.rs`), so the sums
//! are the same bits.

use super::pack::Mat;
use super::packed::{self, KPart, Kind};
use super::{packed_kind, GemmImpl};
use core::ops::Range;

/// Where a pack adds up, over `k`, the values it copies of one operand: one f64 accumulator
/// per lane (a row of A, a column of B), lane `i` of the view at `ptr + i`, kept for the
/// lanes `lo..hi` of the view only (each thread of a product sums its own share of the
/// lanes, also where every thread packs the whole operand).
#[derive(Clone, Copy, Debug)]
pub(super) struct KSums {
    ptr: *mut f64,
    lo: usize,
    hi: usize,
}

// SAFETY: a `KSums` is handed to the threads of one product only, each with its own
// disjoint lanes (see `packed::gemm_oriented`), while the caller keeps the accumulators valid.
unsafe impl Send for KSums {}
// SAFETY: as above.
unsafe impl Sync for KSums {}

/// The sums a product's packs keep: A's rows' or B's columns' (at most one of them is
/// anything, the operand that was A when the call was made, which the nest may have
/// transposed into B).
#[derive(Clone, Copy, Debug)]
pub(super) struct Sums {
    pub a: KSums,
    pub b: KSums,
}

impl Sums {
    /// No sums.
    pub(super) const NONE: Sums = Sums {
        a: KSums::NONE,
        b: KSums::NONE,
    };

    /// The sums of `Cᵀ = Bᵀ Aᵀ`: A's become B's.
    pub(super) fn transposed(self) -> Sums {
        Sums {
            a: self.b,
            b: self.a,
        }
    }
}

impl KSums {
    /// No sums: the packs only copy.
    pub(super) const NONE: KSums = KSums {
        ptr: core::ptr::null_mut(),
        lo: 0,
        hi: 0,
    };

    /// Whether there is anything to sum.
    pub(super) fn is_none(&self) -> bool {
        self.lo >= self.hi
    }

    /// The same sums seen from lane `i` of the view on (for the view `a.at(i, 0)` of A,
    /// `b.at(0, i)` of B).
    pub(super) fn at_lane(&self, i: usize) -> KSums {
        if self.is_none() {
            return KSums::NONE;
        }
        KSums {
            ptr: self.ptr.wrapping_add(i),
            lo: self.lo.saturating_sub(i),
            hi: self.hi.saturating_sub(i),
        }
    }

    /// The sums of `lanes` of the view only.
    pub(super) fn only(&self, lanes: Range<usize>) -> KSums {
        KSums {
            lo: self.lo.max(lanes.start),
            hi: self.hi.min(lanes.end),
            ..*self
        }
    }

    /// Adds `run`, the values of one `k` for lanes `0..len` of the view, into the sums of
    /// the lanes kept.
    ///
    /// # Safety
    /// `run` is readable for `len` values; the kept lanes below `len` are accumulators this
    /// thread may write; the CPU has AVX-512F (the packed kernels' requirement).
    #[inline(always)]
    pub(super) unsafe fn add_run(&self, run: *const f32, len: usize) {
        let lanes = self.lo..self.hi.min(len);
        if lanes.is_empty() {
            return;
        }
        let acc = core::slice::from_raw_parts_mut(self.ptr.add(lanes.start), lanes.len());
        let run = core::slice::from_raw_parts(run.add(lanes.start), lanes.len());
        add_f64(acc, run);
    }
}

/// `acc[i] += run[i] as f64`, compiled for AVX-512 (eight f64 lanes; each lane's one add is
/// the same with any vector width).
///
/// # Safety
/// The CPU has AVX-512F.
#[target_feature(enable = "avx512f")]
unsafe fn add_f64(acc: &mut [f64], run: &[f32]) {
    for (a, &x) in acc.iter_mut().zip(run) {
        *a += x as f64;
    }
}

/// `C = A B` on the packed f32 kernels, with `sums[i]` (f64) incremented by each `A(i, p)`
/// in increasing `p`, when A is column-major (`rsa == 1`: the transposed view `dYᵀ` of a
/// row-major gradient) and the product takes the packed nest in the f32 precision (in
/// either orientation: computed as `Cᵀ = Xᵀ dY`, `dY` is B, row-major, and summed by
/// columns as it is packed). Returns
/// `false`, touching nothing, for any other product; the caller then multiplies and sums
/// separately.
///
/// # Safety
/// As [`super::sgemm`] with non-negative strides, and `sums` valid for `m` reads and writes.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn sgemm_row_sums_with(
    imp: GemmImpl,
    m: usize,
    k: usize,
    n: usize,
    (a, rsa, csa): (*const f32, usize, usize),
    (b, rsb, csb): (*const f32, usize, usize),
    (c, rsc, csc): (*mut f32, usize, usize),
    sums: *mut f64,
) -> bool {
    let Some(kind) = packed_kind(imp) else {
        return false;
    };
    // The small-product kernels read A in place (no pack to sum in); bf16 packs round.
    if kind != Kind::F32 || rsa != 1 || m == 0 || n == 0 || k == 0 {
        return false;
    }
    if packed::takes_small(kind, true, m, k, n, true) {
        return false;
    }
    let mat = |ptr, rs, cs| Mat { ptr, rs, cs };
    let c = super::pack::MatMut {
        ptr: c,
        rs: rsc,
        cs: csc,
        bias: core::ptr::null(),
    };
    let a_sums = KSums {
        ptr: sums,
        lo: 0,
        hi: m,
    };
    let sums = Sums {
        a: a_sums,
        b: KSums::NONE,
    };
    packed::gemm_k_part(
        kind,
        true,
        m,
        k,
        n,
        mat(a, rsa, csa),
        mat(b, rsb, csb),
        c,
        KPart::whole(kind, k),
        sums,
    );
    true
}
