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
