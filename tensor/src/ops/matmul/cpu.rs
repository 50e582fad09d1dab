//! CPU batched GEMM: f32 through the crate's packed GEMM (`cpu::gemm`, in the precision set
//! by `set_float32_matmul_precision`), f64 through `matrixmultiply`. Both take row and column
//! strides, so transposed views multiply without a copy. f16/bf16 are upcast to f32 (and so
//! follow the f32 precision setting).

use crate::layout::Layout;
use crate::shape::{contiguous_strides, numel};
use crate::{HostBuffer, Result};
use alloc::vec::Vec;

/// Visits the storage offsets of every batch entry of `a` and `b` (the leading dims).
fn for_each_batch(al: &Layout, bl: &Layout, mut f: impl FnMut(usize, usize, usize)) {
    let r = al.rank();
    let batch_shape = &al.shape()[..r - 2];
    let n = numel(batch_shape);
    let cs = contiguous_strides(batch_shape);
    for i in 0..n {
        let (mut oa, mut ob) = (al.offset(), bl.offset());
        let mut rem = i;
        for d in 0..batch_shape.len() {
            let idx = rem / cs[d];
            rem %= cs[d];
            oa += idx * al.strides()[d];
            ob += idx * bl.strides()[d];
        }
        f(i, oa, ob);
    }
}

/// When `b` is one matrix broadcast over the batch (all its batch strides are 0) and `a`'s
/// batch and row dims merge into a single strided row dim, the whole batch is one GEMM of
/// `(batch*m) x k` by `k x n`: `b` is packed once instead of once per batch entry. This is
/// the `[B, N, D] x [D, D']` shape of every linear layer, where per-entry packing of the
/// weight otherwise dominates. A plain 2-D product is the one-entry case. Returns the merged
/// row count and row stride.
pub(super) fn merged_rows(al: &Layout, bl: &Layout) -> Option<(usize, usize)> {
    let r = al.rank();
    if r < 2 || bl.strides()[..r - 2].iter().any(|&s| s != 0) {
        return None;
    }
    let (shape, strides) = (al.shape(), al.strides());
    // Walk outwards from the row dim: each batch dim must step over all the rows inside it.
    let mut span = shape[r - 2] * strides[r - 2];
    for d in (0..r - 2).rev() {
        if shape[d] != 1 && strides[d] != span {
            return None;
        }
        span *= shape[d];
    }
    Some((numel(&shape[..r - 1]), strides[r - 2]))
}

/// `C = A B` through `cpu::gemm` with the implementation `imp`; `threaded = false` keeps it
/// on the calling thread.
///
/// # Safety
/// As [`crate::cpu::gemm::sgemm`].
#[allow(clippy::too_many_arguments)]
unsafe fn sgemm(
    imp: crate::cpu::gemm::GemmImpl,
    threaded: bool,
    m: usize,
    k: usize,
    n: usize,
    a: *const f32,
    rsa: isize,
    csa: isize,
    b: *const f32,
    rsb: isize,
    csb: isize,
    c: *mut f32,
    rsc: isize,
    csc: isize,
) {
    crate::cpu::gemm::sgemm_with(
        imp, threaded, m, k, n, a, rsa, csa, b, rsb, csb, c, rsc, csc,
    );
}

/// `C = A B` through `matrixmultiply::dgemm` (which threads by itself for large products).
///
/// # Safety
/// As `matrixmultiply::dgemm` with `beta = 0`.
#[allow(clippy::too_many_arguments)]
unsafe fn dgemm(
    _: (),
    _threaded: bool,
    m: usize,
    k: usize,
    n: usize,
    a: *const f64,
    rsa: isize,
    csa: isize,
    b: *const f64,
    rsb: isize,
    csb: isize,
    c: *mut f64,
    rsc: isize,
    csc: isize,
) {
    matrixmultiply::dgemm(m, k, n, 1.0, a, rsa, csa, b, rsb, csb, 0.0, c, rsc, csc);
}

/// The batched product through `$gemm(imp, threaded, m, k, n, a, rsa, csa, b, rsb, csb, c,
/// rsc, csc)`.
macro_rules! gemm_batched {
    ($gemm:path, $imp:expr, $t:ty, $a:expr, $al:expr, $b:expr, $bl:expr) => {{
        let imp = $imp;
        let (a, al, b, bl): (&[$t], &Layout, &[$t], &Layout) = ($a, $al, $b, $bl);
        let r = al.rank();
        let (m, k, n) = (al.shape()[r - 2], al.shape()[r - 1], bl.shape()[r - 1]);
        let (rsa, csa) = (al.strides()[r - 2] as isize, al.strides()[r - 1] as isize);
        let (rsb, csb) = (bl.strides()[r - 2] as isize, bl.strides()[r - 1] as isize);
        let batches = numel(&al.shape()[..r - 2]);
        let total = batches * m * n;
        if m * n > 0 && k > 0 && merged_rows(al, bl).is_some() {
            let (rows, rs) = merged_rows(al, bl).expect("checked");
            // The GEMM writes every element of C (it never reads C when not accumulating), so
            // its output is not zero-filled first: that pass cost as much as a small GEMM.
            let mut out: Vec<$t> = crate::cpu::pool::take_in_kernel(total);
            // SAFETY: as below; the merged rows address exactly the elements of `a`'s view,
            // and `out` has room for the `rows x n = total` elements C is made of, all of
            // which the GEMM writes before `set_len` exposes them.
            unsafe {
                $gemm(
                    imp,
                    true,
                    rows,
                    k,
                    n,
                    a.as_ptr().add(al.offset()),
                    rs as isize,
                    csa,
                    b.as_ptr().add(bl.offset()),
                    rsb,
                    csb,
                    out.as_mut_ptr(),
                    n as isize,
                    1,
                );
                out.set_len(total);
            }
            out
        } else if k == 0 {
            // An empty sum: C is zeros, written here rather than left to the GEMM (the f64
            // path's `matrixmultiply` is not relied on to write an uninitialized C when k = 0).
            crate::cpu::pool::filled_in_kernel(total, 0.0)
        } else {
            // As above, every element of C is written by one GEMM call (its batch entry's), so
            // `out` is not zero-filled first.
            let mut out: Vec<$t> = crate::cpu::pool::take_in_kernel(total);
            if m * n > 0 {
                // Small matrices (attention's per-head products) are single-threaded inside
                // GEMM: spread the batch entries over the threads instead. Each entry is computed
                // by the same call whichever thread runs it, so the result does not depend on the
                // thread count.
                let mut offsets = Vec::with_capacity(batches);
                for_each_batch(al, bl, |_, oa, ob| offsets.push((oa, ob)));
                // Large entries, when there are too few of them to share out evenly, keep GEMM's
                // own threading (work 0: one chunk, this thread); the others run GEMM
                // single-threaded on whichever thread has their chunk (the crate's pool must not
                // be entered again from its own workers). Splitting each of ViT-S/16's 48
                // per-head `197 x 64 x 197` products over the threads instead ran them at 50
                // GFLOP/s (a fork-join and a duplicate packing per product), a third of its
                // training step's GEMM time.
                let per_entry = (m * n).saturating_mul(k);
                let few = batches < 4 * crate::cpu::parallel::num_threads();
                let threaded = per_entry >= 1 << 21 && few;
                let work = if threaded {
                    0
                } else {
                    batches.saturating_mul(per_entry)
                };
                let spare = &mut out.spare_capacity_mut()[..total];
                crate::cpu::parallel::for_each_chunk_mut(spare, m * n, work, |range, chunk| {
                    for (c, &(oa, ob)) in chunk.chunks_exact_mut(m * n).zip(&offsets[range]) {
                        // SAFETY: the layouts were checked to fit their storages, so every element
                        // of the m×k and k×n views addressed with these strides is in bounds; `c`
                        // is an exclusively borrowed m×n row-major block, which GEMM only writes
                        // (beta = 0), so its being uninitialized is fine.
                        unsafe {
                            $gemm(
                                imp,
                                threaded,
                                m,
                                k,
                                n,
                                a.as_ptr().add(oa),
                                rsa,
                                csa,
                                b.as_ptr().add(ob),
                                rsb,
                                csb,
                                c.as_mut_ptr().cast::<$t>(),
                                n as isize,
                                1,
                            );
                        }
                    }
                });
                // SAFETY: the `batches` blocks of `m * n` cover all `total` elements, and each
                // block's GEMM call wrote every element of it.
                unsafe { out.set_len(total) };
            }
            out
        }
    }};
}

/// `[batch.., m, k] x [batch.., k, n]` for f32 slices, in the current
/// [`float32_matmul_precision`](crate::float32_matmul_precision) (read once per call).
///
/// Crate-private and unchecked: GEMM reads through raw pointers, so the caller guarantees
/// what `cpu::checks::matmul` checks (valid layouts fitting the slices, rank >= 2, equal
/// batch dims, matching inner dims, matrix strides <= isize::MAX).
pub(crate) fn matmul_f32(a: &[f32], al: &Layout, b: &[f32], bl: &Layout) -> Vec<f32> {
    let precision = crate::cpu::gemm::float32_matmul_precision();
    let imp = crate::cpu::gemm::GemmImpl::for_precision(precision);
    gemm_batched!(sgemm, imp, f32, a, al, b, bl)
}

/// `[batch.., m, k] x [batch.., k, n]` for f64 slices; preconditions as [`matmul_f32`].
pub(crate) fn matmul_f64(a: &[f64], al: &Layout, b: &[f64], bl: &Layout) -> Vec<f64> {
    gemm_batched!(dgemm, (), f64, a, al, b, bl)
}

pub(crate) fn matmul(
    a: &HostBuffer,
    al: &Layout,
    b: &HostBuffer,
    bl: &Layout,
) -> Result<HostBuffer> {
    al.check_fits("matmul", a.len())?;
    bl.check_fits("matmul", b.len())?;
    Ok(match (a, b) {
        (HostBuffer::F32(x), HostBuffer::F32(y)) => HostBuffer::F32(matmul_f32(x, al, y, bl)),
        (HostBuffer::F64(x), HostBuffer::F64(y)) => HostBuffer::F64(matmul_f64(x, al, y, bl)),
        (HostBuffer::F16(_), HostBuffer::F16(_)) | (HostBuffer::BF16(_), HostBuffer::BF16(_)) => {
            let dtype = a.dtype();
            let (x, y) = (
                crate::cpu::strided::gather_view(a, al).cast(crate::DType::F32),
                crate::cpu::strided::gather_view(b, bl).cast(crate::DType::F32),
            );
            let (cal, cbl) = (
                Layout::contiguous(al.shape()),
                Layout::contiguous(bl.shape()),
            );
            let out = matmul_f32(
                x.as_slice().expect("f32"),
                &cal,
                y.as_slice().expect("f32"),
                &cbl,
            );
            HostBuffer::F32(out).cast(dtype)
        }
        _ => {
            return Err(crate::Error::DType {
                op: "matmul",
                msg: crate::__format!(
                    "needs two float tensors of one dtype, got {} and {}",
                    a.dtype(),
                    b.dtype()
                ),
            })
        }
    })
}

#[cfg(test)]
mod tests {
    use crate::{Cpu, Tensor};
    use alloc::vec::Vec;

    /// Reference: every batch entry as its own 2-D product of contiguous copies.
    fn per_entry(a: &Tensor<Cpu>, b: &Tensor<Cpu>) -> Vec<f64> {
        let (bs, m) = (a.shape()[0], a.shape()[1]);
        let mut out = Vec::new();
        for i in 0..bs {
            let ai = a
                .narrow(0, i, 1)
                .unwrap()
                .reshape(&[m, a.shape()[2]])
                .unwrap();
            out.extend(
                ai.copy()
                    .unwrap()
                    .matmul(b)
                    .unwrap()
                    .to_vec::<f64>()
                    .unwrap(),
            );
        }
        out
    }

    #[test]
    fn broadcast_weight_runs_as_one_gemm_on_mergeable_and_strided_inputs() {
        let data: Vec<f64> = (0..3 * 4 * 5).map(|i| (i as f64 * 0.37).sin()).collect();
        let w: Vec<f64> = (0..5 * 6).map(|i| (i as f64 * 0.11).cos()).collect();
        let b = Tensor::from_vec(w, &[5, 6], &Cpu).unwrap();
        let a = Tensor::from_vec(data.clone(), &[3, 4, 5], &Cpu).unwrap();
        // Contiguous: merges into one 12x5 GEMM.
        assert!(super::merged_rows(
            &a.layout().clone(),
            &b.layout().broadcast_to(&[3, 5, 6]).unwrap()
        )
        .is_some());
        assert_eq!(
            a.matmul(&b).unwrap().to_vec::<f64>().unwrap(),
            per_entry(&a, &b)
        );
        // Batch and row dims swapped: does not merge, takes the per-entry path.
        let t = Tensor::from_vec(data, &[4, 3, 5], &Cpu)
            .unwrap()
            .permute(&[1, 0, 2])
            .unwrap();
        assert!(super::merged_rows(
            &t.layout().clone(),
            &b.layout().broadcast_to(&[3, 5, 6]).unwrap()
        )
        .is_none());
        assert_eq!(
            t.matmul(&b).unwrap().to_vec::<f64>().unwrap(),
            per_entry(&t, &b)
        );
    }
}
