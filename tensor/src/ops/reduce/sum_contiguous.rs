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

use super::run_sum::sum_run;
use crate::buffer::HostElement;
use crate::cpu::parallel;
use crate::cpu::simd::{prefetch_lines, with_avx2};
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

/// How many groups of rows ahead [`add_rows_loop`] asks for the lines it will read: a
/// thread's columns of a row are a short piece (0.75–1.5 KB for a bias gradient), the next
/// row's one stride on, which the hardware prefetchers follow poorly. Two groups (eight
/// rows) ahead took 7–10% off the bias gradients' sums (`[4352, 192..768]`, 2 threads).
const GROUPS_AHEAD: usize = 2;

/// Adds columns `j..j + acc.len()` of each `inner`-wide row of `block` into `acc`, the rows
/// in order: `((acc + r0) + r1) + r2) + r3` is the row-by-row sum, bit for bit.
#[inline(always)]
fn add_rows_loop<T: HostElement>(acc: &mut [f64], block: &[T], inner: usize, j: usize) {
    let cols = j..j + acc.len();
    let mut groups = block.chunks_exact(ROWS_PER_PASS * inner);
    let group = ROWS_PER_PASS * inner;
    for (i, g) in (&mut groups).enumerate() {
        // The rows' pieces are `inner` apart: ask for the group `GROUPS_AHEAD` on.
        if let Some(next) = block.get((i + GROUPS_AHEAD) * group..(i + GROUPS_AHEAD + 1) * group) {
            for row in next.chunks_exact(inner) {
                prefetch_lines(row[cols.clone()].as_ptr(), cols.len());
            }
        }
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

/// [`add_rows_loop`], compiled for AVX2 (four f64 lanes) where the CPU has it.
fn add_rows<T: HostElement>(acc: &mut [f64], block: &[T], inner: usize, j: usize) {
    with_avx2(|| add_rows_loop(acc, block, inner, j))
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
}
