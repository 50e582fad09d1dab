//! Gathering a transposed view in cache blocks.
//!
//! Copying a permuted view to row-major order (`x.permute(..).copy()`, `contiguous()`, the
//! gather in front of a kernel that needs contiguous input) walks the source along the view's
//! last dim. When that dim is not the source's fastest one, e.g. NCHW → NHWC, every element
//! read comes from a different cache line, and a convolution's layout changes cost more than
//! its GEMM. Most such views are a batch of plain 2-D transposes: after merging dims that are
//! contiguous with each other, some dim `a` has source stride 1 and the last dim `b` does not.
//! Then the copy goes tile by tile: a `TILE × TILE` block reads `TILE` source lines and writes
//! `TILE` destination lines, all of which stay in L1.
//!
//! The result is the same row-major copy as the element-by-element gather (it only changes the
//! order the elements are copied in), so nothing downstream changes.

use crate::cpu::{parallel, pool};
use crate::layout::Layout;
use alloc::vec::Vec;
use core::mem::MaybeUninit;
use core::ops::Range;
use smallvec::SmallVec;

/// Side of the square tiles: a 32 × 32 f32 tile reads 32 source lines twice and writes 32
/// destination lines twice, all within L1; inside a tile, 8 × 8 blocks go through AVX2.
const TILE: usize = 32;

/// A dim of the merged view: size, source stride, destination (row-major) stride.
#[derive(Clone, Copy, Debug)]
struct Dim {
    size: usize,
    src: usize,
    dst: usize,
}

/// How a transposing view is copied: `rest` are the dims other than `a` (source stride 1) and
/// `b` (the last), outermost first.
#[derive(Debug)]
struct Plan {
    a: Dim,
    b: Dim,
    rest: SmallVec<[Dim; 6]>,
    /// Index of `a` among the merged dims (0 when `a` is the outermost).
    a_pos: usize,
    /// The merged dims, outermost first.
    dims: SmallVec<[Dim; 8]>,
}

/// The view with size-1 dims dropped and neighbours merged where the outer one steps exactly
/// over the inner one (`stride[d] == size[d+1] * stride[d+1]`), as `(size, source stride)`.
fn merged(layout: &Layout) -> SmallVec<[(usize, usize); 8]> {
    let mut out: SmallVec<[(usize, usize); 8]> = SmallVec::new();
    for (&size, &stride) in layout.shape().iter().zip(layout.strides()) {
        if size == 1 {
            continue;
        }
        match out.last_mut() {
            Some(last) if last.1 == size * stride => *last = (last.0 * size, stride),
            _ => out.push((size, stride)),
        }
    }
    out
}

fn plan(layout: &Layout) -> Option<Plan> {
    let m = merged(layout);
    let r = m.len();
    if r < 2 || m[r - 1].1 == 1 {
        return None; // contiguous rows already: the row-by-row gather copies runs
    }
    let a_pos = m[..r - 1].iter().position(|&(_, s)| s == 1)?;
    // Small tiles are not worth the bookkeeping; the plain gather handles them.
    if m[a_pos].0 < 4 || m[r - 1].0 < 4 {
        return None;
    }
    let mut dims: SmallVec<[Dim; 8]> = SmallVec::new();
    let mut dst = 1;
    for &(size, src) in m.iter().rev() {
        dims.push(Dim { size, src, dst });
        dst *= size;
    }
    dims.reverse();
    let rest = dims
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != a_pos && i != r - 1)
        .map(|(_, d)| *d)
        .collect();
    Some(Plan {
        a: dims[a_pos],
        b: dims[r - 1],
        rest,
        a_pos,
        dims,
    })
}

/// The elements of `layout` in row-major order, copied in tiles, when the view is a batch of
/// transposes (see the module docs); `None` otherwise, and for views too small to gain.
pub(crate) fn gather<T: Copy + Send + Sync>(src: &[T], layout: &Layout) -> Option<Vec<T>> {
    let numel = layout.numel();
    if numel < 4096 {
        return None;
    }
    let plan = plan(layout)?;
    // Reading every source element a plan names is in bounds: a valid layout bounds them all.
    if layout.checked_required_len()? > src.len() {
        return None;
    }
    let mut out: Vec<T> = pool::take("transpose", numel).ok()?;
    let slots = &mut out.spare_capacity_mut()[..numel];
    // Threads take contiguous ranges of the outermost merged dim, which is `a` itself or one
    // of `rest`; either way a range of it is a contiguous range of the output.
    let outer = plan.dims[0];
    parallel::for_each_chunk_mut(slots, outer.dst, numel, |range, chunk| {
        let base = layout.offset();
        if plan.a_pos == 0 {
            // Rows of `a` in `range`, every index of `rest`.
            for_each_rest(&plan.rest, |s, d| {
                tiles(src, base + s, chunk, d, &plan, range.clone());
            });
        } else {
            // `rest[0]` is the outermost dim: its indices in `range`, the other dims whole.
            let (first, inner) = plan.rest.split_first().expect("a is not outermost");
            for i in range.clone() {
                let s0 = base + i * first.src;
                let d0 = (i - range.start) * first.dst;
                for_each_rest(inner, |s, d| {
                    tiles(src, s0 + s, chunk, d0 + d, &plan, 0..plan.a.size);
                });
            }
        }
    });
    // SAFETY: the chunks cover `0..numel`, and within a chunk the indices of `rest` and the
    // rows and columns of every tile cover each destination element once (row-major offsets
    // of distinct indices are distinct), so all `numel` slots were written.
    unsafe { out.set_len(numel) };
    Some(out)
}

/// Calls `f(source offset, destination offset)` for every index of `dims` (row-major).
fn for_each_rest(dims: &[Dim], mut f: impl FnMut(usize, usize)) {
    let mut idx: SmallVec<[usize; 6]> = SmallVec::from_elem(0, dims.len());
    let (mut s, mut d) = (0, 0);
    loop {
        f(s, d);
        let mut k = dims.len();
        loop {
            if k == 0 {
                return;
            }
            k -= 1;
            idx[k] += 1;
            if idx[k] < dims[k].size {
                s += dims[k].src;
                d += dims[k].dst;
                break;
            }
            s -= (dims[k].size - 1) * dims[k].src;
            d -= (dims[k].size - 1) * dims[k].dst;
            idx[k] = 0;
        }
    }
}

/// Copies rows `rows` of the `(a, b)` matrix at source offset `s` (`a` stride 1, `b` stride
/// `plan.b.src`) to `out` at offset `d`. Row `i` lands at `d + (i - row0) * a.dst`, where
/// `row0` is `rows.start` when `a` is the dim the chunks split (else 0).
fn tiles<T: Copy>(
    src: &[T],
    s: usize,
    out: &mut [MaybeUninit<T>],
    d: usize,
    plan: &Plan,
    rows: Range<usize>,
) {
    let b = plan.b;
    let row0 = if plan.a_pos == 0 { rows.start } else { 0 };
    let mut i0 = rows.start;
    while i0 < rows.end {
        let i1 = (i0 + TILE).min(rows.end);
        let mut j0 = 0;
        while j0 < b.size {
            let j1 = (j0 + TILE).min(b.size);
            let tile = Tile {
                s,
                d,
                row0,
                i: i0..i1,
                j: j0..j1,
            };
            if !simd_tile(src, out, plan, &tile) {
                scalar_tile(src, out, plan, tile.i.clone(), tile.j.clone(), &tile);
            }
            j0 = j1;
        }
        i0 = i1;
    }
}

/// One block of [`tiles`]: rows `i`, columns `j`.
struct Tile {
    s: usize,
    d: usize,
    row0: usize,
    i: Range<usize>,
    j: Range<usize>,
}

/// The rows `i` and columns `j` of a tile, one element at a time.
fn scalar_tile<T: Copy>(
    src: &[T],
    out: &mut [MaybeUninit<T>],
    plan: &Plan,
    i: Range<usize>,
    j: Range<usize>,
    t: &Tile,
) {
    let (a, b) = (plan.a, plan.b);
    for i in i {
        let dst = &mut out[t.d + (i - t.row0) * a.dst + j.start..][..j.len()];
        let first = t.s + i + j.start * b.src;
        for (k, o) in dst.iter_mut().enumerate() {
            o.write(src[first + k * b.src]);
        }
    }
}

/// 4-byte elements (f32, and any other 4-byte type: only bits move) in 8 × 8 blocks with
/// AVX2, the ragged edges one at a time. `false` if this CPU or element size has no such path.
#[cfg(all(feature = "std", target_arch = "x86_64"))]
fn simd_tile<T: Copy>(src: &[T], out: &mut [MaybeUninit<T>], plan: &Plan, t: &Tile) -> bool {
    use crate::cpu::gemm::pack_transpose::{available, transpose8};
    if core::mem::size_of::<T>() != 4 || !available() {
        return false;
    }
    let (a, b) = (plan.a, plan.b);
    let i8 = t.i.start + (t.i.len() / 8) * 8;
    let j8 = t.j.start + (t.j.len() / 8) * 8;
    for j0 in (t.j.start..j8).step_by(8) {
        for i0 in (t.i.start..i8).step_by(8) {
            // Source row `jj` of the block: the 8 contiguous elements (i0.., j0 + jj).
            let first = t.s + i0 + j0 * b.src;
            let last = first + 7 + 7 * b.src;
            let dst = t.d + (i0 - t.row0) * a.dst + j0;
            let dst_last = dst + 7 * a.dst + 7;
            assert!(
                last < src.len() && dst_last < out.len(),
                "tile inside its buffers"
            );
            let rows: [*const f32; 8] =
                core::array::from_fn(|jj| src[first + jj * b.src..].as_ptr().cast::<f32>());
            // SAFETY: AVX2 checked; each row's 8 elements lie within `src` (the last one read
            // is `last`, checked), and column `ii` is written at `dst + ii * a.dst`, 8 slots
            // that lie within `out` (the last is `dst_last`, checked). 4-byte elements.
            unsafe {
                transpose8(rows, out.as_mut_ptr().add(dst).cast::<f32>(), a.dst, 8);
            }
        }
    }
    // The ragged right columns and bottom rows.
    scalar_tile(src, out, plan, t.i.clone(), j8..t.j.end, t);
    scalar_tile(src, out, plan, i8..t.i.end, t.j.start..j8, t);
    true
}

#[cfg(not(all(feature = "std", target_arch = "x86_64")))]
fn simd_tile<T: Copy>(_: &[T], _: &mut [MaybeUninit<T>], _: &Plan, _: &Tile) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::strided;

    fn check(shape: &[usize], perm: &[usize], expect_plan: bool) {
        let n: usize = shape.iter().product();
        let src: Vec<f32> = (0..n).map(|i| i as f32).collect();
        let l = Layout::contiguous(shape).permute(perm).unwrap();
        assert_eq!(plan(&l).is_some(), expect_plan, "{shape:?} {perm:?}");
        let want: Vec<f32> = l.offsets().map(|o| src[o]).collect();
        for threads in [1, 2, 3] {
            let got = parallel::tests::with_threads(threads, || {
                gather(&src, &l).unwrap_or_else(|| strided::gather(&src, &l))
            });
            assert_eq!(got, want, "{shape:?} {perm:?} threads {threads}");
        }
    }

    /// NCHW ↔ NHWC, weight permutes, plain 2-D transposes with ragged tiles, a batch of one,
    /// transposes with a dim in between, and views that are not transposes.
    #[test]
    fn tiled_gather_matches_the_definition() {
        check(&[3, 37, 11, 13], &[0, 2, 3, 1], true); // NCHW → NHWC
        check(&[3, 11, 13, 37], &[0, 3, 1, 2], true); // NHWC → NCHW
        check(&[1, 64, 9, 9], &[0, 2, 3, 1], true);
        check(&[67, 129], &[1, 0], true);
        check(&[5, 3, 3, 40], &[0, 3, 1, 2], true); // weight [oc, kh, kw, c] → [oc, c, kh, kw]
        check(&[6, 50, 7, 70], &[0, 3, 2, 1], true); // `a` outermost after the batch, a dim between
        check(&[50, 7, 70], &[2, 1, 0], true); // `a` the outermost
        check(&[4, 9, 20, 64], &[0, 2, 1, 3], false); // contiguous runs of 64
        check(&[2, 3, 1000], &[2, 0, 1], true); // merges to a 1000 × 6 transpose
        check(&[3, 2000], &[1, 0], false); // rows of 3: too short for tiles
    }

    /// Elements of other sizes take the scalar tiles.
    #[test]
    fn f64_and_byte_views() {
        let l = Layout::contiguous(&[2, 45, 67])
            .permute(&[0, 2, 1])
            .unwrap();
        let f: Vec<f64> = (0..6030).map(|i| i as f64 * 0.5).collect();
        let want: Vec<f64> = l.offsets().map(|o| f[o]).collect();
        assert_eq!(gather(&f, &l).expect("a transpose"), want);
        let u: Vec<u8> = (0..6030).map(|i| (i % 251) as u8).collect();
        let want: Vec<u8> = l.offsets().map(|o| u[o]).collect();
        assert_eq!(gather(&u, &l).expect("a transpose"), want);
    }

    /// Offsets, slices and size-1 dims in the view.
    #[test]
    fn views_with_offsets_and_unit_dims() {
        let src: Vec<f32> = (0..40_000).map(|i| i as f32).collect();
        let l = Layout::contiguous(&[2, 1, 100, 150])
            .narrow(3, 7, 120)
            .unwrap()
            .permute(&[0, 3, 1, 2])
            .unwrap();
        let want: Vec<f32> = l.offsets().map(|o| src[o]).collect();
        assert_eq!(gather(&src, &l).expect("a transpose"), want);
    }
}
