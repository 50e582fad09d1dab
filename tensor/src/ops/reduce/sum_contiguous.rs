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
            for row in block.chunks_exact(inner) {
                for (a, x) in acc.iter_mut().zip(&row[j..j + cols]) {
                    *a += x.to_f64();
                }
            }
            sink.extend_map(acc, &out);
            k += cols;
        }
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sum_middle_matches_a_plain_loop() {
        let (outer, r, inner) = (3, 5, 1500);
        let v: Vec<f32> = (0..outer * r * inner)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.125)
            .collect();
        let got = sum_middle(&v, (outer, r, inner), |s| s as f32);
        for o in 0..outer {
            for j in 0..inner {
                let mut s = -0.0f64;
                for i in 0..r {
                    s += v[(o * r + i) * inner + j] as f64;
                }
                assert_eq!(got[o * inner + j], s as f32, "o {o} j {j}");
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
}
