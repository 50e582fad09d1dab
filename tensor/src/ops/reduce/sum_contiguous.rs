//! Sums over a block of consecutive axes of a contiguous view, without gathering.
//!
//! The general kernel ([`super::cpu`]) permutes the reduced axes last and, unless that
//! permuted view happens to be contiguous, gathers it element by element (a transpose)
//! before summing each output's run. For the common `[outer, r, inner]` shapes (a bias
//! gradient: sum over the leading rows of `[rows, features]`; a mean over tokens) this
//! reads the rows in storage order instead and adds each whole row into a row of f64
//! accumulators, a loop that vectorizes. Each output is still the sum of its `r` inputs in
//! increasing order starting from -0.0, exactly the general kernel's order, and which
//! outputs a thread computes does not change how each is computed: bit-identical results
//! across thread counts. Sums over the last axes (`inner == 1`) use [`sum_run`].

use crate::buffer::HostElement;
use crate::cpu::parallel;
use alloc::vec::Vec;

/// Columns summed together in one pass over the rows: the accumulators (8 KiB of f64) stay
/// in L1 while the rows stream through.
const COLS_PER_PASS: usize = 1024;

/// The contiguous elements `v` viewed as `[outer, r, inner]`, summed over the middle axis:
/// `outer * inner` outputs, row-major.
pub(crate) fn sum_middle<T: HostElement>(
    v: &[T],
    (outer, r, inner): (usize, usize, usize),
    out: impl Fn(f64) -> T + Sync,
) -> Vec<T> {
    debug_assert_eq!(v.len(), outer * r * inner);
    if inner == 1 {
        return parallel::collect(outer, 1, outer * r, |o, s| {
            s.extend(
                v[o.start * r..o.end * r]
                    .chunks_exact(r)
                    .map(|c| out(sum_run(c))),
            )
        });
    }
    parallel::collect(outer * inner, 1, outer * inner * r, |range, sink| {
        let mut acc: Vec<f64> = alloc::vec![0.0; COLS_PER_PASS.min(range.len())];
        let mut k = range.start;
        while k < range.end {
            let (o, j) = (k / inner, k % inner);
            let cols = (inner - j).min(range.end - k).min(COLS_PER_PASS);
            let acc = &mut acc[..cols];
            acc.fill(-0.0);
            let block = &v[o * r * inner..(o + 1) * r * inner];
            add_rows(acc, block, inner, j);
            sink.extend_map(acc, &out);
            k += cols;
        }
    })
}

/// Rows added to the accumulators per pass over them: the accumulators are loaded and
/// stored once per four rows instead of once per row, which was the loop's bottleneck.
const ROWS_PER_PASS: usize = 4;

/// Adds columns `j..j + acc.len()` of each `inner`-wide row of `block` into `acc`, the rows
/// in order: `((acc + r0) + r1) + r2) + r3` is the row-by-row sum, bit for bit.
#[inline(always)]
fn add_rows_loop<T: HostElement>(acc: &mut [f64], block: &[T], inner: usize, j: usize) {
    let cols = j..j + acc.len();
    let mut groups = block.chunks_exact(ROWS_PER_PASS * inner);
    for g in &mut groups {
        let (r0, rest) = g.split_at(inner);
        let (r1, rest) = rest.split_at(inner);
        let (r2, r3) = rest.split_at(inner);
        let rows = r0[cols.clone()].iter().zip(&r1[cols.clone()]);
        let rows = rows.zip(&r2[cols.clone()]).zip(&r3[cols.clone()]);
        for (a, (((x0, x1), x2), x3)) in acc.iter_mut().zip(rows) {
            *a = *a + x0.to_f64() + x1.to_f64() + x2.to_f64() + x3.to_f64();
        }
    }
    for row in groups.remainder().chunks_exact(inner) {
        for (a, x) in acc.iter_mut().zip(&row[cols.clone()]) {
            *a += x.to_f64();
        }
    }
}

#[cfg(all(feature = "std", target_arch = "x86_64"))]
#[target_feature(enable = "avx2")]
unsafe fn add_rows_avx2<T: HostElement>(acc: &mut [f64], block: &[T], inner: usize, j: usize) {
    add_rows_loop(acc, block, inner, j)
}

/// [`add_rows_loop`], compiled for AVX2 (four f64 lanes) where the CPU has it.
fn add_rows<T: HostElement>(acc: &mut [f64], block: &[T], inner: usize, j: usize) {
    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked just above).
        return unsafe { add_rows_avx2(acc, block, inner, j) };
    }
    add_rows_loop(acc, block, inner, j)
}

/// Lanes of [`sum_run`]: enough independent adds to fill the FP pipelines (and SIMD lanes).
const LANES: usize = 8;

/// The sum of `c` in f64 with [`LANES`] interleaved partial sums (element `i` goes to lane
/// `i % LANES`), combined pairwise, then the tail in order. A fixed order, so deterministic;
/// unlike a single running sum, the adds are independent and vectorize.
#[inline]
pub(crate) fn sum_run<T: HostElement>(c: &[T]) -> f64 {
    let mut lanes = [-0.0f64; LANES];
    let chunks = c.chunks_exact(LANES);
    let tail = chunks.remainder();
    for ch in chunks {
        for (l, x) in lanes.iter_mut().zip(ch) {
            *l += x.to_f64();
        }
    }
    let mut width = LANES;
    while width > 1 {
        width /= 2;
        for i in 0..width {
            lanes[i] += lanes[i + width];
        }
    }
    tail.iter().fold(lanes[0], |s, x| s + x.to_f64())
}

/// [`sum_run`] of a run that arrives in pieces (a batch-norm channel: one piece per image),
/// with the same result bit for bit: element `i` of the whole run goes to lane `i % LANES`
/// while `i` is below the last whole group of lanes, the rest is added in order after the
/// lanes are combined.
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
    pub(crate) fn feed<T: HostElement>(&mut self, mut piece: &[T]) {
        // One at a time up to a lane boundary (or the tail) ...
        while !piece.is_empty() && (self.pos % LANES != 0 || self.pos + LANES > self.full) {
            self.push(piece[0].to_f64());
            piece = &piece[1..];
        }
        // ... whole groups of lanes, which vectorize ...
        let groups = piece.len().min(self.full.saturating_sub(self.pos)) / LANES;
        let (body, rest) = piece.split_at(groups * LANES);
        for ch in body.chunks_exact(LANES) {
            for (l, x) in self.lanes.iter_mut().zip(ch) {
                *l += x.to_f64();
            }
        }
        self.pos += groups * LANES;
        // ... and what is left, one at a time.
        for x in rest {
            self.push(x.to_f64());
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
        let mut width = LANES;
        while width > 1 {
            width /= 2;
            for i in 0..width {
                self.lanes[i] += self.lanes[i + width];
            }
        }
        let tail = &self.tail[..self.pos.saturating_sub(self.full)];
        tail.iter().fold(self.lanes[0], |s, x| s + x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sum_middle_matches_a_plain_loop() {
        // Row counts below, at and around the four-row passes; 1500 columns take two
        // passes over the accumulators (the second starts at column 1024).
        for (outer, r, inner) in [(3, 5, 1500), (2, 1, 9), (2, 4, 33), (1, 11, 1500)] {
            let v: Vec<f32> = (0..outer * r * inner)
                // Magnitudes 2^-40..2^40 apart: f64 sums of these round, so the order shows.
                .map(|i| ((i * 37 % 101) as f32 - 50.0) * 2f32.powi((i * 13 % 81) as i32 - 40))
                .collect();
            let got = sum_middle(&v, (outer, r, inner), |s| s as f32);
            let v64: Vec<f64> = v.iter().map(|&x| x as f64).collect();
            let wide = sum_middle(&v64, (outer, r, inner), |s| s);
            for o in 0..outer {
                for j in 0..inner {
                    let mut s = -0.0f64;
                    for i in 0..r {
                        s += v[(o * r + i) * inner + j] as f64;
                    }
                    let at = o * inner + j;
                    assert_eq!(wide[at].to_bits(), s.to_bits(), "r {r} o {o} j {j}");
                    assert_eq!(got[at], s as f32, "r {r} o {o} j {j}");
                }
            }
        }
    }

    #[test]
    fn sum_run_is_exact_on_integers_and_keeps_negative_zero() {
        for n in [0usize, 1, 7, 8, 9, 33, 1000] {
            let v: Vec<f64> = (0..n).map(|i| i as f64 - 3.0).collect();
            let want: f64 = v.iter().sum();
            assert_eq!(sum_run(&v), want, "n {n}");
        }
        assert!(sum_run(&[-0.0f32; 11]).is_sign_negative());
    }

    /// Fed in pieces of any sizes, the sum is `sum_run`'s over the whole run, bit for bit.
    #[test]
    fn run_sum_in_pieces_is_sum_run() {
        let v: Vec<f32> = (0..203)
            .map(|i| ((i * 7919 % 997) as f32 - 498.0) * 1.37e-3)
            .collect();
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
