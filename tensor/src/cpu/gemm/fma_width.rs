//! Whether this CPU issues 512-bit FMAs as fast as 256-bit ones, measured once.
//!
//! The small-product kernels (`small.rs`) are AVX2: eight lanes per FMA. On AMD Zen 4 a
//! 512-bit FMA is two 256-bit halves, so they reach the packed AVX-512 kernel's rate and,
//! without its packing, beat it on attention's per-head products up to ViT-S/16's
//! `197 x 64 x 197`. On Intel's server cores (two 512-bit FMA ports) the packed kernel does
//! twice the work per instruction: one thread, 48 products each, the small path ran
//! `64 x 64 x 64` at 82 GFLOP/s against the packed path's 111, and `197 x 64 x 197` at 85
//! against 139, while at `17 x 64 x 17` (the default DINO step) it stayed 1.35x faster. No
//! CPU feature flag says which kind of core this is, so the first call times one loop of
//! independent FMAs on zmm and the same loop on ymm registers: the same instruction count,
//! so the zmm loop takes about as long where the halves issue together and about twice as
//! long where they do not.

use core::arch::asm;
use std::time::{Duration, Instant};

/// Loop iterations per timing (12 FMAs each: ~50k FMAs, tens of microseconds).
const ITERS: usize = 4096;
/// Timings per register width (the fastest counts; the first ones also wake the core up).
const ROUNDS: usize = 7;

/// `ITERS` iterations of 12 independent FMAs on `zmm` (`wide`) or `ymm` registers. The
/// accumulators start at zero and stay there (zero times zero), so no denormal slows them.
///
/// # Safety
/// The CPU has AVX-512F (for `wide`) and FMA.
unsafe fn fma_loop(wide: bool) {
    macro_rules! fma_loop {
        ($r:literal) => {
            asm!(
                concat!("vxorps ", $r, "0, ", $r, "0, ", $r, "0"),
                concat!("vmovaps ", $r, "1, ", $r, "0"),
                concat!("vmovaps ", $r, "2, ", $r, "0"),
                concat!("vmovaps ", $r, "3, ", $r, "0"),
                concat!("vmovaps ", $r, "4, ", $r, "0"),
                concat!("vmovaps ", $r, "5, ", $r, "0"),
                concat!("vmovaps ", $r, "6, ", $r, "0"),
                concat!("vmovaps ", $r, "7, ", $r, "0"),
                concat!("vmovaps ", $r, "8, ", $r, "0"),
                concat!("vmovaps ", $r, "9, ", $r, "0"),
                concat!("vmovaps ", $r, "10, ", $r, "0"),
                concat!("vmovaps ", $r, "11, ", $r, "0"),
                concat!("vmovaps ", $r, "12, ", $r, "0"),
                "2:",
                concat!("vfmadd231ps ", $r, "0, ", $r, "12, ", $r, "12"),
                concat!("vfmadd231ps ", $r, "1, ", $r, "12, ", $r, "12"),
                concat!("vfmadd231ps ", $r, "2, ", $r, "12, ", $r, "12"),
                concat!("vfmadd231ps ", $r, "3, ", $r, "12, ", $r, "12"),
                concat!("vfmadd231ps ", $r, "4, ", $r, "12, ", $r, "12"),
                concat!("vfmadd231ps ", $r, "5, ", $r, "12, ", $r, "12"),
                concat!("vfmadd231ps ", $r, "6, ", $r, "12, ", $r, "12"),
                concat!("vfmadd231ps ", $r, "7, ", $r, "12, ", $r, "12"),
                concat!("vfmadd231ps ", $r, "8, ", $r, "12, ", $r, "12"),
                concat!("vfmadd231ps ", $r, "9, ", $r, "12, ", $r, "12"),
                concat!("vfmadd231ps ", $r, "10, ", $r, "12, ", $r, "12"),
                concat!("vfmadd231ps ", $r, "11, ", $r, "12, ", $r, "12"),
                "dec rcx",
                "jnz 2b",
                "vzeroupper",
                inout("rcx") ITERS => _,
                clobber_abi("C"),
                options(nostack, nomem),
            )
        };
    }
    if wide {
        fma_loop!("zmm");
    } else {
        fma_loop!("ymm");
    }
}

/// The fastest of [`ROUNDS`] timings of `f`.
fn fastest(f: &dyn Fn()) -> Duration {
    (0..ROUNDS)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .min()
        .unwrap_or_default()
}

/// Whether a 512-bit FMA issues at (nearly) the rate of a 256-bit one here; false without
/// AVX-512F or FMA. Timed on the first call, then fixed for the process.
pub(super) fn full_width_fma() -> bool {
    static FULL: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *FULL.get_or_init(|| {
        if !(super::has_avx512f() && std::is_x86_feature_detected!("fma")) {
            return false;
        }
        // SAFETY: the CPU has AVX-512F and FMA (checked above).
        let ymm = fastest(&|| unsafe { fma_loop(false) });
        // SAFETY: as above.
        let zmm = fastest(&|| unsafe { fma_loop(true) });
        // Full width: about 1x; split into halves: about 2x.
        zmm.as_nanos() * 2 < ymm.as_nanos() * 3
    })
}

#[cfg(test)]
mod tests {
    /// The answer is stable within a process, and printed for the record.
    #[test]
    fn full_width_fma_is_measured_once() {
        let first = super::full_width_fma();
        std::println!("512-bit FMAs at full rate: {first}");
        assert_eq!(super::full_width_fma(), first);
    }
}
