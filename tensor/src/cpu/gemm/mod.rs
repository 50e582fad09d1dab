//! Tessera's own f32 GEMM for the CPU backend: packed, cache-blocked, with AVX-512
//! microkernels selected at run time.
//!
//! [`sgemm`] computes `C = A B` (`alpha = 1`, `beta = 0`) for strided f32 matrices, like
//! `matrixmultiply::sgemm`, in one of two precisions ([`MatmulPrecision`], set process-wide
//! by [`set_float32_matmul_precision`], PyTorch's `torch.set_float32_matmul_precision`):
//!
//! - `Highest`: f32 products, f32 sums (`kernel_f32.rs`, `vfmadd231ps`).
//! - `Bf16` (PyTorch's `"medium"`): A and B rounded to bf16 (round-to-nearest-even, as
//!   PyTorch) while they are packed, exact products, f32 sums, f32 output: on Intel AMX tiles
//!   where the CPU and OS have them (`amx.rs`, `tdpbf16ps`: a 16 x 16 x 32 product per
//!   instruction, 3-4x the f32 kernel's rate at the training shapes on two Sapphire Rapids
//!   cores), else `kernel_bf16.rs` (`vdpbf16ps`: two `k` per instruction, twice the f32 rate
//!   where it issues as fast as an FMA; its bf16-pair packing is `pack_bf16.rs`).
//!
//! ## Loop nest (BLIS-style)
//! ```text
//! for jc in 0..n step NC            columns of C whose B block stays in L2/L3
//!   for pc in 0..k step kc          one k block: B(pc.., jc..) packed once into B~ (kc x nc)
//!     for ic in 0..m step MC        (threads split here, or over jr below)
//!       pack A(ic.., pc..) into A~  (MC x kc, 168 x 384 f32 = 252 KiB: stays in L2)
//!       for jr in 0..nc step NR     one NR-column panel of B~ (kc x 32)
//!         for ir in 0..MC step MR   one MR-row panel of A~ (kc x 14)
//!           microkernel: the MR x NR tile of C in registers, (+)= over the kc values
//! ```
//! Packing makes every kernel load contiguous and independent of the operands' strides
//! (transposed views cost only a strided read while packing), and zero-pads edge panels so
//! the kernels always compute whole tiles. One exception: when C is at most
//! a few panels wide and A is row-major (the patch matrices of a narrow ResNet's convolutions,
//! 16-128 output channels), packing A would cost as much as the products it feeds, so whole
//! 14-row panels of A are read in place by a variant of the kernel (`kernel_f32_rows.rs`),
//! with the same sums in the same order. A last column panel of at most 16 columns (C 16
//! columns wide: a narrow ResNet's first stage) takes 14 x 16 variants of both kernels
//! (`kernel_f32_narrow.rs`) instead of computing 16 columns of padding, and when the tiles of
//! `Cᵀ = Bᵀ Aᵀ` pad at least 10% less than those of `C = A B` (a weight gradient `dYᵀ X` with
//! 16 or 32 output channels as its rows) the transpose is computed: every element of C is
//! summed the same way in either case. Products too small to pay for packing at all
//! (attention's per-head products: at most 256 rows, `k` <= 128, 208 columns) skip the nest
//! (`small.rs`: A read in place, B in place or from a padded copy, AVX2 register tiles), with
//! the same FMA chain per element. When `k` takes several blocks and B~ for all of them fits
//! in L2 (`c_resident.rs`: the backward's `dY W`), a thread packs all of B first and runs the
//! `k` blocks inside each block of rows, so C stays in cache between them. The microkernel's tile is 14 x 32 (28 of the 32
//! zmm registers hold it, 28 independent FMA chains: far more than the FMA latency times
//! throughput needs, with 14 broadcasts and 2 loads per 28 FMAs). `kc` is at most
//! [`KC_F32`] values of `k` (f32) or [`KC_BF16`] (bf16, as many bytes per B panel row): A~
//! (`MC x kc`) sits in L2 (1 MiB per Zen 4 core), B~ in L2/L3, and the panels stream through
//! L1 (32 KiB). On Zen 4, `kc = 384` measured a little faster than 128 or 256 (each tile's C
//! update, a load and store of 14 x 32 f32, is amortized over more `k`; noisy measurements
//! on a shared machine) and `MC = 168` than 336. The `k` range is cut into equal even blocks, so e.g. `k = 500` runs as two
//! blocks of 250. The first `k` block overwrites C, the others add to it. That makes a
//! product's `k` range divisible among several calls at those block boundaries with the same
//! bits (`k_split.rs`: the convolution's weight gradient makes its patch rows a part at a
//! time).
//!
//! ## Threads and determinism
//! With `std`, C is cut along its longer side into one block of whole MR-row or NR-column
//! panels per thread of the crate's pool ([`crate::cpu::parallel`]), never over `k`, and
//! each thread runs the whole nest on its block, packing the A and B panels it needs itself
//! (no waiting between `k` blocks, packed panels stay in their core's cache). When C has
//! fewer panels along that side than there are threads, each `(jc, pc)` step's tiles are
//! split instead and B~ is packed once and shared. Every element of C is one lane of one
//! accumulator summed in `k` order, then added to C once per `k` block, whichever thread
//! computes it and whatever tile it falls in: results are bit-identical for every thread
//! count. The batched matmul's per-entry path calls the single-threaded variant
//! ([`sgemm_with`] with `threaded = false`) because it already spreads entries over threads.
//!
//! ## Selection
//! The kernels (`asm!`, so the crate keeps its Rust 1.85 floor: the AVX-512 intrinsics are
//! stable only since 1.89) need AVX-512F (f32) and AVX512_BF16 (bf16), detected at run time
//! (`is_x86_feature_detected!`, cached). Without them, or without `std`, or off x86-64,
//! `Highest` uses `matrixmultiply::sgemm`, and `Bf16` rounds A and B to bf16 and multiplies
//! them in f32 (the f32 kernel with rounding in the packing when the CPU has AVX-512F, else
//! `matrixmultiply` on rounded copies): the same values as the `vdpbf16ps` path up to the
//! order of the f32 sums. Where the CPU has AVX512_BF16, `Bf16` still takes the f32 kernel
//! on rounded panels if that is faster here: the first bf16 product times both kernels on
//! one tile (`calibrate.rs`; `vdpbf16ps` ran at twice the f32 rate on AMD Zen 4 and at half
//! of it on an Intel Xeon without AMX). Where AMX runs (`amx::available`: CPUID's AMX-TILE
//! and AMX-BF16, and Linux's permission for the tile state), `Bf16` takes it without a timing:
//! it is the fastest path by a wide margin. The AMX kernel's tile is 32 x 32 and its packing
//! (`pack_amx.rs`) lays A out row-major in bf16, so the nest runs with its own `MR`, `MC` and
//! `kc` (`packed::Kind`). [`GemmImpl`] names each path for benchmarks and tests.

#[cfg(all(feature = "std", target_arch = "x86_64"))]
#[macro_use]
mod store_tile;
#[cfg(all(feature = "std", target_arch = "x86_64"))]
mod amx;
#[cfg(all(feature = "std", target_arch = "x86_64"))]
mod c_resident;
#[cfg(all(feature = "std", target_arch = "x86_64"))]
mod calibrate;
#[cfg(all(feature = "std", target_arch = "x86_64"))]
mod fma_width;
#[cfg(all(feature = "std", target_arch = "x86_64"))]
mod k_split;
#[cfg(all(feature = "std", target_arch = "x86_64"))]
mod kernel_bf16;
#[cfg(all(feature = "std", target_arch = "x86_64"))]
mod kernel_f32;
#[cfg(all(feature = "std", target_arch = "x86_64"))]
mod kernel_f32_narrow;
#[cfg(all(feature = "std", target_arch = "x86_64"))]
mod kernel_f32_rows;
#[cfg(all(feature = "std", target_arch = "x86_64"))]
mod orientation;
#[cfg(all(feature = "std", target_arch = "x86_64"))]
mod pack;
#[cfg(all(feature = "std", target_arch = "x86_64"))]
mod pack_amx;
#[cfg(all(feature = "std", target_arch = "x86_64"))]
mod pack_bf16;
#[cfg(all(feature = "std", target_arch = "x86_64"))]
mod pack_block;
#[cfg(all(feature = "std", target_arch = "x86_64"))]
pub(crate) mod pack_transpose;
#[cfg(all(feature = "std", target_arch = "x86_64"))]
mod packed;
pub(crate) mod precision;
#[cfg(all(feature = "std", target_arch = "x86_64"))]
mod row_sums;
#[cfg(all(feature = "std", target_arch = "x86_64"))]
mod small;
#[cfg(test)]
mod tests;

#[cfg(all(feature = "std", target_arch = "x86_64"))]
pub(crate) use k_split::{sgemm_k_part, KSplit};
pub use precision::{float32_matmul_precision, set_float32_matmul_precision, MatmulPrecision};
#[cfg(all(feature = "std", target_arch = "x86_64"))]
pub(crate) use row_sums::sgemm_row_sums_with;

use alloc::vec::Vec;

/// Rows of the microkernel's tile.
pub const MR: usize = 14;
/// Columns of the microkernel's tile (two zmm of f32).
pub const NR: usize = 32;
/// Most values of `k` in one block of the f32 kernels.
pub const KC_F32: usize = 384;
/// Most values of `k` in one block of the bf16 kernel (a B panel of `NR x KC_BF16` bf16 is
/// 32 KiB, L1).
pub const KC_BF16: usize = 512;
/// Rows of C per packed block of A (a multiple of [`MR`]).
pub const MC: usize = 12 * MR;
/// Columns of C per packed block of B (a multiple of [`NR`]).
pub const NC: usize = 64 * NR;

/// Whether `Highest` uses the packed AVX-512F kernel (else `matrixmultiply`): set from the
/// interleaved benchmark in `benches/kernels.rs` (`TESSERA_GEMM_IMPLS`), where on Zen 4 at
/// two threads its median beat matrixmultiply's on every training-step shape (by 0-30%).
const F32_KERNEL_BY_DEFAULT: bool = true;

/// One implementation of [`sgemm_with`] (for benchmarks and tests; [`sgemm`] picks one from
/// the [`MatmulPrecision`]). A packed path the CPU cannot run degrades as described in the
/// module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GemmImpl {
    /// `matrixmultiply::sgemm` (f32).
    MatrixMultiply,
    /// The packed AVX-512F f32 kernel.
    F32,
    /// bf16 inputs: `vdpbf16ps` where the CPU has AVX512_BF16, else [`Self::Bf16Emulated`].
    /// ([`GemmImpl::for_precision`] picks it only where it is the faster of the two.)
    Bf16,
    /// bf16 inputs on Intel AMX tiles (`tdpbf16ps`) where the CPU and OS have them, else
    /// [`Self::Bf16`]. [`GemmImpl::for_precision`] picks it wherever it runs.
    Bf16Amx,
    /// bf16 inputs, rounded while packing, multiplied by the f32 kernel (without AVX-512F:
    /// [`Self::Bf16Portable`]).
    Bf16Emulated,
    /// bf16 inputs: rounded copies of A and B multiplied by `matrixmultiply`.
    Bf16Portable,
}

impl GemmImpl {
    /// The implementation [`sgemm`] uses for `precision` on this CPU.
    pub fn for_precision(precision: MatmulPrecision) -> GemmImpl {
        match precision {
            MatmulPrecision::Highest if F32_KERNEL_BY_DEFAULT && has_avx512f() => GemmImpl::F32,
            MatmulPrecision::Highest => GemmImpl::MatrixMultiply,
            MatmulPrecision::Bf16 if has_amx() => GemmImpl::Bf16Amx,
            MatmulPrecision::Bf16 if bf16_kernel_by_default() => GemmImpl::Bf16,
            MatmulPrecision::Bf16 => GemmImpl::Bf16Emulated,
        }
    }
}

/// Detected CPU support: 0 unknown, 1 none, 2 AVX-512F, 3 AVX-512F and AVX512_BF16.
#[cfg(all(feature = "std", target_arch = "x86_64"))]
fn cpu_level() -> u8 {
    use core::sync::atomic::{AtomicU8, Ordering};
    static LEVEL: AtomicU8 = AtomicU8::new(0);
    match LEVEL.load(Ordering::Relaxed) {
        0 => {
            let f = std::is_x86_feature_detected!("avx512f");
            let bf = f
                && std::is_x86_feature_detected!("avx512bw")
                && std::is_x86_feature_detected!("avx512bf16");
            let level = 1 + u8::from(f) + u8::from(bf);
            LEVEL.store(level, Ordering::Relaxed);
            level
        }
        level => level,
    }
}

#[cfg(all(feature = "std", target_arch = "x86_64"))]
fn has_avx512f() -> bool {
    cpu_level() >= 2
}

#[cfg(not(all(feature = "std", target_arch = "x86_64")))]
fn has_avx512f() -> bool {
    false
}

#[cfg(all(feature = "std", target_arch = "x86_64"))]
fn has_avx512bf16() -> bool {
    cpu_level() >= 3
}

/// Whether the AMX bf16 kernel runs here (CPU and OS support, see `amx.rs`).
pub fn has_amx() -> bool {
    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    {
        amx::available()
    }
    #[cfg(not(all(feature = "std", target_arch = "x86_64")))]
    {
        false
    }
}

/// Whether the `Bf16` precision uses the `vdpbf16ps` kernel (else the f32 kernel on rounded
/// panels): where the CPU has it and it is the faster of the two here (`calibrate.rs`).
#[cfg(all(feature = "std", target_arch = "x86_64"))]
fn bf16_kernel_by_default() -> bool {
    static FASTER: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    // SAFETY: only timed where the CPU has AVX-512F and AVX512_BF16.
    has_avx512bf16() && *FASTER.get_or_init(|| unsafe { calibrate::bf16_kernel_is_faster() })
}

#[cfg(not(all(feature = "std", target_arch = "x86_64")))]
fn bf16_kernel_by_default() -> bool {
    true
}

/// `C = A B` for f32 matrices, in the current [`float32_matmul_precision`], on the crate's
/// threads. `A` is `m x k` (element `(i, p)` at `a + i * rsa + p * csa`), `B` is `k x n`,
/// `C` is `m x n` and is overwritten (`k = 0` writes zeros).
///
/// # Safety
/// - Strides are non-negative (negative ones panic).
/// - Every element of A and B addressed by the shapes and strides is readable, and every
///   element of C is writable; C does not overlap A or B, and no two `(i, j)` of C share an
///   address.
/// - Nothing else accesses C during the call.
#[allow(clippy::too_many_arguments)]
pub unsafe fn sgemm(
    m: usize,
    k: usize,
    n: usize,
    a: *const f32,
    rsa: isize,
    csa: isize,
    b: *const f32,
    rsb: isize,
    csb: isize,
    c: *mut f32,
    rsc: isize,
    csc: isize,
) {
    let imp = GemmImpl::for_precision(float32_matmul_precision());
    sgemm_with(imp, true, m, k, n, a, rsa, csa, b, rsb, csb, c, rsc, csc);
}

/// [`sgemm`] with a chosen implementation; `threaded = false` runs on the calling thread
/// only (for callers that already spread their work over the threads).
///
/// # Safety
/// As [`sgemm`].
#[allow(clippy::too_many_arguments)]
pub unsafe fn sgemm_with(
    imp: GemmImpl,
    threaded: bool,
    m: usize,
    k: usize,
    n: usize,
    a: *const f32,
    rsa: isize,
    csa: isize,
    b: *const f32,
    rsb: isize,
    csb: isize,
    c: *mut f32,
    rsc: isize,
    csc: isize,
) {
    sgemm_bias_with(
        imp,
        threaded,
        m,
        k,
        n,
        a,
        rsa,
        csa,
        b,
        rsb,
        csb,
        core::ptr::null(),
        c,
        rsc,
        csc,
    );
}

/// `C = A B + bias` (PyTorch's `addmm` with a row vector, the linear layer's forward):
/// [`sgemm_with`] that also adds `bias[j]` to every element of column `j` of C, to each tile
/// right after its last `k` block rather than in a pass over C afterwards. Each element is
/// `(A B)[i, j] + bias[j]`, rounded as the separate add rounds it, so the result is
/// bit-identical to `sgemm_with` followed by that add. A null `bias` adds nothing (this is
/// then `sgemm_with`).
///
/// # Safety
/// As [`sgemm`], and `bias` is null or points at `n` readable contiguous values.
#[allow(clippy::too_many_arguments)]
pub unsafe fn sgemm_bias_with(
    imp: GemmImpl,
    threaded: bool,
    m: usize,
    k: usize,
    n: usize,
    a: *const f32,
    rsa: isize,
    csa: isize,
    b: *const f32,
    rsb: isize,
    csb: isize,
    bias: *const f32,
    c: *mut f32,
    rsc: isize,
    csc: isize,
) {
    let strides = [rsa, csa, rsb, csb, rsc, csc];
    assert!(
        strides.iter().all(|&s| s >= 0),
        "gemm::sgemm: negative strides are not supported ({strides:?})"
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        for i in 0..m {
            for j in 0..n {
                *c.offset(i as isize * rsc + j as isize * csc) = 0.0;
            }
        }
        add_bias_rows(m, n, bias, c, rsc, csc);
        return;
    }
    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    {
        if let Some(kind) = packed_kind(imp) {
            let mat = |p: *const f32, rs: isize, cs: isize| pack::Mat {
                ptr: p,
                rs: rs as usize,
                cs: cs as usize,
            };
            let c = pack::MatMut {
                ptr: c,
                rs: rsc as usize,
                cs: csc as usize,
                bias,
            };
            packed::gemm(
                kind,
                threaded,
                m,
                k,
                n,
                mat(a, rsa, csa),
                mat(b, rsb, csb),
                c,
            );
            return;
        }
    }
    let _ = threaded; // matrixmultiply threads by itself (`MATMUL_NUM_THREADS`).
    match imp {
        GemmImpl::MatrixMultiply | GemmImpl::F32 => {
            matrixmultiply::sgemm(m, k, n, 1.0, a, rsa, csa, b, rsb, csb, 0.0, c, rsc, csc);
        }
        GemmImpl::Bf16 | GemmImpl::Bf16Amx | GemmImpl::Bf16Emulated | GemmImpl::Bf16Portable => {
            let (ar, br) = (rounded(m, k, a, rsa, csa), rounded(k, n, b, rsb, csb));
            let (ka, na) = (k as isize, n as isize);
            let (pa, pb) = (ar.as_ptr(), br.as_ptr());
            matrixmultiply::sgemm(m, k, n, 1.0, pa, ka, 1, pb, na, 1, 0.0, c, rsc, csc);
        }
    }
    add_bias_rows(m, n, bias, c, rsc, csc);
}

/// The packed path's kind for `imp` on this CPU, or `None` where `imp` runs on
/// `matrixmultiply` (the degradations in the module docs).
#[cfg(all(feature = "std", target_arch = "x86_64"))]
fn packed_kind(imp: GemmImpl) -> Option<packed::Kind> {
    use packed::Kind;
    match imp {
        GemmImpl::F32 if has_avx512f() => Some(Kind::F32),
        GemmImpl::Bf16Amx if has_amx() => Some(Kind::Amx),
        GemmImpl::Bf16 | GemmImpl::Bf16Amx if has_avx512bf16() => Some(Kind::Bf16),
        GemmImpl::Bf16 | GemmImpl::Bf16Amx | GemmImpl::Bf16Emulated if has_avx512f() => {
            Some(Kind::F32Rounded)
        }
        _ => None,
    }
}

/// `C[i, j] += bias[j]` over the whole `m x n` C (nothing when `bias` is null): the bias of
/// the paths whose GEMM has no epilogue.
///
/// # Safety
/// As [`sgemm_bias_with`].
unsafe fn add_bias_rows(m: usize, n: usize, bias: *const f32, c: *mut f32, rsc: isize, csc: isize) {
    if bias.is_null() {
        return;
    }
    for i in 0..m {
        for j in 0..n {
            *c.offset(i as isize * rsc + j as isize * csc) += *bias.add(j);
        }
    }
}

/// A row-major copy of the `rows x cols` matrix at `p`, rounded to bf16 values.
///
/// # Safety
/// Every element addressed is readable.
unsafe fn rounded(rows: usize, cols: usize, p: *const f32, rs: isize, cs: isize) -> Vec<f32> {
    let mut v = Vec::with_capacity(rows * cols);
    for i in 0..rows {
        for j in 0..cols {
            v.push(precision::round_bf16(
                *p.offset(i as isize * rs + j as isize * cs),
            ));
        }
    }
    v
}
