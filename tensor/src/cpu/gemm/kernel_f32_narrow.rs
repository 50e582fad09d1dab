//! The AVX-512F f32 microkernels for the last, narrow column panel of C: an `MR x 16`
//! (14 x 16) tile, for when at most 16 of the panel's `NR` (32) columns are in C.
//!
//! A narrow ResNet's first stage has 16 channels, so its convolutions' products are 16
//! columns wide (the forward pass, the weight gradient computed as `Xᵀ dY`), as is the last
//! panel of any `n = 32q + 16`. The 14 x 32 kernels compute such a panel's padding columns
//! too: half their FMAs are wasted. These kernels keep one zmm accumulator per row
//! (`zmm0`-`zmm13`), load the first 16 values of each `k` row of the packed B panel (its
//! layout is unchanged, `NR` wide, the rest zero padding), and issue 14 FMAs per `k`, one per
//! broadcast. Each C element still gets the same FMAs in the same order as in the wide
//! kernels, so the result is bit-identical to theirs. [`kernel`] reads packed A
//! (`kernel_f32.rs`'s layout), [`kernel_rows`] reads 14 rows of row-major A in place
//! (`kernel_f32_rows.rs`'s addressing).

use super::kernel_f32::{finish, prefetch_c, target, Out, Tile};
use super::NR;
use core::arch::asm;
use core::mem::MaybeUninit;

/// Columns of the narrow tile: one zmm of f32.
pub(super) const NR_NARROW: usize = NR / 2;

/// `C tile (+)= A panel x B panel` for a tile at most [`NR_NARROW`] columns wide.
///
/// # Safety
/// As `kernel_f32::kernel`, and `out.cols <= NR_NARROW`.
pub(super) unsafe fn kernel(kc: usize, a: *const f32, b: *const f32, out: &Out) {
    debug_assert!(out.cols <= NR_NARROW);
    prefetch_c(out);
    let mut tile = MaybeUninit::<Tile>::uninit();
    let (c, rs, acc, _) = target(out, &mut tile, NR_NARROW);
    // SAFETY: reads `MR * kc` f32 at `a` and the first 16 of each `NR` f32 of the `kc` rows
    // at `b`, then (adds and) stores MR rows of 16 f32 at `c` with a stride of `rs` bytes:
    // C's tile or `tile` (see `target`). Every vector register it uses is clobbered by
    // `clobber_abi("C")`.
    // Registers: rcx counts k steps, rsi/rdi walk the A/B panels, rdx is the tile's first
    // row, r8 the row stride in bytes, r9 the accumulate flag, r10 the row pointer.
    asm!(
        zero_tile_14x16!(),
        "test rcx, rcx",
        "jz 3f",
        "2:",
        "prefetcht0 [rdi + 1024]",
        "prefetcht0 [rsi + 448]",
        "vmovups zmm28, [rdi]",
        "vbroadcastss zmm30, dword ptr [rsi + 0]",
        "vfmadd231ps zmm0, zmm30, zmm28",
        "vbroadcastss zmm31, dword ptr [rsi + 4]",
        "vfmadd231ps zmm1, zmm31, zmm28",
        "vbroadcastss zmm30, dword ptr [rsi + 8]",
        "vfmadd231ps zmm2, zmm30, zmm28",
        "vbroadcastss zmm31, dword ptr [rsi + 12]",
        "vfmadd231ps zmm3, zmm31, zmm28",
        "vbroadcastss zmm30, dword ptr [rsi + 16]",
        "vfmadd231ps zmm4, zmm30, zmm28",
        "vbroadcastss zmm31, dword ptr [rsi + 20]",
        "vfmadd231ps zmm5, zmm31, zmm28",
        "vbroadcastss zmm30, dword ptr [rsi + 24]",
        "vfmadd231ps zmm6, zmm30, zmm28",
        "vbroadcastss zmm31, dword ptr [rsi + 28]",
        "vfmadd231ps zmm7, zmm31, zmm28",
        "vbroadcastss zmm30, dword ptr [rsi + 32]",
        "vfmadd231ps zmm8, zmm30, zmm28",
        "vbroadcastss zmm31, dword ptr [rsi + 36]",
        "vfmadd231ps zmm9, zmm31, zmm28",
        "vbroadcastss zmm30, dword ptr [rsi + 40]",
        "vfmadd231ps zmm10, zmm30, zmm28",
        "vbroadcastss zmm31, dword ptr [rsi + 44]",
        "vfmadd231ps zmm11, zmm31, zmm28",
        "vbroadcastss zmm30, dword ptr [rsi + 48]",
        "vfmadd231ps zmm12, zmm30, zmm28",
        "vbroadcastss zmm31, dword ptr [rsi + 52]",
        "vfmadd231ps zmm13, zmm31, zmm28",
        "add rsi, 56",
        "add rdi, 128",
        "dec rcx",
        "jnz 2b",
        store_tile_14x16!(),
        inout("rcx") kc => _,
        inout("rsi") a => _,
        inout("rdi") b => _,
        in("rdx") c,
        in("r8") rs,
        in("r9") usize::from(acc),
        out("r10") _,
        clobber_abi("C"),
        options(nostack),
    );
    finish(&tile, out, NR_NARROW);
}

/// `C tile (+)= A rows x B panel` for a tile at most [`NR_NARROW`] columns wide, A read in
/// place.
///
/// # Safety
/// As `kernel_f32_rows::kernel`, and `out.cols <= NR_NARROW`.
pub(super) unsafe fn kernel_rows(kc: usize, a: *const f32, rs: usize, b: *const f32, out: &Out) {
    debug_assert!(out.cols <= NR_NARROW);
    prefetch_c(out);
    let mut tile = MaybeUninit::<Tile>::uninit();
    let (c, crs, acc, _) = target(out, &mut tile, NR_NARROW);
    let rs_bytes = rs * 4;
    // SAFETY: reads `kc` f32 from each of the 14 rows at `a + i * rs` and the first 16 of
    // each `NR` f32 of the `kc` rows at `b`, then (adds and) stores MR rows of 16 f32 at `c`
    // with a stride of `crs` bytes: C's tile or `tile` (see `target`). Every vector register
    // it uses is clobbered by `clobber_abi("C")`.
    // Registers: as `kernel_f32_rows::kernel` (rsi/r11/r12 rows 0/5/10 of A, rax the row
    // stride in bytes, r13 three times it).
    asm!(
        "lea r13, [rax + rax*2]",
        "lea r11, [rsi + rax*4]",
        "add r11, rax",
        "lea r12, [r11 + rax*4]",
        "add r12, rax",
        zero_tile_14x16!(),
        "test rcx, rcx",
        "jz 3f",
        "2:",
        "prefetcht0 [rdi + 1024]",
        "vmovups zmm28, [rdi]",
        "vbroadcastss zmm30, dword ptr [rsi]",
        "vfmadd231ps zmm0, zmm30, zmm28",
        "vbroadcastss zmm31, dword ptr [rsi + rax]",
        "vfmadd231ps zmm1, zmm31, zmm28",
        "vbroadcastss zmm30, dword ptr [rsi + rax*2]",
        "vfmadd231ps zmm2, zmm30, zmm28",
        "vbroadcastss zmm31, dword ptr [rsi + r13]",
        "vfmadd231ps zmm3, zmm31, zmm28",
        "vbroadcastss zmm30, dword ptr [rsi + rax*4]",
        "vfmadd231ps zmm4, zmm30, zmm28",
        "vbroadcastss zmm31, dword ptr [r11]",
        "vfmadd231ps zmm5, zmm31, zmm28",
        "vbroadcastss zmm30, dword ptr [r11 + rax]",
        "vfmadd231ps zmm6, zmm30, zmm28",
        "vbroadcastss zmm31, dword ptr [r11 + rax*2]",
        "vfmadd231ps zmm7, zmm31, zmm28",
        "vbroadcastss zmm30, dword ptr [r11 + r13]",
        "vfmadd231ps zmm8, zmm30, zmm28",
        "vbroadcastss zmm31, dword ptr [r11 + rax*4]",
        "vfmadd231ps zmm9, zmm31, zmm28",
        "vbroadcastss zmm30, dword ptr [r12]",
        "vfmadd231ps zmm10, zmm30, zmm28",
        "vbroadcastss zmm31, dword ptr [r12 + rax]",
        "vfmadd231ps zmm11, zmm31, zmm28",
        "vbroadcastss zmm30, dword ptr [r12 + rax*2]",
        "vfmadd231ps zmm12, zmm30, zmm28",
        "vbroadcastss zmm31, dword ptr [r12 + r13]",
        "vfmadd231ps zmm13, zmm31, zmm28",
        "add rsi, 4",
        "add r11, 4",
        "add r12, 4",
        "add rdi, 128",
        "dec rcx",
        "jnz 2b",
        store_tile_14x16!(),
        inout("rcx") kc => _,
        inout("rsi") a => _,
        in("rax") rs_bytes,
        inout("rdi") b => _,
        in("rdx") c,
        in("r8") crs,
        in("r9") usize::from(acc),
        out("r10") _,
        out("r11") _,
        out("r12") _,
        out("r13") _,
        clobber_abi("C"),
        options(nostack),
    );
    finish(&tile, out, NR_NARROW);
}
