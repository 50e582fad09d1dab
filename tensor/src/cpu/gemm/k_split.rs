//! One product's `k` range in several calls, with the bits of one [`super::sgemm`] call.
//!
//! A sum over `k` can be fed in parts when the operands along `k` are made piece by piece:
//! the convolution's weight gradient `dYᵀ · rows` sums over every patch row of the batch,
//! and building those rows a few MB at a time keeps each part in cache until the GEMM packs
//! it (`ops/conv/general.rs`). The packed nest already adds one `k` block at a time to C,
//! so parts cut at the whole product's block boundaries, each added to C in order, give
//! every element of C the same sums in the same order as one call.

use super::pack::{Mat, MatMut};
use super::packed::{self, KPart, Kind};
use super::row_sums::Sums;
use super::{float32_matmul_precision, packed_kind, GemmImpl};

/// How [`super::sgemm`] would cut the `k` of one `m x k x n` product into blocks, for
/// running it in parts with [`sgemm_k_part`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct KSplit {
    kind: Kind,
    step: usize,
}

impl KSplit {
    /// The split of the product `sgemm` runs now (in the current precision), or `None` when
    /// that product does not take the packed nest (a small product, or a CPU without the
    /// kernels): its bits are then not a sum of blocks.
    pub(crate) fn of(m: usize, k: usize, n: usize) -> Option<KSplit> {
        let kind = packed_kind(GemmImpl::for_precision(float32_matmul_precision()))?;
        if m == 0 || k == 0 || n == 0 || packed::takes_small(kind, true, m, k, n, true) {
            return None;
        }
        Some(KSplit {
            kind,
            step: KPart::whole(kind, k).step,
        })
    }

    /// Values of `k` per block: every part but the last is a whole number of these.
    pub(crate) fn step(&self) -> usize {
        self.step
    }
}

/// `C (+)= A B` for the part of a product's `k` range that A and B hold (`k` values), on the
/// crate's threads: `first` overwrites C, later parts add to it. Parts in `k` order, each a
/// multiple of `split.step()` values except the last, give C the bits of one
/// [`super::sgemm`] call over the whole range.
///
/// # Safety
/// As [`super::sgemm`] for the part's `m x k` A, `k x n` B and C, `k >= 1`; when `!first`
/// every element of C holds the value to add to.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn sgemm_k_part(
    split: KSplit,
    first: bool,
    m: usize,
    k: usize,
    n: usize,
    a: *const f32,
    rsa: usize,
    csa: usize,
    b: *const f32,
    rsb: usize,
    csb: usize,
    c: *mut f32,
    rsc: usize,
    csc: usize,
) {
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    let mat = |ptr, rs, cs| Mat { ptr, rs, cs };
    let c = MatMut {
        ptr: c,
        rs: rsc,
        cs: csc,
        bias: core::ptr::null(),
    };
    let part = KPart {
        step: split.step,
        accumulate: !first,
    };
    packed::gemm_k_part(
        split.kind,
        true,
        m,
        k,
        n,
        mat(a, rsa, csa),
        mat(b, rsb, csb),
        c,
        part,
        Sums::NONE,
    );
}
