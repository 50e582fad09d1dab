//! Run-time SIMD dispatch shared by the CPU kernels that are plain Rust loops.
//!
//! LLVM vectorizes those loops on its own; compiling them inside a
//! `#[target_feature(enable = "avx2")]` function lets it use four f64 or eight f32 lanes
//! instead of SSE2's two or four. The operations and their order stay the same (Rust never
//! fuses a multiply and an add by itself), so the results are bit-identical with or without
//! AVX2. Kernels written with intrinsics (GEMM, GELU, softmax) detect their own features.

/// Runs `body`, compiled for AVX2 when the CPU has it (detected at run time, cached by
/// `std`); without `std` or off x86-64 it runs `body` as it is.
#[inline(always)]
pub(crate) fn with_avx2<R>(body: impl FnOnce() -> R) -> R {
    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    if std::arch::is_x86_feature_detected!("avx2") {
        #[target_feature(enable = "avx2")]
        unsafe fn avx2<R>(body: impl FnOnce() -> R) -> R {
            body()
        }
        // SAFETY: the CPU has AVX2 (checked just above).
        return unsafe { avx2(body) };
    }
    body()
}

/// Asks for the lines of `len` values from `start` into L1, one prefetch per 64-byte line
/// (the last one covering the end). For loops that read rows a stride apart in short
/// pieces, which the hardware prefetchers follow poorly; a no-op off x86-64.
#[inline(always)]
pub(crate) fn prefetch_lines<T>(start: *const T, len: usize) {
    #[cfg(target_arch = "x86_64")]
    prefetch_with::<{ core::arch::x86_64::_MM_HINT_T0 }, T>(start, len);
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (start, len);
}

/// [`prefetch_lines`] into L2 only: for many lines far ahead, which in L1 would wait on its
/// few fill buffers (the GEMM packs' runs, `gemm/pack.rs`).
#[cfg_attr(not(all(feature = "std", target_arch = "x86_64")), allow(dead_code))]
#[inline(always)]
pub(crate) fn prefetch_lines_l2<T>(start: *const T, len: usize) {
    #[cfg(target_arch = "x86_64")]
    prefetch_with::<{ core::arch::x86_64::_MM_HINT_T1 }, T>(start, len);
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (start, len);
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn prefetch_with<const HINT: i32, T>(start: *const T, len: usize) {
    let (p, bytes) = (start.cast::<i8>(), len * core::mem::size_of::<T>());
    for b in (0..bytes)
        .step_by(64)
        .chain(core::iter::once(bytes.saturating_sub(1)))
    {
        // SAFETY: prefetches never fault; the addresses are only hints.
        unsafe { core::arch::x86_64::_mm_prefetch::<HINT>(p.wrapping_add(b)) };
    }
}
