//! The AVX-512F f32 microkernel: one `MR x NR` (14 x 32) tile of C from an `MR`-row panel of
//! packed A and an `NR`-column panel of packed B.
//!
//! The tile lives in 28 zmm accumulators (`zmm0..zmm27`, two 16-lane vectors per row). Each
//! `k` step loads B's 32 values into `zmm28`/`zmm29`, broadcasts each of A's 14 values
//! (alternating `zmm30`/`zmm31`) and issues 28 independent FMAs (`vfmadd231ps`), which
//! covers the FMA latency many times over. Every C element is one lane of one accumulator,
//! summed in `k` order with one rounding per FMA, so its value does not depend on the tile it
//! falls in.
//!
//! Written with `asm!` rather than `core::arch` intrinsics: the AVX-512 intrinsics and
//! `#[target_feature(enable = "avx512f")]` are stable only since Rust 1.89, and the crate
//! supports 1.85. The callers check the CPU features at run time (`super::cpu_level`).

use super::{MR, NR};
use core::arch::asm;
use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
use core::mem::MaybeUninit;

/// Where a tile goes: `rows x cols` (at most `MR x NR`) elements of C at `ptr` with strides
/// `rs`, `cs`; `accumulate` adds the tile to C (the second and later `k` blocks) instead of
/// overwriting it; a non-null `bias` (the value of the tile's first column, `cols` readable
/// f32) is then added to every row: `C = (C + tile) + bias`, each an f32 addition. Only the
/// 14 x 32 kernels (`kernel_f32`, `kernel_f32_rows`, `kernel_bf16`) take a bias; the
/// caller adds it after the others.
#[derive(Clone, Copy, Debug)]
pub(super) struct Out {
    pub ptr: *mut f32,
    pub rs: usize,
    pub cs: usize,
    pub rows: usize,
    pub cols: usize,
    pub accumulate: bool,
    pub bias: *const f32,
}

/// A whole tile, row-major, for edge tiles and non-contiguous rows of C.
#[repr(C, align(64))]
pub(super) struct Tile(pub [[f32; NR]; MR]);

/// Where the kernel's `asm!` writes its `MR x width` tile: C itself when the tile is whole
/// with contiguous rows (`(ptr, row stride in bytes, accumulate, bias)`), else a [`Tile`]
/// that [`finish`] then writes out (accumulating and adding the bias itself: the asm gets
/// `false` and a null bias).
pub(super) fn target(
    out: &Out,
    tile: &mut MaybeUninit<Tile>,
    width: usize,
) -> (*mut f32, usize, bool, *const f32) {
    if writes_c_directly(out, width) {
        (out.ptr, out.rs * 4, out.accumulate, out.bias)
    } else {
        (tile.as_mut_ptr().cast(), NR * 4, false, core::ptr::null())
    }
}

/// `C tile (+)= A panel x B panel` over `kc` values of `k`.
///
/// # Safety
/// The CPU has AVX-512F; `a` holds `MR * kc` and `b` `NR * kc` readable f32 in the layout
/// of `pack::pack_a_f32` / `pack::pack_b_f32`; `out` describes writable elements of C not
/// accessed by anything else during the call.
pub(super) unsafe fn kernel(kc: usize, a: *const f32, b: *const f32, out: &Out) {
    prefetch_c(out);
    let mut tile = MaybeUninit::<Tile>::uninit();
    let (c, rs, acc, bias) = target(out, &mut tile, NR);
    // SAFETY: reads `MR * kc` f32 at `a` and `NR * kc` at `b`, then (adds and) stores MR rows
    // of NR f32 at `c` with a stride of `rs` bytes: C's tile or `tile` (see `target`), after
    // adding NR f32 read at `bias` when it is not null. Every vector register it uses is
    // clobbered by `clobber_abi("C")`.
    // Registers: rcx counts k steps, rsi/rdi walk the A/B panels, rdx is the tile's first
    // row, r8 the row stride in bytes, r9 the accumulate flag, r10 the row pointer, r14 the
    // bias (or 0).
    asm!(
        zero_tile_14x32!(),
        "test rcx, rcx",
        "jz 3f",
        "2:",
        "prefetcht0 [rdi + 1024]",
        "prefetcht0 [rdi + 1088]",
        "prefetcht0 [rsi + 448]",
        "vmovups zmm28, [rdi]",
        "vmovups zmm29, [rdi + 64]",
        "vbroadcastss zmm30, dword ptr [rsi + 0]",
        "vfmadd231ps zmm0, zmm30, zmm28",
        "vfmadd231ps zmm1, zmm30, zmm29",
        "vbroadcastss zmm31, dword ptr [rsi + 4]",
        "vfmadd231ps zmm2, zmm31, zmm28",
        "vfmadd231ps zmm3, zmm31, zmm29",
        "vbroadcastss zmm30, dword ptr [rsi + 8]",
        "vfmadd231ps zmm4, zmm30, zmm28",
        "vfmadd231ps zmm5, zmm30, zmm29",
        "vbroadcastss zmm31, dword ptr [rsi + 12]",
        "vfmadd231ps zmm6, zmm31, zmm28",
        "vfmadd231ps zmm7, zmm31, zmm29",
        "vbroadcastss zmm30, dword ptr [rsi + 16]",
        "vfmadd231ps zmm8, zmm30, zmm28",
        "vfmadd231ps zmm9, zmm30, zmm29",
        "vbroadcastss zmm31, dword ptr [rsi + 20]",
        "vfmadd231ps zmm10, zmm31, zmm28",
        "vfmadd231ps zmm11, zmm31, zmm29",
        "vbroadcastss zmm30, dword ptr [rsi + 24]",
        "vfmadd231ps zmm12, zmm30, zmm28",
        "vfmadd231ps zmm13, zmm30, zmm29",
        "vbroadcastss zmm31, dword ptr [rsi + 28]",
        "vfmadd231ps zmm14, zmm31, zmm28",
        "vfmadd231ps zmm15, zmm31, zmm29",
        "vbroadcastss zmm30, dword ptr [rsi + 32]",
        "vfmadd231ps zmm16, zmm30, zmm28",
        "vfmadd231ps zmm17, zmm30, zmm29",
        "vbroadcastss zmm31, dword ptr [rsi + 36]",
        "vfmadd231ps zmm18, zmm31, zmm28",
        "vfmadd231ps zmm19, zmm31, zmm29",
        "vbroadcastss zmm30, dword ptr [rsi + 40]",
        "vfmadd231ps zmm20, zmm30, zmm28",
        "vfmadd231ps zmm21, zmm30, zmm29",
        "vbroadcastss zmm31, dword ptr [rsi + 44]",
        "vfmadd231ps zmm22, zmm31, zmm28",
        "vfmadd231ps zmm23, zmm31, zmm29",
        "vbroadcastss zmm30, dword ptr [rsi + 48]",
        "vfmadd231ps zmm24, zmm30, zmm28",
        "vfmadd231ps zmm25, zmm30, zmm29",
        "vbroadcastss zmm31, dword ptr [rsi + 52]",
        "vfmadd231ps zmm26, zmm31, zmm28",
        "vfmadd231ps zmm27, zmm31, zmm29",
        "add rsi, 56",
        "add rdi, 128",
        "dec rcx",
        "jnz 2b",
        store_tile_14x32!(),
        inout("rcx") kc => _,
        inout("rsi") a => _,
        inout("rdi") b => _,
        in("rdx") c,
        in("r8") rs,
        in("r9") usize::from(acc),
        in("r14") bias,
        out("r10") _,
        clobber_abi("C"),
        options(nostack),
    );
    finish(&tile, out, NR);
}

/// Whether a kernel with an `MR x width` tile writes it to C itself (see [`target`]).
fn writes_c_directly(out: &Out, width: usize) -> bool {
    out.rows == MR && out.cols == width && out.cs == 1
}

/// Writes (or adds) the valid part of the tile to C when the kernel wrote it to `tile`
/// (edge tiles, strided rows of C). One f32 addition per element, as the kernel's own.
///
/// # Safety
/// If `target(out, .., width)` chose the tile, the kernel has written it; `out` as in
/// [`kernel`].
pub(super) unsafe fn finish(tile: &MaybeUninit<Tile>, out: &Out, width: usize) {
    if writes_c_directly(out, width) {
        return; // written to C directly
    }
    let t = &*tile.as_ptr();
    for (i, row) in t.0.iter().enumerate().take(out.rows) {
        for (j, &v) in row.iter().enumerate().take(out.cols) {
            let p = out.ptr.add(i * out.rs + j * out.cs);
            let sum = if out.accumulate { *p + v } else { v };
            *p = if out.bias.is_null() {
                sum
            } else {
                sum + *out.bias.add(j)
            };
        }
    }
}

/// Adds `bias[j]` to column `j` of the tile `out`, which a kernel without the bias epilogue
/// (the 14 x 16 and AMX kernels) has just written.
///
/// # Safety
/// `out` is a valid tile of C that no other thread accesses, and `bias` has `out.cols`
/// readable values.
pub(super) unsafe fn add_bias(out: &Out, bias: *const f32) {
    let bias = core::slice::from_raw_parts(bias, out.cols);
    for r in 0..out.rows {
        let row = out.ptr.add(r * out.rs);
        if out.cs == 1 {
            let row = core::slice::from_raw_parts_mut(row, out.cols);
            for (c, b) in row.iter_mut().zip(bias) {
                *c += b;
            }
        } else {
            for (j, b) in bias.iter().enumerate() {
                *row.add(j * out.cs) += b;
            }
        }
    }
}

/// Asks for the tile's lines of C ahead of the `k` loop, so the final read-modify-write
/// does not wait on memory.
#[inline(always)]
pub(super) fn prefetch_c(out: &Out) {
    for i in 0..out.rows {
        let p = out.ptr.wrapping_add(i * out.rs);
        let last = p.wrapping_add(out.cols.saturating_sub(1) * out.cs);
        // SAFETY: prefetches never fault; the addresses are only hints.
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>(p as *const i8);
            _mm_prefetch::<_MM_HINT_T0>(last as *const i8);
        }
    }
}
