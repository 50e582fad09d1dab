//! Which bf16 kernel is faster on this CPU, measured once.
//!
//! `vdpbf16ps` does two `k` per lane per instruction, so where it issues as fast as an f32
//! FMA it doubles the rate (AMD Zen 4: 360 against 200 GFLOP/s on two cores). On the Intel
//! Xeon guest of the third CPU round (AVX512_BF16 without AMX) it issues at a quarter of
//! that and ran at half the f32 kernel's rate (150 against 300), so there the bf16 precision
//! is faster through the f32 kernel on bf16-rounded panels (`Kind::F32Rounded`: the same
//! products, summed one `k` at a time instead of in pairs). No CPU feature flag tells the two
//! apart, so the first bf16 product times both kernels on one packed tile and keeps the
//! faster; the choice is fixed for the process.

use super::kernel_f32::Out;
use super::{kernel_bf16, kernel_f32, MR, NR};
use std::time::{Duration, Instant};
use std::vec;

/// `k` values per timed kernel call (a whole tile's panels stay in L1).
const KC: usize = 256;
/// Kernel calls per timing, and timings per kernel (the fastest counts).
const CALLS: usize = 64;
const ROUNDS: usize = 5;

/// Whether the `vdpbf16ps` kernel computes a tile faster than the f32 kernel.
///
/// # Safety
/// The CPU has AVX-512F and AVX512_BF16.
pub(super) unsafe fn bf16_kernel_is_faster() -> bool {
    // The panels' contents do not matter for the timing; small integers keep every product
    // finite. u32 words serve both kernels (f32 bits, or two bf16).
    let a: vec::Vec<u32> = (0..MR * KC)
        .map(|i| (1.0f32 + (i % 7) as f32).to_bits())
        .collect();
    let b: vec::Vec<u32> = (0..NR * KC)
        .map(|i| (2.0f32 - (i % 5) as f32).to_bits())
        .collect();
    let mut c = vec![0.0f32; MR * NR];
    let out = Out {
        ptr: c.as_mut_ptr(),
        rs: NR,
        cs: 1,
        rows: MR,
        cols: NR,
        accumulate: false,
        bias: core::ptr::null(),
    };
    let time = |f: &dyn Fn()| -> Duration {
        (0..ROUNDS)
            .map(|_| {
                let start = Instant::now();
                for _ in 0..CALLS {
                    f();
                }
                start.elapsed()
            })
            .min()
            .unwrap_or_default()
    };
    // Both compute an MR x NR tile over KC values of k (the bf16 kernel over KC / 2 pairs).
    // SAFETY: the panels hold MR * KC and NR * KC words, at least what either kernel reads;
    // `out` is the whole of `c`, which nothing else accesses.
    let f32_time =
        time(&|| unsafe { kernel_f32::kernel(KC, a.as_ptr().cast(), b.as_ptr().cast(), &out) });
    // SAFETY: as above (the caller guarantees AVX512_BF16).
    let bf16_time = time(&|| unsafe { kernel_bf16::kernel(KC / 2, a.as_ptr(), b.as_ptr(), &out) });
    core::hint::black_box(&c);
    bf16_time < f32_time
}
