//! Sums of contiguous runs in f64 over eight interleaved lanes.
//!
//! [`sum_run`] sums one slice (a reduction over the last axes); [`RunSum`] sums a run that
//! arrives in pieces (a batch-norm channel: one `h*w` piece per image) to the same bits.
//! Either may sum a function of one or two inputs per element ([`RunSum::feed_map`],
//! [`RunSum::feed_zip`]: batch norm's squared deviations and gradient products) without
//! first writing those values to a buffer. The function's result is rounded to the
//! element type before it is widened, exactly as if it had been stored and then summed.

use crate::buffer::HostElement;
use crate::cpu::simd::with_avx2;

/// Lanes of [`sum_run`] and [`RunSum`]: enough independent adds to fill the FP pipelines (and
/// SIMD lanes).
const LANES: usize = 8;

/// Adds `f(a[i], b[i])` to lane `i % LANES`, for `a` and `b` of the same length, a whole
/// number of groups of [`LANES`].
#[inline(always)]
fn add_lanes_loop<T: HostElement>(
    lanes: &mut [f64; LANES],
    a: &[T],
    b: &[T],
    f: impl Fn(T, T) -> T,
) {
    // A local copy: with the lanes behind `&mut`, the loop kept storing them back to memory
    // after every add and stayed scalar; held in registers it becomes packed converts and
    // adds, each lane still summing its elements in order.
    let mut acc = *lanes;
    for (ca, cb) in a.chunks_exact(LANES).zip(b.chunks_exact(LANES)) {
        for ((l, &x), &y) in acc.iter_mut().zip(ca).zip(cb) {
            *l += f(x, y).to_f64();
        }
    }
    *lanes = acc;
}

/// [`add_lanes_loop`], compiled for AVX2 (two registers of four f64 lanes) where the CPU
/// has it: the same bits either way.
#[inline]
fn add_lanes<T: HostElement>(lanes: &mut [f64; LANES], a: &[T], b: &[T], f: impl Fn(T, T) -> T) {
    with_avx2(|| add_lanes_loop(lanes, a, b, f))
}

/// Adds lane `i + width` into lane `i` for halving widths: lane 0 ends with the lanes' sum.
fn combine(lanes: &mut [f64; LANES]) -> f64 {
    let mut width = LANES;
    while width > 1 {
        width /= 2;
        for i in 0..width {
            lanes[i] += lanes[i + width];
        }
    }
    lanes[0]
}

/// The sum of `c` in f64 with [`LANES`] interleaved partial sums (element `i` goes to lane
/// `i % LANES`), combined pairwise, then the tail in order. A fixed order, so deterministic;
/// unlike a single running sum, the adds are independent and vectorize.
#[inline]
pub(crate) fn sum_run<T: HostElement>(c: &[T]) -> f64 {
    let mut lanes = [-0.0f64; LANES];
    let (body, tail) = c.split_at(c.len() - c.len() % LANES);
    add_lanes(&mut lanes, body, body, |x, _| x);
    tail.iter().fold(combine(&mut lanes), |s, x| s + x.to_f64())
}

/// [`sum_run`] of a run that arrives in pieces, with the same result bit for bit: element `i`
/// of the whole run goes to lane `i % LANES` while `i` is below the last whole group of
/// lanes, the rest is added in order after the lanes are combined.
pub(crate) struct RunSum {
    lanes: [f64; LANES],
    /// Elements seen so far.
    pos: usize,
    /// Where the tail starts: the run's length rounded down to a multiple of [`LANES`].
    full: usize,
    tail: [f64; LANES],
}

impl RunSum {
    /// A sum over a run of `len` elements in total.
    pub(crate) fn new(len: usize) -> Self {
        Self {
            lanes: [-0.0; LANES],
            pos: 0,
            full: len - len % LANES,
            tail: [0.0; LANES],
        }
    }

    /// Adds the next piece of the run.
    #[inline]
    pub(crate) fn feed<T: HostElement>(&mut self, piece: &[T]) {
        self.feed_zip(piece, piece, |x, _| x)
    }

    /// Adds `f(x)` for each `x` of the next piece of the run.
    #[inline]
    pub(crate) fn feed_map<T: HostElement>(&mut self, piece: &[T], f: impl Fn(T) -> T + Copy) {
        self.feed_zip(piece, piece, move |x, _| f(x))
    }

    /// Adds `f(a[i], b[i])` for each `i` of the next piece of the run (as long as the shorter
    /// of `a` and `b`).
    #[inline]
    pub(crate) fn feed_zip<T: HostElement>(
        &mut self,
        a: &[T],
        b: &[T],
        f: impl Fn(T, T) -> T + Copy,
    ) {
        let n = a.len().min(b.len());
        let (a, b) = (&a[..n], &b[..n]);
        // One at a time up to a lane boundary (or the tail) ...
        let mut i = 0;
        while i < n && (self.pos % LANES != 0 || self.pos + LANES > self.full) {
            self.push(f(a[i], b[i]).to_f64());
            i += 1;
        }
        // ... whole groups of lanes, which vectorize ...
        let end = i + (n - i).min(self.full.saturating_sub(self.pos)) / LANES * LANES;
        add_lanes(&mut self.lanes, &a[i..end], &b[i..end], f);
        self.pos += end - i;
        // ... and what is left, one at a time.
        for (&x, &y) in a[end..].iter().zip(&b[end..]) {
            self.push(f(x, y).to_f64());
        }
    }

    #[inline]
    fn push(&mut self, x: f64) {
        if self.pos < self.full {
            self.lanes[self.pos % LANES] += x;
        } else {
            self.tail[self.pos - self.full] = x;
        }
        self.pos += 1;
    }

    /// The sum, once every element has been fed (a sum fed less is the partial sum of what
    /// it was fed, in the same lane order; the batch-norm kernels leave unneeded sums unfed).
    pub(crate) fn finish(mut self) -> f64 {
        debug_assert!(self.pos < self.full + LANES);
        let head = combine(&mut self.lanes);
        let tail = &self.tail[..self.pos.saturating_sub(self.full)];
        tail.iter().fold(head, |s, x| s + x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    #[test]
    fn sum_run_is_exact_on_integers_and_keeps_negative_zero() {
        for n in [0usize, 1, 7, 8, 9, 33, 1000] {
            let v: Vec<f64> = (0..n).map(|i| i as f64 - 3.0).collect();
            let want: f64 = v.iter().sum();
            assert_eq!(sum_run(&v), want, "n {n}");
        }
        assert!(sum_run(&[-0.0f32; 11]).is_sign_negative());
    }

    /// Values 2^-40..2^40 apart: their f64 sums round, so a change of order shows.
    fn wide(n: usize, seed: usize) -> Vec<f32> {
        (0..n)
            .map(|i| {
                let i = i + seed;
                ((i * 7919 % 997) as f32 - 498.0) * 2f32.powi((i * 13 % 81) as i32 - 40)
            })
            .collect()
    }

    /// The scalar model of the order: element `i` into lane `i % 8` below the last whole
    /// group, the lanes combined pairwise, then the tail in order.
    fn model(v: &[f32]) -> f64 {
        let full = v.len() - v.len() % LANES;
        let mut lanes = [-0.0f64; LANES];
        for (i, &x) in v[..full].iter().enumerate() {
            lanes[i % LANES] += x as f64;
        }
        let pairs = [(0, 4), (1, 5), (2, 6), (3, 7), (0, 2), (1, 3), (0, 1)];
        for (i, j) in pairs {
            lanes[i] += lanes[j];
        }
        v[full..].iter().fold(lanes[0], |s, &x| s + x as f64)
    }

    #[test]
    fn sum_run_follows_the_model_bit_for_bit() {
        for n in [0usize, 1, 7, 8, 9, 16, 33, 203, 1000] {
            let v = wide(n, 3);
            assert_eq!(sum_run(&v).to_bits(), model(&v).to_bits(), "n {n}");
        }
    }

    /// `feed_zip` sums `f`'s results rounded to the element type, as if they had been stored.
    #[test]
    fn feed_zip_sums_the_stored_values() {
        let (a, b) = (wide(203, 1), wide(203, 7));
        let f = |x: f32, y: f32| x * 1.1f32 - y;
        let stored: Vec<f32> = a.iter().zip(&b).map(|(&x, &y)| f(x, y)).collect();
        for piece in [1usize, 5, 8, 49, 203] {
            let mut s = RunSum::new(203);
            for (pa, pb) in a.chunks(piece).zip(b.chunks(piece)) {
                s.feed_zip(pa, pb, f);
            }
            assert_eq!(
                s.finish().to_bits(),
                model(&stored).to_bits(),
                "piece {piece}"
            );
        }
    }

    /// Fed in pieces of any sizes, the sum is `sum_run`'s over the whole run, bit for bit.
    #[test]
    fn run_sum_in_pieces_is_sum_run() {
        let v = wide(203, 0);
        for len in [0usize, 1, 5, 8, 9, 49, 64, 100, 203] {
            for piece in [1usize, 3, 7, 8, 16, 49, 203] {
                let mut s = RunSum::new(len);
                for p in v[..len].chunks(piece) {
                    s.feed(p);
                }
                let want = sum_run(&v[..len]);
                assert_eq!(
                    s.finish().to_bits(),
                    want.to_bits(),
                    "len {len} piece {piece}"
                );
            }
        }
    }
}
