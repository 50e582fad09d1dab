//! Deterministic data parallelism for the CPU kernels that are not GEMM.
//!
//! A kernel describes its output as `units` contiguous units of `unit` elements each (one
//! element, one row, ...). The units are split into contiguous ranges, one per thread, and each
//! range is computed by the same code as the single-threaded path, so every output element is
//! produced by the same sequence of operations whatever the thread count: results are
//! bit-identical. Work below `MIN_PAR_WORK` (64K) element-operations, a thread count of one, and
//! `no_std` builds always run as a single chunk on the calling thread.
//!
//! The thread count is `std::thread::available_parallelism()`, overridden by the environment
//! variable `TESSERA_NUM_THREADS` (read once, at the first large op). The chunks other than
//! the caller's run on a persistent pool of `threads - 1` workers (`cpu/workers.rs`).

use alloc::vec::Vec;
use core::mem::MaybeUninit;
use core::ops::Range;

/// Work (roughly: elements read) below which an op stays on the calling thread. Handing a
/// chunk to a worker of the pool (`cpu/workers.rs`) and waiting for it costs a few µs, and
/// spawning a scoped thread (the fallback) ~10-20 µs, about what 64K simple
/// element-operations take.
pub(crate) const MIN_PAR_WORK: usize = 1 << 16;

/// The number of threads the CPU kernels use for large ops (1 without the `std` feature).
#[cfg(feature = "std")]
pub fn num_threads() -> usize {
    #[cfg(test)]
    if let Some(n) = tests::FORCED.with(|f| f.get()) {
        return n;
    }
    static N: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *N.get_or_init(|| {
        std::env::var("TESSERA_NUM_THREADS")
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
            .filter(|&n| n >= 1)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
    })
}

/// The number of threads the CPU kernels use for large ops (1 without the `std` feature).
#[cfg(not(feature = "std"))]
pub fn num_threads() -> usize {
    1
}

/// How many chunks to split `units` units costing `work` in total into.
fn chunk_count(units: usize, work: usize) -> usize {
    if work < MIN_PAR_WORK || units < 2 {
        1
    } else {
        num_threads().min(units)
    }
}

/// The `i`-th of `parts` near-equal contiguous ranges of `0..units`.
fn part(units: usize, parts: usize, i: usize) -> Range<usize> {
    let (q, r) = (units / parts, units % parts);
    let start = i * q + i.min(r);
    start..start + q + usize::from(i < r)
}

/// Runs `f(unit_range, chunk)` over contiguous chunks of `out` (`out.len()` is a multiple of
/// `unit`), each holding the whole units `unit_range`; in parallel when `work` is large.
pub(crate) fn for_each_chunk_mut<T: Send>(
    out: &mut [T],
    unit: usize,
    work: usize,
    f: impl Fn(Range<usize>, &mut [T]) + Sync,
) {
    let units = out.len().checked_div(unit).unwrap_or(0);
    let parts = chunk_count(units, work);
    if parts <= 1 {
        f(0..units, out);
        return;
    }
    run_parts(out, unit, units, parts, &f);
}

#[cfg(feature = "std")]
fn run_parts<T: Send>(
    out: &mut [T],
    unit: usize,
    units: usize,
    parts: usize,
    f: &(impl Fn(Range<usize>, &mut [T]) + Sync),
) {
    // The first `parts - 1` chunks go to the worker pool, the last runs on this thread.
    let mut tasks: Vec<super::workers::Task<'_>> = Vec::with_capacity(parts - 1);
    let mut rest = out;
    for i in 0..parts - 1 {
        let range = part(units, parts, i);
        let (chunk, tail) = core::mem::take(&mut rest).split_at_mut(range.len() * unit);
        rest = tail;
        tasks.push(alloc::boxed::Box::new(move || f(range, chunk)));
    }
    let last = part(units, parts, parts - 1);
    super::workers::run(tasks, || f(last, rest));
}

#[cfg(not(feature = "std"))]
fn run_parts<T: Send>(
    out: &mut [T],
    unit: usize,
    units: usize,
    parts: usize,
    f: &(impl Fn(Range<usize>, &mut [T]) + Sync),
) {
    let mut rest = out;
    for i in 0..parts {
        let range = part(units, parts, i);
        let (chunk, tail) = core::mem::take(&mut rest).split_at_mut(range.len() * unit);
        rest = tail;
        f(range, chunk);
    }
}

/// Sequential writer into one chunk of a not yet initialized output.
pub(crate) struct Sink<'a, U> {
    buf: &'a mut [MaybeUninit<U>],
    len: usize,
}

impl<U> core::fmt::Debug for Sink<'_, U> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Sink({}/{})", self.len, self.buf.len())
    }
}

impl<U> Sink<'_, U> {
    /// Appends the items of `it` (panics past the chunk's end).
    #[inline]
    pub(crate) fn extend(&mut self, it: impl IntoIterator<Item = U>) {
        let mut it = it.into_iter();
        let mut n = 0;
        for (slot, x) in self.buf[self.len..].iter_mut().zip(&mut it) {
            slot.write(x);
            n += 1;
        }
        self.len += n;
        assert!(it.next().is_none(), "parallel::Sink overflow");
    }

    /// Appends `f(x)` for each `x` of `src`. Unlike [`Sink::extend`] (whose generic
    /// iterator LLVM cannot index), this is a loop over two slices, which vectorizes (see
    /// [`wide`]). `f` is taken by reference and called directly: a `&F` passed as
    /// `impl Fn` goes through `<&F as Fn>::call`, which LLVM may leave out of line, and then
    /// nothing vectorizes.
    #[inline(always)]
    pub(crate) fn extend_map<T: Copy>(&mut self, src: &[T], f: &impl Fn(T) -> U) {
        let dst = &mut self.buf[self.len..self.len + src.len()];
        wide::map(dst, src, f);
        self.len += src.len();
    }

    /// Appends `len` elements written by `fill`, which gets them as one uninitialized slice
    /// (for kernels written with explicit SIMD over a whole slice).
    ///
    /// # Safety
    /// `fill` initializes every element of the slice it is given.
    #[inline(always)]
    #[cfg_attr(not(all(feature = "std", target_arch = "x86_64")), allow(dead_code))]
    pub(crate) unsafe fn extend_with(
        &mut self,
        len: usize,
        fill: impl FnOnce(&mut [MaybeUninit<U>]),
    ) {
        fill(&mut self.buf[self.len..self.len + len]);
        self.len += len;
    }

    /// Appends `f(x, y)` for the pairs of `a` and `b` (same length), as a vectorizable loop.
    #[inline(always)]
    pub(crate) fn extend_zip<T: Copy, S: Copy>(
        &mut self,
        a: &[T],
        b: &[S],
        f: &impl Fn(T, S) -> U,
    ) {
        assert_eq!(
            a.len(),
            b.len(),
            "parallel::Sink::extend_zip: lengths differ"
        );
        let dst = &mut self.buf[self.len..self.len + a.len()];
        wide::zip(dst, a, b, f);
        self.len += a.len();
    }

    /// Appends `f(x, y, z)` for the triples of `a`, `b` and `c` (same length), as a
    /// vectorizable loop.
    #[inline(always)]
    pub(crate) fn extend_zip3<T: Copy, S: Copy, R: Copy>(
        &mut self,
        a: &[T],
        b: &[S],
        c: &[R],
        f: &impl Fn(T, S, R) -> U,
    ) {
        assert!(
            a.len() == b.len() && a.len() == c.len(),
            "parallel::Sink::extend_zip3: lengths differ"
        );
        let dst = &mut self.buf[self.len..self.len + a.len()];
        wide::zip3(dst, a, b, c, f);
        self.len += a.len();
    }
}

/// The slice loops of [`Sink`], compiled twice on x86-64 with `std`: for the baseline
/// (SSE2, 4 f32 lanes) and with AVX2 enabled (8 lanes), picked at run time. No FMA is
/// enabled, so both do the same IEEE operations in the same order: results do not depend
/// on which one runs.
mod wide {
    use core::mem::MaybeUninit;

    #[inline(always)]
    fn map_loop<T: Copy, U>(dst: &mut [MaybeUninit<U>], src: &[T], f: &impl Fn(T) -> U) {
        for (slot, &x) in dst.iter_mut().zip(src) {
            slot.write(f(x));
        }
    }

    #[inline(always)]
    fn zip_loop<T: Copy, S: Copy, U>(
        dst: &mut [MaybeUninit<U>],
        a: &[T],
        b: &[S],
        f: &impl Fn(T, S) -> U,
    ) {
        for ((slot, &x), &y) in dst.iter_mut().zip(a).zip(b) {
            slot.write(f(x, y));
        }
    }

    #[inline(always)]
    fn zip3_loop<T: Copy, S: Copy, R: Copy, U>(
        dst: &mut [MaybeUninit<U>],
        a: &[T],
        b: &[S],
        c: &[R],
        f: &impl Fn(T, S, R) -> U,
    ) {
        for (((slot, &x), &y), &z) in dst.iter_mut().zip(a).zip(b).zip(c) {
            slot.write(f(x, y, z));
        }
    }

    /// Whether the AVX2 versions can run (cached by the standard library).
    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    #[inline(always)]
    fn has_avx2() -> bool {
        std::arch::is_x86_feature_detected!("avx2")
    }

    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    #[target_feature(enable = "avx2")]
    unsafe fn map_avx2<T: Copy, U>(dst: &mut [MaybeUninit<U>], src: &[T], f: &impl Fn(T) -> U) {
        map_loop(dst, src, f)
    }

    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    #[target_feature(enable = "avx2")]
    unsafe fn zip_avx2<T: Copy, S: Copy, U>(
        dst: &mut [MaybeUninit<U>],
        a: &[T],
        b: &[S],
        f: &impl Fn(T, S) -> U,
    ) {
        zip_loop(dst, a, b, f)
    }

    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    #[target_feature(enable = "avx2")]
    unsafe fn zip3_avx2<T: Copy, S: Copy, R: Copy, U>(
        dst: &mut [MaybeUninit<U>],
        a: &[T],
        b: &[S],
        c: &[R],
        f: &impl Fn(T, S, R) -> U,
    ) {
        zip3_loop(dst, a, b, c, f)
    }

    #[inline(always)]
    pub(super) fn map<T: Copy, U>(dst: &mut [MaybeUninit<U>], src: &[T], f: &impl Fn(T) -> U) {
        #[cfg(all(feature = "std", target_arch = "x86_64"))]
        if has_avx2() {
            // SAFETY: the CPU has AVX2 (checked just above).
            return unsafe { map_avx2(dst, src, f) };
        }
        map_loop(dst, src, f)
    }

    #[inline(always)]
    pub(super) fn zip<T: Copy, S: Copy, U>(
        dst: &mut [MaybeUninit<U>],
        a: &[T],
        b: &[S],
        f: &impl Fn(T, S) -> U,
    ) {
        #[cfg(all(feature = "std", target_arch = "x86_64"))]
        if has_avx2() {
            // SAFETY: the CPU has AVX2 (checked just above).
            return unsafe { zip_avx2(dst, a, b, f) };
        }
        zip_loop(dst, a, b, f)
    }

    #[inline(always)]
    pub(super) fn zip3<T: Copy, S: Copy, R: Copy, U>(
        dst: &mut [MaybeUninit<U>],
        a: &[T],
        b: &[S],
        c: &[R],
        f: &impl Fn(T, S, R) -> U,
    ) {
        #[cfg(all(feature = "std", target_arch = "x86_64"))]
        if has_avx2() {
            // SAFETY: the CPU has AVX2 (checked just above).
            return unsafe { zip3_avx2(dst, a, b, c, f) };
        }
        zip3_loop(dst, a, b, c, f)
    }
}

/// A vector of `units * unit` elements; `f(unit_range, sink)` must write exactly the elements
/// of the units in `unit_range`, in order. In parallel when `work` is large.
pub(crate) fn collect<U: Send>(
    units: usize,
    unit: usize,
    work: usize,
    f: impl Fn(Range<usize>, &mut Sink<'_, U>) + Sync,
) -> Vec<U> {
    let n = units * unit;
    // From the buffer cache: a steady loop reuses last step's allocations.
    let mut out = super::pool::take_in_kernel(n);
    if n == 0 {
        return out;
    }
    let spare = &mut out.spare_capacity_mut()[..n];
    for_each_chunk_mut(spare, unit, work, |range, chunk| {
        let mut sink = Sink { buf: chunk, len: 0 };
        f(range, &mut sink);
        assert_eq!(
            sink.len,
            sink.buf.len(),
            "parallel::collect: chunk not filled"
        );
    });
    // SAFETY: every chunk of `spare` (they tile `0..n`) was written sequentially by its
    // `Sink`, and the assertion above checked that each was filled to its end.
    unsafe { out.set_len(n) };
    out
}

#[cfg(test)]
pub(crate) mod tests {
    #[cfg(feature = "std")]
    std::thread_local! {
        /// Thread count forced by [`with_threads`] on this (test) thread.
        pub(crate) static FORCED: core::cell::Cell<Option<usize>> =
            const { core::cell::Cell::new(None) };
    }

    /// Runs `f` with the kernels called from this thread using `n` threads.
    #[cfg(feature = "std")]
    pub(crate) fn with_threads<R>(n: usize, f: impl FnOnce() -> R) -> R {
        let old = FORCED.with(|c| c.replace(Some(n)));
        let r = f();
        FORCED.with(|c| c.set(old));
        r
    }

    /// Without `std` the kernels always run on the calling thread: `f` as it is.
    #[cfg(not(feature = "std"))]
    pub(crate) fn with_threads<R>(_n: usize, f: impl FnOnce() -> R) -> R {
        f()
    }

    #[test]
    fn parts_tile_the_range() {
        for units in [0usize, 1, 5, 17, 1000] {
            for parts in 1..8 {
                let mut next = 0;
                for i in 0..parts {
                    let r = super::part(units, parts, i);
                    assert_eq!(r.start, next);
                    next = r.end;
                }
                assert_eq!(next, units);
            }
        }
    }

    #[cfg(feature = "std")]
    #[test]
    fn collect_is_identical_across_thread_counts() {
        let go = || {
            super::collect(100_000, 3, 300_000, |r, s| {
                for u in r {
                    s.extend((0..3).map(|j| (u * 3 + j) as f32 * 0.5));
                }
            })
        };
        let one = with_threads(1, go);
        assert_eq!(one.len(), 300_000);
        assert!(one.iter().enumerate().all(|(i, &v)| v == i as f32 * 0.5));
        for n in [2, 3, 7] {
            assert_eq!(with_threads(n, go), one);
        }
    }

    /// Every kernel that uses this module gives bit-identical results on 1, 2, 3 and 7
    /// threads, on sizes above [`MIN_PAR_WORK`](super::MIN_PAR_WORK).
    #[cfg(feature = "std")]
    #[test]
    fn kernels_are_bit_identical_across_thread_counts() {
        use crate::testing::bits;
        use crate::{BinaryOp, Cpu, DType, ReduceOp, Rng, Tensor, UnaryOp};
        use alloc::boxed::Box;
        use alloc::vec::Vec;
        type T = Tensor<Cpu>;
        type Kernel<'a> = Box<dyn Fn() -> T + 'a>;

        let mut rng = Rng::new(7);
        let (n, t, d) = (64, 17, 96); // 104K elements
        for dtype in [DType::F32, DType::F64] {
            let x = T::randn(&[n, t, d], 0.0, 2.0, dtype, &mut rng, &Cpu).unwrap();
            let y = T::randn(&[n, t, d], 0.0, 1.0, dtype, &mut rng, &Cpu).unwrap();
            let row = T::randn(&[1, 1, d], 1.0, 0.5, dtype, &mut rng, &Cpu).unwrap();
            let col = T::randn(&[n, t, 1], 1.0, 0.5, dtype, &mut rng, &Cpu).unwrap();
            let w = T::randn(&[d], 1.0, 0.1, dtype, &mut rng, &Cpu).unwrap();
            let b = T::randn(&[d], 0.0, 0.1, dtype, &mut rng, &Cpu).unwrap();
            let xt = x.transpose(0, 2).unwrap(); // [d, t, n], strided
            let yt = y.transpose(0, 2).unwrap();
            let kernels: Vec<(&str, Kernel<'_>)> = vec![
                ("exp", Box::new(|| x.unary(UnaryOp::Exp).unwrap())),
                ("erf", Box::new(|| x.unary(UnaryOp::Erf).unwrap())),
                ("gelu", Box::new(|| x.gelu().unwrap())),
                ("exp strided", Box::new(|| xt.unary(UnaryOp::Exp).unwrap())),
                ("gather", Box::new(|| xt.contiguous().unwrap())),
                ("add", Box::new(|| x.add(&y).unwrap())),
                ("div", Box::new(|| x.binary(BinaryOp::Div, &y).unwrap())),
                ("mul row bcast", Box::new(|| x.mul(&row).unwrap())),
                ("sub col bcast", Box::new(|| x.sub(&col).unwrap())),
                ("add strided", Box::new(|| xt.add(&yt).unwrap())),
                (
                    "add mixed",
                    Box::new(|| {
                        xt.add(&y.transpose(0, 2).unwrap().contiguous().unwrap())
                            .unwrap()
                    }),
                ),
                ("lt", Box::new(|| x.lt(&y).unwrap())),
                (
                    "where",
                    Box::new(|| x.lt(&y).unwrap().where_cond(&x, &y).unwrap()),
                ),
                ("sum last", Box::new(|| x.sum(&[-1], false).unwrap())),
                ("sum first", Box::new(|| x.sum(&[0], false).unwrap())),
                ("sum two", Box::new(|| x.sum(&[0, 1], true).unwrap())),
                ("max mid", Box::new(|| x.max(&[1], false).unwrap())),
                (
                    "min last",
                    Box::new(|| x.reduce(ReduceOp::Min, &[-1], false).unwrap()),
                ),
                ("argmax last", Box::new(|| x.argmax(-1, false).unwrap())),
                ("argmax first", Box::new(|| x.argmax(0, false).unwrap())),
                ("softmax last", Box::new(|| x.softmax(-1).unwrap())),
                ("softmax first", Box::new(|| x.softmax(0).unwrap())),
                ("log_softmax", Box::new(|| x.log_softmax(-1).unwrap())),
                (
                    "layer_norm",
                    Box::new(|| x.layer_norm(&[d], Some(&w), Some(&b), 1e-6).unwrap()),
                ),
                (
                    "layer_norm strided",
                    Box::new(|| xt.layer_norm(&[n], None, None, 1e-5).unwrap()),
                ),
            ];
            for (name, k) in kernels {
                let one = with_threads(1, || bits(&k()));
                for threads in [2, 3, 7] {
                    let many = with_threads(threads, || bits(&k()));
                    assert!(
                        one == many,
                        "{name} {dtype}: {threads} threads differ from 1"
                    );
                }
            }
        }
    }
}
